//! What every stage thread of one run shares: the stop flag, the first failure, per-node
//! counters, the names of the files each source has opened (for error messages), and the line
//! to the checkpoint coordinator. Counters are atomics updated once per batch, never per record.

use super::message::Origin;
use crate::error::Error;
use crate::pipeline::spec::OnError;
use crossbeam_channel::Sender;
use std::sync::atomic::{fence, AtomicU64, AtomicU8, Ordering};
use std::sync::{Mutex, RwLock};

#[derive(Default, Debug)]
pub struct NodeStats {
    pub records_in: AtomicU64,
    pub records_out: AtomicU64,
    pub errors: AtomicU64,
    pub late: AtomicU64,
    pub bytes_read: AtomicU64,
    /// A source's input size when known (0: unknown), for the progress bar.
    pub bytes_total: AtomicU64,
    /// Longest time (µs) this node held up its stream for a checkpoint.
    pub max_stall_us: AtomicU64,
}

impl NodeStats {
    pub fn add_in(&self, n: usize) {
        self.records_in.fetch_add(n as u64, Ordering::Relaxed);
    }
    pub fn add_out(&self, n: usize) {
        self.records_out.fetch_add(n as u64, Ordering::Relaxed);
    }
    pub fn add_errors(&self, n: usize) {
        self.errors.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// What a stage tells the coordinator.
#[derive(Debug)]
pub enum Report {
    /// The node's state as of checkpoint `id` (serialized by the node).
    State {
        id: u64,
        node: usize,
        state: Vec<u8>,
    },
    /// The node reached the end of its stream; its final state.
    Ended {
        node: usize,
        state: Vec<u8>,
        finished: bool,
    },
    /// A deferred snapshot failed.
    Failed { node: usize, error: Error },
    /// The node's thread is gone (normally or not).
    Exited { node: usize },
}

pub struct SourceInfo {
    pub name: String,
    pub on_error: OnError,
    /// Display names of the files opened so far, indexed by `Origin::file`.
    pub files: RwLock<Vec<String>>,
}

/// Why the run is stopping early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    None = 0,
    Sigint = 1,
    Sigterm = 2,
    Failure = 3,
}

pub struct Context {
    pub names: Vec<String>,
    pub stats: Vec<NodeStats>,
    /// Indexed by graph node index; `None` for nodes that are not sources.
    pub sources: Vec<Option<SourceInfo>>,
    stop: AtomicU8,
    failure: Mutex<Option<Error>>,
    pub reports: Sender<Report>,
    pub quiet: bool,
    pub verbose: u8,
    /// Tests only (see `Lockstep`); `None` in every real run.
    pub lockstep: Option<Lockstep>,
}

/// Tests only, with the `failpoints` feature and `FAILPOINTS=checkpoint-lockstep=return`:
/// after each batch a source waits until the coordinator has decided whether a checkpoint is
/// due with that batch counted (and, if one is under way, until it is written). Checkpoints
/// by record count (`every_records`) then fall at the same batches in every run, however the
/// threads are scheduled, so a test can crash at the n-th one knowing it comes before the end.
#[derive(Default)]
pub struct Lockstep {
    /// How many times the coordinator has decided with no checkpoint under way.
    decisions: AtomicU64,
}

impl Lockstep {
    fn from_failpoint() -> Option<Lockstep> {
        fail::fail_point!("checkpoint-lockstep", |_| Some(Lockstep::default()));
        None
    }

    /// The coordinator decided on the counts it read before this call.
    pub fn decided(&self) {
        // With the fence in `await_decision`: a decision that starts after this one reads
        // every count a waiting source added before it read `decisions`.
        fence(Ordering::SeqCst);
        self.decisions.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }

