//! jq expressions as Flink SQL, for `weir export flink`.
//!
//! Works on jaq's parse tree (the same parser `src/expr` compiles from), never on jq text, and
//! translates only the forms whose SQL twin gives the same result on every record jq accepts:
//! field paths, literals, comparisons (with jq's null ordering made explicit), arithmetic,
//! `and`/`or`/`not` (jq truthiness made explicit), `//`, `if`, string functions with a SQL
//! twin and objects of fields. Anything else is an `Err` naming the subterm, which the caller
//! turns into exit 2: a refusal, never a guess.

use crate::expr::plain_str;
use jaq_core::load::lex::StrPart;
use jaq_core::load::parse::{BinaryOp, Term};
use jaq_core::ops::{Cmp, Math};
use jaq_core::path::Part;

/// A SQL type as weir's values map onto Flink's.
#[derive(Debug, Clone, PartialEq)]
pub enum Ty {
    Str,
    Int,
    Dbl,
    Bool,
    /// A nested object: `ROW<...>`.
    Row(Vec<(String, Ty)>),
    /// The literal `null`: fits any type.
    Null,
}

impl Ty {
    pub fn sql(&self) -> String {
        match self {
            Ty::Str | Ty::Null => "STRING".into(),
            Ty::Int => "BIGINT".into(),
            Ty::Dbl => "DOUBLE".into(),
            Ty::Bool => "BOOLEAN".into(),
            Ty::Row(fields) => {
                let inner: Vec<String> = fields
                    .iter()
                    .map(|(n, t)| format!("{} {}", quote(n), t.sql()))
                    .collect();
                format!("ROW<{}>", inner.join(", "))
            }
        }
    }
    fn numeric(&self) -> bool {
        matches!(self, Ty::Int | Ty::Dbl)
    }
}

/// One SQL expression with its type and whether it can be NULL (a missing field can).
#[derive(Debug, Clone, PartialEq)]
pub struct Sql {
    pub text: String,
    pub ty: Ty,
    pub nullable: bool,
}

impl Sql {
    pub fn new(text: impl Into<String>, ty: Ty, nullable: bool) -> Sql {
        Sql {
            text: text.into(),
            ty,
            nullable,
        }
    }
    /// A column of a table or view.
    pub fn column(name: &str, ty: Ty) -> Sql {
        Sql::new(quote(name), ty, true)
    }
}

/// A record as SQL: each field's expression over the relation it is read from, in jq's key
/// order, and the conditions (`select`) a record must meet to exist at all.
#[derive(Debug, Clone, Default)]
pub struct Rec {
    pub fields: Vec<(String, Sql)>,
    pub conds: Vec<String>,
}

impl Rec {
    fn get(&self, name: &str) -> Option<&Sql> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, s)| s)
    }
    fn set(&mut self, name: String, v: Sql) {
        match self.fields.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = v,
            None => self.fields.push((name, v)),
        }
    }
}

/// A Flink SQL identifier, back-quoted.
pub fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// A SQL string literal.
pub fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

type R<T> = Result<T, String>;

/// Parses `src` with jaq's parser.
pub fn with_term<T>(src: &str, f: impl FnOnce(&Term<&str>) -> R<T>) -> R<T> {
    let tokens = jaq_core::load::Lexer::new(src)
        .lex()
        .map_err(|_| format!("`{src}` does not parse"))?;
    let term = jaq_core::load::Parser::new(&tokens)
        .parse(|p| p.term())
        .map_err(|_| format!("`{src}` does not parse"))?;
    f(&term)
}

fn refuse(t: &Term<&str>, why: &str) -> String {
    format!("`{}` {why}", crate::expr::print_term(t))
}

