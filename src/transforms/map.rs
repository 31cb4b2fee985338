//! `map`: replaces each record by the outputs of a jq expression (zero, one or many).

use crate::expr::Expr;
use crate::runtime::message::{Batch, Record};
use crate::runtime::stage::{Operator, Output, StageResult};

pub struct MapOp {
    pub expr: Expr,
    /// Reused between records so the common one-output case does not allocate a Vec each time.
    scratch: Vec<crate::value::Value>,
}

impl MapOp {
    pub fn new(expr: Expr) -> MapOp {
        MapOp {
            expr,
            scratch: Vec::new(),
        }
    }
}

impl Operator for MapOp {
    fn process(&mut self, _input: usize, batch: Batch, out: &mut Output) -> StageResult {
        for r in batch.records {
            self.scratch.clear();
            match self.expr.eval(&r.value, &mut self.scratch) {
                Ok(()) => {
                    for value in self.scratch.drain(..) {
                        out.push(Record {
                            value,
                            origin: r.origin,
                        });
                    }
                }
                Err(e) => out.bad(r.origin, &e.message, None, Some(r.value))?,
            }
        }
        Ok(())
    }
}