    /// A source counted a batch: waits for a decision that read that count, unless the run
    /// is stopping or `owes_barrier` (a barrier this source has not put out yet: the
    /// checkpoint cannot complete without it).
    pub fn await_decision(&self, ctx: &Context, owes_barrier: impl Fn() -> bool) {
        fence(Ordering::SeqCst);
        let seen = self.decisions.load(Ordering::SeqCst);
        // The next decision may have read the counts before this batch's; the one after it
        // did not.
        while self.decisions.load(Ordering::SeqCst) < seen + 2 && !ctx.stopping() && !owes_barrier()
        {
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
    }
}

impl Context {
    pub fn new(
        names: Vec<String>,
        sources: Vec<Option<SourceInfo>>,
        reports: Sender<Report>,
        quiet: bool,
        verbose: u8,
    ) -> Context {
        let stats = names.iter().map(|_| NodeStats::default()).collect();
        Context {
            names,
            stats,
            sources,
            stop: AtomicU8::new(StopReason::None as u8),
            failure: Mutex::new(None),
            reports,
            quiet,
            verbose,
            lockstep: Lockstep::from_failpoint(),
        }
    }

    pub fn stop_reason(&self) -> StopReason {
        match self.stop.load(Ordering::Relaxed) {
            1 => StopReason::Sigint,
            2 => StopReason::Sigterm,
            3 => StopReason::Failure,
            _ => StopReason::None,
        }
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed) != 0
    }

    pub fn request_stop(&self, why: StopReason) {
        let _ = self.stop.compare_exchange(
            StopReason::None as u8,
            why as u8,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
    }

    /// Records the first failure (later ones are consequences) and stops the run.
    pub fn fail(&self, node: usize, err: Error) {
        let err = if err
            .message
            .contains(&format!("node '{}'", self.names[node]))
        {
            err
        } else {
            err.context(format!("node '{}'", self.names[node]))
        };
        if let Ok(mut f) = self.failure.lock() {
            if f.is_none() {
                *f = Some(err);
            }
        }
        self.stop.store(StopReason::Failure as u8, Ordering::SeqCst);
    }

    /// A failure that belongs to no node (the coordinator, a checkpoint write).
    pub fn fail_run(&self, err: Error) {
        if let Ok(mut f) = self.failure.lock() {
            if f.is_none() {
                *f = Some(err);
            }
        }
        self.stop.store(StopReason::Failure as u8, Ordering::SeqCst);
    }

    pub fn take_failure(&self) -> Option<Error> {
        self.failure.lock().ok().and_then(|mut f| f.take())
    }

    /// One line on stderr: control characters in it (from file names) are escaped, a
    /// newline too, so no name can forge a line of its own.
    pub fn warn(&self, msg: impl AsRef<str>) {
        if !self.quiet {
            eprintln!("weir: warning: {}", crate::escape::text(msg.as_ref()));
        }
    }

    pub fn info(&self, msg: impl AsRef<str>) {
        if self.verbose > 0 && !self.quiet {
            eprintln!("weir: {}", crate::escape::text(msg.as_ref()));
        }
    }

    pub fn note_stall(&self, node: usize, d: std::time::Duration) {
        self.stats[node]
            .max_stall_us
            .fetch_max(d.as_micros() as u64, Ordering::Relaxed);
    }

    /// `file:line (byte offset N)` of a record, for messages.
    pub fn locate(&self, o: &Origin) -> (String, String) {
        let (src, file) = match self.sources.get(o.source as usize).and_then(|s| s.as_ref()) {
            Some(s) => (
                s.name.clone(),
                s.files
                    .read()
                    .ok()
                    .and_then(|f| f.get(o.file as usize).cloned())
                    .unwrap_or_else(|| "?".into()),
            ),
            None => ("?".into(), "?".into()),
        };
        (src, file)
    }

    pub fn on_error(&self, o: &Origin) -> OnError {
        self.sources
            .get(o.source as usize)
            .and_then(|s| s.as_ref())
            .map(|s| s.on_error)
            .unwrap_or(OnError::Fail)
    }
}
