//! The jaq interpreter as a fallback, plus the conversions between weir's [`Value`] and
//! jaq's [`Val`], and a printer that turns a parsed jaq term back into jq source text (used
//! to hand a single unsupported subterm to jaq).
//!
//! jaq runs with weir's prelude (`prelude.jq`: jq's behaviour where jaq differs, builtins jaq
//! lacks) and a few natives, among them `__weir_step`, which the compiler puts into loops and
//! recursive definitions to enforce the evaluation limits (`limits.rs`).
//!
//! Thread safety: a compiled jaq [`Filter`] holds only its term table (strings, integers,
//! indices) and plain function pointers, so it is `Send + Sync` even though jaq's values
//! (`Rc`-based) are not. Values are created per evaluation and never leave the calling
//! thread, so one compiled filter can be shared between threads behind an `Arc`. The
//! compile-time assertion at the bottom of this file keeps that true across jaq upgrades.
//!
//! A long file (about 1,000 lines): the conversions both ways, the printer, the guard that
//! rewrites terms and the natives must cover the same jaq term and value shapes and the same
//! jaq API, and are kept together so that a jaq upgrade is one file.

use super::base::{Ctl, ErrV};
use super::limits;
use super::CompileError;
use crate::value::{is_number_text, Map, Str, Value};
use jaq_core::data::JustLut;
use jaq_core::load::lex::StrPart;
use jaq_core::load::parse::{BinaryOp, Pattern, Term};
use jaq_core::load::{self, Arena, File, Loader};
use jaq_core::path::{Opt, Part};
use jaq_core::{Ctx, Vars};
use jaq_json::{Num, Val};
use std::fmt::Write as _;
use std::sync::OnceLock;

type Filter = jaq_core::Filter<JustLut<Val>>;

/// A compiled jaq filter.
pub(crate) struct Jaq {
    filter: Filter,
    /// Whether the program mentions `$ENV`; only then is the environment converted per call.
    uses_env: bool,
}

impl std::fmt::Debug for Jaq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Jaq")
    }
}

/// Byte offset of `part` inside `whole`, if `part` is a slice of it.
pub(crate) fn offset_in(whole: &str, part: &str) -> Option<usize> {
    let start = whole.as_ptr() as usize;
    let p = part.as_ptr() as usize;
    (p >= start && p <= start + whole.len()).then(|| p - start)
}

fn snippet(s: &str) -> String {
    let mut out: String = s.chars().take(20).collect();
    if out.len() < s.len() {
        out.push_str("...");
    }
    out
}

/// Compiles a whole jq program with jaq, with jaq's standard library and `$ENV`.
/// Syntax errors and undefined filters or variables are reported with their offset in `src`.
pub(crate) fn compile_jaq(src: &str) -> Result<Jaq, CompileError> {
    let located;
    let src = if src.contains("$__loc__") {
        located = with_loc(src);
        located.as_str()
    } else {
        src
    };
    // The program that runs has its loops and recursive definitions guarded; it is compiled
    // from the printed, rewritten tree. Errors are reported against the user's text.
    let guarded = load::parse(src, |p| p.term()).map(|t| print_term(&guard_term(t)));
    if let Some(Ok(jaq)) = guarded.map(|g| compile_program(&g)) {
        return Ok(jaq);
    }
    compile_program(src)
}

fn compile_program(src: &str) -> Result<Jaq, CompileError> {
    // jaq's standard definitions are jq source that each `defs()` call lexes and parses again;
    // a pipeline compiles every expression several times (validation, field analysis, build),
    // and that parsing was most of a cron run with nothing to read. Parsed once, cloned here.
    static DEFS: std::sync::OnceLock<Vec<jaq_core::load::parse::Def<&'static str>>> =
        std::sync::OnceLock::new();
    let defs = DEFS
        .get_or_init(|| {
            let prelude = load::parse(PRELUDE, |p| p.defs()).unwrap_or_default();
            debug_assert!(!prelude.is_empty(), "prelude.jq does not parse");
            jaq_core::defs()
                .chain(jaq_std::defs())
                .chain(jaq_json::defs())
                .chain(prelude)
                .collect()
        })
        .iter()
        .cloned();
    let funs = jaq_core::funs()
        .chain(jaq_std::funs())
        .chain(jaq_json::funs())
        .chain(weir_funs());
    let loader = Loader::new(defs);
    let arena = Arena::default();
    let modules = loader
        .load(
            &arena,
            File {
                code: src,
                path: (),
            },
        )
        .map_err(|errs| load_error(src, errs))?;
    let compiler: jaq_core::Compiler<&str, JustLut<Val>> = jaq_core::Compiler::default();
    let filter = compiler
        .with_funs(funs)
        .with_global_vars(["$ENV"])
        .compile(modules)
        .map_err(|errs| {
            let first = errs.into_iter().flat_map(|(_file, es)| es).next();
            match first {
                Some((name, undef)) => {
                    let what = match undef {
                        jaq_core::compile::Undefined::Filter(arity) => {
                            format!("undefined function `{name}/{arity}`")
                        }
                        other => format!("undefined {} `{name}`", other.as_str()),
                    };
                    CompileError {
                        message: what,
                        offset: offset_in(src, name).unwrap_or(0),
                    }
                }
                None => CompileError {
                    message: "compile error".into(),
                    offset: 0,
                },
            }
        })?;
    Ok(Jaq {
        filter,
        uses_env: src.contains("$ENV"),
    })
}

