//! A list of header lines — names and values as the bytes they were, never converted to text
//! — and the other strings of a response head (a status line, a content type), all kept in
//! one byte buffer that comes from the worker's `BufPool` and goes back to it.
//!
//! nginx: `ngx_list_t` of `ngx_table_elt_t` (src/core/ngx_list.{c,h}, src/core/ngx_hash.h),
//! whose `key` and `value` point into memory of the request's pool, and the `ngx_str_t`
//! fields beside the list (`headers_out.content_type`, `status_line`, ...), also in the pool.
//!
//! Differs from nginx:
//! - one `Vec<u8>` holds every line and kept string, each as a record: the name's length and
//!   the value's length (4 bytes each, little-endian), a byte the list's owner may use (`kind`,
//!   as nginx's owners use `h->hash`), then the name, then the value. A kept
//!   string (`keep`) is a record whose name length is `KEPT`; the list's walk skips it. nginx
//!   allocates each string from the pool and chains fixed-size parts of `ngx_table_elt_t`;
//!   one buffer makes a whole head one pooled allocation, reused across requests, without a
//!   second table of offsets to allocate.
//! - no `hash` or `lowcase_key` per line: names are compared case-insensitively where they
//!   are looked for (`get`), as rginx does for the client's header lines.
//! - lines are never removed (nginx sets `hash = 0` to hide one); nothing in rginx removes a
//!   header once it is in a list.

use super::buf::{Buf, BufPool};

/// Where a kept string is in the list's buffer (`HeaderList::keep`, `HeaderList::text`).
/// nginx: an `ngx_str_t` pointing into the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Text {
    start: u32,
    end: u32,
}

/// The header lines of one head, and its other strings, in one pooled buffer.
/// nginx: `ngx_list_t` of `ngx_table_elt_t`.
#[derive(Clone, Debug, Default)]
pub struct HeaderList {
    /// The records, one after the other (see the file's header).
    mem: Vec<u8>,
    /// How many records are header lines (not kept strings). nginx: the parts' `nelts`.
    lines: u32,
}

/// The name length that marks a record as a kept string, not a header line.
const KEPT: u32 = u32::MAX;
/// Bytes before a record's name: the two lengths and the kind.
const RECORD_HEAD: usize = 9;
/// What a list takes from the pool: a typical response head's lines fit, so the buffer is not
/// grown; a longer head grows it to the next class, which the pool keeps as well.
const POOLED: usize = 1024;

impl HeaderList {
    /// An empty list whose buffer comes from the worker's pool (no allocation once the pool
    /// is warm). `HeaderList::default()` starts without a buffer and allocates on first use.
    pub fn from_pool(pool: &mut BufPool) -> HeaderList {
        HeaderList { mem: pool.get_vec(POOLED), lines: 0 }
    }

    /// Gives the buffer back to the pool; the list is empty (and bufferless) after it.
    /// nginx: the request pool's destruction.
    pub fn release(&mut self, pool: &mut BufPool) {
        self.lines = 0;
        let mem = std::mem::take(&mut self.mem);
        if mem.capacity() > 0 {
            pool.put(Buf::from_vec(mem));
        }
    }

    /// Empties the list, lines and kept strings, keeping the buffer for reuse.
    pub fn clear(&mut self) {
        self.mem.clear();
        self.lines = 0;
    }

    /// Appends a header line. nginx: `ngx_list_push()` and setting `h->key`, `h->value`.
    pub fn push(&mut self, name: &[u8], value: &[u8]) {
        self.push_kind(name, value, 0);
    }

    /// `push`, and the line's value as a `Text`, for an owner that also names the line
    /// (nginx: a `headers_out.last_modified` pointing at its list element).
    pub fn push_text(&mut self, name: &[u8], value: &[u8]) -> Text {
        let start = self.record(name.len(), name, value, 0);
        self.lines += 1;
        Text { start: start as u32, end: self.mem.len() as u32 }
    }

    /// Appends a header line with a byte of its owner's (what it learnt of the name, e.g.
    /// its entry in a table of known headers), given back by `iter_kinds`; `push` records 0.
    /// nginx: what `h->hash` is to `ngx_table_elt_t`'s users.
    pub fn push_kind(&mut self, name: &[u8], value: &[u8], kind: u8) {
        self.record(name.len(), name, value, kind);
        self.lines += 1;
    }

    /// Keeps a string that is not a header line (a status line, a content type) in the same
    /// buffer; `text` gives it back. nginx: `ngx_pnalloc()` + `ngx_memcpy()` into the pool.
    pub fn keep(&mut self, bytes: &[u8]) -> Text {
        let start = self.record(KEPT as usize, b"", bytes, 0);
        Text { start: start as u32, end: self.mem.len() as u32 }
    }

    /// The bytes of a string kept in this list (empty for a `Text` of another list's).
    pub fn text(&self, t: Text) -> &[u8] {
        self.mem.get(t.start as usize..t.end as usize).unwrap_or(b"")
    }

