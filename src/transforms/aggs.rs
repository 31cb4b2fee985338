//! Aggregate functions shared by `aggregate` and `window`: parsing `"sum(.bytes)"`, running
//! state per key, results, and a state encoding for checkpoints. Nulls (missing fields) are
//! ignored by every function but `count`, as in SQL.

use crate::expr::Expr;
use crate::value::{Str, Value};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    Count,
    Sum,
    Min,
    Max,
    Avg,
    First,
    Last,
    CountDistinct,
}

const FUNCS: &str = "count, sum(e), min(e), max(e), avg(e), first(e), last(e), count_distinct(e)";

#[derive(Clone)]
pub struct AggSpec {
    pub name: Str,
    pub func: Func,
    pub arg: Option<Expr>,
}

/// Parses one `name = "func(expr)"` entry. The error's offset points into the text.
pub fn parse_agg(name: &str, text: &str) -> Result<AggSpec, (usize, String)> {
    let t = text.trim();
    let (fname, arg) = match t.find('(') {
        Some(i) if t.ends_with(')') => (t[..i].trim(), Some(t[i + 1..t.len() - 1].trim())),
        Some(_) => return Err((0, format!("`{t}`: missing `)` at the end"))),
        None => (t, None),
    };
    let func = match fname {
        "count" => Func::Count,
        "sum" => Func::Sum,
        "min" => Func::Min,
        "max" => Func::Max,
        "avg" => Func::Avg,
        "first" => Func::First,
        "last" => Func::Last,
        "count_distinct" => Func::CountDistinct,
        other => {
            return Err((
                0,
                format!("unknown aggregate function `{other}`; expected one of {FUNCS}"),
            ))
        }
    };
    let arg = match (func, arg) {
        (Func::Count, None) => None,
        (Func::Count, Some("")) => None,
        (Func::Count, Some(a)) => Some(a),
        (_, None) | (_, Some("")) => {
            return Err((
                0,
                format!("`{fname}` needs an expression, like {fname}(.bytes)"),
            ))
        }
        (_, Some(a)) => Some(a),
    };
    let arg = match arg {
        Some(a) => {
            let off = text.find(a).unwrap_or(0);
            Some(Expr::compile(a).map_err(|e| (off + e.offset, e.message))?)
        }
        None => None,
    };
    Ok(AggSpec {
        name: Str::new(name),
        func,
        arg,
    })
}

/// The running state of one aggregate for one key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum Acc {
    Count(u64),
    /// Integer sum while every input was an integer and it did not overflow.
    SumInt(i64),
    SumFloat(f64),
    Min(Option<Value>),
    Max(Option<Value>),
    Avg {
        sum: f64,
        n: u64,
    },
    First(Option<Value>),
    Last(Option<Value>),
    Distinct(BTreeSet<Value>),
}

impl Acc {
    pub fn new(f: Func) -> Acc {
        match f {
            Func::Count => Acc::Count(0),
            Func::Sum => Acc::SumInt(0),
            Func::Min => Acc::Min(None),
            Func::Max => Acc::Max(None),
            Func::Avg => Acc::Avg { sum: 0.0, n: 0 },
            Func::First => Acc::First(None),
            Func::Last => Acc::Last(None),
            Func::CountDistinct => Acc::Distinct(BTreeSet::new()),
        }
    }

    /// Whether `update` would accept `v`; checked for every aggregate before any is updated,
    /// so a bad record leaves the state untouched.
    pub fn check(v: Option<&Value>, func: Func) -> Result<(), String> {
        match (func, v) {
            (Func::Sum | Func::Avg, Some(x))
                if !matches!(x, Value::Null) && x.as_f64().is_none() =>
            {
                Err(not_number(if func == Func::Sum { "sum" } else { "avg" }, x))
            }
            _ => Ok(()),
        }
    }