/// What an expression reads: a whole record, or one value already in SQL (after a `|`).
#[derive(Clone, Copy)]
pub enum Input<'a> {
    Record(&'a Rec),
    Value(&'a Sql),
}

/// A record-valued expression (a `map` or `filter` body's output record).
pub fn record(t: &Term<&str>, cur: &Rec) -> R<Rec> {
    match t {
        Term::Id => Ok(cur.clone()),
        Term::Obj(kvs) => {
            let mut out = Rec {
                fields: Vec::new(),
                conds: cur.conds.clone(),
            };
            for (k, v) in kvs {
                let name = plain_str(k).ok_or_else(|| {
                    refuse(k, "as an object key: only literal keys have a SQL column name")
                })?;
                let value = match v {
                    Some(v) => scalar(v, Input::Record(cur))?,
                    None => field(cur, &name, t)?,
                };
                out.set(name, value);
            }
            Ok(out)
        }
        Term::BinOp(l, BinaryOp::Pipe(None), r) => record(r, &record(l, cur)?),
        Term::BinOp(l, BinaryOp::Math(Math::Add), r) => {
            // `. + {..}`: fields of the right side replace or follow those of the left.
            let mut left = record(l, cur)?;
            let right = record(r, cur)?;
            for c in right.conds {
                if !left.conds.contains(&c) {
                    left.conds.push(c);
                }
            }
            for (n, v) in right.fields {
                left.set(n, v);
            }
            Ok(left)
        }
        Term::Call(name, args) if *name == "select" && args.len() == 1 => {
            let c = scalar(&args[0], Input::Record(cur))?;
            let mut out = cur.clone();
            out.conds.push(truthy(&c));
            Ok(out)
        }
        Term::Call(name, args) if *name == "del" && args.len() == 1 => {
            let mut out = cur.clone();
            for p in comma_list(&args[0]) {
                let n = top_field(p).ok_or_else(|| refuse(p, "in del(): only top-level fields"))?;
                out.fields.retain(|(f, _)| *f != n);
            }
            Ok(out)
        }
        _ => Err(refuse(
            t,
            "makes no record Flink SQL can build (supported: {fields}, . + {...}, select(...), del(.a), |)",
        )),
    }
}

fn comma_list<'a>(t: &'a Term<&'a str>) -> Vec<&'a Term<&'a str>> {
    match t {
        Term::BinOp(l, BinaryOp::Comma, r) => {
            let mut v = comma_list(l);
            v.extend(comma_list(r));
            v
        }
        _ => vec![t],
    }
}

fn top_field(t: &Term<&str>) -> Option<String> {
    match t {
        Term::Path(head, path) if matches!(**head, Term::Id) && path.0.len() == 1 => {
            match &path.0[0].0 {
                Part::Index(k) => plain_str(k),
                _ => None,
            }
        }
        _ => None,
    }
}

fn field(cur: &Rec, name: &str, t: &Term<&str>) -> R<Sql> {
    cur.get(name).cloned().ok_or_else(|| {
        refuse(
            t,
            &format!(
                "reads field `{name}`, which the records here do not have (Flink needs every column declared; weir learns them from the input's first records)"
            ),
        )
    })
}

/// jq truthiness (everything but `false` and `null` is true) as a SQL condition that is never
/// NULL.
pub fn truthy(s: &Sql) -> String {
    match s.ty {
        Ty::Bool if s.nullable => format!("COALESCE({}, FALSE)", s.text),
        Ty::Bool => s.text.clone(),
        Ty::Null => "FALSE".into(),
        _ if s.nullable => format!("({} IS NOT NULL)", s.text),
        _ => "TRUE".into(),
    }
}

fn bool_sql(text: String) -> Sql {
    Sql::new(text, Ty::Bool, false)
}

/// The type two values share in SQL, for `//`, `if` and unions; `None` when they have none.
pub fn unify(a: &Ty, b: &Ty) -> Option<Ty> {
    match (a, b) {
        (Ty::Null, t) | (t, Ty::Null) => Some(t.clone()),
        (Ty::Int, Ty::Dbl) | (Ty::Dbl, Ty::Int) => Some(Ty::Dbl),
        (a, b) if a == b => Some(a.clone()),
        _ => None,
    }
}

