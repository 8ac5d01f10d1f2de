//! Configuration reader: turns nginx.conf text into a tree of [`Directive`]s, expanding
//! `include` on the way, with nginx's tokenizer rules and nginx's error messages.
//!
//! The tokenizer reads one byte at a time through the same states as nginx's (between words,
//! in a comment, in a bare / `"` / `'` word, just after a closing quote) and stops at each `;`,
//! `{` or `}`. Callers (the directive tables) get one tree and never open a file themselves.
//!
//! nginx: src/core/ngx_conf_file.c (`ngx_conf_read_token`, `ngx_conf_parse`,
//! `ngx_conf_include`, `ngx_conf_param`)
//!
//! Differs from nginx:
//! - nginx runs each directive's handler as soon as its `;` or `{` is read; rginx reads the
//!   whole tree first and the caller checks names and arguments afterwards. A syntax error
//!   anywhere is therefore reported before an unknown directive that precedes it.
//! - Blocks are collected with an explicit stack, not by recursion through block handlers.
//! - An `include` loop, or includes nested more than 32 deep, is an error; nginx recurses
//!   until it runs out of file descriptors.
//! - Files are read whole, not through a 4096-byte buffer, but the buffer's limit is kept: a
//!   word that would overflow it is "too long parameter", as in nginx.
//! - Text is UTF-8: invalid bytes in a file become U+FFFD; `unexpected "X"` names a whole
//!   character where nginx prints one byte.
//! - Globs are matched here (`*`, `?`, `[...]`, `\`, hidden files need an explicit `.`, results
//!   sorted bytewise) instead of by glob(3), which nginx calls with the same flags (none).
//! - Files included from the `-g` text are parsed but not listed for the `-T` dump.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::token::{Token, Tokenizer};

/// nginx: `NGX_CONF_BUFFER`, the read buffer; a word must fit in it.
pub(super) const CONF_BUFFER: usize = 4096;

/// How many files deep `include` may nest below the `-c` file (nginx has no limit).
const MAX_INCLUDE_DEPTH: usize = 32;

/// The file name nginx prints for the `-g` text (`... in command line`).
const COMMAND_LINE: &str = "command line";

/// One directive as written: `name arg1 arg2;` or `name args { block }`.
///
/// nginx: one `cf->args` array as `ngx_conf_handler()` sees it, plus the position that
/// `ngx_conf_log_error()` would print.
#[derive(Debug, Clone)]
pub struct Directive {
    /// The first word; whether it names a known directive is the caller's business.
    pub name: String,
    /// The other words, unquoted, escapes resolved, `$variables` kept verbatim.
    pub args: Vec<String>,
    /// `Some` when the directive ended with `{` (possibly empty), `None` when it ended with `;`.
    pub block: Option<Vec<Directive>>,
    /// The file it came from, as messages print it (the path as opened, or "command line").
    pub file: Arc<str>,
    /// The line of the `;` or `{` that ends the directive: nginx's `cf->conf_file->line` when
    /// the handler runs, so errors about the directive point where nginx points. 0 for `-g`.
    pub line: usize,
}

/// A configuration error in nginx's shape.
///
/// `Display` gives `MSG in FILE:LINE`, `MSG in FILE` when `line` is 0 (the `-g` text: nginx
/// prints `... in command line`), or just `MSG` when there is no file (e.g. the `-c` file
/// itself cannot be opened).
///
/// nginx: `ngx_conf_log_error()` (src/core/ngx_conf_file.c)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfError {
    /// The message proper, verbatim from nginx where nginx has one.
    pub msg: String,
    /// The file being read when the error was found, as printed.
    pub file: Option<String>,
    /// The line in `file`; 0 when there is none to print.
    pub line: usize,
}

impl ConfError {
    /// An error at `file:line`.
    pub fn new(msg: impl Into<String>, file: &str, line: usize) -> Self {
        ConfError { msg: msg.into(), file: Some(file.to_string()), line }
    }

