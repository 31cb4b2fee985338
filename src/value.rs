//! The record type every stage works on.
//!
//! serde_json's `Value` sorts object keys (or pays for an `IndexMap`) and allocates for every
//! string; a record here keeps the field order the user wrote (as jq does), stores short keys and
//! strings inline (`CompactString`), and looks fields up by a linear scan, which beats hashing
//! for the ten-or-so fields of a log record. Numbers keep jq's model (one number line, `1 == 1.0`)
//! but remember whether they were integers, so sums of integers print as integers, and a number
//! read from input whose text printing would not give back (`415.50`, `1.0`, `1e3`) keeps that
//! text while it passes through unchanged ([`Literal`]), as jq 1.7 keeps number literals.
//!
//! A long file (about 1,000 lines): the value, its object map, its order and equality, its
//! JSON reader and printer and the number reader they share must agree on every value, and
//! they are easiest to keep agreeing side by side. Its tests are in `value/tests.rs`.

use compact_str::CompactString;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

pub type Str = CompactString;

#[derive(Clone, Debug, Default)]
pub enum Value {
    #[default]
    Null,
    Bool(bool),
    Int(i64),
    /// Any other number. The [`Literal`] is the input text of a number read from input when
    /// printing the value would not give that text back; only printing reads it (comparison,
    /// hashing, grouping and arithmetic use the value), and a computed number has none.
    Float(f64, Option<Literal>),
    Str(Str),
    Array(Vec<Value>),
    Object(Map),
}

/// The input text of a number (valid JSON number text) that printing its value would not give
/// back: `1.0`, `415.50`, `1e3`, `-0`, an integer beyond 64 bits. Only numbers read from input
/// have one, and only when their text is not canonical, so the usual number costs nothing: one
/// pointer-sized `None` beside the `f64` (a `Value` stays 32 bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Literal(Box<str>);

impl Literal {
    /// `text` must be JSON number text (the parsers made sure of it): it is printed as is.
    #[inline]
    pub(crate) fn new(text: &str) -> Literal {
        debug_assert!(is_number_text(text.as_bytes()), "{text}");
        Literal(text.into())
    }
    #[inline]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What the text of a JSON number reads as.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum NumberText {
    /// An integer that fits 64 bits, printed as its text.
    Int(i64),
    /// A number printed as its text.
    Float(f64),
    /// A number whose text printing would not give back: the text is kept.
    Literal(f64),
}

/// Reads the text of a JSON number (which the caller has checked against the grammar: see
/// [`is_number_text`]); `None` when its value is not finite. Every reader of numbers (the JSON
/// scanner, the general JSON parser, CSV inference) decides through this one function, so a
/// number reads the same whichever reader met it.
pub fn read_number(text: &str) -> Option<NumberText> {
    let b = text.as_bytes();
    if !b.iter().any(|c| matches!(c, b'.' | b'e' | b'E')) {
        match text.parse::<i64>() {
            // `-0` is a float (the integers have no negative zero): read below.
            Ok(0) if b[0] == b'-' => {}
            Ok(i) => return Some(NumberText::Int(i)),
            Err(_) => {}
        }
    }
    let f: f64 = text.parse().ok()?;
    if !f.is_finite() {
        return None;
    }
    // A fraction ending in a zero (`1.50`, `2.0`) is never how a number prints.
    let fraction_ends_in_zero =
        b.last() == Some(&b'0') && b.contains(&b'.') && !b.iter().any(|c| matches!(c, b'e' | b'E'));
    Some(if !fraction_ends_in_zero && float_prints_as(f, text) {
        NumberText::Float(f)
    } else {
        NumberText::Literal(f)
    })
}

/// Whether printing the number `f` gives exactly `text`. Printed into a stack buffer: no
/// allocation, whatever the answer.
pub fn float_prints_as(f: f64, text: &str) -> bool {
    let mut buf = [0u8; 48];
    let mut w = &mut buf[..];
    if serde_json::to_writer(&mut w, &Value::Float(f, None)).is_err() {
        // Longer than any number prints: not what it prints.
        return false;
    }
    let n = 48 - w.len();
    &buf[..n] == text.as_bytes()
}

/// RFC 8259's number grammar: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
pub fn is_number_text(b: &[u8]) -> bool {
    number_len(b) == Some(b.len())
}

/// The length of the number text at the start of `b` (the longest that the grammar of
/// [`is_number_text`] takes); `None` when what starts there breaks it (`01`, `1.`, `1e`, `-`).
pub fn number_len(b: &[u8]) -> Option<usize> {
    let digits = |i: usize| i + b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
    let int_start = usize::from(b.first() == Some(&b'-'));
    let mut i = digits(int_start);
    let int_len = i - int_start;
    if int_len == 0 || (int_len > 1 && b[int_start] == b'0') {
        return None;
    }
    if b.get(i) == Some(&b'.') {
        let end = digits(i + 1);
        if end == i + 1 {
            return None;
        }
        i = end;
    }
    if let Some(b'e' | b'E') = b.get(i) {
        let sign = usize::from(matches!(b.get(i + 1), Some(b'+' | b'-')));
        let end = digits(i + 1 + sign);
        if end == i + 1 + sign {
            return None;
        }
        i = end;
    }
    Some(i)
}

