//! The native evaluator: a tree of [`Node`]s over weir's [`Value`].
//!
//! Every node can stream its outputs into a continuation (`run`). Nodes that produce at
//! most one output (`Card::One` / `Card::Opt`, decided at compile time) also have a direct
//! path (`single`) that returns the output without any closure, and outputs are `Cow`s so
//! that paths (`.a.b`) and literals are passed by reference: `.status >= 400` evaluates
//! without cloning or allocating anything.
//!
//! Generators follow jq's order: in `l op r` the right operand is the outer loop, in
//! `{a: f, b: g}` the first entry is the outer loop, in `"\(f)\(g)"` the last interpolation
//! is the outer loop, in `.[k]` the index is evaluated before the indexed term.
//!
//! A long file (about 1,250 lines): one `Node` enum and its two evaluators (`run` and
//! `single`) over every form; splitting the match arms of one enum over files would make
//! each form's two paths harder to compare.

pub(crate) use super::base::{
    desc, index_error, index_ref, iterate_error, Ctl, ErrV, Key, MathOp, NULL,
};
use super::builtins;
use super::fallback::Jaq;
use crate::value::{Map, Str, Value};
use regex::Regex;
use std::borrow::Cow;
use std::cmp::Ordering;
use std::sync::Arc;

pub(crate) type Res = Result<(), Ctl>;
/// A continuation that receives outputs; borrowed outputs live only for the call.
pub(crate) type K<'k> = dyn FnMut(Cow<'_, Value>) -> Res + 'k;
type Single<'a> = Result<Option<Cow<'a, Value>>, Ctl>;

/// How many outputs a node can produce (besides an error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Card {
    One,
    Opt,
    Many,
}

