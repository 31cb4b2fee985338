//! jq expressions over weir's [`Value`].
//!
//! An expression is parsed with jaq's parser (so every jq form is accepted exactly as jaq
//! accepts it) and validated by compiling it with jaq (so undefined functions and variables
//! are compile errors, as in jq). The parse tree is then translated into a native evaluator
//! ([`native::Node`]) that works on [`Value`] directly; forms the translator does not handle
//! (variables and `as`, `reduce`/`foreach`, `def`, `label`, paths such as `path(..)`, most of
//! the less common builtins, non-literal regexes, ...) are handed to jaq's interpreter *per
//! subterm*: only that subterm converts its input to jaq's value type and its outputs back.
//! [`Expr::is_native`] says whether any part falls back.
//!
//! What a record's expression may not do is refused when it is compiled (`refuse.rs`: `now`,
//! `halt`, regexes weir cannot run), and how much it may do is bounded when it runs
//! (`limits.rs`: steps, stack, size and nesting of values).
//!
//! The native evaluator follows jq 1.7 semantics: `.a` of null is null, out-of-range array
//! indices are null, integer arithmetic stays integral while exact, division by zero is an
//! error, `try` does not catch errors raised after its body has produced a value, and
//! errors have jq's messages (starting in lower case, e.g. `cannot index number with "a"`).
//! Where jaq's interpreter deviates from jq (for example `1 / 0` is infinity in jaq, and
//! `has(-1)` is true on a non-empty array), an expression that falls back behaves as jaq.
//!
//! # Threads
//!
//! [`Expr`] is `Send + Sync + Clone`; cloning is cheap (an `Arc`). Native nodes are plain
//! data. jaq's compiled filter holds only its term table and function pointers and is
//! therefore also `Send + Sync` (asserted at compile time in `fallback.rs`); jaq's values,
//! which use `Rc`, are created inside each evaluation and never cross threads. So an
//! expression compiled once at start-up can be moved into, or shared between, operator
//! threads without recompiling.

mod base;
mod builtins;
mod compile;
mod fallback;
mod limits;
// `weir export flink` reads jaq's tree too, and names the subterm it cannot translate.
pub(crate) use compile::plain_str;
pub(crate) use fallback::print_term;
mod native;
mod refuse;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_limits;

use crate::value::{Str, Value};
use native::{Card, Ctl, Form, Node, NULL};
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

/// A compiled jq expression.
#[derive(Clone)]
pub struct Expr {
    inner: Arc<Inner>,
}

struct Inner {
    src: String,
    root: Node,
    native: bool,
    /// `f` when the expression is exactly `.f`: keys, times and aggregate arguments mostly
    /// are, and a direct lookup skips the evaluator.
    field: Option<crate::value::Str>,
    /// `(key, path)` pairs when the expression is a projection (see `project_in_place`).
    projection: Option<Box<crate::value::Projection>>,
}

/// A syntax error or a reference to an undefined function or variable.
#[derive(Debug, Clone)]
pub struct CompileError {
    pub message: String,
    /// Byte offset into the expression source (best effort; 0 if unknown).
    pub offset: usize,
}

/// A run-time error, with jq's message (`cannot index string with "b"`).
#[derive(Debug, Clone)]
pub struct EvalError {
    pub message: String,
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at offset {})", self.message, self.offset)
    }
}

impl std::error::Error for CompileError {}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for EvalError {}

impl fmt::Debug for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Expr")
            .field("source", &self.inner.src)
            .field("native", &self.inner.native)
            .finish()
    }
}

fn to_eval_error(c: Ctl) -> Option<EvalError> {
    match c {
        Ctl::Err(e) => Some(EvalError {
            message: e.message(),
        }),
        Ctl::Stop => None,
    }
}

impl Expr {
    /// Compiles `src`; native where possible, jaq for the rest.
    pub fn compile(src: &str) -> Result<Expr, CompileError> {
        // A pipeline compiles each expression several times (validation, field analysis,
        // building the node, the filter pushdown); the result depends on the text alone, and an
        // `Expr` is an `Arc`, so later compiles of the same text take the first one's result.
        // The map is only looked up, never iterated.
        static DONE: std::sync::OnceLock<
            std::sync::Mutex<std::collections::HashMap<String, Result<Expr, CompileError>>>,
        > = std::sync::OnceLock::new();
        let done = DONE.get_or_init(Default::default);
        if let Some(r) = done.lock().ok().and_then(|m| m.get(src).cloned()) {
            return r;
        }
        let r = Self::compile_uncached(src);
        if let Ok(mut m) = done.lock() {
            m.insert(src.to_string(), r.clone());
        }
        r
    }