/// An insertion-ordered object. Setting an existing key keeps its position, as in jq.
#[derive(Clone, Debug, Default)]
pub struct Map(Vec<(Str, Value)>);

impl Map {
    pub fn new() -> Self {
        Map(Vec::new())
    }
    pub fn with_capacity(n: usize) -> Self {
        Map(Vec::with_capacity(n))
    }
    #[inline]
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0
            .iter()
            .find(|(k, _)| k.as_str() == key)
            .map(|(_, v)| v)
    }
    #[inline]
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        self.0
            .iter_mut()
            .find(|(k, _)| k.as_str() == key)
            .map(|(_, v)| v)
    }
    pub fn insert(&mut self, key: Str, value: Value) {
        match self.get_mut(&key) {
            Some(slot) => *slot = value,
            None => self.0.push((key, value)),
        }
    }
    /// Appends without checking for an existing key: for builders that know keys are unique.
    #[inline]
    pub fn push_unique(&mut self, key: Str, value: Value) {
        self.0.push((key, value));
    }
    pub fn clear(&mut self) {
        self.0.clear();
    }
    /// Becomes `{k1: .p1, k2: .p2, ...}` of itself, for `(k, p)` pairs of paths of fields none
    /// of which leads into another or repeats it: each value moves into its place (a missing
    /// field, or a path through `null`, gives `null`) and the rest is dropped, in this map's own
    /// storage (see `Expr::project_in_place`). False, with the map untouched, when a path goes
    /// through a value that is neither an object nor `null`.
    pub fn project(&mut self, pairs: &Projection) -> bool {
        if !pairs.iter().all(|(_, p)| self.reaches(p)) {
            return false;
        }
        let v = &mut self.0;
        // Below `i`, the result so far; from `i` on, the entries not taken yet, in some order.
        // An entry is free once no later path starts at it: no path leads into another, so a
        // top-level field's own entry is always free once its value is out, and a container
        // is free once the last path into it is done.
        let free = |v: &[(Str, Value)], later: &Projection, m: usize| {
            later.iter().all(|(_, p)| p[0] != v[m].0)
        };
        for (i, (key, path)) in pairs.iter().enumerate() {
            let later = &pairs[i + 1..];
            let (from, value) = take_path(v, i, path);
            // Its slot: the entry it came out of if free (no search, and its key is mostly
            // the one wanted), else any free entry, else a new one.
            let slot = from
                .filter(|&m| path.len() == 1 || free(v, later, m))
                .or_else(|| (i..v.len()).find(|&m| free(v, later, m)));
            match slot {
                Some(m) => {
                    v.swap(i, m);
                    if v[i].0 != *key {
                        v[i].0 = key.clone();
                    }
                    v[i].1 = value;
                }
                None => {
                    v.push((key.clone(), value));
                    let last = v.len() - 1;
                    v.swap(i, last);
                }
            }
        }
        v.truncate(pairs.len());
        // A record kept downstream (a window's, a join's) should not hold the storage of the
        // fields it lost: a few of many fields get storage of their own size.
        if v.capacity() > 16 && v.capacity() > 4 * v.len() {
            v.shrink_to_fit();
        }
        true
    }
    /// Whether `path` (not empty) can be read of this object without jq's error: every value
    /// on the way before its last field is an object or `null`, or is missing.
    fn reaches(&self, path: &[Str]) -> bool {
        let mut cur = self;
        for k in &path[..path.len().saturating_sub(1)] {
            match cur.get(k) {
                Some(Value::Object(m)) => cur = m,
                Some(Value::Null) | None => return true,
                Some(_) => return false,
            }
        }
        true
    }
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let i = self.0.iter().position(|(k, _)| k.as_str() == key)?;
        Some(self.0.remove(i).1)
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn iter(&self) -> impl Iterator<Item = (&Str, &Value)> {
        self.0.iter().map(|(k, v)| (k, v))
    }
    pub fn keys(&self) -> impl Iterator<Item = &Str> {
        self.0.iter().map(|(k, _)| k)
    }
    pub fn values(&self) -> impl Iterator<Item = &Value> {
        self.0.iter().map(|(_, v)| v)
    }
    pub fn into_vec(self) -> Vec<(Str, Value)> {
        self.0
    }
    pub fn from_vec(v: Vec<(Str, Value)>) -> Self {
        let mut m = Map::with_capacity(v.len());
        for (k, x) in v {
            m.insert(k, x);
        }
        m
    }
    /// Entries sorted by key: jq's notion of object identity ignores field order.
    pub fn sorted(&self) -> Vec<(&Str, &Value)> {
        let mut v: Vec<_> = self.iter().collect();
        v.sort_by(|a, b| a.0.cmp(b.0));
        v
    }
}

