//! jq's operators and built-in functions over [`Value`], with jq 1.7's semantics and
//! (lower-cased) error messages.
//!
//! A long file (about 880 lines): a flat list of jq's operators and built-ins, one function
//! each, called from the evaluators; they share only small helpers (`num`, `err`).

pub(crate) use super::base::desc;
use super::base::{index_error, iterate_error, ErrV, Key, MathOp};
use crate::value::{is_number_text, Map, Str, Value};
use std::borrow::Cow;
use std::cmp::Ordering;

type R = Result<Value, ErrV>;

fn err<T>(msg: String) -> Result<T, ErrV> {
    Err(ErrV::Msg(msg))
}

#[inline]
fn num(v: &Value) -> Option<f64> {
    v.as_f64()
}

pub(crate) fn neg(v: &Value) -> R {
    match v {
        // jq's numbers are doubles: `-0` and `0 | -.` are -0, printed `-0`.
        Value::Int(0) => Ok(Value::float(-0.0)),
        Value::Int(i) => Ok(i
            .checked_neg()
            .map_or(Value::float(-(*i as f64)), Value::Int)),
        Value::Float(f, _) => Ok(Value::number(-f)),
        v => err(format!("{} cannot be negated", desc(v))),
    }
}

fn math_err(l: &Value, r: &Value, what: &str) -> ErrV {
    ErrV::Msg(format!("{} and {} {what}", desc(l), desc(r)))
}

/// `l op r` for jq's arithmetic operators. The left operand is taken by `Cow` so that an
/// owned string, array or object can be extended in place.
pub(crate) fn math(op: MathOp, l: Cow<'_, Value>, r: &Value) -> R {
    use Value::*;
    // Fast path: integers stay integers while exact.
    if let (Int(a), Int(b)) = (&*l, r) {
        let (a, b) = (*a, *b);
        let exact = match op {
            MathOp::Add => a.checked_add(b),
            MathOp::Sub => a.checked_sub(b),
            MathOp::Mul => a.checked_mul(b),
            MathOp::Div => {
                if b == 0 {
                    return Err(math_err(
                        &l,
                        r,
                        "cannot be divided because the divisor is zero",
                    ));
                }
                match a.checked_rem(b) {
                    Some(0) => a.checked_div(b),
                    _ => None,
                }
            }
            MathOp::Rem => {
                if b == 0 {
                    return Err(math_err(
                        &l,
                        r,
                        "cannot be divided (remainder) because the divisor is zero",
                    ));
                }
                Some(a.checked_rem(b).unwrap_or(0))
            }
        };
        if let Some(x) = exact {
            return Ok(Int(x));
        }
    }
    if let (Some(a), Some(b)) = (num(&l), num(r)) {
        return match op {
            MathOp::Add => Ok(Value::number(a + b)),
            MathOp::Sub => Ok(Value::number(a - b)),
            MathOp::Mul => Ok(Value::number(a * b)),
            MathOp::Div => {
                if b == 0.0 {
                    Err(math_err(
                        &l,
                        r,
                        "cannot be divided because the divisor is zero",
                    ))
                } else {
                    Ok(Value::number(a / b))
                }
            }
            MathOp::Rem => {
                if a.is_nan() || b.is_nan() {
                    return Ok(Value::float(f64::NAN));
                }
                // jq truncates both operands to integers (saturating).
                let (x, y) = (a as i64, b as i64);
                if y == 0 {
                    return Err(math_err(
                        &l,
                        r,
                        "cannot be divided (remainder) because the divisor is zero",
                    ));
                }
                Ok(Int(x.checked_rem(y).unwrap_or(0)))
            }
        };
    }
    match op {
        MathOp::Add => add(l, r),
        MathOp::Sub => match (&*l, r) {
            (Array(a), Array(b)) => Ok(Array(
                a.iter().filter(|x| !b.contains(x)).cloned().collect(),
            )),
            _ => Err(math_err(&l, r, "cannot be subtracted")),
        },
        MathOp::Mul => match (&*l, r) {
            (Str(s), n @ (Int(_) | Float(..))) | (n @ (Int(_) | Float(..)), Str(s)) => {
                repeat(s, num(n).unwrap_or(0.0))
            }
            (Object(_), Object(b)) => {
                let mut a = l.into_owned();
                deep_merge(&mut a, b);
                Ok(a)
            }
            _ => Err(math_err(&l, r, "cannot be multiplied")),
        },
        MathOp::Div => match (&*l, r) {
            (Str(a), Str(b)) => Ok(split_str(a, b)),
            _ => Err(math_err(&l, r, "cannot be divided")),
        },
        MathOp::Rem => Err(math_err(&l, r, "cannot be divided (remainder)")),
    }
}

