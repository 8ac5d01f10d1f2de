//! The command line, as nginx's: `-t`/`-T`/`-q`, `-v`/`-V`/`-h`, `-c`, `-p`, `-g`, `-s`, and
//! the one-line `[emerg]` errors with file:line (nginx-tests has no .t for these; the expected
//! text is nginx 1.22's, with "rginx" for "nginx").

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{is_nginx, run_cli, Conn, Rginx, TIMEOUT};

/// "rginx", or "nginx" when the suite runs against nginx.
fn name() -> &'static str {
    if is_nginx() {
        "nginx"
    } else {
        "rginx"
    }
}

/// A prefix dir with `conf/NAME` holding `text`; removed on drop.
struct Prefix(PathBuf);

impl Prefix {
    fn new() -> Prefix {
        Prefix(common::temp_prefix())
    }
    fn write(&self, rel: &str, text: &str) -> String {
        let p = self.0.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, text).unwrap();
        p.display().to_string()
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Prefix {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Runs the binary with stderr as its early error log (so that nginx, whose default error log
/// is a system path, behaves like rginx).
fn cli(args: &[&str], cwd: &Path) -> (Option<i32>, String, String) {
    let mut all = vec!["-e", "stderr"];
    all.extend_from_slice(args);
    run_cli(&all, cwd)
}

/// The `[emerg]` line: `rginx: [emerg] MSG` (nginx with `-e stderr` adds a timestamp and pid
/// instead of its name; only the message is compared then).
fn assert_emerg(stderr: &str, msg: &str) {
    let line = stderr.lines().find(|l| l.contains("[emerg]"));
    let line = line.unwrap_or_else(|| panic!("no [emerg] line in {stderr:?}"));
    if is_nginx() {
        assert!(line.ends_with(&format!(": {msg}")), "{line}");
    } else {
        assert_eq!(line, format!("rginx: [emerg] {msg}"));
    }
    let emergs = stderr.lines().filter(|l| l.contains("[emerg]")).count();
    assert_eq!(emergs, 1, "{stderr}");
}

const OK_CONF: &str = "events {}\nhttp {\n    include servers/*.conf;\n}\n";
const SERVER: &str = "server { listen 127.0.0.1:1; location / { return 200 ok; } }\n";

#[test]
fn test_flag_ok() {
    let p = Prefix::new();
    let conf = p.write("conf/ok.conf", OK_CONF);
    p.write("conf/servers/a.conf", SERVER);
    let (code, out, err) = cli(&["-t", "-c", &conf], p.path());
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "");
    let n = name();
    assert_eq!(
        err,
        format!(
            "{n}: the configuration file {conf} syntax is ok\n\
             {n}: configuration file {conf} test is successful\n"
        )
    );
    // -q: nothing but errors.
    let (code, _, err) = cli(&["-t", "-q", "-c", &conf], p.path());
    assert_eq!((code, err.as_str()), (Some(0), ""));
    // -p: a relative -c is found under the prefix.
    let prefix = format!("{}/", p.path().display());
    let (code, _, err) = cli(&["-t", "-p", &prefix, "-c", "conf/ok.conf"], Path::new("/"));
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains(&format!("file {conf} syntax is ok")), "{err}");
}

#[test]
fn dump_flag() {
    let p = Prefix::new();
    let conf = p.write("conf/ok.conf", OK_CONF);
    let inc = p.write("conf/servers/a.conf", SERVER);
    let (code, out, err) = cli(&["-T", "-c", &conf], p.path());
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("test is successful"), "{err}");
    assert_eq!(out, format!("# configuration file {conf}:\n{OK_CONF}\n# configuration file {inc}:\n{SERVER}\n"));
}

