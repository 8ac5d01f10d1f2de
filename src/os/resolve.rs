//! Configuration-time name resolution, remembered so that every worker's copy of the
//! configuration uses the master's answers.
//!
//! nginx resolves `upstream` servers, `proxy_pass` hosts and `listen` names once, in the
//! master, while it reads the configuration (`ngx_parse_url()` → `ngx_inet_resolve_host()`);
//! workers are forked after and inherit the answers. rginx's workers are threads that each
//! build their own configuration from the master's checked directive tree (`Conf::rebuild`),
//! so that no `Arc` count a request bumps is shared between workers. Resolving again there
//! would block each worker on DNS and could give a worker different peers, or a `listen`
//! address that no longer lines up with the master's sockets. So a build records every answer
//! in a [`Memo`], and a rebuild replays it: the same addresses, no DNS.
//!
//! Differs from nginx: nothing to differ in; this only makes threads behave as forked copies.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};

/// The answers one configuration build got, by the name it asked for ("host:port").
#[derive(Default, Debug)]
pub struct Memo(Mutex<HashMap<String, Vec<SocketAddr>>>);

thread_local! {
    /// The memo of the build running on this thread, if any.
    static CURRENT: RefCell<Option<Arc<Memo>>> = const { RefCell::new(None) };
}

/// Runs `f` (a configuration build) with `memo` as this thread's memo: lookups made by `f`
/// are answered from it when it has the name, and recorded in it when it does not.
pub fn with_memo<T>(memo: &Arc<Memo>, f: impl FnOnce() -> T) -> T {
    /// Puts the previous memo back however `f` ends (a panic included), so that no later
    /// lookup on this thread, outside a build, replays an old answer.
    struct Restore(Option<Arc<Memo>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let prev = self.0.take();
            CURRENT.with(|c| *c.borrow_mut() = prev);
        }
    }
    let _restore = Restore(CURRENT.with(|c| c.replace(Some(memo.clone()))));
    f()
}

/// `name.to_socket_addrs()` ("host:port", or a `(host, port)` pair formatted so), through the
/// current build's memo. Blocking: configuration time only.
pub fn lookup(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    let key = format!("{host}:{port}");
    let memo = CURRENT.with(|c| c.borrow().clone());
    if let Some(m) = &memo {
        if let Some(v) = m.0.lock().ok().and_then(|t| t.get(&key).cloned()) {
            return Ok(v);
        }
    }
    let v: Vec<SocketAddr> = (host, port).to_socket_addrs()?.collect();
    if let Some(m) = memo {
        if let Ok(mut t) = m.0.lock() {
            t.insert(key, v.clone());
        }
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rebuild_replays_the_first_build_answers() {
        let memo = Arc::new(Memo::default());
        let first = with_memo(&memo, || lookup("localhost", 8080)).expect("localhost resolves");
        // Plant a different answer: a replay must return what the memo holds, not ask again.
        let planted: SocketAddr = "127.0.0.9:8080".parse().expect("addr");
        memo.0.lock().expect("lock").insert("localhost:8080".into(), vec![planted]);
        assert_eq!(with_memo(&memo, || lookup("localhost", 8080)).expect("memo"), vec![planted]);
        // Outside a build, nothing is remembered.
        assert_eq!(lookup("localhost", 8080).expect("dns"), first);
    }
}