fn load_error(src: &str, errs: load::Errors<&str, ()>) -> CompileError {
    for (_file, err) in errs {
        match err {
            load::Error::Lex(es) => {
                if let Some((expect, at)) = es.into_iter().next() {
                    let offset = offset_in(src, at).unwrap_or(0);
                    let found = if at.is_empty() {
                        "end of input".to_string()
                    } else {
                        format!("`{}`", snippet(at))
                    };
                    return CompileError {
                        message: format!(
                            "syntax error: expected {}, found {found}",
                            expect.as_str()
                        ),
                        offset,
                    };
                }
            }
            load::Error::Parse(es) => {
                if let Some((expect, found)) = es.into_iter().next() {
                    let offset = offset_in(src, found).unwrap_or(src.len());
                    let found = if found.is_empty() {
                        "end of input".to_string()
                    } else {
                        format!("`{}`", snippet(found))
                    };
                    return CompileError {
                        message: format!(
                            "syntax error: expected {}, found {found}",
                            expect.as_str()
                        ),
                        offset,
                    };
                }
            }
            load::Error::Io(es) => {
                if let Some((path, msg)) = es.into_iter().next() {
                    return CompileError {
                        message: format!("cannot load module {path:?}: {msg}"),
                        offset: offset_in(src, path).unwrap_or(0),
                    };
                }
            }
        }
    }
    CompileError {
        message: "syntax error".into(),
        offset: 0,
    }
}

fn env_value() -> &'static Value {
    static ENV: OnceLock<Value> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut m = Map::new();
        for (k, v) in std::env::vars_os() {
            m.insert(
                Str::from(k.to_string_lossy().as_ref()),
                Value::str(&v.to_string_lossy()),
            );
        }
        Value::Object(m)
    })
}

impl Jaq {
    /// Runs the filter on `input`, passing each output to `k`; stops at the first error.
    pub(crate) fn run(
        &self,
        input: &Value,
        k: &mut dyn FnMut(Value) -> Result<(), Ctl>,
    ) -> Result<(), Ctl> {
        let env = if self.uses_env {
            to_val(env_value())
        } else {
            Val::Null
        };
        limits::start_if_idle();
        let ctx = Ctx::<JustLut<Val>>::new(&self.filter.lut, Vars::new([env]));
        for out in self.filter.id.run((ctx, to_val(input))) {
            match out {
                Ok(v) => k(from_val(v).map_err(Ctl::from)?)?,
                Err(exn) => return Err(Ctl::from(exn_to_err(exn))),
            }
        }
        Ok(())
    }
}

fn exn_to_err(exn: jaq_core::Exn<'_, Val>) -> ErrV {
    match exn.get_err() {
        Ok(err) => match from_val(err.into_val()) {
            Ok(v) => ErrV::Val(v),
            Err(e) => e,
        },
        Err(exn) => match exn.get_halt() {
            Ok(limits::LIMIT_HALT) => ErrV::Limit(
                limits::take_reason()
                    .unwrap_or_else(|| "expression stopped (evaluation limit)".into()),
            ),
            Ok(code) => ErrV::Msg(format!("halt({code}) is not supported in weir expressions")),
            Err(_) => ErrV::Msg("internal error in the jq interpreter".into()),
        },
    }
}

/// weir value to jaq value.
pub(crate) fn to_val(v: &Value) -> Val {
    match v {
        Value::Null => Val::Null,
        Value::Bool(b) => Val::Bool(*b),
        Value::Int(i) => Val::Num(match isize::try_from(*i) {
            Ok(i) => Num::Int(i),
            Err(_) => Num::Float(*i as f64),
        }),
        // jaq prints a decimal as its text and computes with its value, as weir does.
        Value::Float(_, Some(lit)) => Val::Num(Num::Dec(jaq_json::Rc::new(lit.as_str().into()))),
        Value::Float(f, None) => Val::Num(Num::Float(*f)),
        Value::Str(s) => Val::from(s.to_string()),
        Value::Array(a) => Val::Arr(jaq_json::Rc::new(a.iter().map(to_val).collect())),
        Value::Object(m) => Val::obj(
            m.iter()
                .map(|(k, v)| (Val::from(k.to_string()), to_val(v)))
                .collect(),
        ),
    }
}

