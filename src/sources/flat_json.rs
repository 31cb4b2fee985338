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

use crate::value::{read_number, Literal, Map, NumberText, Str, Value, Wanted};

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
    lens: u64,
    slots: &mut [Option<Scalar<'a>>],
) -> Option<()> {
    let mut seen: u64 = 0;
    walk(line, |ks, ke, s| {
        match wanted(&s.b[ks..ke], fields, lens) {
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

/// The position of `key` in `fields`, ruled out by its length first when it can be.
#[inline(always)]
fn wanted(key: &[u8], fields: &[Str], lens: u64) -> Option<usize> {
    if key.len() < 64 && lens & (1 << key.len()) == 0 {
        return None;
    }
    fields.iter().position(|f| f.as_bytes() == key)
}

/// Walks the members of the line's object, validating the whole line: `member` gets each
/// key's span in the line and the scanner at its value, which it must read or skip. A key
/// with an escape makes it give up (the span would not be the key).
#[inline(always)]
fn walk<'a>(
    line: &'a [u8],
    mut member: impl FnMut(usize, usize, &mut Scan<'a>) -> Option<()>,
) -> Option<()> {
    // One UTF-8 check for the whole line (word-at-a-time over ASCII) instead of one per
    // string; every slice taken below starts and ends at an ASCII quote, so it is a valid &str.
    let text = if is_ascii(line) {
        // SAFETY: ASCII is valid UTF-8. Log lines mostly are ASCII, and this check costs a
        // fraction of the general validation.
        unsafe { std::str::from_utf8_unchecked(line) }
    } else {
        std::str::from_utf8(line).ok()?
    };
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
        return s.at_end().then_some(());
    }
    loop {
        if s.peek()? != b'"' {
            return None;
        }
        let (ks, ke) = s.span()?;
        s.ws();
        if s.peek()? != b':' {
            return None;
        }
        s.i += 1;
        s.ws();
        member(ks, ke, &mut s)?;
        s.ws();
        match s.peek()? {
            b',' => {
                s.i += 1;
                s.ws();
            }
            b'}' => {
                s.i += 1;
                return s.at_end().then_some(());
            }
            _ => return None,
        }
    }
}

/// Whether every byte is ASCII: the high bits of all bytes or-ed together, eight at a time
/// (which the compiler turns into vector code; `<[u8]>::is_ascii` went byte by byte here).
#[inline(always)]
fn is_ascii(b: &[u8]) -> bool {
    let (words, rest) = b.as_chunks::<8>();
    let mut acc = 0u64;
    for w in words {
        acc |= u64::from_le_bytes(*w);
    }
    for &x in rest {
        acc |= u64::from(x);
    }
    acc & 0x8080_8080_8080_8080 == 0
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
            b'{' => self.members(depth + 1, b'}', |s, d| {
                if s.peek()? != b'"' {
                    return None;
                }
                s.any_span()?;
                s.colon()?;
                s.skip_any(d)
            }),
            b'[' => self.members(depth + 1, b']', |s, d| s.skip_any(d)),
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

    /// The wanted keys of the object opening at the scanner, at `depth` (the line's object is
    /// 1), the rest skipped (validated); as `parse_flat` at the top level.
    fn pruned(&mut self, w: &Wanted, depth: usize) -> Option<Value> {
        let mut m = Map::with_capacity(w.names.len());
        let mut seen: u64 = 0;
        self.members(depth + 1, b'}', |s, d| {
            if s.peek()? != b'"' {
                return None;
            }
            let (start, end, escaped) = s.any_span()?;
            s.colon()?;
            // An escaped key is compared decoded (rare: decoded only when it could match).
            let n = if escaped {
                let k = unescape(s.t.get(start..end)?)?;
                w.position(k.as_bytes())
            } else {
                w.position(s.b.get(start..end)?)
            };
            let Some(n) = n else {
                return s.skip_any(d);
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

    /// The members of the object or array opening at the scanner (its `{` or `[`), at `depth`,
    /// up to and including `close`: `member` reads each one (for an object, its key too).
    #[inline(always)]
    fn members(
        &mut self,
        depth: usize,
        close: u8,
        mut member: impl FnMut(&mut Self, usize) -> Option<()>,
    ) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.i += 1;
        self.ws();
        if self.peek()? == close {
            self.i += 1;
            return Some(());
        }
        loop {
            member(self, depth)?;
            self.ws();
            match self.peek()? {
                b',' => {
                    self.i += 1;
                    self.ws();
                }
                c if c == close => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// The `:` after a key, with the whitespace around it.
    #[inline(always)]
    fn colon(&mut self) -> Option<()> {
        self.ws();
        if self.peek()? != b':' {
            return None;
        }
        self.i += 1;
        self.ws();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::{length_mask, Projector};
    use proptest::prelude::*;

    fn same_as_general(line: &[u8], fields: Option<&[Str]>) {
        same_projected(line, fields.map(Projector::new));
    }

    /// Nested paths: `"a.b"` is `.a.b`.
    fn same_as_general_paths(line: &[u8], paths: &[&str]) {
        let paths: Vec<Vec<Str>> = paths
            .iter()
            .map(|p| p.split('.').map(Str::new).collect())
            .collect();
        same_projected(line, Some(Projector::new(&paths)));
    }

    fn same_projected(line: &[u8], p: Option<Projector>) {
        let shown = String::from_utf8_lossy(line);
        if let Some(fast) = parse_flat(line, p.as_ref().map(Projector::tree)) {
            let slow = match &p {
                Some(p) => p.parse(line),
                None => Value::from_json(line),
            }
            .unwrap_or_else(|e| panic!("fast path took a line sonic-rs refuses: {shown}: {e}"));
            assert_eq!(
                fast.to_json_string(),
                slow.to_json_string(),
                "fast and general paths differ on {shown}"
            );
            // Int and Float print alike for integral values; the kind must match too.
            let kinds = |v: &Value| -> Vec<&'static str> {
                v.as_object()
                    .map(|m| {
                        m.values()
                            .map(|x| match x {
                                Value::Int(_) => "int",
                                Value::Float(_, None) => "float",
                                Value::Float(_, Some(_)) => "float with its text",
                                other => other.type_name(),
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            };
            assert_eq!(kinds(&fast), kinds(&slow), "number kinds differ on {shown}");
        }
    }

    #[test]
    fn handles_the_common_line_and_gives_up_on_the_rest() {
        let line =
            br#"{"ts":"2026-11-01T00:00:00Z","status":200,"latency_ms":118.5,"ok":true,"x":null}"#;
        let v = parse_flat(line, None).expect("a flat line takes the fast path");
        assert_eq!(v.to_json_string(), std::str::from_utf8(line).unwrap());
        let want = [Str::new("status"), Str::new("ts")];
        let v = parse_flat(line, Some(Projector::new(&want).tree())).unwrap();
        assert_eq!(
            v.to_json_string(),
            r#"{"ts":"2026-11-01T00:00:00Z","status":200}"#
        );
        assert_eq!(parse_flat(br#"{ }"#, None).unwrap().to_json_string(), "{}");
        // Numbers keep their text when printing would not give it back.
        let line = r#"{"a":-0,"b":1234567890123456789,"c":415.50,"d":1e3,"e":123456789012345678901234567890,"f":0.00001,"g":2.5,"h":-0.0}"#;
        let v = parse_flat(line.as_bytes(), None).unwrap();
        assert_eq!(v.to_json_string(), line);
        assert!(matches!(v.field("g"), Some(Value::Float(_, None))));
        assert!(matches!(v.field("c"), Some(Value::Float(_, Some(_)))));
        // Escapes in values are decoded here; in top-level keys they leave the fast path.
        let v = parse_flat(br#"{"a":"x\"y\\z\/\n\u00e9\ud83d\ude00","b":"\t"}"#, None).unwrap();
        assert_eq!(v.to_json_string(), r#"{"a":"x\"y\\z/\né😀","b":"\t"}"#);
        let v = parse_flat(br#"{"a":"\n","b":1}"#, Some(Projector::new(&want).tree()));
        assert_eq!(v.unwrap().to_json_string(), r#"{}"#);
        for other in [
            &br#"{"a\n":1}"#[..],
            br#"{"a":"x\"}"#,
            br#"{"a\"":1}"#,
            br#"{"a":"\ud800"}"#,
            br#"{"a":"\udc00\ud800"}"#,
            br#"{"a":"\ud800\u0041"}"#,
            br#"{"a":"\x"}"#,
            br#"{"a":"\u12"}"#,
            br#"{"a":"\u12g4"}"#,
            br#"{"a":[1,]}"#,
            br#"{"a":[1 2]}"#,
            br#"{"a":{"b"}}"#,
            br#"{"a":{"b":1,}}"#,
            br#"{"a":{1:2}}"#,
            br#"{"a":[}"#,
            br#"{"a":{]}"#,
            br#"{"a":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}"#,
            br#"{"a":1e999}"#,
            br#"{"a":01}"#,
            br#"{"a":1.}"#,
            br#"{"a":.5}"#,
            br#"{"a":1e}"#,
            br#"{"a":tru}"#,
            br#"{"a":1,}"#,
            br#"{"a":1} x"#,
            br#"{"a" 1}"#,
            b"{\"a\":\"\x01\"}",
            b"{\"a\":\"\xff\"}",
            br#"{"a":1"#,
            br#"[1,2]"#,
            br#""s""#,
            b"",
        ] {
            assert!(
                parse_flat(other, None).is_none(),
                "{}",
                String::from_utf8_lossy(other)
            );
        }
    }

    /// Nested values and escaped strings are skipped (validated) when not wanted, and built,
    /// escapes decoded, when wanted.
    #[test]
    fn nested_values_and_escapes_are_skipped_or_built() {
        let line = br#"{"k":{"labels":{"app":"x","t":[1,2.5,true,null,"\u00e9\n"]},"e":{}},"m":"a \"q\" \ud83d\ude80 \/ \t","n":[]}"#;
        let v = parse_flat(line, None).expect("nested lines take the fast path");
        assert_eq!(
            v.to_json_string(),
            Value::from_json(line).unwrap().to_json_string()
        );
        assert_eq!(
            v.field("m").and_then(Value::as_str),
            Some("a \"q\" 🚀 / \t")
        );
        let want = [Str::new("n")];
        let v = parse_flat(line, Some(Projector::new(&want).tree())).unwrap();
        assert_eq!(v.to_json_string(), r#"{"n":[]}"#);
        let want = [Str::new("k")];
        let v = parse_flat(line, Some(Projector::new(&want).tree())).unwrap();
        assert_eq!(
            v.to_json_string(),
            r#"{"k":{"labels":{"app":"x","t":[1,2.5,true,null,"é\n"]},"e":{}}}"#
        );
        // Duplicate keys inside a nested object: first position, last value.
        let v = parse_flat(br#"{"o":{"a":1,"b":2,"a":3}}"#, None).unwrap();
        assert_eq!(v.to_json_string(), r#"{"o":{"a":3,"b":2}}"#);
        // The filter's own scan skips nested values too.
        let fields = [Str::new("s")];
        let mut slots = [None];
        let line = br#"{"k":{"a":[{"s":1}]},"m":"x\"y","s":404}"#;
        assert!(scan_fields(line, &fields, length_mask(&fields), &mut slots).is_some());
        assert_eq!(slots[0], Some(Scalar::Int(404)));
    }

    /// Invalid UTF-8 anywhere in a key or a string is refused, whichever eight-byte word (or
    /// the tail after the last whole word) of the ASCII check it falls in; valid UTF-8 there
    /// is read.
    #[test]
    fn invalid_utf8_is_refused_at_any_position() {
        let line = br#"{"abcdefghijklmnopq":"0123456789abcdefghijk","r":"s"}"#;
        for p in 2..line.len() - 2 {
            if line[p] == b'"' || line[p] == b':' || line[p] == b',' {
                continue;
            }
            let mut bad = line.to_vec();
            bad[p] = 0xff;
            assert!(parse_flat(&bad, None).is_none(), "byte {p}");
            let mut good = line.to_vec();
            good.splice(p..p + 1, "é".bytes());
            assert!(parse_flat(&good, None).is_some(), "byte {p}");
        }
    }

    #[test]
    fn duplicate_keys_keep_first_position_and_last_value() {
        let v = parse_flat(br#"{"a":1,"b":2,"a":3}"#, None).unwrap();
        assert_eq!(v.to_json_string(), r#"{"a":3,"b":2}"#);
        let want = [Str::new("a")];
        let v = parse_flat(
            br#"{"a":1,"b":2,"a":3}"#,
            Some(Projector::new(&want).tree()),
        )
        .unwrap();
        assert_eq!(v.to_json_string(), r#"{"a":3}"#);
    }

    fn scalar() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<i64>().prop_map(|i| i.to_string()),
            (0i64..1000).prop_map(|i| format!("-{i}")),
            any::<f64>().prop_map(|f| format!("{f:e}")),
            any::<f64>().prop_map(|f| format!("{f}")),
            "-?(0|[1-9][0-9]{0,20})(\\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?",
            "\"[a-z0-9 :/é\\-]{0,30}\"",
            Just("true".to_string()),
            Just("false".to_string()),
            Just("null".to_string()),
            // Numbers whose text printing would not give back.
            proptest::sample::select(vec![
                "-0", "-0.0", "1.0", "415.50", "1e3", "1.50e+2", "1E-7", "0.00001"
            ])
            .prop_map(str::to_string),
            "[1-9][0-9]{18,30}",
            // Strings long enough for the eight-byte scan, with a stop byte anywhere in them.
            proptest::collection::vec(
                proptest::sample::select(vec![
                    "a",
                    "0",
                    " ",
                    "é",
                    "\\\\",
                    "\\\"",
                    "\u{1}",
                    "\u{1f}",
                    "\t",
                    "\u{7f}",
                    "\\n",
                    "\\/",
                    "\\u00e9",
                    "\\u0000",
                    "\\ud83d\\ude00",
                    "\\ud800",
                    "\\udc00",
                    "\\x",
                    "\\u12",
                    "\\",
                    "\\b\\f\\r\\t"
                ]),
                0..24
            )
            .prop_map(|parts| format!("\"{}\"", parts.concat())),
            // A few that must leave the fast path.
            Just("\"a\\nb\"".to_string()),
            Just("[1,{\"x\":2}]".to_string()),
            Just("{\"y\":[]}".to_string()),
        ]
    }

    proptest! {
        #[test]
        fn fast_path_matches_sonic(
            fields in proptest::collection::vec(("[abc]{1,2}", scalar()), 0..6),
            spaces in proptest::collection::vec("[ \t]{0,2}", 4),
        ) {
            let body: Vec<String> = fields
                .iter()
                .map(|(k, v)| format!("{s0}\"{k}\"{s1}:{s2}{v}{s3}", s0 = spaces[0], s1 = spaces[1], s2 = spaces[2], s3 = spaces[3]))
                .collect();
            let line = format!("{{{}}}", body.join(","));
            same_as_general(line.as_bytes(), None);
            let want = [Str::new("a"), Str::new("bc"), Str::new("zz")];
            same_as_general(line.as_bytes(), Some(&want));
        }

        #[test]
        fn mangled_lines_never_pass_when_sonic_refuses(
            line in "\\{(\"[ab]\":(1|-0|1\\.5e3|\"x\"|true|nul|\\[\\]|,|\\}| )){0,4}\\}?",
        ) {
            same_as_general(line.as_bytes(), None);
        }

        /// Real-shaped lines: nested objects and arrays, escapes of every kind, non-ASCII
        /// text, repeated keys at any depth, whitespace between tokens; whole and projected.
        /// All are valid, and the fast path must take every one (a keyless escape aside).
        #[test]
        fn nested_and_escaped_lines_match_sonic(
            members in proptest::collection::vec((key(), value()), 0..6),
            ws in "[ \t]{0,2}",
        ) {
            let line = object(&members, &ws);
            let escaped_key = members.iter().any(|(k, _)| k.contains('\\'));
            prop_assert!(escaped_key || parse_flat(line.as_bytes(), None).is_some(), "not taken: {}", line);
            same_as_general(line.as_bytes(), None);
            let want = [Str::new("a"), Str::new("bc"), Str::new("zz")];
            same_as_general(line.as_bytes(), Some(&want));
            same_as_general_paths(line.as_bytes(), &["a.b", "bc", "c.a.c", "c.a.b.a", "c.a"]);
            same_as_general_paths(line.as_bytes(), &["b.a.b", "b.c", "a.é"]);
        }

        /// The same lines with one defect: a bad escape, a lone surrogate or a raw control
        /// character just after a quote (inside a key or a string at any depth, or outside
        /// one), or one byte deleted, replaced or inserted anywhere (structural characters,
        /// quotes, backslashes, invalid UTF-8). Whatever sonic-rs refuses, the fast path must
        /// not take, whether the defect is in a wanted field or a skipped one.
        #[test]
        fn mangled_nested_lines_never_pass_when_sonic_refuses(
            members in proptest::collection::vec((key(), value()), 1..5),
            at in any::<prop::sample::Index>(),
            edit in 0..4u8,
            byte in proptest::sample::select(b"{}[]\":,\\ u0e-.tn\xff\x01".to_vec()),
            bad in proptest::sample::select(vec![
                "\\x", "\\ud800", "\\udc00", "\\ud800\\u0041", "\\uDBFF\\uDBFF", "\\u12", "\\u12g4",
                "\\", "\u{1}", "\t", "\n", "\u{1f}",
            ]),
        ) {
            let mut line = object(&members, "").into_bytes();
            let i = at.index(line.len());
            match edit {
                0 => { line.remove(i); }
                1 => line[i] = byte,
                2 => line.insert(i, byte),
                _ => {
                    let quotes: Vec<usize> = (0..line.len()).filter(|&j| line[j] == b'"').collect();
                    let q = quotes[at.index(quotes.len())];
                    line.splice(q + 1..q + 1, bad.bytes());
                }
            }
            same_as_general(&line, None);
            let want = [Str::new("a"), Str::new("bc")];
            same_as_general(&line, Some(&want));
            same_as_general_paths(&line, &["a.b", "c.a.c"]);
        }
    }

    fn object(members: &[(String, String)], ws: &str) -> String {
        let body: Vec<String> = members
            .iter()
            .map(|(k, v)| format!("{ws}{k}{ws}:{ws}{v}{ws}"))
            .collect();
        format!("{{{}}}", body.join(","))
    }

    /// A key: mostly one of a few names (so that repeats and wanted names occur), sometimes
    /// with an escape or non-ASCII.
    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            8 => "\"[abc]{1,2}\"",
            1 => Just("\"a\\u0062\"".to_string()),
            1 => Just("\"\\\"\"".to_string()),
            1 => Just("\"zz\"".to_string()),
            1 => Just("\"é\"".to_string()),
        ]
    }

    /// A valid string of plain text, non-ASCII and escapes of every kind, long enough for
    /// the eight-byte scan.
    fn string() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            proptest::sample::select(vec![
                "a",
                "0",
                " ",
                "é",
                "日本",
                "🚀",
                "\\\\",
                "\\\"",
                "\\/",
                "\\b",
                "\\f",
                "\\n",
                "\\r",
                "\\t",
                "\\u00e9",
                "\\u0000",
                "\\uD83D\\uDE80",
                "\\udbff\\udfff",
                "\\u20AC",
                "\u{7f}",
            ]),
            0..20,
        )
        .prop_map(|parts| format!("\"{}\"", parts.concat()))
    }

    /// Any valid JSON value whose numbers the fast path reads itself, nested up to five
    /// levels (with the line's object, six).
    fn value() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            (-999_999i64..999_999).prop_map(|i| i.to_string()),
            "-?[1-9][0-9]{0,5}\\.[0-9]{1,4}",
            Just("true".to_string()),
            Just("false".to_string()),
            Just("null".to_string()),
            string(),
        ];
        leaf.prop_recursive(5, 48, 5, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..5)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                proptest::collection::vec((key(), inner), 0..5).prop_map(|m| object(&m, "")),
            ]
        })
    }
}
