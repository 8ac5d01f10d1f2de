//! The tokenizer of nginx.conf: words, quoted strings, `;`, `{`, `}`, comments and escapes,
//! with the line each token started on.
//!
//! nginx: `ngx_conf_read_token()` (src/core/ngx_conf_file.c).
//!
//! Differs from nginx: it reads a whole text already in memory (nginx refills a
//! `CONF_BUFFER`-sized buffer from the file); the checks and messages are nginx's.

use std::sync::Arc;

use super::parse::{ConfError, Directive, CONF_BUFFER};

/// What [`Tokenizer::read_token`] stopped at.
///
/// nginx: the return codes of `ngx_conf_read_token()`
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Token {
    /// `name args;` (NGX_OK)
    Stmt(Vec<String>),
    /// `name args {` (NGX_CONF_BLOCK_START)
    BlockStart(Vec<String>),
    /// `}` (NGX_CONF_BLOCK_DONE)
    BlockDone,
    /// The end of the text (NGX_CONF_FILE_DONE)
    FileDone,
}

/// Where the tokenizer is between two bytes. nginx spreads this over the flags
/// `last_space`, `sharp_comment`, `d_quoted`, `s_quoted` and `need_space`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Lex {
    /// Between words (`last_space`): whitespace is skipped, anything else starts a word.
    Space,
    /// From `#` at the start of a word to the end of the line (`sharp_comment`).
    Comment,
    /// In an unquoted word; ends at whitespace, `;` or `{` (but not at `}`).
    Bare,
    /// In a `"..."` word (`d_quoted`).
    DQuoted,
    /// In a `'...'` word (`s_quoted`).
    SQuoted,
    /// Right after a closing quote (`need_space`): a separator, `;`, `{` or `)` must follow.
    AfterQuote,
}

/// The state of one `read_token` call: the words so far and the word being read.
pub(super) struct Words {
    lex: Lex,
    /// The previous byte was `\`: this one is taken as is (nginx: `quoted`).
    escaped: bool,
    /// The previous byte was `$`, so a `{` is part of `${name}`, not a block (nginx: `variable`).
    variable: bool,
    /// Offset of the current word (after its opening quote); also where nginx's buffer starts.
    start: usize,
    /// The line `start` is on, for "too long parameter" (nginx: `start_line`).
    start_line: usize,
    /// The words of the statement so far (nginx: `cf->args`).
    args: Vec<String>,
}

/// Splits text into statements, one [`Token`] per call, as nginx does.
///
/// nginx: `ngx_conf_read_token()` plus the `ngx_conf_file_t` it reads from
pub(super) struct Tokenizer<'a> {
    text: &'a str,
    /// The next byte to read (nginx: `b->pos`).
    pos: usize,
    /// The current line, counted at each `\n` read (nginx: `cf->conf_file->line`).
    line: usize,
    file: Arc<str>,
    /// The `-g` text (nginx: `conf_file->file.fd == NGX_INVALID_FILE`): no buffer limit, no
    /// line numbers, its own end-of-text message.
    param: bool,
}

impl<'a> Tokenizer<'a> {
    pub(super) fn new(text: &'a str, file: Arc<str>, param: bool) -> Self {
        Tokenizer { text, pos: 0, line: 1, file, param }
    }

    /// Reads up to and including the next `;`, `{` or `}` (or to the end of the text).
    ///
    /// nginx: `ngx_conf_read_token()`
    pub(super) fn read_token(&mut self) -> Result<Token, ConfError> {
        let bytes = self.text.as_bytes();
        let mut w = Words {
            lex: Lex::Space,
            escaped: false,
            variable: false,
            start: self.pos,
            start_line: self.line,
            args: Vec::new(),
        };
        loop {
            let Some(&ch) = bytes.get(self.pos) else {
                return self.end_of_text(&w);
            };
            // nginx refills its buffer here; a word that already fills it can never end
            if !self.param && self.pos - w.start == CONF_BUFFER {
                return Err(self.too_long(&w));
            }
            self.pos += 1;
            if ch == b'\n' {
                self.line += 1;
            }
            let token = match w.lex {
                Lex::Comment if ch == b'\n' => self.space(&mut w, ch)?,
                Lex::Comment => None,
                _ if w.escaped => {
                    w.escaped = false;
                    None
                }
                Lex::AfterQuote => self.after_quote(&mut w, ch)?,
                Lex::Space => self.space(&mut w, ch)?,
                Lex::Bare | Lex::DQuoted | Lex::SQuoted => self.in_word(&mut w, ch),
            };
            if let Some(token) = token {
                return Ok(token);
            }
        }
    }

    /// A byte between words: skip blanks, end the statement, or start a word.
    pub(super) fn space(&mut self, w: &mut Words, ch: u8) -> Result<Option<Token>, ConfError> {
        w.lex = Lex::Space;
        w.start = self.pos - 1;
        w.start_line = self.line;
        match ch {
            b' ' | b'\t' | b'\r' | b'\n' => {}
            b';' | b'{' if w.args.is_empty() => return Err(self.unexpected(ch)),
            b';' => return Ok(Some(Token::Stmt(std::mem::take(&mut w.args)))),
            b'{' => return Ok(Some(Token::BlockStart(std::mem::take(&mut w.args)))),
            b'}' if !w.args.is_empty() => return Err(self.error("unexpected \"}\"")),
            b'}' => return Ok(Some(Token::BlockDone)),
            b'#' => w.lex = Lex::Comment,
            b'\\' => {
                w.lex = Lex::Bare;
                w.escaped = true;
            }
            b'"' | b'\'' => {
                w.start += 1; // the quote is not part of the word
                w.lex = if ch == b'"' { Lex::DQuoted } else { Lex::SQuoted };
            }
            b'$' => {
                w.lex = Lex::Bare;
                w.variable = true;
            }
            _ => w.lex = Lex::Bare,
        }
        Ok(None)
    }