    fn compile_uncached(src: &str) -> Result<Expr, CompileError> {
        let tokens = jaq_core::load::Lexer::new(src).lex().ok();
        let term = tokens
            .as_ref()
            .and_then(|t| jaq_core::load::Parser::new(t).parse(|p| p.term()).ok());
        // An expression the native compiler takes whole is not compiled by jaq as well: jaq
        // compiles its standard definitions with every program (about 4M instructions, a
        // millisecond or more), which was a third of a short `weir do` run. Nothing is lost:
        // every name the native compiler knows, jaq knows with the same arity
        // (`tests::every_native_name_compiles_in_jaq`), and a part it does not know is compiled
        // by jaq on its own, failing which the whole expression goes to jaq below.
        if let Some(t) = &term {
            if let Ok(Some(root)) = compile::native(t) {
                refuse::check(src, t)?;
                return Ok(Expr::new(src, root));
            }
        }
        let whole = fallback::compile_jaq(src)?;
        if let Some(t) = &term {
            refuse::check(src, t)?;
        }
        Ok(Expr::new(
            src,
            Node::new(Card::Many, Form::Jaq(Arc::new(whole))),
        ))
    }

    /// Compiles `src` for jaq's interpreter only (for tests and benchmarks).
    pub fn compile_fallback_only(src: &str) -> Result<Expr, CompileError> {
        let whole = fallback::compile_jaq(src)?;
        Ok(Expr::new(
            src,
            Node::new(Card::Many, Form::Jaq(Arc::new(whole))),
        ))
    }

    fn new(src: &str, root: Node) -> Expr {
        let native = root.is_native();
        let field = root.single_field().cloned();
        let projection = root.projection();
        Expr {
            inner: Arc::new(Inner {
                src: src.to_string(),
                root,
                native,
                field,
                projection,
            }),
        }
    }

    /// A fresh budget of evaluation limits for one record (only jaq's part needs one).
    #[inline]
    fn start_limits(&self) {
        if !self.inner.native {
            limits::start();
        }
    }

    /// The source text the expression was compiled from.
    pub fn source(&self) -> &str {
        &self.inner.src
    }

    /// True when no part of the expression runs in jaq's interpreter.
    pub fn is_native(&self) -> bool {
        self.inner.native
    }

    /// The top-level fields of its input this expression can read, or `None` when it may
    /// read the input as a whole. Conservative: `None` is always a correct answer.
    pub fn input_fields(&self) -> Option<Vec<Str>> {
        let mut acc: Vec<Str> = Vec::new();
        for p in self.input_paths()? {
            if !acc.contains(&p[0]) {
                acc.push(p[0].clone());
            }
        }
        Some(acc)
    }

    /// What of its input this expression can read, as paths of keys (never empty) whose end
    /// values it may read whole: `.a.b | ascii_downcase` reads `["a", "b"]`, so of `.a` only
    /// the key `b` matters when `.a` is an object. `None` when it may read the input as a
    /// whole. Conservative, as `input_fields`.
    pub fn input_paths(&self) -> Option<Vec<Vec<Str>>> {
        let mut acc = Vec::new();
        native::input_paths(&self.inner.root, &mut acc).then_some(acc)
    }

    /// Pushes every output, in order, onto `out`. On error, `out` is left as it was (the
    /// outputs produced before the error are discarded).
    pub fn eval(&self, input: &Value, out: &mut Vec<Value>) -> Result<(), EvalError> {
        self.start_limits();
        let start = out.len();
        let root = &self.inner.root;
        let r = if root.card == Card::Many {
            root.run(input, &mut |v| {
                out.push(v.into_owned());
                Ok(())
            })
        } else {
            root.first(input)
                .map(|v| out.extend(v.map(|v| v.into_owned())))
        };
        match r.err().and_then(to_eval_error) {
            None => Ok(()),
            Some(e) => {
                out.truncate(start);
                Err(e)
            }
        }
    }

    /// Like [`Expr::eval`], but takes the input by value, so that `.`, assignments to
    /// literal paths (`.a.b = f`, `|=`, `+=`, ..., `//=`) and `del(.a, ...)` update the
    /// record in place instead of cloning it. Other expressions behave exactly as `eval`.
    pub fn eval_owned(&self, input: Value, out: &mut Vec<Value>) -> Result<(), EvalError> {
        self.start_limits();
        match self.inner.root.eval_owned(input) {
            Ok(Ok(v)) => {
                out.push(v);
                Ok(())
            }
            Ok(Err(c)) => match to_eval_error(c) {
                Some(e) => Err(e),
                None => Ok(()),
            },
            Err(input) => self.eval(&input, out),
        }
    }

    /// The first output, without computing the others; `None` if there is none. An error
    /// raised before the first output is returned as an error.
    pub fn eval_first(&self, input: &Value) -> Result<Option<Value>, EvalError> {
        Ok(self.eval_first_ref(input)?.map(Cow::into_owned))
    }

