//! Integration tests: the real `weir` binary on temporary directories, outputs checked byte for
//! byte against values computed here, independently of weir (except where an interrupted run is
//! compared with an uninterrupted one). One binary, one module per topic; every module launches
//! weir through `common` (which puts a timeout on every run).

mod common;
mod crash;
mod edits;
mod expr_limits;
mod flink;
mod hostile;
mod jq_conformance;
mod log_formats;
mod logrotate;
mod logs;
mod nested_json;
mod parallel;
mod real_logs;
mod shell;
mod sinks;
mod windows;

mod bad_input;
mod examples;
mod exit_codes;
mod files;
mod formats;
mod lifecycle;
mod parse_workers;
mod signals;
mod stdio;
mod transforms;
mod validate;
