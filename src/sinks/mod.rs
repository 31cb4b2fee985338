//! Sinks: where records leave weir. Each sink reports a committed position at every checkpoint
//! and is truncated back to it on resume, which is what makes file output exactly-once.
//! The sinks into other systems (`exec`, `sqlite`, `postgres`) are built here from their
//! configs, so the runtime only dispatches to `build`.

pub mod exec;
pub mod file;
pub mod postgres;
pub mod spool;
pub mod sqlite;
pub mod table;

use crate::checkpoint::format::Checkpoint;
use crate::error::Error;
use crate::pipeline::spec::{parse_duration_ms, Format, NodeConfig};
use crate::pipeline::{NodeSpec, PipelineSpec};
use crate::runtime::stage::Operator;
use std::ops::Range;
use std::path::Path;

/// Creates the directory a sink's file goes in, if missing.
pub fn create_parent(sink: &str, path: &Path) -> Result<(), Error> {
    if let Some(parent) = path.parent() {
        if !parent.as_os_str().is_empty() && !parent.exists() {
            std::fs::create_dir_all(parent).map_err(|e| {
                Error::runtime(format!(
                    "sink '{sink}': cannot create {}: {e}",
                    parent.display()
                ))
            })?;
        }
    }
    Ok(())
}

/// True for the sinks `build` makes (everything but `file`).
pub fn is_external(c: &NodeConfig) -> bool {
    matches!(
        c,
        NodeConfig::ExecSink(_) | NodeConfig::SqliteSink(_) | NodeConfig::PostgresSink(_)
    )
}

/// Builds an `exec`, `sqlite` or `postgres` sink, restored from its checkpoint state.
/// `resuming`: the run continues from a checkpoint (which may hold no state for this sink: a
/// sink added, changed or dropped since). `state_dir` is the pipeline's state directory (None
/// when checkpoints are off).
pub fn build(
    spec: &PipelineSpec,
    node: &NodeSpec,
    state: Option<&[u8]>,
    resuming: bool,
    state_dir: Option<&Path>,
) -> Result<Box<dyn Operator>, Error> {
    // A table sink that starts without state in a resumed run starts a new lineage: what the
    // database holds of its earlier output is not the output to come, so nothing is skipped.
    if resuming && state.is_none() {
        if let (Some(dir), NodeConfig::SqliteSink(_) | NodeConfig::PostgresSink(_)) =
            (state_dir, &node.config)
        {
            remove_lineage(dir, &node.name)?;
        }
    }
    match &node.config {
        NodeConfig::ExecSink(c) => Ok(Box::new(exec::ExecSink::open(
            exec::ExecSettings::new(spec, &node.name, c, state_dir)?,
            state,
        )?)),
        NodeConfig::SqliteSink(c) => {
            let path = spec.resolve(c.path.as_deref().unwrap_or_default());
            let writers = spec
                .nodes
                .iter()
                .filter(|n| match &n.config {
                    NodeConfig::SqliteSink(o) => {
                        spec.resolve(o.path.as_deref().unwrap_or_default()) == path
                    }
                    _ => false,
                })
                .count();
            let db = sqlite::Sqlite::open(&node.name, &path, writers > 1)?;
            Ok(Box::new(table::TableSink::open(
                table::TableSettings::new(spec, &node.name, c, state_dir)?,
                db,
                state,
            )?))
        }
        NodeConfig::PostgresSink(c) => {
            let db = postgres::Postgres::connect(&node.name, c.url.as_deref().unwrap_or_default())?;
            Ok(Box::new(table::TableSink::open(
                table::TableSettings::new(spec, &node.name, c, state_dir)?,
                db,
                state,
            )?))
        }
        _ => Err(Error::runtime(format!(
            "internal: node '{}' is not an exec, sqlite or postgres sink",
            node.name
        ))),
    }
}

/// A checkpoint the run already finished with may still owe an `exec` command its last
/// epochs (a crash after the checkpoint, before the command exited 0): run them.
pub fn settle(spec: &PipelineSpec, c: &Checkpoint, state_dir: &Path) -> Result<(), Error> {
    for n in &spec.nodes {
        if let NodeConfig::ExecSink(cfg) = &n.config {
            if let Some(st) = c.state(&n.name) {
                exec::ExecSink::open(
                    exec::ExecSettings::new(spec, &n.name, cfg, Some(state_dir))?,
                    Some(st),
                )?;
            }
        }
    }
    Ok(())
}

/// `weir run` starts a new lineage for the table sinks (see `table`): rows an earlier run
/// committed are not this run's to skip.
pub fn new_lineage(spec: &PipelineSpec, state_dir: &Path) -> Result<(), Error> {
    for n in &spec.nodes {
        if matches!(
            n.config,
            NodeConfig::SqliteSink(_) | NodeConfig::PostgresSink(_)
        ) {
            remove_lineage(state_dir, &n.name)?;
        }
    }
    Ok(())
}

fn remove_lineage(state_dir: &Path, sink: &str) -> Result<(), Error> {
    let p = state_dir.join(format!("{sink}.lineage"));
    match std::fs::remove_file(&p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::runtime(format!(
            "sink '{sink}': cannot remove {}: {e}",
            p.display()
        ))),
    }
}

/// Every sink's state in the newest checkpoint of `state_dir` (its committed position:
/// bytes for files, records and epochs for tables, epochs for exec), for `--stats`.
pub fn committed_positions(
    spec: &PipelineSpec,
    state_dir: &Path,
) -> Vec<(String, serde_json::Value)> {
    let store = crate::checkpoint::store::Store::open_read(state_dir);
    let Ok(Some(c)) = store.pick(None, &|_| {}) else {
        return Vec::new();
    };
    spec.nodes
        .iter()
        .filter(|n| n.kind == crate::pipeline::Kind::Sink)
        .filter_map(|n| {
            let v = serde_json::from_slice(c.state(&n.name)?).ok()?;
            Some((n.name.clone(), v))
        })
        .collect()
}

