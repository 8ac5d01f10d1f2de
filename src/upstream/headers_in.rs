//! The upstream's table of known response headers: for each, what to record when the line
//! arrives from the upstream (`handler`, run by a module's `process_header`), and how the line
//! reaches the client (`copy`, what `header::process_headers` does with it).
//!
//! nginx: `ngx_http_upstream_headers_in[]` and `ngx_http_upstream_header_t`
//! (src/http/ngx_http_upstream.{c,h}); the handlers `ngx_http_upstream_process_header_line()`,
//! `_process_content_length()`, `_process_transfer_encoding()`, `_process_connection()`,
//! `_ignore_header_line()`. A module looks a line up with
//! `ngx_hash_find(&umcf->headers_in_hash, ...)` and calls `hh->handler(r, h, hh->offset)`,
//! as the seed's `mytest_upstream_process_header` does; `find` and `UpstreamHeader::handler`
//! are that here.
//!
//! Differs from nginx:
//! - only the entries rginx acts on: nginx 1.22 also lists caching headers (`Cache-Control`,
//!   `Expires`, `Vary`, `X-Accel-Expires`), `X-Accel-*` controls, `ETag`, `Link`, ... whose
//!   handlers feed features rginx does not have. Such a line is kept and passed like any
//!   unknown one.
//! - nginx hashes the table once (`umcf->headers_in_hash`); here `find` picks the one candidate
//!   by the name's first letter and length (a switch written for this table; a test checks
//!   that it reaches every entry) and compares names case-insensitively.
//! - nginx's handlers store a pointer to the line in a field of `ngx_http_upstream_headers_in_t`
//!   (`headers_in.server`, `headers_in.date`, ...). The lines are kept in `HeadersIn`'s list
//!   either way, and `HeadersIn::get("server")` finds them, so `process_header_line` records
//!   nothing more; the handlers that turn a line into a fact the framework uses
//!   (`content_length_n`, `chunked`, `connection_close`) set those fields.
//! - `Content-Length` and `Transfer-Encoding` are checked as nginx >= 1.23 checks them (and as
//!   the proxy module does): a malformed or conflicting value is an error. nginx 1.22's
//!   handlers accepted anything.
//! - `copy` is an enum the framework's `header::copy_headers` matches on (proxy and mytest
//!   share it), not a function pointer with an offset: what a kind does needs the module's
//!   rewrite callbacks, which the copy step holds.
//! - names and values are the bytes the upstream sent (`&[u8]`), never decoded, as nginx's
//!   `ngx_str_t`s are.

use super::HeadersIn;
use crate::core::header_list::word;

/// What a header line arriving from the upstream records; `Err` is the error-log message (the
/// response is then invalid). nginx: `ngx_http_header_handler_pt` of
/// `ngx_http_upstream_header_t.handler`.
pub type Handler = fn(hi: &mut HeadersIn, name: &[u8], value: &[u8]) -> Result<(), String>;

/// How a known header line is passed to the client. nginx: the `copy_handler` of
/// `ngx_http_upstream_header_t`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyHeader {
    /// Passed as is (unless hidden). nginx: `ngx_http_upstream_copy_header_line()`.
    HeaderLine,
    /// Becomes the response's content type. nginx: `ngx_http_upstream_copy_content_type()`.
    ContentType,
    /// Becomes the response's `Last-Modified`. nginx: `ngx_http_upstream_copy_last_modified()`.
    LastModified,
    /// Through the module's `rewrite_redirect`. nginx: `ngx_http_upstream_rewrite_location()`.
    RewriteLocation,
    /// The URL after "url=" through `rewrite_redirect`.
    /// nginx: `ngx_http_upstream_rewrite_refresh()`.
    RewriteRefresh,
    /// Through the module's `rewrite_cookie`. nginx: `ngx_http_upstream_rewrite_set_cookie()`.
    RewriteSetCookie,
    /// Never passed: hop-by-hop, or recomputed for the client.
    /// nginx: `ngx_http_upstream_ignore_header_line()`.
    Ignore,
}

/// One known header. nginx: `ngx_http_upstream_header_t` (`name`, `handler`, `copy_handler`;
/// the offsets are the fields the handlers write).
#[derive(Clone, Copy, Debug)]
pub struct UpstreamHeader {
    /// The header's name, as nginx's table spells it.
    pub name: &'static str,
    /// What its arrival records. nginx: `handler`.
    pub handler: Handler,
    /// How it goes to the client. nginx: `copy_handler`.
    pub copy: CopyHeader,
}

