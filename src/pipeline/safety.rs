//! Checks that keep a pipeline file from hurting what it touches, run by `validate` and before
//! every run: no sink or dead-letter file may be a source's input (a run would empty the input
//! it reads, or read its own output), `name` is a plain file name and `[checkpoint] dir` is not
//! empty (state stays in the directory they name), and `[restart]` cannot sleep forever.
//!
//! Paths are compared three ways, because each alone misses a case: as written and normalised
//! (`./sub/../in.jsonl`), with symbolic links resolved (a link to the input), and against a
//! glob source's pattern (a sink whose file the glob would match, existing yet or not).

use super::spec::NodeConfig;
use super::{Collector, PipelineSpec};
use std::path::{Path, PathBuf};

/// The longest pause between two restart attempts, however large `backoff` makes it grows
/// (Flink's exponential-delay strategy caps it at 5 minutes too).
pub const MAX_RESTART_DELAY_MS: i64 = 5 * 60 * 1000;

/// The limit most file systems put on one name.
const MAX_NAME_BYTES: usize = 255;

pub(crate) fn check(spec: &PipelineSpec, c: &mut Collector) {
    check_name(spec, c);
    check_checkpoint_dir(spec, c);
    check_restart(spec, c);
    check_outputs_against_inputs(spec, c);
}

/// `name` names the state directory `.weir/<name>/`: it must be one plain file name.
fn check_name(spec: &PipelineSpec, c: &mut Collector) {
    let n = &spec.name;
    let why = if n.is_empty() {
        Some("is empty".to_string())
    } else if n == "." || n == ".." {
        Some(format!(
            "`{n}` names a directory, not a state directory of its own"
        ))
    } else if n.contains('/') {
        Some("holds `/`; it would place the state outside .weir/".to_string())
    } else if n.contains('\0') {
        Some("holds a NUL byte".to_string())
    } else if n.len() > MAX_NAME_BYTES {
        Some(format!(
            "is {} bytes long; file systems allow {MAX_NAME_BYTES}",
            n.len()
        ))
    } else {
        None
    };
    if let Some(why) = why {
        c.at(
            spec.setting_span("name"),
            None,
            format!(
                "`name` {why}: it must be a plain file name (it names the state directory .weir/<name>/)",
            ),
        );
    }
}

fn check_checkpoint_dir(spec: &PipelineSpec, c: &mut Collector) {
    if let Some(d) = &spec.checkpoint.dir {
        if d.trim().is_empty() {
            c.at(
                spec.setting_span("checkpoint.dir"),
                None,
                "[checkpoint] dir is empty: it would put the state beside the pipeline file; \
                 name a directory, or leave `dir` out for .weir/<name>/",
            );
        }
    }
}

fn check_restart(spec: &PipelineSpec, c: &mut Collector) {
    if let Some(b) = spec.restart.backoff {
        if !b.is_finite() || !(1.0..=100.0).contains(&b) {
            c.at(
                spec.setting_span("restart.backoff"),
                None,
                format!(
                    "[restart] backoff = {b}: it must be a number from 1 (the same delay each \
                     time) to 100"
                ),
            );
        }
    }
    if let Some(d) = &spec.restart.delay {
        if let Ok(ms) = super::spec::parse_duration_ms(d) {
            if ms > MAX_RESTART_DELAY_MS {
                c.at(
                    spec.setting_span("restart.delay"),
                    None,
                    format!(
                        "[restart] delay = \"{d}\" is longer than the 5m a restart waits at most"
                    ),
                );
            }
        }
    }
}

/// The next pause between restarts: `backoff` times the last one, never over the cap.
pub fn next_restart_delay(delay_ms: f64, backoff: f64) -> f64 {
    (delay_ms * backoff).min(MAX_RESTART_DELAY_MS as f64)
}

/// Where a path leads once symbolic links are followed: the file itself when it exists,
/// else its (resolved) directory joined with its name, else the path as written.
fn resolved(p: &Path) -> PathBuf {
    if let Ok(r) = p.canonicalize() {
        return r;
    }
    match (p.parent(), p.file_name()) {
        (Some(dir), Some(name)) => match dir.canonicalize() {
            Ok(d) => d.join(name),
            Err(_) => p.to_path_buf(),
        },
        _ => p.to_path_buf(),
    }
}