/// What `validate` says about these sinks' settings, located at the key at fault.
pub fn check(node: &NodeSpec) -> Vec<(Range<usize>, String)> {
    let mut out = Vec::new();
    let mut at = |key: &str, m: String| out.push((node.key_span(key), m));
    match &node.config {
        NodeConfig::ExecSink(c) => {
            if c.command.first().is_none_or(|p| p.is_empty()) {
                at(
                    "command",
                    "`command` must name a program, e.g. [\"sh\", \"-c\", \"...\"]".into(),
                );
            }
            if c.format == Some(Format::Lines) {
                at(
                    "format",
                    "an exec sink writes jsonl, csv or tsv (not lines)".into(),
                );
            }
            if let Some(t) = &c.timeout {
                match parse_duration_ms(t) {
                    Ok(0) => at("timeout", "`timeout` must be more than 0".into()),
                    Ok(_) => {}
                    Err(e) => at("timeout", e),
                }
            }
        }
        NodeConfig::SqliteSink(c) | NodeConfig::PostgresSink(c) => {
            let pg = matches!(node.config, NodeConfig::PostgresSink(_));
            let (want, other) = if pg { ("url", "path") } else { ("path", "url") };
            let given = if pg { &c.url } else { &c.path };
            let wrong = if pg { &c.path } else { &c.url };
            match given {
                None => at(want, format!("missing `{want}`")),
                Some(s) if s.is_empty() || s == "-" => {
                    at(want, format!("`{want}` must name a database"))
                }
                Some(_) => {}
            }
            if wrong.is_some() {
                at(
                    other,
                    format!(
                        "a {} sink takes `{want}`, not `{other}`",
                        node.config.type_name()
                    ),
                );
            }
            if c.table.is_empty() {
                at("table", "`table` is empty".into());
            }
            if let Some(cols) = &c.columns {
                if cols.is_empty() {
                    at("columns", "`columns` is empty".into());
                }
                for (k, v) in cols {
                    if !v.is_str() {
                        at(
                            "columns",
                            format!("column `{k}`: the type must be a string such as \"text\""),
                        );
                    }
                }
                for k in &c.key {
                    if !cols.contains_key(k) {
                        at("key", format!("key column `{k}` is not in `columns`"));
                    }
                }
            }
        }
        _ => {}
    }
    out
}

/// `explain`'s line for these sinks, in the pipeline file's words; never the connection
/// string (it may hold a password).
pub fn describe(spec: &PipelineSpec, c: &NodeConfig) -> Vec<String> {
    let q = |s: &str| toml::Value::String(s.to_string()).to_string();
    let list = |v: &[String]| {
        format!(
            "[{}]",
            v.iter().map(|x| q(x)).collect::<Vec<_>>().join(", ")
        )
    };
    let fmt = |f: Format| match f {
        Format::Jsonl | Format::Lines => "\"jsonl\"",
        Format::Csv => "\"csv\"",
        Format::Tsv => "\"tsv\"",
    };
    let key = |k: &[String]| {
        if k.is_empty() {
            String::new()
        } else {
            format!("  key = {}", list(k))
        }
    };
    match c {
        NodeConfig::ExecSink(e) => vec![format!(
            "command = {}  format = {}  timeout = {}",
            list(&e.command),
            fmt(e.format.unwrap_or(Format::Jsonl)),
            q(e.timeout.as_deref().unwrap_or(exec::DEFAULT_TIMEOUT))
        )],
        NodeConfig::SqliteSink(t) => vec![format!(
            "path = {}  table = {}{}",
            q(&spec
                .resolve(t.path.as_deref().unwrap_or_default())
                .to_string_lossy()),
            q(&t.table),
            key(&t.key)
        )],
        NodeConfig::PostgresSink(t) => vec![format!("table = {}{}", q(&t.table), key(&t.key))],
        _ => Vec::new(),
    }
}

/// What these sinks' state depends on, for resume after editing (`runtime::edits`), in the
/// shape of a file sink's: a changed "path" (the database and table, or nothing for exec)
/// starts the sink afresh, a changed "format" is refused while it holds state.
pub fn state_config(c: &NodeConfig) -> serde_json::Value {
    match c {
        NodeConfig::ExecSink(e) => serde_json::json!({
            "path": null,
            "format": format!("{:?}", e.format.unwrap_or(Format::Jsonl)).to_lowercase(),
        }),
        NodeConfig::SqliteSink(t) => serde_json::json!({
            "path": format!("{} table {}", t.path.as_deref().unwrap_or_default(), t.table),
            "format": format!("sqlite key [{}]", t.key.join(", ")),
        }),
        NodeConfig::PostgresSink(t) => serde_json::json!({
            "path": format!("table {}", t.table),
            "format": format!("postgres key [{}]", t.key.join(", ")),
        }),
        _ => serde_json::Value::Null,
    }
}

/// The part of the pipeline hash these sinks add: what changes the meaning of their
/// position (not where they write, so a database may move between runs).
pub fn hash_part(c: &NodeConfig) -> Option<String> {
    match c {
        NodeConfig::ExecSink(e) => Some(format!(
            "{:?}|{}",
            e.format.unwrap_or(Format::Jsonl),
            e.inputs.join(",")
        )),
        NodeConfig::SqliteSink(t) | NodeConfig::PostgresSink(t) => Some(format!(
            "{}|{}|{}",
            t.table,
            t.key.join(","),
            t.inputs.join(",")
        )),
        _ => None,
    }
}