fn add(l: Cow<'_, Value>, r: &Value) -> R {
    use Value::*;
    match (l, r) {
        (l, Null) => Ok(l.into_owned()),
        (Cow::Borrowed(Null) | Cow::Owned(Null), r) => Ok(r.clone()),
        (Cow::Owned(Str(mut a)), Str(b)) => {
            a.push_str(b);
            Ok(Str(a))
        }
        (Cow::Borrowed(Str(a)), Str(b)) => {
            let mut s = crate::value::Str::with_capacity(a.len() + b.len());
            s.push_str(a);
            s.push_str(b);
            Ok(Str(s))
        }
        (Cow::Owned(Array(mut a)), Array(b)) => {
            a.extend(b.iter().cloned());
            Ok(Array(a))
        }
        (Cow::Borrowed(Array(a)), Array(b)) => {
            let mut v = Vec::with_capacity(a.len() + b.len());
            v.extend(a.iter().cloned());
            v.extend(b.iter().cloned());
            Ok(Array(v))
        }
        (l @ Cow::Owned(Object(_)) | l @ Cow::Borrowed(Object(_)), Object(b)) => {
            let mut a = match l.into_owned() {
                Object(a) => a,
                _ => Map::new(),
            };
            for (k, v) in b.iter() {
                a.insert(k.clone(), v.clone());
            }
            Ok(Object(a))
        }
        (l, r) => Err(math_err(&l, r, "cannot be added")),
    }
}

fn deep_merge(a: &mut Value, b: &Map) {
    if let Value::Object(am) = a {
        for (k, v) in b.iter() {
            match (am.get_mut(k), v) {
                (Some(slot @ Value::Object(_)), Value::Object(bm)) => deep_merge(slot, bm),
                (Some(slot), v) => *slot = v.clone(),
                (None, v) => am.push_unique(k.clone(), v.clone()),
            }
        }
    }
}

/// `"ab" * n`: jq repeats the string; `n <= 0` gives null.
fn repeat(s: &str, n: f64) -> R {
    if n.is_nan() || n <= 0.0 {
        return Ok(Value::Null);
    }
    let times = ((n - 1.0) as i64).saturating_add(1);
    if times <= 0 {
        return Ok(Value::Null);
    }
    if (times as u128).saturating_mul(s.len() as u128) > MAX_BUILD as u128 {
        return err(format!("repeat string result too long ({times} copies)"));
    }
    Ok(Value::Str(Str::from(s.repeat(times as usize))))
}

/// Upper bound on strings and arrays built from a number in the data (`"x" * n`,
/// `.[n] = v`), so that one bad record cannot exhaust memory.
const MAX_BUILD: usize = 1 << 28;

fn split_str(s: &str, sep: &str) -> Value {
    if s.is_empty() {
        return Value::Array(Vec::new());
    }
    if sep.is_empty() {
        return Value::Array(
            s.chars()
                .map(|c| Value::Str(Str::from(c.encode_utf8(&mut [0; 4]) as &str)))
                .collect(),
        );
    }
    Value::Array(s.split(sep).map(Value::str).collect())
}

/// `.[from:to]` on arrays, strings (by code point) and null.
pub(crate) fn slice(v: &Value, from: &Value, to: &Value) -> R {
    let len = match v {
        Value::Null => return Ok(Value::Null),
        Value::Array(a) => a.len(),
        Value::Str(s) => s.chars().count(),
        v => return Err(index_error(v, &Value::Object(Map::new()))),
    };
    let bound = |b: &Value, default: f64| -> Result<f64, ErrV> {
        match b {
            Value::Null => Ok(default),
            Value::Int(i) => Ok(*i as f64),
            Value::Float(f, _) => Ok(*f),
            _ => err("start and end indices of an array slice must be numbers".into()),
        }
    };
    let lenf = len as f64;
    let mut start = bound(from, 0.0)?;
    let mut end = bound(to, lenf)?;
    if start < 0.0 {
        start += lenf;
    }
    if end < 0.0 {
        end += lenf;
    }
    // As jq: the start rounded down, the end up (`.[1.2:3.7]` is `.[1:4]`), and only then
    // an end before the start makes the slice empty (`.[2.5:1.5]` is `.[2:2]`).
    start = start.clamp(0.0, lenf);
    end = end.min(lenf);
    let s = start.floor() as usize;
    let e = (end.ceil().max(0.0) as usize).clamp(s, len);
    Ok(match v {
        Value::Array(a) => Value::Array(a[s..e].to_vec()),
        Value::Str(st) => Value::Str(st.chars().skip(s).take(e - s).collect::<String>().into()),
        _ => Value::Null,
    })
}

