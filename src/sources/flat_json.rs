//! The fast path for JSON lines: one object per line, read once, building only the wanted
//! fields.
//!
//! sonic-rs builds its whole document before weir sees a field, and that document, the walk
//! over it and its teardown were most of the CPU of a filter-and-project job. This scanner
//! reads the line once, validating every byte as sonic-rs would, and builds only the wanted
//! fields: values it does not need (nested objects and arrays, strings with escapes) are
//! skipped by a structural scan that still validates them, escapes are decoded in the strings
//! it keeps, and a wanted nested value is built straight from its bytes. What it does not
//! handle (escaped keys at the top level, nesting deeper than [`MAX_DEPTH`], lone surrogates,
//! infinities, any error) makes it give up, and the caller parses the line with sonic-rs:
//! values and error messages are then sonic's, so this path can only be faster, never
//! different. Numbers are decided by `value::read_number`, as the general parser decides them
//! (a text that printing would not give back, such as `1.50`, is kept). A proptest holds the
//! two paths to the same result, on nested, escaped, non-ASCII and mangled lines.
//!
//! `scan_fields` and `scan_paths` read scalars of a line without building anything, for the
//! parse workers' pushed-down filter and folding. The file is over 800 lines because the
//! scanner is one state machine: its readers share `Scan` and its validation, and split
//! apart they would have to expose that.

use crate::value::{find_name, read_number, Lens, Literal, Map, NumberText, Str, Value, Wanted};

/// Bytes that end the quick scan of a string: the closing quote, an escape, or a control
/// character (not allowed raw in JSON).
static STR_STOP: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = true;
        c += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// Nesting the scanner follows (the line's own object is depth 1); a deeper value makes it
/// give up, and the general parser applies its own limit (`value::MAX_NESTING`).
pub const MAX_DEPTH: usize = 32;

/// Parses `line` (already trimmed of surrounding whitespace) when it is a JSON object,
/// keeping only the wanted fields when given (of a wanted object whose `Wanted` entry names
/// keys, only those keys, at any depth). `None` means "not handled here", never "bad": the
/// caller then parses the line the general way.
pub fn parse_flat(line: &[u8], fields: Option<&Wanted>) -> Option<Value> {
    let mut m = Map::with_capacity(fields.map_or(8, |w| w.names.len()));
    // Which wanted fields are in `m` already: a repeat goes through `insert` (last value wins
    // in the first position), the rest are appended without a search.
    let mut seen: u64 = 0;
    walk(line, |ks, ke, s| {
        let key = &s.b[ks..ke];
        match fields {
            Some(w) => match w.position(key) {
                Some(n) if n < 64 => {
                    let v = match &w.subs[n] {
                        Some(sub) if s.peek() == Some(b'{') => s.pruned(sub, 1)?,
                        _ => s.value()?,
                    };
                    if seen & (1 << n) == 0 {
                        seen |= 1 << n;
                        m.push_unique(w.names[n].clone(), v);
                    } else {
                        m.insert(w.names[n].clone(), v);
                    }
                }
                Some(_) => return None,
                None => s.skip()?,
            },
            None => {
                let v = s.value()?;
                m.insert(Str::new(s.t.get(ks..ke)?), v);
            }
        }
        Some(())
    })?;
    Some(Value::Object(m))
}

/// Reads the wanted fields of a flat object into `slots` (by position in `fields`, which
/// `parse_flat` explains), without building anything: the scalars borrow from `line`. A field
/// that is not there leaves its slot as it was (the caller clears them). `None` as for
/// `parse_flat`, and also when a wanted field appears twice.
pub fn scan_fields<'a>(
    line: &'a [u8],
    fields: &[Str],
    lens: &Lens,
    slots: &mut [Option<Scalar<'a>>],
) -> Option<()> {
    let mut seen: u64 = 0;
    walk(line, |ks, ke, s| {
        match find_name(&s.b[ks..ke], fields, lens) {
            Some(n) if n < 64 && seen & (1 << n) == 0 => {
                seen |= 1 << n;
                *slots.get_mut(n)? = Some(s.scalar()?);
            }
            Some(_) => return None,
            None => s.skip()?,
        }
        Some(())
    })
}

