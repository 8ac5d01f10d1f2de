//! `stock_quote [PREFIX]`: the subrequest demo of the seed document 002 ("深入理解Nginx"'s
//! stock-quote module, called mytest there too), callback by callback. `GET /query?s_sh000001`
//! in a `stock_quote` location asks the same server, in memory, for `/list=s_sh000001` (the
//! prefix, then the client's query string), which a `proxy_pass` location sends to the quote
//! service; the quote that comes back,
//!
//! ```text
//! var hq_str_s_sh000001="NAME,PRICE,CHANGE,PERCENT,VOLUME,TURNOVER";
//! ```
//!
//! becomes the client's answer, `stock[NAME],Today current price: PRICE, volumn: VOLUME`
//! (the seed's words, its spelling of "volume" included), as `text/plain; charset=GBK`.
//!
//! The file follows the seed's order, one item per C function:
//!
//! | seed (C) | here |
//! | --- | --- |
//! | `ngx_http_mytest_commands[]`, `ngx_http_mytest()` | `COMMANDS`, `stock_quote()` |
//! | `ngx_http_mytest_ctx_t` | `StockQuoteCtx` |
//! | `ngx_http_mytest_handler()` | `stock_quote_handler()` |
//! | `mytest_subrequest_post_handler()` | `stock_quote_subrequest_post_handler()` |
//! | `mytest_post_handler()` | `stock_quote_post_handler()` |
//!
//! docs/subrequests.md ("stock_quote: the seed's module") walks through it.
//!
//! nginx: the seed's module (../shared/seeds/002_*.txt, whose C is the book's chapter 5.6);
//! what it calls in nginx: src/http/ngx_http_core_module.c (`ngx_http_subrequest()`),
//! src/http/ngx_http_request.c (`ngx_http_finalize_request()`, which runs
//! `r->post_subrequest->handler`, then wakes the parent).
//!
//! Differs from the seed:
//! - the prefix is the directive's argument (default the seed's `/list=`); the directive is
//!   allowed in `location` only (the seed's module also lists http and server levels).
//! - a quote the seed would print from uninitialised memory is refused: the module answers
//!   only when the body has a quoted text with at least the five fields it prints from
//!   (NAME, PRICE and VOLUME not empty); otherwise 502 and one error-log line. The seed takes
//!   any `,` or `"` from the first byte on as a field boundary; here the fields are the
//!   commas between the first two double quotes, which is the form the service sends.
//! - a quote that is not 200 gives the client 502 with a log line (the seed passes the
//!   quote service's status through); a child that failed itself passes its own error on:
//!   502 when the service is down (the proxy logged why), 504 when it is too slow.
//! - the handler discards a request body, as nginx's own content handlers do (the seed
//!   ignores it), so the connection can be kept alive.
//! - the seed marks the connection `buffered` (`NGX_HTTP_WRITE_BUFFERED`) before sending;
//!   rginx has no such flag to set: `finalize_request` waits for unsent output by itself.
//! - `post_subrequest`'s `data` is unused: the state is the parent's context (the seed passes
//!   the same context as `data` and also reads it from the parent, to show both ways).

use crate::conf::{Args, Ctx};
use crate::core::step::HandlerRc;
use crate::http::body::discard_request_body;
use crate::http::cycle::{Cycle, RequestId};
use crate::http::request::{empty_handler, finalize_request};
use crate::http::special_response::send_response;
use crate::http::subrequest::{self, PostSubrequest, SubrequestFlags};
use crate::http::{trace, AnyConf, Command, Cx, HttpModule, SetError};

/// The subrequest's URI before the client's query string. nginx: the seed's `sub_prefix`.
const DEFAULT_PREFIX: &str = "/list=";

/// The client's answer, `%V` standing for NAME, PRICE and VOLUME in turn; no newline.
/// nginx: `output_format` in the seed's `mytest_post_handler()`.
const OUTPUT_FORMAT: &str = "stock[%V],Today current price: %V, volumn: %V";

/// The answer's type: the quote service writes names in GBK, passed on as they came.
/// nginx: `type` in the seed's `mytest_post_handler()`.
const CONTENT_TYPE: &str = "text/plain; charset=GBK";

/// The fields of a quote the answer uses, by position: NAME, PRICE, VOLUME (the seed's
/// `stock[0]`, `stock[1]`, `stock[4]`).
const NAME: usize = 0;
const PRICE: usize = 1;
const VOLUME: usize = 4;

/// The module. nginx: the seed's `ngx_http_mytest_module`.
pub struct StockQuoteModule;