/// The `(key, path)` pairs of a projection (`{app: .k8s.labels.app, user}`), for
/// `Map::project`: each path is a field and the fields under it, never empty.
pub type Projection = [(Str, Box<[Str]>)];

/// The value at `path` (not empty) of the entries of an object from `from` on, moved out
/// (`null` left in its place), with the entry it is in; `null` when the path is missing or goes
/// through `null` (`Map::reaches` has ruled out anything else).
fn take_path(entries: &mut [(Str, Value)], from: usize, path: &[Str]) -> (Option<usize>, Value) {
    let Some((first, rest)) = path.split_first() else {
        return (None, Value::Null);
    };
    let Some(at) = entries[from..].iter().position(|(k, _)| k == first) else {
        return (None, Value::Null);
    };
    let at = from + at;
    let mut cur = &mut entries[at].1;
    for k in rest {
        cur = match cur {
            Value::Object(m) => match m.get_mut(k) {
                Some(x) => x,
                None => return (Some(at), Value::Null),
            },
            _ => return (Some(at), Value::Null),
        };
    }
    (Some(at), std::mem::take(cur))
}

impl FromIterator<(Str, Value)> for Map {
    fn from_iter<I: IntoIterator<Item = (Str, Value)>>(iter: I) -> Self {
        let mut m = Map::new();
        for (k, v) in iter {
            m.insert(k, v);
        }
        m
    }
}

impl Value {
    #[inline]
    pub fn str(s: &str) -> Value {
        Value::Str(Str::new(s))
    }

    /// jq's type names, used in error messages that users read.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Int(_) | Value::Float(..) => "number",
            Value::Str(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }

    /// jq truthiness: everything but `null` and `false` is true.
    #[inline]
    pub fn truthy(&self) -> bool {
        !matches!(self, Value::Null | Value::Bool(false))
    }

    #[inline]
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f, _) => Some(*f),
            _ => None,
        }
    }

    /// A computed number that is not an integer (no input text).
    #[inline]
    pub fn float(f: f64) -> Value {
        Value::Float(f, None)
    }

    /// The value of a JSON number's text (checked against the grammar by the caller): see
    /// [`read_number`]. `None` when it is not finite.
    pub fn from_number_text(text: &str) -> Option<Value> {
        Some(match read_number(text)? {
            NumberText::Int(i) => Value::Int(i),
            NumberText::Float(f) => Value::Float(f, None),
            NumberText::Literal(f) => Value::Float(f, Some(Literal::new(text))),
        })
    }

    #[inline]
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s.as_str()),
            _ => None,
        }
    }

    #[inline]
    pub fn as_object(&self) -> Option<&Map> {
        match self {
            Value::Object(m) => Some(m),
            _ => None,
        }
    }

    /// `.key` of an object; `null` for a missing key or a `null` input, as in jq.
    #[inline]
    pub fn field(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(m) => m.get(key),
            _ => None,
        }
    }

    /// Position of the value's type in jq's order (null < false < true < numbers < ...).
    pub(crate) fn rank(&self) -> u8 {
        match self {
            Value::Null => 0,
            Value::Bool(false) => 1,
            Value::Bool(true) => 2,
            Value::Int(_) | Value::Float(..) => 3,
            Value::Str(_) => 4,
            Value::Array(_) => 5,
            Value::Object(_) => 6,
        }
    }

    /// A float with an integral value that fits is turned back into an integer, so results
    /// like `10 / 2` or `avg` of whole numbers print as jq prints them.
    pub fn number(f: f64) -> Value {
        // -0 stays a float: jq prints it as `-0`.
        if f.fract() == 0.0 && f.abs() < 9.0e15 && !(f == 0.0 && f.is_sign_negative()) {
            Value::Int(f as i64)
        } else {
            Value::Float(f, None)
        }
    }

    /// Parses one JSON text. The error text names the column inside the text. Text nested
    /// deeper than [`MAX_NESTING`] is refused before parsing (every reader of values recurses).
    pub fn from_json(bytes: &[u8]) -> Result<Value, String> {
        match nesting(bytes) {
            0..=SHALLOW => parse_value(bytes),
            SHALLOW_1..=MAX_NESTING => on_big_stack(|| parse_value(bytes)),
            _ => Err(too_deep()),
        }
    }

    /// Parses one JSON text keeping only the listed top-level fields of an object (the rest
    /// is skipped without being built). A non-object comes back as its type, for messages.
    pub fn from_json_fields(bytes: &[u8], fields: &[Str]) -> Result<Value, String> {
        Projector::new(fields).parse(bytes)
    }

    /// Appends the compact JSON form to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        // Writing into a Vec cannot fail and every Value serializes.
        let _ = serde_json::to_writer(&mut *out, self);
    }

    pub fn to_json_string(&self) -> String {
        let mut v = Vec::new();
        self.write_json(&mut v);
        String::from_utf8(v).unwrap_or_default()
    }

    /// Text for places that want a plain string (CSV cells, keys): strings bare, rest as JSON.
    pub fn to_plain_string(&self) -> String {
        match self {
            Value::Str(s) => s.to_string(),
            Value::Null => String::new(),
            other => other.to_json_string(),
        }
    }
}

