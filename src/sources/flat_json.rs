//! A fast path for the JSON line that logs are made of: one flat object whose values are
//! strings, plain numbers, booleans and nulls.
//!
//! sonic-rs builds its whole document before weir sees a field, and that document, the walk
//! over it and its teardown were most of the CPU of a filter-and-project job. This scanner
//! reads such a line once, validating every byte as sonic-rs would, and builds only the
//! wanted fields. A string value with escapes is decoded straight into the record's string
//! (a huge escaped line then costs the line and the record, not also a parser's scratch copy).
//! Anything it does not handle (escapes in keys, unusual escapes, nesting, numbers that do not
//! fit in an i64 with 18 digits, infinities, any error) makes it give up, and the caller
//! parses the line with sonic-rs: values and error messages are then sonic's, so this path
//! can only be faster, never different. A proptest holds the two paths to the same result.

use crate::value::{Map, Str, Value};

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

/// Parses `line` (already trimmed of surrounding whitespace) when it is a flat object of
/// simple values, keeping only the wanted fields when given: their names, and a mask with
/// bit `n` set when some name is `n` bytes long (most keys are ruled out by length alone).
/// `None` means "not handled here", never "bad": the caller then parses the line the general
/// way.
pub fn parse_flat(line: &[u8], fields: Option<(&[Str], u64)>) -> Option<Value> {
    let mut m = Map::with_capacity(fields.map_or(8, |(f, _)| f.len()));
    // Which wanted fields are in `m` already: a repeat goes through `insert` (last value wins
    // in the first position), the rest are appended without a search.
    let mut seen: u64 = 0;
    walk(line, |ks, ke, s| {
        let key = &s.b[ks..ke];
        match fields {
            Some((fields, lens)) => match wanted(key, fields, lens) {
                Some(n) if n < 64 => {
                    let v = s.value()?;
                    if seen & (1 << n) == 0 {
                        seen |= 1 << n;
                        m.push_unique(fields[n].clone(), v);
                    } else {
                        m.insert(fields[n].clone(), v);
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

/// Walks the members of a flat object, validating the whole line: `member` gets each key's
/// span in the line and the scanner at its value, which it must read or skip.
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
            Scalar::Float(f) => Value::Float(f),
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
        let mut j = start;
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
                j += (stops.trailing_zeros() / 8) as usize;
                break;
            }
            j += 8;
        }
        loop {
            let c = *self.b.get(j)?;
            if STR_STOP[c as usize] {
                if c != b'"' {
                    return None;
                }
                break;
            }
            j += 1;
        }
        self.i = j + 1;
        Some((start, j))
    }

    /// One scalar value.
    #[inline(always)]
    fn value(&mut self) -> Option<Value> {
        if self.peek()? == b'"' {
            if let Some(s) = self.string() {
                return Some(Value::str(s));
            }
            return self.escaped(true).map(|s| Value::Str(Str::from(s)));
        }
        Some(self.scalar()?.to_value())
    }

    /// One value read and validated, and nothing built.
    #[inline(always)]
    fn skip(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => match self.span() {
                Some(_) => Some(()),
                None => self.escaped(false).map(|_| ()),
            },
            _ => self.scalar().map(|_| ()),
        }
    }

    /// A string with escapes, starting at its opening quote, decoded (when `build`) into a
    /// string of its own: one allocation of at most the text's length, so that a huge line
    /// full of `\n` costs the line and the record, not a third copy in a parser's scratch
    /// buffer. `None` for anything sonic-rs is to judge: an escape other than the eight
    /// one-letter ones and `\uXXXX`, a surrogate that is not half of a pair, a control
    /// character.
    #[cold]
    fn escaped(&mut self, build: bool) -> Option<String> {
        let b = self.b;
        let start = self.i + 1;
        // Where it ends: the first quote not escaped.
        let mut end = start;
        loop {
            end += memchr::memchr2(b'"', b'\\', b.get(end..)?)?;
            if b[end] == b'"' {
                break;
            }
            end += 2;
        }
        let mut out = String::with_capacity(if build { end - start } else { 0 });
        let mut i = start;
        while i < end {
            let next = i + memchr::memchr(b'\\', &b[i..end]).unwrap_or(end - i);
            let plain = &b[i..next];
            if plain.iter().any(|&c| c < 0x20) {
                return None;
            }
            if build {
                // Between ASCII bytes of a line checked as UTF-8: whole characters.
                out.push_str(self.t.get(i..next)?);
            }
            if next == end {
                break;
            }
            let (c, len) = match *b.get(next + 1)? {
                b'"' => ('"', 2),
                b'\\' => ('\\', 2),
                b'/' => ('/', 2),
                b'b' => ('\u{8}', 2),
                b'f' => ('\u{c}', 2),
                b'n' => ('\n', 2),
                b'r' => ('\r', 2),
                b't' => ('\t', 2),
                b'u' => {
                    let hex = |at: usize| -> Option<u32> {
                        let h = self.t.get(at..at + 4)?;
                        if !h.bytes().all(|c| c.is_ascii_hexdigit()) {
                            return None;
                        }
                        u32::from_str_radix(h, 16).ok()
                    };
                    let hi = hex(next + 2)?;
                    match hi {
                        0xD800..=0xDBFF => {
                            if b.get(next + 6..next + 8)? != b"\\u" {
                                return None;
                            }
                            let lo = hex(next + 8)?;
                            if !(0xDC00..=0xDFFF).contains(&lo) {
                                return None;
                            }
                            let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                            (char::from_u32(c)?, 12)
                        }
                        0xDC00..=0xDFFF => return None,
                        _ => (char::from_u32(hi)?, 6),
                    }
                }
                _ => return None,
            };
            if build {
                out.push(c);
            }
            i = next + len;
        }
        self.i = end + 1;
        Some(out)
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

    /// RFC 8259's number grammar. Integers of up to 18 digits are built here; "-0", longer
    /// integers and out-of-range floats are left to sonic-rs, whose model decides them.
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
                return Some(Scalar::Float(if neg { -f } else { f }));
            }
            let f: f64 = self.t.get(start..self.i)?.parse().ok()?;
            return f.is_finite().then_some(Scalar::Float(f));
        }
        if digits > 18 || (neg && n == 0) {
            return None;
        }
        Some(Scalar::Int(if neg { -n } else { n }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Projector;
    use proptest::prelude::*;

    fn general(line: &[u8], fields: Option<&[Str]>) -> Result<Value, String> {
        match fields {
            Some(f) => Projector::new(f).parse(line),
            None => Value::from_json(line),
        }
    }

    fn same_as_general(line: &str, fields: Option<&[Str]>) {
        let p = fields.map(Projector::new);
        if let Some(fast) = parse_flat(line.as_bytes(), p.as_ref().map(Projector::wanted)) {
            let slow = general(line.as_bytes(), fields)
                .unwrap_or_else(|e| panic!("fast path took a line sonic-rs refuses: {line}: {e}"));
            assert_eq!(
                fast.to_json_string(),
                slow.to_json_string(),
                "fast and general paths differ on {line}"
            );
            // Int and Float print alike for integral values; the kind must match too.
            let kinds = |v: &Value| -> Vec<&'static str> {
                v.as_object()
                    .map(|m| {
                        m.values()
                            .map(|x| match x {
                                Value::Int(_) => "int",
                                Value::Float(_) => "float",
                                other => other.type_name(),
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            };
            assert_eq!(kinds(&fast), kinds(&slow), "number kinds differ on {line}");
        }
    }

    #[test]
    fn handles_the_common_line_and_gives_up_on_the_rest() {
        let line =
            br#"{"ts":"2026-11-01T00:00:00Z","status":200,"latency_ms":118.5,"ok":true,"x":null}"#;
        let v = parse_flat(line, None).expect("a flat line takes the fast path");
        assert_eq!(v.to_json_string(), std::str::from_utf8(line).unwrap());
        let want = [Str::new("status"), Str::new("ts")];
        let v = parse_flat(line, Some(Projector::new(&want).wanted())).unwrap();
        assert_eq!(
            v.to_json_string(),
            r#"{"ts":"2026-11-01T00:00:00Z","status":200}"#
        );
        assert_eq!(parse_flat(br#"{ }"#, None).unwrap().to_json_string(), "{}");
        // Escapes in values are decoded here; in keys they leave the fast path.
        let v = parse_flat(br#"{"a":"x\"y\\z\/\n\u00e9\ud83d\ude00","b":"\t"}"#, None).unwrap();
        assert_eq!(v.to_json_string(), r#"{"a":"x\"y\\z/\né😀","b":"\t"}"#);
        let v = parse_flat(br#"{"a":"\n","b":1}"#, Some(Projector::new(&want).wanted()));
        assert_eq!(v.unwrap().to_json_string(), r#"{}"#);
        for other in [
            &br#"{"a\n":1}"#[..],
            br#"{"a":"\ud800"}"#,
            br#"{"a":"\udc00\ud800"}"#,
            br#"{"a":"\ud800\u0041"}"#,
            br#"{"a":"\x"}"#,
            br#"{"a":"\u12"}"#,
            br#"{"a":"\u12g4"}"#,
            br#"{"a":"x\"}"#,
            br#"{"a":[1]}"#,
            br#"{"a":{"b":1}}"#,
            br#"{"a":-0}"#,
            br#"{"a":1234567890123456789}"#,
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
            Some(Projector::new(&want).wanted()),
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
            same_as_general(&line, None);
            let want = [Str::new("a"), Str::new("bc"), Str::new("zz")];
            same_as_general(&line, Some(&want));
        }

        #[test]
        fn mangled_lines_never_pass_when_sonic_refuses(
            line in "\\{(\"[ab]\":(1|-0|1\\.5e3|\"x\"|true|nul|\\[\\]|,|\\}| )){0,4}\\}?",
        ) {
            same_as_general(&line, None);
        }
    }
}
