//! Resume after editing (SPEC section 3): state belongs to node names. Every checkpoint stores
//! each node's *state config*, the settings its state depends on (a window's key, time, shape
//! and aggregates; a source's format; a sink's path), so that `resume` of an edited file can
//! decide node by node what to keep, as Flink matches savepoint state to operator uids. A
//! change that would make restored state mean something else is refused, naming the node and
//! what changed, unless `--drop-state NODE` starts that node empty.

use crate::checkpoint::format::Checkpoint;
use crate::error::{Error, Result};
use crate::pipeline::graph::{kind_word, Graph, Role};
use crate::pipeline::spec::{parse_duration_ms, NodeConfig, TimeUnit};
use crate::pipeline::spec::{sink_format, source_format};
use crate::pipeline::{Kind, PipelineSpec};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Per node name: `{"type": ..., "state": {...} | null, "config": crc32 of all settings}`.
pub type StateConfigs = BTreeMap<String, Value>;

/// What every checkpoint of a run records about the file it runs: each node's state config,
/// and the `--drop-state` names the run was started with.
pub struct Stamp {
    pub configs: StateConfigs,
    pub dropped: Vec<String>,
}

impl Stamp {
    pub fn new(spec: &PipelineSpec, g: &Graph, dropped: &[String]) -> Stamp {
        Stamp {
            configs: state_configs(spec, g),
            dropped: dropped.to_vec(),
        }
    }
}

/// Every graph node's state config, for the checkpoints of this run.
pub fn state_configs(spec: &PipelineSpec, g: &Graph) -> StateConfigs {
    let mut out = StateConfigs::new();
    for n in &g.nodes {
        let v = match &n.role {
            Role::Spec(si) => node_config(&spec.nodes[*si].config, n.kind),
            Role::DeadLetter { source, .. } => {
                // The path as written, so that moving the project directory keeps the file.
                let written = match &g.nodes[*source].role {
                    Role::Spec(si) => match &spec.nodes[*si].config {
                        NodeConfig::FileSource(c) => c.dead_letter.clone(),
                        NodeConfig::Generate(c) => c.dead_letter.clone(),
                        _ => None,
                    },
                    _ => None,
                };
                let state = json!({"path": written, "format": "jsonl"});
                json!({"type": "sink dead_letter", "state": state, "config": crc(&state.to_string())})
            }
        };
        out.insert(n.name.clone(), v);
    }
    out
}

fn crc(s: &str) -> String {
    format!("{:08x}", crc32fast::hash(s.as_bytes()))
}

fn dur(d: &Option<String>) -> Value {
    match d {
        None => Value::Null,
        Some(s) => match parse_duration_ms(s) {
            Ok(ms) => json!(canonical_duration(ms)),
            Err(_) => json!(s),
        },
    }
}

/// "60s" and "1m" are one setting: each duration in its largest whole unit.
fn canonical_duration(ms: i64) -> String {
    for (unit, n) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ] {
        if ms != 0 && ms % n == 0 {
            return format!("{}{unit}", ms / n);
        }
    }
    format!("{ms}ms")
}

fn text(e: &Option<String>) -> Value {
    e.as_ref()
        .map_or(Value::Null, |s| Value::String(s.trim().to_string()))
}

fn unit(u: Option<TimeUnit>, has_time: bool) -> Value {
    if !has_time {
        return Value::Null;
    }
    json!(match u.unwrap_or_default() {
        TimeUnit::S => "s",
        TimeUnit::Ms => "ms",
    })
}

/// Aggregates in file order: state keeps one accumulator per aggregate, in that order.
fn aggs(t: &toml::Table) -> Value {
    Value::Array(
        t.iter()
            .map(|(k, v)| {
                json!(format!(
                    "{k} = {}",
                    v.as_str()
                        .map_or_else(|| v.to_string(), |s| s.trim().to_string())
                ))
            })
            .collect(),
    )
}

