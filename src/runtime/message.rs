//! The one message type on every channel. Barriers travel in-band with the data, so a barrier's
//! position in the stream is exactly the cut that its checkpoint describes. Watermarks are not
//! messages: a `window` or `dedup` derives its own from the event times of the records it reads,
//! in the order the deterministic merge gives them, so it depends on the records alone.

use crate::value::Value;

/// Where a record came from, for error messages and dead letters: the source (graph node
/// index), the file within it, the 1-based line and the byte offset where the record starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Origin {
    pub source: u32,
    pub file: u32,
    pub line: u64,
    pub offset: u64,
}

#[derive(Debug, Clone)]
pub struct Record {
    pub value: Value,
    pub origin: Origin,
}

/// A run of records. `seq` is the logical batch number at the source (records read divided by
/// the batch size), carried through every stage unchanged; a node with several inputs merges
/// them in `(seq, input)` order, which makes unions deterministic whatever the thread timing.
#[derive(Debug, Clone)]
pub struct Batch {
    pub seq: u64,
    pub records: Vec<Record>,
    /// Every record in it was kept by the `filter` it goes to, run on it by the source's
    /// parse workers (a filter pushed down, see `runtime::plan::filter_pushdown`): that
    /// filter passes the batch on without running again. False from everything else.
    pub judged: bool,
}

impl Batch {
    /// A batch no filter has judged.
    pub fn new(seq: u64, records: Vec<Record>) -> Batch {
        Batch {
            seq,
            records,
            judged: false,
        }
    }
}

/// How a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndKind {
    /// Input is over: windows and aggregates fire their final results.
    Finish,
    /// This run is over but the stream is not (at_end = pause, or a signal): state stays open.
    Pause,
}

#[derive(Debug, Clone)]
pub enum Msg {
    Batch(Batch),
    /// Checkpoint barrier with the checkpoint id.
    Barrier(u64),
    End(EndKind),
    /// Counts and sums per key that a source's parse workers folded for the `aggregate` or
    /// `window` that is its only consumer, in place of the records (see `sources::folding`).
    Folded(FoldedTables),
}

/// `records` input records folded into per-worker tables.
#[derive(Debug, Clone)]
pub struct FoldedTables {
    pub records: u64,
    pub tables: Vec<crate::sources::folding::Table>,
    /// For a window: how many of the records were late, and the largest event time of all
    /// records folded so far, which sets the watermark.
    pub late: u64,
    pub max_time: Option<i64>,
}

/// The `seq` of output produced at end of stream: after every data batch of every input.
pub const END_SEQ: u64 = u64::MAX;
