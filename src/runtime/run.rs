//! Running a pipeline end to end: state directory and resume decisions, building every node,
//! one thread per node, the checkpoint coordinator on the calling thread, the restart strategy,
//! and the outcome (finished, interrupted, failed) that `main` turns into an exit code.

use super::context::{Context, Report, SourceInfo, StopReason};
use super::message::Msg;
pub use super::settings::{checkpoint_settings, pipeline_hash, CheckpointSettings};
use super::stage::{run_stage, Operator, Output};
pub use super::stats::RunStats;
use crate::checkpoint::format::Checkpoint;
use crate::checkpoint::store::Store;
use crate::cli::Progress;
use crate::error::{Error, ErrorKind, Outcome, Result, Signal};
use crate::pipeline::graph::{Graph, Port, Role, CHANNEL_CAPACITY};
use crate::pipeline::spec::{parse_duration_ms, AtEnd, Delivery, Format, NodeConfig};
use crate::pipeline::spec::{sink_format, source_format};
use crate::pipeline::{Kind, PipelineSpec};
use crate::sinks::file::{FileSink, SinkState};
use crate::sources::file::{
    FileSource, FileSourceSettings, FileSourceState, DEFAULT_FINGERPRINT_BYTES,
};
use crate::sources::generate::Generate;
use crate::sources::{split_state, Cut, Source, SourceDriver};
use crossbeam_channel::{bounded, unbounded, Receiver, RecvTimeoutError, Sender};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub resume: bool,
    pub fresh: bool,
    pub or_start: bool,
    pub from: Option<u64>,
    pub state: Option<PathBuf>,
    pub at_end: Option<AtEnd>,
    pub quiet: bool,
    pub verbose: u8,
    pub progress: Option<Progress>,
    pub stats: Option<PathBuf>,
    /// `resume --drop-state NODE`: nodes that start empty (see `runtime::edits`).
    pub drop_state: Vec<String>,
}