fn cast_to(s: &Sql, ty: &Ty) -> String {
    if s.ty == *ty {
        s.text.clone()
    } else {
        format!("CAST({} AS {})", s.text, ty.sql())
    }
}

/// A value-valued expression.
pub fn scalar(t: &Term<&str>, input: Input) -> R<Sql> {
    match t {
        Term::Id => match input {
            Input::Value(v) => Ok(v.clone()),
            Input::Record(_) => Err(refuse(t, "is a whole record, not a SQL value")),
        },
        Term::Num(n) => {
            if !n.contains(['.', 'e', 'E']) && n.parse::<i64>().is_ok() {
                Ok(Sql::new(n.to_string(), Ty::Int, false))
            } else {
                let f: f64 = n.parse().map_err(|_| refuse(t, "is not a number"))?;
                Ok(Sql::new(format!("CAST({f:?} AS DOUBLE)"), Ty::Dbl, false))
            }
        }
        Term::Str(None, parts) => {
            let mut pieces = Vec::new();
            let mut buf = String::new();
            for p in parts {
                match p {
                    StrPart::Str(x) => buf.push_str(x),
                    StrPart::Char(c) => buf.push(*c),
                    StrPart::Term(x) => {
                        if !buf.is_empty() {
                            pieces.push(lit(&buf));
                            buf.clear();
                        }
                        let v = scalar(x, input)?;
                        // jq writes a string as is, an integer in decimal and a missing
                        // value as `null`; floats print differently in SQL.
                        match v.ty {
                            Ty::Str | Ty::Int => pieces.push(tostring(&v)),
                            _ => {
                                return Err(refuse(
                                    x,
                                    "in a string: only strings and integers print alike in SQL",
                                ))
                            }
                        }
                    }
                }
            }
            if !buf.is_empty() || pieces.is_empty() {
                pieces.push(lit(&buf));
            }
            if pieces.len() == 1 {
                Ok(Sql::new(pieces.remove(0), Ty::Str, false))
            } else {
                Ok(Sql::new(
                    format!("CONCAT({})", pieces.join(", ")),
                    Ty::Str,
                    false,
                ))
            }
        }
        Term::Path(head, path) => {
            let mut keys = Vec::with_capacity(path.0.len());
            for (part, _opt) in &path.0 {
                let key = match part {
                    Part::Index(k) => plain_str(k),
                    Part::Range(..) => None,
                };
                keys.push(
                    key.ok_or_else(|| {
                        refuse(t, "indexes other than .field have no SQL twin here")
                    })?,
                );
            }
            let (mut cur, rest) = match (&**head, input, keys.split_first()) {
                (Term::Id, Input::Record(rec), Some((first, rest))) => {
                    (field(rec, first, t)?, rest)
                }
                _ => (scalar(head, input)?, keys.as_slice()),
            };
            for key in rest {
                cur = member(&cur, key, t)?;
            }
            Ok(cur)
        }
        Term::Neg(x) => {
            let v = scalar(x, input)?;
            if !v.ty.numeric() {
                return Err(refuse(t, "negates a value that is not a number"));
            }
            Ok(Sql::new(format!("(-{})", v.text), v.ty, v.nullable))
        }
        Term::BinOp(l, op, r) => binop(t, l, op, r, input),
        Term::IfThenElse(ifs, els) => {
            let els = match els {
                Some(e) => scalar(e, input)?,
                None => scalar(&Term::Id, input).map_err(|_| refuse(t, "needs an else"))?,
            };
            let mut ty = els.ty.clone();
            let mut nullable = els.nullable;
            let mut branches = Vec::new();
            for (c, v) in ifs {
                let c = scalar(c, input)?;
                let v = scalar(v, input)?;
                ty = unify(&ty, &v.ty)
                    .ok_or_else(|| refuse(t, "has branches of different types"))?;
                nullable |= v.nullable;
                branches.push((truthy(&c), v));
            }
            let mut s = String::from("CASE");
            for (c, v) in &branches {
                s.push_str(&format!(" WHEN {c} THEN {}", cast_to(v, &ty)));
            }
            s.push_str(&format!(" ELSE {} END", cast_to(&els, &ty)));
            Ok(Sql::new(s, ty, nullable))
        }
        Term::Call(name, args) => call(t, name, args, input),
        _ => Err(refuse(t, "has no SQL twin")),
    }
}

