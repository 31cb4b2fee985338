//! Translation of jaq's parse tree into native [`Node`]s.
//!
//! Each term is translated natively when its form is supported; otherwise that subterm
//! alone is printed back to jq source and compiled by jaq (a `Form::Jaq` node), and the
//! rest of the tree stays native. This is sound because every form that binds names
//! (`as $x`, `def`, `reduce`, `foreach`, `label`) is itself handed to jaq whole, so any
//! subterm the native compiler reaches has no free variables or local functions (only
//! globals such as `$ENV`, which jaq resolves on its own).

use super::builtins as b;
use super::fallback::{compile_jaq, print_term};
use super::native::{ByOp, Card, CmpOp, Fn0, Fn1, Form, Key, MathOp, Node, SPart, StrFmt, UpdOp};
use crate::value::{Str, Value};
use jaq_core::load::lex::StrPart;
use jaq_core::load::parse::{BinaryOp, Term};
use jaq_core::ops::{Cmp, Math};
use jaq_core::path::{Opt, Part};
use std::sync::Arc;

/// The translation of one term: `Ok(None)` means the form is not supported natively;
/// `Err(())` means a subterm could not be compiled by jaq on its own either (the caller
/// then falls back to the whole expression).
type Tr = Result<Option<Node>, ()>;

/// Translates `t`, natively where possible.
pub(crate) fn native(t: &Term<&str>) -> Tr {
    Ok(Some(match t {
        Term::Id => Node::new(Card::One, Form::Id),
        Term::Recurse => Node::new(Card::Many, Form::Recurse),
        Term::Num(n) => lit(parse_num(n)),
        Term::Str(fmt, parts) => match string(fmt, parts)? {
            Some(n) => n,
            None => return Ok(None),
        },
        Term::Arr(None) => lit(Value::Array(Vec::new())),
        Term::Arr(Some(t)) => {
            let n = node(t)?;
            fold(Node::new(Card::One, Form::Arr(Some(Box::new(n)))))
        }
        Term::Obj(kvs) => match object(kvs)? {
            Some(n) => n,
            None => return Ok(None),
        },
        Term::Neg(t) => {
            let n = node(t)?;
            fold(Node::new(n.card, Form::Neg(Box::new(n))))
        }
        Term::BinOp(l, op, r) => match binop(l, op, r)? {
            Some(n) => n,
            None => return Ok(None),
        },
        Term::TryCatch(body, catch) => {
            let body = node(body)?;
            let catch = match catch {
                Some(c) => Some(node(c)?),
                None => None,
            };
            let card = match (&catch, body.card) {
                (_, Card::Many) => Card::Many,
                (Some(c), _) if c.card == Card::Many => Card::Many,
                (Some(c), bc) => bc.join(c.card),
                (None, _) => Card::Opt,
            };
            Node::new(card, Form::Try(Box::new(body), catch.map(Box::new)))
        }
        Term::IfThenElse(ifs, els) => {
            let mut branches = Vec::with_capacity(ifs.len());
            let mut card = Card::One;
            for (c, t) in ifs {
                let (c, t) = (node(c)?, node(t)?);
                card = card.join(c.card).join(t.card);
                branches.push((c, t));
            }
            let els = match els {
                Some(e) => {
                    let e = node(e)?;
                    card = card.join(e.card);
                    Some(Box::new(e))
                }
                None => None,
            };
            Node::new(card, Form::If(branches.into(), els))
        }
        Term::Call(name, args) => match call(name, args)? {
            Some(n) => n,
            None => return Ok(None),
        },
        Term::Path(head, path) => {
            let mut n = node(head)?;
            for (part, opt) in &path.0 {
                let opt = matches!(opt, Opt::Optional);
                n = match part {
                    Part::Index(i) => {
                        let key = node(i)?;
                        index(n, key, opt)
                    }
                    Part::Range(None, None) => Node::new(
                        Card::Many,
                        Form::Iter {
                            obj: Box::new(n),
                            opt,
                        },
                    ),
                    Part::Range(from, to) => {
                        let from = match from {
                            Some(f) => Some(Box::new(node(f)?)),
                            None => None,
                        };
                        let to = match to {
                            Some(t) => Some(Box::new(node(t)?)),
                            None => None,
                        };
                        let mut card = n.card;
                        for x in from.iter().chain(to.iter()) {
                            card = card.join(x.card);
                        }
                        if opt {
                            card = card.join(Card::Opt);
                        }
                        Node::new(
                            card,
                            Form::Slice {
                                obj: Box::new(n),
                                from,
                                to,
                                opt,
                            },
                        )
                    }
                };
            }
            n
        }
        // Binding forms and variables go to jaq whole.
        Term::Var(_) | Term::Label(..) | Term::Break(_) | Term::Fold(..) | Term::Def(..) => {
            return Ok(None)
        }
    }))
}