/// `weir run` / `weir resume`.
pub fn execute(spec: &PipelineSpec, opts: &Options) -> Result<Outcome> {
    let graph = crate::pipeline::validate::check(spec)?;
    let ck = checkpoint_settings(spec, opts.state.as_ref())?;
    let hash = pipeline_hash(spec);
    let configs = super::edits::Stamp::new(spec, &graph, &opts.drop_state);
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
                admit(spec, &graph, &mut c, &opts.drop_state, opts.quiet)?;
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
    loop {
        let (result, run) = run_once(
            spec,
            &graph,
            &ck,
            store.as_ref(),
            restored.as_ref(),
            &hash,
            &configs,
            opts,
            &mut fresh_pending,
        );
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
                    admit(spec, &graph, c, &opts.drop_state, true)?;
                }
                if let (Some(c), Some(st)) = (&restored, &store) {
                    if c.finished {
                        // What the failed attempt owed its sinks after the final checkpoint.
                        release_spools(spec, c, st)?;
                    }
                }
                if restored.as_ref().is_some_and(|c| c.finished) {
                    write_stats(opts, spec, &all_stats, stats_start, "finished");
                    return Ok(Outcome::Finished);
                }
            }
            other => {
                let label = match &other {
                    Ok(Outcome::Finished) => "finished",
                    Ok(Outcome::Interrupted(_)) => "interrupted",
                    Err(_) => "failed",
                };
                write_stats(opts, spec, &all_stats, stats_start, label);
                if other.is_ok() && !opts.quiet {
                    for m in super::notices::late_warnings(&graph, &all_stats) {
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

/// The one node a source's records go to (its only main edge) and that node's config: the
/// node whose work the source's parse workers may take on (see the two functions below).
fn sole_consumer<'a>(
    spec: &'a PipelineSpec,
    g: &Graph,
    source: usize,
) -> Option<(usize, &'a NodeConfig)> {
    let mut main = g.nodes[source]
        .outputs
        .iter()
        .map(|&e| &g.edges[e])
        .filter(|e| e.port == Port::Main);
    let edge = main.next()?;
    if main.next().is_some() {
        return None;
    }
    let Role::Spec(si) = g.nodes[edge.to].role else {
        return None;
    };
    Some((edge.to, &spec.nodes[si].config))
}

/// The filter a source can run in its decode pool: the one consumer of the source's records,
/// with an expression that is all native (pure: no `now`, `input`, `debug` or `$ENV`), so
/// evaluating it early, on another thread, decides exactly what the filter would.
fn filter_pushdown(
    spec: &PipelineSpec,
    g: &Graph,
    source: usize,
) -> Option<(crate::expr::Expr, usize)> {
    let (to, NodeConfig::Filter(c)) = sole_consumer(spec, g, source)? else {
        return None;
    };
    let expr = crate::expr::Expr::compile(&c.expr).ok()?;
    expr.is_native().then_some((expr, to))
}

/// The aggregate or window a source's parse workers can fold lines for: the one consumer of
/// the source's records and its only input, keyed by one field, computing only `count` and
/// sums of single fields. An aggregate must emit at the end, without `state_ttl`. A window
/// must be tumbling on a single time field, without allowed lateness or a `.late` output,
/// and feed only sinks that read nothing else: sinks ignore which record made a window fire
/// (its origin and batch number), which folding cannot tell. Whether each line can be folded
/// is decided as it is read (see `sources::combine`).
fn combine_pushdown(
    spec: &PipelineSpec,
    g: &Graph,
    source: usize,
) -> Option<crate::sources::combine::CombineSpec> {
    use crate::sources::combine::CombineSpec;
    use crate::transforms::aggs::{parse_agg, Func};
    let (to, config) = sole_consumer(spec, g, source)?;
    if g.nodes[to].inputs.len() != 1 {
        return None;
    }
    let field = |text: &str| -> Option<crate::value::Str> {
        crate::expr::Expr::compile(text)
            .ok()?
            .single_field()
            .cloned()
    };
    let funcs = |aggs: &toml::Table| -> Option<Vec<Option<crate::value::Str>>> {
        if aggs.is_empty() {
            return None;
        }
        let mut funcs = Vec::with_capacity(aggs.len());
        for (name, text) in aggs {
            let a = parse_agg(name, text.as_str()?).ok()?;
            funcs.push(match (a.func, &a.arg) {
                (Func::Count, None) => None,
                (Func::Sum, Some(e)) => Some(e.single_field()?.clone()),
                _ => return None,
            });
        }
        Some(funcs)
    };
    match config {
        NodeConfig::Aggregate(c) => {
            if c.emit != crate::pipeline::spec::Emit::Final
                || c.state_ttl.is_some()
                || c.time.is_some()
            {
                return None;
            }
            Some(CombineSpec::new(
                &field(c.key.as_deref()?)?,
                &funcs(&c.aggs)?,
            ))
        }
        NodeConfig::Window(c) => {
            let ms = |d: &Option<String>| match d {
                Some(d) => parse_duration_ms(d).ok(),
                None => Some(0),
            };
            // Folding reads RFC 3339 and epoch times only.
            if c.slide.is_some()
                || c.gap.is_some()
                || c.time_format.is_some()
                || ms(&c.allowed_lateness)? != 0
            {
                return None;
            }
            let (size, ooo) = (ms(&c.size)?, ms(&c.out_of_orderness)?);
            if size <= 0 || ooo < 0 {
                return None;
            }
            // Sinks only, each reading this window alone; and no `.late` output.
            let window = &g.nodes[to];
            for &e in &window.outputs {
                let e = &g.edges[e];
                let to = &g.nodes[e.to];
                match e.port {
                    Port::Main if to.kind == Kind::Sink && to.inputs.len() == 1 => {}
                    Port::Errors(_) => {}
                    _ => return None,
                }
            }
            let unit = c.time_unit.unwrap_or_default();
            Some(
                CombineSpec::new(&field(c.key.as_deref()?)?, &funcs(&c.aggs)?).tumbling(
                    &field(&c.time)?,
                    unit,
                    size,
                    ooo,
                ),
            )
        }
        _ => None,
    }
}

/// For `weir explain`: what each file source's parse workers do beyond parsing, if anything
/// (run the filter downstream, or fold for the aggregate or window downstream).
pub fn worker_notes(spec: &PipelineSpec, g: &Graph) -> Vec<Option<String>> {
    let threads = parse_threads();
    (0..g.nodes.len())
        .map(|i| {
            let Role::Spec(si) = g.nodes[i].role else {
                return None;
            };
            let NodeConfig::FileSource(c) = &spec.nodes[si].config else {
                return None;
            };
            // The pool reads only JSON lines of files (not stdin).
            if c.path == "-" || source_format(&c.path, c.format) != Format::Jsonl {
                return None;
            }
            let consumer = || sole_consumer(spec, g, i).map_or("", |(to, _)| &g.nodes[to].name);
            let what = if filter_pushdown(spec, g, i).is_some() {
                format!(
                    "run filter '{}' on each line, so dropped lines never become records",
                    consumer()
                )
            } else if combine_pushdown(spec, g, i).is_some() && c.at_end == AtEnd::Finish {
                format!(
                    "fold lines straight into the counts and sums of '{}' (a line that cannot \
                     be folded, such as a float or a bad line, turns this off for good)",
                    consumer()
                )
            } else {
                return None;
            };
            Some(format!("parse workers ({threads} on this machine): {what}"))
        })
        .collect()
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
        let st = sink_state(c.state(&n.name), &n.name)?;
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
    if let Ok(ck) = checkpoint_settings(spec, opts.state.as_ref()) {
        for (name, v) in crate::sinks::committed_positions(spec, &ck.dir) {
            if let Some(n) = nodes.iter_mut().find(|n| n["node"] == name.as_str()) {
                n["committed"] = v;
            }
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

fn restored_state<'a>(c: Option<&'a Checkpoint>, name: &str) -> Option<&'a [u8]> {
    c.and_then(|c| c.state(name))
}

#[allow(clippy::too_many_arguments)]
fn run_once(
    spec: &PipelineSpec,
    g: &Graph,
    ck: &CheckpointSettings,
    store: Option<&Store>,
    restored: Option<&Checkpoint>,
    hash: &str,
    configs: &super::edits::Stamp,
    opts: &Options,
    fresh_pending: &mut bool,
) -> (Result<Outcome>, RunStats) {
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

    // Channels, one per edge.
    let mut txs: Vec<Option<Sender<Msg>>> = Vec::with_capacity(g.edges.len());
    let mut rxs: Vec<Option<Receiver<Msg>>> = Vec::with_capacity(g.edges.len());
    for _ in &g.edges {
        let (t, r) = bounded(CHANNEL_CAPACITY);
        txs.push(Some(t));
        rxs.push(Some(r));
    }
    let output_for = |node: usize, txs: &mut Vec<Option<Sender<Msg>>>| {
        let mut main = Vec::new();
        let mut late = Vec::new();
        let mut errors = Vec::new();
        for &e in &g.nodes[node].outputs {
            let Some(tx) = txs[e].take() else { continue };
            match g.edges[e].port {
                Port::Main => main.push(tx),
                Port::Late => late.push(tx),
                Port::Errors(s) => errors.push((s as u32, tx)),
            }
        }
        Output::new(node, ctx.clone(), main, late, errors)
    };

    enum Built {
        Source(SourceDriver),
        Stage(
            Box<dyn Operator>,
            Vec<Receiver<Msg>>,
            Output,
            Option<Receiver<u64>>,
        ),
    }
    let cut = Arc::new(Cut::default());
    let mut source_nodes: Vec<usize> = Vec::new();
    let mut commits: Vec<Sender<u64>> = Vec::new();
    let spool_dir = store.map(|s| s.dir.clone());

    let projections = crate::pipeline::fields::source_projections(spec, g);
    let spare_cores = match std::env::var("WEIR_PARALLEL_PARSE").as_deref() {
        Ok("1") => true,
        Ok("0") => false,
        _ => std::thread::available_parallelism()
            .map(|c| c.get() > n)
            .unwrap_or(false),
    };
    let parse_threads = parse_threads();
    // Sources and transforms first (they find their input files and compile), then the
    // sinks, which create and truncate output: `--fresh` moves the old state aside between
    // the two, so a run that cannot start changes nothing.
    let mut order: Vec<usize> = (0..n).filter(|&i| g.nodes[i].kind != Kind::Sink).collect();
    let first_sink = order.len();
    order.extend((0..n).filter(|&i| g.nodes[i].kind == Kind::Sink));
    let mut slots: Vec<Option<Built>> = (0..n).map(|_| None).collect();
    for (k, &i) in order.iter().enumerate() {
        if k == first_sink && *fresh_pending {
            if let Some(store) = store {
                if let Err(e) = move_aside(store, ck.retain, opts.quiet) {
                    return (Err(e), stats_of(&ctx, Vec::new()));
                }
            }
            *fresh_pending = false;
        }
        let node = &g.nodes[i];
        let state = restored_state(restored, &node.name);
        let inputs: Vec<Receiver<Msg>> =
            node.inputs.iter().filter_map(|&e| rxs[e].take()).collect();
        let out = output_for(i, &mut txs);
        let r: Result<Built> = (|| match (&node.role, node.kind) {
            (Role::Spec(si), Kind::Source) => {
                let ns = &spec.nodes[*si];
                let (consumed, inner) = match state {
                    Some(s) => split_state(s)?,
                    None => (0, serde_json::Value::Null),
                };
                let source: Box<dyn Source> = match &ns.config {
                    NodeConfig::FileSource(c) => {
                        let restored_st: Option<FileSourceState> = if inner.is_null() {
                            None
                        } else {
                            Some(serde_json::from_value(inner).map_err(|e| {
                                Error::runtime(format!(
                                    "source '{}': state in checkpoint: {e}",
                                    ns.name
                                ))
                            })?)
                        };
                        Box::new(FileSource::new(
                            FileSourceSettings {
                                node: i,
                                pattern: c.path.clone(),
                                path: spec.resolve(&c.path),
                                format: source_format(&c.path, c.format),
                                at_end: opts.at_end.unwrap_or(c.at_end),
                                infer_types: c.infer_types.unwrap_or(true),
                                fingerprint_bytes: c
                                    .fingerprint_bytes
                                    .unwrap_or(DEFAULT_FINGERPRINT_BYTES),
                                fields: projections[i].clone(),
                                // Measured on 2 cores: a parse helper only pays when no other
                                // stage already keeps the second core busy.
                                parallel_parse: spare_cores,
                                parse_threads,
                                pushdown: filter_pushdown(spec, g, i),
                                combine: combine_pushdown(spec, g, i).map(Arc::new),
                            },
                            ctx.clone(),
                            restored_st,
                        )?)
                    }
                    NodeConfig::Generate(c) => {
                        let next = inner.get("next").and_then(|x| x.as_u64()).unwrap_or(0);
                        if let Some(Some(info)) = ctx.sources.get(i) {
                            if let Ok(mut f) = info.files.write() {
                                f.push("<generate>".into());
                            }
                        }
                        Box::new(Generate::new(
                            i,
                            c.count,
                            c.rate,
                            c.seed,
                            c.keys.unwrap_or(1000),
                            opts.at_end.unwrap_or(c.at_end),
                            next,
                        ))
                    }
                    _ => {
                        return Err(Error::runtime(format!(
                            "node '{}' is not a source",
                            ns.name
                        )))
                    }
                };
                if !source.cut_free() {
                    cut.add(i, consumed / crate::pipeline::graph::BATCH_SIZE as u64);
                }
                ctx.stats[i]
                    .bytes_total
                    .store(source.total_bytes().unwrap_or(0), Ordering::Relaxed);
                source_nodes.push(i);
                Ok(Built::Source(SourceDriver {
                    node: i,
                    source,
                    out,
                    cut: cut.clone(),
                    emitted: 0,
                    consumed,
                }))
            }
            (Role::Spec(si), Kind::Transform) => {
                let ns = &spec.nodes[*si];
                let mut op = crate::transforms::build(ns).map_err(|p| {
                    Error::usage(format!(
                        "node '{}': {}",
                        ns.name,
                        p.into_iter().map(|x| x.1).collect::<Vec<_>>().join("; ")
                    ))
                })?;
                if let Some(s) = state {
                    op.restore(s)?;
                }
                Ok(Built::Stage(op, inputs, out, None))
            }
            (Role::Spec(si), Kind::Sink) if crate::sinks::is_external(&spec.nodes[*si].config) => {
                let op = crate::sinks::build(
                    spec,
                    &spec.nodes[*si],
                    state,
                    restored.is_some(),
                    spool_dir.as_deref(),
                )?;
                let (ctx_tx, crx) = unbounded();
                commits.push(ctx_tx);
                Ok(Built::Stage(op, inputs, out, Some(crx)))
            }
            (role, _) => {
                // A file sink of the pipeline, or a source's dead-letter file.
                let (path, format, delivery) = match role {
                    Role::Spec(si) => match &spec.nodes[*si].config {
                        NodeConfig::FileSink(c) => (
                            spec.resolve(&c.path),
                            sink_format(&c.path, c.format),
                            c.delivery.unwrap_or(Delivery::AtLeastOnce),
                        ),
                        _ => {
                            return Err(Error::runtime(format!(
                                "node '{}' is not a sink",
                                node.name
                            )))
                        }
                    },
                    Role::DeadLetter { path, .. } => {
                        (path.clone(), Format::Jsonl, Delivery::AtLeastOnce)
                    }
                };
                let st = sink_state(state, &node.name)?;
                let sink =
                    FileSink::open(&node.name, path, format, delivery, spool_dir.clone(), st)?;
                let (ctx_tx, crx) = unbounded();
                commits.push(ctx_tx);
                Ok(Built::Stage(Box::new(sink), inputs, out, Some(crx)))
            }
        })();
        match r {
            Ok(b) => slots[i] = Some(b),
            Err(e) => return (Err(e), stats_of(&ctx, Vec::new())),
        }
    }
    let built: Vec<Built> = slots.into_iter().flatten().collect();
    drop(txs);

    // Signals: the first asks for a clean stop with a final checkpoint; a second exits at once.
    let _signals = install_signals(ctx.clone());

    let mut handles = Vec::with_capacity(n);
    for (i, b) in built.into_iter().enumerate() {
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
        &source_nodes,
    );
    let mut coord = Coordinator {
        n,
        ck,
        store,
        spec,
        hash,
        configs,
        next_id: store.map(|s| s.next_id()).unwrap_or(1),
        inflight: None,
        ended: vec![None; n],
        exited: 0,
        last: Instant::now(),
        records_at_last: 0,
        cut: cut.clone(),
        sources: source_nodes,
        commits,
        taken: Vec::new(),
        progress,
    };
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

/// `run --fresh`: the old checkpoints into `old-<time>/`, and all but the newest `retain` of
/// those directories removed.
fn move_aside(store: &Store, retain: usize, quiet: bool) -> Result<()> {
    if let Some(dest) = store.move_aside()? {
        if !quiet {
            eprintln!("weir: moved the old state aside to {}", dest.display());
        }
    }
    for p in store.prune_old(retain)? {
        if !quiet {
            eprintln!(
                "weir: removed {} (older than the {retain} moved-aside states [checkpoint] retain keeps)",
                p.display()
            );
        }
    }
    Ok(())
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

fn sink_state(state: Option<&[u8]>, name: &str) -> Result<Option<SinkState>> {
    match state {
        None => Ok(None),
        Some(s) => serde_json::from_slice(s)
            .map(Some)
            .map_err(|e| Error::runtime(format!("sink '{name}': state in checkpoint: {e}"))),
    }
}

/// How many threads decode JSON lines of mapped files: one per core (the source's own thread
/// then only cuts lines and emits), none on one core. `WEIR_PARSE_THREADS` overrides it.
fn parse_threads() -> usize {
    if let Some(n) = std::env::var("WEIR_PARSE_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        return n.min(64);
    }
    match std::thread::available_parallelism().map(|c| c.get()) {
        Ok(c) if c >= 2 => c.min(8),
        _ => 0,
    }
}

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
                    std::process::exit(crate::error::exit_code(&Ok(Outcome::Interrupted(which))));
                }
                if !ctx.quiet {
                    eprintln!("weir: stopping: taking a final checkpoint (send the signal again to exit at once)");
                }
                ctx.request_stop(reason);
            }
        })
        .ok()
}