/// Paths of keys to read from a line, as a tree: at each level the names wanted there, each a
/// leaf (a slot of the caller's) or a subtree (an object to go into). What the parse workers
/// read of a line to fold it when a key or a sum is a nested path (`.kubernetes.pod_name`).
#[derive(Debug, Clone, Default)]
pub struct PathTree {
    names: Vec<Str>,
    lens: Lens,
    nodes: Vec<PathNode>,
}

#[derive(Debug, Clone)]
enum PathNode {
    Leaf(usize),
    Sub(Box<PathTree>),
}

impl PathTree {
    /// The tree of `paths` (none empty), slot `i` for `paths[i]`; `None` when one path is a
    /// prefix of another or repeats it, or a level would want more than 64 names.
    pub fn new(paths: &[Vec<Str>]) -> Option<PathTree> {
        let mut t = PathTree::default();
        for (slot, p) in paths.iter().enumerate() {
            t.add(p, slot)?;
        }
        Some(t)
    }

    fn add(&mut self, path: &[Str], slot: usize) -> Option<()> {
        let (first, rest) = path.split_first()?;
        match self.names.iter().position(|n| n == first) {
            None if self.names.len() < 64 => {
                let node = if rest.is_empty() {
                    PathNode::Leaf(slot)
                } else {
                    let mut t = PathTree::default();
                    t.add(rest, slot)?;
                    PathNode::Sub(Box::new(t))
                };
                self.names.push(first.clone());
                self.lens = Lens::of(&self.names);
                self.nodes.push(node);
                Some(())
            }
            None => None,
            Some(i) => match (&mut self.nodes[i], rest.is_empty()) {
                (PathNode::Sub(t), false) => t.add(rest, slot),
                _ => None,
            },
        }
    }
}

/// Reads the leaves of `tree` from the line into `slots`, as `scan_fields` does for top-level
/// names, going into the objects on the way without building anything. A path through `null`
/// leaves its slot as it was (`.a.b` of a null `.a` is null); through any other value that is
/// not an object it gives `None`, as does a wanted key twice in one object, so the caller
/// takes the record's own way, where the expression's error is reported.
pub fn scan_paths<'a>(
    line: &'a [u8],
    tree: &PathTree,
    slots: &mut [Option<Scalar<'a>>],
) -> Option<()> {
    let mut seen: u64 = 0;
    walk(line, |ks, ke, s| {
        match find_name(&s.b[ks..ke], &tree.names, &tree.lens) {
            Some(n) if seen & (1 << n) == 0 => {
                seen |= 1 << n;
                s.path_node(&tree.nodes[n], slots, 1)
            }
            Some(_) => None,
            None => s.skip(),
        }
    })
}

/// Walks the members of the line's object, validating the whole line: `member` gets each
/// key's span in the line and the scanner at its value, which it must read or skip. A key
/// with an escape makes it give up (the span would not be the key).
#[inline(always)]
fn walk<'a>(
    line: &'a [u8],
    member: impl FnMut(usize, usize, &mut Scan<'a>) -> Option<()>,
) -> Option<()> {
    walk_text(line, member).map(|_| ())
}

/// `walk`, giving the line's text (its UTF-8 checked) when it succeeds.
#[inline(always)]
fn walk_text<'a>(
    line: &'a [u8],
    mut member: impl FnMut(usize, usize, &mut Scan<'a>) -> Option<()>,
) -> Option<&'a str> {
    // One UTF-8 check for the whole line (SIMD, with a fast path for ASCII) instead of one
    // per string; every slice taken below starts and ends at an ASCII quote, so it is a valid
    // &str.
    let text = simdutf8::basic::from_utf8(line).ok()?;
    let mut s = Scan {
        t: text,
        b: line,
        i: 0,
    };
    if s.peek()? != b'{' {
        return None;
    }
    s.i += 1;
    s.ws();
    if s.peek()? == b'}' {
        s.i += 1;
        return s.at_end().then_some(text);
    }
    loop {
        if s.peek()? != b'"' {
            return None;
        }
        let (ks, ke) = s.span()?;
        s.colon()?;
        member(ks, ke, &mut s)?;
        if s.next_member(b'}')? {
            return s.at_end().then_some(text);
        }
    }
}