impl Card {
    pub(crate) fn join(self, other: Card) -> Card {
        self.max(other)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    #[inline]
    pub(crate) fn test(self, o: Ordering) -> bool {
        match self {
            CmpOp::Eq => o == Ordering::Equal,
            CmpOp::Ne => o != Ordering::Equal,
            CmpOp::Lt => o == Ordering::Less,
            CmpOp::Le => o != Ordering::Greater,
            CmpOp::Gt => o == Ordering::Greater,
            CmpOp::Ge => o != Ordering::Less,
        }
    }
}

/// A part of an interpolated string.
#[derive(Debug, Clone)]
pub(crate) enum SPart {
    Lit(String),
    Interp(Node),
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum StrFmt {
    Text,
    Json,
}

/// Functions of the input alone.
pub(crate) type Fn0 = fn(&Value) -> Result<Value, ErrV>;
/// Functions of the input and one argument (jq's `def f($a)`).
pub(crate) type Fn1 = fn(&Value, &Value) -> Result<Value, ErrV>;

#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) card: Card,
    pub(crate) kind: Form,
}

#[derive(Debug, Clone)]
pub(crate) enum Form {
    Id,
    Lit(Value),
    /// `.a.b[0]`: literal keys applied to the input, no `?`.
    Path(Box<[Key]>),
    /// `.a.b OP literal`: the most common filter, evaluated without any `Cow`.
    CmpPathLit(CmpOp, Box<[Key]>, Value),
    /// `obj[key]` (or `obj[key]?` when `opt`); `key` is evaluated against the input.
    Index {
        obj: Box<Node>,
        key: Box<Node>,
        opt: bool,
    },
    Slice {
        obj: Box<Node>,
        from: Option<Box<Node>>,
        to: Option<Box<Node>>,
        opt: bool,
    },
    /// `obj[]` / `obj[]?`
    Iter {
        obj: Box<Node>,
        opt: bool,
    },
    /// `..`
    Recurse,
    Pipe(Box<Node>, Box<Node>),
    Comma(Box<Node>, Box<Node>),
    Neg(Box<Node>),
    Math(MathOp, Box<Node>, Box<Node>),
    Cmp(CmpOp, Box<Node>, Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Alt(Box<Node>, Box<Node>),
    If(Box<[(Node, Node)]>, Option<Box<Node>>),
    Try(Box<Node>, Option<Box<Node>>),
    /// Object construction with literal keys; `unique` when no key repeats.
    ObjLit {
        entries: Box<[(Str, Node)]>,
        unique: bool,
    },
    /// Object construction with computed keys.
    Obj(Box<[(Node, Node)]>),
    Arr(Option<Box<Node>>),
    Str(StrFmt, Box<[SPart]>),
    Empty,
    /// `error` (with `None`: the input is the error) and `error(f)`.
    Error(Option<Box<Node>>),
    Call0(Fn0),
    Call1(Fn1, Box<Node>),
    /// Passes the input through when the predicate holds (`values`, `strings`, ...).
    Filter0(fn(&Value) -> bool),
    Select(Box<Node>),
    First(Box<Node>),
    Limit(Box<Node>, Box<Node>),
    Map(Box<Node>),
    Test(Box<Regex>),
    /// `sort_by(f)`, `group_by(f)`, `min_by(f)`, `max_by(f)`, `unique_by(f)`.
    By(ByOp, Box<Node>),
    /// `any(gen; cond)` / `all(gen; cond)`; `is_any` selects which.
    AnyAll {
        gen: Box<Node>,
        cond: Box<Node>,
        is_any: bool,
    },
    /// Assignment to a literal path: `.a.b = f`, `|=`, `+=`, ..., `//=`.
    Update {
        path: Box<[Key]>,
        op: UpdOp,
        rhs: Box<Node>,
    },
    /// `del(.a, .b.c)` with literal paths.
    Del(Box<[Box<[Key]>]>),
    Jaq(Arc<Jaq>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ByOp {
    Sort,
    Group,
    Min,
    Max,
    Unique,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UpdOp {
    Assign,
    Modify,
    Math(MathOp),
    Alt,
}

impl Node {
    pub(crate) fn new(card: Card, kind: Form) -> Node {
        Node { card, kind }
    }

    /// `f` when this node is exactly `.f`.
    pub(crate) fn single_field(&self) -> Option<&Str> {
        match &self.kind {
            Form::Path(keys) => match &keys[..] {
                [Key::Field(f)] => Some(f),
                _ => None,
            },
            _ => None,
        }
    }

    /// `(key, path)` pairs when this node builds an object of paths of fields of its input
    /// (`{user, path}`, `{u: .user}`, `{app: .k8s.labels.app}`), each key given once and no
    /// path leading into another or repeating it, so that each value can be moved out once.
    pub(crate) fn projection(&self) -> Option<Box<crate::value::Projection>> {
        let Form::ObjLit {
            entries,
            unique: true,
        } = &self.kind
        else {
            return None;
        };
        let pairs: Box<crate::value::Projection> = entries
            .iter()
            .map(|(k, v)| Some((k.clone(), v.field_path()?.into_boxed_slice())))
            .collect::<Option<_>>()?;
        let apart = pairs.iter().enumerate().all(|(i, (_, p))| {
            pairs[i + 1..]
                .iter()
                .all(|(_, q)| !p.starts_with(q) && !q.starts_with(p))
        });
        apart.then_some(pairs)
    }

    /// The keys when this node is exactly a path of fields (`.f`, `.a.b.c`).
    pub(crate) fn field_path(&self) -> Option<Vec<Str>> {
        match &self.kind {
            Form::Path(keys) if !keys.is_empty() => keys
                .iter()
                .map(|k| match k {
                    Key::Field(f) => Some(f.clone()),
                    Key::Index(_) => None,
                })
                .collect(),
            _ => None,
        }
    }

    pub(crate) fn is_native(&self) -> bool {
        self.all(&mut |n| !matches!(n.kind, Form::Jaq(_)))
    }

    /// True if `f` holds for this node and all nodes below it.
    pub(crate) fn all(&self, f: &mut dyn FnMut(&Node) -> bool) -> bool {
        if !f(self) {
            return false;
        }
        let mut kids: Vec<&Node> = Vec::new();
        match &self.kind {
            Form::Id
            | Form::Lit(_)
            | Form::Path(_)
            | Form::CmpPathLit(..)
            | Form::Recurse
            | Form::Empty
            | Form::Call0(_)
            | Form::Filter0(_)
            | Form::Test(_)
            | Form::Del(_)
            | Form::Jaq(_) => {}
            Form::Index { obj, key, .. } => kids.extend([&**obj, &**key]),
            Form::Slice { obj, from, to, .. } => {
                kids.push(obj);
                kids.extend(from.as_deref());
                kids.extend(to.as_deref());
            }
            Form::Iter { obj, .. } => kids.push(obj),
            Form::Pipe(a, b)
            | Form::Comma(a, b)
            | Form::Math(_, a, b)
            | Form::Cmp(_, a, b)
            | Form::And(a, b)
            | Form::Or(a, b)
            | Form::Alt(a, b)
            | Form::Limit(a, b) => kids.extend([&**a, &**b]),
            Form::AnyAll { gen, cond, .. } => kids.extend([&**gen, &**cond]),
            Form::Neg(a)
            | Form::Select(a)
            | Form::First(a)
            | Form::Map(a)
            | Form::Call1(_, a)
            | Form::By(_, a) => kids.push(a),
            Form::Update { rhs, .. } => kids.push(rhs),
            Form::If(branches, els) => {
                for (c, t) in branches.iter() {
                    kids.extend([c, t]);
                }
                kids.extend(els.as_deref());
            }
            Form::Try(b, c) => {
                kids.push(b);
                kids.extend(c.as_deref());
            }
            Form::ObjLit { entries, .. } => kids.extend(entries.iter().map(|(_, v)| v)),
            Form::Obj(entries) => {
                for (k, v) in entries.iter() {
                    kids.extend([k, v]);
                }
            }
            Form::Arr(a) | Form::Error(a) => kids.extend(a.as_deref()),
            Form::Str(_, parts) => {
                for p in parts.iter() {
                    if let SPart::Interp(n) = p {
                        kids.push(n);
                    }
                }
            }
        }
        kids.into_iter().all(|k| k.all(f))
    }

    /// The first output (for nodes of card One/Opt: the only one), without computing the
    /// others.
    #[inline]
    pub(crate) fn first<'a>(&'a self, input: &'a Value) -> Single<'a> {
        if self.card == Card::Many {
            return first_of_stream(self, input);
        }
        self.single(input)
    }

    /// Truthiness of the first output (`None` if there is none), computing booleans
    /// directly for comparisons and logic instead of building `Value::Bool`s.
    #[inline]
    pub(crate) fn truth(&self, input: &Value) -> Result<Option<bool>, Ctl> {
        if self.card == Card::Many {
            return Ok(self.first(input)?.map(|v| v.truthy()));
        }
        match &self.kind {
            Form::CmpPathLit(op, keys, lit) => {
                Ok(Some(op.test(cmp_values(path_get(keys, input)?, lit))))
            }
            _ => self.truth_kind(input),
        }
    }

    #[inline(never)]
    fn truth_kind(&self, input: &Value) -> Result<Option<bool>, Ctl> {
        match &self.kind {
            Form::Cmp(op, l, r) => {
                let Some(rv) = r.first(input)? else {
                    return Ok(None);
                };
                let Some(lv) = l.first(input)? else {
                    return Ok(None);
                };
                Ok(Some(op.test(cmp_values(&lv, &rv))))
            }
            Form::And(l, r) => match l.truth(input)? {
                None => Ok(None),
                Some(false) => Ok(Some(false)),
                Some(true) => r.truth(input),
            },
            Form::Or(l, r) => match l.truth(input)? {
                None => Ok(None),
                Some(true) => Ok(Some(true)),
                Some(false) => r.truth(input),
            },
            _ => Ok(self.single(input)?.map(|v| v.truthy())),
        }
    }

    /// Passes every output to `k`, in order.
    #[inline]
    pub(crate) fn run(&self, input: &Value, k: &mut K) -> Res {
        if self.card == Card::Many {
            self.stream(input, k)
        } else {
            match self.single(input)? {
                Some(v) => k(v),
                None => Ok(()),
            }
        }
    }

    /// Evaluation of a node whose card is One or Opt. Identity, literals and literal paths
    /// are handled inline at the call site; everything else goes through `single_kind`,
    /// which keeps each kind in its own small function (small stack frames matter here).
    #[inline]
    fn single<'a>(&'a self, input: &'a Value) -> Single<'a> {
        match &self.kind {
            Form::Id => Ok(Some(Cow::Borrowed(input))),
            Form::Lit(v) => Ok(Some(Cow::Borrowed(v))),
            Form::Path(keys) => Ok(Some(Cow::Borrowed(path_get(keys, input)?))),
            _ => self.single_kind(input),
        }
    }

    #[inline(never)]
    fn single_kind<'a>(&'a self, input: &'a Value) -> Single<'a> {
        match &self.kind {
            Form::Id => Ok(Some(Cow::Borrowed(input))),
            Form::Lit(v) => Ok(Some(Cow::Borrowed(v))),
            Form::Path(keys) => Ok(Some(Cow::Borrowed(path_get(keys, input)?))),
            Form::CmpPathLit(op, keys, lit) => {
                let v = path_get(keys, input)?;
                Ok(Some(Cow::Owned(Value::Bool(op.test(cmp_values(v, lit))))))
            }
            Form::Index { obj, key, opt } => s_index(obj, key, *opt, input),
            Form::Slice { obj, from, to, opt } => {
                s_slice(obj, from.as_deref(), to.as_deref(), *opt, input)
            }
            Form::Pipe(a, b) => s_pipe(a, b, input),
            Form::Neg(a) => match a.first(input)? {
                Some(v) => Ok(Some(Cow::Owned(builtins::neg(&v)?))),
                None => Ok(None),
            },
            Form::Math(op, l, r) => s_math(*op, l, r, input),
            Form::Cmp(op, l, r) => s_cmp(*op, l, r, input),
            Form::And(l, r) => s_logic(false, l, r, input),
            Form::Or(l, r) => s_logic(true, l, r, input),
            Form::Alt(l, r) => match l.first(input)? {
                Some(v) if v.truthy() => Ok(Some(v)),
                _ => r.first(input),
            },
            Form::If(branches, els) => s_if(branches, els.as_deref(), input),
            Form::Try(body, catch) => s_try(body, catch.as_deref(), input),
            Form::ObjLit { entries, unique } => s_obj_lit(entries, *unique, input),
            Form::Obj(entries) => s_obj(entries, input),
            Form::Arr(f) => {
                let mut out = Vec::new();
                if let Some(f) = f {
                    collect(f, input, &mut out)?;
                }
                Ok(Some(Cow::Owned(Value::Array(out))))
            }
            Form::Str(fmt, parts) => s_str(*fmt, parts, input),
            Form::Empty => Ok(None),
            Form::Error(f) => s_error(f.as_deref(), input),
            Form::Call0(f) => Ok(Some(Cow::Owned(f(input).map_err(Ctl::from)?))),
            Form::Call1(f, a) => match a.first(input)? {
                Some(av) => Ok(Some(Cow::Owned(f(input, &av).map_err(Ctl::from)?))),
                None => Ok(None),
            },
            Form::Filter0(p) => Ok(p(input).then_some(Cow::Borrowed(input))),
            Form::Select(f) => match f.truth(input)? {
                Some(true) => Ok(Some(Cow::Borrowed(input))),
                _ => Ok(None),
            },
            Form::First(f) => f.first(input),
            Form::Map(f) => {
                let mut out = Vec::new();
                iterate(Cow::Borrowed(input), false, &mut |x| {
                    collect(f, &x, &mut out)
                })?;
                Ok(Some(Cow::Owned(Value::Array(out))))
            }
            Form::Test(re) => match input {
                Value::Str(s) => Ok(Some(Cow::Owned(Value::Bool(re.is_match(s))))),
                v => Err(ErrV::Msg(format!(
                    "{} cannot be matched, as it is not a string",
                    desc(v)
                ))
                .into()),
            },
            Form::By(op, f) => Ok(Some(Cow::Owned(by(*op, f, input)?))),
            Form::AnyAll { gen, cond, is_any } => s_any_all(gen, cond, *is_any, input),
            Form::Update { path, op, rhs } => {
                if *op == UpdOp::Modify {
                    return Ok(Some(Cow::Owned(update(input, path, *op, rhs, &NULL)?)));
                }
                let Some(r) = rhs.first(input)? else {
                    return Ok(None);
                };
                Ok(Some(Cow::Owned(update(input, path, *op, rhs, &r)?)))
            }
            Form::Del(paths) => {
                let mut v = input.clone();
                for p in paths.iter() {
                    builtins::del_path(&mut v, p)?;
                }
                Ok(Some(Cow::Owned(v)))
            }
            // Kinds that are always `Many`; reached only through `first` on a mis-carded
            // node, which the compiler does not produce. Stay correct anyway.
            Form::Iter { .. }
            | Form::Recurse
            | Form::Comma(..)
            | Form::Limit(..)
            | Form::Jaq(_) => first_of_stream(self, input),
        }
    }

    /// Evaluation of a node that may produce several outputs.
    fn stream(&self, input: &Value, k: &mut K) -> Res {
        match &self.kind {
            Form::Index { obj, key, opt } => key.run(input, &mut |kv| {
                obj.run(input, &mut |o| match index_cow(o, &kv) {
                    Ok(v) => k(v),
                    Err(_) if *opt => Ok(()),
                    Err(e) => Err(e.into()),
                })
            }),
            Form::Slice { obj, from, to, opt } => {
                let null = Node::new(Card::One, Form::Lit(Value::Null));
                let from = from.as_deref().unwrap_or(&null);
                let to = to.as_deref().unwrap_or(&null);
                from.run(input, &mut |f| {
                    to.run(input, &mut |t| {
                        obj.run(input, &mut |o| match builtins::slice(&o, &f, &t) {
                            Ok(v) => k(Cow::Owned(v)),
                            Err(_) if *opt => Ok(()),
                            Err(e) => Err(e.into()),
                        })
                    })
                })
            }
            Form::Iter { obj, opt } => obj.run(input, &mut |o| iterate(o, *opt, k)),
            Form::Recurse => recurse(Cow::Borrowed(input), k),
            Form::Pipe(a, b) => a.run(input, &mut |x| b.run(&x, k)),
            Form::Comma(a, b) => {
                a.run(input, k)?;
                b.run(input, k)
            }
            Form::Neg(a) => a.run(input, &mut |v| k(Cow::Owned(builtins::neg(&v)?))),
            Form::Math(op, l, r) => r.run(input, &mut |rv| {
                l.run(input, &mut |lv| {
                    k(Cow::Owned(builtins::math(*op, lv, &rv)?))
                })
            }),
            Form::Cmp(op, l, r) => r.run(input, &mut |rv| {
                l.run(input, &mut |lv| {
                    k(Cow::Owned(Value::Bool(op.test(lv.cmp(&rv)))))
                })
            }),
            Form::And(l, r) => l.run(input, &mut |lv| {
                if !lv.truthy() {
                    k(Cow::Owned(Value::Bool(false)))
                } else {
                    r.run(input, &mut |rv| k(Cow::Owned(Value::Bool(rv.truthy()))))
                }
            }),
            Form::Or(l, r) => l.run(input, &mut |lv| {
                if lv.truthy() {
                    k(Cow::Owned(Value::Bool(true)))
                } else {
                    r.run(input, &mut |rv| k(Cow::Owned(Value::Bool(rv.truthy()))))
                }
            }),
            Form::Alt(l, r) => {
                let mut any = false;
                l.run(input, &mut |v| {
                    if v.truthy() {
                        any = true;
                        k(v)
                    } else {
                        Ok(())
                    }
                })?;
                if any {
                    Ok(())
                } else {
                    r.run(input, k)
                }
            }
            Form::If(branches, els) => if_from(branches, els.as_deref(), 0, input, k),
            Form::Try(body, catch) => {
                // Errors raised downstream (by `k`) are not caught: they are parked in
                // `down` and the body is stopped.
                let mut down: Option<Ctl> = None;
                let r = body.run(input, &mut |v| {
                    k(v).map_err(|c| {
                        down = Some(c);
                        Ctl::Stop
                    })
                });
                if let Some(c) = down {
                    return Err(c);
                }
                match r {
                    Ok(()) => Ok(()),
                    Err(Ctl::Err(e)) if !matches!(*e, ErrV::Limit(_)) => match catch {
                        Some(c) => c.run(&e.into_value(), k),
                        None => Ok(()),
                    },
                    Err(c) => Err(c),
                }
            }
            Form::ObjLit { entries, unique } => {
                let m = Map::with_capacity(entries.len());
                obj_lit_from(entries, *unique, 0, input, m, k)
            }
            Form::Obj(entries) => {
                let m = Map::with_capacity(entries.len());
                obj_from(entries, 0, input, m, k)
            }
            Form::Str(fmt, parts) => {
                let mut pieces = vec![String::new(); parts.len()];
                str_from(*fmt, parts, parts.len(), input, &mut pieces, k)
            }
            Form::Call1(f, a) => a.run(input, &mut |av| k(Cow::Owned(f(input, &av)?))),
            Form::Select(f) => f.run(input, &mut |c| {
                if c.truthy() {
                    k(Cow::Borrowed(input))
                } else {
                    Ok(())
                }
            }),
            Form::Limit(n, f) => n.run(input, &mut |nv| {
                let n = match &*nv {
                    Value::Int(i) => *i as f64,
                    Value::Float(x, _) => *x,
                    v => {
                        return Err(Ctl::from(ErrV::Msg(format!(
                            "invalid limit {}: not a number",
                            desc(v)
                        ))))
                    }
                };
                if n == 0.0 {
                    return Ok(());
                }
                if n < 0.0 || n.is_nan() {
                    return f.run(input, k);
                }
                let mut left = n.ceil() as u64;
                let mut down: Option<Ctl> = None;
                let r = f.run(input, &mut |v| {
                    if let Err(c) = k(v) {
                        down = Some(c);
                        return Err(Ctl::Stop);
                    }
                    left -= 1;
                    if left == 0 {
                        Err(Ctl::Stop)
                    } else {
                        Ok(())
                    }
                });
                if let Some(c) = down {
                    return Err(c);
                }
                match r {
                    Err(Ctl::Stop) if left == 0 => Ok(()),
                    r => r,
                }
            }),
            Form::Update { path, op, rhs } if *op != UpdOp::Modify => rhs.run(input, &mut |r| {
                k(Cow::Owned(update(input, path, *op, rhs, &r)?))
            }),
            Form::Jaq(j) => j.run(input, &mut |v| k(Cow::Owned(v))),
            // Every other kind has at most one output (its card is never `Many`).
            _ => match self.single(input)? {
                Some(v) => k(v),
                None => Ok(()),
            },
        }
    }
}

#[inline(never)]
fn first_of_stream<'a>(n: &'a Node, input: &'a Value) -> Single<'a> {
    let mut out = None;
    let r = n.stream(input, &mut |v| {
        out = Some(v.into_owned());
        Err(Ctl::Stop)
    });
    match (out, r) {
        (Some(v), _) => Ok(Some(Cow::Owned(v))),
        (None, Err(Ctl::Err(e))) => Err(Ctl::Err(e)),
        (None, _) => Ok(None),
    }
}

/// Walks a literal path by reference; a missing key or a null gives null.
#[inline]
fn path_get<'a>(keys: &[Key], input: &'a Value) -> Result<&'a Value, Ctl> {
    let mut cur = input;
    for key in keys {
        match index_ref(cur, key) {
            Ok(Some(c)) => cur = c,
            Ok(None) => return Ok(&NULL),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(cur)
}

/// `Value::cmp` with the common same-type cases first.
#[inline]
pub(crate) fn cmp_values(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => x.cmp(y),
        (Value::Str(x), Value::Str(y)) => x.as_str().cmp(y.as_str()),
        // jq's operators: NaN is less than any number, itself included (`nan < nan`).
        (Value::Float(x, _), Value::Int(_) | Value::Float(..)) if x.is_nan() => Ordering::Less,
        _ => a.cmp(b),
    }
}

fn s_index<'a>(obj: &'a Node, key: &'a Node, opt: bool, input: &'a Value) -> Single<'a> {
    let Some(k) = key.first(input)? else {
        return Ok(None);
    };
    let Some(o) = obj.first(input)? else {
        return Ok(None);
    };
    match index_cow(o, &k) {
        Ok(v) => Ok(Some(v)),
        Err(_) if opt => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn s_slice<'a>(
    obj: &'a Node,
    from: Option<&'a Node>,
    to: Option<&'a Node>,
    opt: bool,
    input: &'a Value,
) -> Single<'a> {
    let f = match from {
        Some(f) => match f.first(input)? {
            Some(v) => v,
            None => return Ok(None),
        },
        None => Cow::Borrowed(&NULL),
    };
    let t = match to {
        Some(t) => match t.first(input)? {
            Some(v) => v,
            None => return Ok(None),
        },
        None => Cow::Borrowed(&NULL),
    };
    let Some(o) = obj.first(input)? else {
        return Ok(None);
    };
    match builtins::slice(&o, &f, &t) {
        Ok(v) => Ok(Some(Cow::Owned(v))),
        Err(_) if opt => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn s_pipe<'a>(a: &'a Node, b: &'a Node, input: &'a Value) -> Single<'a> {
    let Some(x) = a.first(input)? else {
        return Ok(None);
    };
    match x {
        Cow::Borrowed(r) => b.first(r),
        Cow::Owned(v) => Ok(b.first(&v)?.map(|o| Cow::Owned(o.into_owned()))),
    }
}

fn s_math<'a>(op: MathOp, l: &'a Node, r: &'a Node, input: &'a Value) -> Single<'a> {
    let Some(rv) = r.first(input)? else {
        return Ok(None);
    };
    let Some(lv) = l.first(input)? else {
        return Ok(None);
    };
    Ok(Some(Cow::Owned(builtins::math(op, lv, &rv)?)))
}