#[test]
fn config_errors_name_file_and_line() {
    let p = Prefix::new();
    let n = name();
    let cases: &[(&str, &str, String)] = &[
        ("unknown.conf", "events {}\n\nfoo bar;\n", "unknown directive \"foo\" in {}:3".into()),
        ("context.conf", "events {}\nreturn 200;\n", "\"return\" directive is not allowed here in {}:2".into()),
        (
            "context2.conf",
            "events {}\nhttp {\n  worker_processes 2;\n}\n",
            "\"worker_processes\" directive is not allowed here in {}:3".into(),
        ),
        (
            "args.conf",
            "events {}\nhttp { keepalive_timeout; }\n",
            "invalid number of arguments in \"keepalive_timeout\" directive in {}:2".into(),
        ),
        ("eof.conf", "events {}\nhttp {\n", "unexpected end of file, expecting \"}\" in {}:3".into()),
        (
            "semicolon.conf",
            "events {}\nhttp { server { location / { return 200 x } } }\n",
            "unexpected \"}\" in {}:2".into(),
        ),
        ("brace.conf", "events {}\nhttp {}\n}\n", "unexpected \"}\" in {}:3".into()),
        (
            "value.conf",
            "events {}\nhttp {\n    keepalive_timeout abc;\n}\n",
            "\"keepalive_timeout\" directive invalid value in {}:3".into(),
        ),
        ("noevents.conf", "http {}\n", "no \"events\" section in configuration".into()),
        (
            "listenport.conf",
            "events {}\nhttp {\n    server { listen localhost:abc; }\n}\n",
            "invalid port in \"localhost:abc\" of the \"listen\" directive in {}:3".into(),
        ),
    ];
    for (file, text, msg) in cases {
        let conf = p.write(&format!("conf/{file}"), text);
        let msg = msg.replace("{}", &conf);
        let (code, _, err) = cli(&["-t", "-c", &conf], p.path());
        assert_eq!(code, Some(1), "{file}: {err}");
        assert_emerg(&err, &msg);
        assert!(err.ends_with(&format!("{n}: configuration file {conf} test failed\n")), "{err}");
        // Without -t: the same line, exit 1, no verdict.
        let (code, _, err) = cli(&["-c", &conf], p.path());
        assert_eq!(code, Some(1), "{file}: {err}");
        assert_emerg(&err, &msg);
        assert!(!err.contains("test failed"), "{err}");
    }
    // An error in an included file names that file.
    let conf = p.write("conf/inc.conf", OK_CONF);
    let inc = p.write("conf/servers/bad.conf", "\n\nserver { lisen 1; }\n");
    let (code, _, err) = cli(&["-t", "-c", &conf], p.path());
    assert_eq!(code, Some(1));
    assert_emerg(&err, &format!("unknown directive \"lisen\" in {inc}:3"));
    // A missing file.
    let missing = format!("{}/conf/missing.conf", p.path().display());
    let (code, _, err) = cli(&["-t", "-c", &missing], p.path());
    assert_eq!(code, Some(1));
    assert_emerg(&err, &format!("open() \"{missing}\" failed (2: No such file or directory)"));
}

#[test]
fn globals_flag() {
    let p = Prefix::new();
    let conf = p.write("conf/ok.conf", OK_CONF);
    p.write("conf/servers/a.conf", SERVER);
    let (code, _, err) = cli(&["-t", "-g", "worker_processes 2;", "-c", &conf], p.path());
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = cli(&["-t", "-g", "daemon", "-c", &conf], p.path());
    assert_eq!(code, Some(1));
    assert_emerg(&err, "unexpected end of parameter, expecting \";\" in command line");
    let (code, _, err) = cli(&["-t", "-g", "nosuch on;", "-c", &conf], p.path());
    assert_eq!(code, Some(1));
    assert_emerg(&err, "unknown directive \"nosuch\" in command line");
    let dup = p.write("conf/dup.conf", "worker_processes 1;\nevents {}\n");
    let (code, _, err) = cli(&["-t", "-g", "worker_processes 2;", "-c", &dup], p.path());
    assert_eq!(code, Some(1));
    // -g is read first: the file's directive is the duplicate.
    assert_emerg(&err, &format!("\"worker_processes\" directive is duplicate in {dup}:1"));
}

