//! Evaluation limits: one record's expression must never hang, exhaust memory or overflow the
//! stack of the operator thread, whatever it computes.
//!
//! The native evaluator has no loops of its own (every generator it runs is bounded by the
//! input, which the JSON reader caps at [`MAX_DEPTH`] levels), so the limits live where
//! unbounded work can happen: in jaq's interpreter, which runs `reduce`, `foreach`,
//! recursive `def`s, `range`, `repeat`, `while`, `until` and `recurse(f)`. The compiler puts
//! `__weir_step` in each of those (in front of every `def` body, after every `reduce` and
//! `foreach` update, on every step of the prelude's generators: see `prelude.jq` and
//! `fallback.rs`), a native filter that passes its input on after it
//!
//! - counts a step against a per-record budget ([`MAX_STEPS`]),
//! - checks how much stack the evaluation has used since it started ([`MAX_STACK`]): this
//!   bounds recursion whatever the frame sizes of a debug or release build,
//! - checks how much heap the thread has gained since the evaluation started ([`MAX_HEAP`],
//!   counted by [`crate::alloc`]): jaq keeps the pending generators of a recursion on the
//!   heap, where neither the stack nor the values show them,
//! - checks the value's size (strings up to [`MAX_STR_BYTES`], arrays and objects up to
//!   [`MAX_LEN`] entries) and probes its nesting ([`MAX_DEPTH`]) and the strings it holds.
//!
//! `__weir_step` sits where a recursive call stays a tail call, so jaq's tail-call
//! optimisation still runs long loops (`until`, a tail-recursive `def`) in constant stack.
//!
//! Converting jaq's values back to weir's checks depth, every string's length and the total
//! size again (before it copies anything), so an output built by jaq can never be deeper than
//! [`MAX_DEPTH`] nor hold more than [`MAX_OUT_BYTES`] of text. weir's own builtins run inside
//! jaq (`tojson`, `@base32`, ...) check what they return the same way, so a loop that feeds a
//! builtin its own growing output (`def f: [tostring] | f`) stops at the limit instead of
//! doubling a string until the allocator fails.
//!
//! A limit is not an ordinary jq error: `try` and `?` do not catch it (in jaq it travels as a
//! halt, natively as [`super::native::ErrV::Limit`]), so the record is bad input under every
//! `on_error`, with a message that names the limit.

use jaq_json::Val;
use std::cell::Cell;

/// Nesting of arrays and objects read from input or built by an expression. jq 1.6 refuses
/// JSON input deeper than 256 levels too.
pub const MAX_DEPTH: usize = 256;
/// Steps (calls, loop iterations, generator outputs) one record's evaluation may take.
pub const MAX_STEPS: u64 = 1_000_000;
/// Stack one evaluation may use beyond where it started; operator threads have 2 MiB.
pub const MAX_STACK: usize = 1 << 20;
/// Heap one evaluation may gain (what jaq builds, converts and keeps pending).
pub const MAX_HEAP: isize = 1 << 30;
/// Length of one string built by an expression.
pub const MAX_STR_BYTES: usize = 64 << 20;
/// Entries of one array or object built by an expression, and values in one output.
pub const MAX_LEN: usize = 4_000_000;
/// Bytes of text (strings and keys) in all of one output converted from jaq.
pub const MAX_OUT_BYTES: usize = 4 * MAX_STR_BYTES;

thread_local! {
    static STEPS_LEFT: Cell<u64> = const { Cell::new(MAX_STEPS) };
    /// Address of a local of the function that started the evaluation (0: none started).
    static ORIGIN: Cell<usize> = const { Cell::new(0) };
    /// The thread's live heap when the evaluation started.
    static HEAP_BASE: Cell<isize> = const { Cell::new(0) };
    /// Why the evaluation was stopped (read when the halt reaches weir).
    static REASON: Cell<Option<String>> = const { Cell::new(None) };
}

/// The halt code that carries a limit out of jaq (jaq's `try` does not catch halts).
pub(crate) const LIMIT_HALT: i32 = i32::MIN + 0x5745;

#[inline(never)]
fn stack_here() -> usize {
    let x = 0u8;
    std::hint::black_box(&x) as *const u8 as usize
}

/// Starts a record's evaluation: a fresh step budget, the stack measured from here.
#[inline]
pub(crate) fn start() {
    STEPS_LEFT.with(|s| s.set(MAX_STEPS));
    ORIGIN.with(|o| o.set(stack_here()));
    HEAP_BASE.with(|h| h.set(crate::alloc::live()));
}

/// Starts an evaluation unless one is under way on this thread (jaq run on its own).
pub(crate) fn start_if_idle() {
    if ORIGIN.with(Cell::get) == 0 {
        start();
    }
}

/// The message of the limit that stopped the evaluation, if one did.
pub(crate) fn take_reason() -> Option<String> {
    REASON.with(Cell::take)
}

/// Records why the evaluation stops (read by [`take_reason`]) and returns the message.
pub(crate) fn exceeded(reason: String) -> String {
    REASON.with(|r| r.set(Some(reason.clone())));
    reason
}