    /// Appends one record; returns where its value starts. A length beyond `u32` (more than
    /// any configured buffer can hold) is cut to what fits, so the record stays readable.
    #[inline]
    fn record(&mut self, name_len: usize, name: &[u8], value: &[u8], kind: u8) -> usize {
        const MAX: usize = KEPT as usize - 1;
        let (name, value) = (&name[..name.len().min(MAX)], &value[..value.len().min(MAX)]);
        let tag = if name_len == KEPT as usize { KEPT } else { name.len() as u32 };
        let mut head = [0u8; RECORD_HEAD];
        head[..4].copy_from_slice(&tag.to_le_bytes());
        head[4..8].copy_from_slice(&(value.len() as u32).to_le_bytes());
        head[8] = kind;
        self.mem.extend_from_slice(&head);
        self.mem.extend_from_slice(name);
        let start = self.mem.len();
        self.mem.extend_from_slice(value);
        start
    }

    /// Every header line, in order: (name as sent, value).
    pub fn iter(&self) -> Lines<'_> {
        Lines { records: Records { mem: &self.mem } }
    }

    /// Every header line, in order: (name as sent, value, the kind it was pushed with).
    pub fn iter_kinds(&self) -> Records<'_> {
        Records { mem: &self.mem }
    }

    /// The number of header lines.
    pub fn len(&self) -> usize {
        self.lines as usize
    }

    /// No header line.
    pub fn is_empty(&self) -> bool {
        self.lines == 0
    }

    /// The value of the first line named `name` (case-insensitive).
    pub fn get(&self, name: &[u8]) -> Option<&[u8]> {
        self.iter().find(|(n, _)| eq_nocase(n, name)).map(|(_, v)| v)
    }
}

/// The walk over a list's header lines (`HeaderList::iter`).
pub struct Lines<'a> {
    records: Records<'a>,
}

impl<'a> Iterator for Lines<'a> {
    type Item = (&'a [u8], &'a [u8]);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        self.records.next().map(|(n, v, _)| (n, v))
    }
}

/// The walk over a list's header lines with their kinds (`HeaderList::iter_kinds`).
pub struct Records<'a> {
    /// The records not yet walked.
    mem: &'a [u8],
}

impl<'a> Iterator for Records<'a> {
    type Item = (&'a [u8], &'a [u8], u8);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let head = self.mem.get(..RECORD_HEAD)?;
            let tag = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
            let value_len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
            let kind = head[8];
            let name_len = if tag == KEPT { 0 } else { tag as usize };
            let rest = &self.mem[RECORD_HEAD..];
            let (name, rest) = rest.split_at_checked(name_len)?;
            let (value, rest) = rest.split_at_checked(value_len)?;
            self.mem = rest;
            if tag != KEPT {
                return Some((name, value, kind));
            }
        }
    }
}

/// Whether two header names are the same, ignoring ASCII case, compared 8 (or 4) bytes at a
/// time. The list looks names up, and the proxy compares each line with its configured
/// names, for every request: `[u8]::eq_ignore_ascii_case` folds byte by byte. Words overlap
/// at the end rather than running past it. nginx compares hashes and `lowcase_key`s made
/// while parsing; rginx keeps no lower-case copy and folds while comparing.
#[inline]
pub fn eq_nocase(a: &[u8], b: &[u8]) -> bool {
    // Most names compared differ in length: that test stays inline at the caller.
    a.len() == b.len() && eq_nocase_same_len(a, b)
}

/// `eq_nocase` of two names of the same length.
fn eq_nocase_same_len(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n < 8 {
        if n < 4 {
            return a.eq_ignore_ascii_case(b);
        }
        let w4 = |s: &[u8], at: usize| word::<4>(s, at).map(|w| u64::from(u32::from_le_bytes(w)));
        return fold_eq(w4(a, 0), w4(b, 0)) && fold_eq(w4(a, n - 4), w4(b, n - 4));
    }
    let w8 = |s: &[u8], at: usize| word::<8>(s, at).map(u64::from_le_bytes);
    let mut at = 0;
    while at + 8 < n {
        if !fold_eq(w8(a, at), w8(b, at)) {
            return false;
        }
        at += 8;
    }
    fold_eq(w8(a, n - 8), w8(b, n - 8))
}