/// Translates `t` natively, or else hands this subterm to jaq.
fn node(t: &Term<&str>) -> Result<Node, ()> {
    match native(t)? {
        Some(n) => Ok(n),
        None => {
            let src = print_term(t);
            let jaq = compile_jaq(&src).map_err(|_| ())?;
            Ok(Node::new(Card::Many, Form::Jaq(Arc::new(jaq))))
        }
    }
}

fn lit(v: Value) -> Node {
    Node::new(Card::One, Form::Lit(v))
}

fn parse_num(n: &str) -> Value {
    if !n.contains(['.', 'e', 'E']) {
        if let Ok(i) = n.parse::<i64>() {
            return Value::Int(i);
        }
    }
    Value::number(n.parse::<f64>().unwrap_or(f64::NAN))
}

/// A string literal without interpolation.
pub(crate) fn plain_str(t: &Term<&str>) -> Option<String> {
    match t {
        Term::Str(None, parts) => {
            let mut s = String::new();
            for p in parts {
                match p {
                    StrPart::Str(x) => s.push_str(x),
                    StrPart::Char(c) => s.push(*c),
                    StrPart::Term(_) => return None,
                }
            }
            Some(s)
        }
        _ => None,
    }
}

fn string(fmt: &Option<&str>, parts: &[StrPart<&str, Term<&str>>]) -> Tr {
    let fmt = match fmt {
        None | Some("@text") => StrFmt::Text,
        Some("@json") => StrFmt::Json,
        Some(_) => return Ok(None),
    };
    let mut out: Vec<SPart> = Vec::new();
    let mut card = Card::One;
    for p in parts {
        let push_lit = |out: &mut Vec<SPart>, s: &str| match out.last_mut() {
            Some(SPart::Lit(l)) => l.push_str(s),
            _ => out.push(SPart::Lit(s.to_string())),
        };
        match p {
            StrPart::Str(s) => push_lit(&mut out, s),
            StrPart::Char(c) => push_lit(&mut out, c.encode_utf8(&mut [0; 4])),
            StrPart::Term(t) => {
                let n = node(t)?;
                card = card.join(n.card);
                out.push(SPart::Interp(n));
            }
        }
    }
    Ok(Some(match out.as_slice() {
        [] => lit(Value::Str(Str::default())),
        [SPart::Lit(s)] => lit(Value::str(s)),
        _ => fold(Node::new(card, Form::Str(fmt, out.into()))),
    }))
}

fn object(kvs: &[(Term<&str>, Option<Term<&str>>)]) -> Tr {
    let mut entries: Vec<(Node, Node)> = Vec::with_capacity(kvs.len());
    for (k, v) in kvs {
        let (kn, vn) = match v {
            Some(v) => (node(k)?, node(v)?),
            None => match plain_str(k) {
                // `{a}` / `{"a"}` is `{a: .a}`
                Some(s) => {
                    let key = Str::from(s);
                    let value =
                        Node::new(Card::One, Form::Path(Box::new([Key::Field(key.clone())])));
                    (lit(Value::Str(key)), value)
                }
                // `{$x}`, `{$__loc__}`, `{"\(..)"}`, `{@base64 "x"}`
                None => return Ok(None),
            },
        };
        entries.push((kn, vn));
    }
    let mut card = Card::One;
    for (k, v) in &entries {
        card = card.join(k.card).join(v.card);
    }
    let all_lit = entries
        .iter()
        .all(|(k, _)| matches!(k.kind, Form::Lit(Value::Str(_))));
    if all_lit {
        let lits: Vec<(Str, Node)> = entries
            .into_iter()
            .map(|(k, v)| match k.kind {
                Form::Lit(Value::Str(s)) => (s, v),
                _ => (Str::default(), v),
            })
            .collect();
        let unique = lits
            .iter()
            .enumerate()
            .all(|(i, (k, _))| lits[..i].iter().all(|(k2, _)| k2 != k));
        return Ok(Some(fold(Node::new(
            card,
            Form::ObjLit {
                entries: lits.into(),
                unique,
            },
        ))));
    }
    Ok(Some(Node::new(card, Form::Obj(entries.into()))))
}

