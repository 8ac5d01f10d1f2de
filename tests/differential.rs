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

use report::{Allow, Aspect, Kind, Outcome};
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

use Aspect::Status;
use Kind::Deliberate;

/// Every difference the test tolerates, in one place: each is a deliberate difference listed
/// in docs/differences.md with its reason. (`Pending` entries, for bugs being fixed, were
/// used while issue 11 was in flight; the report marks entries that matched nothing.)
const ALLOWED: &[Allow] = &[allow(
    "split/uri",
    &[Status],
    Deliberate,
    "a header value with CR, LF or NUL is escaped (docs/differences.md); nginx splits the response",
)];

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
        fds_after.1 == fds.1,
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
