//! The `proxy_set_header` list (merged with nginx's defaults) compiled once per location into
//! what `create_request` appends: the lines whose values have no variables already written
//! out, the others evaluated per request.
//!
//! nginx: src/http/modules/ngx_http_proxy_module.c — `ngx_http_proxy_init_headers()`, which
//! compiles the list into `headers->lengths`/`headers->values` scripts whose constant lines
//! are copied as one code (`ngx_http_script_copy_code`).
//!
//! Differs from nginx:
//! - a constant line with an empty value is dropped here, once (nginx drops it while
//!   compiling too, `if (src[i].value.len == 0) continue`); a line with variables that
//!   evaluates empty is dropped per request, as nginx's `ngx_http_script_skip_code` does.
//! - a value is written with CR, LF and NUL escaped (`ComplexValue::eval_header`), a
//!   constant one once here.

use std::ops::Range;

use super::PROXY_VARIABLES;
use crate::core::header_list::eq_nocase;
use crate::http::header_filter::{push_decimal, push_header_value};
use crate::http::variables::{ComplexValue, Vars};

/// One step of the compiled list.
#[derive(Debug)]
enum HeaderOp {
    /// Consecutive lines without variables, `Name: value\r\n` each, and where the value of
    /// the last `Connection` among them is in `bytes` (for `closes`).
    Lines { bytes: Vec<u8>, connection: Option<Range<usize>> },
    /// A line whose value has variables; left out when it evaluates empty.
    Value { name: String, value: ComplexValue, connection: bool },
    /// `Content-Length` set to "": the body's length (nginx: `$proxy_internal_body_length`).
    ContentLength { name: String },
    /// `Transfer-Encoding` set to "": "chunked" for a body still streaming
    /// (nginx: `$proxy_internal_chunked`).
    TransferEncoding { name: String },
}

/// The compiled header list of a location. nginx: `ngx_http_proxy_headers_t`.
#[derive(Debug, Default)]
pub struct HeaderScript {
    ops: Vec<HeaderOp>,
    /// Bit `n` set: some configured name is `n` bytes long (names of 64 bytes or more set
    /// bit 63): most client lines are told apart from the list by their length alone.
    name_lens: u64,
}

/// The bit of `name_lens` for a name of `len` bytes.
fn len_bit(len: usize) -> u64 {
    1 << len.min(63)
}

impl HeaderScript {
    /// Compiles the merged list, in its order. `$proxy_host` is `proxy_host` (`proxy_pass`
    /// has no variables: every request of the location sends the same one), so a line that
    /// uses it, nginx's default `Host: $proxy_host` first, is written once here.
    /// nginx: `ngx_http_proxy_init_headers()`.
    pub fn compile(headers: &[(String, ComplexValue)], proxy_host: &str) -> HeaderScript {
        let mut s = HeaderScript::default();
        for (name, cv) in headers {
            let cv = &cv.substitute(&PROXY_VARIABLES[0], proxy_host.as_bytes());
            s.name_lens |= len_bit(name.len());
            let special = cv.source.is_empty();
            if eq_nocase(name.as_bytes(), b"Content-Length") && special {
                s.ops.push(HeaderOp::ContentLength { name: name.clone() });
            } else if eq_nocase(name.as_bytes(), b"Transfer-Encoding") && special {
                s.ops.push(HeaderOp::TransferEncoding { name: name.clone() });
            } else if let Some(lit) = cv.static_bytes() {
                s.push_line(name, &lit);
            } else {
                let connection = eq_nocase(name.as_bytes(), b"Connection");
                s.ops.push(HeaderOp::Value { name: name.clone(), value: cv.clone(), connection });
            }
        }
        s
    }

    /// Appends a constant line to the last `Lines` (or a new one); an empty value is no line.
    fn push_line(&mut self, name: &str, value: &[u8]) {
        if value.is_empty() {
            return;
        }
        if !matches!(self.ops.last(), Some(HeaderOp::Lines { .. })) {
            self.ops.push(HeaderOp::Lines { bytes: Vec::new(), connection: None });
        }
        let Some(HeaderOp::Lines { bytes, connection }) = self.ops.last_mut() else {
            return;
        };
        bytes.extend_from_slice(name.as_bytes());
        bytes.extend_from_slice(b": ");
        let start = bytes.len();
        push_header_value(bytes, value);
        if eq_nocase(name.as_bytes(), b"Connection") {
            *connection = Some(start..bytes.len());
        }
        bytes.extend_from_slice(b"\r\n");
    }