fn s_cmp<'a>(op: CmpOp, l: &'a Node, r: &'a Node, input: &'a Value) -> Single<'a> {
    let Some(rv) = r.first(input)? else {
        return Ok(None);
    };
    let Some(lv) = l.first(input)? else {
        return Ok(None);
    };
    Ok(Some(Cow::Owned(Value::Bool(op.test(cmp_values(&lv, &rv))))))
}

/// `and` (`is_or` false) and `or`.
fn s_logic<'a>(is_or: bool, l: &'a Node, r: &'a Node, input: &'a Value) -> Single<'a> {
    let Some(lv) = l.truth(input)? else {
        return Ok(None);
    };
    if lv == is_or {
        return Ok(Some(Cow::Owned(Value::Bool(is_or))));
    }
    Ok(r.truth(input)?.map(|v| Cow::Owned(Value::Bool(v))))
}

fn s_if<'a>(branches: &'a [(Node, Node)], els: Option<&'a Node>, input: &'a Value) -> Single<'a> {
    for (c, t) in branches {
        let Some(cv) = c.truth(input)? else {
            return Ok(None);
        };
        if cv {
            return t.first(input);
        }
    }
    match els {
        Some(e) => e.first(input),
        None => Ok(Some(Cow::Borrowed(input))),
    }
}

