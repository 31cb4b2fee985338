//! Running a pipeline end to end: state directory and resume decisions, the restart loop,
//! one thread per node (built by `build`), the checkpoint coordinator (`coordinator`) on the
//! calling thread, signals, `--stats`, and the outcome (finished, interrupted, failed) that
//! `main` turns into an exit code.

use super::build::{self, Attempt, Built};
use super::context::{Context, Report, SourceInfo, StopReason};
use super::coordinator::Coordinator;
pub use super::settings::{checkpoint_settings, pipeline_hash, CheckpointSettings, Options};
use super::stage::run_stage;
pub use super::stats::RunStats;
use crate::checkpoint::format::Checkpoint;
use crate::checkpoint::store::Store;
use crate::cli::Progress;
use crate::error::{Error, ErrorKind, Outcome, Result, Signal};
use crate::pipeline::graph::{Graph, Role};
use crate::pipeline::spec::{parse_duration_ms, sink_format, Delivery, NodeConfig};
use crate::pipeline::{Kind, PipelineSpec};
use crate::sinks::file::FileSink;
use crate::sources::Cut;
use crossbeam_channel::{unbounded, Sender};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `weir run` / `weir resume`.
pub fn execute(spec: &PipelineSpec, opts: &Options) -> Result<Outcome> {
    let checked = crate::pipeline::validate::check(spec)?;
    let graph = &checked.graph;
    let ck = checkpoint_settings(spec, opts.state.as_ref())?;
    let hash = pipeline_hash(spec);
    let configs = super::edits::Stamp::new(spec, graph, &opts.drop_state);
    let warn = |m: &str| {
        if !opts.quiet {
            eprintln!("weir: warning: {}", crate::escape::text(m));
        }
    };

    let store = if ck.enabled {
        Some(Store::open_locked(&ck.dir)?)
    } else {
        None
    };
    let mut restored: Option<Checkpoint> = None;
    if opts.resume {
        let Some(store) = &store else {
            return Err(Error::usage(
                "checkpoints are off for this pipeline ([checkpoint] every = \"off\"): there is nothing to resume",
            ));
        };
        match store.pick(opts.from, &warn)? {
            Some(mut c) => {
                if c.finished {
                    // A crash between the final checkpoint and releasing spooled stdout leaves
                    // output to release: do that, and nothing else.
                    release_spools(spec, &c, store)?;
                    if !opts.quiet {
                        eprintln!(
                            "weir: the run already finished (checkpoint {}); nothing to resume",
                            c.id
                        );
                    }
                    return Ok(Outcome::Finished);
                }
                admit(spec, graph, &mut c, &opts.drop_state, opts.quiet)?;
                if opts.verbose > 0 && !opts.quiet {
                    eprintln!("weir: resuming from checkpoint {}", c.id);
                }
                if opts.from.is_some() {
                    if let Some(dest) = store.retire_newer(c.id)? {
                        if !opts.quiet {
                            eprintln!(
                                "weir: moved the checkpoints newer than {} aside to {}",
                                c.id,
                                dest.display()
                            );
                        }
                    }
                }
                restored = Some(c);
            }
            None if opts.or_start => {}
            None => {
                return Err(Error::usage(format!(
                    "no checkpoint to resume in {}; start with `weir run`, or use `weir resume --or-start`",
                    ck.dir.display()
                )))
            }
        }
    }
    // `--fresh` moves the old state aside only once the new run has started (see `run_once`):
    // a run that cannot start leaves the state as it was.
    let mut fresh_pending = false;
    if let (false, Some(store)) = (opts.resume, &store) {
        if store.has_checkpoints() {
            if !opts.fresh {
                return Err(Error::usage(format!(
                    "the state directory {} already holds checkpoints; continue with `weir resume`, or start over with `weir run --fresh` (which moves the old state aside)",
                    ck.dir.display()
                )));
            }
            fresh_pending = true;
        }
        crate::sinks::new_lineage(spec, &store.dir)?;
    }

    let mut attempts_left = spec.restart.attempts.unwrap_or(0);
    let mut delay_ms = match &spec.restart.delay {
        Some(d) => parse_duration_ms(d).map_err(Error::usage)?,
        None => 1000,
    } as f64;
    let backoff = spec.restart.backoff.unwrap_or(2.0).max(1.0);
    let stats_start = Instant::now();
    let mut all_stats = Vec::new();
    let plan = super::plan::Plan::new(spec, &checked);
    loop {
        let attempt = Attempt {
            spec,
            g: graph,
            transforms: &checked.transforms,
            plan: &plan,
            ck: &ck,
            hash: &hash,
            configs: &configs,
            store: store.as_ref(),
            restored: restored.as_ref(),
            opts,
        };
        let (result, run) = run_once(&attempt, &mut fresh_pending);
        all_stats.push(run);
        match result {
            Err(e) if e.kind == ErrorKind::Runtime && attempts_left > 0 => {
                attempts_left -= 1;
                warn(&format!(
                    "{e}; restarting from the last checkpoint in {:.1}s ({} attempts left)",
                    delay_ms / 1000.0,
                    attempts_left
                ));
                std::thread::sleep(Duration::from_millis(delay_ms as u64));
                delay_ms = crate::pipeline::safety::next_restart_delay(delay_ms, backoff);
                restored = match &store {
                    Some(s) if !fresh_pending => s.pick(None, &warn)?,
                    _ => None,
                };
                if let Some(c) = &mut restored {
                    // A checkpoint of this run fits the file: nothing is dropped again.
                    admit(spec, graph, c, &opts.drop_state, true)?;
                }
                if let (Some(c), Some(st)) = (&restored, &store) {
                    if c.finished {
                        // What the failed attempt owed its sinks after the final checkpoint.
                        release_spools(spec, c, st)?;
                    }
                }
                if restored.as_ref().is_some_and(|c| c.finished) {
                    write_stats(opts, spec, &ck, &all_stats, stats_start, "finished");
                    return Ok(Outcome::Finished);
                }
            }
            other => {
                let label = match &other {
                    Ok(Outcome::Finished) => "finished",
                    Ok(Outcome::Interrupted(_)) => "interrupted",
                    Err(_) => "failed",
                };
                write_stats(opts, spec, &ck, &all_stats, stats_start, label);
                if other.is_ok() && !opts.quiet {
                    for m in super::notices::late_warnings(graph, &all_stats) {
                        eprintln!("weir: warning: {m}");
                    }
                }
                if let Err(e) = &other {
                    if let (ErrorKind::Runtime, Some(store)) = (e.kind, &store) {
                        // Only a checkpoint that is there and valid makes the hint true.
                        let hint = match store.pick(None, &|_| {}) {
                            Ok(Some(c)) => format!(
                                "checkpoint {} stands; `weir resume` continues from it",
                                c.id
                            ),
                            _ => "no checkpoint was completed; `weir run` (or `weir resume --or-start`) starts from the beginning".to_string(),
                        };
                        return Err(Error::runtime(format!("{e}\nweir: {hint}")));
                    }
                }
                return other;
            }
        }
    }
}

