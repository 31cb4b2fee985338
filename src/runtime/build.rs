//! Node construction: every node of the graph built from its config (and its state in the
//! checkpoint being resumed), with one bounded channel per edge between them. Sources and
//! transforms are built first (they find their input files and compile), then the sinks,
//! which create and truncate output, so a run that cannot start changes nothing.

use super::context::Context;
use super::message::Msg;
use super::plan::Plan;
use super::settings::{CheckpointSettings, Options};
use super::stage::{Operator, Output};
use crate::checkpoint::format::Checkpoint;
use crate::checkpoint::store::Store;
use crate::error::{Error, Result};
use crate::pipeline::graph::{Graph, Port, Role, CHANNEL_CAPACITY};
use crate::pipeline::spec::{sink_format, source_format, Delivery, Format, NodeConfig};
use crate::pipeline::{Kind, PipelineSpec};
use crate::sinks::file::{FileSink, SinkState};
use crate::sources::file::{
    FileSource, FileSourceSettings, FileSourceState, DEFAULT_FINGERPRINT_BYTES,
};
use crate::sources::generate::Generate;
use crate::sources::{split_state, Cut, Source, SourceDriver};
use crossbeam_channel::{bounded, unbounded, Receiver, Sender};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// What one attempt of a run is built from.
pub(super) struct Attempt<'a> {
    pub spec: &'a PipelineSpec,
    pub g: &'a Graph,
    /// Compiled once, by `validate::check`; each attempt makes fresh operators of them.
    pub transforms: &'a [Option<crate::transforms::Compiled>],
    /// Decided once per run, before the first attempt; `explain` prints the same plan.
    pub plan: &'a Plan,
    pub ck: &'a CheckpointSettings,
    /// What every checkpoint of the run records about the pipeline (see `settings`, `edits`).
    pub hash: &'a str,
    pub configs: &'a super::edits::Stamp,
    pub store: Option<&'a Store>,
    pub restored: Option<&'a Checkpoint>,
    pub opts: &'a Options,
}

/// A node ready to run on its thread: a source with its driver, or an operator with its
/// inputs, its output and, for a sink, its commit line.
pub(super) enum Built {
    Source(SourceDriver),
    Stage(
        Box<dyn Operator>,
        Vec<Receiver<Msg>>,
        Output,
        Option<Receiver<u64>>,
    ),
}

/// Every node built, in graph order, with the source nodes and the sinks' commit lines.
pub(super) struct Nodes {
    pub built: Vec<Built>,
    pub sources: Vec<usize>,
    pub commits: Vec<Sender<u64>>,
}

/// Builds every node of attempt `a`. `--fresh` moves the old state aside between the sources
/// and transforms and the sinks (`fresh_pending`, cleared once done).
pub(super) fn build(
    a: &Attempt,
    ctx: &Arc<Context>,
    cut: &Arc<Cut>,
    fresh_pending: &mut bool,
) -> Result<Nodes> {
    let (spec, g, store, restored, opts) = (a.spec, a.g, a.store, a.restored, a.opts);
    let n = g.nodes.len();
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

    let mut source_nodes: Vec<usize> = Vec::new();
    let mut commits: Vec<Sender<u64>> = Vec::new();
    let spool_dir = store.map(|s| s.dir.clone());

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
                move_aside(store, a.ck.retain, opts.quiet)?;
            }
            *fresh_pending = false;
        }
        let node = &g.nodes[i];
        let state = restored.and_then(|c| c.state(&node.name));
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
                                fields: a.plan.sources[i].fields.clone(),
                                parallel_parse: a.plan.parallel_parse,
                                parse_threads: a.plan.parse_threads,
                                job_bytes: a.plan.job_bytes,
                                pushdown: a.plan.sources[i].pushdown.clone(),
                                folding: a.plan.sources[i].fold.clone(),
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
                let mut op = a
                    .transforms
                    .get(*si)
                    .and_then(Option::as_ref)
                    .ok_or_else(|| {
                        Error::runtime(format!(
                            "internal: transform '{}' was not compiled",
                            ns.name
                        ))
                    })?
                    .operator(&ns.name);
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
        slots[i] = Some(r?);
    }
    Ok(Nodes {
        built: slots.into_iter().flatten().collect(),
        sources: source_nodes,
        commits,
    })
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

pub(super) fn sink_state(state: Option<&[u8]>, name: &str) -> Result<Option<SinkState>> {
    match state {
        None => Ok(None),
        Some(s) => serde_json::from_slice(s)
            .map(Some)
            .map_err(|e| Error::runtime(format!("sink '{name}': state in checkpoint: {e}"))),
    }
}