    /// Folds one value in (already checked). `v` is `None` for `count` without an argument.
    pub fn update(&mut self, v: Option<&Value>) {
        if let Acc::Count(n) = self {
            if !matches!(v, Some(Value::Null)) {
                *n += 1;
            }
            return;
        }
        let Some(v) = v else { return };
        if matches!(v, Value::Null) {
            return;
        }
        match self {
            Acc::Count(_) => {}
            Acc::SumInt(s) => match v {
                Value::Int(i) => match s.checked_add(*i) {
                    Some(x) => *s = x,
                    None => *self = Acc::SumFloat(*s as f64 + *i as f64),
                },
                other => *self = Acc::SumFloat(*s as f64 + other.as_f64().unwrap_or(0.0)),
            },
            Acc::SumFloat(s) => *s += v.as_f64().unwrap_or(0.0),
            Acc::Avg { sum, n } => {
                *sum += v.as_f64().unwrap_or(0.0);
                *n += 1;
            }
            Acc::Min(m) => {
                if m.as_ref().is_none_or(|cur| v < cur) {
                    *m = Some(v.clone());
                }
            }
            Acc::Max(m) => {
                if m.as_ref().is_none_or(|cur| v > cur) {
                    *m = Some(v.clone());
                }
            }
            Acc::First(f) => {
                if f.is_none() {
                    *f = Some(v.clone());
                }
            }
            Acc::Last(l) => *l = Some(v.clone()),
            Acc::Distinct(set) => {
                if !set.contains(v) {
                    set.insert(v.clone());
                }
            }
        }
    }

    /// Folds `later` (the accumulator of a window that starts later) into `self`, for
    /// merging session windows: `first` keeps the earlier window's, `last` the later one's.
    pub fn merge(&mut self, later: &Acc) {
        match (&mut *self, later) {
            (Acc::Count(a), Acc::Count(b)) => *a += b,
            (Acc::SumInt(a), Acc::SumInt(b)) => match a.checked_add(*b) {
                Some(x) => *a = x,
                None => *self = Acc::SumFloat(*a as f64 + *b as f64),
            },
            (Acc::SumInt(a), Acc::SumFloat(b)) => *self = Acc::SumFloat(*a as f64 + b),
            (Acc::SumFloat(a), Acc::SumInt(b)) => *a += *b as f64,
            (Acc::SumFloat(a), Acc::SumFloat(b)) => *a += b,
            (Acc::Avg { sum, n }, Acc::Avg { sum: s2, n: n2 }) => {
                *sum += s2;
                *n += n2;
            }
            (Acc::Min(a), Acc::Min(Some(b))) if a.as_ref().is_none_or(|x| b < x) => {
                *a = Some(b.clone());
            }
            (Acc::Max(a), Acc::Max(Some(b))) if a.as_ref().is_none_or(|x| b > x) => {
                *a = Some(b.clone());
            }
            (Acc::First(a), Acc::First(b)) if a.is_none() => *a = b.clone(),
            (Acc::Last(a), Acc::Last(b)) if b.is_some() => *a = b.clone(),
            (Acc::Distinct(a), Acc::Distinct(b)) => a.extend(b.iter().cloned()),
            _ => {}
        }
    }

    /// Adds a count or an integer sum folded elsewhere (`sources::folding`).
    pub fn add_folded(&mut self, v: i64) {
        match self {
            Acc::Count(n) => *n += v as u64,
            _ => self.merge(&Acc::SumInt(v)),
        }
    }

    pub fn result(&self) -> Value {
        match self {
            Acc::Count(n) => Value::Int(*n as i64),
            Acc::SumInt(s) => Value::Int(*s),
            Acc::SumFloat(s) => Value::float(*s),
            Acc::Avg { sum, n } => {
                if *n == 0 {
                    Value::Null
                } else {
                    Value::float(*sum / *n as f64)
                }
            }
            Acc::Min(v) | Acc::Max(v) | Acc::First(v) | Acc::Last(v) => {
                v.clone().unwrap_or(Value::Null)
            }
            Acc::Distinct(s) => Value::Int(s.len() as i64),
        }
    }
}

