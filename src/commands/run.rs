//! `weir run` and `weir resume`: options from flags, then the run; after a stop on a signal,
//! the command that continues it.

use super::{at_end, oneoff, out};
use crate::cli::{ResumeArgs, RunArgs};
use crate::error::{Error, Outcome, Result};
use crate::pipeline;
use crate::runtime::run::{self, Options};
use std::path::Path;

pub fn run(a: RunArgs, mut opts: Options, quiet: bool) -> Result<Outcome> {
    let spec = pipeline::load(&a.pipeline, &a.set)?;
    opts.progress = Some(a.flags.progress);
    opts.stats = a.flags.stats;
    opts.fresh = a.fresh;
    opts.state = a.state.clone();
    opts.at_end = at_end(a.at_end);
    let r = run::execute(&spec, &opts);
    say_resume(&r, &spec, &a.pipeline, a.state.as_deref(), &a.set, quiet);
    r
}

pub fn resume(a: ResumeArgs, mut opts: Options, quiet: bool) -> Result<Outcome> {
    let spec = pipeline::load(&a.pipeline, &a.set)?;
    opts.progress = Some(a.flags.progress);
    opts.stats = a.flags.stats;
    if a.plan {
        let (text, refusal) =
            crate::runtime::edits::plan_report(&spec, a.state.as_ref(), a.from, &a.drop_state)?;
        out(&text)?;
        return match refusal {
            Some(why) => Err(Error::usage(why)),
            None => Ok(Outcome::Finished),
        };
    }
    opts.drop_state = a.drop_state;
    opts.resume = true;
    opts.or_start = a.or_start;
    opts.from = a.from;
    opts.state = a.state.clone();
    opts.at_end = at_end(a.at_end);
    let r = run::execute(&spec, &opts);
    say_resume(&r, &spec, &a.pipeline, a.state.as_deref(), &a.set, quiet);
    r
}

/// After Ctrl-C (or SIGTERM), the exact command that continues the run.
fn say_resume(
    r: &Result<Outcome>,
    spec: &pipeline::PipelineSpec,
    file: &Path,
    state: Option<&Path>,
    set: &[String],
    quiet: bool,
) {
    if quiet || !matches!(r, Ok(Outcome::Interrupted(_))) {
        return;
    }
    if spec.checkpoint.every.as_deref() == Some("off") {
        return;
    }
    let mut cmd = vec!["weir".to_string(), "resume".to_string()];
    cmd.push(oneoff::shell_word(&file.to_string_lossy()));
    if let Some(d) = state {
        cmd.push("--state".into());
        cmd.push(oneoff::shell_word(&d.to_string_lossy()));
    }
    for x in set {
        cmd.push("--set".into());
        cmd.push(oneoff::shell_word(x));
    }
    eprintln!(
        "weir: stopped after a final checkpoint; continue with: {}",
        cmd.join(" ")
    );
}