/// `.[{"start": a, "end": b}]`
pub(crate) fn slice_obj(v: &Value, key: &Value) -> R {
    match (v, key) {
        (Value::Array(_) | Value::Str(_) | Value::Null, Value::Object(m)) => {
            let s = m.get("start").unwrap_or(&Value::Null);
            let e = m.get("end").unwrap_or(&Value::Null);
            slice(v, s, e)
        }
        (v, k) => Err(index_error(v, k)),
    }
}

/// `.[array]`: the positions where `b` occurs in `a`.
pub(crate) fn indices(a: &[Value], b: &[Value]) -> Value {
    if b.is_empty() {
        return Value::Null;
    }
    Value::Array(
        a.windows(b.len())
            .enumerate()
            .filter(|(_, w)| *w == b)
            .map(|(i, _)| Value::Int(i as i64))
            .collect(),
    )
}

// --- paths for assignment and del ---------------------------------------------------------

pub(crate) fn get_path<'a>(v: &'a Value, path: &[Key]) -> Result<&'a Value, ErrV> {
    let mut cur = v;
    for k in path {
        match super::base::index_ref(cur, k)? {
            Some(c) => cur = c,
            None => return Ok(&super::base::NULL),
        }
    }
    Ok(cur)
}

pub(crate) fn set_path(v: &mut Value, path: &[Key], new: Value) -> Result<(), ErrV> {
    let Some((k, rest)) = path.split_first() else {
        *v = new;
        return Ok(());
    };
    if matches!(v, Value::Null) {
        *v = match k {
            Key::Field(_) => Value::Object(Map::new()),
            Key::Index(_) => Value::Array(Vec::new()),
        };
    }
    match (v, k) {
        (Value::Object(m), Key::Field(f)) => {
            if let Some(slot) = m.get_mut(f) {
                return set_path(slot, rest, new);
            }
            let mut child = Value::Null;
            set_path(&mut child, rest, new)?;
            m.push_unique(f.clone(), child);
            Ok(())
        }
        (Value::Array(a), Key::Index(i)) => {
            let i = if *i < 0 { *i + a.len() as i64 } else { *i };
            if i < 0 {
                return err("out of bounds negative array index".into());
            }
            let i = i as usize;
            if i >= a.len() {
                if i > MAX_BUILD {
                    return err(format!("array index too large: {i}"));
                }
                a.resize(i + 1, Value::Null);
            }
            set_path(&mut a[i], rest, new)
        }
        (v, Key::Field(f)) => Err(index_error(v, &Value::Str(f.clone()))),
        (v, Key::Index(i)) => Err(index_error(v, &Value::Int(*i))),
    }
}

pub(crate) fn del_path(v: &mut Value, path: &[Key]) -> Result<(), ErrV> {
    let Some((k, rest)) = path.split_first() else {
        *v = Value::Null;
        return Ok(());
    };
    match (v, k) {
        (Value::Null, _) => Ok(()),
        (Value::Object(m), Key::Field(f)) => {
            if rest.is_empty() {
                m.remove(f);
                Ok(())
            } else {
                match m.get_mut(f) {
                    Some(c) => del_path(c, rest),
                    None => Ok(()),
                }
            }
        }
        (Value::Array(a), Key::Index(i)) => {
            let i = if *i < 0 { *i + a.len() as i64 } else { *i };
            if i < 0 || i as usize >= a.len() {
                return Ok(());
            }
            if rest.is_empty() {
                a.remove(i as usize);
                Ok(())
            } else {
                del_path(&mut a[i as usize], rest)
            }
        }
        (v, Key::Field(f)) => Err(index_error(v, &Value::Str(f.clone()))),
        (v, Key::Index(i)) => Err(index_error(v, &Value::Int(*i))),
    }
}