fn s_try<'a>(body: &'a Node, catch: Option<&'a Node>, input: &'a Value) -> Single<'a> {
    match body.first(input) {
        Ok(v) => Ok(v),
        Err(Ctl::Err(e)) if !matches!(*e, ErrV::Limit(_)) => match catch {
            Some(c) => {
                let ev = e.into_value();
                Ok(c.first(&ev)?.map(|v| Cow::Owned(v.into_owned())))
            }
            None => Ok(None),
        },
        Err(c) => Err(c),
    }
}

fn s_obj_lit<'a>(entries: &'a [(Str, Node)], unique: bool, input: &'a Value) -> Single<'a> {
    let mut m = Map::with_capacity(entries.len());
    for (k, v) in entries {
        let Some(x) = v.first(input)? else {
            return Ok(None);
        };
        if unique {
            m.push_unique(k.clone(), x.into_owned());
        } else {
            m.insert(k.clone(), x.into_owned());
        }
    }
    Ok(Some(Cow::Owned(Value::Object(m))))
}

fn s_obj<'a>(entries: &'a [(Node, Node)], input: &'a Value) -> Single<'a> {
    let mut m = Map::with_capacity(entries.len());
    for (k, v) in entries {
        let Some(kv) = k.first(input)? else {
            return Ok(None);
        };
        let key = obj_key(kv)?;
        let Some(x) = v.first(input)? else {
            return Ok(None);
        };
        m.insert(key, x.into_owned());
    }
    Ok(Some(Cow::Owned(Value::Object(m))))
}