fn node_config(c: &NodeConfig, kind: Kind) -> Value {
    let state = match c {
        NodeConfig::FileSource(s) => json!({
            "format": format!("{:?}", source_format(&s.path, s.format)).to_lowercase(),
            "input": if s.path == "-" { "stdin" } else { "files" },
        }),
        NodeConfig::Generate(s) => json!({"seed": s.seed, "keys": s.keys.unwrap_or(1000)}),
        NodeConfig::Filter(_) | NodeConfig::Map(_) | NodeConfig::Parse(_) => Value::Null,
        NodeConfig::Aggregate(a) => json!({
            "key": text(&a.key),
            "aggs": aggs(&a.aggs),
            "time": text(&a.time),
            "time_unit": unit(a.time_unit, a.time.is_some()),
            "time_format": text(&a.time_format),
            "state_ttl": dur(&a.state_ttl),
        }),
        NodeConfig::Window(w) => json!({
            "key": text(&w.key),
            "aggs": aggs(&w.aggs),
            "time": w.time.trim(),
            "time_unit": unit(w.time_unit, true),
            "time_format": text(&w.time_format),
            "size": dur(&w.size),
            "slide": dur(&w.slide),
            "gap": dur(&w.gap),
        }),
        NodeConfig::Dedup(d) => json!({
            "key": d.key.trim(),
            "ttl": match &d.ttl {
                toml::Value::String(s) => dur(&Some(s.clone())),
                other => json!(other.to_string()),
            },
            "time": text(&d.time),
            "time_unit": unit(d.time_unit, d.time.is_some()),
            "time_format": text(&d.time_format),
        }),
        NodeConfig::FileSink(s) => json!({
            "path": s.path,
            "format": format!("{:?}", sink_format(&s.path, s.format)).to_lowercase(),
        }),
        other => crate::sinks::state_config(other),
    };
    // Keyed state is stored per key group: the number of groups is what it depends on, not
    // the number of instances (`parallelism` may change between runs: that rescales).
    let keyed = crate::pipeline::spec::keyed_parallelism(c);
    let state = match (state, keyed) {
        (Value::Object(mut m), Some((_, max))) => {
            m.insert("max_parallelism".into(), json!(max));
            Value::Object(m)
        }
        (state, _) => state,
    };
    let mut v = json!({
        "type": format!("{} {}", kind_word(kind), c.type_name()),
        "inputs": c.inputs(),
        "state": state,
        "config": crc(&format!("{c:?}")),
    });
    if let Some((n, _)) = keyed {
        v["parallelism"] = json!(n);
    }
    v
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// State restored as it was (the node's other settings may have changed).
    Kept,
    /// Not in the checkpoint: starts empty (a source from its beginning).
    New,
    /// Settings changed that no state depends on (or a sink's path: it starts the new file).
    Changed,
    /// Resuming would restore state that no longer means what it meant.
    Refused,
    /// Named by `--drop-state`: starts empty.
    Dropped,
    /// In the checkpoint, not in the file, and nothing is lost by leaving it.
    Removed,
}

