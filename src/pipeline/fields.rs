//! Which fields each source's records need, as paths of keys (`.kubernetes.labels.app` is
//! `["kubernetes", "labels", "app"]`), so a JSON source builds only those (and skips the rest
//! without allocating). Worked out backwards from the sinks: a sink needs whole
//! records; a transform needs what its expressions read, plus, when it passes records through
//! (`filter`, `dedup`, a window's late output), whatever its own consumers need.

use super::graph::{Graph, Port, Role};
use super::spec::{NodeConfig, OnError};
use super::{Kind, PipelineSpec};
use crate::expr::Expr;
use crate::value::Str;

/// Paths of keys whose end values are read whole; `None` = whole records.
type Need = Option<Vec<Vec<Str>>>;

/// Both needs: a path that another one starts with is covered by it (`["a"]` covers
/// `["a", "b"]`), so only the shorter is kept.
fn union(a: Need, b: &Need) -> Need {
    match (a, b) {
        (Some(mut a), Some(b)) => {
            for p in b {
                if a.iter().any(|q| p.starts_with(q)) {
                    continue;
                }
                a.retain(|q| !q.starts_with(p));
                a.push(p.clone());
            }
            Some(a)
        }
        _ => None,
    }
}

fn expr_need(src: &str) -> Need {
    union(
        Some(Vec::new()),
        &Expr::compile(src).ok().and_then(|e| e.input_paths()),
    )
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

/// For each graph node that is a source: the fields its records need, as paths (`None`: all).
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
                    let rest = out_need(i, Port::Main, &need).map(|mut v| {
                        v.retain(|p| !groups.iter().any(|g| g == p[0].as_str()));
                        v
                    });
                    union(rest, &Some(vec![vec![Str::new(&c.field)]]))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn need(paths: &[&str]) -> Need {
        Some(
            paths
                .iter()
                .map(|p| p.split('.').map(Str::new).collect())
                .collect(),
        )
    }

    #[test]
    fn a_shorter_path_covers_the_longer_ones_it_starts() {
        assert_eq!(union(need(&["a.b", "c"]), &need(&["a"])), need(&["c", "a"]));
        assert_eq!(
            union(need(&["a"]), &need(&["a.b", "ab"])),
            need(&["a", "ab"])
        );
        assert_eq!(
            union(need(&["a.b"]), &need(&["a.c"])),
            need(&["a.b", "a.c"])
        );
        assert_eq!(union(need(&["a.b"]), &None), None);
        assert_eq!(expr_need(".a.b + .a"), need(&["a"]));
        assert_eq!(expr_need("."), None);
    }
}
