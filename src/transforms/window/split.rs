//! `window` with `parallelism` > 1: the `Split` of the operator (see `transforms::parallel`).
//! The evaluator reads time, key and arguments; the router keeps the watermark, which is
//! global, and decides lateness; the instances are `Window`s holding the windows of their
//! key groups, which fire at the positions the router's watermark advances give them.

use super::state::{decode_state, encode_state};
use super::{
    each_folded, evaluate, finish_parts, folded_size, folded_watermark, is_late, watermark, Tagged,
    Window,
};
use crate::error::Error;
use crate::expr::Expr;
use crate::runtime::message::{FoldedTables, Origin, Record};
use crate::runtime::stage::{Output, StageResult};
use crate::time::window::Assigner;
use crate::time::TimeExpr;
use crate::transforms::aggs::AggSpec;
use crate::transforms::keygroup::key_group;
use crate::transforms::parallel::{walk, Chunk, Evals, Out, Routes, Share, Split};
use crate::value::Value;
use std::sync::atomic::Ordering;

/// A watermark advance of a parallel window: every instance fires what it passes, at the
/// position of the record that moved it.
pub struct Advance {
    pos: u32,
    wm: i64,
    origin: Origin,
}

/// What the router of a parallel window hands an instance.
pub enum Item {
    /// A record that is not late: its key and time (arguments in the share's `args`).
    Record {
        pos: u32,
        key: Value,
        t: i64,
        origin: Origin,
    },
    /// Folded counts and sums of a key for the window ending at `end` (in the share's `nums`).
    Folded { key: Value, end: i64 },
}

/// The part of a parallel window that reads every record in order: lateness and the
/// watermark, which is global (windows of every key fire when it passes their end).
pub struct Router {
    assigner: Assigner,
    ooo: i64,
    lateness: i64,
    width: usize,
    wins: Vec<(i64, i64)>,
    max_t: Vec<Option<i64>>,
    wm: i64,
}

/// The expressions of a parallel window, one copy per thread.
pub struct Evaluator {
    key: Option<Expr>,
    time: TimeExpr,
    specs: Vec<AggSpec>,
    args: Vec<Option<Value>>,
    max: u32,
}

/// A record's event time, key and key group, or why it is bad.
pub type Eval = Result<(i64, Value, u32), String>;

impl Split for Window {
    type Eval = Eval;
    type Evaluator = Evaluator;
    type Item = Item;
    type Shared = Vec<Advance>;
    type Router = Router;

    fn instance(&self) -> Window {
        Window::new(
            self.key.clone(),
            self.time.clone(),
            self.assigner,
            self.ooo,
            self.lateness,
            self.specs.clone(),
            self.max,
        )
    }

    fn router(&self) -> Router {
        Router {
            assigner: self.assigner,
            ooo: self.ooo,
            lateness: self.lateness,
            width: self.specs.len(),
            wins: Vec::new(),
            max_t: self.max_t.clone(),
            wm: self.wm,
        }
    }

    fn evaluator(&self, max: u32) -> Evaluator {
        Evaluator {
            key: self.key.clone(),
            time: self.time.clone(),
            specs: self.specs.clone(),
            args: Vec::new(),
            max,
        }
    }

    fn evaluate(
        ev: &mut Evaluator,
        records: &mut [Record],
        evals: &mut Evals<Eval>,
        keep_late: bool,
    ) {
        for rec in records.iter_mut() {
            match evaluate(&ev.time, &ev.key, &ev.specs, &mut ev.args, &rec.value) {
                Ok((t, key)) => {
                    let g = key_group(&key, ev.max);
                    evals.args.extend(ev.args.iter_mut().map(std::mem::take));
                    evals.list.push(Ok((t, key, g)));
                    // Needed again only if it turns out late and `.late` is read.
                    if !keep_late {
                        rec.value = Value::Null;
                    }
                }
                Err(msg) => evals.list.push(Err(msg)),
            }
        }
    }

