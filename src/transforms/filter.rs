//! `filter`: keeps the records for which a jq expression is true.

use crate::expr::Expr;
use crate::runtime::message::Batch;
use crate::runtime::stage::{Operator, Output, StageResult};

pub struct Filter {
    pub expr: Expr,
}

impl Operator for Filter {
    fn process(&mut self, _input: usize, batch: Batch, out: &mut Output) -> StageResult {
        if batch.judged {
            // Kept by this filter already, run by the source's parse workers (pure, so it
            // would decide the same here).
            out.buffer().extend(batch.records);
            return Ok(());
        }
        for r in batch.records {
            match self.expr.eval_bool(&r.value) {
                Ok(true) => out.push(r),
                Ok(false) => {}
                Err(e) => out.bad(r.origin, &e.message, None, Some(r.value))?,
            }
        }
        Ok(())
    }
}