fn lit_key(n: &Node) -> Option<Key> {
    match &n.kind {
        Form::Lit(Value::Str(s)) => Some(Key::Field(s.clone())),
        Form::Lit(Value::Int(i)) => Some(Key::Index(*i)),
        Form::Lit(Value::Float(f, _)) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
            Some(Key::Index(*f as i64))
        }
        _ => None,
    }
}

fn index(obj: Node, key: Node, opt: bool) -> Node {
    if !opt {
        if let Some(k) = lit_key(&key) {
            match obj.kind {
                Form::Id => return Node::new(Card::One, Form::Path(Box::new([k]))),
                Form::Path(keys) => {
                    let mut keys = keys.into_vec();
                    keys.push(k);
                    return Node::new(Card::One, Form::Path(keys.into()));
                }
                kind => {
                    let obj = Node::new(obj.card, kind);
                    return Node::new(
                        obj.card.join(key.card),
                        Form::Index {
                            obj: Box::new(obj),
                            key: Box::new(key),
                            opt,
                        },
                    );
                }
            }
        }
    }
    let mut card = obj.card.join(key.card);
    if opt {
        card = card.join(Card::Opt);
    }
    Node::new(
        card,
        Form::Index {
            obj: Box::new(obj),
            key: Box::new(key),
            opt,
        },
    )
}

fn binop(l: &Term<&str>, op: &BinaryOp<&str>, r: &Term<&str>) -> Tr {
    let math_op = |m: &Math| match m {
        Math::Add => MathOp::Add,
        Math::Sub => MathOp::Sub,
        Math::Mul => MathOp::Mul,
        Math::Div => MathOp::Div,
        Math::Rem => MathOp::Rem,
    };
    match op {
        BinaryOp::Pipe(Some(_)) => return Ok(None),
        BinaryOp::Assign | BinaryOp::Update | BinaryOp::UpdateMath(_) | BinaryOp::UpdateAlt => {
            let Some(path) = literal_path(l) else {
                return Ok(None);
            };
            let rhs = node(r)?;
            let upd = match op {
                BinaryOp::Assign => UpdOp::Assign,
                BinaryOp::Update => UpdOp::Modify,
                BinaryOp::UpdateMath(m) => UpdOp::Math(math_op(m)),
                _ => UpdOp::Alt,
            };
            let card = if upd == UpdOp::Modify {
                Card::One
            } else {
                rhs.card
            };
            return Ok(Some(Node::new(
                card,
                Form::Update {
                    path,
                    op: upd,
                    rhs: Box::new(rhs),
                },
            )));
        }
        _ => {}
    }
    let (l, r) = (node(l)?, node(r)?);
    let both = |kind: fn(Box<Node>, Box<Node>) -> Form, l: Node, r: Node| {
        Node::new(l.card.join(r.card), kind(Box::new(l), Box::new(r)))
    };
    Ok(Some(match op {
        BinaryOp::Pipe(_) => pipe(l, r),
        BinaryOp::Comma => Node::new(Card::Many, Form::Comma(Box::new(l), Box::new(r))),
        BinaryOp::Alt => {
            let card = if l.card == Card::Many || r.card == Card::Many {
                Card::Many
            } else {
                r.card
            };
            Node::new(card, Form::Alt(Box::new(l), Box::new(r)))
        }
        BinaryOp::Or => fold(both(Form::Or, l, r)),
        BinaryOp::And => fold(both(Form::And, l, r)),
        BinaryOp::Math(m) => {
            let m = math_op(m);
            fold(Node::new(
                l.card.join(r.card),
                Form::Math(m, Box::new(l), Box::new(r)),
            ))
        }
        BinaryOp::Cmp(c) => {
            let c = match c {
                Cmp::Eq => CmpOp::Eq,
                Cmp::Ne => CmpOp::Ne,
                Cmp::Lt => CmpOp::Lt,
                Cmp::Le => CmpOp::Le,
                Cmp::Gt => CmpOp::Gt,
                Cmp::Ge => CmpOp::Ge,
            };
            let flip = |c: CmpOp| match c {
                CmpOp::Lt => CmpOp::Gt,
                CmpOp::Gt => CmpOp::Lt,
                CmpOp::Le => CmpOp::Ge,
                CmpOp::Ge => CmpOp::Le,
                c => c,
            };
            let as_path = |n: &Node| match &n.kind {
                Form::Path(keys) => Some(keys.clone()),
                Form::Id => Some(Box::new([]) as Box<[Key]>),
                _ => None,
            };
            match (&l.kind, &r.kind) {
                (_, Form::Lit(v)) if as_path(&l).is_some() => {
                    let keys = as_path(&l).unwrap_or_default();
                    Node::new(Card::One, Form::CmpPathLit(c, keys, v.clone()))
                }
                (Form::Lit(v), _) if as_path(&r).is_some() => {
                    let keys = as_path(&r).unwrap_or_default();
                    Node::new(Card::One, Form::CmpPathLit(flip(c), keys, v.clone()))
                }
                _ => fold(Node::new(
                    l.card.join(r.card),
                    Form::Cmp(c, Box::new(l), Box::new(r)),
                )),
            }
        }
        _ => return Ok(None),
    }))
}