fn num_to_value(n: &Num) -> Value {
    match n {
        Num::Int(i) => Value::Int(*i as i64),
        Num::Float(f) => Value::float(*f),
        Num::BigInt(b) => Value::float(b.to_string().parse().unwrap_or(f64::NAN)),
        // A number that kept its text (weir's own, or jaq's negation of one), read as any
        // input number is.
        Num::Dec(s) => match is_number_text(s.as_bytes()) {
            true => Value::from_number_text(s),
            false => None,
        }
        .unwrap_or_else(|| Value::float(s.parse().unwrap_or(f64::NAN))),
    }
}

/// jaq value to weir value; jaq allows non-string object keys, weir (and jq) do not. A value
/// deeper than [`limits::MAX_DEPTH`], of more than [`limits::MAX_LEN`] values or
/// [`limits::MAX_OUT_BYTES`] of text in all (jaq shares values that weir would copy: `[., .]`
/// repeated), or with a string longer than [`limits::MAX_STR_BYTES`], is refused before the
/// string is copied.
pub(crate) fn from_val(v: Val) -> Result<Value, ErrV> {
    let mut budget = Budget {
        values: limits::MAX_LEN,
        text: limits::MAX_OUT_BYTES,
    };
    from_val_in(v, 0, &mut budget)
}

/// What is left of one conversion's allowance.
struct Budget {
    values: usize,
    text: usize,
}

impl Budget {
    fn text(&mut self, b: &[u8]) -> Result<(), ErrV> {
        if b.len() > limits::MAX_STR_BYTES {
            return Err(ErrV::Limit(limits::str_error()));
        }
        self.text = self
            .text
            .checked_sub(b.len())
            .ok_or_else(|| ErrV::Limit(limits::text_error()))?;
        Ok(())
    }
}

fn from_val_in(v: Val, depth: usize, budget: &mut Budget) -> Result<Value, ErrV> {
    if depth > limits::MAX_DEPTH {
        return Err(ErrV::Limit(limits::depth_error()));
    }
    budget.values = budget
        .values
        .checked_sub(1)
        .ok_or_else(|| ErrV::Limit(limits::size_error()))?;
    Ok(match v {
        Val::Null => Value::Null,
        Val::Bool(b) => Value::Bool(b),
        Val::Num(n) => num_to_value(&n),
        Val::TStr(b) | Val::BStr(b) => {
            budget.text(&b)?;
            Value::str(&String::from_utf8_lossy(&b))
        }
        Val::Arr(a) => {
            let a = jaq_json::Rc::try_unwrap(a).unwrap_or_else(|a| (*a).clone());
            let mut out = Vec::with_capacity(a.len());
            for x in a {
                out.push(from_val_in(x, depth + 1, budget)?);
            }
            Value::Array(out)
        }
        Val::Obj(o) => {
            let o = jaq_json::Rc::try_unwrap(o).unwrap_or_else(|o| (*o).clone());
            let mut m = Map::with_capacity(o.len());
            for (k, v) in o {
                let k = match k {
                    Val::TStr(b) | Val::BStr(b) => {
                        budget.text(&b)?;
                        Str::from(String::from_utf8_lossy(&b).as_ref())
                    }
                    other => {
                        return Err(ErrV::Msg(format!(
                            "object keys must be strings, not {other}"
                        )))
                    }
                };
                m.push_unique(k, from_val_in(v, depth + 1, budget)?);
            }
            Value::Object(m)
        }
    })
}

// ---------------------------------------------------------------------------------------
// Printing a parsed term back to jq source. Every compound subterm is parenthesised, so the
// printed text parses to the same tree regardless of precedence.

pub(crate) fn print_term(t: &Term<&str>) -> String {
    let mut out = String::new();
    pr(t, &mut out);
    out
}

fn paren(t: &Term<&str>, out: &mut String) {
    out.push('(');
    pr(t, out);
    out.push(')');
}

fn pr_str_parts(fmt: &Option<&str>, parts: &[StrPart<&str, Term<&str>>], out: &mut String) {
    if let Some(f) = fmt {
        out.push_str(f);
        out.push(' ');
    }
    out.push('"');
    for part in parts {
        match part {
            StrPart::Str(s) => out.push_str(s),
            StrPart::Char(c) => match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                c if (*c as u32) < 0x20 => {
                    let _ = write!(out, "\\u{:04x}", *c as u32);
                }
                c => out.push(*c),
            },
            StrPart::Term(t) => {
                out.push_str("\\(");
                pr(t, out);
                out.push(')');
            }
        }
    }
    out.push('"');
}