    /// An error about directive `d`, reported where nginx reports it (the line of its `;`/`{`).
    pub fn at(msg: impl Into<String>, d: &Directive) -> Self {
        ConfError::new(msg, &d.file, d.line)
    }

    /// An error with no position (nginx: logged with `cf->conf_file == NULL`).
    fn bare(msg: String) -> Self {
        ConfError { msg, file: None, line: 0 }
    }
}

impl std::fmt::Display for ConfError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.file {
            None => write!(f, "{}", self.msg),
            Some(file) if self.line == 0 => write!(f, "{} in {}", self.msg, file),
            Some(file) => write!(f, "{} in {}:{}", self.msg, file, self.line),
        }
    }
}

impl std::error::Error for ConfError {}

/// Everything read: the directive tree plus every file's text, in read order, for `-T`.
///
/// nginx: the tree has no counterpart (handlers run while reading); `files` is
/// `cycle->config_dump`, one entry per distinct file name.
#[derive(Debug)]
pub struct ParsedConf {
    /// The top-level directives of the `-c` file, includes expanded in place.
    pub directives: Vec<Directive>,
    /// `(path as opened, text)` for the `-c` file and every included file, each once.
    pub files: Vec<(PathBuf, String)>,
}

/// Reads `path` (the `-c` file) and every file it includes.
///
/// `conf_prefix` is the directory relative `include` paths resolve against (nginx:
/// `cycle->conf_prefix`, the directory of the `-c` file). `include FILE|GLOB` is expanded in
/// place at any block level, recursively; a glob matching nothing is fine, a missing plain
/// file is `open() "PATH" failed (2: No such file or directory) in FILE:LINE`.
///
/// # Returns
/// The tree and the files read, or the first error, already in nginx's words.
///
/// nginx: `ngx_conf_parse(cf, &cycle->conf_file)` as called by `ngx_init_cycle()`
pub fn parse_file(path: &Path, conf_prefix: &Path) -> Result<ParsedConf, ConfError> {
    let mut reader = Reader::new(conf_prefix);
    let directives = reader.parse_file(path, None)?;
    Ok(ParsedConf { directives, files: reader.files })
}

/// Parses text that is not in a file.
///
/// With `file == "command line"` this is nginx's `-g` text (`-g "daemon off;"`): blocks are
/// refused ("block directives are not supported in -g option"), a missing `;` is "unexpected
/// end of parameter", and errors print `... in command line` (directive lines are 0). Any
/// other `file` is parsed as if it were a file of that name (lines from 1, blocks allowed),
/// which is what tests with inline configurations want. `include` works in both.
///
/// nginx: `ngx_conf_param()` (src/core/ngx_conf_file.c)
pub fn parse_str(text: &str, file: &str, conf_prefix: &Path) -> Result<Vec<Directive>, ConfError> {
    Reader::new(conf_prefix).parse_text(text, Arc::from(file), file == COMMAND_LINE)
}

/// One configuration read: the files seen so far and the include chain being followed.
///
/// nginx: the parts of `ngx_conf_t` / `ngx_cycle_t` that reading touches
struct Reader<'a> {
    /// nginx: `cycle->conf_prefix`
    conf_prefix: &'a Path,
    /// Every file opened, once each, in order (nginx: `cycle->config_dump`).
    files: Vec<(PathBuf, String)>,
    /// Canonical paths of the files being read, outermost first: a repeat is a loop.
    chain: Vec<PathBuf>,
}

impl<'a> Reader<'a> {
    fn new(conf_prefix: &'a Path) -> Self {
        Reader { conf_prefix, files: Vec::new(), chain: Vec::new() }
    }