#[test]
fn version_and_help() {
    let dir = std::env::temp_dir();
    let n = name();
    let token = common::server_token();
    let (code, out, err) = run_cli(&["-v"], &dir);
    assert_eq!((code, out.as_str()), (Some(0), ""));
    assert_eq!(err, format!("{n} version: {token}\n"));
    let (code, _, err) = run_cli(&["-V"], &dir);
    assert_eq!(code, Some(0));
    assert!(err.starts_with(&format!("{n} version: {token}\n")), "{err}");
    assert!(err.contains("configure arguments:"), "{err}");
    for flag in ["-h", "-?"] {
        let (code, _, err) = run_cli(&[flag], &dir);
        assert_eq!(code, Some(0));
        assert!(
            err.starts_with(&format!("{n} version: {token}\nUsage: {n} [-?hvVtTq] [-s signal] [-p prefix]\n")),
            "{err}"
        );
        for opt in ["-t ", "-T ", "-s signal", "-p prefix", "-c filename", "-g directives", "-e filename"] {
            assert!(err.contains(opt), "{opt}: {err}");
        }
    }
}

#[test]
fn bad_options() {
    let dir = std::env::temp_dir();
    let n = name();
    for (args, msg) in [
        (&["-x"][..], "invalid option: \"x\""),
        (&["-s"][..], "option \"-s\" requires parameter"),
        (&["-s", "foo"][..], "invalid option: \"-s foo\""),
        (&["-c"][..], "option \"-c\" requires file name"),
        (&["-p"][..], "option \"-p\" requires directory name"),
        (&["-g"][..], "option \"-g\" requires parameter"),
        (&["notanoption"][..], "invalid option: \"notanoption\""),
    ] {
        let (code, _, err) = run_cli(args, &dir);
        assert_eq!(code, Some(1), "{args:?}");
        assert_eq!(err.lines().next().unwrap_or(""), format!("{n}: {msg}"), "{args:?}");
    }
}

/// `-p`: relative paths of the configuration resolve against the prefix, not the cwd (the
/// harness runs the binary in the crate's directory).
#[test]
fn prefix_flag() {
    let conf = "
daemon off;
master_process off;
events {}
http {
    access_log logs/relative.log;
    server { listen 127.0.0.1:%%PORT%%; location / { return 200 prefixed; } }
}
";
    let r = Rginx::start(conf, &[]);
    assert!(common::http_get(r.port, "/").ends_with("prefixed"));
    assert!(r.wait_log("relative.log", "\"GET / HTTP/1.0\" 200", TIMEOUT));
}

/// Starting fails cleanly when the port is taken: one `[emerg]` line, exit 1, no pid file.
#[test]
fn bind_failure() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let conf = format!("%%TEST_GLOBALS%%\nevents {{}}\nhttp {{ server {{ listen 127.0.0.1:{port}; }} }}\n");
    let Err((out, code)) = Rginx::try_start(&conf, &[]) else {
        panic!("started on a taken port");
    };
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("[emerg]")
            && out.contains(&format!("bind() to 127.0.0.1:{port} failed (98: Address already in use)")),
        "{out}"
    );
}

