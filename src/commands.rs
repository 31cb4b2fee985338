//! What each subcommand does, between parsed flags and the run, one file per subcommand (or
//! per pair that shares its work): `run` (run, resume), `validate` (validate, explain,
//! export), `checkpoints` (checkpoints, inspect), `oneoff` (do), `testing` (test), `shell`
//! (completions, man). Each returns an outcome; `main` decides the exit code.

mod checkpoints;
mod oneoff;
mod run;
mod shell;
mod testing;
mod validate;

use crate::cli::{AtEndArg, Cli, Command};
use crate::error::{Error, Outcome, Result};
use crate::pipeline::{self, spec::AtEnd};
use crate::runtime::run::Options;
use std::io::Write;

fn at_end(a: Option<AtEndArg>) -> Option<AtEnd> {
    a.map(|a| match a {
        AtEndArg::Finish => AtEnd::Finish,
        AtEndArg::Pause => AtEnd::Pause,
        AtEndArg::Follow => AtEnd::Follow,
    })
}

pub(crate) fn out(text: &str) -> Result<Outcome> {
    let mut o = std::io::stdout().lock();
    match o.write_all(text.as_bytes()).and_then(|_| o.flush()) {
        Ok(()) => Ok(Outcome::Finished),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(Outcome::Finished),
        Err(e) => Err(Error::runtime(format!("writing stdout: {e}"))),
    }
}

pub fn dispatch(cli: Cli) -> Result<Outcome> {
    let c = &cli.common;
    let mut opts = Options {
        quiet: c.quiet,
        verbose: c.verbose,
        ..Default::default()
    };
    match cli.command {
        Command::Run(a) => run::run(a, opts, c.quiet),
        Command::Resume(a) => run::resume(a, opts, c.quiet),
        Command::Validate { pipeline, set } => validate::validate(&pipeline, &set, c.quiet),
        Command::Explain { pipeline, dot } => validate::explain(&pipeline, dot),
        Command::Export(crate::cli::ExportTarget::Flink { pipeline, set }) => {
            validate::export_flink(&pipeline, &set)
        }
        Command::Checkpoints { target } => checkpoints::checkpoints(&target),
        Command::Inspect { target, id } => checkpoints::inspect(&target, id),
        Command::Do(a) => {
            opts.progress = Some(a.flags.progress);
            opts.stats = a.flags.stats.clone();
            oneoff::execute(&a, opts)
        }
        Command::Test { pipeline } => {
            let spec = pipeline::load(&pipeline, &[])?;
            testing::execute(&spec, c.quiet)
        }
        Command::Completions { shell } => shell::completions(shell),
        Command::Man => shell::man(),
    }
}