/// The known upstream response headers rginx acts on, in nginx 1.22's order.
/// nginx: `ngx_http_upstream_headers_in[]`.
pub static UPSTREAM_HEADERS_IN: &[UpstreamHeader] = &TABLE;

/// The table itself (a constant, so that `FOLDED` is computed from it at compile time).
#[rustfmt::skip]
const TABLE: [UpstreamHeader; 11] = [
    UpstreamHeader { name: "Content-Type", handler: process_header_line, copy: CopyHeader::ContentType },
    UpstreamHeader { name: "Content-Length", handler: process_content_length, copy: CopyHeader::Ignore },
    UpstreamHeader { name: "Date", handler: process_header_line, copy: CopyHeader::HeaderLine },
    UpstreamHeader { name: "Last-Modified", handler: process_header_line, copy: CopyHeader::LastModified },
    UpstreamHeader { name: "Server", handler: process_header_line, copy: CopyHeader::HeaderLine },
    UpstreamHeader { name: "Location", handler: process_header_line, copy: CopyHeader::RewriteLocation },
    UpstreamHeader { name: "Refresh", handler: process_header_line, copy: CopyHeader::RewriteRefresh },
    UpstreamHeader { name: "Set-Cookie", handler: process_header_line, copy: CopyHeader::RewriteSetCookie },
    UpstreamHeader { name: "Connection", handler: process_connection, copy: CopyHeader::Ignore },
    UpstreamHeader { name: "Keep-Alive", handler: ignore_header_line, copy: CopyHeader::Ignore },
    UpstreamHeader { name: "Transfer-Encoding", handler: process_transfer_encoding, copy: CopyHeader::Ignore },
];

/// `TABLE`'s index of `Date` (the copy step tells the header filter not to add its own).
pub const DATE: usize = 2;
/// `TABLE`'s index of `Server` (likewise).
pub const SERVER: usize = 4;

/// The table's entry for `name`, case-insensitively.
/// nginx: `ngx_hash_find(&umcf->headers_in_hash, h->hash, h->lowcase_key, h->key.len)`.
///
/// A dozen names, known at compile time: their first letter (lowered) and length pick the one
/// candidate, so a line is compared with at most one name, as nginx's `ngx_hash_find()`
/// compares with the one key of its bucket. A search in order compared most lines (the
/// unknown ones) with every name.
pub fn find(name: &[u8]) -> Option<&'static UpstreamHeader> {
    UPSTREAM_HEADERS_IN.get(find_index(name)?)
}

/// `find`, as the entry's index in `UPSTREAM_HEADERS_IN`.
pub fn find_index(name: &[u8]) -> Option<usize> {
    let i = match (name.first()? | 0x20, name.len()) {
        (b'c', 12) => 0,  // Content-Type
        (b'c', 14) => 1,  // Content-Length
        (b'd', 4) => 2,   // Date
        (b'l', 13) => 3,  // Last-Modified
        (b's', 6) => 4,   // Server
        (b'l', 8) => 5,   // Location
        (b'r', 7) => 6,   // Refresh
        (b's', 10) => 7,  // Set-Cookie
        (b'c', 10) => 8,  // Connection
        (b'k', 10) => 9,  // Keep-Alive
        (b't', 17) => 10, // Transfer-Encoding
        _ => return None,
    };
    FOLDED.get(i)?.matches(name).then_some(i)
}

/// A line's kind in `HeadersIn`'s list (`HeaderList::push_kind`): what `find` said of its
/// name when it arrived, so the copy to the client does not look the name up again (nginx
/// keeps the hash it computed while parsing in `h->hash`).
pub mod kind {
    /// Not looked up (a module that pushed the line without `find`): look it up.
    pub const UNKNOWN: u8 = 0;
    /// Looked up: not in the table.
    pub const NOT_FOUND: u8 = 1;
    /// Looked up: `UPSTREAM_HEADERS_IN[k - FIRST]`.
    pub const FIRST: u8 = 2;
}

/// The kind to record for what `find_index` said.
pub fn kind_of(found: Option<usize>) -> u8 {
    found.map_or(kind::NOT_FOUND, |i| kind::FIRST + i as u8)
}

