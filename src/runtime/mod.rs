//! Running a pipeline: one thread per node, bounded channels between them, a checkpoint
//! coordinator beside them, and one place that decides how the run ended.

pub mod align;
mod build;
pub mod context;
mod coordinator;
pub mod edits;
pub mod merge;
pub mod message;
pub mod notices;
pub mod plan;
pub mod progress;
pub mod run;
pub mod settings;
pub mod stage;
pub mod stats;

pub use message::{Batch, EndKind, Msg, Origin, Record};
