//! weir: a single-binary stream processor with exactly-once checkpoints.
//!
//! The binary in `main.rs` is a thin shell over this library so that integration tests and
//! benchmarks can reach the same code paths.

pub mod value;
