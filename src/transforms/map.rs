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
        for mut r in batch.records {
            // A projection moves the record's own values (the common `{user, path, status}`).
            if self.expr.project_in_place(&mut r.value) {
                out.push(r);
                continue;
            }
            self.scratch.clear();
            match self.expr.eval(&r.value, &mut self.scratch) {
                Ok(()) => {
                    // One bad record is one dead letter, however many of its outputs are not
                    // objects: the record is rejected whole (no output of it is kept), like
                    // a record whose expression fails, so its outputs never go out in part.
                    let not_object = self
                        .scratch
                        .iter()
                        .find(|v| !matches!(v, crate::value::Value::Object(_)));
                    if let Some(value) = not_object {
                        // Records are objects (SPEC section 2); wrap a scalar in one, like
                        // `{v: .x}`, to keep it.
                        let msg = format!(
                            "map made {} {}, not an object: records are JSON objects",
                            if value.type_name() == "array" || value.type_name() == "object" {
                                "an"
                            } else {
                                "a"
                            },
                            value.type_name()
                        );
                        out.bad(r.origin, &msg, None, Some(r.value))?;
                        continue;
                    }
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