fn cmp_num(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => x.cmp(y),
        _ => {
            let x = a.as_f64().unwrap_or(0.0);
            let y = b.as_f64().unwrap_or(0.0);
            // As jq: NaN sorts below every number, and -0 equals 0 (as `Hash` has it).
            match (x.is_nan(), y.is_nan()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Less,
                (false, true) => Ordering::Greater,
                _ => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
            }
        }
    }
}

/// jq's total order: null < false < true < numbers < strings < arrays < objects; objects
/// compare by their sorted key lists, then by values in key order.
impl Ord for Value {
    fn cmp(&self, other: &Self) -> Ordering {
        // Window and group keys are mostly strings or integers.
        match (self, other) {
            (Value::Str(a), Value::Str(b)) => return a.cmp(b),
            (Value::Int(a), Value::Int(b)) => return a.cmp(b),
            _ => {}
        }
        let (ra, rb) = (self.rank(), other.rank());
        if ra != rb {
            return ra.cmp(&rb);
        }
        match (self, other) {
            (Value::Int(_) | Value::Float(..), _) => cmp_num(self, other),
            (Value::Str(a), Value::Str(b)) => a.cmp(b),
            (Value::Array(a), Value::Array(b)) => a.cmp(b),
            (Value::Object(a), Value::Object(b)) => {
                let (sa, sb) = (a.sorted(), b.sorted());
                let ka = sa.iter().map(|(k, _)| *k);
                let kb = sb.iter().map(|(k, _)| *k);
                match ka.cmp(kb) {
                    Ordering::Equal => {
                        let va = sa.iter().map(|(_, v)| *v);
                        let vb = sb.iter().map(|(_, v)| *v);
                        va.cmp(vb)
                    }
                    o => o,
                }
            }
            _ => Ordering::Equal,
        }
    }
}

impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Value {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        // Keys are mostly strings or integers: compare those directly (the same answer as
        // `cmp`, which would first rank both values).
        match (self, other) {
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            _ => self.cmp(other) == Ordering::Equal,
        }
    }
}
impl Eq for Value {}

impl PartialEq for Map {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(k, v)| other.get(k) == Some(v))
    }
}

/// Consistent with `Eq`: `1` and `1.0` hash alike (a number's input text is not hashed);
/// objects hash independent of field order.
impl Hash for Value {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.rank().hash(h);
        match self {
            Value::Int(i) => (*i as f64).to_bits().hash(h),
            Value::Float(f, _) => {
                let f = if *f == 0.0 {
                    0.0
                } else if f.is_nan() {
                    f64::NAN
                } else {
                    *f
                };
                f.to_bits().hash(h)
            }
            Value::Str(s) => s.hash(h),
            Value::Array(a) => a.hash(h),
            Value::Object(m) => {
                for (k, v) in m.sorted() {
                    k.hash(h);
                    v.hash(h);
                }
            }
            Value::Null | Value::Bool(_) => {}
        }
    }
}

/// A computed number as jq prints it (`jvp_dtoa_fmt`, the same in jq 1.6 and 1.7): the
/// shortest digits that read back as the same double, written out plainly unless the decimal
/// exponent is below -4 or more than 15 zeros would pad the digits, then as `d.ddde±XX` with
/// at least two exponent digits (`1e-07`, `1e+17`, `1.5e+300`); `-0` keeps its sign; NaN is
/// `null` and the infinities the largest finite doubles. Ryu finds the digits (the same as
/// jq's dtoa in its shortest mode); only the layout is jq's. Where ryu's own text is already
/// jq's (`12.5`, `0.001`), it is written as a plain f64, otherwise as raw JSON text.
fn serialize_f64_as_jq<S: Serializer>(f: f64, s: S) -> Result<S::Ok, S::Error> {
    if f.is_nan() {
        return s.serialize_unit();
    }
    let f = f.clamp(f64::MIN, f64::MAX);
    if f.fract() == 0.0 && f.abs() < 1e16 && !(f == 0.0 && f.is_sign_negative()) {
        // At most 16 digits and no padding beyond 15 zeros: jq writes these plainly.
        return s.serialize_i64(f as i64);
    }
    let mut r = ryu::Buffer::new();
    let ryu = r.format_finite(f);
    let mut buf = [0u8; 40];
    let text = jq_number_text(ryu, &mut buf);
    if text == ryu {
        return s.serialize_f64(f);
    }
    match serde_json::from_str::<&serde_json::value::RawValue>(text) {
        Ok(raw) => raw.serialize(s),
        Err(_) => s.serialize_f64(f),
    }
}