// --- functions of the input ---------------------------------------------------------------

pub(crate) fn length(v: &Value) -> R {
    Ok(match v {
        Value::Null => Value::Int(0),
        Value::Bool(_) => return err(format!("{} has no length", desc(v))),
        Value::Int(i) => i
            .checked_abs()
            .map_or(Value::float((*i as f64).abs()), Value::Int),
        Value::Float(f, _) => Value::number(f.abs()),
        Value::Str(s) => Value::Int(s.chars().count() as i64),
        Value::Array(a) => Value::Int(a.len() as i64),
        Value::Object(m) => Value::Int(m.len() as i64),
    })
}

pub(crate) fn utf8bytelength(v: &Value) -> R {
    match v {
        Value::Str(s) => Ok(Value::Int(s.len() as i64)),
        v => err(format!("{} only strings have UTF-8 byte length", desc(v))),
    }
}

pub(crate) fn not(v: &Value) -> R {
    Ok(Value::Bool(!v.truthy()))
}

pub(crate) fn type_of(v: &Value) -> R {
    Ok(Value::str(v.type_name()))
}

pub(crate) fn keys(v: &Value) -> R {
    match v {
        Value::Object(m) => {
            let mut ks: Vec<&Str> = m.keys().collect();
            ks.sort();
            Ok(Value::Array(
                ks.into_iter().map(|k| Value::Str(k.clone())).collect(),
            ))
        }
        Value::Array(a) => Ok(Value::Array((0..a.len() as i64).map(Value::Int).collect())),
        v => err(format!("{} has no keys", desc(v))),
    }
}

pub(crate) fn keys_unsorted(v: &Value) -> R {
    match v {
        Value::Object(m) => Ok(Value::Array(
            m.keys().map(|k| Value::Str(k.clone())).collect(),
        )),
        v => keys(v),
    }
}

pub(crate) fn tostring(v: &Value) -> R {
    Ok(match v {
        Value::Str(_) => v.clone(),
        v => Value::Str(Str::from(v.to_json_string())),
    })
}

pub(crate) fn tojson(v: &Value) -> R {
    Ok(Value::Str(Str::from(v.to_json_string())))
}

pub(crate) fn fromjson(v: &Value) -> R {
    match v {
        Value::Str(s) => Value::from_json(s.as_bytes())
            .map_err(|e| ErrV::Msg(format!("{e} (while parsing '{s}')"))),
        v => err(format!(
            "{} cannot be parsed as JSON, as it is not a string",
            desc(v)
        )),
    }
}

pub(crate) fn tonumber(v: &Value) -> R {
    match v {
        Value::Int(_) | Value::Float(..) => Ok(v.clone()),
        Value::Str(s) => {
            let t = s.trim();
            let ok = !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'));
            // JSON number text is read as input numbers are (`"1.50"` keeps its text); other
            // forms jq's strtod takes (`+3`, `.5`, `1.`) are computed.
            let json = ok && is_number_text(t.as_bytes());
            match json.then(|| Value::from_number_text(t)).flatten() {
                Some(n) => Ok(n),
                None => match t.parse::<f64>() {
                    Ok(f) if ok => Ok(Value::number(f)),
                    _ => err(format!("cannot parse '{s}' as a number")),
                },
            }
        }
        v => err(format!("{} cannot be parsed as a number", desc(v))),
    }
}

pub(crate) fn ascii_downcase(v: &Value) -> R {
    match v {
        Value::Str(s) => Ok(Value::Str(Str::from(s.to_ascii_lowercase()))),
        _ => err("ascii_downcase input must be a string".into()),
    }
}

pub(crate) fn ascii_upcase(v: &Value) -> R {
    match v {
        Value::Str(s) => Ok(Value::Str(Str::from(s.to_ascii_uppercase()))),
        _ => err("ascii_upcase input must be a string".into()),
    }
}

fn math1(v: &Value, f: fn(f64) -> f64, int_same: bool) -> R {
    match v {
        Value::Int(_) if int_same => Ok(v.clone()),
        Value::Int(i) => Ok(Value::number(f(*i as f64))),
        Value::Float(x, _) => Ok(Value::number(f(*x))),
        v => err(format!("{} number required", desc(v))),
    }
}

