//! Checkpoints: the file format (versioned, CRC32), the store (list, pick the newest valid one,
//! keep `retain`, lock), and atomic writes.

pub mod atomic;
pub mod format;
pub mod store;