    /// A byte right after a closing quote: `"a"b` is an error, `"a";` is not.
    pub(super) fn after_quote(&mut self, w: &mut Words, ch: u8) -> Result<Option<Token>, ConfError> {
        match ch {
            b' ' | b'\t' | b'\r' | b'\n' => {
                w.lex = Lex::Space;
                Ok(None)
            }
            b';' => Ok(Some(Token::Stmt(std::mem::take(&mut w.args)))),
            b'{' => Ok(Some(Token::BlockStart(std::mem::take(&mut w.args)))),
            // `if ($a = "b")`: the `)` becomes a word of its own
            b')' => self.space(w, ch),
            _ => Err(self.unexpected(ch)),
        }
    }

    /// A byte inside a word: maybe the end of it, maybe the end of the statement too.
    pub(super) fn in_word(&mut self, w: &mut Words, ch: u8) -> Option<Token> {
        if ch == b'{' && w.variable {
            return None; // `${name}`
        }
        w.variable = false;
        match ch {
            b'\\' => w.escaped = true,
            b'$' => w.variable = true,
            _ => {}
        }
        if ch == b'\\' || ch == b'$' {
            return None;
        }
        let ends = match w.lex {
            Lex::DQuoted => ch == b'"',
            Lex::SQuoted => ch == b'\'',
            _ => matches!(ch, b' ' | b'\t' | b'\r' | b'\n' | b';' | b'{'),
        };
        if !ends {
            return None;
        }
        // here: the word is text[start..pos - 1], without its closing quote or terminator
        w.args.push(unescape(&self.text.as_bytes()[w.start..self.pos - 1]));
        w.lex = if w.lex == Lex::Bare { Lex::Space } else { Lex::AfterQuote };
        match ch {
            b';' => Some(Token::Stmt(std::mem::take(&mut w.args))),
            b'{' => Some(Token::BlockStart(std::mem::take(&mut w.args))),
            _ => None,
        }
    }

    /// The text ended: fine between statements, an error inside one.
    pub(super) fn end_of_text(&self, w: &Words) -> Result<Token, ConfError> {
        if w.args.is_empty() && matches!(w.lex, Lex::Space | Lex::Comment) {
            return Ok(Token::FileDone);
        }
        Err(self.error(if self.param {
            "unexpected end of parameter, expecting \";\""
        } else {
            "unexpected end of file, expecting \";\" or \"}\""
        }))
    }

    /// nginx's message when one word would not fit in its 4096-byte buffer.
    pub(super) fn too_long(&mut self, w: &Words) -> ConfError {
        self.line = w.start_line;
        let quote = match w.lex {
            Lex::DQuoted => '"',
            Lex::SQuoted => '\'',
            _ => {
                let head = &self.text.as_bytes()[w.start..w.start + 10];
                let head = String::from_utf8_lossy(head);
                return self.error(&format!("too long parameter \"{head}...\" started"));
            }
        };
        self.error(&format!("too long parameter, probably missing terminating \"{quote}\" character"))
    }

    /// `unexpected "X"` for the byte just read (the whole character if it is not ASCII).
    pub(super) fn unexpected(&self, ch: u8) -> ConfError {
        let c = self.text[self.pos - 1..].chars().next().unwrap_or(char::from(ch));
        self.error(&format!("unexpected \"{c}\""))
    }

    /// An error at the current position, as `ngx_conf_log_error()` prints it.
    pub(super) fn error(&self, msg: &str) -> ConfError {
        ConfError::new(msg, &self.file, self.msg_line())
    }

    /// The line to print: none for the `-g` text ("in command line").
    pub(super) fn msg_line(&self) -> usize {
        if self.param {
            0
        } else {
            self.line
        }
    }

    /// The statement just read as a [`Directive`] (read_token never yields an empty one).
    pub(super) fn directive(&self, args: Vec<String>) -> Directive {
        let mut words = args.into_iter();
        Directive {
            name: words.next().unwrap_or_default(),
            args: words.collect(),
            block: None,
            file: Arc::clone(&self.file),
            line: self.msg_line(),
        }
    }
}

/// Resolves the escapes nginx resolves: `\"`, `\'`, `\\`, `\t`, `\r`, `\n`. Any other `\x`
/// stays as written, backslash included (so `a\;b` is the word `a\;b`).
///
/// nginx: the copy loop at the end of `ngx_conf_read_token()`
pub(super) fn unescape(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'\\' && i + 1 < raw.len() {
            let resolved = match raw[i + 1] {
                c @ (b'"' | b'\'' | b'\\') => Some(c),
                b't' => Some(b'\t'),
                b'r' => Some(b'\r'),
                b'n' => Some(b'\n'),
                _ => None,
            };
            if let Some(c) = resolved {
                out.push(c);
                i += 2;
                continue;
            }
        }
        out.push(raw[i]);
        i += 1;
    }
    // only ASCII was removed or replaced, so UTF-8 in stays UTF-8 out
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}
