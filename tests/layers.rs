//! One-way layers: a folder under `src/` may use only the folders below it, never one above.
//!
//! The rule of `../shared/tools/layers`, carried by the project's own suite so that it outlives
//! issue 12. The layers, bottom to top (the same table as the tool and `docs/testing.md`):
//!
//! ```text
//! core      buffers, ids, clock, log, temp files, step results
//! os        system calls and socket I/O
//! event     the reactor: poll, connections, timers, posted events
//! conf      the nginx.conf reader and directive tables
//! http      requests, parsing, locations, filters
//! upstream  the upstream framework
//! modules   proxy, return, log, stub_status, ...
//! process   the top: the worker's cycle, master, CLI, signals
//! ```
//!
//! A folder may use itself and any folder on a lower line. Files directly under `src/`
//! (`lib.rs`, `main.rs`) may use everything. Every `crate::` reference counts: `use` lines, paths
//! in code and each member of a grouped import (`crate::{http, core}`). Comments, string and
//! char literals, and the item that follows a `#[cfg(test)]` (test code may reach anywhere) are
//! not counted. A folder or a `crate::` name missing from the table is reported, so that a new
//! layer is a decision, not an accident.
//!
//! nginx has no such check: its `src/core` calls `src/os` and `src/event` freely. rginx is read
//! to learn the architecture, so here the arrows are made to point one way.
//!
//! Differs from the python tool: block comments nest, literals are skipped (so a `"http://"`
//! does not hide the rest of its line), only the `#[cfg(test)]` item is skipped rather than the
//! rest of the file, and a grouped import nested deeper (`crate::{core::{a, b}, http}`) still
//! yields every member.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// The layer table, bottom to top.
const LAYERS: &[&str] = &["core", "os", "event", "conf", "http", "upstream", "modules", "process"];

/// Items that Rust puts at the crate root whatever file defines them: `#[macro_export]` macros.
/// Naming them is not naming a layer.
const ROOT_ITEMS: &[&str] = &["ngx_log"];

/// A layer's height in the table; `None` for a name the table does not list.
fn rank(name: &str) -> Option<usize> {
    LAYERS.iter().position(|l| *l == name)
}

/// What one file (or the whole tree) breaks.
#[derive(Debug, Default, PartialEq)]
struct Findings {
    /// `file:line uses X (Y is below X)`, one per reference pointing up.
    up: Vec<String>,
    /// Folders under `src/` and `crate::` names that are not in the table.
    unknown: BTreeSet<String>,
}

/// Checks the text of `rel`, a path relative to `src/` (`"conf/mod.rs"`).
fn check_source(rel: &str, text: &str) -> Findings {
    let mut f = Findings::default();
    let Some((layer, _)) = rel.split_once('/') else {
        return f; // lib.rs, main.rs: the top of the crate may use everything
    };
    let Some(own) = rank(layer) else {
        f.unknown.insert(layer.to_string());
        return f;
    };
    let code = skip_cfg_test_items(&code_only(text));
    let mut refs = references(&code);
    refs.extend(super_references(&code, &module_path(rel)));
    for (line, target) in refs {
        match rank(&target) {
            Some(r) if r > own => f.up.push(format!("src/{rel}:{line} uses {target} ({layer} is below {target})")),
            Some(_) => {}
            None if ROOT_ITEMS.contains(&target.as_str()) => {}
            None => {
                f.unknown.insert(target);
            }
        }
    }
    f
}

