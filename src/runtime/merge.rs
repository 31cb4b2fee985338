//! The k-way merge of a node with several inputs. Every stream is sorted by (logical batch,
//! source, file, line): sources emit in that order and operators keep it. Merging on it is
//! deterministic whatever the thread timing, and keeps the source's order across branches
//! that join again.

use super::message::Record;

/// The order of records at a merge: logical batch, then source, file and line.
#[inline]
fn key(seq: u64, r: &Record) -> (u64, u32, u32, u64) {
    (seq, r.origin.source, r.origin.file, r.origin.line)
}

struct Head {
    seq: u64,
    records: std::iter::Peekable<std::vec::IntoIter<Record>>,
}

/// What the merge hands the stage loop next.
pub enum Step {
    /// Records of input `input`, logical batch `seq`, all ordered before anything waiting on
    /// the other inputs.
    Run {
        input: usize,
        seq: u64,
        records: Vec<Record>,
    },
    /// An empty batch `seq` (a progress marker: "nothing more up to the end of this batch
    /// number") became the smallest head and was dropped.
    Progress { seq: u64 },
}

pub struct Merge {
    heads: Vec<Option<Head>>,
}

impl Merge {
    pub fn new(inputs: usize) -> Self {
        Merge {
            heads: (0..inputs).map(|_| None).collect(),
        }
    }

    /// Whether input `input` has nothing waiting (the loop reads its next message then).
    #[inline]
    pub fn is_empty(&self, input: usize) -> bool {
        self.heads[input].is_none()
    }

    /// Puts a batch read from `input` at its head; only when `is_empty(input)`.
    pub fn push(&mut self, input: usize, seq: u64, records: Vec<Record>) {
        debug_assert!(self.heads[input].is_none());
        self.heads[input] = Some(Head {
            seq,
            records: records.into_iter().peekable(),
        });
    }

    /// The run of records from the input with the smallest key that stays below every other
    /// input's head; `None` when no input has anything waiting. An empty head sorts after its
    /// batch number's records.
    pub fn next_step(&mut self) -> Option<Step> {
        let mut best: Option<((u64, u32, u32, u64), usize)> = None;
        let mut second: Option<((u64, u32, u32, u64), usize)> = None;
        for (i, h) in self.heads.iter_mut().enumerate() {
            let Some(h) = h else { continue };
            let k = match h.records.peek() {
                Some(r) => (key(h.seq, r), i),
                None => ((h.seq, u32::MAX, u32::MAX, u64::MAX), i),
            };
            if best.is_none_or(|b| k < b) {
                second = best;
                best = Some(k);
            } else if second.is_none_or(|s| k < s) {
                second = Some(k);
            }
        }
        let (_, i) = best?;
        let h = self.heads[i].as_mut()?;
        let seq = h.seq;
        if h.records.peek().is_none() {
            self.heads[i] = None;
            return Some(Step::Progress { seq });
        }
        let mut run = Vec::new();
        while let Some(r) = h.records.peek() {
            if second.is_some_and(|s| (key(seq, r), i) > s) {
                break;
            }
            run.extend(h.records.next());
        }
        if h.records.peek().is_none() {
            self.heads[i] = None;
        }
        Some(Step::Run {
            input: i,
            seq,
            records: run,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::message::Origin;
    use crate::value::Value;

    fn rec(source: u32, line: u64) -> Record {
        Record {
            value: Value::Null,
            origin: Origin {
                source,
                file: 0,
                line,
                offset: 0,
            },
        }
    }

    fn lines(step: &Step) -> Vec<(usize, u64)> {
        match step {
            Step::Run { input, records, .. } => {
                records.iter().map(|r| (*input, r.origin.line)).collect()
            }
            Step::Progress { .. } => Vec::new(),
        }
    }

    #[test]
    fn runs_interleave_in_key_order_and_progress_markers_sort_last_in_their_batch() {
        let mut m = Merge::new(2);
        m.push(0, 1, vec![rec(0, 1), rec(0, 2), rec(0, 5)]);
        m.push(1, 1, vec![rec(0, 3), rec(0, 4)]);
        let mut order = Vec::new();
        while let Some(s) = m.next_step() {
            order.extend(lines(&s));
            if m.is_empty(1) && order.len() == 4 {
                // Input 1 says "nothing more in batch 1": input 0's line 5 may go.
                m.push(1, 1, Vec::new());
            }
        }
        assert_eq!(order, vec![(0, 1), (0, 2), (1, 3), (1, 4), (0, 5)]);
    }
}