/// jq's layout of the number that ryu wrote as `ryu` (`-1.5e300`, `0.001`, `1e-7`, `100.0`).
fn jq_number_text<'b>(ryu: &str, buf: &'b mut [u8; 40]) -> &'b str {
    let (neg, t) = match ryu.strip_prefix('-') {
        Some(t) => (true, t),
        None => (false, ryu),
    };
    let (mant, exp) = match t.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (t, 0),
    };
    let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
    // The significant digits, and `point`: the value is 0.DIGITS × 10^point (dtoa's decpt).
    let mut digits = [0u8; 40];
    let mut n = 0;
    let mut point = int.len() as i32 + exp;
    for &c in int.as_bytes().iter().chain(frac.as_bytes()) {
        if n == 0 && c == b'0' {
            point -= 1;
            continue;
        }
        digits[n] = c;
        n += 1;
    }
    while n > 1 && digits[n - 1] == b'0' {
        n -= 1;
    }
    if n == 0 {
        // Zero (only -0 gets here): one digit.
        digits[0] = b'0';
        n = 1;
        point = 1;
    }
    let digits = &digits[..n];
    let mut w = 0;
    let mut put = |b: u8| {
        buf[w] = b;
        w += 1;
    };
    if neg {
        put(b'-');
    }
    if point <= -4 || point > n as i32 + 15 {
        put(digits[0]);
        if n > 1 {
            put(b'.');
            digits[1..].iter().for_each(|&d| put(d));
        }
        put(b'e');
        let e = point - 1;
        put(if e < 0 { b'-' } else { b'+' });
        let e = e.unsigned_abs();
        if e >= 100 {
            put(b'0' + (e / 100) as u8);
        }
        put(b'0' + (e / 10 % 10) as u8);
        put(b'0' + (e % 10) as u8);
    } else if point <= 0 {
        put(b'0');
        put(b'.');
        (point..0).for_each(|_| put(b'0'));
        digits.iter().for_each(|&d| put(d));
    } else {
        for (i, &d) in digits.iter().enumerate() {
            if i as i32 == point {
                put(b'.');
            }
            put(d);
        }
        (n as i32..point).for_each(|_| put(b'0'));
    }
    // ASCII digits, signs, '.' and 'e' only.
    std::str::from_utf8(&buf[..w]).unwrap_or("0")
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::Float(f, Some(lit)) => {
                // serde_json writes a raw value's text as it is (`raw_value` feature); the
                // text is JSON number text, so parsing it as one cannot fail.
                match serde_json::from_str::<&serde_json::value::RawValue>(lit.as_str()) {
                    Ok(raw) => raw.serialize(s),
                    Err(_) => serialize_f64_as_jq(*f, s),
                }
            }
            Value::Float(f, None) => serialize_f64_as_jq(*f, s),
            Value::Str(x) => s.serialize_str(x),
            Value::Array(a) => {
                let mut seq = s.serialize_seq(Some(a.len()))?;
                for v in a {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
            Value::Object(m) => {
                let mut map = s.serialize_map(Some(m.len()))?;
                for (k, v) in m.iter() {
                    map.serialize_entry(k.as_str(), v)?;
                }
                map.end()
            }
        }
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }
    fn visit_i64<E>(self, i: i64) -> Result<Value, E> {
        Ok(Value::Int(i))
    }
    fn visit_u64<E>(self, u: u64) -> Result<Value, E> {
        Ok(match i64::try_from(u) {
            Ok(i) => Value::Int(i),
            Err(_) => Value::Float(u as f64, None),
        })
    }
    fn visit_f64<E>(self, f: f64) -> Result<Value, E> {
        Ok(Value::Float(f, None))
    }
    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::Str(Str::new(s)))
    }
    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::Str(Str::from(s)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(x) = seq.next_element()? {
            v.push(x);
        }
        Ok(Value::Array(v))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut m = Map::with_capacity(map.size_hint().unwrap_or(8));
        let mut seen: u64 = 0;
        while let Some(k) = map.next_key::<KeyStr>()? {
            let v: Value = map.next_value()?;
            m.push_checked(&mut seen, k.0, v);
        }
        Ok(Value::Object(m))
    }
}

impl Map {
    /// Appends `key`, or replaces its value if it is there already (last wins in the first
    /// position, as jq). Duplicate keys are rare: `seen`, a 64-bit mask of the (length, first
    /// byte, last byte) shapes appended so far (start it at 0), sends only a possible duplicate
    /// down the linear check.
    #[inline]
    fn push_checked(&mut self, seen: &mut u64, key: Str, v: Value) {
        let b = key.as_bytes();
        let h = (b.len() as u64)
            .wrapping_mul(31)
            .wrapping_add(b.first().copied().unwrap_or(0) as u64)
            .wrapping_add((b.last().copied().unwrap_or(0) as u64).wrapping_mul(7))
            % 64;
        if *seen & (1 << h) == 0 {
            *seen |= 1 << h;
            self.push_unique(key, v);
        } else {
            self.insert(key, v);
        }
    }
}