    fn route(
        r: &mut Router,
        input: usize,
        chunks: &mut [Chunk<Eval>],
        out: &mut Output,
        to: &mut Routes<Item>,
    ) -> StageResult<Vec<Advance>> {
        if r.max_t.len() <= input {
            r.max_t.resize(input + 1, None);
        }
        let mut advances = Vec::new();
        walk(chunks, r.width, out, |pos, rec, (t, key, g), args, out| {
            if is_late(&r.assigner, r.lateness, r.wm, t, &mut r.wins) {
                out.ctx.stats[out.node].late.fetch_add(1, Ordering::Relaxed);
                out.push_late(Record {
                    value: std::mem::take(&mut rec.value),
                    origin: rec.origin,
                });
                return Ok(());
            }
            let share = to.at(g);
            share.args.extend(args.iter_mut().map(std::mem::take));
            share.items.push(Item::Record {
                pos,
                key,
                t,
                origin: rec.origin,
            });
            let wm = watermark(&mut r.max_t, input, t, r.ooo);
            if wm > r.wm {
                r.wm = wm;
                advances.push(Advance {
                    pos,
                    wm,
                    origin: rec.origin,
                });
            }
            Ok(())
        })?;
        Ok(advances)
    }

    fn route_folded(
        r: &mut Router,
        p: FoldedTables,
        out: &mut Output,
        to: &mut Routes<Item>,
    ) -> StageResult<Vec<Advance>> {
        folded_size(&r.assigner)?;
        each_folded(p.tables, r.width, r.wm, |k, end, vals| {
            let key = Value::Str(k);
            let share = to.of(&key);
            share.nums.extend_from_slice(vals);
            share.items.push(Item::Folded { key, end });
        })?;
        out.ctx.stats[out.node]
            .late
            .fetch_add(p.late, Ordering::Relaxed);
        let mut advances = Vec::new();
        if let Some(w) = folded_watermark(&mut r.max_t, p.max_time, r.ooo) {
            if w > r.wm {
                r.wm = w;
                advances.push(Advance {
                    pos: 0,
                    wm: w,
                    origin: Origin::default(),
                });
            }
        }
        Ok(advances)
    }

    fn skip(&mut self, advances: &Vec<Advance>) -> bool {
        let Some(last) = advances.last() else {
            return true;
        };
        if self.would_advance(last.wm) {
            return false;
        }
        // Nothing to fire or forget: the watermark is all it takes.
        self.wm = last.wm;
        true
    }

    fn apply(
        &mut self,
        share: &mut Share<Item>,
        advances: &Vec<Advance>,
        outs: &mut Vec<Out>,
    ) -> Result<(), String> {
        let width = self.specs.len();
        let (mut a, mut f, mut next) = (0, 0, 0);
        let size = match self.assigner {
            Assigner::Tumbling { size } => size,
            _ => 0,
        };
        for item in share.items.drain(..) {
            let pos = match &item {
                Item::Record { pos, .. } => *pos,
                Item::Folded { .. } => 0,
            };
            // The watermark moves at a record after that record was added.
            while let Some(adv) = advances.get(next).filter(|x| x.pos < pos) {
                self.wm = adv.wm;
                self.advance(&mut Tagged { pos: adv.pos, outs }, adv.origin);
                next += 1;
            }
            match item {
                Item::Record {
                    pos,
                    key,
                    t,
                    origin,
                } => {
                    self.args.clear();
                    self.args
                        .extend(share.args[a..a + width].iter_mut().map(std::mem::take));
                    a += width;
                    if !self.add(key, t, &mut Tagged { pos, outs }, origin) {
                        return Err("internal: a record routed as on time was late".into());
                    }
                }
                Item::Folded { key, end } => {
                    self.add_folded(key, end, size, &share.nums[f..f + width]);
                    f += width;
                }
            }
        }
        for adv in &advances[next..] {
            self.wm = adv.wm;
            self.advance(&mut Tagged { pos: adv.pos, outs }, adv.origin);
        }
        Ok(())
    }

    fn finish_all(r: &mut Router, parts: &mut [Box<Window>], out: &mut Output) -> StageResult {
        let _ = r;
        let mut refs: Vec<&mut Window> = parts.iter_mut().map(|p| &mut **p).collect();
        finish_parts(&mut refs, out)
    }

    fn snapshot_all(r: &mut Router, parts: &mut [Box<Window>]) -> Result<Vec<u8>, Error> {
        for p in parts.iter_mut() {
            p.wm = r.wm;
            p.max_t = r.max_t.clone();
        }
        let refs: Vec<&Window> = parts.iter().map(|p| &**p).collect();
        Ok(encode_state(&refs))
    }

    fn restore_all(r: &mut Router, parts: &mut [Box<Window>], state: &[u8]) -> Result<(), Error> {
        let mut refs: Vec<&mut Window> = parts.iter_mut().map(|p| &mut **p).collect();
        decode_state(&mut refs, state)?;
        if let Some(p) = parts.first() {
            r.wm = p.wm;
            r.max_t = p.max_t.clone();
        }
        Ok(())
    }
}