fn member(base: &Sql, key: &str, t: &Term<&str>) -> R<Sql> {
    match &base.ty {
        Ty::Row(fields) => {
            let ty = fields
                .iter()
                .find(|(n, _)| n == key)
                .map(|(_, ty)| ty.clone())
                .ok_or_else(|| {
                    refuse(
                        t,
                        &format!("reads `{key}`, which the records here do not have"),
                    )
                })?;
            Ok(Sql::new(format!("{}.{}", base.text, quote(key)), ty, true))
        }
        _ => Err(refuse(t, "indexes a value that is not an object")),
    }
}

fn binop(
    t: &Term<&str>,
    l: &Term<&str>,
    op: &BinaryOp<&str>,
    r: &Term<&str>,
    input: Input,
) -> R<Sql> {
    match op {
        BinaryOp::Pipe(None) => {
            let left = scalar(l, input)?;
            scalar(r, Input::Value(&left))
        }
        BinaryOp::And | BinaryOp::Or => {
            let (a, b) = (scalar(l, input)?, scalar(r, input)?);
            let word = if matches!(op, BinaryOp::And) {
                "AND"
            } else {
                "OR"
            };
            Ok(bool_sql(format!("({} {word} {})", truthy(&a), truthy(&b))))
        }
        BinaryOp::Alt => {
            let (a, b) = (scalar(l, input)?, scalar(r, input)?);
            let ty =
                unify(&a.ty, &b.ty).ok_or_else(|| refuse(t, "has sides of different types"))?;
            let text = format!(
                "CASE WHEN {} THEN {} ELSE {} END",
                truthy(&a),
                cast_to(&a, &ty),
                cast_to(&b, &ty)
            );
            // `a // b` is COALESCE(a, b) but for `false`, which jq also passes over.
            let text = if a.ty == Ty::Bool {
                text
            } else {
                format!("COALESCE({}, {})", cast_to(&a, &ty), cast_to(&b, &ty))
            };
            Ok(Sql::new(text, ty, b.nullable))
        }
        BinaryOp::Cmp(c) => {
            let (a, b) = (scalar(l, input)?, scalar(r, input)?);
            compare(t, &a, *c, &b)
        }
        BinaryOp::Math(m) => {
            let (a, b) = (scalar(l, input)?, scalar(r, input)?);
            math(t, &a, *m, &b)
        }
        _ => Err(refuse(t, "has no SQL twin")),
    }
}