fn s_str<'a>(fmt: StrFmt, parts: &'a [SPart], input: &'a Value) -> Single<'a> {
    let mut s = String::new();
    for p in parts {
        match p {
            SPart::Lit(l) => s.push_str(l),
            SPart::Interp(n) => {
                let Some(v) = n.first(input)? else {
                    return Ok(None);
                };
                push_interp(&mut s, fmt, &v);
            }
        }
    }
    Ok(Some(Cow::Owned(Value::Str(Str::from(s)))))
}

fn s_error<'a>(f: Option<&'a Node>, input: &'a Value) -> Single<'a> {
    let e = match f {
        None => input.clone(),
        Some(f) => match f.first(input)? {
            Some(v) => v.into_owned(),
            None => return Ok(None),
        },
    };
    Err(ErrV::Val(e).into())
}

fn s_any_all<'a>(gen: &'a Node, cond: &'a Node, is_any: bool, input: &'a Value) -> Single<'a> {
    let mut hit = false;
    let r = gen.run(input, &mut |x| {
        cond.run(&x, &mut |c| {
            if c.truthy() == is_any {
                hit = true;
                Err(Ctl::Stop)
            } else {
                Ok(())
            }
        })
    });
    match r {
        Err(Ctl::Stop) if hit => Ok(Some(Cow::Owned(Value::Bool(is_any)))),
        Err(e) => Err(e),
        Ok(()) => Ok(Some(Cow::Owned(Value::Bool(!is_any)))),
    }
}

