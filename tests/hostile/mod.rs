//! Hostile pipeline files, inputs and paths (issue 15): whatever a file, record or setting
//! holds, weir refuses it at `validate` with a message naming the node, or treats it as bad
//! input under the source's `on_error`, and never loses the run, its input or its state.

mod fuzz;
mod inputs;
mod limits;
mod validate;