/// Id, each node's state so far, and when it started.
type Inflight = (u64, Vec<Option<Vec<u8>>>, Instant);

struct Coordinator<'a> {
    n: usize,
    ck: &'a CheckpointSettings,
    store: Option<&'a Store>,
    spec: &'a PipelineSpec,
    hash: &'a str,
    configs: &'a super::edits::Stamp,
    next_id: u64,
    /// The checkpoint being taken: id, each node's state so far, when it started.
    inflight: Option<Inflight>,
    /// Final states of nodes whose stream ended, and whether it finished.
    ended: Vec<Option<(Vec<u8>, bool)>>,
    exited: usize,
    last: Instant,
    records_at_last: u64,
    cut: Arc<Cut>,
    sources: Vec<usize>,
    commits: Vec<Sender<u64>>,
    /// (id, duration ms, bytes) of every checkpoint written.
    taken: Vec<(u64, f64, u64)>,
    progress: Option<super::progress::Progress>,
}

impl Coordinator<'_> {
    fn run(&mut self, rx: &Receiver<Report>, ctx: &Context) {
        // Short intervals need a short tick; 20 ms otherwise keeps an idle weir idle.
        let tick = Duration::from_millis(
            self.ck
                .every_ms
                .map(|ms| (ms / 2).clamp(1, 20))
                .unwrap_or(20) as u64,
        );
        // The first draw at once: a short run still shows its bar.
        let mut last_draw = Instant::now() - Duration::from_secs(1);
        while self.exited < self.n {
            match rx.recv_timeout(tick) {
                Ok(Report::State { id, node, state }) => {
                    if let Some((cur, slots, _)) = &mut self.inflight {
                        if *cur == id {
                            slots[node] = Some(state);
                        }
                    }
                    self.maybe_complete(ctx);
                }
                Ok(Report::Ended {
                    node,
                    state,
                    finished,
                }) => {
                    self.ended[node] = Some((state.clone(), finished));
                    // A node that ended stands in any later checkpoint with its final state.
                    if let Some((_, slots, _)) = &mut self.inflight {
                        if slots[node].is_none() {
                            slots[node] = Some(state);
                        }
                    }
                    if self.ended.iter().all(|e| e.is_some()) {
                        self.final_checkpoint(ctx);
                    } else {
                        self.maybe_complete(ctx);
                    }
                }
                Ok(Report::Failed { node, error }) => ctx.fail(node, error),
                Ok(Report::Exited { .. }) => self.exited += 1,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if ctx.stop_reason() == StopReason::Failure {
                // No checkpoint after a failure; let the sinks go.
                self.inflight = None;
                self.commits.clear();
            } else {
                self.maybe_trigger(ctx);
            }
            if let Some(p) = &self.progress {
                if last_draw.elapsed() >= Duration::from_millis(200) {
                    last_draw = Instant::now();
                    p.draw(ctx, &self.sources, self.taken.last().map(|c| c.0));
                }
            }
        }
    }

    fn maybe_trigger(&mut self, ctx: &Context) {
        if !self.ck.enabled || self.inflight.is_some() || ctx.stopping() {
            return;
        }
        let live = self
            .sources
            .iter()
            .filter(|&&i| self.ended[i].is_none())
            .count();
        if live == 0 {
            return;
        }
        let records: u64 = self
            .sources
            .iter()
            .map(|&i| ctx.stats[i].records_in.load(Ordering::Relaxed))
            .sum();
        let due_time = self
            .ck
            .every_ms
            .is_some_and(|ms| self.last.elapsed() >= Duration::from_millis(ms.max(1) as u64));
        let due_records = self
            .ck
            .every_records
            .is_some_and(|r| records.saturating_sub(self.records_at_last) >= r.max(1));
        if !(due_time || due_records) {
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        let mut slots = vec![None; self.n];
        for (i, e) in self.ended.iter().enumerate() {
            if let Some((s, _)) = e {
                slots[i] = Some(s.clone());
            }
        }
        self.inflight = Some((id, slots, Instant::now()));
        self.records_at_last = records;
        self.cut.request(id);
        ctx.info(format!("checkpoint {id} triggered"));
    }

    fn maybe_complete(&mut self, ctx: &Context) {
        let complete =
            matches!(&self.inflight, Some((_, slots, _)) if slots.iter().all(|s| s.is_some()));
        if !complete {
            return;
        }
        let Some((id, slots, started)) = self.inflight.take() else {
            return;
        };
        self.last = Instant::now();
        let states: Vec<Vec<u8>> = slots.into_iter().map(|s| s.unwrap_or_default()).collect();
        if self.write(ctx, id, states, false, false, started) {
            for c in &self.commits {
                let _ = c.send(id);
            }
        }
    }

    fn final_checkpoint(&mut self, ctx: &Context) {
        self.inflight = None;
        if ctx.stop_reason() == StopReason::Failure {
            self.commits.clear();
            return;
        }
        let finished = self.ended.iter().all(|e| e.as_ref().is_some_and(|x| x.1));
        let states: Vec<Vec<u8>> = self
            .ended
            .iter()
            .map(|e| e.as_ref().map(|x| x.0.clone()).unwrap_or_default())
            .collect();
        let id = self.next_id;
        self.next_id += 1;
        if self.write(ctx, id, states, true, finished, Instant::now()) {
            for c in &self.commits {
                let _ = c.send(id);
            }
        }
        // Sinks wait for this to leave; dropping the senders lets them go.
        self.commits.clear();
    }

    /// Writes checkpoint `id`; false (and the run failed) if it could not be written.
    fn write(
        &mut self,
        ctx: &Context,
        id: u64,
        states: Vec<Vec<u8>>,
        ended: bool,
        finished: bool,
        started: Instant,
    ) -> bool {
        let Some(store) = self.store else {
            return true;
        };
        let meta = crate::checkpoint::format::Meta {
            id,
            pipeline: &self.spec.name,
            pipeline_hash: self.hash,
            state_config: &self.configs.configs,
            dropped: &self.configs.dropped,
            created_ms: jiff::Timestamp::now().as_millisecond(),
            ended,
            finished,
        };
        let parts: Vec<(&str, &[u8])> = ctx
            .names
            .iter()
            .zip(&states)
            .map(|(n, s)| (n.as_str(), s.as_slice()))
            .collect();
        let bytes = match crate::checkpoint::format::encode_parts(&meta, &parts) {
            Ok(b) => b,
            Err(e) => {
                ctx.fail_run(e);
                return false;
            }
        };
        crate::crash_point!("checkpoint-before-write");
        match store.write_encoded(id, &bytes, self.ck.retain) {
            Ok(bytes) => {
                let ms = started.elapsed().as_secs_f64() * 1000.0;
                self.taken.push((id, ms, bytes));
                ctx.info(format!(
                    "checkpoint {id} written ({bytes} bytes, {ms:.1} ms)"
                ));
                // Between the checkpoint being durable and the sinks hearing of it.
                crate::crash_point!("checkpoint-after-write");
                true
            }
            Err(e) => {
                ctx.fail_run(e.context(format!("checkpoint {id}")));
                false
            }
        }
    }
}