fn pipe(l: Node, r: Node) -> Node {
    match (l.kind, r.kind) {
        (Form::Id, rk) => Node::new(r.card, rk),
        (lk, Form::Id) => Node::new(l.card, lk),
        (Form::Path(a), Form::Path(b)) => {
            let mut keys = a.into_vec();
            keys.extend(b.into_vec());
            Node::new(Card::One, Form::Path(keys.into()))
        }
        (lk, rk) => {
            let (l, r) = (Node::new(l.card, lk), Node::new(r.card, rk));
            fold(Node::new(
                l.card.join(r.card),
                Form::Pipe(Box::new(l), Box::new(r)),
            ))
        }
    }
}

/// `.a.b[0]` as a list of keys (for assignment and `del`).
fn literal_path(t: &Term<&str>) -> Option<Box<[Key]>> {
    if let Term::Id = t {
        return Some(Box::new([]));
    }
    let Term::Path(head, path) = t else {
        return None;
    };
    let mut keys = match &**head {
        Term::Id => Vec::new(),
        h => literal_path(h)?.into_vec(),
    };
    for (part, opt) in &path.0 {
        if matches!(opt, Opt::Optional) {
            return None;
        }
        let Part::Index(i) = part else {
            return None;
        };
        let n = native(i).ok()??;
        keys.push(lit_key(&n)?);
    }
    Some(keys.into())
}

/// Regex flags of jq (Oniguruma) that the `regex` crate can express.
fn regex_for(re: &str, flags: &str) -> Option<regex::Regex> {
    let mut b = regex::RegexBuilder::new(re);
    for f in flags.chars() {
        match f {
            'i' => {
                b.case_insensitive(true);
            }
            'x' => {
                b.ignore_whitespace(true);
            }
            'p' => {
                b.dot_matches_new_line(true);
            }
            // global, no-empty-matches, single-line: no effect on `test`
            'g' | 'n' | 's' => {}
            _ => return None,
        }
    }
    b.build().ok()
}