/// jq orders null below every other value, and `null == null`; SQL's comparisons with NULL are
/// NULL. The CASE below gives jq's answer whichever side is missing.
fn compare(t: &Term<&str>, a: &Sql, c: Cmp, b: &Sql) -> R<Sql> {
    let comparable =
        a.ty == b.ty || (a.ty.numeric() && b.ty.numeric()) || a.ty == Ty::Null || b.ty == Ty::Null;
    if !comparable || matches!(a.ty, Ty::Row(_)) || matches!(b.ty, Ty::Row(_)) {
        return Err(refuse(
            t,
            "compares values of different types (jq orders types, SQL refuses)",
        ));
    }
    let (sym, eq, lt, gt) = match c {
        Cmp::Eq => ("=", true, false, false),
        Cmp::Ne => ("<>", false, true, true),
        Cmp::Lt => ("<", false, true, false),
        Cmp::Le => ("<=", true, true, false),
        Cmp::Gt => (">", false, false, true),
        Cmp::Ge => (">=", true, false, true),
    };
    let up = |b: bool| if b { "TRUE" } else { "FALSE" };
    if a.ty == Ty::Null || b.ty == Ty::Null {
        // Comparing with the literal null: only missingness matters.
        let (x, x_is_left) = if a.ty == Ty::Null {
            (b, false)
        } else {
            (a, true)
        };
        if x.ty == Ty::Null {
            return Ok(bool_sql(up(eq).into()));
        }
        // x present: x > null; x missing: equal.
        let present = if x_is_left { gt } else { lt };
        return Ok(bool_sql(format!(
            "CASE WHEN {} IS NULL THEN {} ELSE {} END",
            x.text,
            up(eq),
            up(present)
        )));
    }
    let plain = format!("({} {sym} {})", a.text, b.text);
    Ok(bool_sql(match (a.nullable, b.nullable) {
        (false, false) => plain,
        (true, false) => format!("CASE WHEN {} IS NULL THEN {} ELSE {plain} END", a.text, up(lt)),
        (false, true) => format!("CASE WHEN {} IS NULL THEN {} ELSE {plain} END", b.text, up(gt)),
        (true, true) => format!(
            "CASE WHEN {a} IS NULL AND {b} IS NULL THEN {} WHEN {a} IS NULL THEN {} WHEN {b} IS NULL THEN {} ELSE {plain} END",
            up(eq),
            up(lt),
            up(gt),
            a = a.text,
            b = b.text
        ),
    }))
}

fn math(t: &Term<&str>, a: &Sql, m: Math, b: &Sql) -> R<Sql> {
    let nullable = a.nullable || b.nullable;
    if m == Math::Add && (a.ty == Ty::Str || b.ty == Ty::Str) {
        if unify(&a.ty, &b.ty) != Some(Ty::Str) {
            return Err(refuse(t, "adds a string to a value that is not one"));
        }
        return Ok(null_is_identity(
            a,
            b,
            format!("CONCAT({}, {})", a.text, b.text),
            Ty::Str,
        ));
    }
    if !(a.ty.numeric() || a.ty == Ty::Null) || !(b.ty.numeric() || b.ty == Ty::Null) {
        return Err(refuse(t, "does arithmetic on values that are not numbers"));
    }
    let ty = if a.ty == Ty::Dbl || b.ty == Ty::Dbl {
        Ty::Dbl
    } else {
        Ty::Int
    };
    Ok(match m {
        // jq: null + x is x.
        Math::Add => null_is_identity(a, b, format!("({} + {})", a.text, b.text), ty),
        Math::Sub => Sql::new(format!("({} - {})", a.text, b.text), ty, nullable),
        Math::Mul => Sql::new(format!("({} * {})", a.text, b.text), ty, nullable),
        // jq divides in floating point: 7 / 2 is 3.5.
        Math::Div => Sql::new(
            format!("(CAST({} AS DOUBLE) / {})", a.text, b.text),
            Ty::Dbl,
            nullable,
        ),
        Math::Rem if ty == Ty::Int => {
            Sql::new(format!("MOD({}, {})", a.text, b.text), Ty::Int, nullable)
        }
        Math::Rem => return Err(refuse(t, "takes a remainder of a non-integer")),
    })
}

fn null_is_identity(a: &Sql, b: &Sql, both: String, ty: Ty) -> Sql {
    let text = match (a.nullable, b.nullable) {
        (false, false) => both,
        _ => format!(
            "CASE WHEN {a} IS NULL THEN {} WHEN {b} IS NULL THEN {} ELSE {both} END",
            cast_to(b, &ty),
            cast_to(a, &ty),
            a = a.text,
            b = b.text
        ),
    };
    Sql::new(text, ty, a.nullable && b.nullable)
}

/// jq's `tostring` of a string or an integer (a missing value is `"null"`).
fn tostring(v: &Sql) -> String {
    let text = match v.ty {
        Ty::Str => v.text.clone(),
        _ => format!("CAST({} AS STRING)", v.text),
    };
    if v.nullable {
        format!("COALESCE({text}, 'null')")
    } else {
        text
    }
}

