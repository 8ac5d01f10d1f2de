//! The response header a request will send: the status, the headers the header filter writes
//! itself (`Content-Type`, `Content-Length`, `Location`, `Last-Modified`, ...) and the list of
//! the others, all strings as bytes in one buffer from the worker's pool.
//!
//! nginx: `ngx_http_headers_out_t` (src/http/ngx_http_request.h).
//!
//! Differs from nginx:
//! - the strings (`status_line`, `content_type`, `location`, `last_modified`) are kept in the
//!   header list's buffer (`HeaderList::keep`) and read through methods; nginx's `ngx_str_t`s
//!   point into the request pool. A setter called twice keeps both copies until the request
//!   ends, as a pool would.
//! - `Location` and an own `Last-Modified` are strings here; nginx keeps them as
//!   `ngx_table_elt_t` pointers into `headers` (and `last_modified_time`). An upstream's
//!   `Last-Modified` is a line of `headers`, as in nginx, with its value kept beside it
//!   (`push_last_modified`); a listed line cannot be taken out again (nginx's
//!   `ngx_http_clear_last_modified()` hides it): no path needs that yet.
//! - `no_server`/`no_date` say an upstream's `Server`/`Date` are in the list; nginx keeps
//!   pointers to them in `headers_out.server`/`.date`.

use crate::core::buf::BufPool;
use crate::core::header_list::{HeaderList, Text};

/// Response headers. nginx: `ngx_http_headers_out_t`.
#[derive(Clone, Debug, Default)]
pub struct HeadersOut {
    /// Status code. nginx: `headers_out.status`.
    pub status: u16,
    /// `Content-Length`, when known. nginx: `content_length_n`.
    pub content_length_n: Option<u64>,
    /// Do not add `Server` (an upstream sent one that is passed through).
    pub no_server: bool,
    /// Do not add `Date` (likewise).
    pub no_date: bool,
    /// Every other header, in order, and the strings below. nginx: `headers_out.headers`.
    headers: HeaderList,
    /// Verbatim status line (from an upstream), e.g. "200 OK". nginx: `status_line`.
    status_line: Option<Text>,
    /// The response has a status line of its own (an upstream's), kept in `status_line` or,
    /// when it is nginx's line for the status, not copied. nginx: `status_line.len != 0`,
    /// which turns off the header filter's 204 and 304 rules.
    has_status_line: bool,
    /// `Content-Type`. nginx: `content_type`.
    content_type: Option<Text>,
    /// `Location` (a relative one is made absolute by the header filter).
    /// nginx: `headers_out.location`.
    location: Option<Text>,
    /// `Last-Modified`, already formatted. nginx: `headers_out.last_modified`.
    last_modified: Option<Text>,
    /// `Last-Modified` is a line of `headers` (an upstream's, in its place): the header filter
    /// does not write it again. nginx: `headers_out.last_modified` pointing into the list.
    last_modified_listed: bool,
}

impl HeadersOut {
    /// An empty header whose buffer comes from the worker's pool (`release` gives it back).
    pub fn from_pool(pool: &mut BufPool) -> HeadersOut {
        HeadersOut { headers: HeaderList::from_pool(pool), ..HeadersOut::default() }
    }

    /// Gives the buffer back to the pool. nginx: the request pool's destruction.
    pub fn release(&mut self, pool: &mut BufPool) {
        *self = HeadersOut { headers: std::mem::take(&mut self.headers), ..HeadersOut::default() };
        self.headers.release(pool);
    }

    /// Everything cleared, the buffer kept: the header is built anew (from an upstream's).
    pub fn reset(&mut self) {
        let mut headers = std::mem::take(&mut self.headers);
        headers.clear();
        *self = HeadersOut { headers, ..HeadersOut::default() };
    }

    /// What an error page replaces: everything but `Location` and the header list (a 401's
    /// `WWW-Authenticate`), which nginx keeps on its pages.
    /// nginx: `ngx_http_send_special_response()` / `ngx_http_send_refresh()` setting fields.
    pub fn clean_for_error_page(&mut self, status: u16) {
        let (headers, location) = (std::mem::take(&mut self.headers), self.location);
        *self = HeadersOut { status, headers, location, ..HeadersOut::default() };
    }

    /// The header lines besides the ones the header filter writes itself.
    pub fn headers(&self) -> &HeaderList {
        &self.headers
    }

