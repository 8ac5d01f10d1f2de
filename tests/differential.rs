//! The differential test: about a thousand generated odd requests (tests/differential/gen.rs)
//! sent on fresh connections to nginx and to rginx running the same config, their answers
//! compared (status codes, close, bytes reaching the backend), the differences counted by
//! family in `target/differential-report.txt`, and the test failed by any difference that
//! [`ALLOWED`] does not list.
//!
//! nginx: nginx itself (`/usr/sbin/nginx`, or `$NGINX_BIN`) is the spec. Without it the test
//! fails, unless `RGINX_SKIP_NGINX=1`. `RGINX_BIN=/usr/sbin/nginx` compares nginx with itself
//! (the instrument's own check: nothing may differ).
//!
//! Differs from nginx: nothing; see docs/testing.md for how to run it and read the report.

mod common;
#[path = "differential/framing.rs"]
mod framing;
#[path = "differential/gen.rs"]
mod gen;
#[path = "differential/header_lines.rs"]
mod header_lines;
#[path = "differential/report.rs"]
mod report;
#[path = "differential/request_line.rs"]
mod request_line;
#[path = "differential/run.rs"]
mod run;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use report::{Allow, Aspect, Kind, Outcome, ANY};
use run::{Answer, Server};

/// The corpus seed (`RGINX_DIFF_SEED` overrides it to explore; the allowlist is for this one).
const SEED: u64 = 0x6e67_696e_7821;

/// Requests in flight at once, per server: most of the time is spent waiting for silence.
const LANES: usize = 16;

/// Silence after which a connection counts as left open, in the first pass and in each re-run.
/// A difference stands only if every pass shows it; the last re-run is only for differences
/// timing could explain (a close, or an answer that may have come late).
const PASSES: [Duration; 3] = [Duration::from_millis(400), Duration::from_millis(1500), Duration::from_millis(3000)];

/// Mismatches shown per family in the report (`RGINX_DIFF_EXAMPLES` overrides).
const EXAMPLES: usize = 3;

use Aspect::{Backend, Close, Status};
use Kind::{Deliberate, Pending};

/// Every difference the test tolerates, in one place. `Deliberate` entries match
/// docs/differences.md; `Pending` ones are bugs other branches of issue 11 are fixing (the
/// parser: item 5; the body reader and error paths: items 1 and 2): the lead deletes each
/// after merging its fix, until only `Deliberate` ones are left. The report marks entries that
/// matched nothing.
const ALLOWED: &[Allow] = &[
    // --- deliberate (docs/differences.md) ---
    allow(
        "chunked/oversize",
        &[Close],
        Deliberate,
        "413 for a chunked body over client_max_body_size lingers before closing",
    ),
    allow(
        "split/uri",
        &[Status],
        Deliberate,
        "a header value with CR, LF or NUL is refused (item 6); nginx splits the response",
    ),
    // --- pending: the parser (item 5) ---
    allow("version/0.9-simple", ANY, Pending, "HTTP/0.9 simple request: 505; nginx answers without a header"),
    allow("version/minor", ANY, Pending, "HTTP/1.2 .. HTTP/1.999: 505; nginx serves them as 1.1"),
    allow("request-line/spaces", ANY, Pending, "spaces (or junk) after the version: 400; nginx serves"),
    allow(
        "target/absolute",
        ANY,
        Pending,
        "absolute-form forwarded as such, Host still required; nginx: origin-form, $host from the target",
    ),
    allow("target/bytes", ANY, Pending, "bytes >= 0x80 in the target: 400; nginx takes them"),
    allow("target/form", ANY, Pending, "an empty target: 505; nginx 400"),
    allow("method/trace", ANY, Pending, "TRACE is proxied; nginx 405"),
    allow("method/connect", ANY, Pending, "CONNECT with an origin-form target is proxied; nginx 405"),
    allow("header-name/invalid", ANY, Pending, "a name with non-token bytes: 400; nginx ignores the line"),
    allow(
        "header-name/token",
        &[Backend],
        Pending,
        "names with bytes outside [A-Za-z0-9-] are forwarded; nginx drops them",
    ),
    allow(
        "header-name/underscore",
        &[Backend],
        Pending,
        "names with `_` are forwarded; nginx drops them (underscores_in_headers off)",
    ),
    allow(
        "header-name/no-colon",
        ANY,
        Pending,
        "a line without a colon: 400; nginx takes a header with an empty value",
    ),
    allow("header-value/ctl", ANY, Pending, "control bytes or DEL in a value: 400; nginx refuses only NUL"),
    allow("header-value/space", &[Backend], Pending, "HTAB around a value is trimmed; nginx keeps it"),
    allow("header-value/many", ANY, Pending, "more than 100 header lines: 400; nginx has no count limit"),
    allow(
        "host/value",
        ANY,
        Pending,
        "Host checks differ from ngx_http_validate_host (`.h`: 400, nginx 200; `h<TAB>`: 200, nginx 400)",
    ),
    allow("line-endings", ANY, Pending, "a CR before the CRLF ending a header line: 400; nginx takes it"),
    allow("connection", &[Close], Pending, "`Connection: close, keep-alive` keeps alive; nginx looks for close first"),
    allow("expect/no-body", &[Status], Pending, "no `100 Continue` without a body; nginx sends it"),
    allow("pipeline/bad-second", ANY, Pending, "a second request in HTTP/0.9 or 1.2: as version/*"),
    allow("pipeline/smuggle", &[Status], Pending, "`Transfer-Encoding:<VT>chunked`: 400; nginx 501"),
    allow("mutate/", ANY, Pending, "random edits: mostly the header-name, header-value and host families"),
    // --- pending: the body reader and its error paths (items 1, 2) ---
    allow("chunked/framing", &[Close], Pending, "400 for a bad chunked body leaves the connection open; nginx closes"),
    allow(
        "chunked/size",
        ANY,
        Pending,
        "400 for a bad chunk size leaves it open; size 7fffffffffffffff waits (or 200 at `return`) where nginx 400",
    ),
    allow(
        "te/with-cl",
        &[Close],
        Pending,
        "400 for Content-Length with Transfer-Encoding closes; nginx discards the body first",
    ),
    allow("te/http10", &[Close], Pending, "as te/with-cl, on HTTP/1.0"),
];

