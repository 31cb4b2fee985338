//! Which top-level fields each source's records need, so a JSON source parses only those (and
//! skips the rest without allocating). Worked out backwards from the sinks: a sink needs whole
//! records; a transform needs what its expressions read, plus, when it passes records through
//! (`filter`, `dedup`, a window's late output), whatever its own consumers need.

use super::graph::{Graph, Port, Role};
use super::spec::{NodeConfig, OnError};
use super::{Kind, PipelineSpec};
use crate::expr::Expr;
use crate::value::Str;

/// `None` = whole records.
type Need = Option<Vec<Str>>;

fn union(a: Need, b: &Need) -> Need {
    match (a, b) {
        (Some(mut a), Some(b)) => {
            for f in b {
                if !a.contains(f) {
                    a.push(f.clone());
                }
            }
            Some(a)
        }
        _ => None,
    }
}

fn expr_need(src: &str) -> Need {
    Expr::compile(src).ok().and_then(|e| e.input_fields())
}

fn aggs_need(aggs: &toml::Table) -> Need {
    let mut need = Some(Vec::new());
    for v in aggs.values() {
        let text = v.as_str()?;
        let t = text.trim();
        if let (Some(i), true) = (t.find('('), t.ends_with(')')) {
            let arg = t[i + 1..t.len() - 1].trim();
            if !arg.is_empty() {
                need = union(need, &expr_need(arg));
            }
        }
    }
    need
}

/// For each graph node that is a source: the fields its records need (`None`: all).
pub fn source_projections(spec: &PipelineSpec, g: &Graph) -> Vec<Need> {
    let n = g.nodes.len();
    // need[i] = what node i needs of its input records.
    let mut need: Vec<Need> = vec![None; n];
    // What node i's consumers need of its output, per port.
    let out_need = |i: usize, port: Port, need: &Vec<Need>| -> Need {
        let mut acc = Some(Vec::new());
        for &e in &g.nodes[i].outputs {
            if g.edges[e].port == port {
                acc = union(acc, &need[g.edges[e].to]);
            }
        }
        acc
    };
    for i in (0..n).rev() {
        let node = &g.nodes[i];
        need[i] = match &node.role {
            Role::DeadLetter { .. } => Some(Vec::new()),
            Role::Spec(si) => match (&spec.nodes[*si].config, node.kind) {
                (_, Kind::Sink) => None,
                (_, Kind::Source) => None,
                (NodeConfig::Filter(c), _) => {
                    union(expr_need(&c.expr), &out_need(i, Port::Main, &need))
                }
                (NodeConfig::Map(c), _) => expr_need(&c.expr),
                (NodeConfig::Parse(c), _) => {
                    let groups: Vec<String> = match (&c.regex, &c.preset) {
                        (Some(re), _) => regex::Regex::new(re)
                            .map(|r| r.capture_names().flatten().map(String::from).collect())
                            .unwrap_or_default(),
                        (None, Some(p)) => crate::transforms::presets::Preset::fields(p)
                            .iter()
                            .map(|f| f.to_string())
                            .collect(),
                        (None, None) => Vec::new(),
                    };
                    out_need(i, Port::Main, &need).map(|mut v| {
                        v.retain(|f| !groups.iter().any(|g| g == f.as_str()));
                        if !v.iter().any(|f| f.as_str() == c.field) {
                            v.push(Str::new(&c.field));
                        }
                        v
                    })
                }
                (NodeConfig::Aggregate(c), _) => {
                    let mut acc = aggs_need(&c.aggs);
                    if let Some(k) = &c.key {
                        acc = union(acc, &expr_need(k));
                    }
                    if let Some(t) = &c.time {
                        acc = union(acc, &expr_need(t));
                    }
                    acc
                }
                (NodeConfig::Window(c), _) => {
                    let mut acc = union(aggs_need(&c.aggs), &expr_need(&c.time));
                    if let Some(k) = &c.key {
                        acc = union(acc, &expr_need(k));
                    }
                    union(acc, &out_need(i, Port::Late, &need))
                }
                (NodeConfig::Dedup(c), _) => {
                    let mut acc = union(expr_need(&c.key), &out_need(i, Port::Main, &need));
                    if let Some(t) = &c.time {
                        acc = union(acc, &expr_need(t));
                    }
                    acc
                }
                _ => None,
            },
        };
    }
    (0..n)
        .map(|i| {
            let node = &g.nodes[i];
            let Role::Spec(si) = node.role else {
                return None;
            };
            if node.kind != Kind::Source {
                return None;
            }
            // Dead letters show whole records, so such a source reads them whole.
            match &spec.nodes[si].config {
                NodeConfig::FileSource(c) if c.on_error != OnError::DeadLetter => {
                    out_need(i, Port::Main, &need)
                }
                _ => None,
            }
        })
        .collect()
}
