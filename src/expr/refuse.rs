//! Expressions that compile but could never run as a pipeline needs are refused when they
//! are compiled, so `weir validate` reports them (exit 2) instead of every record failing:
//!
//! - `now` reads the wall clock, so two runs over the same input would differ (SPEC);
//! - `halt`, `halt_error`, `input`, `inputs` act on jq's process and its input stream, which
//!   a record's expression has no access to;
//! - a literal regex that weir's regex engines cannot run (look-around, backreferences, or
//!   any other syntax error), and unknown regex flags.
//!
//! A user's own `def now: ...;` is not refused.

use super::compile::plain_str;
use super::fallback::offset_in;
use super::CompileError;
use jaq_core::load::lex::StrPart;
use jaq_core::load::parse::Term;
use jaq_core::path::Part;

/// Builtins a record's expression may not call, with the reason given to the user.
const REFUSED: &[(&str, &str)] = &[
    (
        "now",
        "`now` reads the wall clock, so output would differ between runs; use a time field of the record",
    ),
    ("halt", "`halt` stops jq's process; weir runs expressions per record (use `error`)"),
    ("halt_error", "`halt_error` stops jq's process; weir runs expressions per record (use `error`)"),
    ("input", "`input` reads jq's input stream; weir gives each expression one record"),
    ("inputs", "`inputs` reads jq's input stream; weir gives each expression one record"),
];

/// Functions whose first argument is a regex, and where their flags are (argument index).
fn regex_args(name: &str, arity: usize) -> Option<Option<usize>> {
    match (name, arity) {
        ("test" | "match" | "capture" | "scan" | "splits", 1) => Some(None),
        ("test" | "match" | "capture" | "scan" | "splits" | "split", 2) => Some(Some(1)),
        ("sub" | "gsub", 2) => Some(None),
        ("sub" | "gsub", 3) => Some(Some(2)),
        _ => None,
    }
}

/// Checks the whole program `t` parsed from `src`.
pub(crate) fn check(src: &str, t: &Term<&str>) -> Result<(), CompileError> {
    let mut defined = Vec::new();
    collect_defs(t, &mut defined);
    walk(src, t, &defined)
}

fn collect_defs<'s>(t: &Term<&'s str>, out: &mut Vec<&'s str>) {
    each_child(t, &mut |c| collect_defs(c, out));
    if let Term::Def(defs, _) = t {
        for d in defs {
            out.push(d.name);
            collect_defs(&d.body, out);
        }
    }
}

fn walk(src: &str, t: &Term<&str>, defined: &[&str]) -> Result<(), CompileError> {
    if let Term::Call(name, args) = t {
        if !defined.contains(name) {
            if let Some((_, why)) = REFUSED.iter().find(|(n, _)| n == name) {
                return Err(CompileError {
                    message: format!("{why} (refused)"),
                    offset: offset_in(src, name).unwrap_or(0),
                });
            }
            if let Some(flags_at) = regex_args(name, args.len()) {
                let flags = match flags_at {
                    None => Some(String::new()),
                    Some(i) => plain_str(&args[i]),
                };
                if let (Some(re), Some(flags)) = (plain_str(&args[0]), flags) {
                    check_regex(&re, &flags).map_err(|message| CompileError {
                        message,
                        offset: offset_in(src, name).unwrap_or(0),
                    })?;
                }
            }
        }
    }
    if let Term::Def(defs, _) = t {
        for d in defs {
            walk(src, &d.body, defined)?;
        }
    }
    let mut r = Ok(());
    each_child(t, &mut |c| {
        if r.is_ok() {
            r = walk(src, c, defined);
        }
    });
    r
}

/// jq's (Oniguruma's) flags; the regex must compile with the `regex` crate, which refuses
/// what both of weir's engines refuse (look-around, backreferences). Only `x` (extended)
/// changes how the pattern parses.
fn check_regex(re: &str, flags: &str) -> Result<(), String> {
    if let Some(bad) = flags.chars().find(|c| !"gixnpsl".contains(*c)) {
        return Err(format!("{flags} is not a valid modifier string (`{bad}`)"));
    }
    regex::RegexBuilder::new(re)
        .ignore_whitespace(flags.contains('x'))
        .build()
        .map(drop)
        .map_err(|e| {
            let detail = match &e {
                regex::Error::Syntax(s) => s.lines().last().unwrap_or(s).trim().to_string(),
                other => other.to_string(),
            };
            format!("invalid regex {re:?}: {detail}")
        })
}

/// Calls `f` on every direct subterm of `t` (not on `def` bodies, which the callers handle).
fn each_child<'a, 's>(t: &'a Term<&'s str>, f: &mut dyn FnMut(&'a Term<&'s str>)) {
    match t {
        Term::Id | Term::Recurse | Term::Num(_) | Term::Break(_) | Term::Var(_) => {}
        Term::Str(_, parts) => {
            for p in parts {
                if let StrPart::Term(t) = p {
                    f(t)
                }
            }
        }
        Term::Arr(a) => {
            if let Some(a) = a {
                f(a)
            }
        }
        Term::Obj(kvs) => {
            for (k, v) in kvs {
                f(k);
                if let Some(v) = v {
                    f(v)
                }
            }
        }
        Term::Neg(t) | Term::Label(_, t) | Term::Def(_, t) => f(t),
        Term::BinOp(l, _, r) => {
            f(l);
            f(r)
        }
        Term::Fold(_, xs, _, args) => {
            f(xs);
            for a in args {
                f(a)
            }
        }
        Term::TryCatch(t, c) => {
            f(t);
            if let Some(c) = c {
                f(c)
            }
        }
        Term::IfThenElse(ifs, els) => {
            for (c, t) in ifs {
                f(c);
                f(t)
            }
            if let Some(e) = els {
                f(e)
            }
        }
        Term::Call(_, args) => {
            for a in args {
                f(a)
            }
        }
        Term::Path(head, path) => {
            f(head);
            for (part, _) in &path.0 {
                match part {
                    Part::Index(i) => f(i),
                    Part::Range(a, b) => {
                        for x in a.iter().chain(b.iter()) {
                            f(x)
                        }
                    }
                }
            }
        }
    }
}
