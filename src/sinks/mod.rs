//! Sinks: where records leave weir. Each sink reports a committed position at every checkpoint
//! and is truncated back to it on resume, which is what makes file output exactly-once.

pub mod file;
pub mod spool;