fn pr_pattern(p: &Pattern<&str>, out: &mut String) {
    match p {
        Pattern::Var(x) => out.push_str(x),
        Pattern::Arr(ps) => {
            out.push('[');
            for (i, p) in ps.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                pr_pattern(p, out);
            }
            out.push(']');
        }
        Pattern::Obj(kps) => {
            out.push('{');
            for (i, (k, p)) in kps.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                paren(k, out);
                out.push_str(": ");
                pr_pattern(p, out);
            }
            out.push('}');
        }
    }
}

fn binop_str(op: &BinaryOp<&str>) -> String {
    use jaq_core::ops::Math;
    match op {
        // `as` patterns are printed by the caller.
        BinaryOp::Pipe(_) => "|".into(),
        BinaryOp::Comma => ",".into(),
        BinaryOp::Alt => "//".into(),
        BinaryOp::Or => "or".into(),
        BinaryOp::And => "and".into(),
        BinaryOp::Math(m) => m.as_str().into(),
        BinaryOp::Cmp(c) => c.as_str().into(),
        BinaryOp::Assign => "=".into(),
        BinaryOp::Update => "|=".into(),
        BinaryOp::UpdateMath(m) => format!("{}=", Math::as_str(m)),
        BinaryOp::UpdateAlt => "//=".into(),
    }
}

fn pr(t: &Term<&str>, out: &mut String) {
    match t {
        Term::Id => out.push('.'),
        Term::Recurse => out.push_str(".."),
        Term::Num(n) => out.push_str(n),
        Term::Str(fmt, parts) => pr_str_parts(fmt, parts, out),
        Term::Arr(None) => out.push_str("[]"),
        Term::Arr(Some(t)) => {
            out.push('[');
            pr(t, out);
            out.push(']');
        }
        Term::Obj(kvs) => {
            out.push('{');
            for (i, (k, v)) in kvs.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                match v {
                    Some(v) => {
                        paren(k, out);
                        out.push_str(": ");
                        paren(v, out);
                    }
                    None => pr(k, out),
                }
            }
            out.push('}');
        }
        Term::Neg(t) => {
            out.push('-');
            paren(t, out);
        }
        Term::BinOp(l, op, r) => {
            out.push('(');
            paren(l, out);
            match op {
                BinaryOp::Pipe(Some(p)) => {
                    out.push_str(" as ");
                    pr_pattern(p, out);
                    out.push_str(" | ");
                }
                op => {
                    out.push(' ');
                    out.push_str(&binop_str(op));
                    out.push(' ');
                }
            }
            paren(r, out);
            out.push(')');
        }
        Term::Label(x, t) => {
            out.push_str("(label ");
            out.push_str(x);
            out.push_str(" | ");
            paren(t, out);
            out.push(')');
        }
        Term::Break(x) => {
            out.push_str("break ");
            out.push_str(x);
        }
        Term::Fold(name, xs, pat, args) => {
            out.push('(');
            out.push_str(name);
            out.push(' ');
            paren(xs, out);
            out.push_str(" as ");
            pr_pattern(pat, out);
            out.push_str(" (");
            for (i, a) in args.iter().enumerate() {
                if i > 0 {
                    out.push_str("; ");
                }
                paren(a, out);
            }
            out.push_str("))");
        }
        Term::TryCatch(t, c) => {
            out.push_str("(try ");
            paren(t, out);
            if let Some(c) = c {
                out.push_str(" catch ");
                paren(c, out);
            }
            out.push(')');
        }
        Term::IfThenElse(ifs, els) => {
            for (i, (c, t)) in ifs.iter().enumerate() {
                out.push_str(if i == 0 { "if " } else { " elif " });
                paren(c, out);
                out.push_str(" then ");
                paren(t, out);
            }
            if let Some(e) = els {
                out.push_str(" else ");
                paren(e, out);
            }
            out.push_str(" end");
        }
        Term::Def(defs, t) => {
            out.push('(');
            for d in defs {
                out.push_str("def ");
                out.push_str(d.name);
                if !d.args.is_empty() {
                    out.push('(');
                    out.push_str(&d.args.join("; "));
                    out.push(')');
                }
                out.push_str(": ");
                paren(&d.body, out);
                out.push_str("; ");
            }
            pr(t, out);
            out.push(')');
        }
        Term::Call(name, args) => {
            out.push_str(name);
            if !args.is_empty() {
                out.push('(');
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        out.push_str("; ");
                    }
                    paren(a, out);
                }
                out.push(')');
            }
        }
        Term::Var(x) => out.push_str(x),
        Term::Path(head, path) => {
            match **head {
                Term::Id => out.push('.'),
                _ => paren(head, out),
            }
            for (part, opt) in &path.0 {
                match part {
                    Part::Index(i) => {
                        out.push('[');
                        paren(i, out);
                        out.push(']');
                    }
                    Part::Range(from, to) => {
                        out.push('[');
                        if let Some(f) = from {
                            paren(f, out);
                        }
                        if from.is_some() || to.is_some() {
                            out.push(':');
                        }
                        if let Some(t) = to {
                            paren(t, out);
                        }
                        out.push(']');
                    }
                }
                if let Opt::Optional = opt {
                    out.push('?');
                }
            }
        }
    }
}