    /// Opens, records and parses one file. `from` is the `include` that names it (`None` for
    /// the `-c` file); open errors are reported at it, as nginx reports them.
    ///
    /// nginx: `ngx_conf_parse(cf, filename)`, the `filename != NULL` case
    fn parse_file(&mut self, path: &Path, from: Option<&Directive>) -> Result<Vec<Directive>, ConfError> {
        let name = path.display().to_string();
        let at = |msg: String| match from {
            Some(d) => ConfError::at(msg, d),
            None => ConfError::bare(msg),
        };
        let mut file = fs::File::open(path).map_err(|e| at(format!("open() \"{name}\" failed {}", os_error(&e))))?;
        let mut bytes = Vec::new();
        // nginx logs a failed read without a position (ngx_read_file, not ngx_conf_log_error)
        file.read_to_end(&mut bytes)
            .map_err(|e| ConfError::bare(format!("pread() \"{name}\" failed {}", os_error(&e))))?;
        let text = String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());

        let real = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        if self.chain.contains(&real) {
            return Err(at(format!("include loop: \"{name}\" is already being read")));
        }
        if self.chain.len() > MAX_INCLUDE_DEPTH {
            return Err(at(format!("too deep includes (more than {MAX_INCLUDE_DEPTH})")));
        }
        if !self.files.iter().any(|(p, _)| p == path) {
            self.files.push((path.to_path_buf(), text.clone()));
        }
        self.chain.push(real);
        let tree = self.parse_text(&text, Arc::from(name), false);
        self.chain.pop();
        tree
    }

    /// Reads statements until the end of the text, nesting blocks, expanding includes.
    /// Blocks never span files: a file ends with all its blocks closed, as in nginx.
    ///
    /// nginx: the `for ( ;; )` loop of `ngx_conf_parse()` (the parse_file / parse_param types;
    /// parse_block is the `open` stack here)
    fn parse_text(&mut self, text: &str, file: Arc<str>, param: bool) -> Result<Vec<Directive>, ConfError> {
        let mut tok = Tokenizer::new(text, file, param);
        let mut top = Vec::new();
        // the blocks opened and not yet closed: the directive and its contents so far
        let mut open: Vec<(Directive, Vec<Directive>)> = Vec::new();
        loop {
            match tok.read_token()? {
                Token::FileDone if open.is_empty() => return Ok(top),
                Token::FileDone => return Err(tok.error("unexpected end of file, expecting \"}\"")),
                Token::BlockDone => {
                    let Some((mut d, items)) = open.pop() else {
                        return Err(tok.error("unexpected \"}\""));
                    };
                    d.block = Some(items);
                    level(&mut open, &mut top).push(d);
                }
                Token::Stmt(args) => {
                    let d = tok.directive(args);
                    let out = level(&mut open, &mut top);
                    if d.name == "include" {
                        self.include(&d, out)?;
                    } else {
                        out.push(d);
                    }
                }
                Token::BlockStart(args) => {
                    if param {
                        return Err(tok.error("block directives are not supported in -g option"));
                    }
                    let d = tok.directive(args);
                    if d.name == "include" {
                        return Err(ConfError::at("directive \"include\" is not terminated by \";\"", &d));
                    }
                    open.push((d, Vec::new()));
                }
            }
        }
    }

    /// Expands `include FILE|GLOB;` into `out`. A relative name is taken from the conf
    /// prefix; a name with `*`, `?` or `[` is a glob, and a glob may match nothing.
    ///
    /// nginx: `ngx_conf_include()` with `ngx_conf_full_name(cycle, name, 1)`
    fn include(&mut self, d: &Directive, out: &mut Vec<Directive>) -> Result<(), ConfError> {
        if d.args.len() != 1 {
            return Err(ConfError::at("invalid number of arguments in \"include\" directive", d));
        }
        let full = self.conf_prefix.join(&d.args[0]);
        let pattern = full.to_string_lossy().into_owned();
        if !pattern.contains(['*', '?', '[']) {
            out.extend(self.parse_file(&full, Some(d))?);
            return Ok(());
        }
        for name in glob(&pattern) {
            out.extend(self.parse_file(Path::new(&name), Some(d))?);
        }
        Ok(())
    }
}

/// The list new directives go to: the innermost open block, or the top level.
fn level<'v>(open: &'v mut [(Directive, Vec<Directive>)], top: &'v mut Vec<Directive>) -> &'v mut Vec<Directive> {
    match open.last_mut() {
        Some((_, items)) => items,
        None => top,
    }
}