/// Applies the resume plan of an edited pipeline to checkpoint `c` (keeps only the states it
/// restores), or refuses with exit 2 naming each node that cannot resume.
fn admit(
    spec: &PipelineSpec,
    g: &Graph,
    c: &mut Checkpoint,
    drops: &[String],
    quiet: bool,
) -> Result<()> {
    let plan = super::edits::plan(spec, g, c, drops)?;
    if let Some(why) = plan.refusal() {
        return Err(Error::usage(why));
    }
    if !quiet {
        for w in &plan.warnings {
            eprintln!("weir: warning: {w}");
        }
        for l in &plan.lines {
            if l.verdict == super::edits::Verdict::Dropped {
                eprintln!("weir: node '{}': {}", l.node, l.note);
            }
        }
    }
    plan.apply(c);
    Ok(())
}

/// Opens every exactly-once stdout sink at the checkpoint, which releases whatever the
/// checkpoint covers and stdout has not had yet.
fn release_spools(spec: &PipelineSpec, c: &Checkpoint, store: &Store) -> Result<()> {
    crate::sinks::settle(spec, c, &store.dir)?;
    for n in &spec.nodes {
        let NodeConfig::FileSink(s) = &n.config else {
            continue;
        };
        if s.path != "-" || s.delivery != Some(Delivery::ExactlyOnce) {
            continue;
        }
        let st = build::sink_state(c.state(&n.name), &n.name)?;
        if st.is_some() {
            FileSink::open(
                &n.name,
                PathBuf::from("-"),
                sink_format(&s.path, s.format),
                Delivery::ExactlyOnce,
                Some(store.dir.clone()),
                st,
            )?;
        }
    }
    Ok(())
}