/// The value of four hex digits.
#[inline(always)]
fn hex4(b: &[u8]) -> Option<u32> {
    let mut u = 0;
    for &c in b {
        u = u * 16 + char::from(c).to_digit(16)?;
    }
    Some(u)
}

/// The text of a JSON string's contents (validated by `Scan::any_span`) with its escapes
/// decoded.
fn unescape(raw: &str) -> Option<String> {
    let b = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while let Some(n) = memchr::memchr(b'\\', &b[i..]) {
        out.push_str(raw.get(i..i + n)?);
        i += n;
        let c = match *b.get(i + 1)? {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let u = hex4(b.get(i + 2..i + 6)?)?;
                if (0xD800..0xDC00).contains(&u) {
                    let lo = hex4(b.get(i + 8..i + 12)?)?;
                    i += 6;
                    char::from_u32(0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00))?
                } else {
                    char::from_u32(u)?
                }
            }
            _ => return None,
        };
        out.push(c);
        i += if b[i + 1] == b'u' { 6 } else { 2 };
    }
    out.push_str(raw.get(i..)?);
    Some(out)
}

/// Powers of ten that an f64 holds exactly (Clinger's fast path).
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// A scalar as read, before it becomes a `Value`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scalar<'a> {
    Str(&'a str),
    Int(i64),
    Float(f64),
    /// A number that keeps its text (`value::Literal`): the text alone, so that a scalar stays
    /// three words; its value is read again when it is built (rare).
    Literal(&'a str),
    Bool(bool),
    Null,
}

impl Scalar<'_> {
    /// The value `parse_flat` builds for it.
    #[inline(always)]
    pub fn to_value(self) -> Value {
        match self {
            Scalar::Str(s) => Value::str(s),
            Scalar::Int(i) => Value::Int(i),
            Scalar::Float(f) => Value::Float(f, None),
            Scalar::Literal(text) => {
                Value::Float(text.parse().unwrap_or(f64::NAN), Some(Literal::new(text)))
            }
            Scalar::Bool(b) => Value::Bool(b),
            Scalar::Null => Value::Null,
        }
    }
}

struct Scan<'a> {
    t: &'a str,
    b: &'a [u8],
    i: usize,
}

impl<'a> Scan<'a> {
    #[inline(always)]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline(always)]
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    fn at_end(&mut self) -> bool {
        self.ws();
        self.i == self.b.len()
    }