#[allow(dead_code)]
const fn assert_send_sync<T: Send + Sync>() {}
const _: () = assert_send_sync::<Jaq>();

// ---------------------------------------------------------------------------------------
// weir's additions to jaq: the prelude, the guard that enforces the evaluation limits, and
// the natives the prelude needs.

const PRELUDE: &str = include_str!("prelude.jq");

/// Puts `__weir_step` in front of every user `def` body (so each call counts and checks the
/// stack, while tail calls stay tail calls for jaq's optimisation) and after every
/// `reduce`/`foreach` update (so each iteration counts and its accumulator is measured), and
/// rewrites what jaq runs otherwise than jq: number literals, `-x`, `*`, interpolation, indices,
/// and `reduce`/`foreach` updates with several outputs or none.
fn guard_term(t: Term<&str>) -> Term<&str> {
    fn g(t: Term<&str>) -> Term<&str> {
        guard_term(t)
    }
    // The tree holds its subterms in boxes; one is rebuilt in place of another.
    #[allow(clippy::boxed_local)]
    fn bx(t: Box<Term<&str>>) -> Box<Term<&str>> {
        Box::new(guard_term(*t))
    }
    fn step() -> Box<Term<&'static str>> {
        Box::new(Term::Call("__weir_step", Vec::new()))
    }
    fn before(t: Term<&str>) -> Term<&str> {
        Term::BinOp(step(), BinaryOp::Pipe(None), Box::new(t))
    }
    fn after(t: Term<&str>) -> Term<&str> {
        Term::BinOp(Box::new(t), BinaryOp::Pipe(None), step())
    }
    fn then<'a>(t: Term<&'a str>, f: &'static str) -> Term<&'a str> {
        Term::BinOp(
            Box::new(t),
            BinaryOp::Pipe(None),
            Box::new(Term::Call(f, Vec::new())),
        )
    }
    match t {
        // A number literal of the expression is its value, as in weir's own evaluator (`1.50`
        // is 1.5): jaq would keep a decimal's text (`Num::Dec`), as weir keeps an input
        // number's. `+ 0` makes it a computed number; short integers are values already.
        Term::Num(n) if n.contains(['.', 'e', 'E']) || n.len() > 18 => Term::BinOp(
            Box::new(Term::Num(n)),
            BinaryOp::Math(jaq_core::ops::Math::Add),
            Box::new(Term::Num("0")),
        ),
        Term::Id | Term::Recurse | Term::Num(_) | Term::Break(_) | Term::Var(_) => t,
        // A plain interpolation goes through `@text` (the prelude's, which prints numbers as
        // weir does) rather than jaq's own `tostring`.
        Term::Str(fmt, parts) => Term::Str(
            fmt.or(Some("@text")),
            parts
                .into_iter()
                .map(|p| match p {
                    StrPart::Term(t) => StrPart::Term(g(t)),
                    p => p,
                })
                .collect(),
        ),
        Term::Arr(a) => Term::Arr(a.map(bx)),
        Term::Obj(kvs) => Term::Obj(kvs.into_iter().map(|(k, v)| (g(k), v.map(g))).collect()),
        // jaq negates a number that kept its input text by editing the text (`-1.50`), and `0`
        // to `0`; weir's own evaluator computes (`-1.5`, `-0`), as jq does. `__weir_neg`
        // (prelude.jq) computes.
        Term::Neg(t) => Term::BinOp(
            bx(t),
            BinaryOp::Pipe(None),
            Box::new(Term::Call("__weir_neg", Vec::new())),
        ),
        // jaq repeats a string `n` times for `"s" * n` with no bound (`"ab" * 1e11` aborted the
        // process on allocation); the native `__weir_mul` (weir_funs) refuses what weir's own
        // evaluator refuses, with the same message, and multiplies with jaq otherwise.
        Term::BinOp(l, BinaryOp::Math(jaq_core::ops::Math::Mul), r) => {
            Term::Call("__weir_mul", vec![g(*l), g(*r)])
        }
        Term::BinOp(l, BinaryOp::UpdateMath(jaq_core::ops::Math::Mul), r) => {
            Term::Call("__weir_mul_update", vec![g(*l), g(*r)])
        }
        Term::BinOp(l, op, r) => Term::BinOp(bx(l), op, bx(r)),
        Term::Label(x, t) => Term::Label(x, bx(t)),
        // jq keeps the last output of a `reduce` update (null when it has none); a `foreach`
        // emits each output and goes on from the last (null when none). jaq goes on from
        // every output. The natives `__weir_reduce` and `__weir_foreach_*` (weir_funs) carry
        // jq's rule; a `foreach` state is `[state, outputs of the last update]`.
        Term::Fold(name, xs, pat, args) => {
            let native = |f| Box::new(Term::Call(f, Vec::new()));
            let pipe = |l, r| Term::BinOp(l, BinaryOp::Pipe(None), r);
            let n = args.len();
            let mut args: Vec<_> = args
                .into_iter()
                .enumerate()
                .map(|(i, a)| match (name, i) {
                    ("reduce", 1) => after(Term::Call("__weir_reduce", vec![g(a)])),
                    ("foreach", 0) => pipe(Box::new(g(a)), native("__weir_foreach_init")),
                    ("foreach", 1) => after(Term::Call("__weir_foreach_update", vec![g(a)])),
                    ("foreach", 2) => pipe(native("__weir_foreach_outputs"), Box::new(g(a))),
                    (_, 1) => after(g(a)),
                    _ => g(a),
                })
                .collect();
            if name == "foreach" && n == 2 {
                args.push(*native("__weir_foreach_outputs"));
            }
            Term::Fold(name, bx(xs), pat, args)
        }
        Term::TryCatch(t, c) => Term::TryCatch(bx(t), c.map(bx)),
        Term::IfThenElse(ifs, els) => Term::IfThenElse(
            ifs.into_iter().map(|(c, t)| (g(c), g(t))).collect(),
            els.map(bx),
        ),
        Term::Def(defs, t) => Term::Def(
            defs.into_iter()
                .map(|d| load::parse::Def {
                    name: d.name,
                    args: d.args,
                    body: before(g(d.body)),
                })
                .collect(),
            bx(t),
        ),
        Term::Call(name, args) => Term::Call(name, args.into_iter().map(g).collect()),
        Term::Path(head, path) => Term::Path(
            bx(head),
            jaq_core::path::Path(
                path.0
                    .into_iter()
                    .map(|(part, opt)| {
                        // Numbers as jq 1.7 takes them (jaq refuses a fractional one):
                        // see `__weir_index` in the prelude.
                        let part = match part {
                            Part::Index(i) => Part::Index(then(g(i), "__weir_index")),
                            Part::Range(f, t) => Part::Range(
                                f.map(|f| then(g(f), "__weir_start")),
                                t.map(|t| then(g(t), "__weir_end")),
                            ),
                        };
                        (part, opt)
                    })
                    .collect(),
            ),
        ),
    }
}