fn call(name: &str, args: &[Term<&str>]) -> Tr {
    let f0 = |f: Fn0| Ok(Some(Node::new(Card::One, Form::Call0(f))));
    let filter0 = |p: fn(&Value) -> bool| Ok(Some(Node::new(Card::Opt, Form::Filter0(p))));
    let path = |k: i64| {
        Ok(Some(Node::new(
            Card::One,
            Form::Path(Box::new([Key::Index(k)])),
        )))
    };
    match (name, args) {
        ("empty", []) => return Ok(Some(Node::new(Card::Opt, Form::Empty))),
        ("true", []) => return Ok(Some(lit(Value::Bool(true)))),
        ("false", []) => return Ok(Some(lit(Value::Bool(false)))),
        ("null", []) => return Ok(Some(lit(Value::Null))),
        ("nan", []) => return Ok(Some(lit(Value::float(f64::NAN)))),
        ("infinite", []) => return Ok(Some(lit(Value::float(f64::INFINITY)))),
        ("not", []) => return f0(b::not),
        ("length", []) => return f0(b::length),
        ("utf8bytelength", []) => return f0(b::utf8bytelength),
        ("type", []) => return f0(b::type_of),
        ("keys", []) => return f0(b::keys),
        ("keys_unsorted", []) => return f0(b::keys_unsorted),
        ("tostring", []) | ("@text", []) => return f0(b::tostring),
        ("tojson", []) | ("@json", []) => return f0(b::tojson),
        ("fromjson", []) => return f0(b::fromjson),
        ("tonumber", []) => return f0(b::tonumber),
        ("ascii_downcase", []) => return f0(b::ascii_downcase),
        ("ascii_upcase", []) => return f0(b::ascii_upcase),
        ("floor", []) => return f0(b::floor),
        ("ceil", []) => return f0(b::ceil),
        ("round", []) => return f0(b::round),
        ("fabs", []) => return f0(b::fabs),
        ("abs", []) => return f0(b::abs),
        ("sqrt", []) => return f0(b::sqrt),
        ("add", []) => return f0(b::add_all),
        ("min", []) => return f0(b::min),
        ("max", []) => return f0(b::max),
        ("sort", []) => return f0(b::sort),
        ("unique", []) => return f0(b::unique),
        ("reverse", []) => return f0(b::reverse),
        ("to_entries", []) => return f0(b::to_entries),
        ("from_entries", []) => return f0(b::from_entries),
        ("flatten", []) => return f0(b::flatten),
        ("any", []) => return f0(b::any0),
        ("all", []) => return f0(b::all0),
        ("explode", []) => return f0(b::explode),
        ("implode", []) => return f0(b::implode),
        ("trim", []) => return f0(b::trim),
        ("ltrim", []) => return f0(b::ltrim),
        ("rtrim", []) => return f0(b::rtrim),
        ("first", []) => return path(0),
        ("last", []) => return path(-1),
        ("values", []) => return filter0(b::is_value),
        ("nulls", []) => return filter0(b::is_null),
        ("booleans", []) => return filter0(b::is_bool),
        ("numbers", []) => return filter0(b::is_number),
        ("strings", []) => return filter0(b::is_string),
        ("arrays", []) => return filter0(b::is_array),
        ("objects", []) => return filter0(b::is_object),
        ("iterables", []) => return filter0(b::is_iterable),
        ("scalars", []) => return filter0(b::is_scalar),
        ("recurse", []) => return Ok(Some(Node::new(Card::Many, Form::Recurse))),
        ("error", []) => return Ok(Some(Node::new(Card::Opt, Form::Error(None)))),
        _ => {}
    }
    if let [arg] = args {
        let f1: Option<Fn1> = match name {
            "has" => Some(b::has),
            "in" => Some(b::is_in),
            "contains" => Some(b::contains),
            "inside" => Some(b::inside),
            "startswith" => Some(b::startswith),
            "endswith" => Some(b::endswith),
            "ltrimstr" => Some(b::ltrimstr),
            "rtrimstr" => Some(b::rtrimstr),
            "split" => Some(b::split),
            "join" => Some(b::join),
            _ => None,
        };
        if let Some(f) = f1 {
            let a = node(arg)?;
            return Ok(Some(fold(Node::new(
                a.card.join(Card::One),
                Form::Call1(f, Box::new(a)),
            ))));
        }
        let by = match name {
            "sort_by" => Some(ByOp::Sort),
            "group_by" => Some(ByOp::Group),
            "min_by" => Some(ByOp::Min),
            "max_by" => Some(ByOp::Max),
            "unique_by" => Some(ByOp::Unique),
            _ => None,
        };
        if let Some(op) = by {
            let f = node(arg)?;
            return Ok(Some(Node::new(Card::One, Form::By(op, Box::new(f)))));
        }
        match name {
            "select" => {
                let f = node(arg)?;
                let card = f.card.join(Card::Opt);
                return Ok(Some(Node::new(card, Form::Select(Box::new(f)))));
            }
            "first" => {
                let f = node(arg)?;
                return Ok(Some(Node::new(Card::Opt, Form::First(Box::new(f)))));
            }
            "map" => {
                let f = node(arg)?;
                return Ok(Some(Node::new(Card::One, Form::Map(Box::new(f)))));
            }
            "error" => {
                let f = node(arg)?;
                return Ok(Some(Node::new(Card::Opt, Form::Error(Some(Box::new(f))))));
            }
            "any" | "all" => {
                let f = node(arg)?;
                let gen = Node::new(
                    Card::Many,
                    Form::Iter {
                        obj: Box::new(Node::new(Card::One, Form::Id)),
                        opt: false,
                    },
                );
                return Ok(Some(Node::new(
                    Card::One,
                    Form::AnyAll {
                        gen: Box::new(gen),
                        cond: Box::new(f),
                        is_any: name == "any",
                    },
                )));
            }
            "with_entries" => {
                let f = node(arg)?;
                let map = Node::new(Card::One, Form::Map(Box::new(f)));
                let to = Node::new(Card::One, Form::Call0(b::to_entries));
                let from = Node::new(Card::One, Form::Call0(b::from_entries));
                return Ok(Some(pipe(to, pipe(map, from))));
            }
            "test" => {
                return Ok(plain_str(arg)
                    .and_then(|re| regex_for(&re, ""))
                    .map(|re| Node::new(Card::One, Form::Test(Box::new(re)))));
            }
            "del" => return Ok(del(arg)),
            _ => {}
        }
    }
    if let [a1, a2] = args {
        match name {
            "test" => {
                let (Some(re), Some(flags)) = (plain_str(a1), plain_str(a2)) else {
                    return Ok(None);
                };
                return Ok(
                    regex_for(&re, &flags).map(|re| Node::new(Card::One, Form::Test(Box::new(re))))
                );
            }
            "limit" => {
                let (n, f) = (node(a1)?, node(a2)?);
                return Ok(Some(Node::new(
                    Card::Many,
                    Form::Limit(Box::new(n), Box::new(f)),
                )));
            }
            "any" | "all" => {
                let (gen, cond) = (node(a1)?, node(a2)?);
                return Ok(Some(Node::new(
                    Card::One,
                    Form::AnyAll {
                        gen: Box::new(gen),
                        cond: Box::new(cond),
                        is_any: name == "any",
                    },
                )));
            }
            _ => {}
        }
    }
    Ok(None)
}

