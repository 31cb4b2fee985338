//! What a pipeline's checkpoints are, before any run: where they live, how often they are
//! taken, how many are kept, and the hash that tells which pipeline wrote one. Both `run` and
//! `edits` (resume after editing) read these, so they live below both.

use crate::cli::Progress;
use crate::error::{Error, Result};
use crate::pipeline::spec::{parse_duration_ms, sink_format, source_format, AtEnd, NodeConfig};
use crate::pipeline::PipelineSpec;
use std::path::PathBuf;

/// Checkpoint settings after defaults: every 10 s and at the end, 3 kept.
#[derive(Debug, Clone)]
pub struct CheckpointSettings {
    pub enabled: bool,
    pub every_ms: Option<i64>,
    pub every_records: Option<u64>,
    pub retain: usize,
    pub dir: PathBuf,
}

pub fn checkpoint_settings(
    spec: &PipelineSpec,
    state: Option<&PathBuf>,
) -> Result<CheckpointSettings> {
    let c = &spec.checkpoint;
    let off = c.every.as_deref() == Some("off");
    let every_ms = match (&c.every, c.every_records) {
        (Some(e), _) if e != "off" => Some(parse_duration_ms(e).map_err(Error::usage)?),
        (None, None) => Some(10_000),
        _ => None,
    };
    let dir = match (state, &c.dir) {
        (Some(d), _) => d.clone(),
        (None, Some(d)) => spec.resolve(d),
        (None, None) => spec.dir.join(".weir").join(&spec.name),
    };
    Ok(CheckpointSettings {
        enabled: !off,
        every_ms,
        every_records: c.every_records,
        retain: c.retain.unwrap_or(3),
        dir,
    })
}

/// What makes restored state meaningful: node names, types, wiring and every setting of the
/// transforms. Paths of sources and sinks are left out so files can move between runs.
pub fn pipeline_hash(spec: &PipelineSpec) -> String {
    let mut s = String::new();
    for n in &spec.nodes {
        s.push_str(&n.name);
        s.push('|');
        s.push_str(n.kind.table());
        s.push('|');
        s.push_str(n.config.type_name());
        s.push('|');
        match &n.config {
            NodeConfig::FileSource(c) => {
                s.push_str(&format!("{:?}", source_format(&c.path, c.format)));
                s.push_str(if c.path == "-" { "|stdin" } else { "|files" });
            }
            NodeConfig::Generate(c) => s.push_str(&format!("{}|{:?}", c.seed, c.keys)),
            NodeConfig::FileSink(c) => s.push_str(&format!(
                "{:?}|{}",
                sink_format(&c.path, c.format),
                c.inputs.join(",")
            )),
            other => match crate::sinks::hash_part(other) {
                Some(h) => s.push_str(&h),
                None => s.push_str(&format!("{other:?}")),
            },
        }
        s.push('\n');
    }
    format!("{:08x}", crc32fast::hash(s.as_bytes()))
}

/// The flags of `weir run` and `weir resume` that shape a run.
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