    /// Appends the lines to `head`; returns where the value of the last `Connection` sent is.
    /// `body_len` and `chunked` are the body's framing (`create_request`).
    pub fn run(&self, v: &Vars<'_>, body_len: Option<u64>, chunked: bool, head: &mut Vec<u8>) -> Option<Range<usize>> {
        let mut sent_connection = None;
        for op in &self.ops {
            match op {
                HeaderOp::Lines { bytes, connection } => {
                    let at = head.len();
                    head.extend_from_slice(bytes);
                    if let Some(c) = connection {
                        sent_connection = Some(at + c.start..at + c.end);
                    }
                }
                HeaderOp::Value { name, value, connection } => {
                    let line = head.len();
                    head.extend_from_slice(name.as_bytes());
                    head.extend_from_slice(b": ");
                    let start = head.len();
                    value.eval_header(v, head);
                    if head.len() == start {
                        head.truncate(line); // an empty value: the header is not sent
                        continue;
                    }
                    if *connection {
                        sent_connection = Some(start..head.len());
                    }
                    head.extend_from_slice(b"\r\n");
                }
                HeaderOp::ContentLength { name } => {
                    if let Some(n) = body_len {
                        head.extend_from_slice(name.as_bytes());
                        head.extend_from_slice(b": ");
                        push_decimal(head, n);
                        head.extend_from_slice(b"\r\n");
                    }
                }
                HeaderOp::TransferEncoding { name } => {
                    if chunked {
                        head.extend_from_slice(name.as_bytes());
                        head.extend_from_slice(b": chunked\r\n");
                    }
                }
            }
        }
        sent_connection
    }

    /// Whether the list may name `name` (a client line the list replaces): a quick test of
    /// its length; the caller compares the names when it says yes.
    #[inline]
    pub fn may_name(&self, name: &[u8]) -> bool {
        self.name_lens & len_bit(name.len()) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_lines_are_joined_and_empty_ones_dropped() {
        let list = [
            ("Connection".to_string(), ComplexValue::literal("")),
            ("X-A".to_string(), ComplexValue::literal("1")),
            ("X-Bad".to_string(), ComplexValue::literal("a\rb")),
            ("Content-Length".to_string(), ComplexValue::literal("")),
            ("Connection".to_string(), ComplexValue::literal("close")),
        ];
        let s = HeaderScript::compile(&list, "b");
        assert_eq!(s.ops.len(), 3, "{:?}", s.ops);
        match &s.ops[0] {
            HeaderOp::Lines { bytes, connection } => {
                assert_eq!(bytes, b"X-A: 1\r\nX-Bad: a%0Db\r\n");
                assert!(connection.is_none());
            }
            op => panic!("{op:?}"),
        }
        match &s.ops[2] {
            HeaderOp::Lines { bytes, connection: Some(c) } => assert_eq!(&bytes[c.clone()], b"close"),
            op => panic!("{op:?}"),
        }
        assert!(s.may_name(b"x-a") && s.may_name(b"CONNECTION") && !s.may_name(b"Host"));
        let host = ComplexValue::compile("[$proxy_host]", &[&super::super::ProxyModule]).unwrap_or_default();
        let s = HeaderScript::compile(&[("Host".to_string(), host)], "b:81");
        match &s.ops[..] {
            [HeaderOp::Lines { bytes, .. }] => assert_eq!(bytes, b"Host: [b:81]\r\n"),
            ops => panic!("$proxy_host is not written once: {ops:?}"),
        }
        let long = [("X".repeat(64), ComplexValue::literal("v"))];
        let s = HeaderScript::compile(&long, "b");
        assert!(s.may_name(&[b'x'; 64]) && s.may_name(&[b'x'; 100]) && !s.may_name(&[b'x'; 62]));
    }
}