fn write_stats(
    opts: &Options,
    spec: &PipelineSpec,
    ck: &CheckpointSettings,
    runs: &[RunStats],
    start: Instant,
    outcome: &str,
) {
    let Some(path) = &opts.stats else { return };
    let mut nodes = Vec::new();
    if let Some(last) = runs.last() {
        for i in 0..last.names.len() {
            let sum = |f: &dyn Fn(&RunStats) -> u64| -> u64 { runs.iter().map(f).sum() };
            nodes.push(serde_json::json!({
                "node": last.names[i],
                "kind": last.kinds[i],
                "records_in": sum(&|r| r.records_in.get(i).copied().unwrap_or(0)),
                "records_out": sum(&|r| r.records_out.get(i).copied().unwrap_or(0)),
                "errors": sum(&|r| r.errors.get(i).copied().unwrap_or(0)),
                "late": sum(&|r| r.late.get(i).copied().unwrap_or(0)),
                "max_checkpoint_stall_ms": runs
                    .iter()
                    .map(|r| r.max_stall_us.get(i).copied().unwrap_or(0))
                    .max()
                    .unwrap_or(0) as f64 / 1000.0,
            }));
        }
    }
    for (name, v) in crate::sinks::committed_positions(spec, &ck.dir) {
        if let Some(n) = nodes.iter_mut().find(|n| n["node"] == name.as_str()) {
            n["committed"] = v;
        }
    }
    let cks: Vec<_> = runs
        .iter()
        .flat_map(|r| r.checkpoints.iter())
        .map(|(id, ms, bytes)| serde_json::json!({"id": id, "duration_ms": ms, "bytes": bytes}))
        .collect();
    let v = serde_json::json!({
        "pipeline": spec.name,
        "outcome": outcome,
        "attempts": runs.len(),
        "wall_time_s": start.elapsed().as_secs_f64(),
        "nodes": nodes,
        "checkpoints_taken": cks.len(),
        "checkpoints": cks,
    });
    let text = serde_json::to_string_pretty(&v).unwrap_or_default() + "\n";
    if let Err(e) = std::fs::write(path, text) {
        eprintln!(
            "weir: warning: cannot write stats to {}: {e}",
            path.display()
        );
    }
}

/// Sends `Exited` when a stage thread ends, even by a panic, so the coordinator never waits
/// for a thread that is gone.
struct ExitGuard {
    node: usize,
    tx: Sender<Report>,
}

impl Drop for ExitGuard {
    fn drop(&mut self) {
        let _ = self.tx.send(Report::Exited { node: self.node });
    }
}