/// nginx's `(ERRNO: strerror)` suffix, e.g. `(2: No such file or directory)`.
///
/// nginx: `ngx_log_errno()` (src/core/ngx_log.c)
fn os_error(e: &io::Error) -> String {
    let text = e.to_string();
    match e.raw_os_error() {
        Some(code) => {
            // std prints "DESCRIPTION (os error N)"; nginx prints "(N: DESCRIPTION)"
            let desc = text.strip_suffix(&format!(" (os error {code})")).unwrap_or(&text);
            format!("({code}: {desc})")
        }
        None => format!("({text})"),
    }
}

/// The existing paths matching `pattern`, sorted bytewise; wildcards may appear in any
/// component. Unreadable directories simply match nothing.
///
/// nginx: `ngx_open_glob()` / `ngx_read_glob()` (src/os/unix/ngx_files.c), i.e. glob(3)
/// with no flags, in the C locale
fn glob(pattern: &str) -> Vec<String> {
    let mut found = vec![if pattern.starts_with('/') { "/".to_string() } else { String::new() }];
    for comp in pattern.split('/').filter(|c| !c.is_empty()) {
        let mut next = Vec::new();
        for base in &found {
            if !comp.contains(['*', '?', '[']) {
                next.push(join(base, comp));
                continue;
            }
            let Ok(dir) = fs::read_dir(if base.is_empty() { "." } else { base }) else {
                continue;
            };
            for entry in dir.flatten() {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if fnmatch(comp.as_bytes(), name.as_bytes()) {
                    next.push(join(base, &name));
                }
            }
        }
        found = next;
    }
    found.retain(|p| !p.is_empty() && fs::symlink_metadata(p).is_ok());
    found.sort();
    found
}

/// `base/name` without doubling the root's `/`.
fn join(base: &str, name: &str) -> String {
    if base.is_empty() || base.ends_with('/') {
        format!("{base}{name}")
    } else {
        format!("{base}/{name}")
    }
}

/// Matches one path component against a glob component: `*`, `?`, `[abc]`, `[a-z]`,
/// `[!x]`/`[^x]`, `\x`; a leading `.` in `name` must be matched by a literal `.`.
///
/// nginx: none (glob(3)'s fnmatch rules)
fn fnmatch(pat: &[u8], name: &[u8]) -> bool {
    if name.first() == Some(&b'.') && pat.first() != Some(&b'.') {
        return false;
    }
    let (mut p, mut n) = (0, 0);
    // where to resume after the last `*`: (pattern after it, name position it has eaten to)
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if pat.get(p) == Some(&b'*') {
            p += 1;
            star = Some((p, n));
            continue;
        }
        if let Some(len) = match_one(&pat[p.min(pat.len())..], name[n]) {
            p += len;
            n += 1;
            continue;
        }
        // here: mismatch; let the last `*` eat one more byte, or fail
        let Some((sp, sn)) = star else { return false };
        star = Some((sp, sn + 1));
        p = sp;
        n = sn + 1;
    }
    pat[p.min(pat.len())..].iter().all(|&c| c == b'*')
}

/// Whether the pattern element at the start of `pat` (not `*`) matches byte `c`; returns its
/// length in `pat`.
fn match_one(pat: &[u8], c: u8) -> Option<usize> {
    match *pat.first()? {
        b'?' => Some(1),
        b'\\' if pat.len() > 1 => (pat[1] == c).then_some(2),
        b'[' => match bracket(pat, c) {
            Some((true, len)) => Some(len),
            Some((false, _)) => None,
            None => (c == b'[').then_some(1), // no closing `]`: a literal `[`
        },
        lit => (lit == c).then_some(1),
    }
}