pub(crate) fn floor(v: &Value) -> R {
    math1(v, f64::floor, true)
}
pub(crate) fn ceil(v: &Value) -> R {
    math1(v, f64::ceil, true)
}
pub(crate) fn round(v: &Value) -> R {
    math1(v, f64::round, true)
}
pub(crate) fn sqrt(v: &Value) -> R {
    math1(v, f64::sqrt, false)
}
pub(crate) fn fabs(v: &Value) -> R {
    match v {
        Value::Int(i) => Ok(i
            .checked_abs()
            .map_or(Value::float((*i as f64).abs()), Value::Int)),
        v => math1(v, f64::abs, false),
    }
}
pub(crate) fn abs(v: &Value) -> R {
    match v {
        Value::Int(_) | Value::Float(..) => fabs(v),
        v => err(format!("{} has no absolute value", desc(v))),
    }
}

fn values_of(v: &Value) -> Result<Vec<&Value>, ErrV> {
    match v {
        Value::Array(a) => Ok(a.iter().collect()),
        Value::Object(m) => Ok(m.values().collect()),
        v => err(iterate_error(v)),
    }
}

pub(crate) fn add_all(v: &Value) -> R {
    let mut acc = Value::Null;
    for x in values_of(v)? {
        acc = math(MathOp::Add, Cow::Owned(acc), x)?;
    }
    Ok(acc)
}

fn sortable(v: &Value) -> Result<&[Value], ErrV> {
    match v {
        Value::Array(a) => Ok(a),
        v => err(format!(
            "{} cannot be sorted, as it is not an array",
            desc(v)
        )),
    }
}

pub(crate) fn min(v: &Value) -> R {
    Ok(sortable(v)?.iter().min().cloned().unwrap_or(Value::Null))
}

pub(crate) fn max(v: &Value) -> R {
    Ok(sortable(v)?.iter().max().cloned().unwrap_or(Value::Null))
}

pub(crate) fn sort(v: &Value) -> R {
    let mut a = sortable(v)?.to_vec();
    a.sort();
    Ok(Value::Array(a))
}

pub(crate) fn unique(v: &Value) -> R {
    let mut a = sortable(v)?.to_vec();
    a.sort();
    a.dedup();
    Ok(Value::Array(a))
}

pub(crate) fn reverse(v: &Value) -> R {
    match v {
        Value::Array(a) => Ok(Value::Array(a.iter().rev().cloned().collect())),
        Value::Str(s) => Ok(Value::Str(s.chars().rev().collect::<String>().into())),
        Value::Null => Ok(Value::Array(Vec::new())),
        v => err(format!("cannot reverse {}", desc(v))),
    }
}

fn entry(k: Value, v: &Value) -> Value {
    let mut e = Map::with_capacity(2);
    e.push_unique(Str::new("key"), k);
    e.push_unique(Str::new("value"), v.clone());
    Value::Object(e)
}

pub(crate) fn to_entries(v: &Value) -> R {
    match v {
        Value::Array(a) => Ok(Value::Array(
            a.iter()
                .enumerate()
                .map(|(i, x)| entry(Value::Int(i as i64), x))
                .collect(),
        )),
        Value::Object(m) => Ok(Value::Array(
            m.iter()
                .map(|(k, v)| entry(Value::Str(k.clone()), v))
                .collect(),
        )),
        v => err(format!("{} has no keys", desc(v))),
    }
}

pub(crate) fn from_entries(v: &Value) -> R {
    let mut out = Map::new();
    for e in values_of(v)? {
        let get = |name: &str| match e {
            Value::Object(m) => Ok(m.get(name)),
            Value::Null => Ok(None),
            other => Err(index_error(other, &Value::str(name))),
        };
        let mut key = get("key")?.filter(|k| !matches!(k, Value::Null));
        if key.is_none() {
            for name in ["k", "name", "Name", "K", "Key"] {
                if let Some(k) = get(name)? {
                    if k.truthy() {
                        key = Some(k);
                        break;
                    }
                }
            }
        }
        let key = match key {
            Some(Value::Str(s)) => s.clone(),
            Some(other) => return err(format!("cannot use {} as object key", desc(other))),
            None => return err("cannot use null (null) as object key".into()),
        };
        let has_value = matches!(e, Value::Object(m) if m.get("value").is_some());
        let value = if has_value { get("value")? } else { get("v")? };
        out.insert(key, value.cloned().unwrap_or(Value::Null));
    }
    Ok(Value::Object(out))
}