/// Checks the step budget, the stack and the heap; `Err` with the message when one is
/// exhausted.
pub(crate) fn step() -> Result<(), String> {
    let left = STEPS_LEFT.with(|s| {
        let v = s.get().saturating_sub(1);
        s.set(v);
        v
    });
    if left == 0 {
        return Err(exceeded(format!(
            "expression stopped: more than {MAX_STEPS} steps on one record (evaluation limit)"
        )));
    }
    let gained = crate::alloc::live().wrapping_sub(HEAP_BASE.with(Cell::get));
    if gained > MAX_HEAP {
        return Err(exceeded(format!(
            "expression stopped: more than {MAX_HEAP} bytes of memory for one record (evaluation limit)"
        )));
    }
    stack_ok()
}

/// Checks the stack only.
pub(crate) fn stack_ok() -> Result<(), String> {
    let origin = ORIGIN.with(Cell::get);
    let here = stack_here();
    if origin != 0 && origin.saturating_sub(here) > MAX_STACK {
        return Err(exceeded(
            "expression stopped: recursion too deep on one record (evaluation limit)".into(),
        ));
    }
    Ok(())
}

fn too_deep() -> String {
    format!("expression stopped: a value nested deeper than {MAX_DEPTH} levels (evaluation limit)")
}

/// Size and nesting of one value passing a step. Strings, arrays and objects are
/// measured in O(1); nesting is probed along the first and last entry of every array or
/// object and all entries of small ones, within a fixed number of visits. That finds the
/// shapes a loop builds (`[., $x]`, `{a: .}`, `[$x, .]`) at every step, so the value never
/// gets much deeper than the limit, at a cost independent of its width.
pub(crate) fn check_val(v: &Val) -> Result<(), String> {
    match v {
        Val::TStr(b) | Val::BStr(b) if b.len() > MAX_STR_BYTES => Err(exceeded(str_error())),
        Val::Arr(a) if a.len() > MAX_LEN => Err(exceeded(format!(
            "expression stopped: an array longer than {MAX_LEN} (evaluation limit)"
        ))),
        Val::Obj(o) if o.len() > MAX_LEN => Err(exceeded(format!(
            "expression stopped: an object with more than {MAX_LEN} keys (evaluation limit)"
        ))),
        Val::Arr(_) | Val::Obj(_) => probe(v).map_err(exceeded),
        _ => Ok(()),
    }
}

/// Probes the nesting of `v` and the length of the strings and keys of the containers it
/// visits (exact for the shapes described at [`check_val`]): a string that grows inside a
/// container (`[tostring]`) is found the step after it passes the limit, as a deep one is.
/// Only containers are visited; a string costs a length read.
fn probe(v: &Val) -> Result<(), String> {
    const VISITS: usize = 4096;
    const SMALL: usize = 16;
    fn long(v: &Val) -> bool {
        matches!(v, Val::TStr(b) | Val::BStr(b) if b.len() > MAX_STR_BYTES)
    }
    fn child<'a>(stack: &mut Vec<(&'a Val, usize)>, c: &'a Val, d: usize) -> Result<(), String> {
        match c {
            Val::Arr(_) | Val::Obj(_) => stack.push((c, d)),
            c if long(c) => return Err(str_error()),
            _ => {}
        }
        Ok(())
    }
    let mut visits = 0;
    let mut stack: Vec<(&Val, usize)> = vec![(v, 1)];
    while let Some((v, d)) = stack.pop() {
        visits += 1;
        if d > MAX_DEPTH {
            return Err(too_deep());
        }
        if visits > VISITS {
            return Ok(());
        }
        match v {
            Val::Arr(a) if a.len() <= SMALL => {
                for c in a.iter() {
                    child(&mut stack, c, d + 1)?;
                }
            }
            Val::Arr(a) => {
                for c in [a.first(), a.last()].into_iter().flatten() {
                    child(&mut stack, c, d + 1)?;
                }
            }
            Val::Obj(o) if o.len() <= SMALL => {
                for (k, c) in o.iter() {
                    child(&mut stack, k, d + 1)?;
                    child(&mut stack, c, d + 1)?;
                }
            }
            Val::Obj(o) => {
                for (k, c) in [o.iter().next(), o.iter().next_back()]
                    .into_iter()
                    .flatten()
                {
                    child(&mut stack, k, d + 1)?;
                    child(&mut stack, c, d + 1)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// The message for a value too deep to convert (used by the conversion from jaq).
pub(crate) fn depth_error() -> String {
    too_deep()
}

/// The message for an output with too many values in all.
pub(crate) fn size_error() -> String {
    format!("expression stopped: an output of more than {MAX_LEN} values (evaluation limit)")
}

/// The message for a string over [`MAX_STR_BYTES`].
pub(crate) fn str_error() -> String {
    format!("expression stopped: a string longer than {MAX_STR_BYTES} bytes (evaluation limit)")
}

/// The message for an output with more than [`MAX_OUT_BYTES`] of text in all.
pub(crate) fn text_error() -> String {
    format!("expression stopped: an output holding more than {MAX_OUT_BYTES} bytes of text (evaluation limit)")
}
