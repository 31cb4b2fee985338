//! What each subcommand does, between parsed flags and the run: loading the pipeline,
//! printing graphs and checkpoints. Returns an outcome; `main` decides the exit code.

mod oneoff;
mod testing;

use crate::checkpoint::store::Store;
use crate::cli::{AtEndArg, Cli, Command, ShellArg};
use crate::error::{Error, Outcome, Result};
use crate::pipeline::{self, spec::AtEnd};
use crate::runtime::run::{self, checkpoint_settings, Options};
use clap::CommandFactory;
use std::io::Write;
use std::path::{Path, PathBuf};

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
        Command::Run(a) => {
            let spec = pipeline::load(&a.pipeline, &a.set)?;
            opts.progress = Some(a.flags.progress);
            opts.stats = a.flags.stats;
            opts.fresh = a.fresh;
            opts.state = a.state.clone();
            opts.at_end = at_end(a.at_end);
            let r = run::execute(&spec, &opts);
            say_resume(&r, &spec, &a.pipeline, a.state.as_deref(), &a.set, c.quiet);
            r
        }
        Command::Resume(a) => {
            let spec = pipeline::load(&a.pipeline, &a.set)?;
            opts.progress = Some(a.flags.progress);
            opts.stats = a.flags.stats;
            if a.plan {
                let (text, refusal) = crate::runtime::edits::plan_report(
                    &spec,
                    a.state.as_ref(),
                    a.from,
                    &a.drop_state,
                )?;
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
            say_resume(&r, &spec, &a.pipeline, a.state.as_deref(), &a.set, c.quiet);
            r
        }
        Command::Validate { pipeline, set } => {
            let spec = pipeline::load(&pipeline, &set)?;
            let g = pipeline::validate::check(&spec)?.graph;
            if !c.quiet {
                for n in pipeline::validate::notes(&spec) {
                    eprintln!("weir: note: {n}");
                }
                eprintln!(
                    "{}: ok: pipeline '{}', {} nodes, {} edges",
                    pipeline.display(),
                    spec.name,
                    g.nodes.len(),
                    g.edges.len()
                );
            }
            Ok(Outcome::Finished)
        }
        Command::Explain { pipeline, dot } => {
            let spec = pipeline::load(&pipeline, &[])?;
            let checked = pipeline::validate::check(&spec)?;
            let g = &checked.graph;
            let notes = crate::runtime::plan::Plan::new(&spec, &checked).worker_notes(&spec, g);
            out(&pipeline::graph::explain(&spec, g, dot, &notes))
        }
        Command::Export(crate::cli::ExportTarget::Flink { pipeline, set }) => {
            let spec = pipeline::load(&pipeline, &set)?;
            let g = pipeline::validate::check(&spec)?.graph;
            out(&crate::export::flink::export(&spec, &g)?)
        }
        Command::Checkpoints { target } => {
            let dir = state_dir(&target)?;
            let (text, newest_invalid) = list_checkpoints(&dir);
            out(&text)?;
            // The list is printed either way; the exit code tells a script that `resume`
            // would not continue from the newest checkpoint (exit 1, see README).
            match newest_invalid {
                Some(m) => Err(Error::runtime(m)),
                None => Ok(Outcome::Finished),
            }
        }
        Command::Inspect { target, id } => {
            let dir = state_dir(&target)?;
            out(&inspect(&dir, id)?)
        }
        Command::Do(a) => {
            opts.progress = Some(a.flags.progress);
            opts.stats = a.flags.stats.clone();
            oneoff::execute(&a, opts)
        }
        Command::Test { pipeline } => {
            let spec = pipeline::load(&pipeline, &[])?;
            testing::execute(&spec, c.quiet)
        }
        Command::Completions { shell } => {
            let shell = match shell {
                ShellArg::Bash => clap_complete::Shell::Bash,
                ShellArg::Zsh => clap_complete::Shell::Zsh,
                ShellArg::Fish => clap_complete::Shell::Fish,
            };
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "weir", &mut buf);
            out(&String::from_utf8_lossy(&buf))
        }
        Command::Man => {
            let mut buf = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut buf)
                .map_err(|e| Error::runtime(format!("cannot render the manual page: {e}")))?;
            out(&String::from_utf8_lossy(&buf))
        }
    }
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

