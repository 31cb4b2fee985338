//! One error type for the whole program and the one place where exit codes are decided.
//!
//! Scripts depend on the exit codes (SPEC section 1), so no other module calls
//! `std::process::exit`; they return an `Error` whose kind maps to a code here, and `main`
//! exits with it. The one exit that cannot wait for a return to `main` is here too
//! (`exit_at_once`).

use std::fmt;

/// How a run ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Input ended (or paused) and the final checkpoint is written.
    Finished,
    /// Stopped by a signal after writing a final checkpoint.
    Interrupted(Signal),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Int,
    Term,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The pipeline failed at run time after its restart strategy gave up (exit 1).
    Runtime,
    /// Usage error or invalid pipeline file; nothing was run (exit 2).
    Usage,
    /// A bad input record under `on_error = "fail"` (exit 3).
    BadInput,
    /// The state directory is locked by another weir (exit 75).
    Locked,
}

#[derive(Debug)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
        }
    }
    pub fn usage(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Usage, message)
    }
    pub fn runtime(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Runtime, message)
    }
    pub fn bad_input(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::BadInput, message)
    }
    pub fn locked(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Locked, message)
    }
    /// Prefixes the message with where it happened (a node, a file).
    pub fn context(mut self, what: impl fmt::Display) -> Error {
        self.message = format!("{what}: {}", self.message);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<anyhow::Error> for Error {
    fn from(e: anyhow::Error) -> Error {
        match e.downcast::<Error>() {
            Ok(e) => e,
            Err(e) => Error::runtime(format!("{e:#}")),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The exit-code table of SPEC section 1.
pub fn exit_code(result: &Result<Outcome>) -> i32 {
    match result {
        Ok(Outcome::Finished) => 0,
        Ok(Outcome::Interrupted(Signal::Int)) => 130,
        Ok(Outcome::Interrupted(Signal::Term)) => 143,
        Err(e) => match e.kind {
            ErrorKind::Runtime => 1,
            ErrorKind::Usage => 2,
            ErrorKind::BadInput => 3,
            ErrorKind::Locked => 75,
        },
    }
}

/// A second signal ends the process at once, whatever its threads are doing (the coordinator
/// may be in the middle of writing a large final checkpoint): nothing is unwound, and the
/// last complete checkpoint stands. The code is that of the signal that ended it (130 for
/// SIGINT, 143 for SIGTERM), as for a run that stopped after its final checkpoint.
pub fn exit_at_once(signal: Signal) -> ! {
    std::process::exit(exit_code(&Ok(Outcome::Interrupted(signal))))
}