    /// Appends a header line. nginx: `ngx_list_push(&r->headers_out.headers)`.
    pub fn push(&mut self, name: &[u8], value: &[u8]) {
        self.headers.push(name, value);
    }

    /// The upstream's status line after the version ("200 OK"), if it brought one.
    pub fn status_line(&self) -> Option<&[u8]> {
        self.status_line.map(|t| self.headers.text(t))
    }

    /// Sets the status line to send after "HTTP/1.1 ".
    pub fn set_status_line(&mut self, line: &[u8]) {
        self.status_line = Some(self.headers.keep(line));
        self.has_status_line = true;
    }

    /// The response came with nginx's own line for its status (an upstream's "200 OK"): the
    /// header filter writes that line, and applies no 204 or 304 rule, as for any line given.
    pub fn set_standard_status_line(&mut self) {
        self.has_status_line = true;
    }

    /// Whether the response has a status line of its own. nginx: `status_line.len != 0`.
    pub fn has_status_line(&self) -> bool {
        self.has_status_line
    }

    /// `Content-Type`, if any.
    pub fn content_type(&self) -> Option<&[u8]> {
        self.content_type.map(|t| self.headers.text(t))
    }

    /// Sets `Content-Type`.
    pub fn set_content_type(&mut self, v: &[u8]) {
        self.content_type = Some(self.headers.keep(v));
    }

    /// No `Content-Type` (a 204's).
    pub fn clear_content_type(&mut self) {
        self.content_type = None;
    }

    /// `Location`, if any.
    pub fn location(&self) -> Option<&[u8]> {
        self.location.map(|t| self.headers.text(t))
    }

    /// Sets `Location`.
    pub fn set_location(&mut self, v: &[u8]) {
        self.location = Some(self.headers.keep(v));
    }

    /// `Last-Modified`, if any.
    pub fn last_modified(&self) -> Option<&[u8]> {
        self.last_modified.map(|t| self.headers.text(t))
    }

    /// Sets `Last-Modified`, which the header filter writes among its own headers.
    pub fn set_last_modified(&mut self, v: &[u8]) {
        self.last_modified = Some(self.headers.keep(v));
        self.last_modified_listed = false;
    }

    /// Appends an upstream's `Last-Modified` line (name as sent) to the header list, where it
    /// goes out in the upstream's order, and keeps its value for `$sent_http_last_modified`.
    /// nginx: `ngx_http_upstream_copy_last_modified()`.
    pub fn push_last_modified(&mut self, name: &[u8], v: &[u8]) {
        self.last_modified = Some(self.headers.push_text(name, v));
        self.last_modified_listed = true;
    }

    /// Whether `Last-Modified` is one of the list's lines (the header filter skips its own).
    pub fn last_modified_listed(&self) -> bool {
        self.last_modified_listed
    }

    /// No `Last-Modified` written by the header filter (a 204's without a status line, which
    /// never has a listed one).
    pub fn clear_last_modified(&mut self) {
        self.last_modified = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_and_lines_survive_a_reset_for_an_error_page_as_nginx_keeps_them() {
        let mut pool = BufPool::default();
        let mut ho = HeadersOut::from_pool(&mut pool);
        ho.set_status_line(b"200 OK");
        ho.set_content_type(b"text/plain");
        ho.set_location(b"/next");
        ho.set_last_modified(b"Mon, 01 Jan 2024 00:00:00 GMT");
        ho.push(b"WWW-Authenticate", b"Basic");
        ho.no_server = true;
        assert_eq!(ho.status_line(), Some(&b"200 OK"[..]));
        assert_eq!(ho.content_type(), Some(&b"text/plain"[..]));
        ho.push_last_modified(b"last-modified", b"Tue, 02 Jan 2024 00:00:00 GMT");
        assert!(ho.has_status_line() && ho.last_modified_listed());
        ho.clean_for_error_page(401);
        assert_eq!((ho.status, ho.no_server), (401, false));
        assert!(!ho.has_status_line() && !ho.last_modified_listed());
        assert_eq!((ho.status_line(), ho.content_type(), ho.last_modified()), (None, None, None));
        assert_eq!(ho.location(), Some(&b"/next"[..]));
        assert_eq!(ho.headers().get(b"www-authenticate"), Some(&b"Basic"[..]));
        ho.set_standard_status_line();
        ho.reset();
        assert!(ho.location().is_none() && ho.headers().is_empty() && !ho.has_status_line());
        ho.release(&mut pool);
        assert!(pool.pooled() > 0);
    }
}