impl Verdict {
    pub fn word(&self) -> &'static str {
        match self {
            Verdict::Kept => "kept",
            Verdict::New => "new",
            Verdict::Changed => "changed",
            Verdict::Refused => "refused",
            Verdict::Dropped => "dropped",
            Verdict::Removed => "removed",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Line {
    pub node: String,
    pub what: String,
    pub verdict: Verdict,
    pub note: String,
    /// The checkpoint node whose state this node starts from (itself, or a renamed sink).
    pub from: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub checkpoint: u64,
    pub lines: Vec<Line>,
    /// About `--drop-state` names that dropped nothing; for stderr.
    pub warnings: Vec<String>,
}

impl Plan {
    pub fn refused(&self) -> Vec<&Line> {
        self.lines
            .iter()
            .filter(|l| l.verdict == Verdict::Refused)
            .collect()
    }

    /// The table `weir resume --plan` prints.
    pub fn render(&self) -> String {
        let w = self
            .lines
            .iter()
            .map(|l| l.node.chars().count())
            .max()
            .unwrap_or(4)
            .max(4);
        let ww = self
            .lines
            .iter()
            .map(|l| l.what.len())
            .max()
            .unwrap_or(4)
            .max(4);
        let mut s = format!("{:<w$}  {:<ww$}  {:<8}  note\n", "node", "type", "plan");
        for l in &self.lines {
            s.push_str(
                format!(
                    "{:<w$}  {:<ww$}  {:<8}  {}",
                    l.node,
                    l.what,
                    l.verdict.word(),
                    l.note
                )
                .trim_end(),
            );
            s.push('\n');
        }
        s
    }

    /// The refusal `resume` exits 2 with, or None.
    pub fn refusal(&self) -> Option<String> {
        let r = self.refused();
        if r.is_empty() {
            return None;
        }
        let mut m = format!(
            "cannot resume from checkpoint {}: the pipeline file changed in ways its state does not allow:",
            self.checkpoint
        );
        for l in &r {
            m.push_str(&format!("\n  node '{}': {}", l.node, l.note));
        }
        let names: Vec<String> = r
            .iter()
            .map(|l| format!("--drop-state {}", l.node))
            .collect();
        m.push_str(&format!(
            "\nresume with {} to start {} empty (see `weir resume --plan`), or undo the edit",
            names.join(" "),
            if r.len() == 1 {
                "that node"
            } else {
                "those nodes"
            }
        ));
        Some(m)
    }

    /// Keeps in `c` only the states this plan restores, under the names of the nodes that
    /// restore them.
    pub fn apply(&self, c: &mut Checkpoint) {
        let mut old: BTreeMap<String, Box<serde_json::value::RawValue>> =
            std::mem::take(&mut c.nodes)
                .into_iter()
                .map(|n| (n.node, n.state))
                .collect();
        for l in &self.lines {
            let Some(from) = &l.from else { continue };
            if let Some(state) = old.remove(from) {
                c.nodes.push(crate::checkpoint::format::NodeState {
                    node: l.node.clone(),
                    state,
                });
            }
        }
    }
}

/// Whether the checkpoint holds a state for `node` (stateless transforms store `null`).
fn has_state(c: &Checkpoint, node: &str) -> bool {
    c.state(node).is_some_and(|s| s != b"null")
}

fn show(v: &Value) -> String {
    match v {
        Value::Null => "none".into(),
        Value::String(s) => format!("`{s}`"),
        Value::Array(a) => {
            let parts: Vec<String> = a
                .iter()
                .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
                .collect();
            format!("`{}`", parts.join(", "))
        }
        other => format!("`{other}`"),
    }
}

/// "key changed from `.a` to `.b`; aggs changed from ... to ...".
fn differences(old: &Value, new: &Value) -> String {
    let empty = serde_json::Map::new();
    let o = old.as_object().unwrap_or(&empty);
    let n = new.as_object().unwrap_or(&empty);
    let mut keys: Vec<&String> = o.keys().chain(n.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut out = Vec::new();
    for k in keys {
        let a = o.get(k).unwrap_or(&Value::Null);
        let b = n.get(k).unwrap_or(&Value::Null);
        if a != b {
            out.push(format!("{k} changed from {} to {}", show(a), show(b)));
        }
    }
    out.join("; ")
}

/// Decides, node by node, what resuming `spec` from `c` does, then applies `drops` (the
/// `--drop-state` names), which see `with_drops`.
pub fn plan(spec: &PipelineSpec, g: &Graph, c: &Checkpoint, drops: &[String]) -> Result<Plan> {
    let mut p = plan_edits(spec, g, c)?;
    p.with_drops(drops, &c.dropped);
    Ok(p)
}

impl Plan {
    /// `--drop-state` starts a node empty. It is idempotent, so that the same command may run
    /// again after a crash (or stay in a cron line): a checkpoint written by a run started
    /// with the same `--drop-state` (`already`) already holds the state that began empty, and
    /// keeps it; a name that is nowhere, such as a removed node already dropped, is only a
    /// warning.
    fn with_drops(&mut self, drops: &[String], already: &[String]) {
        for d in drops {
            let Some(l) = self.lines.iter_mut().find(|l| &l.node == d) else {
                let names: Vec<&str> = self.lines.iter().map(|l| l.node.as_str()).collect();
                self.warnings.push(format!(
                    "--drop-state {d}: no node '{d}' in the pipeline file or in checkpoint {}, ignored (nodes: {})",
                    self.checkpoint,
                    names.join(", ")
                ));
                continue;
            };
            if l.from.is_none() && l.verdict != Verdict::Refused {
                // New, or changed without state: nothing to drop.
                continue;
            }
            if already.contains(d) && l.verdict != Verdict::Refused {
                self.warnings.push(format!(
                    "--drop-state {d}: checkpoint {} was written by a run that already dropped it; its state is kept",
                    self.checkpoint
                ));
                continue;
            }
            l.verdict = Verdict::Dropped;
            l.from = None;
            let what = if l.note.starts_with("removed") {
                "state dropped"
            } else if l.what.starts_with("source") {
                "state dropped: reads its input from the beginning"
            } else if l.what.starts_with("sink") {
                "state dropped: starts its file over"
            } else {
                "state dropped: starts empty"
            };
            l.note = if l.note.is_empty() {
                what.to_string()
            } else {
                format!("{}; {what}", l.note)
            };
        }
    }
}

fn plan_edits(spec: &PipelineSpec, g: &Graph, c: &Checkpoint) -> Result<Plan> {
    let now = state_configs(spec, g);
    let mut lines = Vec::new();
    let Some(then) = &c.state_config else {
        // A checkpoint of a weir before per-node state configs: only an unchanged file is safe.
        if c.pipeline_hash != crate::runtime::settings::pipeline_hash(spec) {
            return Err(Error::usage(format!(
                "checkpoint {} was written by an older weir, which recorded only a hash of the whole pipeline, and the pipeline changed since; resume once with the pipeline file it was taken with (its next checkpoint records each node's settings, so later edits resume node by node), or start over with `weir run --fresh`",
                c.id
            )));
        }
        for (name, v) in &now {
            lines.push(Line {
                node: name.clone(),
                what: v["type"].as_str().unwrap_or("").to_string(),
                verdict: Verdict::Kept,
                note: String::new(),
                from: has_state(c, name).then(|| name.clone()),
            });
        }
        return Ok(Plan {
            checkpoint: c.id,
            lines,
            warnings: Vec::new(),
        });
    };

    // Removed sinks, by their state config, so a renamed sink keeps writing its file.
    let removed_sinks: Vec<(&String, &Value)> = then
        .iter()
        .filter(|(name, v)| {
            !now.contains_key(*name)
                && v["type"].as_str().is_some_and(|t| t.starts_with("sink"))
                && has_state(c, name)
        })
        .collect();
    let mut taken_over: Vec<String> = Vec::new();

    // In graph order, so the plan reads from sources to sinks.
    for n in &g.nodes {
        let name = &n.name;
        let cur = &now[name];
        let what = cur["type"].as_str().unwrap_or("").to_string();
        let stateful = !cur["state"].is_null();
        let old = then.get(name);
        let line = |verdict, note: String, from: Option<String>| Line {
            node: name.clone(),
            what: what.clone(),
            verdict,
            note,
            from,
        };
        let Some(old) = old else {
            if n.kind == Kind::Sink {
                if let Some((from, _)) = removed_sinks
                    .iter()
                    .find(|(o, v)| v["state"] == cur["state"] && !taken_over.contains(o))
                {
                    taken_over.push((*from).clone());
                    lines.push(line(
                        Verdict::Kept,
                        format!("renamed from '{from}': keeps writing its file"),
                        Some((*from).clone()),
                    ));
                    continue;
                }
            }
            let note = match n.kind {
                Kind::Source => "not in the checkpoint: reads its input from the beginning",
                Kind::Sink => "not in the checkpoint: starts its file",
                Kind::Transform if stateful => "not in the checkpoint: starts empty",
                Kind::Transform => "",
            };
            lines.push(line(Verdict::New, note.into(), None));
            continue;
        };
        let old_type = old["type"].as_str().unwrap_or("");
        let same_config = old["config"] == cur["config"];
        if old_type != what {
            if has_state(c, name) {
                lines.push(line(
                    Verdict::Refused,
                    format!("type changed from {old_type} to {what}: its state would not fit"),
                    None,
                ));
            } else {
                let note = if stateful {
                    format!("was a stateless {old_type}: starts empty")
                } else {
                    format!("was a {old_type}")
                };
                lines.push(line(Verdict::Changed, note, None));
            }
            continue;
        }
        if old["state"] == cur["state"] {
            let rescaled = !old["parallelism"].is_null()
                && old["parallelism"] != cur["parallelism"]
                && old["inputs"] == cur["inputs"];
            let what_changed = if old["inputs"] != cur["inputs"] {
                format!(
                    "inputs changed from {} to {}",
                    show(&old["inputs"]),
                    show(&cur["inputs"])
                )
            } else if rescaled {
                format!(
                    "parallelism changed from {} to {}",
                    old["parallelism"], cur["parallelism"]
                )
            } else {
                "settings changed".to_string()
            };
            let (verdict, note) = match (same_config, stateful) {
                (true, _) => (Verdict::Kept, String::new()),
                (false, false) => (Verdict::Changed, format!("stateless; {what_changed}")),
                (false, true) if rescaled => (
                    Verdict::Kept,
                    format!("{what_changed}: its key groups are spread over the new instances"),
                ),
                (false, true) => (
                    Verdict::Kept,
                    format!("{what_changed}, which its state does not depend on"),
                ),
            };
            let from = has_state(c, name).then(|| name.clone());
            lines.push(line(verdict, note, from));
            continue;
        }
        let diff = differences(&old["state"], &cur["state"]);
        // A file sink whose path changed starts the new file; the old one keeps what it has.
        if n.kind == Kind::Sink && old["state"]["format"] == cur["state"]["format"] {
            lines.push(line(
                Verdict::Changed,
                format!(
                    "path changed from {} to {}: starts the new file (the old one keeps what was committed)",
                    show(&old["state"]["path"]),
                    show(&cur["state"]["path"])
                ),
                None,
            ));
            continue;
        }
        if !has_state(c, name) {
            lines.push(line(Verdict::Changed, diff, None));
            continue;
        }
        lines.push(line(Verdict::Refused, diff, None));
    }

    // Nodes in the checkpoint that the file no longer has.
    for (name, v) in then {
        if now.contains_key(name) || taken_over.contains(name) {
            continue;
        }
        let what = v["type"].as_str().unwrap_or("").to_string();
        let is_sink = what.starts_with("sink");
        let (verdict, note) = if !has_state(c, name) {
            (Verdict::Removed, String::new())
        } else if is_sink {
            (
                Verdict::Removed,
                "not in the file; its file keeps what was committed".to_string(),
            )
        } else {
            (
                Verdict::Refused,
                format!(
                    "removed from the file, but the checkpoint holds its state ({}), which would be lost",
                    if what.starts_with("source") {
                        "read offsets"
                    } else {
                        "keyed state"
                    }
                ),
            )
        };
        lines.push(Line {
            node: name.clone(),
            what,
            verdict,
            note,
            from: None,
        });
    }
    Ok(Plan {
        checkpoint: c.id,
        lines,
        warnings: Vec::new(),
    })
}

/// `weir resume PIPELINE --plan`: the plan as text for stdout, and the refusal `resume` would
/// exit with (None when it would resume). Reads the state directory without locking it.
pub fn plan_report(
    spec: &PipelineSpec,
    state: Option<&std::path::PathBuf>,
    from: Option<u64>,
    drops: &[String],
) -> Result<(String, Option<String>)> {
    let g = crate::pipeline::validate::check(spec)?.graph;
    let ck = crate::runtime::settings::checkpoint_settings(spec, state)?;
    if !ck.enabled {
        return Err(Error::usage(
            "checkpoints are off for this pipeline ([checkpoint] every = \"off\"): there is nothing to resume",
        ));
    }
    let store = crate::checkpoint::store::Store::open_read(&ck.dir);
    let Some(c) = store.pick(from, &|m| eprintln!("weir: warning: {m}"))? else {
        return Ok((
            format!(
                "no checkpoint in {}: resume would refuse (or, with --or-start, start from nothing)\n",
                ck.dir.display()
            ),
            None,
        ));
    };
    if c.finished {
        return Ok((
            format!(
                "checkpoint {} in {} is final: the run finished; resume would do nothing\n",
                c.id,
                ck.dir.display()
            ),
            None,
        ));
    }
    let plan = plan(spec, &g, &c, drops)?;
    for w in &plan.warnings {
        eprintln!("weir: warning: {w}");
    }
    let mut text = format!("checkpoint {} in {}\n", c.id, ck.dir.display());
    text.push_str(&plan.render());
    let refusal = plan.refusal();
    text.push_str(&match &refusal {
        Some(_) => format!(
            "resume would refuse: {} node(s) refused\n",
            plan.refused().len()
        ),
        None => format!("resume would continue from checkpoint {}\n", c.id),
    });
    Ok((text, refusal))
}