/// The table index of a line recorded with `kind` (looked up now if it was not then).
#[inline]
pub fn index_by_kind(kind: u8, name: &[u8]) -> Option<usize> {
    match kind {
        kind::UNKNOWN => find_index(name),
        kind::NOT_FOUND => None,
        k => Some(usize::from(k - kind::FIRST)),
    }
}

/// `*_hide_header`'s list made ready for `header::copy_headers`: a hidden name that is in the
/// table is a bit of `known` (a line found there is tested by its index, no comparison);
/// only the other lines are compared with the names, and only when a hidden name not in the
/// table has their length. nginx: `hide_headers_hash` (`ngx_hash_find()` per line).
#[derive(Clone, Debug, Default)]
pub struct HideHeaders {
    /// The hidden names that are not in the table (only those are ever compared).
    others: Vec<String>,
    /// Bit i: `UPSTREAM_HEADERS_IN[i]` is hidden.
    known: u32,
    /// Bit n: a hidden name not in the table is n bytes long (63: 63 or more).
    other_lens: u64,
}

impl From<Vec<String>> for HideHeaders {
    fn from(names: Vec<String>) -> HideHeaders {
        let (mut known, mut other_lens, mut others) = (0u32, 0u64, Vec::new());
        for name in names {
            match find_index(name.as_bytes()) {
                Some(i) => known |= 1 << i,
                None => {
                    other_lens |= len_bit(name.len());
                    others.push(name);
                }
            }
        }
        HideHeaders { others, known, other_lens }
    }
}

impl HideHeaders {
    /// Whether a line named `name`, whose table index is `found` (`find_index`), is hidden.
    /// A line not in the table cannot be one of the table's names (`find_index` finds every
    /// spelling of them), so it is compared with the others only.
    #[inline]
    pub fn hides(&self, name: &[u8], found: Option<usize>) -> bool {
        match found {
            Some(i) => self.known & (1 << i) != 0,
            None => {
                self.other_lens & len_bit(name.len()) != 0
                    && self.others.iter().any(|h| crate::core::header_list::eq_nocase(name, h.as_bytes()))
            }
        }
    }
}

/// The bit of a mask of name lengths for a name of `len` bytes.
#[inline]
fn len_bit(len: usize) -> u64 {
    1 << len.min(63)
}

/// Longest name in the table, and the room `Folded` keeps for one.
const NAME_MAX: usize = 24;

/// A table name made ready to compare 8 (or 4) bytes at a time, case-insensitively: its bytes
/// in lower case, and a mask with 0x20 where the name has a letter. A byte `b` of a line's
/// name matches the table's lower-case `l` when `b | mask == l`: for a letter that is either
/// case, for anything else the byte itself. nginx compares the lower-cased copy of the name
/// it made while parsing (`h->lowcase_key`); rginx makes none, and folds while comparing.
struct Folded {
    lower: [u8; NAME_MAX],
    mask: [u8; NAME_MAX],
    len: usize,
}

// `HideHeaders::known` has one bit per table entry.
const _: () = assert!(TABLE.len() <= 32);

/// `FOLDED[i]` is `TABLE[i]`'s name, folded.
static FOLDED: [Folded; TABLE.len()] = {
    let mut out = [const { Folded { lower: [0; NAME_MAX], mask: [0; NAME_MAX], len: 0 } }; TABLE.len()];
    let mut i = 0;
    while i < TABLE.len() {
        let name = TABLE[i].name.as_bytes();
        assert!(name.len() >= 4 && name.len() <= NAME_MAX);
        out[i].len = name.len();
        let mut j = 0;
        while j < name.len() {
            out[i].lower[j] = name[j].to_ascii_lowercase();
            out[i].mask[j] = if name[j].is_ascii_alphabetic() { 0x20 } else { 0 };
            j += 1;
        }
        i += 1;
    }
    out
};

