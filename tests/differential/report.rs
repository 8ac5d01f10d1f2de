//! The differential test's judge and report: what counts as "the same answer", which
//! differences are allowed, and the text the lead and the parser engineers read.
//!
//! nginx: the masks of ../shared/tools/nginx-compare (Date, Server, the error page's server
//! token).
//!
//! Differs from nginx: nothing; test code. Compared per request: the status codes in order
//! (an interim `100 Continue` included) or "an answer without a header" (HTTP/0.9), whether
//! the server closed, and the bytes each backend connection received. Bodies and headers are
//! not compared: they differ by the server token and the error page lengths, which the
//! contract allows.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::gen::Case;
use super::run::{find, Answer};

/// One way two answers can differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Aspect {
    /// The status codes (or a header-less answer, or none) differ.
    Status,
    /// One closed the connection, the other kept it open.
    Close,
    /// The backend got different bytes (or only one of them got any).
    Backend,
}

/// Every aspect, for an entry that allows a family to differ in any way.
#[allow(dead_code)]
pub const ANY: &[Aspect] = &[Aspect::Status, Aspect::Close, Aspect::Backend];

/// Why a difference is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// On purpose, for good; listed in docs/differences.md.
    Deliberate,
    /// A known bug being fixed; its entry goes when the fix lands (none today).
    #[allow(dead_code)]
    Pending,
}

/// An allowed difference: `aspects` of requests whose family is `family` (or starts with it,
/// when it ends in `/`).
pub struct Allow {
    pub family: &'static str,
    pub aspects: &'static [Aspect],
    pub kind: Kind,
    pub reason: &'static str,
}

impl Allow {
    fn covers(&self, family: &str, aspect: Aspect) -> bool {
        let fam = if self.family.ends_with('/') { family.starts_with(self.family) } else { family == self.family };
        fam && self.aspects.contains(&aspect)
    }
}

/// The statuses of `resp` in order (every status line at the start or after a line end) and
/// whether it began with something else than a status line (an HTTP/0.9 answer).
pub fn statuses(resp: &[u8]) -> (Vec<u16>, bool) {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(off) = find(&resp[i..], b"HTTP/1.") {
        let at = i + off;
        let line_start = at == 0 || resp[at - 1] == b'\n';
        let code = resp.get(at + 9..at + 12).and_then(|c| std::str::from_utf8(c).ok());
        if let (true, Some(Ok(n))) = (line_start, code.map(str::parse::<u16>)) {
            out.push(n);
        }
        i = at + 7;
    }
    let headerless = !resp.is_empty() && !resp.starts_with(b"HTTP/");
    (out, headerless)
}

/// How `n` (nginx) and `r` (rginx) differ; empty when they agree.
pub fn differ(n: &Answer, r: &Answer) -> Vec<Aspect> {
    let mut v = Vec::new();
    if statuses(&n.response) != statuses(&r.response) || n.refused != r.refused {
        v.push(Aspect::Status);
    }
    if n.closed != r.closed {
        v.push(Aspect::Close);
    }
    if n.backend != r.backend {
        v.push(Aspect::Backend);
    }
    v
}

/// Whether a slow server could explain difference `d`: a close that may have come late, or an
/// answer on one side only.
pub fn timing_could_explain(n: &Answer, r: &Answer, d: &[Aspect]) -> bool {
    d.contains(&Aspect::Close) || n.response.is_empty() != r.response.is_empty()
}

/// One request's result after the confirming re-runs.
pub struct Outcome<'a> {
    pub case: &'a Case,
    pub nginx: Answer,
    pub rginx: Answer,
    /// Empty: the same answer.
    pub aspects: Vec<Aspect>,
    /// The first pass differed, a re-run agreed: timing, not behaviour.
    pub unstable: bool,
}

impl Outcome<'_> {
    /// The aspects no allowlist entry covers.
    pub fn unexpected(&self, allowed: &[Allow]) -> Vec<Aspect> {
        let fam = self.case.family;
        self.aspects.iter().copied().filter(|&a| !allowed.iter().any(|e| e.covers(fam, a))).collect()
    }
}

/// Printable bytes: ASCII as is, `\r \n \t \\` escaped, the rest `\xNN`; cut after `max`.
pub fn escape(b: &[u8], max: usize) -> String {
    let mut s = String::new();
    for &c in b.iter().take(max) {
        match c {
            b'\r' => s += "\\r",
            b'\n' => s += "\\n",
            b'\t' => s += "\\t",
            b'\\' => s += "\\\\",
            0x20..=0x7e => s.push(c as char),
            _ => {
                let _ = write!(s, "\\x{c:02x}");
            }
        }
    }
    if b.len() > max {
        let _ = write!(s, "...(+{} bytes)", b.len() - max);
    }
    s
}