/// nginx: the seed's `ngx_http_mytest_commands[]`.
static COMMANDS: &[Command] = &[Command {
    name: "stock_quote",
    ctx: Ctx::HTTP_LOC,
    args: Args(Args::NOARGS.0 | Args::TAKE1.0),
    set: stock_quote,
}];

/// One location's setting: the prefix of the subrequest's URI.
#[derive(Default)]
pub struct StockQuoteConf {
    /// `None` until the directive is read here. nginx: the seed's constant `sub_prefix`.
    prefix: Option<Vec<u8>>,
}

/// Per-request state, kept on the parent: the quote's fields, which the child's
/// `post_subrequest` handler fills and the re-activated parent prints. The status the parent
/// answers with is `r.headers_out.status`, as in the seed. nginx: the seed's
/// `ngx_http_mytest_ctx_t` (`ngx_str_t stock[6]`).
#[derive(Default)]
struct StockQuoteCtx {
    /// The quoted text's comma-separated fields. nginx: `myctx->stock`.
    stock: Vec<Vec<u8>>,
    /// The child's outcome is recorded: a second call (a child that ended before its turn is
    /// finalized twice) changes nothing.
    decided: bool,
}

/// Takes the prefix and makes the location's requests go to `stock_quote_handler`.
/// nginx: the seed's `ngx_http_mytest()` (the command's `set`), which sets
/// `clcf->handler = ngx_http_mytest_handler`.
fn stock_quote(cx: &mut Cx<'_>) -> Result<(), SetError> {
    let prefix = if cx.d.args.is_empty() { DEFAULT_PREFIX.to_string() } else { cx.arg(0).to_string() };
    if !prefix.starts_with('/') {
        return Err(format!("invalid prefix \"{prefix}\": a URI must start with \"/\"").into());
    }
    let conf = cx.loc_conf::<StockQuoteConf>()?;
    if conf.prefix.is_some() {
        return Err("is duplicate".into());
    }
    conf.prefix = Some(prefix.into_bytes());
    cx.loc.core.handler = Some(stock_quote_handler);
    Ok(())
}

impl HttpModule for StockQuoteModule {
    fn name(&self) -> &'static str {
        "ngx_http_stock_quote_module"
    }
    fn commands(&self) -> &'static [Command] {
        COMMANDS
    }
    fn create_loc_conf(&self) -> Option<AnyConf> {
        Some(Box::new(StockQuoteConf::default()))
    }
}

/// The content handler: creates the parent's context, then the in-memory subrequest
/// `PREFIX` + the client's query string, whose end `stock_quote_subrequest_post_handler` will
/// hear of. The child is only queued here; it runs once this handler returns `Done`
/// (NGX_DONE), which tells the framework the request goes on later: `subrequest::hold` keeps
/// the reference the parent needs until it answers. In memory
/// (`NGX_HTTP_SUBREQUEST_IN_MEMORY`) means the proxy that serves the child keeps the quote's
/// body for the parent instead of sending it to the client.
/// nginx: the seed's `ngx_http_mytest_handler()`.
fn stock_quote_handler(cy: &mut Cycle, rid: RequestId) -> HandlerRc {
    if let Err(status) = discard_request_body(cy, rid) {
        return HandlerRc::Status(status);
    }
    let Some(r) = cy.requests.get_mut(rid) else { return HandlerRc::Error };
    let Some(prefix) = r.loc.confs.get::<StockQuoteConf>().and_then(|c| c.prefix.clone()) else {
        return HandlerRc::Status(500);
    };
    if r.ctx::<StockQuoteCtx>().is_none() {
        r.ctx.push(Box::new(StockQuoteCtx::default()));
    }
    // The seed's `ngx_snprintf(sub_location.data, ..., "%V%V", &sub_prefix, &r->args)`.
    let mut uri = prefix;
    uri.extend_from_slice(&r.args);
    trace::step(cy, rid, format_args!("stock_quote handler: subrequest \"{}\"", String::from_utf8_lossy(&uri)));
    let psr = PostSubrequest { handler: stock_quote_subrequest_post_handler, data: 0 };
    if subrequest::subrequest(cy, rid, &uri, b"", Some(psr), SubrequestFlags::IN_MEMORY).is_err() {
        // `subrequest` logged why (the seed: `if (rc != NGX_OK) return NGX_ERROR`).
        return HandlerRc::Status(500);
    }
    subrequest::hold(cy, rid);
    let count = cy.requests.get(rid).and_then(|r| cy.requests.get(r.main)).map_or(0, |m| m.count);
    trace::step(cy, rid, format_args!("stock_quote handler: done, count {count}"));
    HandlerRc::Done
}

