//! `proxy_redirect`: rewriting the `Location` (and `Refresh` URL) an upstream sends, so that
//! a redirect to the upstream's own address points at this server.
//!
//! nginx: src/http/modules/ngx_http_proxy_module.c — `ngx_http_proxy_rewrite_redirect()`,
//! `ngx_http_proxy_rewrite_complex_handler()`, the `default` rule of
//! `ngx_http_proxy_redirect()`.
//!
//! Differs from nginx: no regular expressions (`~` rules), and the `default` rule is computed
//! when it is used instead of being compiled into a rule at configuration time.

use super::{ProxyCtx, Redirect};
use crate::http::variables::ComplexValue;
use crate::upstream::{Rewrite, UpstreamCx};

impl ProxyCtx {
    /// The first rule whose prefix starts `value` replaces that prefix.
    /// nginx: `ngx_http_proxy_rewrite_redirect()` with the `proxy_redirect` rules.
    pub(super) fn rewrite_redirect(&self, cx: &UpstreamCx<'_>, value: &mut Vec<u8>) -> Rewrite {
        let rules = match &self.shared.redirect {
            Redirect::Off => return Rewrite::Declined,
            Redirect::Default => return self.rewrite_default(value),
            Redirect::List(l) => l,
        };
        for (from, to) in rules {
            // An empty `from` stands for `proxy_redirect default` written in the list.
            let done = if from.is_empty() { self.rewrite_default(value) } else { rewrite_to(cx, from, to, value) };
            if done == Rewrite::Done {
                return Rewrite::Done;
            }
        }
        Rewrite::Declined
    }

    /// `proxy_redirect default`: the `proxy_pass` URL → the location's name ("URL/" → "/"
    /// when `proxy_pass` has no URI part).
    fn rewrite_default(&self, value: &mut Vec<u8>) -> Rewrite {
        let pass = &self.shared.pass;
        match &pass.uri {
            Some(_) => replace_prefix(value, pass.url.as_bytes(), pass.location.as_bytes()),
            // "URL/" -> "/": the URL's prefix, then its '/', become one '/'.
            None if value.get(pass.url.len()) == Some(&b'/') => replace_prefix(value, pass.url.as_bytes(), b""),
            None => Rewrite::Declined,
        }
    }
}

/// `proxy_redirect FROM TO`, `TO` evaluated with the request's variables.
fn rewrite_to(cx: &UpstreamCx<'_>, from: &str, to: &ComplexValue, value: &mut Vec<u8>) -> Rewrite {
    if !value.starts_with(from.as_bytes()) {
        return Rewrite::Declined;
    }
    let mut v = Vec::new();
    to.eval(&cx.vars(), &mut v);
    replace_prefix(value, from.as_bytes(), &v)
}

/// Replaces the prefix `from` of `value` by `to`, if `value` starts with it.
/// The bytes of `to` go in exactly as the variables gave them. nginx: the `ngx_memcpy`s of
/// `ngx_http_proxy_rewrite()`.
fn replace_prefix(value: &mut Vec<u8>, from: &[u8], to: &[u8]) -> Rewrite {
    if from.is_empty() || !value.starts_with(from) {
        return Rewrite::Declined;
    }
    value.splice(..from.len(), to.iter().copied());
    Rewrite::Done
}