/// The `N` bytes of `s` at `at`, if there are as many.
#[inline]
pub(crate) fn word<const N: usize>(s: &[u8], at: usize) -> Option<[u8; N]> {
    s.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// Two words equal once their ASCII capitals are lowered.
#[inline]
fn fold_eq(x: Option<u64>, y: Option<u64>) -> bool {
    match (x, y) {
        (Some(x), Some(y)) => x == y || lower8(x) == lower8(y),
        _ => false,
    }
}

/// The 8 bytes of `x` with `A`..=`Z` lowered, others untouched: per byte, the high bit of
/// `low7 + 0x3f` says `>= 'A'` and of `low7 + 0x25` says `> 'Z'` (no carry crosses a byte:
/// `low7 <= 0x7f`); bytes >= 0x80 are left alone, as `to_ascii_lowercase` leaves them.
#[inline]
fn lower8(x: u64) -> u64 {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let low7 = x & LOW7;
    let ge_a = low7 + 0x3f3f_3f3f_3f3f_3f3f;
    let gt_z = low7 + 0x2525_2525_2525_2525;
    let upper = ge_a & !gt_z & !x & HIGH;
    x | (upper >> 2)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_pushed_line_named_by_its_text_is_one_line() {
        let mut l = super::HeaderList::default();
        l.push(b"X-A", b"1");
        let t = l.push_text(b"last-modified", b"Wed, 01 Jan 2025 00:00:00 GMT");
        assert_eq!(l.text(t), b"Wed, 01 Jan 2025 00:00:00 GMT");
        let lines: Vec<_> = l.iter().collect();
        assert_eq!(lines, [(&b"X-A"[..], &b"1"[..]), (&b"last-modified"[..], &b"Wed, 01 Jan 2025 00:00:00 GMT"[..])]);
    }

    #[test]
    fn eq_nocase_is_eq_ignore_ascii_case() {
        let names: &[&[u8]] = &[
            b"",
            b"a",
            b"A",
            b"ab",
            b"Ab",
            b"@",
            b"`",
            b"[",
            b"{",
            b"Host",
            b"HOST",
            b"host",
            b"hosT",
            b"Hos\x14",
            b"Connection",
            b"connectioN",
            b"CONNECTIO\x0e",
            b"Keep-Alive",
            b"Keep\rAlive",
            b"Content-Length",
            b"content-length",
            b"Transfer-Encoding",
            b"TRANSFER-ENCODING",
            b"Transfer-Encodinf",
            b"\xc1\xe1\xff\x80",
            b"\xe1\xe1\xff\x80",
            b"\xc1\xc1\xdf\xa0",
            b"Accept-Encoding",
            b"accept-encoding",
            b"User-Agent",
            b"Z[\\]^_`az{",
            b"z{|}~\x7f\x40ZA",
            b"X-Accel-Limit-Rate",
            b"x-accel-limit-ratE",
            b"x-accel-limit-rat\x05",
        ];
        for a in names {
            for b in names {
                assert_eq!(
                    super::eq_nocase(a, b),
                    a.eq_ignore_ascii_case(b),
                    "{:?} {:?}",
                    a.escape_ascii(),
                    b.escape_ascii()
                );
            }
        }
        for x in 0..=255u8 {
            for y in 0..=255u8 {
                let (a, b) = (
                    [b'k', b'e', x, b'p', b'-', b'a', b'l', b'i', y],
                    [b'K', b'E', y, b'P', b'-', b'A', b'L', b'I', x],
                );
                assert_eq!(super::eq_nocase(&a, &b), a.eq_ignore_ascii_case(&b), "{x:#x} {y:#x}");
                assert_eq!(super::eq_nocase(&a[..5], &b[..5]), a[..5].eq_ignore_ascii_case(&b[..5]), "{x:#x} {y:#x}");
            }
        }
    }

    use super::*;

    #[test]
    fn lines_and_kept_strings_share_the_buffer() {
        let mut pool = BufPool::default();
        let mut l = HeaderList::from_pool(&mut pool);
        let st = l.keep(b"200 OK");
        l.push(b"Content-Type", b"text/html");
        let ct = l.keep(b"text/plain");
        l.push(b"X-Raw", b"caf\xe9 \xff");
        l.push_kind(b"Empty", b"", 7);
        assert_eq!(l.len(), 3);
        let kinds: Vec<u8> = l.iter_kinds().map(|(_, _, k)| k).collect();
        assert_eq!(kinds, [0, 0, 7]);
        assert_eq!(l.text(st), b"200 OK");
        assert_eq!(l.text(ct), b"text/plain");
        let lines: Vec<_> = l.iter().collect();
        assert_eq!(lines, [(&b"Content-Type"[..], &b"text/html"[..]), (b"X-Raw", b"caf\xe9 \xff"), (b"Empty", b"")]);
        assert_eq!(l.get(b"x-raw"), Some(&b"caf\xe9 \xff"[..]));
        assert_eq!(l.get(b"missing"), None);
    }

    #[test]
    fn the_buffer_goes_back_to_the_pool_and_is_reused() {
        let mut pool = BufPool::default();
        let mut l = HeaderList::from_pool(&mut pool);
        l.push(b"A", b"1");
        let before = pool.pooled();
        l.release(&mut pool);
        assert!(l.is_empty() && l.iter().next().is_none());
        assert_eq!(pool.pooled(), before + POOLED);
        let l = HeaderList::from_pool(&mut pool);
        assert_eq!(pool.pooled(), before);
        assert!(l.is_empty());
    }

    #[test]
    fn clear_keeps_the_buffer_and_a_default_list_works_without_one() {
        let mut l = HeaderList::default();
        assert!(l.iter().next().is_none());
        l.push(b"A", b"1");
        let cap = l.mem.capacity();
        l.clear();
        assert!(l.is_empty() && l.iter().next().is_none());
        assert_eq!(l.mem.capacity(), cap);
        assert_eq!(l.text(Text { start: 5, end: 9 }), b"");
    }
}
