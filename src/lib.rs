//! weir: a single-binary stream processor with exactly-once checkpoints.
//!
//! The binary in `main.rs` is a thin shell over this library so that integration tests and
//! benchmarks can reach the same code paths.

/// A place where the tests can make weir die as abruptly as `kill -9` (abort: no unwinding, no
/// flushing), to prove recovery from each step of the checkpoint protocol. Active only with the
/// `failpoints` feature and a `FAILPOINTS=name=return` (or `name=2*off->return`) setting.
#[macro_export]
macro_rules! crash_point {
    ($name:expr) => {
        fail::fail_point!($name, |_| {
            eprintln!("weir: crash point {} reached: aborting", $name);
            std::process::abort()
        })
    };
}

pub mod alloc;
pub mod checkpoint;
pub mod cli;
pub mod commands;
pub mod error;
pub mod escape;
pub mod export;
pub mod expr;
pub mod pipeline;
pub mod runtime;
pub mod sinks;
pub mod sources;
pub mod time;
pub mod transforms;
pub mod value;

// The unit tests count memory as the binary does, so the memory limit is tested.
#[cfg(test)]
#[global_allocator]
static TEST_ALLOC: alloc::Counting<std::alloc::System> = alloc::Counting(std::alloc::System);