impl Folded {
    /// Whether `name` is this name, ignoring ASCII case. Words overlap at the end rather than
    /// running past it (every name is at least 4 bytes).
    fn matches(&self, name: &[u8]) -> bool {
        let n = name.len();
        if n != self.len {
            return false;
        }
        let eq8 = |at: usize| match (word::<8>(name, at), word::<8>(&self.mask, at), word::<8>(&self.lower, at)) {
            (Some(b), Some(m), Some(l)) => u64::from_le_bytes(b) | u64::from_le_bytes(m) == u64::from_le_bytes(l),
            _ => false,
        };
        if n < 8 {
            let eq4 = |at: usize| match (word::<4>(name, at), word::<4>(&self.mask, at), word::<4>(&self.lower, at)) {
                (Some(b), Some(m), Some(l)) => u32::from_le_bytes(b) | u32::from_le_bytes(m) == u32::from_le_bytes(l),
                _ => false,
            };
            return eq4(0) && eq4(n.saturating_sub(4));
        }
        let mut at = 0;
        while at + 8 < n {
            if !eq8(at) {
                return false;
            }
            at += 8;
        }
        eq8(n - 8)
    }
}

/// The line stays in the list, where `HeadersIn::get` finds it (nginx keeps a pointer to it
/// in `headers_in.server`, `.date`, ...). nginx: `ngx_http_upstream_process_header_line()`.
pub fn process_header_line(_hi: &mut HeadersIn, _name: &[u8], _value: &[u8]) -> Result<(), String> {
    Ok(())
}

/// Nothing to record. nginx: `ngx_http_upstream_ignore_header_line()`.
pub fn ignore_header_line(_hi: &mut HeadersIn, _name: &[u8], _value: &[u8]) -> Result<(), String> {
    Ok(())
}

/// The body length: digits only; a repeated header must repeat the value.
/// nginx: `ngx_http_upstream_process_content_length()` (>= 1.23's checks).
pub fn process_content_length(hi: &mut HeadersIn, name: &[u8], value: &[u8]) -> Result<(), String> {
    match parse_length(value) {
        Some(n) if hi.content_length_n.is_none_or(|old| old == n) => {
            hi.content_length_n = Some(n);
            Ok(())
        }
        _ => Err(format!(
            "upstream sent invalid \"Content-Length\" header: \"{}: {}\"",
            String::from_utf8_lossy(name),
            String::from_utf8_lossy(value)
        )),
    }
}

/// Digits only, at least one, and no overflow. nginx: `ngx_atoof()`.
fn parse_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |n, &b| {
        let d = b.checked_sub(b'0').filter(|d| *d <= 9)?;
        n.checked_mul(10)?.checked_add(u64::from(d))
    })
}

/// `chunked` is the only coding rginx decodes; anything else is refused.
/// nginx: `ngx_http_upstream_process_transfer_encoding()` (>= 1.23's check).
pub fn process_transfer_encoding(hi: &mut HeadersIn, _name: &[u8], value: &[u8]) -> Result<(), String> {
    if !value.eq_ignore_ascii_case(b"chunked") {
        let value = String::from_utf8_lossy(value);
        return Err(format!("upstream sent unknown \"Transfer-Encoding\": \"{value}\""));
    }
    hi.chunked = true;
    Ok(())
}

