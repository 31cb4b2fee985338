//! Hostile pipeline files, inputs and paths (issue 15): whatever a file, record or setting
//! holds, weir refuses it at `validate` with a message naming the node, or treats it as bad
//! input under the source's `on_error`, and never loses the run, its input or its state.

mod fuzz;
mod inputs;
mod limits;
mod state;
mod validate;

use crate::common::{spawn_at, Out, Spawn};

/// Runs the weir binary in `dir` under another program (`setpriv ...`, `/usr/bin/time ...`)
/// that takes the command to run as its last arguments; its exit code, stdout and stderr.
/// Killed (with the program, at least) and a failure after [`crate::common::TIMEOUT`].
fn weir_under(wrapper: &[&str], dir: &std::path::Path, args: &[&str]) -> Out {
    let mut bg = spawn_at(
        dir,
        "under",
        args,
        Spawn {
            under: wrapper,
            ..Spawn::default()
        },
    );
    let code = bg.wait();
    Out {
        code,
        stdout: bg.stdout_bytes(),
        stderr: bg.stderr_str(),
        elapsed: bg.started.elapsed(),
    }
}