/// `Date:` and `Server:` values and the error pages' server token replaced, as nginx-compare
/// does, so that a reader sees only real differences.
pub fn mask(resp: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(resp.len());
    for line in resp.split_inclusive(|&b| b == b'\n') {
        let lower = line.to_ascii_lowercase();
        if lower.starts_with(b"date:") || lower.starts_with(b"server:") {
            let name = &line[..line.iter().position(|&b| b == b':').unwrap_or(0)];
            out.extend_from_slice(name);
            out.extend_from_slice(b": <masked>\r\n");
            continue;
        }
        let mut l = line.to_vec();
        for token in [&b"<center>nginx/"[..], b"<center>rginx/"] {
            let from = find(&l, token).map(|at| at + b"<center>".len());
            if let Some((from, len)) = from.and_then(|f| Some((f, find(&l[f..], b"</center>")?))) {
                l.splice(from..from + len, b"TOKEN".iter().copied());
            }
        }
        out.extend_from_slice(&l);
    }
    out
}

/// One side's answer on one line, then its bytes and its backend's.
fn describe(side: &str, a: &Answer) -> String {
    let (codes, headerless) = statuses(&a.response);
    let mut s = if a.refused {
        "connection refused".to_string()
    } else if a.response.is_empty() {
        "no response".to_string()
    } else if headerless {
        format!("answer without a header ({} bytes)", a.response.len())
    } else {
        codes.iter().map(u16::to_string).collect::<Vec<_>>().join(" then ")
    };
    s += if a.closed { ", closed" } else { ", left open" };
    let mut out = format!("    {side}: {s}\n");
    if !a.response.is_empty() {
        let _ = writeln!(out, "      response: \"{}\"", escape(&mask(&a.response), 240));
    }
    if a.backend.is_empty() {
        out += "      backend:  nothing\n";
    }
    for b in &a.backend {
        let _ = writeln!(out, "      backend:  \"{}\"", escape(b, 240));
    }
    out
}

/// One mismatch, for the report.
pub fn example(o: &Outcome) -> String {
    let what: Vec<String> = o.aspects.iter().map(|a| format!("{a:?}").to_lowercase()).collect();
    let mut s = format!("  [{}] differs in {}\n", o.case.family, what.join(", "));
    let _ = writeln!(s, "    request: \"{}\"", escape(&o.case.raw, 400));
    s += &describe("nginx", &o.nginx);
    s += &describe("rginx", &o.rginx);
    s
}

/// Counts per family: (requests, differing, per aspect, unexpected).
#[derive(Default)]
struct Counts {
    total: usize,
    differ: usize,
    status: usize,
    close: usize,
    backend: usize,
    unexpected: usize,
}

/// The whole report: summary, per-family table, then up to `examples` mismatches per family
/// (unexpected ones first).
pub fn render(head: &str, outcomes: &[Outcome], allowed: &[Allow], examples: usize) -> String {
    let mut fams: BTreeMap<&str, Counts> = BTreeMap::new();
    for o in outcomes {
        let c = fams.entry(o.case.family).or_default();
        c.total += 1;
        c.differ += usize::from(!o.aspects.is_empty());
        c.status += usize::from(o.aspects.contains(&Aspect::Status));
        c.close += usize::from(o.aspects.contains(&Aspect::Close));
        c.backend += usize::from(o.aspects.contains(&Aspect::Backend));
        c.unexpected += usize::from(!o.unexpected(allowed).is_empty());
    }
    let total = outcomes.len();
    let differ = outcomes.iter().filter(|o| !o.aspects.is_empty()).count();
    let unexpected = outcomes.iter().filter(|o| !o.unexpected(allowed).is_empty()).count();
    let unstable = outcomes.iter().filter(|o| o.unstable).count();
    let pct = |n: usize| if total == 0 { 0.0 } else { n as f64 * 100.0 / total as f64 };
    let mut s = head.to_string();
    let _ = writeln!(
        s,
        "requests: {total} in {} families; differing: {differ} ({:.1}%); not allowed: {unexpected} \
         ({:.1}%); unstable (differed once, agreed on re-run): {unstable}\n",
        fams.len(),
        pct(differ),
        pct(unexpected)
    );
    let _ = writeln!(
        s,
        "{:<24} {:>5} {:>6} {:>6} {:>5} {:>7} {:>10}",
        "family", "reqs", "differ", "status", "close", "backend", "NOTALLOWED"
    );
    for (f, c) in &fams {
        let _ = writeln!(
            s,
            "{f:<24} {:>5} {:>6} {:>6} {:>5} {:>7} {:>10}",
            c.total, c.differ, c.status, c.close, c.backend, c.unexpected
        );
    }
    s += "\nallowlist entries (tests/differential.rs ALLOWED):\n";
    for e in allowed {
        let used = outcomes.iter().any(|o| o.aspects.iter().any(|&a| e.covers(o.case.family, a)));
        let mark = if used { "" } else { "  <- matched nothing" };
        let _ = writeln!(s, "  {:<24} {:?} {:?}: {}{mark}", e.family, e.kind, e.aspects, e.reason);
    }
    for (f, c) in fams.iter().filter(|(_, c)| c.differ > 0) {
        let _ = writeln!(s, "\n== {f}: {} of {} differ, {} not allowed", c.differ, c.total, c.unexpected);
        let mut list: Vec<&Outcome> =
            outcomes.iter().filter(|o| o.case.family == *f && !o.aspects.is_empty()).collect();
        list.sort_by_key(|o| o.unexpected(allowed).is_empty());
        for o in list.iter().take(examples) {
            s += &example(o);
        }
    }
    s
}
