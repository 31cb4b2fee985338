//! Hostile pipeline files, inputs and paths (issue 15): whatever a file, record or setting
//! holds, weir refuses it at `validate` with a message naming the node, or treats it as bad
//! input under the source's `on_error`, and never loses the run, its input or its state.

mod fuzz;
mod inputs;
mod limits;
mod state;
mod validate;

/// Runs the weir binary in `dir` under another program (`setpriv ...`, `/usr/bin/time ...`)
/// that takes the command to run as its last arguments.
fn weir_under(wrapper: &[&str], dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(wrapper[0])
        .args(&wrapper[1..])
        .arg(crate::common::weir_bin())
        .args(args)
        .current_dir(dir)
        .env("RUST_BACKTRACE", "0")
        .env_remove("FAILPOINTS")
        .output()
        .expect("the wrapped weir could be started")
}