/// With a master process (nginx reloads only then); the harness adds `-g "pid ...;"`.
const RUNNING: &str = "
daemon off;
master_process on;
events {}
http {
    access_log %%PREFIX%%/logs/access.log;
    server { listen 127.0.0.1:%%PORT%%; location / { return 200 \"first\"; } }
}
";

fn signal_cli(r: &Rginx, sig: &str) -> (Option<i32>, String) {
    let prefix = format!("{}/", r.prefix.display());
    let conf = format!("{prefix}conf/rginx.conf");
    let pid = format!("pid {prefix}logs/rginx.pid;");
    let (code, _, err) = cli(&["-p", &prefix, "-c", &conf, "-g", &pid, "-s", sig], &r.prefix);
    (code, err)
}

/// Polls `f` every 10 ms for up to 10 s.
fn wait_until(mut f: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + TIMEOUT;
    while std::time::Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

fn body(port: u16) -> String {
    let mut c = Conn::new(port);
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    c.read_response(false).body_str()
}

#[test]
fn signal_flag_reload_and_reopen() {
    let r = Rginx::start(RUNNING, &[]);
    assert_eq!(body(r.port), "first");
    r.rewrite_conf(&RUNNING.replace("\"first\"", "\"second\""));
    let (code, err) = signal_cli(&r, "reload");
    assert_eq!(code, Some(0), "{err}");
    let mut last = String::new();
    for _ in 0..200 {
        last = body(r.port);
        if last == "second" {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    assert_eq!(last, "second");

    let log = r.prefix.join("logs/access.log");
    assert!(r.wait_log("access.log", "GET /", TIMEOUT));
    fs::rename(&log, r.prefix.join("logs/access.log.1")).unwrap();
    let (code, err) = signal_cli(&r, "reopen");
    assert_eq!(code, Some(0), "{err}");
    // The file is created again by the reopen itself, not by the next request.
    assert!(wait_until(|| log.exists()), "access.log not created by the reopen");
    // The worker reopens a moment after the signal (nginx's master creates the file before
    // its workers reopen): ask until a request lands in the new file.
    assert!(wait_until(|| {
        let mut c = Conn::new(r.port);
        c.send(b"GET /after-reopen HTTP/1.1\r\nHost: x\r\n\r\n");
        c.read_response(false);
        r.access_log().contains("/after-reopen")
    }));
    r.assert_no_alerts();
}

#[test]
fn signal_flag_quit_and_stop() {
    for (sig, what) in [("quit", "gracefully"), ("stop", "exiting")] {
        let mut r = Rginx::start(RUNNING, &[]);
        assert_eq!(body(r.port), "first");
        let (code, err) = signal_cli(&r, sig);
        assert_eq!(code, Some(0), "{err}");
        let status = r.wait_exit(TIMEOUT).unwrap_or_else(|| panic!("-s {sig}: still running"));
        assert!(status.success(), "-s {sig}: {status:?}");
        assert!(!r.prefix.join("logs/rginx.pid").exists(), "-s {sig}: pid file left");
        if !is_nginx() {
            assert!(r.error_log().contains(what), "{}", r.error_log());
        }
    }
}

#[test]
fn signal_flag_without_instance() {
    let p = Prefix::new();
    let pid = format!("{}/logs/none.pid", p.path().display());
    let conf = p.write("conf/x.conf", &format!("pid {pid};\nevents {{}}\n"));
    let (code, _, err) = cli(&["-c", &conf, "-s", "reload"], p.path());
    assert_eq!(code, Some(1));
    assert!(err.contains("[error]"), "{err}");
    assert!(err.contains(&format!("open() \"{pid}\" failed (2: No such file or directory)")), "{err}");
}

/// `-s` with a pid file that does not hold a pid > 0: nginx's `invalid PID number "..." in
/// "FILE"`, exit 1, and no signal sent. nginx 1.22 takes "0" (its `ngx_atoi` accepts it) and
/// signals its own process group; rginx refuses it too (docs/differences.md). Each run is the
/// only process of a new pid namespace (so a `kill(-1)` could hit nothing else) and of a new
/// process group (so a `kill(0)` hits only the run itself, never the test harness).
#[test]
fn signal_flag_refuses_pid_not_above_zero() {
    if !common::limits::can_isolate() {
        eprintln!("skipped: no user/pid namespaces here (unshare), and kill(-1) is not safe to risk");
        return;
    }
    let p = Prefix::new();
    let pid = format!("{}/logs/bad.pid", p.path().display());
    let conf = p.write("conf/x.conf", &format!("pid {pid};\nevents {{}}\n"));
    for (content, shown) in [("0\n", "0"), ("-1\n", "-1"), ("abc\n", "abc"), ("", ""), ("\n", ""), ("12abc", "12abc")] {
        fs::write(&pid, content).unwrap();
        let args = ["-e", "stderr", "-c", &conf, "-s", "quit"];
        let (code, err) = common::limits::run_cli_isolated(&args, p.path()).unwrap();
        if is_nginx() && content == "0\n" {
            // nginx sent SIGQUIT to its process group: the group made for this run, whose
            // leader (`unshare`) died of it.
            assert_eq!(code, None, "{err}");
            continue;
        }
        assert_eq!(code, Some(1), "pid file {content:?}: {err}");
        let line = err.lines().find(|l| l.contains("[error]")).unwrap_or_else(|| panic!("{content:?}: {err}"));
        assert!(line.ends_with(&format!("invalid PID number \"{shown}\" in \"{pid}\"")), "{line}");
    }
}