/// A `[...]` set at the start of `pat`: `(matches c, length)`, or `None` if it is unclosed.
fn bracket(pat: &[u8], c: u8) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(pat.get(i), Some(b'!' | b'^'));
    if negate {
        i += 1;
    }
    let mut hit = false;
    let mut first = true;
    loop {
        let lo = *pat.get(i)?;
        if lo == b']' && !first {
            return Some((hit != negate, i + 1));
        }
        first = false;
        if pat.get(i + 1) == Some(&b'-') && pat.get(i + 2).is_some_and(|&hi| hi != b']') {
            hit |= (lo..=pat[i + 2]).contains(&c);
            i += 3;
        } else {
            hit |= lo == c;
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Directive>, ConfError> {
        parse_str(text, "t.conf", Path::new("/nonexistent"))
    }

    fn args(text: &str) -> Vec<String> {
        let d = parse(text).unwrap();
        assert_eq!(d.len(), 1, "{text:?}");
        d[0].args.clone()
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    /// A scratch directory under temp_dir, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("rginx-conf-{}-{tag}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn write(&self, name: &str, text: &str) -> PathBuf {
            let path = self.0.join(name);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, text).unwrap();
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn plain_directives() {
        let d = parse("worker_processes 2;\ndaemon off;\n\nevents{}").unwrap();
        assert_eq!(d.len(), 3);
        assert_eq!((d[0].name.as_str(), d[0].args.clone()), ("worker_processes", vec!["2".to_string()]));
        assert!(d[0].block.is_none());
        assert_eq!(d[1].name, "daemon");
        assert_eq!(d[2].name, "events");
        assert_eq!(d[2].block.as_ref().unwrap().len(), 0);
        assert_eq!(args("a\tb\r\nc  d;"), ["b", "c", "d"]);
        assert_eq!(parse("x a;b;").unwrap().len(), 2);
        assert_eq!(parse("").unwrap().len(), 0);
        assert_eq!(parse("  \n# only a comment").unwrap().len(), 0);
    }

    #[test]
    fn quoting() {
        assert_eq!(args(r#"x "a b" 'c d';"#), ["a b", "c d"]);
        assert_eq!(args(r#"x "" '';"#), ["", ""]);
        assert_eq!(args(r#"x "it's" 'say "hi"';"#), ["it's", r#"say "hi""#]);
        assert_eq!(args("x \"a;b{c}#d\";"), ["a;b{c}#d"]);
        assert_eq!(args("x \"multi\nline\";"), ["multi\nline"]);
        assert_eq!(args(r#"x "a";"#), ["a"]);
        assert_eq!(args(r#"x a"b"c;"#), [r#"a"b"c"#]); // a quote inside a bare word is a byte
        let d = parse(r#"location "/a b"{ }"#).unwrap();
        assert_eq!(d[0].args, ["/a b"]);
        assert!(d[0].block.is_some());
    }

    #[test]
    fn escapes() {
        assert_eq!(args(r#"x "a\"b" 'c\'d' "e\\f";"#), [r#"a"b"#, "c'd", r"e\f"]);
        assert_eq!(args(r#"x "\t\r\n";"#), ["\t\r\n"]);
        assert_eq!(args(r"x a\tb;"), ["a\tb"]);
        // unknown escapes keep their backslash; the escaped byte never ends a word
        assert_eq!(args(r"x a\;b a\ b \$x;"), [r"a\;b", r"a\ b", r"\$x"]);
        assert_eq!(args(r#"x \"quoted\";"#), [r#""quoted""#]);
        assert_eq!(args("x é\\nü;"), ["é\nü"]);
    }

    #[test]
    fn variables_are_verbatim() {
        assert_eq!(args("return 200 $host${uri}x;"), ["200", "$host${uri}x"]);
        assert_eq!(args("set ${a}${b}c;"), ["${a}${b}c"]);
        assert_eq!(args(r#"x "${a} $b";"#), ["${a} $b"]);
        let d = parse("if ($a = \"b\") { return 403; }").unwrap();
        assert_eq!(d[0].args, ["($a", "=", "b", ")"]);
        assert_eq!(d[0].block.as_ref().unwrap()[0].name, "return");
        assert_eq!(args("x a}b;"), ["a}b"]); // `}` only matters at the start of a word
    }

    #[test]
    fn comments() {
        let d = parse("# head\na 1; # tail ; {\n#b 2;\nc \"#3\" x#y; #end").unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].args, ["1"]);
        assert_eq!(d[1].args, ["#3", "x#y"]);
        assert_eq!(args("x a #c;\n b;"), ["a", "b"]); // a comment inside a statement
    }

    #[test]
    fn nested_blocks() {
        let text = "http {\n  server {\n    listen 80;\n    location / {\n      return 200;\n    }\n  }\n  x 1;\n}\ny;";
        let d = parse(text).unwrap();
        assert_eq!(d.len(), 2);
        let http = d[0].block.as_ref().unwrap();
        assert_eq!(http.len(), 2);
        let server = http[0].block.as_ref().unwrap();
        assert_eq!(server[0].name, "listen");
        assert_eq!(server[1].args, ["/"]);
        assert_eq!(server[1].block.as_ref().unwrap()[0].name, "return");
        assert_eq!(http[1].name, "x");
        assert_eq!(d[1].name, "y");
        let deep = "a{".repeat(500) + &"}".repeat(500);
        assert_eq!(parse(&deep).unwrap().len(), 1);
    }

    #[test]
    fn lines_are_where_the_directive_ends() {
        let d = parse("a;\n\nb\n  c\n  d;\nhttp\n{\n  e;\n}\n").unwrap();
        assert_eq!(d[0].line, 1);
        assert_eq!(d[1].line, 5);
        assert_eq!(d[2].line, 7); // the `{`
        assert_eq!(d[2].block.as_ref().unwrap()[0].line, 8);
        assert_eq!(&*d[1].file, "t.conf");
        assert_eq!(ConfError::at("boom", &d[1]).to_string(), "boom in t.conf:5");
    }

    #[test]
    fn syntax_errors() {
        let eof = "unexpected end of file, expecting \";\" or \"}\"";
        assert_eq!(err("a;\nb c"), format!("{eof} in t.conf:2"));
        assert_eq!(err("a \"open\n\n"), format!("{eof} in t.conf:3"));
        assert_eq!(err("a \"b\""), format!("{eof} in t.conf:1"));
        assert_eq!(err("a \\"), format!("{eof} in t.conf:1"));
        assert_eq!(err("http {\n a;\n"), "unexpected end of file, expecting \"}\" in t.conf:3");
        assert_eq!(err("a;\n}"), "unexpected \"}\" in t.conf:2");
        assert_eq!(err("http { a b }"), "unexpected \"}\" in t.conf:1");
        assert_eq!(err("a;\n\n{"), "unexpected \"{\" in t.conf:3");
        assert_eq!(err(";"), "unexpected \";\" in t.conf:1");
        assert_eq!(err("a;\n ;"), "unexpected \";\" in t.conf:2");
        assert_eq!(err("x \"a\"b;"), "unexpected \"b\" in t.conf:1");
        assert_eq!(err("x 'a'\"b\";"), "unexpected \"\"\" in t.conf:1");
        assert_eq!(err("x \"a\"#c\n;"), "unexpected \"#\" in t.conf:1");
        assert_eq!(err("x \"a\"é;"), "unexpected \"é\" in t.conf:1");
    }

    #[test]
    fn too_long_parameter() {
        let word = "w".repeat(CONF_BUFFER);
        assert_eq!(err(&format!("a;\nx {word};")), "too long parameter \"wwwwwwwwww...\" started in t.conf:2");
        assert!(parse(&format!("x {};", &word[1..])).is_ok());
        assert_eq!(
            err(&format!("x\n\"{word}\n\";")),
            "too long parameter, probably missing terminating \"\"\" character in t.conf:2"
        );
        assert_eq!(
            err(&format!("x '{word};")),
            "too long parameter, probably missing terminating \"'\" character in t.conf:1"
        );
        let param = parse_str(&format!("x {word};"), "command line", Path::new("/"));
        assert_eq!(param.unwrap()[0].args[0].len(), CONF_BUFFER); // -g has no buffer limit
    }

    #[test]
    fn command_line_text() {
        let p = Path::new("/nonexistent");
        let d = parse_str("daemon off; worker_processes 2;", "command line", p).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d[1].args, ["2"]);
        assert_eq!(d[1].line, 0);
        assert_eq!(ConfError::at("x", &d[0]).to_string(), "x in command line");
        let e = |t: &str| parse_str(t, "command line", p).unwrap_err().to_string();
        assert_eq!(e("daemon off"), "unexpected end of parameter, expecting \";\" in command line");
        assert_eq!(e("events { }"), "block directives are not supported in -g option in command line");
        assert_eq!(e("a; }"), "unexpected \"}\" in command line");
        assert_eq!(e(";"), "unexpected \";\" in command line");
    }

    #[test]
    fn error_display() {
        assert_eq!(ConfError::new("m", "f.conf", 3).to_string(), "m in f.conf:3");
        let bare = ConfError { msg: "m".into(), file: None, line: 0 };
        assert_eq!(bare.to_string(), "m");
    }

    #[test]
    fn include_relative_and_glob() {
        let t = TempDir::new("glob");
        t.write("conf.d/b.conf", "b 1;\n");
        t.write("conf.d/a.conf", "a 1;\nnested { include conf.d/s?b/*.inc; }\n");
        t.write("conf.d/sub/x.inc", "\n\nx;\n");
        t.write("conf.d/c.txt", "not_included;\n");
        t.write("conf.d/.hidden.conf", "hidden;\n");
        t.write("mime.types", "types { text/html html; }\n");
        let main = t.write(
            "main.conf",
            "first;\nhttp {\n  include mime.types;\n  include conf.d/*.conf;\n  include none/*.conf;\n}\nlast;\n",
        );
        let conf = parse_file(&main, &t.0).unwrap();
        let names: Vec<&str> = conf.directives.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["first", "http", "last"]);
        let http = conf.directives[1].block.as_ref().unwrap();
        let names: Vec<&str> = http.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["types", "a", "nested", "b"]); // sorted, hidden and *.txt skipped
        let x = &http[2].block.as_ref().unwrap()[0];
        assert_eq!(x.name, "x");
        assert_eq!(&*x.file, t.0.join("conf.d/sub/x.inc").to_str().unwrap());
        assert_eq!(x.line, 3);
        assert_eq!(&*conf.directives[0].file, main.to_str().unwrap());
        let files: Vec<PathBuf> = conf.files.iter().map(|(p, _)| p.clone()).collect();
        let rel = ["main.conf", "mime.types", "conf.d/a.conf", "conf.d/sub/x.inc", "conf.d/b.conf"];
        assert_eq!(files, rel.map(|r| t.0.join(r)));
        assert_eq!(conf.files[1].1, "types { text/html html; }\n");
    }

    #[test]
    fn include_errors() {
        let t = TempDir::new("errors");
        let name = t.0.join("missing.conf");
        let main = t.write("main.conf", "a;\n\ninclude missing.conf;\n");
        let main_s = main.display();
        assert_eq!(
            parse_file(&main, &t.0).unwrap_err().to_string(),
            format!("open() \"{}\" failed (2: No such file or directory) in {main_s}:3", name.display())
        );
        let gone = t.0.join("gone.conf");
        assert_eq!(
            parse_file(&gone, &t.0).unwrap_err().to_string(),
            format!("open() \"{}\" failed (2: No such file or directory)", gone.display())
        );
        let main = t.write("args.conf", "include a b;");
        let msg = "invalid number of arguments in \"include\" directive";
        assert_eq!(parse_file(&main, &t.0).unwrap_err().msg, msg);
        let main = t.write("block.conf", "include x {}");
        let msg = "directive \"include\" is not terminated by \";\"";
        assert_eq!(parse_file(&main, &t.0).unwrap_err().msg, msg);
        // blocks do not span files: the `}` in the included file is unexpected there
        let inc = t.write("close.inc", "a;\n}\n");
        let main = t.write("open.conf", "http {\ninclude close.inc;\n}\n");
        let e = parse_file(&main, &t.0).unwrap_err();
        assert_eq!(e, ConfError::new("unexpected \"}\"", inc.to_str().unwrap(), 2));
        let main = t.write("dir.conf", "include sub;");
        fs::create_dir_all(t.0.join("sub")).unwrap();
        let e = parse_file(&main, &t.0).unwrap_err();
        assert!(e.msg.starts_with("pread() \"") && e.msg.contains("(21: Is a directory)"), "{e}");
    }

    #[test]
    fn include_loops() {
        let t = TempDir::new("loop");
        let a = t.write("a.conf", "x;\ninclude b.conf;\n");
        let b = t.write("b.conf", "y;\n\ninclude a.conf;\n");
        let e = parse_file(&a, &t.0).unwrap_err();
        let msg = format!("include loop: \"{}\" is already being read", a.display());
        assert_eq!(e, ConfError::new(msg, b.to_str().unwrap(), 3));
        let me = t.write("self.conf", "include self.conf;");
        assert!(parse_file(&me, &t.0).unwrap_err().msg.starts_with("include loop"));
        // the same file twice, not nested, is fine (nginx allows it too)
        t.write("twice.inc", "t;");
        let twice = t.write("twice.conf", "include twice.inc;\ninclude twice.inc;");
        let conf = parse_file(&twice, &t.0).unwrap();
        assert_eq!(conf.directives.len(), 2);
        assert_eq!(conf.files.len(), 2);
        // a chain deeper than the limit, with no loop
        for i in 0..40 {
            t.write(&format!("d{i}.conf"), &format!("include d{}.conf;", i + 1));
        }
        t.write("d40.conf", "end;");
        let e = parse_file(&t.0.join("d0.conf"), &t.0).unwrap_err();
        assert_eq!(e.msg, "too deep includes (more than 32)");
        assert!(parse_file(&t.0.join("d10.conf"), &t.0).is_ok());
    }

    #[test]
    fn include_from_command_line() {
        let t = TempDir::new("param");
        t.write("g.conf", "pid x.pid;\n");
        let d = parse_str("include g.conf; daemon off;", "command line", &t.0).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].name, "pid");
        // an absolute name ignores the prefix
        let abs = format!("include {};", t.0.join("g.conf").display());
        let d = parse_str(&abs, "command line", Path::new("/nonexistent")).unwrap();
        assert_eq!(d[0].name, "pid");
        let e = parse_str("include none.conf;", "command line", &t.0).unwrap_err();
        assert!(e.to_string().ends_with("(2: No such file or directory) in command line"), "{e}");
    }

    #[test]
    fn glob_matching() {
        assert!(fnmatch(b"*.conf", b"a.conf"));
        assert!(!fnmatch(b"*.conf", b".conf.conf"));
        assert!(fnmatch(b".*", b".hidden"));
        assert!(!fnmatch(b"*.conf", b"a.conf.bak"));
        assert!(fnmatch(b"a*b*c", b"aXXbYYbc"));
        assert!(fnmatch(b"?.conf", b"x.conf"));
        assert!(!fnmatch(b"?.conf", b"xy.conf"));
        assert!(fnmatch(b"[a-c]1", b"b1"));
        assert!(!fnmatch(b"[a-c]1", b"d1"));
        assert!(fnmatch(b"[!a-c]1", b"d1"));
        assert!(fnmatch(b"[]x]", b"]"));
        assert!(fnmatch(b"[x-]", b"-"));
        assert!(fnmatch(b"a[b", b"a[b")); // unclosed bracket: literal
        assert!(fnmatch(br"\*", b"*"));
        assert!(!fnmatch(br"\*", b"x"));
        assert!(fnmatch(b"**", b"x"));
        assert!(fnmatch(b"*", b""));
    }
}