/// Object keys go straight into a `CompactString` without an intermediate `String`.
struct KeyStr(Str);

impl<'de> Deserialize<'de> for KeyStr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KV;
        impl<'de> Visitor<'de> for KV {
            type Value = KeyStr;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<KeyStr, E> {
                Ok(KeyStr(Str::new(s)))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<KeyStr, E> {
                Ok(KeyStr(Str::from(s)))
            }
        }
        d.deserialize_str(KV)
    }
}

/// What a pipeline reads of a record: the wanted keys of an object and, for each, either its
/// whole value or (`Some`) only the wanted keys of it when it is an object. Built from paths
/// of keys (`Expr::input_paths`): `["a", "b"]` and `["c"]` keep `.a.b` and `.c` whole and drop
/// the other keys of `.a`. A value that is not an object where a path goes on is kept whole,
/// so an expression sees what it would see in the whole record (an error included).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Wanted {
    pub names: Vec<Str>,
    /// The names by length (see `Lens`).
    pub lens: Lens,
    pub subs: Vec<Option<Wanted>>,
}

impl Wanted {
    pub fn from_paths<P: AsRef<[Str]>>(paths: &[P]) -> Wanted {
        let mut w = Wanted::default();
        for p in paths {
            w.add(p.as_ref());
        }
        w
    }

    fn add(&mut self, path: &[Str]) {
        let Some((first, rest)) = path.split_first() else {
            return;
        };
        match self.names.iter().position(|n| n == first) {
            None => {
                self.names.push(first.clone());
                self.lens = Lens::of(&self.names);
                self.subs.push((!rest.is_empty()).then(|| {
                    let mut w = Wanted::default();
                    w.add(rest);
                    w
                }));
            }
            Some(i) => match &mut self.subs[i] {
                // Whole already.
                None => {}
                Some(_) if rest.is_empty() => self.subs[i] = None,
                Some(w) => w.add(rest),
            },
        }
    }

    /// The position of `key` among the names, ruled out by its length first when it can be.
    #[inline(always)]
    pub fn position(&self, key: &[u8]) -> Option<usize> {
        find_name(key, &self.names, &self.lens)
    }
}

/// The position of `key` in `names`, found by its length first (`lens` from `Lens::of`):
/// how the scanners look up each key of a line. Most keys are ruled out by length alone, and
/// only the names of the key's length are compared.
#[inline(always)]
pub fn find_name(key: &[u8], names: &[Str], lens: &Lens) -> Option<usize> {
    let n = key.len();
    if n >= 64 || lens.slow {
        return names.iter().position(|f| same_bytes(f.as_bytes(), key));
    }
    if lens.mask & (1 << n) == 0 {
        return None;
    }
    let mut i = usize::from(lens.first[n]);
    loop {
        if same_bytes(names.get(i)?.as_bytes(), key) {
            return Some(i);
        }
        i = usize::from(*lens.next.get(i)?);
    }
}

/// `a == b`, without a call for keys of up to 16 bytes (most keys): two overlapping loads
/// from each end. A call to `memcmp` per candidate key was 2% of a filter job.
#[inline(always)]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().unwrap_or([0; 8]));
    let half = |s: &[u8], at: usize| u32::from_le_bytes(s[at..at + 4].try_into().unwrap_or([0; 4]));
    match n {
        0 => true,
        1..=3 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        4..=7 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        _ => a == b,
    }
}

/// A path of keys into a record, or a single top-level name: what `Projector::new` takes.
pub trait FieldPath {
    fn keys(&self) -> &[Str];
}

impl FieldPath for Str {
    fn keys(&self) -> &[Str] {
        std::slice::from_ref(self)
    }
}

impl FieldPath for Vec<Str> {
    fn keys(&self) -> &[Str] {
        self
    }
}

/// Parses JSON objects keeping only the wanted fields (`Wanted`): sonic-rs parses and
/// validates the whole text into its own document (its fastest path), and only the wanted
/// parts become weir values. Whether a record is bad never depends on which fields are kept.
#[derive(Clone)]
pub struct Projector {
    wanted: Wanted,
}

/// Names by their length in bytes, for `find_name`: bit `n` of `mask` is set when a name is
/// `n` bytes long, `first[n]` is the position of the first such name and `next[i]` that of
/// the next name as long as name `i` (`NONE` after the last). Names of 64 bytes or more are
/// left out (keys that long are compared with every name), and so are all names when there
/// are too many to number (`slow`).
#[derive(Clone, Debug, PartialEq)]
pub struct Lens {
    pub mask: u64,
    first: [u16; 64],
    next: Vec<u16>,
    slow: bool,
}