fn collect(f: &Node, input: &Value, out: &mut Vec<Value>) -> Res {
    if f.card != Card::Many {
        if let Some(v) = f.single(input)? {
            out.push(v.into_owned());
        }
        return Ok(());
    }
    f.stream(input, &mut |v| {
        out.push(v.into_owned());
        Ok(())
    })
}

fn if_from(
    branches: &[(Node, Node)],
    els: Option<&Node>,
    i: usize,
    input: &Value,
    k: &mut K,
) -> Res {
    match branches.get(i) {
        None => match els {
            Some(e) => e.run(input, k),
            None => k(Cow::Borrowed(input)),
        },
        Some((c, t)) => c.run(input, &mut |cv| {
            if cv.truthy() {
                t.run(input, k)
            } else {
                if_from(branches, els, i + 1, input, k)
            }
        }),
    }
}

fn obj_lit_from(
    entries: &[(Str, Node)],
    unique: bool,
    i: usize,
    input: &Value,
    m: Map,
    k: &mut K,
) -> Res {
    let Some((key, v)) = entries.get(i) else {
        return k(Cow::Owned(Value::Object(m)));
    };
    if v.card != Card::Many {
        let mut m = m;
        match v.single(input)? {
            Some(x) => {
                if unique {
                    m.push_unique(key.clone(), x.into_owned());
                } else {
                    m.insert(key.clone(), x.into_owned());
                }
                return obj_lit_from(entries, unique, i + 1, input, m, k);
            }
            None => return Ok(()),
        }
    }
    v.stream(input, &mut |x| {
        let mut m2 = m.clone();
        m2.insert(key.clone(), x.into_owned());
        obj_lit_from(entries, unique, i + 1, input, m2, k)
    })
}

fn obj_key(k: Cow<'_, Value>) -> Result<Str, Ctl> {
    match k {
        Cow::Owned(Value::Str(s)) => Ok(s),
        Cow::Borrowed(Value::Str(s)) => Ok(s.clone()),
        other => Err(Ctl::from(ErrV::Msg(format!(
            "object keys must be strings, not {}",
            desc(&other)
        )))),
    }
}

fn obj_from(entries: &[(Node, Node)], i: usize, input: &Value, m: Map, k: &mut K) -> Res {
    let Some((kn, vn)) = entries.get(i) else {
        return k(Cow::Owned(Value::Object(m)));
    };
    kn.run(input, &mut |kv| {
        let key = obj_key(kv)?;
        vn.run(input, &mut |x| {
            let mut m2 = m.clone();
            m2.insert(key.clone(), x.into_owned());
            obj_from(entries, i + 1, input, m2, k)
        })
    })
}

pub(crate) fn push_interp(s: &mut String, fmt: StrFmt, v: &Value) {
    match (fmt, v) {
        (StrFmt::Text, Value::Str(x)) => s.push_str(x),
        _ => s.push_str(&v.to_json_string()),
    }
}

/// Interpolations are looped over from the last (outermost) to the first.
fn str_from(
    fmt: StrFmt,
    parts: &[SPart],
    j: usize,
    input: &Value,
    pieces: &mut Vec<String>,
    k: &mut K,
) -> Res {
    if j == 0 {
        let mut s = String::new();
        for (p, piece) in parts.iter().zip(pieces.iter()) {
            match p {
                SPart::Lit(l) => s.push_str(l),
                SPart::Interp(_) => s.push_str(piece),
            }
        }
        return k(Cow::Owned(Value::Str(Str::from(s))));
    }
    match &parts[j - 1] {
        SPart::Lit(_) => str_from(fmt, parts, j - 1, input, pieces, k),
        SPart::Interp(n) => n.run(input, &mut |v| {
            let mut piece = String::new();
            push_interp(&mut piece, fmt, &v);
            pieces[j - 1] = piece;
            str_from(fmt, parts, j - 1, input, pieces, k)
        }),
    }
}