fn flatten_into(a: &[Value], depth: i64, out: &mut Vec<Value>) {
    for x in a {
        match x {
            Value::Array(inner) if depth > 0 => flatten_into(inner, depth - 1, out),
            x => out.push(x.clone()),
        }
    }
}

pub(crate) fn flatten(v: &Value) -> R {
    match v {
        Value::Array(a) => {
            let mut out = Vec::new();
            flatten_into(a, i64::MAX, &mut out);
            Ok(Value::Array(out))
        }
        v => err(format!("cannot flatten {}", desc(v))),
    }
}

pub(crate) fn any0(v: &Value) -> R {
    Ok(Value::Bool(values_of(v)?.into_iter().any(Value::truthy)))
}

pub(crate) fn all0(v: &Value) -> R {
    Ok(Value::Bool(values_of(v)?.into_iter().all(Value::truthy)))
}

pub(crate) fn explode(v: &Value) -> R {
    match v {
        Value::Str(s) => Ok(Value::Array(
            s.chars().map(|c| Value::Int(c as i64)).collect(),
        )),
        v => err(format!(
            "{} cannot be exploded, as it is not a string",
            desc(v)
        )),
    }
}

pub(crate) fn implode(v: &Value) -> R {
    match v {
        Value::Array(a) => {
            let mut s = String::new();
            for x in a {
                // As jq 1.7: a number that is no Unicode scalar value (negative, a surrogate,
                // past U+10FFFF) becomes U+FFFD; anything but a number is an error.
                match x.as_f64().filter(|f| !f.is_nan()) {
                    Some(f) => {
                        let c = (0.0..=1_114_111.0)
                            .contains(&f.trunc())
                            .then(|| char::from_u32(f.trunc() as u32))
                            .flatten();
                        s.push(c.unwrap_or(char::REPLACEMENT_CHARACTER));
                    }
                    None => return err(format!("{} is not a valid codepoint", desc(x))),
                }
            }
            Ok(Value::Str(Str::from(s)))
        }
        v => err(format!(
            "{} cannot be imploded, as it is not an array",
            desc(v)
        )),
    }
}

fn trim_with(v: &Value, f: fn(&str) -> &str) -> R {
    match v {
        Value::Str(s) => Ok(Value::str(f(s))),
        v => err(format!(
            "{} cannot be trimmed, as it is not a string",
            desc(v)
        )),
    }
}
pub(crate) fn trim(v: &Value) -> R {
    trim_with(v, str::trim)
}
pub(crate) fn ltrim(v: &Value) -> R {
    trim_with(v, str::trim_start)
}
pub(crate) fn rtrim(v: &Value) -> R {
    trim_with(v, str::trim_end)
}

// --- predicates for `values`, `strings`, ... ----------------------------------------------

pub(crate) fn is_value(v: &Value) -> bool {
    !matches!(v, Value::Null)
}
pub(crate) fn is_null(v: &Value) -> bool {
    matches!(v, Value::Null)
}
pub(crate) fn is_bool(v: &Value) -> bool {
    matches!(v, Value::Bool(_))
}
pub(crate) fn is_number(v: &Value) -> bool {
    matches!(v, Value::Int(_) | Value::Float(..))
}
pub(crate) fn is_string(v: &Value) -> bool {
    matches!(v, Value::Str(_))
}
pub(crate) fn is_array(v: &Value) -> bool {
    matches!(v, Value::Array(_))
}
pub(crate) fn is_object(v: &Value) -> bool {
    matches!(v, Value::Object(_))
}
pub(crate) fn is_iterable(v: &Value) -> bool {
    matches!(v, Value::Array(_) | Value::Object(_))
}
pub(crate) fn is_scalar(v: &Value) -> bool {
    !is_iterable(v)
}

// --- functions of the input and one value argument ----------------------------------------

pub(crate) fn has(v: &Value, k: &Value) -> R {
    match (v, k) {
        (Value::Null, _) => Ok(Value::Bool(false)),
        (Value::Object(m), Value::Str(s)) => Ok(Value::Bool(m.get(s).is_some())),
        (Value::Array(a), Value::Int(_) | Value::Float(..)) => {
            let i = k.as_f64().unwrap_or(-1.0);
            Ok(Value::Bool(i >= 0.0 && i < a.len() as f64))
        }
        (v, k) => err(format!(
            "cannot check whether {} has a {} key",
            v.type_name(),
            k.type_name()
        )),
    }
}

