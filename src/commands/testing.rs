//! `weir test`: the `[[tests]]` of a pipeline file, as `vector test` runs Vector's. Each test
//! is a run of the real engine on a copy of the pipeline whose sources read the test's
//! records (from a temporary file), with checkpoints off and the sinks replaced by one that
//! captures what the node under test emitted; so a test exercises exactly what `weir run`
//! would, windows and aggregates firing at the end of the test input.

use crate::error::{Error, ErrorKind, Outcome, Result};
use crate::pipeline::spec::{AtEnd, FileSinkConfig, FileSourceConfig, Format, NodeConfig, OnError};
use crate::pipeline::{Kind, NodeSpec, PipelineSpec};
use crate::runtime::run::{self, Options};
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Deserialize, Debug)]
struct TestsFile {
    #[serde(default)]
    tests: Vec<toml::Spanned<TestCase>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct TestCase {
    name: String,
    input: Option<Records>,
    #[serde(default)]
    inputs: Vec<Records>,
    expect: Records,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Records {
    node: String,
    #[serde(default)]
    records: Vec<toml::Value>,
}

/// The node that captures the output under test; not a name a pipeline can hold.
const CAPTURE: &str = "(expect)";

pub fn execute(spec: &PipelineSpec, quiet: bool) -> Result<Outcome> {
    let file = spec.file.display().to_string();
    let loc = crate::pipeline::Locator::new(&spec.text);
    let tests: TestsFile = toml::from_str(&spec.text).map_err(|e| {
        let (line, col) = loc.at(e.span().map_or(0, |s| s.start));
        Error::usage(format!(
            "{file}:{line}:{col}: [[tests]]: {}",
            e.message().trim_end()
        ))
    })?;
    if tests.tests.is_empty() {
        return Err(Error::usage(format!(
            "{file}: no [[tests]] to run (see `weir test --help`)"
        )));
    }
    // The pipeline itself must be valid before any test of it means anything.
    crate::pipeline::validate::check(spec)?;
    let mut failed = Vec::new();
    let total = tests.tests.len();
    for (i, t) in tests.tests.iter().enumerate() {
        let (line, _) = loc.at(t.span().start);
        let t = t.get_ref();
        let at = format!("{file}:{line}: test '{}'", t.name);
        let case = prepare(spec, t).map_err(|m| Error::usage(format!("{at}: {m}")))?;
        match run_case(spec, &case, i) {
            Ok(actual) => {
                let expected: Vec<serde_json::Value> =
                    t.expect.records.iter().map(to_json).collect();
                if same_records(&expected, &actual) {
                    if !quiet {
                        eprintln!("test '{}' ... ok", t.name);
                    }
                } else {
                    eprintln!(
                        "test '{}' ... FAILED ({at})\n{}",
                        t.name,
                        difference(&t.expect.node, &expected, &actual)
                    );
                    failed.push(t.name.clone());
                }
            }
            Err(e) if e.kind == ErrorKind::Usage => return Err(e.context(at)),
            Err(e) => {
                eprintln!("test '{}' ... FAILED ({at})\n  the run failed: {e}", t.name);
                failed.push(t.name.clone());
            }
        }
    }
    if failed.is_empty() {
        if !quiet {
            eprintln!("{total} tests: all passed");
        }
        Ok(Outcome::Finished)
    } else {
        Err(Error::runtime(format!(
            "{} of {total} tests failed: {}",
            failed.len(),
            failed
                .iter()
                .map(|n| format!("'{n}'"))
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }
}

/// One test, checked against the pipeline: records per source, and what to capture.
struct Case {
    feed: Vec<(String, Vec<serde_json::Value>)>,
    capture_inputs: Vec<String>,
}

fn prepare(spec: &PipelineSpec, t: &TestCase) -> std::result::Result<Case, String> {
    let mut feed: Vec<(String, Vec<serde_json::Value>)> = Vec::new();
    for input in t.input.iter().chain(&t.inputs) {
        match spec.nodes.iter().find(|n| n.name == input.node) {
            Some(n) if n.kind == Kind::Source => {}
            Some(_) => {
                return Err(format!(
                    "input node '{}' is not a source; a test feeds records to sources",
                    input.node
                ))
            }
            None => {
                return Err(format!(
                    "input node '{}' is not in the pipeline",
                    input.node
                ))
            }
        }
        let recs: Vec<serde_json::Value> = input.records.iter().map(to_json).collect();
        match feed.iter_mut().find(|f| f.0 == input.node) {
            Some(f) => f.1.extend_from_slice(&recs),
            None => feed.push((input.node.clone(), recs)),
        }
    }
    if feed.is_empty() {
        return Err("no `input` (or `inputs`) to feed".into());
    }
    let base = t
        .expect
        .node
        .strip_suffix(".late")
        .unwrap_or(&t.expect.node);
    let capture_inputs = match spec.nodes.iter().find(|n| n.name == base) {
        // What reaches a sink is what the test checks of it.
        Some(n) if n.kind == Kind::Sink => n.config.inputs().to_vec(),
        Some(_) => vec![t.expect.node.clone()],
        None => return Err(format!("expect node '{base}' is not in the pipeline")),
    };
    Ok(Case {
        feed,
        capture_inputs,
    })
}

/// Runs one test case; the records the node under test emitted.
fn run_case(spec: &PipelineSpec, case: &Case, i: usize) -> Result<Vec<serde_json::Value>> {
    let dir = TempDir::new(i)?;
    let mut s = spec.clone();
    s.checkpoint.every = Some("off".into());
    s.checkpoint.every_records = None;
    s.restart.attempts = Some(0);
    s.nodes.retain(|n| n.kind != Kind::Sink);
    for (k, n) in s.nodes.iter_mut().enumerate() {
        if n.kind != Kind::Source {
            continue;
        }
        let recs = case
            .feed
            .iter()
            .find(|f| f.0 == n.name)
            .map(|f| f.1.as_slice())
            .unwrap_or_default();
        let path = dir.0.join(format!("source-{k}.jsonl"));
        let mut text = String::new();
        for r in recs {
            text.push_str(&r.to_string());
            text.push('\n');
        }
        std::fs::write(&path, text)
            .map_err(|e| Error::runtime(format!("cannot write {}: {e}", path.display())))?;
        // A bad test record is skipped where the pipeline would skip it or set it aside
        // (the test writes no dead-letter file), and fails the test otherwise.
        let on_error = match &n.config {
            NodeConfig::FileSource(c) => c.on_error,
            NodeConfig::Generate(c) => c.on_error,
            _ => OnError::Fail,
        };
        n.config = NodeConfig::FileSource(FileSourceConfig {
            path: path_str(&path)?,
            format: Some(Format::Jsonl),
            at_end: AtEnd::Finish,
            on_error: match on_error {
                OnError::DeadLetter => OnError::Skip,
                other => other,
            },
            dead_letter: None,
            infer_types: None,
            fingerprint_bytes: None,
        });
    }
    let out = dir.0.join("expect.jsonl");
    s.nodes.push(NodeSpec {
        name: CAPTURE.into(),
        kind: Kind::Sink,
        config: NodeConfig::FileSink(FileSinkConfig {
            inputs: case.capture_inputs.clone(),
            path: path_str(&out)?,
            format: Some(Format::Jsonl),
            delivery: None,
        }),
        span: 0..0,
        input_spans: Vec::new(),
        key_spans: Vec::new(),
    });
    let opts = Options {
        quiet: true,
        progress: Some(crate::cli::Progress::Never),
        ..Default::default()
    };
    run::execute(&s, &opts)?;
    let text = std::fs::read_to_string(&out)
        .map_err(|e| Error::runtime(format!("cannot read {}: {e}", out.display())))?;
    text.lines()
        .map(|l| {
            serde_json::from_str(l)
                .map_err(|e| Error::runtime(format!("captured output is not JSON: {e}: {l}")))
        })
        .collect()
}

fn path_str(p: &Path) -> Result<String> {
    p.to_str()
        .map(str::to_string)
        .ok_or_else(|| Error::runtime(format!("{} is not a UTF-8 path", p.display())))
}

/// A directory of one test's files, removed when the test is done.
struct TempDir(PathBuf);

impl TempDir {
    fn new(i: usize) -> Result<TempDir> {
        let d = std::env::temp_dir().join(format!("weir-test-{}-{i}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d)
            .map_err(|e| Error::runtime(format!("cannot create {}: {e}", d.display())))?;
        Ok(TempDir(d))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn to_json(v: &toml::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        toml::Value::String(s) => J::String(s.clone()),
        toml::Value::Integer(i) => J::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
        toml::Value::Boolean(b) => J::Bool(*b),
        toml::Value::Datetime(d) => J::String(d.to_string()),
        toml::Value::Array(a) => J::Array(a.iter().map(to_json).collect()),
        toml::Value::Table(t) => {
            J::Object(t.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
        }
    }
}

/// Equal as JSON values, with numbers compared by value (an expected `3.0` matches `3`) and
/// object keys in any order.
fn same(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value as J;
    match (a, b) {
        (J::Number(x), J::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        (J::Array(x), J::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (J::Object(x), J::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

fn same_records(expected: &[serde_json::Value], actual: &[serde_json::Value]) -> bool {
    expected.len() == actual.len() && expected.iter().zip(actual).all(|(a, b)| same(a, b))
}

fn difference(node: &str, expected: &[serde_json::Value], actual: &[serde_json::Value]) -> String {
    let list = |v: &[serde_json::Value]| {
        if v.is_empty() {
            "    (none)\n".to_string()
        } else {
            v.iter().map(|r| format!("    {r}\n")).collect()
        }
    };
    let first = expected
        .iter()
        .zip(actual)
        .position(|(a, b)| !same(a, b))
        .unwrap_or(expected.len().min(actual.len()));
    format!(
        "  node '{node}' emitted {} records, {} expected; first difference at record {}\n  expected:\n{}  actual:\n{}",
        actual.len(),
        expected.len(),
        first + 1,
        list(expected),
        list(actual)
    )
    .trim_end()
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_compare_by_value_and_keys_in_any_order() {
        assert!(same(
            &json!({"a": 3.0, "b": [1]}),
            &json!({"b": [1], "a": 3})
        ));
        assert!(!same(&json!({"a": 3.5}), &json!({"a": 3})));
        assert!(!same(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
        assert!(!same(&json!({"a": "1"}), &json!({"a": 1})));
    }
}