impl Acc {
    /// Appends a compact JSON form; the function (known from the pipeline) tells `decode` how
    /// to read it back. Float sums keep a decimal point so they come back as floats.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let _ = match self {
            Acc::Count(n) => serde_json::to_writer(&mut *out, n),
            Acc::SumInt(i) => serde_json::to_writer(&mut *out, i),
            Acc::SumFloat(f) => serde_json::to_writer(&mut *out, &finite(*f)),
            Acc::Avg { sum, n } => serde_json::to_writer(&mut *out, &(finite(*sum), n)),
            Acc::Min(v) | Acc::Max(v) | Acc::First(v) | Acc::Last(v) => match v {
                Some(v) => serde_json::to_writer(&mut *out, v),
                None => serde_json::to_writer(&mut *out, &()),
            },
            Acc::Distinct(set) => serde_json::to_writer(&mut *out, set),
        };
    }

    pub fn decode(func: Func, v: &Value) -> Result<Acc, String> {
        Acc::decode_owned(func, v.clone())
    }

    /// `decode` of a value the caller gives up, so `min`/`max`/`first`/`last` keep it without
    /// a copy (the streaming decoder of `aggregate` reads millions of these).
    pub fn decode_owned(func: Func, v: Value) -> Result<Acc, String> {
        let bad = || {
            format!(
                "aggregate state {} does not fit {func:?}",
                v.to_json_string()
            )
        };
        Ok(match func {
            Func::Count => match v {
                Value::Int(n) if n >= 0 => Acc::Count(n as u64),
                _ => return Err(bad()),
            },
            Func::Sum => match v {
                Value::Int(i) => Acc::SumInt(i),
                Value::Float(f, _) => Acc::SumFloat(f),
                _ => return Err(bad()),
            },
            Func::Avg => match &v {
                Value::Array(a) if a.len() == 2 => Acc::Avg {
                    sum: a[0].as_f64().ok_or_else(bad)?,
                    n: a[1].as_f64().ok_or_else(bad)? as u64,
                },
                _ => return Err(bad()),
            },
            Func::Min | Func::Max | Func::First | Func::Last => {
                let x = if matches!(v, Value::Null) {
                    None
                } else {
                    Some(v)
                };
                match func {
                    Func::Min => Acc::Min(x),
                    Func::Max => Acc::Max(x),
                    Func::First => Acc::First(x),
                    _ => Acc::Last(x),
                }
            }
            Func::CountDistinct => match v {
                Value::Array(a) => Acc::Distinct(a.into_iter().collect()),
                _ => return Err(bad()),
            },
        })
    }
}

/// JSON has no infinities or NaN; a sum that overflowed to one is kept as the largest double.
fn finite(f: f64) -> f64 {
    if f.is_nan() {
        0.0
    } else {
        f.clamp(f64::MIN, f64::MAX)
    }
}

fn not_number(f: &str, v: &Value) -> String {
    format!("{f}() of {} ({}), not a number", v.type_name(), {
        let s = v.to_json_string();
        if s.len() > 40 {
            format!(
                "{}...",
                &s[..s.char_indices().nth(37).map(|c| c.0).unwrap_or(37)]
            )
        } else {
            s
        }
    })
}

/// A record's group key: the first output of `key` (null without a key or without output).
/// Inlined, so the usual single-field key is a plain reference in the caller's registers.
#[inline(always)]
pub fn eval_key<'a>(
    key: &'a Option<Expr>,
    record: &'a Value,
) -> Result<std::borrow::Cow<'a, Value>, String> {
    use std::borrow::Cow;
    let Some(e) = key else {
        return Ok(Cow::Owned(Value::Null));
    };
    let key = match e.field_of(record) {
        Some(v) => Cow::Borrowed(v),
        None => e
            .eval_first_ref(record)
            .map_err(|e| e.message)?
            .unwrap_or(Cow::Owned(Value::Null)),
    };
    check_kept(&key, "the key")?;
    Ok(key)
}

/// How deep a key or value kept in a checkpoint may nest: checkpoints are read back by the
/// JSON reader, which takes [`crate::value::MAX_NESTING`] levels, one entry of a key group at
/// a time (`keygroup::read_levels`), and an entry holds each kept value inside up to two
/// levels of its own (a window's `[end,start,key,[values]]`); four leave room.
pub const MAX_KEPT_NESTING: usize = crate::value::MAX_NESTING - 4;