/// `.[]` of a value.
fn iterate(o: Cow<'_, Value>, opt: bool, k: &mut K) -> Res {
    match o {
        Cow::Borrowed(Value::Array(a)) => a.iter().try_for_each(|x| k(Cow::Borrowed(x))),
        Cow::Borrowed(Value::Object(m)) => m.values().try_for_each(|x| k(Cow::Borrowed(x))),
        Cow::Owned(Value::Array(a)) => a.into_iter().try_for_each(|x| k(Cow::Owned(x))),
        Cow::Owned(Value::Object(m)) => m
            .into_vec()
            .into_iter()
            .try_for_each(|(_, x)| k(Cow::Owned(x))),
        _ if opt => Ok(()),
        v => Err(Ctl::from(ErrV::Msg(iterate_error(&v)))),
    }
}

/// `..`: the value, then recursively its children (pre-order).
fn recurse(v: Cow<'_, Value>, k: &mut K) -> Res {
    match v {
        Cow::Borrowed(x) => {
            k(Cow::Borrowed(x))?;
            match x {
                Value::Array(a) => a.iter().try_for_each(|c| recurse(Cow::Borrowed(c), k)),
                Value::Object(m) => m.values().try_for_each(|c| recurse(Cow::Borrowed(c), k)),
                _ => Ok(()),
            }
        }
        Cow::Owned(x) => {
            k(Cow::Borrowed(&x))?;
            match x {
                Value::Array(a) => a.into_iter().try_for_each(|c| recurse(Cow::Owned(c), k)),
                Value::Object(m) => m
                    .into_vec()
                    .into_iter()
                    .try_for_each(|(_, c)| recurse(Cow::Owned(c), k)),
                _ => Ok(()),
            }
        }
    }
}

fn array_pos(len: usize, i: f64) -> Option<usize> {
    // jq 1.7 truncates a fractional index towards zero (`.[-1.7]` is `.[-1]`).
    let i = i.trunc();
    let i = if i < 0.0 { i + len as f64 } else { i };
    (i >= 0.0 && i < len as f64).then_some(i as usize)
}

/// `v[key]` for a computed key, moving out of an owned `v` instead of cloning.
fn index_cow<'a>(v: Cow<'a, Value>, key: &Value) -> Result<Cow<'a, Value>, ErrV> {
    match (&*v, key) {
        (Value::Object(_), Value::Str(_)) | (Value::Array(_), Value::Int(_) | Value::Float(..)) => {
        }
        (Value::Null, Value::Str(_) | Value::Int(_) | Value::Float(..) | Value::Null) => {
            return Ok(Cow::Borrowed(&NULL))
        }
        (Value::Null, Value::Object(_)) => return Ok(Cow::Borrowed(&NULL)),
        (_, Value::Object(_)) => {
            return builtins::slice_obj(&v, key).map(Cow::Owned);
        }
        (Value::Array(a), Value::Array(b)) => return Ok(Cow::Owned(builtins::indices(a, b))),
        (v, k) => return Err(index_error(v, k)),
    }
    match v {
        Cow::Borrowed(v) => Ok(match (v, key) {
            (Value::Object(m), Value::Str(s)) => {
                m.get(s).map_or(Cow::Borrowed(&NULL), Cow::Borrowed)
            }
            (Value::Array(a), k) => {
                let i = k.as_f64().unwrap_or(0.0);
                array_pos(a.len(), i).map_or(Cow::Borrowed(&NULL), |i| Cow::Borrowed(&a[i]))
            }
            _ => Cow::Borrowed(&NULL),
        }),
        Cow::Owned(v) => Ok(Cow::Owned(match (v, key) {
            (Value::Object(mut m), Value::Str(s)) => m.remove(s).unwrap_or(Value::Null),
            (Value::Array(mut a), k) => {
                let i = k.as_f64().unwrap_or(0.0);
                match array_pos(a.len(), i) {
                    Some(i) => a.swap_remove(i),
                    None => Value::Null,
                }
            }
            _ => Value::Null,
        })),
    }
}

/// `sort_by(f)` and friends: keys are `[f]` per element.
fn by(op: ByOp, f: &Node, input: &Value) -> Result<Value, Ctl> {
    let items: Vec<&Value> = match input {
        Value::Array(a) => a.iter().collect(),
        v => {
            return Err(Ctl::from(ErrV::Msg(format!(
                "{} cannot be sorted, as it is not an array",
                desc(v)
            ))))
        }
    };
    let mut keyed: Vec<(Vec<Value>, &Value)> = Vec::with_capacity(items.len());
    for x in items {
        let mut key = Vec::new();
        collect(f, x, &mut key)?;
        keyed.push((key, x));
    }
    Ok(match op {
        ByOp::Sort => {
            keyed.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Array(keyed.into_iter().map(|(_, x)| x.clone()).collect())
        }
        ByOp::Min => keyed
            .into_iter()
            .min_by(|a, b| a.0.cmp(&b.0))
            .map_or(Value::Null, |(_, x)| x.clone()),
        ByOp::Max => keyed
            .into_iter()
            .max_by(|a, b| a.0.cmp(&b.0))
            .map_or(Value::Null, |(_, x)| x.clone()),
        ByOp::Group | ByOp::Unique => {
            keyed.sort_by(|a, b| a.0.cmp(&b.0));
            let mut groups: Vec<(Vec<Value>, Vec<Value>)> = Vec::new();
            for (key, x) in keyed {
                match groups.last_mut() {
                    Some((k, g)) if *k == key => g.push(x.clone()),
                    _ => groups.push((key, vec![x.clone()])),
                }
            }
            if op == ByOp::Group {
                Value::Array(groups.into_iter().map(|(_, g)| Value::Array(g)).collect())
            } else {
                Value::Array(
                    groups
                        .into_iter()
                        .filter_map(|(_, g)| g.into_iter().next())
                        .collect(),
                )
            }
        }
    })
}