/// "close" anywhere in the value: the upstream closes after this response.
/// nginx: `ngx_http_upstream_process_connection()`.
pub fn process_connection(hi: &mut HeadersIn, _name: &[u8], value: &[u8]) -> Result<(), String> {
    // The first letter tested first: most windows of "keep-alive" stop there.
    if value.windows(5).any(|w| matches!(w, [c, ..] if c | 0x20 == b'c') && w.eq_ignore_ascii_case(b"close")) {
        hi.connection_close = true;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_is_case_insensitive_and_names_are_unique() {
        assert_eq!(find(b"content-length").map(|h| h.name), Some("Content-Length"));
        assert_eq!(find(b"SERVER").map(|h| h.copy), Some(CopyHeader::HeaderLine));
        assert!(find(b"X-Unknown").is_none());
        for near in ["Content-Typf", "Dat", "Dates", "Cache-Control", "Set-Cookie2", "", "\u{43}onnectio\u{4e}x"] {
            assert!(find(near.as_bytes()).is_none(), "{near:?}");
        }
        assert!(find(b"\x03ontent-Type").is_none(), "only letters fold: 0x03 | 0x20 is not 'c'");
        for folded_non_letter in [&b"Content\rType"[..], b"Content\rLength", b"Keep\rAlive", b"Transfer\rEncoding"] {
            assert!(find(folded_non_letter).is_none(), "'-' is 0x0d | 0x20: only letters fold");
        }
        assert_eq!(find(b"tRANSFER-eNCODINg").map(|h| h.name), Some("Transfer-Encoding"));
        for name in ["Location", "X-Other", "date"] {
            let by_kind =
                |k| index_by_kind(k, name.as_bytes()).and_then(|i| UPSTREAM_HEADERS_IN.get(i)).map(|h| h.name);
            assert_eq!(by_kind(kind_of(find_index(name.as_bytes()))), find(name.as_bytes()).map(|h| h.name));
            assert_eq!(by_kind(kind::UNKNOWN), find(name.as_bytes()).map(|h| h.name));
        }
        assert_eq!(UPSTREAM_HEADERS_IN[DATE].name, "Date");
        assert_eq!(UPSTREAM_HEADERS_IN[SERVER].name, "Server");
        for name in ["date", "SERVER", "X-Other", "Location"] {
            assert_eq!(index_by_kind(kind::UNKNOWN, name.as_bytes()), find_index(name.as_bytes()));
            assert_eq!(
                index_by_kind(kind_of(find_index(name.as_bytes())), name.as_bytes()),
                find_index(name.as_bytes())
            );
        }
        for (i, h) in UPSTREAM_HEADERS_IN.iter().enumerate() {
            let first = UPSTREAM_HEADERS_IN.iter().position(|o| o.name.eq_ignore_ascii_case(h.name));
            assert_eq!(first, Some(i), "{} listed twice", h.name);
            assert_eq!(find(h.name.to_ascii_uppercase().as_bytes()).map(|f| f.name), Some(h.name));
            assert_eq!(find(h.name.to_ascii_lowercase().as_bytes()).map(|f| f.name), Some(h.name));
        }
    }

    #[test]
    fn hide_headers_by_index_and_by_name() {
        let names = ["Date", "server", "X-Pad", "X-Accel-Expires"];
        let hide = HideHeaders::from(names.map(String::from).to_vec());
        for (name, hidden) in [
            ("Date", true),
            ("DATE", true),
            ("Server", true),
            ("x-pad", true),
            ("X-Accel-Expires", true),
            ("X-Accel-Expire", false),
            ("ETag", false),
            ("Content-Type", false),
            ("Location", false),
        ] {
            let n = name.as_bytes();
            assert_eq!(hide.hides(n, find_index(n)), hidden, "{name}");
            let slow = names.iter().any(|h| h.eq_ignore_ascii_case(name));
            assert_eq!(slow, hidden, "{name}: the plain comparison agrees");
        }
        assert!(!HideHeaders::default().hides(b"Date", find_index(b"Date")));
        let long = "X-".repeat(40);
        let hide = HideHeaders::from(vec![long.clone()]);
        assert!(hide.hides(long.as_bytes(), None));
        assert!(!hide.hides(&long.as_bytes()[1..], None));
    }

    #[test]
    fn content_length_rules() {
        let mut hi = HeadersIn::default();
        assert!(process_content_length(&mut hi, b"Content-Length", b"12").is_ok());
        assert_eq!(hi.content_length_n, Some(12));
        assert!(process_content_length(&mut hi, b"Content-Length", b"12").is_ok(), "same value again");
        let err = process_content_length(&mut hi, b"Content-Length", b"13").unwrap_err();
        assert_eq!(err, "upstream sent invalid \"Content-Length\" header: \"Content-Length: 13\"");
        for bad in ["", "-1", "+1", "1 2", "0x10", "99999999999999999999999"] {
            assert!(
                process_content_length(&mut HeadersIn::default(), b"Content-Length", bad.as_bytes()).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn transfer_encoding_and_connection() {
        let mut hi = HeadersIn::default();
        assert!(process_transfer_encoding(&mut hi, b"Transfer-Encoding", b"gzip").is_err());
        assert!(!hi.chunked);
        assert!(process_transfer_encoding(&mut hi, b"Transfer-Encoding", b"Chunked").is_ok());
        assert!(hi.chunked);
        assert!(process_connection(&mut hi, b"Connection", b"keep-alive").is_ok());
        assert!(!hi.connection_close);
        assert!(process_connection(&mut hi, b"Connection", b"Close").is_ok());
        assert!(hi.connection_close);
    }
}