/// The child was finalized. Its status and the body the proxy kept decide what the parent
/// will say: 200 and the quote's fields, or an error status. Both go to the parent (its
/// `headers_out.status` and its context), and the parent is told which function to run when
/// the framework wakes it (`pr->write_event_handler = mytest_post_handler`).
///
/// Like the seed, it returns `Ok` for the child's failures: the parent answers for the child,
/// so the child's own error page is not made (an in-memory child has nowhere to send it).
/// Only a client that went away (499) is passed on: then there is no one to answer.
/// nginx: the seed's `mytest_subrequest_post_handler()`.
fn stock_quote_subrequest_post_handler(cy: &mut Cycle, sr: RequestId, _data: usize, rc: HandlerRc) -> HandlerRc {
    let Some((parent, status)) = cy.requests.get(sr).and_then(|r| Some((r.parent?, r.headers_out.status))) else {
        return rc;
    };
    if rc == HandlerRc::Status(499) {
        // The client went away: nobody to answer. Passed on, so the whole tree is terminated
        // and the access log says 499.
        trace::step(cy, sr, format_args!("stock_quote post_subrequest: rc {rc:?}, client gone"));
        return rc;
    }
    if cy.requests.get_mut(parent).and_then(|p| p.ctx::<StockQuoteCtx>()).is_some_and(|ctx| ctx.decided) {
        return HandlerRc::Ok;
    }
    let body = subrequest::in_memory_body(cy, sr);
    let (answer, stock) = match rc {
        // The proxy failed before any quote and logged why (refused, timed out, too big).
        HandlerRc::Status(504) => (504, Vec::new()),
        HandlerRc::Status(502) | HandlerRc::Error => (502, Vec::new()),
        // Another status from the child's location itself (`return 403`, no such file, ...),
        // which nothing else logs.
        HandlerRc::Status(s) if s >= 300 => {
            let msg = format!("stock_quote: quote subrequest failed with {s}");
            log::error!("{}", subrequest::context_line(cy, sr, &msg));
            (502, Vec::new())
        }
        _ if status != 200 => {
            let msg = format!("stock_quote: quote service answered {status}, expected 200");
            log::error!("{}", subrequest::context_line(cy, sr, &msg));
            (502, Vec::new())
        }
        _ => match parse_quote(&body) {
            Ok(stock) => (200, stock),
            Err(why) => {
                let msg = format!("stock_quote: malformed quote ({why}): \"{}\"", quote_excerpt(&body));
                log::error!("{}", subrequest::context_line(cy, sr, &msg));
                (502, Vec::new())
            }
        },
    };
    let parsed = if answer == 200 { "parsed" } else { "not parsed" };
    let len = body.len();
    trace::step(
        cy,
        sr,
        format_args!("stock_quote post_subrequest: rc {rc:?}, status {status}, {len} body bytes, {parsed}"),
    );
    let Some(p) = cy.requests.get_mut(parent) else { return HandlerRc::Ok };
    p.headers_out.status = answer;
    p.write_event_handler = stock_quote_post_handler;
    if let Some(ctx) = p.ctx::<StockQuoteCtx>() {
        ctx.stock = stock;
        ctx.decided = true;
    }
    HandlerRc::Ok
}

/// The fields of `var hq_str_CODE="NAME,PRICE,CHANGE,PERCENT,VOLUME,TURNOVER";`: the text
/// between the first two double quotes, cut at each comma. At least the five fields up to
/// VOLUME must be there, and the three the answer prints must not be empty (the service sends
/// `""` for a code it does not know). `Err` says what is wrong, for the log.
/// nginx: the loop over `r->upstream->buffer` in the seed's `mytest_subrequest_post_handler()`.
fn parse_quote(body: &[u8]) -> Result<Vec<Vec<u8>>, &'static str> {
    let open = body.iter().position(|&b| b == b'"').ok_or("no opening quote")?;
    let rest = body.get(open + 1..).unwrap_or(&[]);
    let close = rest.iter().position(|&b| b == b'"').ok_or("no closing quote")?;
    let text = rest.get(..close).unwrap_or(&[]);
    let stock: Vec<Vec<u8>> = text.split(|&b| b == b',').map(<[u8]>::to_vec).collect();
    if stock.len() <= VOLUME {
        return Err("fewer than 5 fields");
    }
    if [NAME, PRICE, VOLUME].iter().any(|&i| stock.get(i).is_none_or(Vec::is_empty)) {
        return Err("empty name, price or volume");
    }
    Ok(stock)
}