/// Replaces `$__loc__` (outside string literals) with jq's value for it: the file, which for
/// a program given as text is `<top-level>`, and the 1-based line.
fn with_loc(src: &str) -> String {
    let mut out = String::with_capacity(src.len() + 32);
    let (mut line, mut in_str, mut esc) = (1, false, false);
    let mut rest = src;
    while let Some(c) = rest.chars().next() {
        if !in_str && rest.starts_with("$__loc__") {
            let _ = write!(out, "{{\"file\":\"<top-level>\",\"line\":{line}}}");
            rest = &rest["$__loc__".len()..];
            continue;
        }
        match c {
            '\n' => line += 1,
            '"' if !esc => in_str = !in_str,
            _ => {}
        }
        esc = in_str && c == '\\' && !esc;
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

type D = JustLut<Val>;

fn limit_exn<'a>(msg: String) -> jaq_core::Exn<'a, Val> {
    // The message waits in `limits` for `exn_to_err`; a halt is not caught by `try`.
    limits::exceeded(msg);
    jaq_core::Exn::halt(limits::LIMIT_HALT)
}

/// One step of a loop or recursion, on the value passing through it.
fn step_on(v: &Val) -> Result<(), String> {
    limits::step()?;
    limits::check_val(v)
}

fn str_arg(v: &Val) -> Result<String, jaq_core::Exn<'static, Val>> {
    match v {
        Val::TStr(b) | Val::BStr(b) => Ok(String::from_utf8_lossy(b).into_owned()),
        other => Err(jaq_core::Exn::from(jaq_core::Error::str(format_args!(
            "{other} cannot be encoded, only a string can be"
        )))),
    }
}

/// What a weir builtin returns to jaq, measured as a step measures values: a loop that feeds
/// a builtin its own output (`def f: [tostring] | f`) stops at the limit.
fn checked<'a>(r: Result<Val, jaq_core::Exn<'a, Val>>) -> Result<Val, jaq_core::Exn<'a, Val>> {
    let v = r?;
    match limits::check_val(&v) {
        Ok(()) => Ok(v),
        Err(m) => Err(limit_exn(m)),
    }
}