/// rginx keeps descriptors of some failed requests after their clients left (issue 11 item 1,
/// the body branch): reported, not asserted, until the lead sets this to `false` after the
/// merge.
const FD_LEAKS_PENDING: bool = true;

const fn allow(family: &'static str, aspects: &'static [Aspect], kind: Kind, reason: &'static str) -> Allow {
    Allow { family, aspects, kind, reason }
}

#[test]
fn odd_requests_get_nginx_answers() {
    let Some(nginx) = nginx_bin() else { return };
    let rginx = std::env::var("RGINX_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_rginx").to_string());
    let seed = std::env::var("RGINX_DIFF_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(SEED);
    let examples = std::env::var("RGINX_DIFF_EXAMPLES").ok().and_then(|s| s.parse().ok()).unwrap_or(EXAMPLES);
    let cases = gen::corpus(seed);

    let started = Instant::now();
    let mut n = Server::start("nginx", &nginx, LANES);
    let mut r = Server::start("rginx", &rginx, LANES);
    let fds = (n.wait_fd_count(None, Duration::from_secs(2)), r.wait_fd_count(None, Duration::from_secs(2)));

    let mut passes = String::new();
    let outcomes = measure(&cases, &n, &r, &mut passes);
    let took = started.elapsed();

    let (nginx_alive, rginx_alive) = (n.alive(), r.alive());
    let settle = Duration::from_secs(5);
    let fds_after = (n.wait_fd_count(Some(fds.0), settle), r.wait_fd_count(Some(fds.1), settle));

    let head = format!(
        "differential test: nginx ({nginx}) vs rginx ({rginx}), seed {seed:#x}\n\
         time: {:.1} s; {LANES} lanes; passes: {passes}\n\
         open descriptors: nginx {} -> {}, rginx {} -> {} (before -> after, all clients gone)\n",
        took.as_secs_f64(),
        fds.0,
        fds_after.0,
        fds.1,
        fds_after.1
    );
    let text = report::render(&head, &outcomes, ALLOWED, examples);
    println!("{text}");
    let path = report_path();
    if let Err(e) = std::fs::write(&path, &text) {
        println!("cannot write {}: {e}", path.display());
    } else {
        println!("report written to {}", path.display());
    }

    assert!(
        nginx_alive,
        "nginx exited during the run (the test's fault, not rginx's):\n{}",
        tail(&n.log("logs/error.log"))
    );
    assert!(rginx_alive, "rginx exited during the run; error.log:\n{}", tail(&r.log("logs/error.log")));
    assert!(
        FD_LEAKS_PENDING || fds_after.1 == fds.1,
        "rginx holds {} descriptors after every client left, {} before (nginx: {} -> {})",
        fds_after.1,
        fds.1,
        fds.0,
        fds_after.0
    );
    let bad: Vec<&Outcome> = outcomes.iter().filter(|o| !o.unexpected(ALLOWED).is_empty()).collect();
    let list: String = bad.iter().take(10).map(|o| report::example(o)).collect();
    assert!(
        bad.is_empty(),
        "{} of {} requests answered differently from nginx outside the allowlist (first 10 below; \
         all in {}):\n{list}",
        bad.len(),
        cases.len(),
        path.display()
    );
}