/// Checks every `.rs` file under `src`.
fn check_tree(src: &Path) -> Findings {
    let mut files = Vec::new();
    collect_rs(src, &mut files);
    files.sort();
    let mut all = Findings::default();
    for path in files {
        let rel = path.strip_prefix(src).expect("under src").to_string_lossy().replace('\\', "/");
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let f = check_source(&rel, &text);
        all.up.extend(f.up);
        all.unknown.extend(f.unknown);
    }
    all
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            collect_rs(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

/// The source with comments and the insides of string and char literals blanked to spaces.
/// Newlines are kept, so line numbers stay right.
fn code_only(text: &str) -> String {
    let s = text.as_bytes();
    let mut out = s.to_vec();
    let mut i = 0;
    while i < s.len() {
        let end = match s[i] {
            b'/' if s.get(i + 1) == Some(&b'/') => s[i..].iter().position(|&b| b == b'\n').map_or(s.len(), |n| i + n),
            b'/' if s.get(i + 1) == Some(&b'*') => block_comment_end(s, i),
            b'"' => string_end(s, i + 1),
            b'\'' => char_end(s, i),
            b if is_ident(b) => {
                let start = i;
                while i < s.len() && is_ident(s[i]) {
                    i += 1;
                }
                if let Some(end) = raw_string_end(s, &s[start..i], i) {
                    blank(&mut out, i, end);
                    i = end;
                }
                continue;
            }
            _ => i + 1,
        };
        if end > i + 1 {
            blank(&mut out, i, end);
        }
        i = end;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn blank(out: &mut [u8], from: usize, to: usize) {
    for b in &mut out[from..to] {
        if *b != b'\n' {
            *b = b' ';
        }
    }
}

/// The end of the (nesting) block comment opening at `i`.
fn block_comment_end(s: &[u8], mut i: usize) -> usize {
    let mut depth = 0;
    while i < s.len() {
        if s[i..].starts_with(b"/*") {
            depth += 1;
            i += 2;
        } else if s[i..].starts_with(b"*/") {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    s.len()
}

/// The end of a `"..."` whose contents start at `i` (escapes honoured).
fn string_end(s: &[u8], mut i: usize) -> usize {
    while i < s.len() {
        match s[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    s.len()
}

/// The end of a char literal at `i`, or `i + 1` when the quote opens a lifetime or a label.
fn char_end(s: &[u8], i: usize) -> usize {
    if s.get(i + 1) == Some(&b'\\') {
        return s[i + 2..].iter().position(|&b| b == b'\'').map_or(s.len(), |n| i + 2 + n + 1);
    }
    // One character (up to four UTF-8 bytes) and a closing quote: a char literal.
    let close = (i + 2..(i + 6).min(s.len())).find(|&j| s[j] == b'\'');
    match close {
        Some(j) if std::str::from_utf8(&s[i + 1..j]).is_ok_and(|c| c.chars().count() == 1) => j + 1,
        _ => i + 1,
    }
}

/// When the identifier `ident` (ending at `i`) is a raw-string prefix (`r`, `br`, `cr`) followed
/// by `#`s and a quote, the end of that raw string.
fn raw_string_end(s: &[u8], ident: &[u8], i: usize) -> Option<usize> {
    if !matches!(ident, b"r" | b"br" | b"cr") {
        return None;
    }
    let hashes = s[i..].iter().take_while(|&&b| b == b'#').count();
    if s.get(i + hashes) != Some(&b'"') {
        return None; // `r#ident`, or an identifier that happens to be named `r`
    }
    let mut close = vec![b'"'];
    close.extend(std::iter::repeat_n(b'#', hashes));
    let body = i + hashes + 1;
    Some(s[body..].windows(close.len()).position(|w| w == close).map_or(s.len(), |n| body + n + close.len()))
}

/// The code with each item that follows a `#[cfg(test)]` blanked: up to the `}` that closes its
/// first `{`, or its `;` when it has no body. Runs on `code_only` text, so braces balance.
fn skip_cfg_test_items(code: &str) -> String {
    let s = code.as_bytes();
    let mut out = s.to_vec();
    let mut from = 0;
    while let Some(n) = code[from..].find("#[cfg(test)]") {
        let start = from + n;
        let mut depth = 0usize;
        let mut end = s.len();
        for (j, &b) in s.iter().enumerate().skip(start) {
            match b {
                b'{' => depth += 1,
                b'}' if depth == 1 => {
                    end = j + 1;
                    break;
                }
                b'}' => depth = depth.saturating_sub(1),
                b';' if depth == 0 => {
                    end = j + 1;
                    break;
                }
                _ => {}
            }
        }
        blank(&mut out, start, end);
        from = end;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `(line, first path segment)` for every `crate::` reference in comment-free code; a grouped
/// import yields each of its members.
fn references(code: &str) -> Vec<(usize, String)> {
    let s = code.as_bytes();
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(n) = code[from..].find("crate") {
        let at = from + n;
        from = at + "crate".len();
        if at > 0 && is_ident(s[at - 1]) || s.get(from).is_some_and(|&b| is_ident(b)) {
            continue; // part of a longer name (`mycrate`, `crates`)
        }
        let Some(after) = skip_path_sep(s, from) else { continue };
        if s.get(after) == Some(&b'{') {
            group_members(s, after, &mut found);
        } else if let Some(name) = word_at(s, after) {
            found.push((line_of(s, after), name));
        } else if s.get(after) == Some(&b'*') {
            found.push((line_of(s, after), "*".to_string())); // a glob of the crate root hides its direction
        }
    }
    found
}

/// The module path of a file under `src/`: `event/timer.rs` is `[event, timer]`,
/// `modules/proxy/mod.rs` is `[modules, proxy]`.
fn module_path(rel: &str) -> Vec<String> {
    let rel = rel.trim_end_matches(".rs");
    let mut parts: Vec<String> = rel.split('/').map(str::to_string).collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// References that climb with `super::` out of the file's own folder, to the crate root and
/// down into another folder (`super::super::http::x` from `event/timer.rs`), and aliases of
/// the crate root (`use crate as x;`, `extern crate self as x;`), which would hide the
/// direction of every path through them (reported as `*`).
fn super_references(code: &str, module: &[String]) -> Vec<(usize, String)> {
    let s = code.as_bytes();
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(n) = code[from..].find("super") {
        let at = from + n;
        from = at + "super".len();
        if at > 0 && (is_ident(s[at - 1]) || s[at - 1] == b':') || s.get(from).is_some_and(|&b| is_ident(b)) {
            continue; // part of a longer name, or not the start of a chain
        }
        let (mut ups, mut i) = (1, from);
        while let Some(next) = skip_path_sep(s, i) {
            if s[next..].starts_with(b"super") && !s.get(next + 5).is_some_and(|&b| is_ident(b)) {
                ups += 1;
                i = next + 5;
                continue;
            }
            // `ups` supers from `module` leave `module.len() - ups` segments: none means the
            // next name is a folder at the crate root.
            if ups >= module.len() {
                if s.get(next) == Some(&b'{') {
                    group_members(s, next, &mut found);
                } else if let Some(name) = word_at(s, next) {
                    found.push((line_of(s, next), name));
                }
            }
            break;
        }
    }
    let mut from = 0;
    while let Some(n) = code[from..].find("self as") {
        let at = from + n;
        from = at + 1;
        if code[..at].trim_end().ends_with("extern crate") {
            found.push((line_of(s, at), "*".to_string()));
        }
    }
    let mut from = 0;
    while let Some(n) = code[from..].find("crate as") {
        let at = from + n;
        from = at + 1;
        if at == 0 || !is_ident(s[at - 1]) {
            found.push((line_of(s, at), "*".to_string()));
        }
    }
    found
}

/// Past `::` (whitespace allowed around it) starting at `i`, or `None` when there is none.
fn skip_path_sep(s: &[u8], i: usize) -> Option<usize> {
    let i = i + s[i..].iter().take_while(|b| b.is_ascii_whitespace()).count();
    if !s[i..].starts_with(b"::") {
        return None;
    }
    let i = i + 2;
    Some(i + s[i..].iter().take_while(|b| b.is_ascii_whitespace()).count())
}

fn word_at(s: &[u8], i: usize) -> Option<String> {
    let len = s[i..].iter().take_while(|&&b| is_ident(b)).count();
    (len > 0).then(|| String::from_utf8_lossy(&s[i..i + len]).into_owned())
}

fn line_of(s: &[u8], i: usize) -> usize {
    s[..i].iter().filter(|&&b| b == b'\n').count() + 1
}

/// The first segment of each top-level member of the group whose `{` is at `open`.
fn group_members(s: &[u8], open: usize, found: &mut Vec<(usize, String)>) {
    let mut depth = 0;
    let mut expect_member = true;
    for (i, &b) in s.iter().enumerate().skip(open) {
        match b {
            b'{' | b'(' => depth += 1,
            b'}' | b')' => {
                depth -= 1;
                if depth == 0 {
                    return;
                }
            }
            b',' if depth == 1 => expect_member = true,
            b'*' if depth == 1 && expect_member => {
                found.push((line_of(s, i), "*".to_string()));
                expect_member = false;
            }
            b if depth == 1 && expect_member && is_ident(b) => {
                expect_member = false;
                let name = word_at(s, i).unwrap_or_default();
                if name != "self" {
                    found.push((line_of(s, i), name));
                }
            }
            _ => {}
        }
    }
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The rule itself, on the real tree.
#[test]
fn every_reference_in_src_points_down() {
    let f = check_tree(&src_dir());
    let mut msg = f.up.join("\n");
    if !f.unknown.is_empty() {
        let names: Vec<_> = f.unknown.iter().map(String::as_str).collect();
        msg.push_str(&format!("\nnot in the layer table (extend LAYERS on purpose): {}", names.join(", ")));
    }
    assert!(f.up.is_empty() && f.unknown.is_empty(), "{} references point up:\n{msg}", f.up.len());
}

/// Every folder under `src/` and every `crate::` name is in the table, and every layer of the
/// table is a folder: the walk cannot silently miss one.
#[test]
fn every_folder_in_src_is_in_the_layer_table() {
    let f = check_tree(&src_dir());
    assert!(f.unknown.is_empty(), "not in the layer table (extend LAYERS on purpose): {:?}", f.unknown);
    for layer in LAYERS {
        assert!(src_dir().join(layer).is_dir(), "src/{layer}/ is in the table but not in the tree");
    }
}

#[test]
fn a_lower_folder_naming_a_higher_one_is_caught() {
    let f = check_source("event/timer.rs", "//! doc\n\nuse crate::http::request::Request;\n");
    assert_eq!(f.up, ["src/event/timer.rs:3 uses http (event is below http)"]);
}

#[test]
fn a_path_in_code_is_caught() {
    let text = "fn f(cy: &mut Cycle) {\n    let r = crate::upstream::finalize(cy, 502);\n}\n";
    let f = check_source("core/cycle.rs", text);
    assert_eq!(f.up, ["src/core/cycle.rs:2 uses upstream (core is below upstream)"]);
}

#[test]
fn a_grouped_import_is_caught_member_by_member() {
    let f = check_source("conf/mod.rs", "use crate::{http, core};\n");
    assert_eq!(f.up, ["src/conf/mod.rs:1 uses http (conf is below http)"]);

    let nested = "use crate::{\n    core::{buf::Buf, id::Id},\n    modules::proxy,\n    self,\n};\n";
    let f = check_source("event/mod.rs", nested);
    assert_eq!(f.up, ["src/event/mod.rs:3 uses modules (event is below modules)"]);
}

#[test]
fn references_in_comments_and_literals_are_not_counted() {
    let text = "// crate::http::x\n\
                /// see crate::upstream::y\n\
                /* crate::modules /* nested */ crate::process */\n\
                //! crate::conf\n\
                const S: &str = \"crate::http\";\n\
                const R: &str = r#\"crate::http \"quoted\"\"#;\n\
                const C: char = '\"'; fn f<'a>(x: &'a str) {}\n";
    let f = check_source("core/log.rs", text);
    assert_eq!(f, Findings::default());
}

#[test]
fn a_super_chain_out_of_the_folder_is_caught() {
    let f = check_source("event/timer.rs", "use super::super::http::cycle::Cycle;\n");
    assert_eq!(f.up, ["src/event/timer.rs:1 uses http (event is below http)"]);
    let f = check_source("event/mod.rs", "use super::{upstream, core};\n");
    assert_eq!(f.up, ["src/event/mod.rs:1 uses upstream (event is below upstream)"]);
    // within the folder, and down to a lower folder, are fine
    let ok = "use super::epoll;\nuse super::super::core::buf::Buf;\nuse super::reactor::{Reactor, World};\n";
    assert_eq!(check_source("event/accept.rs", ok), Findings::default());
    let ok = "use super::super::http::cycle::Cycle;\n";
    assert_eq!(check_source("modules/proxy/conf.rs", ok), Findings::default());
}

#[test]
fn an_alias_of_the_crate_root_is_reported() {
    let f = check_source("event/timer.rs", "use crate as x;\nfn f() { x::http::g() }\n");
    assert!(f.up.iter().any(|l| l.contains("uses *")) || f.unknown.contains("*"), "{f:?}");
}

#[test]
fn a_string_does_not_hide_the_rest_of_its_line() {
    let f = check_source("os/io.rs", "let u = \"http://x\"; crate::event::post(u);\n");
    assert_eq!(f.up, ["src/os/io.rs:1 uses event (os is below event)"]);
}

#[test]
fn own_folder_lower_folders_and_the_crate_root_are_allowed() {
    let text = "use crate::http::Request;\nuse crate::{core, os, event, conf};\nuse super::x;\n\
                crate::ngx_log!(Alert, \"x\");\nlet mycrate::http = 1;\n";
    assert_eq!(check_source("http/request.rs", text), Findings::default());
    let top = "use crate::process;\nuse crate::{modules, core};\n";
    assert_eq!(check_source("lib.rs", top), Findings::default());
}

#[test]
fn test_code_may_reach_anywhere_but_only_the_test_item() {
    let text = "#[cfg(test)]\nfn helper() { crate::process::x(); }\n\
                fn after() { crate::http::y(); }\n\
                #[cfg(test)]\nmod tests {\n    fn t() { if a { crate::modules::z(); } }\n}\n";
    let f = check_source("conf/units.rs", text);
    assert_eq!(f.up, ["src/conf/units.rs:3 uses http (conf is below http)"]);
}

#[test]
fn names_outside_the_table_are_reported() {
    let f = check_source("ssl/mod.rs", "use crate::core::buf::Buf;\n");
    assert_eq!(f.unknown, BTreeSet::from(["ssl".to_string()]));
    let f = check_source("http/mod.rs", "use crate::stream::Session;\nuse crate::*;\n");
    assert_eq!(f.unknown, BTreeSet::from(["*".to_string(), "stream".to_string()]));
}