/// Assignment to a literal path. `r` is one output of `rhs` evaluated on the input (for
/// `=`, `op=` and `//=`); for `|=` the update `rhs` runs on the old value at the path.
fn update(input: &Value, path: &[Key], op: UpdOp, rhs: &Node, r: &Value) -> Result<Value, Ctl> {
    let mut out = input.clone();
    update_in_place(&mut out, path, op, rhs, r)?;
    Ok(out)
}

fn update_in_place(
    out: &mut Value,
    path: &[Key],
    op: UpdOp,
    rhs: &Node,
    r: &Value,
) -> Result<(), Ctl> {
    let new = {
        let old = builtins::get_path(out, path)?;
        match op {
            UpdOp::Assign => Some(r.clone()),
            UpdOp::Math(m) => Some(builtins::math(m, Cow::Borrowed(old), r)?),
            UpdOp::Alt => Some(if old.truthy() { old.clone() } else { r.clone() }),
            UpdOp::Modify => rhs.first(old)?.map(Cow::into_owned),
        }
    };
    match new {
        Some(v) => builtins::set_path(out, path, v)?,
        None => builtins::del_path(out, path)?,
    }
    Ok(())
}

impl Node {
    /// Single-output evaluation that may reuse an owned input instead of cloning it: for
    /// `.`, assignments to literal paths and `del`. Gives the input back (`Err`) for
    /// other nodes.
    pub(crate) fn eval_owned(&self, mut input: Value) -> Result<Result<Value, Ctl>, Value> {
        let r = match &self.kind {
            Form::Id => Ok(()),
            Form::Update { path, op, rhs } if self.card == Card::One => {
                if *op == UpdOp::Modify {
                    update_in_place(&mut input, path, *op, rhs, &NULL)
                } else {
                    match rhs.first(&input) {
                        Ok(Some(r)) => {
                            let r = r.into_owned();
                            update_in_place(&mut input, path, *op, rhs, &r)
                        }
                        Ok(None) => Err(Ctl::Stop),
                        Err(e) => Err(e),
                    }
                }
            }
            Form::Del(paths) => paths
                .iter()
                .try_for_each(|p| builtins::del_path(&mut input, p).map_err(Ctl::from)),
            _ => return Err(input),
        };
        Ok(r.map(|()| input))
    }
}

/// The fields of its input that `n` can read, added to `acc` as paths of keys from the input
/// (the value at a path's end may be read whole; `.a.b[0]` reads `["a", "b"]`); false when it
/// may read the input as a whole (`.`, functions of the input, anything run by jaq). Used to
/// parse only the fields a pipeline needs; erring towards "whole" is always safe.
pub(crate) fn input_paths(n: &Node, acc: &mut Vec<Vec<Str>>) -> bool {
    fn add(p: Vec<Str>, acc: &mut Vec<Vec<Str>>) {
        if !acc.contains(&p) {
            acc.push(p);
        }
    }
    fn path(keys: &[Key], acc: &mut Vec<Vec<Str>>) -> bool {
        let p: Vec<Str> = keys
            .iter()
            .map_while(|k| match k {
                Key::Field(f) => Some(f.clone()),
                Key::Index(_) => None,
            })
            .collect();
        if p.is_empty() {
            return false;
        }
        add(p, acc);
        true
    }
    match &n.kind {
        Form::Lit(_) | Form::Empty => true,
        Form::Path(keys) | Form::CmpPathLit(_, keys, _) => path(keys, acc),
        Form::Index { obj, key, .. } => {
            // `.["k"]` with a literal key reads one field; anything else reads the input.
            match (&obj.kind, &key.kind) {
                (Form::Id, Form::Lit(Value::Str(k))) => {
                    add(vec![k.clone()], acc);
                    true
                }
                (Form::Id, _) => false,
                _ => input_paths(obj, acc) && input_paths(key, acc),
            }
        }
        Form::Slice { obj, from, to, .. } => {
            !matches!(obj.kind, Form::Id)
                && input_paths(obj, acc)
                && from.as_ref().is_none_or(|f| input_paths(f, acc))
                && to.as_ref().is_none_or(|t| input_paths(t, acc))
        }
        Form::Iter { obj, .. } => !matches!(obj.kind, Form::Id) && input_paths(obj, acc),
        // The right side works on the left side's output.
        Form::Pipe(a, _) => input_paths(a, acc),
        Form::Comma(a, b)
        | Form::Math(_, a, b)
        | Form::Cmp(_, a, b)
        | Form::And(a, b)
        | Form::Or(a, b)
        | Form::Alt(a, b) => input_paths(a, acc) && input_paths(b, acc),
        Form::Neg(a) => input_paths(a, acc),
        Form::If(arms, els) => {
            arms.iter()
                .all(|(c, t)| input_paths(c, acc) && input_paths(t, acc))
                && els.as_ref().is_none_or(|e| input_paths(e, acc))
        }
        Form::Try(body, _) => input_paths(body, acc),
        Form::ObjLit { entries, .. } => entries.iter().all(|(_, v)| input_paths(v, acc)),
        Form::Obj(entries) => entries
            .iter()
            .all(|(k, v)| input_paths(k, acc) && input_paths(v, acc)),
        Form::Arr(inner) => inner.as_ref().is_none_or(|i| input_paths(i, acc)),
        Form::Str(_, parts) => parts.iter().all(|p| match p {
            SPart::Lit(_) => true,
            SPart::Interp(x) => input_paths(x, acc),
        }),
        Form::Error(Some(f)) => input_paths(f, acc),
        Form::First(f) => input_paths(f, acc),
        Form::Limit(a, b) => input_paths(a, acc) && input_paths(b, acc),
        Form::AnyAll { gen, .. } => input_paths(gen, acc),
        _ => false,
    }
}