const NONE: u16 = u16::MAX;

impl Default for Lens {
    fn default() -> Lens {
        Lens {
            mask: 0,
            first: [NONE; 64],
            next: Vec::new(),
            slow: false,
        }
    }
}

impl Lens {
    pub fn of(names: &[Str]) -> Lens {
        let mut l = Lens::default();
        if names.len() >= usize::from(NONE) {
            l.slow = true;
            return l;
        }
        l.next = vec![NONE; names.len()];
        // Chained from the last name back, so each chain runs in the names' order.
        for (i, f) in names.iter().enumerate().rev() {
            let n = f.len();
            if n < 64 {
                l.next[i] = l.first[n];
                // `i` < NONE, checked above.
                l.first[n] = i as u16;
                l.mask |= 1 << n;
            }
        }
        l
    }
}

impl Projector {
    /// From top-level names or paths of keys.
    pub fn new<P: FieldPath>(fields: &[P]) -> Projector {
        let paths: Vec<&[Str]> = fields.iter().map(|f| f.keys()).collect();
        Projector {
            wanted: Wanted::from_paths(&paths),
        }
    }

    /// The wanted top-level names and their length mask (names of 64 bytes or more are not
    /// in the mask; keys that long are always compared by name).
    pub fn wanted(&self) -> (&[Str], &Lens) {
        (&self.wanted.names, &self.wanted.lens)
    }

    /// The wanted fields, nested ones included.
    pub fn tree(&self) -> &Wanted {
        &self.wanted
    }

    pub fn parse(&self, bytes: &[u8]) -> Result<Value, String> {
        // sonic-rs's own document is its fastest parse (and validates everything, UTF-8
        // included); only the wanted fields are then turned into weir values.
        match nesting(bytes) {
            0..=SHALLOW => {}
            SHALLOW_1..=MAX_NESTING => return on_big_stack(|| self.parse_doc(bytes)),
            _ => return Err(too_deep()),
        }
        self.parse_doc(bytes)
    }

    fn parse_doc(&self, bytes: &[u8]) -> Result<Value, String> {
        use sonic_rs::JsonValueTrait;
        let doc = parse_doc(bytes)?;
        let v = if doc.is_object() {
            sonic_pruned(&doc, &self.wanted)
        } else {
            sonic_to_value(&doc)
        };
        // A number out of range is bad input whether or not its field is wanted.
        v.ok_or_else(|| number_error(bytes))
    }
}

/// The wanted parts of a sonic-rs object, as `Wanted` says; `None` when a number in it, kept
/// or not, is out of range.
fn sonic_pruned(doc: &sonic_rs::Value, w: &Wanted) -> Option<Value> {
    use sonic_rs::{JsonContainerTrait, JsonValueTrait};
    let mut m = Map::with_capacity(w.names.len());
    if let Some(obj) = doc.as_object() {
        for (k, v) in obj.iter() {
            if let Some(i) = w.position(k.as_bytes()) {
                // Last duplicate wins, as in jq.
                let v = match &w.subs[i] {
                    Some(sub) if v.is_object() => sonic_pruned(v, sub)?,
                    _ => sonic_to_value(v)?,
                };
                m.insert(w.names[i].clone(), v);
            } else if !finite_numbers(v) {
                return None;
            }
        }
    }
    Some(Value::Object(m))
}

/// How deep arrays and objects may nest in a JSON text read as input or state: as jq 1.6,
/// which refuses deeper input; the evaluation limits of expressions use the same bound.
pub const MAX_NESTING: usize = 256;
const SHALLOW: usize = 32;
const SHALLOW_1: usize = SHALLOW + 1;

/// Runs a parse of deeply nested text on a thread of its own: sonic-rs and serde recurse per
/// level, with frames of kilobytes in a debug build, past what an operator thread's stack
/// holds at [`MAX_NESTING`]. Such lines are rare; the thread costs tens of microseconds.
fn on_big_stack<T: Send>(f: impl FnOnce() -> Result<T, String> + Send) -> Result<T, String> {
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("weir:deep-json".into())
            .stack_size(64 << 20)
            .spawn_scoped(s, f)
            .map_err(|e| format!("cannot start a thread to parse deeply nested JSON: {e}"))?
            .join()
            .unwrap_or_else(|_| Err("the JSON parser failed on deeply nested text".into()))
    })
}

fn too_deep() -> String {
    format!("nested deeper than {MAX_NESTING} levels (arrays and objects)")
}