    /// A string without escapes, starting at its opening quote.
    #[inline(always)]
    fn string(&mut self) -> Option<&'a str> {
        let (start, end) = self.span()?;
        self.t.get(start..end)
    }

    /// Where the contents of a string without escapes start and end, starting at its opening
    /// quote (the line was checked as UTF-8 already).
    #[inline(always)]
    fn span(&mut self) -> Option<(usize, usize)> {
        let start = self.i + 1;
        let j = self.stop(start);
        if *self.b.get(j)? != b'"' {
            return None;
        }
        self.i = j + 1;
        Some((start, j))
    }

    /// A string of any kind, starting at its opening quote, validated: where its contents
    /// start and end, and whether they hold an escape.
    #[inline(always)]
    fn any_span(&mut self) -> Option<(usize, usize, bool)> {
        let start = self.i + 1;
        let j = self.stop(start);
        if *self.b.get(j)? == b'"' {
            self.i = j + 1;
            return Some((start, j, false));
        }
        self.escaped_span(start, j)
    }

    /// The rest of `any_span` from the first stop byte at `j` that is not the closing quote:
    /// out of line, as most strings have no escape.
    #[cold]
    #[inline(never)]
    fn escaped_span(&mut self, start: usize, mut j: usize) -> Option<(usize, usize, bool)> {
        loop {
            match *self.b.get(j)? {
                b'"' => break,
                b'\\' => j = self.stop(self.escape_end(j)?),
                _ => return None,
            }
        }
        self.i = j + 1;
        Some((start, j, true))
    }

    /// The first quote, backslash or control character at or after `j` (or the end).
    #[inline(always)]
    fn stop(&self, mut j: usize) -> usize {
        // Sixteen bytes at a time where SSE2 is (every x86_64): strings are most of a log
        // line's bytes, and this loop was a quarter of the instructions of a k8s job when it
        // went eight bytes at a time.
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{
                __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8,
                _mm_or_si128, _mm_set1_epi8,
            };
            while j + 16 <= self.b.len() {
                // SAFETY: the 16 bytes from `j` are inside `self.b` (checked above), the load
                // is unaligned, and SSE2 is part of the x86_64 baseline.
                let flags = unsafe {
                    let x = _mm_loadu_si128(self.b.as_ptr().add(j).cast::<__m128i>());
                    let quote = _mm_cmpeq_epi8(x, _mm_set1_epi8(b'"' as i8));
                    let backslash = _mm_cmpeq_epi8(x, _mm_set1_epi8(b'\\' as i8));
                    // A control character: max(x, 0x1f) == 0x1f exactly when x <= 0x1f.
                    let low = _mm_set1_epi8(0x1f);
                    let control = _mm_cmpeq_epi8(_mm_max_epu8(x, low), low);
                    _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control))
                };
                if flags != 0 {
                    return j + flags.trailing_zeros() as usize;
                }
                j += 16;
            }
        }
        // Eight bytes at a time: the lowest flagged byte of `stops` is the first quote,
        // backslash or control character (the usual has-zero-byte trick; flags above the
        // first true one may be false, which never matters here).
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGH: u64 = 0x8080_8080_8080_8080;
        while let Some(chunk) = self.b.get(j..j + 8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            let x = u64::from_le_bytes(w);
            let q = x ^ (ONES * u64::from(b'"'));
            let bs = x ^ (ONES * u64::from(b'\\'));
            let stops = ((q.wrapping_sub(ONES) & !q)
                | (bs.wrapping_sub(ONES) & !bs)
                | (x.wrapping_sub(ONES * 0x20) & !x))
                & HIGH;
            if stops != 0 {
                return j + (stops.trailing_zeros() / 8) as usize;
            }
            j += 8;
        }
        while let Some(&c) = self.b.get(j) {
            if STR_STOP[c as usize] {
                break;
            }
            j += 1;
        }
        j
    }

    /// Validates the escape whose backslash is at `j` and returns where it ends. A surrogate
    /// must come in a pair (high then low); a lone one is left to sonic-rs.
    #[inline(always)]
    fn escape_end(&self, j: usize) -> Option<usize> {
        match *self.b.get(j + 1)? {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Some(j + 2),
            b'u' => {
                let u = hex4(self.b.get(j + 2..j + 6)?)?;
                match u {
                    0xD800..=0xDBFF => {
                        if self.b.get(j + 6..j + 8)? != b"\\u" {
                            return None;
                        }
                        let lo = hex4(self.b.get(j + 8..j + 12)?)?;
                        (0xDC00..=0xDFFF).contains(&lo).then_some(j + 12)
                    }
                    0xDC00..=0xDFFF => None,
                    _ => Some(j + 6),
                }
            }
            _ => None,
        }
    }

    /// A string's value, escapes decoded: borrowed when it has none.
    #[inline(always)]
    fn string_value(&mut self) -> Option<Value> {
        let (start, end, escaped) = self.any_span()?;
        if !escaped {
            return Some(Value::str(self.t.get(start..end)?));
        }
        Some(Value::Str(Str::from(unescape(self.t.get(start..end)?)?)))
    }

    /// A string's text with escapes decoded, for keys inside nested objects.
    #[inline(always)]
    fn key(&mut self) -> Option<Str> {
        let (start, end, escaped) = self.any_span()?;
        let raw = self.t.get(start..end)?;
        Some(if escaped {
            Str::from(unescape(raw)?)
        } else {
            Str::new(raw)
        })
    }

    /// Any value, read and validated, nothing built. `depth` is that of the container the
    /// value is in.
    fn skip_any(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => self.any_span().map(|_| ()),
            b'{' => self.skip_object(depth + 1),
            b'[' => self.members(depth + 1, b']', |s, d| s.skip_member(d)),
            _ => self.scalar().map(|_| ()),
        }
    }

    /// The members of a skipped object at `depth`, from its `{`: the usual `"key":"text",`
    /// (no whitespace) is read without looking for whitespace; anything else takes the
    /// general steps. Nested objects are most of what a filter skips in a log line.
    #[inline(always)]
    fn skip_object(&mut self, depth: usize) -> Option<()> {
        if self.open(depth, b'}')? {
            return Some(());
        }
        loop {
            if self.peek()? != b'"' {
                return None;
            }
            self.any_span()?;
            // `text_member` written out: through it, gh's jobs took 1.5% more instructions.
            if self.peek() == Some(b':') && self.b.get(self.i + 1) == Some(&b'"') {
                self.i += 1;
                self.any_span()?;
            } else {
                self.colon()?;
                self.skip_member(depth)?;
            }
            if self.next_member(b'}')? {
                return Some(());
            }
        }
    }

    /// Past the `{` or `[` at the scanner and the whitespace after it, at `depth`: true when
    /// the container is empty (its `close` read too).
    #[inline(always)]
    fn open(&mut self, depth: usize, close: u8) -> Option<bool> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.i += 1;
        self.ws();
        if self.peek()? == close {
            self.i += 1;
            return Some(true);
        }
        Some(false)
    }

    /// After a key: when the usual `:"text"` follows (no whitespace), reads it and says true;
    /// else reads nothing, for the general steps.
    #[inline(always)]
    fn text_member(&mut self) -> Option<bool> {
        if self.peek() == Some(b':') && self.b.get(self.i + 1) == Some(&b'"') {
            self.i += 1;
            self.any_span()?;
            return Some(true);
        }
        Some(false)
    }

    /// A value inside a skipped container: strings and scalars read here, so that only a
    /// nested container costs a call (most members of a nested object are strings).
    #[inline(always)]
    fn skip_member(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => self.any_span().map(|_| ()),
            b'{' | b'[' => self.skip_any(depth),
            _ => self.scalar().map(|_| ()),
        }
    }

    /// Any value, built (objects keep the first position and the last value of a repeated
    /// key, as the general parser does).
    fn build_any(&mut self, depth: usize) -> Option<Value> {
        match self.peek()? {
            b'"' => self.string_value(),
            b'{' => {
                let mut m = Map::new();
                // Keys seen, by a 64-bit mask of their (length, first byte, last byte) shape:
                // only a possible repeat is looked up.
                let mut seen: u64 = 0;
                self.members(depth + 1, b'}', |s, d| {
                    if s.peek()? != b'"' {
                        return None;
                    }
                    let k = s.key()?;
                    s.colon()?;
                    let v = s.build_any(d)?;
                    let b = k.as_bytes();
                    let h = (b.len() as u64)
                        .wrapping_mul(31)
                        .wrapping_add(u64::from(b.first().copied().unwrap_or(0)))
                        .wrapping_add(u64::from(b.last().copied().unwrap_or(0)).wrapping_mul(7))
                        % 64;
                    if seen & (1 << h) == 0 {
                        seen |= 1 << h;
                        m.push_unique(k, v);
                    } else {
                        m.insert(k, v);
                    }
                    Some(())
                })?;
                Some(Value::Object(m))
            }
            b'[' => {
                let mut a = Vec::new();
                self.members(depth + 1, b']', |s, d| {
                    a.push(s.build_any(d)?);
                    Some(())
                })?;
                Some(Value::Array(a))
            }
            _ => Some(self.scalar()?.to_value()),
        }
    }

    /// The key of an object's member and the `:` after it, read at the scanner: `find`'s
    /// answer for it (which wanted name it is, if any). An escaped key is compared decoded
    /// (rare: decoded only when it has an escape).
    #[inline(always)]
    fn member_key(&mut self, find: impl Fn(&[u8]) -> Option<usize>) -> Option<Option<usize>> {
        if self.peek()? != b'"' {
            return None;
        }
        let (start, end, escaped) = self.any_span()?;
        self.colon()?;
        if escaped {
            return self.decoded(start, end).map(|k| find(k.as_bytes()));
        }
        Some(find(self.b.get(start..end)?))
    }

    /// The text of `start..end` with its escapes decoded: out of line, as keys with escapes
    /// are rare and the code for them made the common case 3% slower inline.
    #[cold]
    #[inline(never)]
    fn decoded(&self, start: usize, end: usize) -> Option<String> {
        unescape(self.t.get(start..end)?)
    }

    /// The wanted keys of the object opening at the scanner, at `depth` (the line's object is
    /// 1), the rest skipped (validated); as `parse_flat` at the top level.
    fn pruned(&mut self, w: &Wanted, depth: usize) -> Option<Value> {
        let mut m = Map::with_capacity(w.names.len());
        let mut seen: u64 = 0;
        self.members(depth + 1, b'}', |s, d| {
            let Some(n) = s.member_key(|k| w.position(k))? else {
                return s.skip_member(d);
            };
            let v = match &w.subs[n] {
                Some(sub) if s.peek() == Some(b'{') => s.pruned(sub, d)?,
                _ => s.build_any(d)?,
            };
            if n < 64 && seen & (1 << n) == 0 {
                seen |= 1 << n;
                m.push_unique(w.names[n].clone(), v);
            } else {
                m.insert(w.names[n].clone(), v);
            }
            Some(())
        })?;
        Some(Value::Object(m))
    }

    /// The value of a `PathTree` node at the scanner: a leaf's scalar into its slot, or the
    /// wanted keys of an object (see `scan_paths`). `depth` is that of the container the
    /// value is in.
    fn path_node(
        &mut self,
        node: &PathNode,
        slots: &mut [Option<Scalar<'a>>],
        depth: usize,
    ) -> Option<()> {
        match node {
            PathNode::Leaf(i) => {
                *slots.get_mut(*i)? = Some(self.scalar()?);
                Some(())
            }
            PathNode::Sub(t) => match self.peek()? {
                b'{' => self.path_object(t, slots, depth),
                b'n' => self.literal(b"null", Scalar::Null).map(|_| ()),
                _ => None,
            },
        }
    }

    /// The wanted keys of the object opening at the scanner (see `path_node`); the others are
    /// skipped (validated).
    fn path_object(
        &mut self,
        t: &PathTree,
        slots: &mut [Option<Scalar<'a>>],
        depth: usize,
    ) -> Option<()> {
        let mut seen: u64 = 0;
        self.members(depth + 1, b'}', |s, d| {
            match s.member_key(|k| find_name(k, &t.names, &t.lens))? {
                None => s.skip_member(d),
                Some(n) if seen & (1 << n) == 0 => {
                    seen |= 1 << n;
                    s.path_node(&t.nodes[n], slots, d)
                }
                Some(_) => None,
            }
        })
    }

    /// The members of the object or array opening at the scanner (its `{` or `[`), at `depth`,
    /// up to and including `close`: `member` reads each one (for an object, its key too).
    #[inline(always)]
    fn members(
        &mut self,
        depth: usize,
        close: u8,
        mut member: impl FnMut(&mut Self, usize) -> Option<()>,
    ) -> Option<()> {
        if self.open(depth, close)? {
            return Some(());
        }
        loop {
            member(self, depth)?;
            if self.next_member(close)? {
                return Some(());
            }
        }
    }

    /// After a member: whether it was its container's last, read past the `close` (true) or
    /// the `,` (false) and the whitespace around them, looked for only where the next byte
    /// may be whitespace (lines seldom have any).
    #[inline(always)]
    fn next_member(&mut self, close: u8) -> Option<bool> {
        let mut c = self.peek()?;
        if c <= b' ' {
            self.ws();
            c = self.peek()?;
        }
        self.i += 1;
        if c == b',' {
            self.ws_if_any();
            return Some(false);
        }
        (c == close).then_some(true)
    }

    /// `ws` when the next byte may be whitespace.
    #[inline(always)]
    fn ws_if_any(&mut self) {
        if self.peek().is_some_and(|c| c <= b' ') {
            self.ws();
        }
    }

    /// The `:` after a key, with the whitespace around it.
    #[inline(always)]
    fn colon(&mut self) -> Option<()> {
        self.ws_if_any();
        if self.peek()? != b':' {
            return None;
        }
        self.i += 1;
        self.ws_if_any();
        Some(())
    }

    /// One member's value of the line's object, built.
    #[inline(always)]
    fn value(&mut self) -> Option<Value> {
        match self.peek()? {
            b'"' => self.string_value(),
            b'{' | b'[' => self.build_any(1),
            _ => Some(self.scalar()?.to_value()),
        }
    }

    /// One member's value of the line's object, read and validated, and nothing built.
    #[inline(always)]
    fn skip(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.any_span().map(|_| ()),
            b'{' | b'[' => self.skip_any(1),
            _ => self.scalar().map(|_| ()),
        }
    }

    /// One scalar value, read and validated but not built (nothing to drop afterwards).
    #[inline(always)]
    fn scalar(&mut self) -> Option<Scalar<'a>> {
        match self.peek()? {
            b'"' => self.string().map(Scalar::Str),
            b'-' | b'0'..=b'9' => self.number(),
            b't' => self.literal(b"true", Scalar::Bool(true)),
            b'f' => self.literal(b"false", Scalar::Bool(false)),
            b'n' => self.literal(b"null", Scalar::Null),
            _ => None,
        }
    }

    #[inline(always)]
    fn literal(&mut self, word: &[u8], v: Scalar<'a>) -> Option<Scalar<'a>> {
        if self.b.get(self.i..self.i + word.len())? != word {
            return None;
        }
        self.i += word.len();
        Some(v)
    }

    /// RFC 8259's number grammar. Integers of up to 18 digits and short decimals are built
    /// here; other texts go to `value::read_number`, and out-of-range floats to sonic-rs (for
    /// its message).
    #[inline(always)]
    fn number(&mut self) -> Option<Scalar<'a>> {
        let start = self.i;
        let neg = self.peek() == Some(b'-');
        if neg {
            self.i += 1;
        }
        let int_start = self.i;
        let mut n: i64 = 0;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            n = n.wrapping_mul(10).wrapping_add(i64::from(c - b'0'));
            self.i += 1;
        }
        let digits = self.i - int_start;
        if digits == 0 || (digits > 1 && self.b[int_start] == b'0') {
            return None;
        }
        let mut frac_digits = 0;
        let mut float = false;
        if self.peek() == Some(b'.') {
            self.i += 1;
            let frac_start = self.i;
            while let Some(c @ b'0'..=b'9') = self.peek() {
                n = n.wrapping_mul(10).wrapping_add(i64::from(c - b'0'));
                self.i += 1;
            }
            frac_digits = self.i - frac_start;
            if frac_digits == 0 {
                return None;
            }
            float = true;
        }
        let mut exp_part = false;
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            let exp_start = self.i;
            while let Some(b'0'..=b'9') = self.peek() {
                self.i += 1;
            }
            if self.i == exp_start {
                return None;
            }
            float = true;
            exp_part = true;
        }
        if float {
            // Clinger: a mantissa below 2^53 divided by an exact power of ten is one correctly
            // rounded operation, so it equals a full parse. Everything else gets the full parse.
            if !exp_part && digits + frac_digits <= 15 {
                let f = n as f64 / POW10[frac_digits];
                let f = if neg { -f } else { f };
                // Such a decimal prints as its text unless it ends in a zero (`1.50`, `2.0`) or
                // is small enough to print with an exponent: only those are checked in full
                // (`formats::tests::numbers_print_as_their_text` holds the shortcut to the check).
                if (self.b[self.i - 1] != b'0') & (f.abs() >= 1e-4) {
                    return Some(Scalar::Float(f));
                }
            }
            return self.read(start);
        }
        if digits > 18 || (neg && n == 0) {
            return self.read(start);
        }
        Some(Scalar::Int(if neg { -n } else { n }))
    }

    /// The number from `start` to here, read by `value::read_number` (out of line: the
    /// scanner's own cases stay small).
    #[cold]
    #[inline(never)]
    fn read(&self, start: usize) -> Option<Scalar<'a>> {
        let text = self.t.get(start..self.i)?;
        Some(match read_number(text)? {
            NumberText::Int(i) => Scalar::Int(i),
            NumberText::Float(f) => Scalar::Float(f),
            NumberText::Literal(_) => Scalar::Literal(text),
        })
    }
}

mod marks;
pub use marks::{build_marked, scan_marks, MarkTree, Marks};

#[cfg(test)]
mod tests;