/// The start of a quote for the error log, printable and short.
fn quote_excerpt(body: &[u8]) -> String {
    const MAX: usize = 64;
    let mut s: String = body.iter().take(MAX).flat_map(|&b| std::ascii::escape_default(b)).map(char::from).collect();
    if body.len() > MAX {
        s.push_str("...");
    }
    s
}

/// The parent, woken by the framework once its child has ended: passes on an error status,
/// or sends `stock[NAME],Today current price: PRICE, volumn: VOLUME` with its length and type,
/// then finalizes itself — the framework does not, since the handler returned `Done`.
/// nginx: the seed's `mytest_post_handler()`.
fn stock_quote_post_handler(cy: &mut Cycle, rid: RequestId) {
    let Some(r) = cy.requests.get_mut(rid) else { return };
    r.write_event_handler = empty_handler; // once; `finalize_request` installs the writer if needed
    let status = r.headers_out.status;
    trace::step(cy, rid, format_args!("stock_quote parent re-activated: status {status}"));
    if status != 200 {
        return finalize_request(cy, rid, HandlerRc::Status(status));
    }
    let Some(r) = cy.requests.get_mut(rid) else { return };
    let Some(stock) = r.ctx::<StockQuoteCtx>().map(|ctx| std::mem::take(&mut ctx.stock)) else {
        return finalize_request(cy, rid, HandlerRc::Status(500));
    };
    let field = |i: usize| stock.get(i).map_or(&[][..], Vec::as_slice);
    let body = format_answer(field(NAME), field(PRICE), field(VOLUME));
    r.headers_out.set_content_type(CONTENT_TYPE.as_bytes());
    r.headers_out.content_length_n = Some(body.len() as u64);
    let len = body.len();
    let rc = send_response(cy, rid, Some(body));
    trace::step(cy, rid, format_args!("stock_quote answer sent: {len} bytes, {rc:?}"));
    finalize_request(cy, rid, rc);
}

/// `OUTPUT_FORMAT` with its three `%V` replaced, as bytes (a GBK name is not UTF-8).
/// nginx: the seed's `ngx_snprintf(b->pos, bodylen, output_format, ...)`.
fn format_answer(name: &[u8], price: &[u8], volume: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(OUTPUT_FORMAT.len() + name.len() + price.len() + volume.len());
    let mut values = [name, price, volume].into_iter();
    let mut parts = OUTPUT_FORMAT.split("%V").peekable();
    while let Some(part) = parts.next() {
        out.extend_from_slice(part.as_bytes());
        if parts.peek().is_some() {
            out.extend_from_slice(values.next().unwrap_or(&[]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seeds_quote_is_parsed() {
        let body = b"var hq_str_s_sh000001=\"\xc9\xcf\xd6\xa4\xd6\xb8\xca\xfd,3000.12,-5.01,-0.17,123456,789012\";\n";
        let stock = parse_quote(body).unwrap();
        assert_eq!(stock.len(), 6);
        let answer = format_answer(&stock[NAME], &stock[PRICE], &stock[VOLUME]);
        let mut want = b"stock[\xc9\xcf\xd6\xa4\xd6\xb8\xca\xfd],Today current price: 3000.12".to_vec();
        want.extend_from_slice(b", volumn: 123456");
        assert_eq!(answer, want);
    }

    #[test]
    fn malformed_quotes_are_refused() {
        assert_eq!(parse_quote(b"var hq_str_x=\"\";"), Err("fewer than 5 fields"));
        assert_eq!(parse_quote(b"var x=\"a,b,c,d\";"), Err("fewer than 5 fields"));
        assert_eq!(parse_quote(b"var x=\"a,b,c,d,\";"), Err("empty name, price or volume"));
        assert_eq!(parse_quote(b"no quote at all"), Err("no opening quote"));
        assert_eq!(parse_quote(b"var x=\"a,b,c,d,e,f"), Err("no closing quote"));
        assert_eq!(parse_quote(b""), Err("no opening quote"));
        // Five fields are enough (what the answer reads), more are ignored.
        assert_eq!(parse_quote(b"\"a,b,c,d,e\"").map(|s| s.len()), Ok(5));
        assert_eq!(parse_quote(b"\"a,b,c,d,e,f,g,h\"").map(|s| s.len()), Ok(8));
    }

    #[test]
    fn excerpt_is_printable_and_bounded() {
        assert_eq!(quote_excerpt(b"a\"\n\xff"), "a\\\"\\n\\xff");
        assert_eq!(quote_excerpt(&[b'x'; 100]).len(), 64 + 3);
    }
}