/// The deepest nesting of arrays and objects in `b`, counted up to `MAX_NESTING + 1`
/// (brackets inside strings do not count; the text need not be valid).
fn nesting(b: &[u8]) -> usize {
    let (mut depth, mut deepest, mut i) = (0usize, 0usize, 0);
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() {
                    match memchr::memchr2(b'"', b'\\', &b[i..]) {
                        Some(n) if b[i + n] == b'\\' => i += n + 2,
                        Some(n) => {
                            i += n;
                            break;
                        }
                        None => i = b.len(),
                    }
                }
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > deepest {
                    deepest = depth;
                    if deepest > MAX_NESTING {
                        return deepest;
                    }
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    deepest
}

/// One JSON text as a weir value (the general parser: any text the scanner of
/// `sources::flat_json` leaves).
fn parse_value(bytes: &[u8]) -> Result<Value, String> {
    sonic_to_value(&parse_doc(bytes)?).ok_or_else(|| number_error(bytes))
}

/// sonic-rs's document of `bytes` (its fastest parse, validating everything, UTF-8 included),
/// numbers kept as their text so that [`read_number`] decides them as the scanner does. Errors
/// are sonic-rs's own: a text the raw-number parse refuses is parsed again the ordinary way
/// for sonic's message (only bad input pays for that).
fn parse_doc(bytes: &[u8]) -> Result<sonic_rs::Value, String> {
    let raw = std::str::from_utf8(bytes).ok().and_then(|text| {
        let mut de = sonic_rs::Deserializer::from_str(text).use_rawnumber();
        let doc: sonic_rs::Value = de.deserialize().ok()?;
        de.end().ok()?;
        Some(doc)
    });
    match raw {
        Some(doc) => Ok(doc),
        None => sonic_rs::from_slice(bytes).map_err(|e| e.to_string()),
    }
}

/// sonic-rs's message for a text with a number out of range (which its raw-number parse lets
/// through): the ordinary parse refuses it.
fn number_error(bytes: &[u8]) -> String {
    match sonic_rs::from_slice::<sonic_rs::Value>(bytes) {
        Err(e) => e.to_string(),
        Ok(_) => "a number out of range".into(),
    }
}

/// The weir value of a document from [`parse_doc`]; `None` when a number in it is not finite
/// (`1e999`), which is bad input.
fn sonic_to_value(v: &sonic_rs::Value) -> Option<Value> {
    use sonic_rs::{JsonContainerTrait, JsonType, JsonValueTrait};
    Some(match v.get_type() {
        JsonType::Null => Value::Null,
        JsonType::Boolean => Value::Bool(v.as_bool().unwrap_or(false)),
        JsonType::Number => match v.as_raw_number() {
            Some(raw) => Value::from_number_text(raw.as_str())?,
            // A document parsed the ordinary way (only after the raw parse failed).
            None => match (v.as_i64(), v.as_u64()) {
                (Some(i), _) => Value::Int(i),
                (None, Some(u)) => Value::Float(u as f64, None),
                _ => Value::Float(v.as_f64().unwrap_or(0.0), None),
            },
        },
        JsonType::String => Value::str(v.as_str().unwrap_or("")),
        JsonType::Array => {
            let mut out = Vec::new();
            if let Some(a) = v.as_array() {
                out.reserve(a.len());
                for x in a.iter() {
                    out.push(sonic_to_value(x)?);
                }
            }
            Value::Array(out)
        }
        JsonType::Object => {
            let mut m = Map::new();
            if let Some(o) = v.as_object() {
                m = Map::with_capacity(o.len());
                let mut seen = 0;
                for (k, x) in o.iter() {
                    m.push_checked(&mut seen, Str::new(k), sonic_to_value(x)?);
                }
            }
            Value::Object(m)
        }
    })
}

/// Whether every number in a document from [`parse_doc`] is finite, for the parts a
/// projection does not build.
fn finite_numbers(v: &sonic_rs::Value) -> bool {
    use sonic_rs::{JsonContainerTrait, JsonType, JsonValueTrait};
    match v.get_type() {
        JsonType::Number => v.as_raw_number().is_none_or(|raw| {
            // Only an exponent or hundreds of digits take a number out of range.
            let t = raw.as_str();
            (t.len() < 300 && !t.contains(['e', 'E'])) || t.parse::<f64>().is_ok_and(f64::is_finite)
        }),
        JsonType::Array => v.as_array().is_none_or(|a| a.iter().all(finite_numbers)),
        JsonType::Object => v
            .as_object()
            .is_none_or(|o| o.iter().all(|(_, x)| finite_numbers(x))),
        _ => true,
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

impl From<serde_json::Value> for Value {
    fn from(v: serde_json::Value) -> Value {
        match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().unwrap_or(0.0), None),
            },
            serde_json::Value::String(s) => Value::Str(Str::from(s)),
            serde_json::Value::Array(a) => Value::Array(a.into_iter().map(Value::from).collect()),
            serde_json::Value::Object(o) => Value::Object(
                o.into_iter()
                    .map(|(k, v)| (Str::from(k), Value::from(v)))
                    .collect(),
            ),
        }
    }
}

#[cfg(test)]
mod tests;