fn weir_funs() -> impl Iterator<Item = jaq_core::native::Fun<D>> {
    use jaq_core::box_iter::box_once;
    use jaq_core::native::v;
    use jaq_core::Bind::Fun;
    type ValXs<'a> = jaq_core::ValXs<'a, Val>;
    use jaq_core::Native;
    // `__weir_step` passes its input on (as `.`, also in paths and updates) after counting a
    // step, checking the stack and measuring the value.
    let step = Native::<D>::new(|cv| match step_on(&cv.1) {
        Ok(()) => box_once(Ok(cv.1)),
        Err(m) => box_once(Err(limit_exn(m))),
    })
    .with_paths(|cv| match step_on(&cv.1 .0) {
        Ok(()) => box_once(Ok(cv.1)),
        Err(m) => box_once(Err(limit_exn(m))),
    })
    .with_update(|cv, f| match step_on(&cv.1) {
        Ok(()) => f(cv.1),
        Err(m) => box_once(Err(limit_exn(m))),
    });
    let base32 = Native::<D>::new(|cv| {
        box_once(checked(
            str_arg(&cv.1).map(|s| Val::from(base32_encode(s.as_bytes()))),
        ))
    });
    let base32d = Native::<D>::new(|cv| {
        box_once(checked(str_arg(&cv.1).and_then(|s| {
            base32_decode(&s)
                .map(|b| Val::from(String::from_utf8_lossy(&b).into_owned()))
                .ok_or_else(|| {
                    jaq_core::Exn::from(jaq_core::Error::str(format_args!(
                        "{} is not valid base32 data",
                        Val::from(s.clone())
                    )))
                })
        })))
    });
    let tsv = Native::<D>::new(|cv| {
        box_once(checked(str_arg(&cv.1).map(|s| {
            let mut o = String::with_capacity(s.len());
            for c in s.chars() {
                match c {
                    '\\' => o.push_str("\\\\"),
                    '\t' => o.push_str("\\t"),
                    '\n' => o.push_str("\\n"),
                    '\r' => o.push_str("\\r"),
                    c => o.push(c),
                }
            }
            Val::from(o)
        })))
    });
    // `reduce`'s update as jq runs it: its last output, null when it has none.
    let reduce = Native::<D>::new(|mut cv| {
        let (f, ctx) = cv.0.pop_fun();
        let mut last = Val::Null;
        for r in f.run((ctx, cv.1)) {
            match r {
                Ok(v) => last = v,
                Err(e) => return box_once(Err(e)),
            }
        }
        box_once(Ok(last))
    });
    // `foreach`'s state is `[state, outputs]`: the update runs on the state, every output is
    // emitted (`__weir_foreach_outputs`) and the last (null when none) is the next state.
    let fe_init = Native::<D>::new(|cv| {
        box_once(Ok(Val::Arr(jaq_json::Rc::new(vec![
            cv.1,
            Val::Arr(jaq_json::Rc::new(Vec::new())),
        ]))))
    });
    let fe_update = Native::<D>::new(|mut cv| {
        let (f, ctx) = cv.0.pop_fun();
        // The state moved out, and the outputs (whose last is the state too) dropped first:
        // jaq updates a value in place only when nothing else holds it, and a borrowed state
        // made `. + [$x]` copy the whole array every time (20,000 steps took 1.56 s).
        let mut wrapper = into_elems(cv.1);
        wrapper.truncate(1);
        let state = wrapper.pop().unwrap_or(Val::Null);
        let mut outs = Vec::new();
        for r in f.run((ctx, state)) {
            match r {
                Ok(v) => outs.push(v),
                Err(e) => return box_once(Err(e)),
            }
        }
        let next = outs.last().cloned().unwrap_or(Val::Null);
        box_once(Ok(Val::Arr(jaq_json::Rc::new(vec![
            next,
            Val::Arr(jaq_json::Rc::new(outs)),
        ]))))
    });
    let fe_outputs = Native::<D>::new(|cv| {
        let mut wrapper = into_elems(cv.1);
        let outs = if wrapper.len() > 1 {
            into_elems(wrapper.swap_remove(1))
        } else {
            Vec::new()
        };
        Box::new(outs.into_iter().map(Ok))
    });
    // `l * r` as jq runs it: for each output of `r`, each output of `l` (jaq's own order is
    // the other way), lazily; a string repeated past weir's bound is an error.
    let mul = Native::<D>::new(|mut cv| {
        let (r, rctx) = cv.0.pop_fun();
        let (l, lctx) = cv.0.pop_fun();
        let input = cv.1;
        Box::new(
            r.run((rctx, input.clone()))
                .flat_map(move |y| -> ValXs<'_> {
                    match y {
                        Err(e) => box_once(Err(e)),
                        Ok(y) => Box::new(l.run((lctx.clone(), input.clone())).map(move |x| {
                            let x = x?;
                            match str_times(&x, &y) {
                                Some(r) => r,
                                None => (x * y.clone()).map_err(jaq_core::Exn::from),
                            }
                        })),
                    }
                }),
        )
    });
    // Numbers in text as weir prints them (which is jq's layout: `1e-07`, `-0`), not jaq's.
    let tojson = Native::<D>::new(|cv| {
        box_once(match from_val(cv.1) {
            Ok(x) => checked(Ok(Val::from(x.to_json_string()))),
            Err(e) => Err(exn_of(e)),
        })
    });
    [
        ("__weir_tojson", v(0), tojson),
        ("__weir_mul", Box::new([Fun(()), Fun(())]), mul),
        ("__weir_reduce", Box::new([Fun(())]), reduce),
        ("__weir_foreach_init", v(0), fe_init),
        (
            "__weir_foreach_update",
            Box::new([jaq_core::Bind::Fun(())]),
            fe_update,
        ),
        ("__weir_foreach_outputs", v(0), fe_outputs),
        ("__weir_step", v(0), step),
        ("__weir_base32", v(0), base32),
        ("__weir_base32d", v(0), base32d),
        ("__weir_tsv_escape", v(0), tsv),
    ]
    .into_iter()
}