/// `del(p1, p2, ...)` with literal paths; deleted from the last path to the first in
/// jq's path order so that array positions stay valid.
fn del(arg: &Term<&str>) -> Option<Node> {
    fn paths(t: &Term<&str>, out: &mut Vec<Box<[Key]>>) -> Option<()> {
        match t {
            Term::BinOp(l, BinaryOp::Comma, r) => {
                paths(l, out)?;
                paths(r, out)
            }
            t => {
                let p = literal_path(t)?;
                // Negative indices would need the array length to order correctly.
                if p.iter().any(|k| matches!(k, Key::Index(i) if *i < 0)) {
                    return None;
                }
                out.push(p);
                Some(())
            }
        }
    }
    let mut ps = Vec::new();
    paths(arg, &mut ps)?;
    ps.sort_by(|a, b| b::cmp_paths(b, a));
    Some(Node::new(Card::One, Form::Del(ps.into())))
}

/// Evaluates input-independent, single-valued subtrees at compile time.
fn fold(n: Node) -> Node {
    if n.card != Card::One || !is_const(&n) {
        return n;
    }
    let mut out = Vec::new();
    match n.run(&Value::Null, &mut |v| {
        out.push(v.into_owned());
        Ok(())
    }) {
        Ok(()) if out.len() == 1 => lit(out.pop().unwrap_or_default()),
        _ => n,
    }
}

fn is_const(n: &Node) -> bool {
    match &n.kind {
        Form::Lit(_) => true,
        Form::Arr(a) => a.as_deref().is_none_or(is_const),
        Form::ObjLit { entries, .. } => entries.iter().all(|(_, v)| is_const(v)),
        Form::Comma(a, b)
        | Form::Math(_, a, b)
        | Form::Cmp(_, a, b)
        | Form::And(a, b)
        | Form::Or(a, b) => is_const(a) && is_const(b),
        Form::Neg(a) => is_const(a),
        Form::Str(_, parts) => parts.iter().all(|p| match p {
            SPart::Lit(_) => true,
            SPart::Interp(n) => is_const(n),
        }),
        // `const | f` is constant when f is native (jaq could read the clock or $ENV).
        Form::Pipe(a, b) => is_const(a) && b.all(&mut |x| !matches!(x.kind, Form::Jaq(_))),
        _ => false,
    }
}
