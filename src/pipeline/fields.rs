//! Which fields each source's records need, as paths of keys (`.kubernetes.labels.app` is
//! `["kubernetes", "labels", "app"]`), so a JSON source builds only those (and skips the rest
//! without allocating). Worked out backwards from the sinks: a sink needs whole
//! records; a transform needs what its expressions read, plus, when it passes records through
//! (`filter`, `dedup`, a window's late output), whatever its own consumers need.

use super::graph::{Port, Role};
use super::spec::{NodeConfig, OnError};
use super::validate::Checked;
use super::{Kind, PipelineSpec};
use crate::expr::Expr;
use crate::transforms::{Compiled, ParseWith};
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

/// What the expressions read of a record.
fn reads_need(exprs: &[&Expr]) -> Need {
    let mut need = Some(Vec::new());
    for e in exprs {
        need = union(need, &e.input_paths());
    }
    need
}

/// For each graph node that is a source: the fields its records need, as paths (`None`: all).
pub fn source_projections(spec: &PipelineSpec, c: &Checked) -> Vec<Need> {
    let g = &c.graph;
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
            Role::Spec(si) => match (c.transforms[*si].as_ref(), node.kind) {
                (_, Kind::Sink) | (_, Kind::Source) | (None, _) => None,
                (Some(t @ Compiled::Filter(_)), _) | (Some(t @ Compiled::Dedup { .. }), _) => {
                    union(reads_need(&t.reads()), &out_need(i, Port::Main, &need))
                }
                (Some(t @ Compiled::Window { .. }), _) => {
                    union(reads_need(&t.reads()), &out_need(i, Port::Late, &need))
                }
                (Some(Compiled::Parse { field, with }), _) => {
                    let groups: Vec<&str> = match with {
                        ParseWith::Regex(re) => re.capture_names().flatten().collect(),
                        ParseWith::Preset(p) => p.fields().to_vec(),
                    };
                    let rest = out_need(i, Port::Main, &need).map(|mut v| {
                        v.retain(|p| !groups.iter().any(|g| *g == p[0].as_str()));
                        v
                    });
                    union(rest, &Some(vec![vec![Str::new(field)]]))
                }
                (Some(t), _) => reads_need(&t.reads()),
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
        let need_of = |src: &str| reads_need(&[&Expr::compile(src).unwrap()]);
        assert_eq!(need_of(".a.b + .a"), need(&["a"]));
        assert_eq!(need_of("."), None);
    }
}