/// The elements of an array, moved out when nothing else holds it (copied otherwise); none
/// for any other value.
fn into_elems(v: Val) -> Vec<Val> {
    match v {
        Val::Arr(a) => jaq_json::Rc::try_unwrap(a).unwrap_or_else(|a| a.as_ref().clone()),
        _ => Vec::new(),
    }
}

/// `"s" * n` in either order, by weir's own arithmetic (`builtins::math`): jq's repeat for any
/// number (`"ab" * 2.5` is `"abab"`, which jaq refuses), weir's bound on the result and its
/// message. `None` for any other pair, which jaq multiplies.
fn str_times<'a>(x: &Val, y: &Val) -> Option<Result<Val, jaq_core::Exn<'a, Val>>> {
    let text = |v: &Val| matches!(v, Val::TStr(_) | Val::BStr(_));
    let num = |v: &Val| matches!(v, Val::Num(_));
    if !(text(x) && num(y) || num(x) && text(y)) {
        return None;
    }
    let r = from_val(x.clone()).and_then(|l| {
        let r = from_val(y.clone())?;
        super::builtins::math(super::base::MathOp::Mul, std::borrow::Cow::Owned(l), &r)
    });
    Some(checked(r.map(|v| to_val(&v)).map_err(exn_of)))
}

/// A weir error as jaq's: a limit halts (see `limit_exn`), anything else is an error `try`
/// can catch.
fn exn_of<'a>(e: ErrV) -> jaq_core::Exn<'a, Val> {
    match e {
        ErrV::Limit(m) => limit_exn(m),
        e => jaq_core::Exn::from(jaq_core::Error::str(e.message())),
    }
}

const B32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32 with padding, as jq's `@base32`.
pub(crate) fn base32_encode(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len().div_ceil(5) * 8);
    for chunk in b.chunks(5) {
        let mut buf = [0u8; 5];
        buf[..chunk.len()].copy_from_slice(chunk);
        let n = buf.iter().fold(0u64, |acc, &x| (acc << 8) | x as u64);
        let chars = (chunk.len() * 8).div_ceil(5);
        for i in 0..8 {
            if i < chars {
                out.push(B32[((n >> (35 - 5 * i)) & 31) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Inverse of [`base32_encode`]; `None` on a character outside the alphabet.
pub(crate) fn base32_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 5 / 8);
    let (mut acc, mut bits) = (0u64, 0u32);
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = B32.iter().position(|&x| x == c.to_ascii_uppercase())? as u64;
        acc = (acc << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}