/// A key or aggregate value nested deeper than [`MAX_KEPT_NESTING`] is refused when it is
/// built, as a bad record naming the limit, rather than written into a checkpoint that no
/// `resume` could read. Scalars (nearly every key) cost one match.
pub fn check_kept(v: &Value, what: &str) -> Result<(), String> {
    fn deeper_than(v: &Value, levels: usize) -> bool {
        match v {
            Value::Array(a) => levels == 0 || a.iter().any(|x| deeper_than(x, levels - 1)),
            Value::Object(m) => levels == 0 || m.values().any(|x| deeper_than(x, levels - 1)),
            _ => false,
        }
    }
    if deeper_than(v, MAX_KEPT_NESTING) {
        return Err(format!(
            "{what} is nested deeper than {MAX_KEPT_NESTING} levels (arrays and objects), \
             more than a checkpoint can hold"
        ));
    }
    Ok(())
}

/// Evaluates the aggregates' arguments on a record into `args` (reused between records).
pub fn eval_args(
    specs: &[AggSpec],
    record: &Value,
    args: &mut Vec<Option<Value>>,
) -> Result<(), String> {
    args.resize(specs.len(), None);
    for (spec, slot) in specs.iter().zip(args.iter_mut()) {
        let Some(e) = &spec.arg else {
            *slot = None;
            continue;
        };
        // Numbers (most arguments) are written straight into the slot: building them
        // elsewhere and moving them in cost more than the aggregation itself.
        e.with_first(record, |v| match v {
            Some(Value::Int(i)) => *slot = Some(Value::Int(*i)),
            Some(Value::Float(f, None)) => *slot = Some(Value::float(*f)),
            Some(other) => *slot = Some(other.clone()),
            None => *slot = Some(Value::Null),
        })
        .map_err(|e| e.message)?;
        if let Some(v @ (Value::Array(_) | Value::Object(_))) = slot {
            check_kept(v, "the value of an aggregate")?;
        }
    }
    Ok(())
}

/// Whether every aggregate would accept its argument (no state needed).
pub fn check_args(specs: &[AggSpec], args: &[Option<Value>]) -> Result<(), String> {
    for (spec, a) in specs.iter().zip(args) {
        Acc::check(a.as_ref(), spec.func)?;
    }
    Ok(())
}

/// Checks every argument, then adds them all to the accumulators: all or nothing. (Folding
/// is what the parse workers do, see `sources::folding`.)
pub fn accumulate(
    specs: &[AggSpec],
    accs: &mut [Acc],
    args: &[Option<Value>],
) -> Result<(), String> {
    check_args(specs, args)?;
    for (acc, a) in accs.iter_mut().zip(args) {
        acc.update(a.as_ref());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs() {
        assert_eq!(parse_agg("n", "count").unwrap().func, Func::Count);
        assert_eq!(parse_agg("n", "count()").unwrap().func, Func::Count);
        assert_eq!(parse_agg("b", "sum(.bytes)").unwrap().func, Func::Sum);
        assert!(parse_agg("b", "sum").is_err());
        assert!(parse_agg("b", "median(.x)").is_err());
        assert!(parse_agg("b", "sum(.x").is_err());
    }

    #[test]
    fn sums_stay_integers_until_a_float_arrives() {
        let mut a = Acc::new(Func::Sum);
        a.update(Some(&Value::Int(2)));
        a.update(Some(&Value::Null));
        a.update(Some(&Value::Int(3)));
        assert_eq!(a.result().to_json_string(), "5");
        a.update(Some(&Value::float(0.5)));
        assert_eq!(a.result().to_json_string(), "5.5");
        assert!(Acc::check(Some(&Value::str("x")), Func::Sum).is_err());
        assert!(Acc::check(Some(&Value::Null), Func::Sum).is_ok());
        let mut m = Acc::new(Func::Max);
        m.update(Some(&Value::Int(2)));
        m.update(Some(&Value::float(7.5)));
        assert_eq!(m.result(), Value::float(7.5));
        let mut d = Acc::new(Func::CountDistinct);
        for v in [Value::Int(1), Value::float(1.0), Value::str("1")] {
            d.update(Some(&v));
        }
        assert_eq!(d.result(), Value::Int(2));
    }
}
