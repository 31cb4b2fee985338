//! `aggregate` with `parallelism` > 1: the `Split` of the operator (see `transforms::parallel`).
//! The evaluator reads key, time and arguments; the router keeps the clock of `state_ttl`; the
//! instances are `Aggregate`s holding the keys of their key groups.

use super::Ttl;
use super::{
    add, decode_all, each_folded, evaluate, finish_parts, snapshot_deferred_parts, snapshot_parts,
    Aggregate,
};
use crate::error::Error;
use crate::expr::Expr;
use crate::pipeline::spec::Emit;
use crate::runtime::message::{FoldedTables, Origin, Record};
use crate::runtime::stage::{Output, StageResult};
use crate::transforms::aggs::AggSpec;
use crate::transforms::keygroup::key_group;
use crate::transforms::parallel::{walk, Chunk, Evals, Out, Routes, Share, Split};
use crate::value::{Str, Value};

/// What the router of a parallel aggregate hands an instance.
pub enum Item {
    /// A good record: its key, event time, the clock after it, and (in the share's `args`)
    /// its arguments.
    Record {
        pos: u32,
        key: Value,
        now: i64,
        clock: i64,
        origin: Origin,
    },
    /// A key's folded counts and sums (in the share's `nums`).
    Folded(Str),
}

/// The part of a parallel aggregate that reads every record in order: the clock.
pub struct Router {
    width: usize,
    clock: i64,
}

/// The expressions of a parallel aggregate, one copy per thread.
pub struct Evaluator {
    key: Option<Expr>,
    ttl: Option<Ttl>,
    specs: Vec<AggSpec>,
    args: Vec<Option<Value>>,
    max: u32,
}

/// A record's key, event time and key group, or why it is bad.
pub type Eval = Result<(Value, i64, u32), String>;

impl Split for Aggregate {
    type Eval = Eval;
    type Evaluator = Evaluator;
    type Item = Item;
    /// The clock after the batch, for the instances' purges.
    type Shared = i64;
    type Router = Router;

    fn instance(&self) -> Aggregate {
        let mut a = Aggregate::new(
            self.key.clone(),
            self.specs.clone(),
            self.emit,
            self.ttl.clone(),
            self.max,
        );
        a.expire_fraction = self.expire_fraction;
        a
    }

    fn router(&self) -> Router {
        Router {
            width: self.specs.len(),
            clock: self.clock,
        }
    }

    fn evaluator(&self, max: u32) -> Evaluator {
        Evaluator {
            key: self.key.clone(),
            ttl: self.ttl.clone(),
            specs: self.specs.clone(),
            args: Vec::new(),
            max,
        }
    }

    fn evaluate(ev: &mut Evaluator, records: &mut [Record], evals: &mut Evals<Eval>, _: bool) {
        for rec in records.iter_mut() {
            match evaluate(&ev.key, &ev.ttl, &ev.specs, &mut ev.args, &rec.value) {
                Ok((key, now)) => {
                    let key = key.into_owned();
                    let g = key_group(&key, ev.max);
                    evals.args.extend(ev.args.iter_mut().map(std::mem::take));
                    evals.list.push(Ok((key, now, g)));
                    // Only a bad record is needed again (for its dead letter): this one is
                    // freed here, on this thread.
                    rec.value = Value::Null;
                }
                Err(msg) => evals.list.push(Err(msg)),
            }
        }
    }

    fn route(
        r: &mut Router,
        _input: usize,
        chunks: &mut [Chunk<Eval>],
        out: &mut Output,
        to: &mut Routes<Item>,
    ) -> StageResult<i64> {
        walk(chunks, r.width, out, |pos, rec, (key, now, g), args, _| {
            r.clock = r.clock.max(now);
            let share = to.at(g);
            share.args.extend(args.iter_mut().map(std::mem::take));
            share.items.push(Item::Record {
                pos,
                key,
                now,
                clock: r.clock,
                origin: rec.origin,
            });
            Ok(())
        })?;
        Ok(r.clock)
    }

    fn route_folded(
        r: &mut Router,
        p: FoldedTables,
        _out: &mut Output,
        to: &mut Routes<Item>,
    ) -> StageResult<i64> {
        each_folded(p, r.width, |k, vals| {
            let key = Value::Str(k);
            let share = to.of(&key);
            share.nums.extend_from_slice(vals);
            if let Value::Str(k) = key {
                share.items.push(Item::Folded(k));
            }
            Ok(())
        })?;
        Ok(r.clock)
    }

    fn skip(&mut self, _clock: &i64) -> bool {
        true
    }

    fn apply(
        &mut self,
        share: &mut Share<Item>,
        clock: &i64,
        outs: &mut Vec<Out>,
    ) -> Result<(), String> {
        let width = self.specs.len();
        let (mut a, mut f) = (0, 0);
        let n = share.items.len();
        for item in share.items.drain(..) {
            match item {
                Item::Record {
                    pos,
                    key,
                    now,
                    clock,
                    origin,
                } => {
                    let args = &share.args[a..a + width];
                    a += width;
                    let row = add(
                        &mut self.groups,
                        &self.ttl,
                        std::borrow::Cow::Owned(key),
                        now,
                        clock,
                        args,
                    )?;
                    self.clock = clock;
                    if self.emit == Emit::Updates {
                        outs.push(Out {
                            pos,
                            fire: None,
                            record: Record {
                                value: self.result(row),
                                origin,
                            },
                        });
                    }
                }
                Item::Folded(k) => {
                    let vals = &share.nums[f..f + width];
                    f += width;
                    let (row, _) = self
                        .groups
                        .find_or_insert(std::borrow::Cow::Owned(Value::Str(k)), 0)?;
                    self.groups.fold(row, vals);
                }
            }
        }
        self.clock = *clock;
        self.maybe_expire(n);
        Ok(())
    }

    fn finish_all(r: &mut Router, parts: &mut [Box<Aggregate>], out: &mut Output) -> StageResult {
        finish_parts(&mut at_clock(r, parts), out)
    }

    fn snapshot_all(r: &mut Router, parts: &mut [Box<Aggregate>]) -> Result<Vec<u8>, Error> {
        Ok(snapshot_parts(&mut at_clock(r, parts)))
    }

    fn snapshot_deferred_all(
        r: &mut Router,
        parts: &mut [Box<Aggregate>],
    ) -> Option<crate::runtime::stage::DeferredSnapshot> {
        snapshot_deferred_parts(&mut at_clock(r, parts))
    }

    fn restore_all(
        r: &mut Router,
        parts: &mut [Box<Aggregate>],
        state: &[u8],
    ) -> Result<(), Error> {
        let mut refs: Vec<&mut Aggregate> = parts.iter_mut().map(|p| &mut **p).collect();
        decode_all(&mut refs, state)?;
        r.clock = parts.first().map_or(i64::MIN, |p| p.clock);
        Ok(())
    }
}

/// The instances, each given the router's clock (which they see only as far as their own
/// records went).
fn at_clock<'a>(r: &Router, parts: &'a mut [Box<Aggregate>]) -> Vec<&'a mut Aggregate> {
    parts
        .iter_mut()
        .map(|p| {
            p.clock = r.clock;
            &mut **p
        })
        .collect()
}