/// A pipeline file names its state directory; anything else is the directory itself.
fn state_dir(target: &Path) -> Result<PathBuf> {
    if target.is_dir() {
        return Ok(target.to_path_buf());
    }
    if !target.exists() {
        return Err(Error::usage(format!("{} does not exist", target.display())));
    }
    let spec = pipeline::load(target, &[])?;
    Ok(checkpoint_settings(&spec, None)?.dir)
}

/// The listing, and why the newest checkpoint is invalid when it is.
fn list_checkpoints(dir: &Path) -> (String, Option<String>) {
    let store = Store::open_read(dir);
    let list = store.list();
    if list.is_empty() {
        return (format!("no checkpoints in {}\n", dir.display()), None);
    }
    let newest_invalid = match &list[0].checkpoint {
        Ok(_) => None,
        Err(why) => {
            let fallback = list.iter().find(|e| e.checkpoint.is_ok());
            Some(format!(
                "the newest checkpoint, {}, is invalid ({why}); {}",
                list[0].id,
                match fallback {
                    Some(e) => format!("`weir resume` would continue from checkpoint {}", e.id),
                    None => "no checkpoint is valid: `weir resume` has nothing to continue from"
                        .to_string(),
                }
            ))
        }
    };
    let mut s = format!(
        "{:>6}  {:<24}  {:>12}  {:<8}  offsets\n",
        "id", "time", "state bytes", "status"
    );
    for e in list {
        match &e.checkpoint {
            Ok(c) => {
                let time = jiff::Timestamp::from_millisecond(c.created_ms)
                    .map(|t| format!("{t:.0}"))
                    .unwrap_or_default();
                let status = if c.finished {
                    "final"
                } else if c.ended {
                    "paused"
                } else {
                    "valid"
                };
                s.push_str(&format!(
                    "{:>6}  {:<24}  {:>12}  {:<8}  {}\n",
                    e.id,
                    time,
                    e.bytes,
                    status,
                    offsets_summary(c)
                ));
            }
            Err(why) => s.push_str(&format!(
                "{:>6}  {:<24}  {:>12}  INVALID   {why}\n",
                e.id, "", e.bytes
            )),
        }
    }
    (s, newest_invalid)
}

/// `source: file@offset, ...` from the source states in a checkpoint.
fn offsets_summary(c: &crate::checkpoint::format::Checkpoint) -> String {
    let mut parts = Vec::new();
    for n in &c.nodes {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(n.state.get()) else {
            continue;
        };
        let Some(src) = v.get("source") else { continue };
        if let Some(files) = src.get("files").and_then(|f| f.as_array()) {
            let f: Vec<String> = files
                .iter()
                .map(|f| {
                    let path = f.get("path").and_then(|p| p.as_str()).unwrap_or("?");
                    let name = Path::new(path)
                        .file_name()
                        .map(|x| x.to_string_lossy().into_owned())
                        .unwrap_or_else(|| path.to_string());
                    format!(
                        "{name}@{}",
                        f.get("offset").and_then(|o| o.as_u64()).unwrap_or(0)
                    )
                })
                .collect();
            parts.push(format!("{}: {}", n.node, f.join(" ")));
        }
        if let Some(st) = src.get("stdin").filter(|x| !x.is_null()) {
            parts.push(format!(
                "{}: stdin@{}",
                n.node,
                st.get("consumed").and_then(|o| o.as_u64()).unwrap_or(0)
            ));
        }
        if let Some(next) = src.get("next").and_then(|x| x.as_u64()) {
            parts.push(format!("{}: seq {next}", n.node));
        }
    }
    parts.join("; ")
}

fn inspect(dir: &Path, id: Option<u64>) -> Result<String> {
    let store = Store::open_read(dir);
    let c = store
        .pick(id, &|m| {
            eprintln!("weir: warning: {}", crate::escape::text(m))
        })?
        .ok_or_else(|| Error::usage(format!("no checkpoints in {}", dir.display())))?;
    let mut s = serde_json::to_string_pretty(&c)
        .map_err(|e| Error::runtime(format!("cannot print the checkpoint: {e}")))?;
    s.push('\n');
    Ok(s)
}