/// nginx's path, `None` when it is missing and `RGINX_SKIP_NGINX=1` says that is fine.
fn nginx_bin() -> Option<String> {
    let bin = std::env::var("NGINX_BIN").unwrap_or_else(|_| "/usr/sbin/nginx".to_string());
    if Path::new(&bin).exists() {
        return Some(bin);
    }
    if std::env::var("RGINX_SKIP_NGINX").is_ok_and(|v| v == "1") {
        println!("differential test SKIPPED: no nginx at {bin} (RGINX_SKIP_NGINX=1)");
        return None;
    }
    panic!(
        "the differential test needs nginx at {bin} (apt-get install nginx-light, or set \
         NGINX_BIN); set RGINX_SKIP_NGINX=1 to skip it knowingly"
    );
}

/// `target/differential-report.txt`, found from the binary's own path so that a custom
/// target directory works.
fn report_path() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_rginx"));
    let target = bin.parent().and_then(Path::parent).unwrap_or(Path::new("target"));
    target.join("differential-report.txt")
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Sends `cases[i]` for each `i` in `which` to both servers, each request to both at the same
/// time, `LANES` requests at once; the answers in `which`'s order.
fn run_pass(cases: &[gen::Case], which: &[usize], n: &Server, r: &Server, quiet: Duration) -> Vec<(Answer, Answer)> {
    let next = AtomicUsize::new(0);
    let out: Mutex<Vec<Option<(Answer, Answer)>>> = Mutex::new(vec![None; which.len()]);
    thread::scope(|s| {
        for lane in 0..LANES {
            let (next, out) = (&next, &out);
            s.spawn(move || loop {
                let k = next.fetch_add(1, Ordering::SeqCst);
                let Some(&i) = which.get(k) else { return };
                let raw = &cases[i].raw;
                let pair = thread::scope(|s2| {
                    let from_nginx = s2.spawn(|| n.ask(lane, raw, quiet));
                    let from_rginx = r.ask(lane, raw, quiet);
                    (from_nginx.join().expect("nginx side"), from_rginx)
                });
                out.lock().unwrap()[k] = Some(pair);
            });
        }
    });
    out.into_inner().unwrap().into_iter().map(|p| p.expect("every request answered")).collect()
}

/// Runs the passes of [`PASSES`] and returns each case's outcome, from the last pass that sent
/// it; appends "N requests in T s (quiet Q ms)" per pass to `log`.
fn measure<'a>(cases: &'a [gen::Case], n: &Server, r: &Server, log: &mut String) -> Vec<Outcome<'a>> {
    let mut answers: Vec<(Answer, Answer)> = Vec::new();
    let mut which: Vec<usize> = (0..cases.len()).collect();
    let mut first_differs = vec![false; cases.len()];
    for (p, &quiet) in PASSES.iter().enumerate() {
        if which.is_empty() {
            break;
        }
        let t = Instant::now();
        let got = run_pass(cases, &which, n, r, quiet);
        let sep = if p == 0 { "" } else { ", " };
        log.push_str(&format!(
            "{sep}{} in {:.1} s (quiet {} ms)",
            which.len(),
            t.elapsed().as_secs_f64(),
            quiet.as_millis()
        ));
        if p == 0 {
            answers = got;
        } else {
            which.iter().zip(got).for_each(|(&i, pair)| answers[i] = pair);
        }
        which.retain(|&i| {
            let (a, b) = &answers[i];
            let d = report::differ(a, b);
            !d.is_empty() && (p == 0 || report::timing_could_explain(a, b, &d))
        });
        if p == 0 {
            which.iter().for_each(|&i| first_differs[i] = true);
        }
    }
    let all = cases.iter().zip(answers).zip(first_differs);
    all.map(|((case, (nginx, rginx)), first)| {
        let aspects = report::differ(&nginx, &rginx);
        Outcome { case, unstable: first && aspects.is_empty(), aspects, nginx, rginx }
    })
    .collect()
}
