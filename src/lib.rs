//! weir: a single-binary stream processor with exactly-once checkpoints.
//!
//! The binary in `main.rs` is a thin shell over this library so that integration tests and
//! benchmarks can reach the same code paths.

pub mod checkpoint;
pub mod cli;
pub mod commands;
pub mod error;
pub mod expr;
pub mod pipeline;
pub mod runtime;
pub mod sinks;
pub mod sources;
pub mod time;
pub mod transforms;
pub mod value;