fn is_glob(p: &str) -> bool {
    p.contains(['*', '?', '['])
}

/// A glob pattern with its literal directory prefix resolved (`logs/*.jsonl` where `logs` is
/// a link to `/var/log/app` also reads as `/var/log/app/*.jsonl`).
fn resolved_pattern(pattern: &Path) -> Option<PathBuf> {
    let mut prefix = PathBuf::new();
    let mut rest = PathBuf::new();
    let mut in_glob = false;
    for comp in pattern.components() {
        let s = comp.as_os_str().to_string_lossy();
        if in_glob || is_glob(&s) {
            in_glob = true;
            rest.push(comp);
        } else {
            prefix.push(comp);
        }
    }
    Some(prefix.canonicalize().ok()?.join(rest))
}

/// What a source reads, ready to be compared with an output path.
struct Input<'a> {
    node: &'a str,
    written: String,
    /// As written, normalised, and with links resolved.
    paths: Vec<PathBuf>,
    /// For a glob: the pattern as written and with its directory resolved.
    patterns: Vec<glob::Pattern>,
}

impl Input<'_> {
    fn takes(&self, out: &Path) -> bool {
        let opts = glob::MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: false,
        };
        let candidates = [out.to_path_buf(), resolved(out)];
        candidates.iter().any(|o| {
            self.paths.iter().any(|p| p == o)
                || self.patterns.iter().any(|g| g.matches_path_with(o, opts))
        })
    }
}

fn check_outputs_against_inputs(spec: &PipelineSpec, c: &mut Collector) {
    let mut inputs = Vec::new();
    for node in &spec.nodes {
        let NodeConfig::FileSource(s) = &node.config else {
            continue;
        };
        if s.path == "-" || s.path.is_empty() {
            continue;
        }
        let p = spec.resolve(&s.path);
        let mut input = Input {
            node: &node.name,
            written: s.path.clone(),
            paths: Vec::new(),
            patterns: Vec::new(),
        };
        if is_glob(&s.path) {
            let text = p.to_string_lossy();
            if let Ok(g) = glob::Pattern::new(&text) {
                input.patterns.push(g);
            }
            if let Some(r) = resolved_pattern(&p) {
                if let Ok(g) = glob::Pattern::new(&r.to_string_lossy()) {
                    input.patterns.push(g);
                }
            }
            // Files the glob matches now, through links of their own.
            if let Ok(found) = glob::glob(&text) {
                input.paths.extend(found.flatten().map(|f| resolved(&f)));
            }
        } else {
            input.paths.push(resolved(&p));
            input.paths.push(p);
        }
        inputs.push(input);
    }
    for node in &spec.nodes {
        let (key, written) = match &node.config {
            NodeConfig::FileSink(s) if s.path != "-" => ("path", &s.path),
            // A SQLite database file over a source's input would destroy it as surely.
            NodeConfig::SqliteSink(s) => match &s.path {
                Some(p) => ("path", p),
                None => continue,
            },
            NodeConfig::FileSource(s) => match &s.dead_letter {
                Some(d) if d != "-" => ("dead_letter", d),
                _ => continue,
            },
            NodeConfig::Generate(s) => match &s.dead_letter {
                Some(d) if d != "-" => ("dead_letter", d),
                _ => continue,
            },
            _ => continue,
        };
        let out = spec.resolve(written);
        for input in inputs.iter().filter(|i| i.takes(&out)) {
            let what = if key == "path" {
                "this sink writes"
            } else {
                "this source's dead-letter file is"
            };
            c.at(
                node.key_span(key),
                Some(&node.name),
                format!(
                    "{what} {}, which source '{}' reads (path = \"{}\"): the run would \
                     overwrite or re-read its own input; write somewhere else",
                    crate::escape::path(&out),
                    input.node,
                    crate::escape::text(&input.written)
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_delay_grows_to_the_cap_and_stays() {
        assert_eq!(next_restart_delay(1000.0, 2.0), 2000.0);
        assert_eq!(
            next_restart_delay(1000.0, 100.0).max(next_restart_delay(200_000.0, 100.0)),
            MAX_RESTART_DELAY_MS as f64
        );
        assert_eq!(
            next_restart_delay(MAX_RESTART_DELAY_MS as f64, 100.0),
            MAX_RESTART_DELAY_MS as f64
        );
    }
}