/// One attempt: builds every node, runs each on its thread and the coordinator on this one,
/// and says how the attempt ended, with its figures.
fn run_once(a: &Attempt, fresh_pending: &mut bool) -> (Result<Outcome>, RunStats) {
    let (spec, g, opts) = (a.spec, a.g, a.opts);
    let n = g.nodes.len();
    let (reports_tx, reports_rx) = unbounded::<Report>();
    let names: Vec<String> = g.nodes.iter().map(|x| x.name.clone()).collect();
    let sources: Vec<Option<SourceInfo>> = g
        .nodes
        .iter()
        .map(|x| {
            (x.kind == Kind::Source).then(|| SourceInfo {
                name: x.name.clone(),
                on_error: match &x.role {
                    Role::Spec(i) => match &spec.nodes[*i].config {
                        NodeConfig::FileSource(c) => c.on_error,
                        NodeConfig::Generate(c) => c.on_error,
                        _ => Default::default(),
                    },
                    _ => Default::default(),
                },
                files: Default::default(),
            })
        })
        .collect();
    let ctx = Arc::new(Context::new(
        names.clone(),
        sources,
        reports_tx.clone(),
        opts.quiet,
        opts.verbose,
    ));
    let stats_of = |ctx: &Context, cks: Vec<(u64, f64, u64)>| RunStats {
        names: names.clone(),
        kinds: g
            .nodes
            .iter()
            .map(|x| match x.kind {
                Kind::Source => "source",
                Kind::Transform => "transform",
                Kind::Sink => "sink",
            })
            .collect(),
        records_in: counter(ctx, |s| &s.records_in),
        records_out: counter(ctx, |s| &s.records_out),
        errors: counter(ctx, |s| &s.errors),
        late: counter(ctx, |s| &s.late),
        max_stall_us: counter(ctx, |s| &s.max_stall_us),
        checkpoints: cks,
    };
    let cut = Arc::new(Cut::default());
    let nodes = match build::build(a, &ctx, &cut, fresh_pending) {
        Ok(b) => b,
        Err(e) => return (Err(e), stats_of(&ctx, Vec::new())),
    };

    let _signals = install_signals(ctx.clone());

    let mut handles = Vec::with_capacity(n);
    for (i, b) in nodes.built.into_iter().enumerate() {
        let ctx2 = ctx.clone();
        let guard = ExitGuard {
            node: i,
            tx: reports_tx.clone(),
        };
        let h = std::thread::Builder::new()
            .name(format!("weir:{}", names[i]))
            .spawn(move || {
                let _guard = guard;
                match b {
                    Built::Source(d) => d.run(ctx2),
                    Built::Stage(op, inputs, out, control) => {
                        run_stage(i, op, inputs, out, control, ctx2)
                    }
                }
            });
        match h {
            Ok(h) => handles.push(h),
            Err(e) => {
                ctx.fail(i, Error::runtime(format!("cannot start a thread: {e}")));
            }
        }
    }
    drop(reports_tx);

    let progress = super::progress::Progress::new(
        opts.progress.unwrap_or(Progress::Auto),
        opts.quiet,
        &ctx,
        &nodes.sources,
    );
    let mut coord = Coordinator::new(a, cut, nodes.sources, nodes.commits, progress);
    coord.run(&reports_rx, &ctx);
    for h in handles {
        if h.join().is_err() {
            ctx.fail_run(Error::runtime("internal error: a stage thread panicked"));
        }
    }
    if let Some(p) = &coord.progress {
        p.finish(&ctx, &coord.sources, coord.taken.len());
    }
    let cks = std::mem::take(&mut coord.taken);
    let stats = stats_of(&ctx, cks);
    if let Some(e) = ctx.take_failure() {
        return (Err(e), stats);
    }
    let outcome = match ctx.stop_reason() {
        StopReason::Sigint => Outcome::Interrupted(Signal::Int),
        StopReason::Sigterm => Outcome::Interrupted(Signal::Term),
        _ => Outcome::Finished,
    };
    (Ok(outcome), stats)
}

/// One counter of every node.
fn counter(
    ctx: &Context,
    f: impl Fn(&crate::runtime::context::NodeStats) -> &std::sync::atomic::AtomicU64,
) -> Vec<u64> {
    ctx.stats
        .iter()
        .map(|s| f(s).load(Ordering::Relaxed))
        .collect()
}

/// Signals: the first SIGINT or SIGTERM asks for a clean stop with a final checkpoint; a
/// second ends the process at once (`error::exit_at_once`), the last complete checkpoint
/// standing.
fn install_signals(ctx: Arc<Context>) -> Option<std::thread::JoinHandle<()>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]).ok()?;
    std::thread::Builder::new()
        .name("weir:signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                let (reason, which) = if sig == SIGINT {
                    (StopReason::Sigint, Signal::Int)
                } else {
                    (StopReason::Sigterm, Signal::Term)
                };
                if ctx.stopping() && ctx.stop_reason() != StopReason::Failure {
                    // Second signal: leave now; the last complete checkpoint still stands.
                    eprintln!("weir: stopping at once, without a final checkpoint");
                    crate::error::exit_at_once(which);
                }
                if !ctx.quiet {
                    eprintln!("weir: stopping: taking a final checkpoint (send the signal again to exit at once)");
                }
                ctx.request_stop(reason);
            }
        })
        .ok()
}
