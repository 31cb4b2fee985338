//! What the evaluator, the built-ins and the jaq fallback share: jq's errors and control flow,
//! literal path steps and indexing, arithmetic operators, and jq's wording of values in error
//! messages. It sits below all three so that none of them imports another's internals (they
//! used to import each other in a cycle).

use crate::value::{Str, Value};

/// A jq error: either a message produced by weir, or a value passed to `error`.
#[derive(Debug, Clone)]
pub(crate) enum ErrV {
    Msg(String),
    Val(Value),
    /// An evaluation limit was reached (see `limits.rs`): not caught by `try`.
    Limit(String),
}

impl ErrV {
    /// The value that `try ... catch` hands to its handler.
    pub(crate) fn into_value(self) -> Value {
        match self {
            ErrV::Msg(m) | ErrV::Limit(m) => Value::Str(Str::from(m)),
            ErrV::Val(v) => v,
        }
    }

    pub(crate) fn message(self) -> String {
        match self {
            ErrV::Msg(m) | ErrV::Limit(m) => m,
            ErrV::Val(Value::Str(s)) => s.to_string(),
            ErrV::Val(v) => format!("{} (not a string)", v.to_json_string()),
        }
    }
}

/// Control flow out of an evaluation: an error, or a request from a consumer to stop
/// producing outputs (used by `first(f)`, `limit` and `eval_first`). `try` never catches
/// `Stop`.
#[derive(Debug)]
pub(crate) enum Ctl {
    Err(Box<ErrV>),
    Stop,
}

impl From<ErrV> for Ctl {
    #[cold]
    fn from(e: ErrV) -> Ctl {
        Ctl::Err(Box::new(e))
    }
}

pub(crate) static NULL: Value = Value::Null;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MathOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

/// A literal path step.
#[derive(Debug, Clone)]
pub(crate) enum Key {
    Field(Str),
    Index(i64),
}

/// `type (json)` with the JSON cut to jq's length, as jq writes values in error messages.
pub(crate) fn desc(v: &Value) -> String {
    const MAX: usize = 29;
    let j = v.to_json_string();
    if j.len() <= MAX {
        return format!("{} ({j})", v.type_name());
    }
    let mut cut = MAX - 3;
    while !j.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{} ({}...)", v.type_name(), &j[..cut])
}

pub(crate) fn iterate_error(v: &Value) -> String {
    match v {
        Value::Null => "cannot iterate over null".into(),
        v => format!("cannot iterate over {}", desc(v)),
    }
}

#[cold]
pub(crate) fn index_error(v: &Value, key: &Value) -> ErrV {
    let what = match key {
        Value::Str(s) => format!("\"{s}\""),
        k => k.type_name().to_string(),
    };
    ErrV::Msg(format!("cannot index {} with {what}", v.type_name()))
}

/// `v[key]` for a literal key; `Ok(None)` means null.
#[inline(always)]
pub(crate) fn index_ref<'a>(v: &'a Value, key: &Key) -> Result<Option<&'a Value>, ErrV> {
    match (v, key) {
        (Value::Object(m), Key::Field(f)) => Ok(m.get(f)),
        (Value::Null, _) => Ok(None),
        (Value::Array(a), Key::Index(i)) => {
            let i = if *i < 0 { *i + a.len() as i64 } else { *i };
            Ok(usize::try_from(i).ok().and_then(|i| a.get(i)))
        }
        (v, Key::Field(f)) => Err(index_error(v, &Value::Str(f.clone()))),
        (v, Key::Index(i)) => Err(index_error(v, &Value::Int(*i))),
    }
}