/// `in(xs)`: `has` with the roles swapped.
pub(crate) fn is_in(v: &Value, xs: &Value) -> R {
    has(xs, v)
}

fn kind(v: &Value) -> u8 {
    v.rank()
}

fn contains_rec(a: &Value, b: &Value) -> bool {
    if kind(a) != kind(b) {
        return false;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => y
            .iter()
            .all(|(k, bv)| x.get(k).is_some_and(|av| contains_rec(av, bv))),
        (Value::Array(x), Value::Array(y)) => {
            y.iter().all(|bv| x.iter().any(|av| contains_rec(av, bv)))
        }
        (Value::Str(x), Value::Str(y)) => x.contains(y.as_str()),
        _ => a == b,
    }
}

pub(crate) fn contains(a: &Value, b: &Value) -> R {
    if kind(a) != kind(b) {
        return err(format!(
            "{} and {} cannot have their containment checked",
            desc(a),
            desc(b)
        ));
    }
    Ok(Value::Bool(contains_rec(a, b)))
}

pub(crate) fn inside(a: &Value, b: &Value) -> R {
    contains(b, a)
}

pub(crate) fn startswith(v: &Value, p: &Value) -> R {
    match (v, p) {
        (Value::Str(s), Value::Str(p)) => Ok(Value::Bool(s.starts_with(p.as_str()))),
        _ => err("startswith() requires string inputs".into()),
    }
}

pub(crate) fn endswith(v: &Value, p: &Value) -> R {
    match (v, p) {
        (Value::Str(s), Value::Str(p)) => Ok(Value::Bool(s.ends_with(p.as_str()))),
        _ => err("endswith() requires string inputs".into()),
    }
}

pub(crate) fn ltrimstr(v: &Value, p: &Value) -> R {
    match (v, p) {
        (Value::Str(s), Value::Str(p)) => match s.strip_prefix(p.as_str()) {
            Some(rest) => Ok(Value::str(rest)),
            None => Ok(v.clone()),
        },
        _ => Ok(v.clone()),
    }
}

pub(crate) fn rtrimstr(v: &Value, p: &Value) -> R {
    match (v, p) {
        (Value::Str(s), Value::Str(p)) => match s.strip_suffix(p.as_str()) {
            Some(rest) => Ok(Value::str(rest)),
            None => Ok(v.clone()),
        },
        _ => Ok(v.clone()),
    }
}

pub(crate) fn split(v: &Value, sep: &Value) -> R {
    match (v, sep) {
        (Value::Str(s), Value::Str(p)) => Ok(split_str(s, p)),
        _ => err("split input and separator must be strings".into()),
    }
}

/// jq's `join`: null joins as "", numbers and booleans as JSON, strings as themselves;
/// anything else fails on `+`.
pub(crate) fn join(v: &Value, sep: &Value) -> R {
    let mut acc: Option<Value> = None;
    for x in values_of(v)? {
        let base = match acc {
            None => Value::Str(Str::default()),
            Some(a) => math(MathOp::Add, Cow::Owned(a), sep)?,
        };
        let piece = match x {
            Value::Null => Cow::Owned(Value::Str(Str::default())),
            Value::Bool(_) | Value::Int(_) | Value::Float(..) => {
                Cow::Owned(Value::Str(Str::from(x.to_json_string())))
            }
            x => Cow::Borrowed(x),
        };
        acc = Some(math(MathOp::Add, Cow::Owned(base), &piece)?);
    }
    Ok(match acc {
        Some(a) if a.truthy() => a,
        _ => Value::Str(Str::default()),
    })
}

/// Orders `(key, value)` pairs by key, for `del` of several paths.
pub(crate) fn cmp_paths(a: &[Key], b: &[Key]) -> Ordering {
    let conv = |p: &[Key]| -> Vec<Value> {
        p.iter()
            .map(|k| match k {
                Key::Field(f) => Value::Str(f.clone()),
                Key::Index(i) => Value::Int(*i),
            })
            .collect()
    };
    conv(a).cmp(&conv(b))
}