    /// True when the expression has at most one output per input, as compiled (a jaq
    /// fallback counts as many): `select(e)` is then the same as a filter on `e`.
    pub fn at_most_one_output(&self) -> bool {
        self.inner.root.card != native::Card::Many
    }

    /// The field when the expression compares one top-level field with a literal
    /// (`.status >= 400`, `.type == "PullRequestEvent"`): then `field_test_holds` decides it
    /// on that field's value alone, without a record.
    pub fn field_test(&self) -> Option<&Str> {
        match &self.inner.root.kind {
            Form::CmpPathLit(_, keys, _) if self.inner.root.card == Card::One => match &keys[..] {
                [base::Key::Field(f)] => Some(f),
                _ => None,
            },
            _ => None,
        }
    }

    /// What `eval_bool` gives on an object whose `field_test` field is `v` (`None`: absent,
    /// which jq reads as null): the same comparison, without the object. `None` when the
    /// expression is not such a test.
    #[inline]
    pub fn field_test_holds(&self, v: Option<&Value>) -> Option<bool> {
        self.field_test()?;
        match &self.inner.root.kind {
            Form::CmpPathLit(op, _, lit) => {
                Some(op.test(native::cmp_values(v.unwrap_or(&NULL), lit)))
            }
            _ => None,
        }
    }

    /// Evaluates a projection (`{user, path, status}`, `{u: .user}`, `{app: .k8s.labels.app}`:
    /// an object of paths of fields, none leading into another) on an object the caller owns,
    /// by moving the values into place in the object's own map: no copy and, mostly, no new
    /// map, where `eval` would clone each value into a new one. The result is `eval`'s (a
    /// missing field, or a path through `null`, gives `null`). False, with `v` untouched, when
    /// the expression is anything else, `v` is no object, or a path goes through a value that
    /// is neither an object nor `null` (jq's error, which `eval` reports).
    #[inline]
    pub fn project_in_place(&self, v: &mut Value) -> bool {
        match (&self.inner.projection, v) {
            (Some(pairs), Value::Object(m)) => m.project(pairs),
            _ => false,
        }
    }

    /// The field name when the expression is a single field (`.f`).
    pub fn single_field(&self) -> Option<&Str> {
        self.inner.field.as_ref()
    }

    /// The keys when the expression is a path of fields (`.f`, `.a.b.c`): what the parse
    /// workers can read of a line without building it.
    pub fn field_path(&self) -> Option<Vec<Str>> {
        self.inner.root.field_path()
    }

    /// The value of a single-field expression (`.f`) on an object: `Some` of the field or
    /// `null`. `None` when the expression is anything else or the input is not an object; the
    /// caller then evaluates it in full. A plain reference, so hot loops that read keys and
    /// arguments do not move `Result`s of `Cow`s around.
    #[inline]
    pub fn field_of<'a>(&self, input: &'a Value) -> Option<&'a Value> {
        match (&self.inner.field, input) {
            (Some(f), Value::Object(m)) => Some(m.get(f).unwrap_or(&NULL)),
            _ => None,
        }
    }

    /// Calls `f` with the first output (`None` if there is none) without copying it out of
    /// the input: the way per-record readers (keys, aggregate arguments, times) use an
    /// expression. A single field is looked up directly.
    #[inline(always)]
    pub fn with_first<R>(
        &self,
        input: &Value,
        f: impl FnOnce(Option<&Value>) -> R,
    ) -> Result<R, EvalError> {
        if let Some(v) = self.field_of(input) {
            return Ok(f(Some(v)));
        }
        let v = self.eval_first_ref(input)?;
        Ok(f(v.as_deref()))
    }

    /// [`Expr::eval_first`] without copying a value that is part of the input.
    #[inline]
    pub fn eval_first_ref<'a>(
        &'a self,
        input: &'a Value,
    ) -> Result<Option<Cow<'a, Value>>, EvalError> {
        if let Some(v) = self.field_of(input) {
            return Ok(Some(Cow::Borrowed(v)));
        }
        self.start_limits();
        match self.inner.root.first(input) {
            Ok(v) => Ok(v),
            Err(c) => match to_eval_error(c) {
                Some(e) => Err(e),
                None => Ok(None),
            },
        }
    }

    /// True if the first output is truthy (neither `null` nor `false`); false if there is
    /// no output.
    pub fn eval_bool(&self, input: &Value) -> Result<bool, EvalError> {
        self.start_limits();
        match self.inner.root.truth(input) {
            Ok(v) => Ok(v.unwrap_or(false)),
            Err(c) => match to_eval_error(c) {
                Some(e) => Err(e),
                None => Ok(false),
            },
        }
    }
}

#[allow(dead_code)]
const fn assert_send_sync_clone<T: Send + Sync + Clone>() {}
const _: () = assert_send_sync_clone::<Expr>();