fn call(t: &Term<&str>, name: &str, args: &[Term<&str>], input: Input) -> R<Sql> {
    let this = || scalar(&Term::Id, input);
    let str_in = |what: &str| -> R<Sql> {
        let v = this()?;
        if v.ty != Ty::Str {
            return Err(refuse(
                t,
                &format!("{what} of a value that is not a string"),
            ));
        }
        Ok(v)
    };
    let str_arg = |i: usize| -> R<Sql> {
        let v = scalar(&args[i], input)?;
        if v.ty != Ty::Str {
            return Err(refuse(t, "needs a string argument"));
        }
        Ok(v)
    };
    let num_in = || -> R<Sql> {
        let v = this()?;
        if !v.ty.numeric() {
            return Err(refuse(t, "of a value that is not a number"));
        }
        Ok(v)
    };
    Ok(match (name, args.len()) {
        ("true", 0) => bool_sql("TRUE".into()),
        ("false", 0) => bool_sql("FALSE".into()),
        ("null", 0) => Sql::new("CAST(NULL AS STRING)", Ty::Null, true),
        ("not", 0) => bool_sql(format!("(NOT {})", truthy(&this()?))),
        // jq: `null | length` is 0.
        ("length", 0) => {
            let v = this()?;
            let f = match v.ty {
                Ty::Str => "CHAR_LENGTH",
                Ty::Int | Ty::Dbl => "ABS",
                _ => return Err(refuse(t, "of this type has no SQL twin")),
            };
            let ty = if v.ty == Ty::Str {
                Ty::Int
            } else {
                v.ty.clone()
            };
            Sql::new(format!("COALESCE({f}({}), 0)", v.text), ty, false)
        }
        ("ascii_downcase", 0) | ("ascii_upcase", 0) => {
            // jq changes ASCII letters only, as TRANSLATE does; LOWER/UPPER would change
            // every letter.
            let v = str_in(name)?;
            let (up, low) = ("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz");
            let (from, to) = if name == "ascii_downcase" {
                (up, low)
            } else {
                (low, up)
            };
            Sql::new(
                format!("TRANSLATE({}, '{from}', '{to}')", v.text),
                Ty::Str,
                v.nullable,
            )
        }
        ("startswith", 1) => {
            let (v, s) = (str_in(name)?, str_arg(0)?);
            bool_sql(format!(
                "COALESCE(POSITION({} IN {}) = 1, FALSE)",
                s.text, v.text
            ))
        }
        ("endswith", 1) => {
            let (v, s) = (str_in(name)?, str_arg(0)?);
            bool_sql(format!(
                "COALESCE(RIGHT({v}, CHAR_LENGTH({s})) = {s} AND CHAR_LENGTH({v}) >= CHAR_LENGTH({s}), FALSE)",
                v = v.text,
                s = s.text
            ))
        }
        ("contains", 1) => {
            let (v, s) = (str_in(name)?, str_arg(0)?);
            bool_sql(format!(
                "COALESCE(POSITION({} IN {}) > 0, FALSE)",
                s.text, v.text
            ))
        }
        ("ltrimstr", 1) | ("rtrimstr", 1) => {
            let (v, s) = (str_in(name)?, str_arg(0)?);
            let text = if name == "ltrimstr" {
                format!(
                    "CASE WHEN POSITION({s} IN {v}) = 1 THEN SUBSTRING({v} FROM CHAR_LENGTH({s}) + 1) ELSE {v} END",
                    v = v.text,
                    s = s.text
                )
            } else {
                format!(
                    "CASE WHEN CHAR_LENGTH({v}) >= CHAR_LENGTH({s}) AND RIGHT({v}, CHAR_LENGTH({s})) = {s} THEN LEFT({v}, CHAR_LENGTH({v}) - CHAR_LENGTH({s})) ELSE {v} END",
                    v = v.text,
                    s = s.text
                )
            };
            Sql::new(text, Ty::Str, v.nullable)
        }
        ("tostring", 0) => {
            let v = this()?;
            match v.ty {
                Ty::Str | Ty::Int => Sql::new(tostring(&v), Ty::Str, false),
                _ => return Err(refuse(t, "prints this type differently in SQL")),
            }
        }
        ("floor", 0) | ("ceil", 0) | ("sqrt", 0) | ("fabs", 0) | ("abs", 0) => {
            let v = num_in()?;
            let (f, ty) = match name {
                "floor" => ("FLOOR", Ty::Dbl),
                "ceil" => ("CEIL", Ty::Dbl),
                "sqrt" => ("SQRT", Ty::Dbl),
                _ => ("ABS", v.ty.clone()),
            };
            Sql::new(
                format!("{f}(CAST({} AS DOUBLE))", v.text),
                if ty == Ty::Int { Ty::Dbl } else { ty },
                v.nullable,
            )
        }
        _ => return Err(refuse(t, "has no SQL twin")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec() -> Rec {
        Rec {
            fields: vec![
                ("status".into(), Sql::column("status", Ty::Int)),
                ("path".into(), Sql::column("path", Ty::Str)),
                ("ms".into(), Sql::column("ms", Ty::Dbl)),
            ],
            conds: vec![],
        }
    }

    fn s(src: &str) -> R<String> {
        let r = rec();
        with_term(src, |t| scalar(t, Input::Record(&r))).map(|s| s.text)
    }

    #[test]
    fn comparisons_keep_jq_null_order() {
        assert_eq!(
            s(".status >= 500").unwrap(),
            "CASE WHEN `status` IS NULL THEN FALSE ELSE (`status` >= 500) END"
        );
        // null < 5 in jq
        assert!(s(".status < 5").unwrap().contains("IS NULL THEN TRUE"));
        assert!(s(".status != 5").unwrap().contains("IS NULL THEN TRUE"));
        assert!(s(".path == null")
            .unwrap()
            .contains("IS NULL THEN TRUE ELSE FALSE"));
    }

    #[test]
    fn refuses_what_has_no_twin() {
        for e in [
            "[.a]",
            ".status == .path",
            ".x",
            "$__loc__",
            ".path | split(\"/\")",
            "(.status, .path)",
            ".ms % 2",
            "\"\\(.ms)\"",
        ] {
            assert!(s(e).is_err(), "{e} should be refused");
        }
    }

    #[test]
    fn arithmetic_and_alternatives() {
        assert_eq!(s(".status / 2").unwrap(), "(CAST(`status` AS DOUBLE) / 2)");
        assert!(s(".status + 1")
            .unwrap()
            .starts_with("CASE WHEN `status` IS NULL THEN 1"));
        assert_eq!(s(".path // \"-\"").unwrap(), "COALESCE(`path`, '-')");
        // jq prints a missing value as null, in a string or by tostring; length is 0.
        assert_eq!(
            s("\"p=\\(.path)\"").unwrap(),
            "CONCAT('p=', COALESCE(`path`, 'null'))"
        );
        assert_eq!(
            s(".status | tostring").unwrap(),
            "COALESCE(CAST(`status` AS STRING), 'null')"
        );
        assert_eq!(
            s(".path | length").unwrap(),
            "COALESCE(CHAR_LENGTH(`path`), 0)"
        );
    }

    #[test]
    fn records() {
        let r = rec();
        let out = with_term("select(.status >= 400) | {path, kind: \"x\"}", |t| {
            record(t, &r)
        })
        .unwrap();
        assert_eq!(out.conds.len(), 1);
        assert_eq!(
            out.fields
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>(),
            ["path", "kind"]
        );
        let out = with_term(". + {ms: (.ms * 2), n: 1}", |t| record(t, &r)).unwrap();
        assert_eq!(out.fields.len(), 4);
        assert_eq!(out.fields[2].1.text, "(`ms` * 2)");
    }
}
