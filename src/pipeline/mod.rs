//! Reading a pipeline file: TOML with spans, `--set` overrides, one config per node, and every
//! problem collected (not just the first) so `weir validate` can list them all at once.

pub mod env;
pub mod fields;
pub mod graph;
pub mod safety;
pub mod spec;
mod suggest;
pub mod validate;

use crate::error::{Error, Result};
use spec::*;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

/// One thing wrong with a pipeline file, located for a human.
#[derive(Debug, Clone)]
pub struct Problem {
    pub line: usize,
    pub col: usize,
    pub node: Option<String>,
    pub message: String,
}

/// All problems of one file; displays one per line as `file:line:col: node 'x': message`.
#[derive(Debug)]
pub struct Problems {
    pub file: PathBuf,
    pub list: Vec<Problem>,
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        for (i, p) in self.list.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}:{}:{}: ", self.file.display(), p.line, p.col)?;
            if let Some(n) = &p.node {
                write!(f, "node '{n}': ")?;
            }
            f.write_str(&p.message)?;
        }
        Ok(())
    }
}

impl From<Problems> for Error {
    fn from(p: Problems) -> Error {
        let n = p.list.len();
        let mut msg = p.to_string();
        if n > 1 {
            msg.push_str(&format!("\n{n} problems in {}", p.file.display()));
        }
        Error::usage(msg)
    }
}

/// Maps byte offsets of the file to 1-based line and column.
pub struct Locator {
    line_starts: Vec<usize>,
    text_len: usize,
}

impl Locator {
    pub fn new(text: &str) -> Locator {
        let mut line_starts = vec![0];
        line_starts.extend(memchr::memchr_iter(b'\n', text.as_bytes()).map(|i| i + 1));
        Locator {
            line_starts,
            text_len: text.len(),
        }
    }
    pub fn at(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text_len);
        let line = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        (line + 1, offset - self.line_starts[line] + 1)
    }
}

/// A node as written in the file.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub name: String,
    pub kind: Kind,
    pub config: NodeConfig,
    /// Span of the node's table, for messages about the node as a whole.
    pub span: Range<usize>,
    /// Span of each entry of `inputs`, in order.
    pub input_spans: Vec<Range<usize>>,
    /// Span of each key's value, for messages about one setting (expressions, paths).
    pub key_spans: Vec<(String, Range<usize>)>,
}

impl NodeSpec {
    pub fn key_span(&self, key: &str) -> Range<usize> {
        self.key_spans
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, s)| s.clone())
            .unwrap_or_else(|| self.span.clone())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Source,
    Transform,
    Sink,
}

impl Kind {
    pub fn table(self) -> &'static str {
        match self {
            Kind::Source => "sources",
            Kind::Transform => "transforms",
            Kind::Sink => "sinks",
        }
    }
}

/// A parsed pipeline file: settings and nodes, before wiring.
#[derive(Debug, Clone)]
pub struct PipelineSpec {
    pub file: PathBuf,
    /// Directory relative paths resolve against.
    pub dir: PathBuf,
    pub text: String,
    pub name: String,
    pub checkpoint: CheckpointConfig,
    pub restart: RestartConfig,
    pub nodes: Vec<NodeSpec>,
    /// Problems found while reading; reported with the wiring and compile problems so that
    /// `validate` lists everything at once.
    pub problems: Vec<Problem>,
    /// Nodes that exist but whose table could not be read (not "missing" for wiring).
    pub broken: Vec<String>,
    /// Spans of the values in `[checkpoint]` and `[restart]` ("checkpoint.every", ...).
    pub setting_spans: Vec<(String, Range<usize>)>,
}

impl PipelineSpec {
    pub fn setting_span(&self, key: &str) -> Range<usize> {
        self.setting_spans
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, s)| s.clone())
            .unwrap_or(0..0)
    }
}

impl PipelineSpec {
    /// Resolves a path written in the pipeline file against the file's own directory.
    pub fn resolve(&self, p: &str) -> PathBuf {
        if p == "-" {
            return PathBuf::from("-");
        }
        let path = Path::new(p);
        let joined = if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.dir.join(path)
        };
        normalize(&joined)
    }
}

/// Removes `.` and `..` lexically, so messages and checkpoints show `/srv/logs/a.log`, not
/// `/srv/etc/../logs/./a.log`. (Symlinks are not resolved: the path the user wrote is kept.)
pub fn normalize(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

pub(crate) struct Collector<'a> {
    pub loc: &'a Locator,
    pub list: Vec<Problem>,
}

impl Collector<'_> {
    pub fn at(&mut self, span: Range<usize>, node: Option<&str>, message: impl Into<String>) {
        let (line, col) = self.loc.at(span.start);
        // One problem, one line: multi-line messages (a regex's caret diagram) are folded.
        let message: String = message.into();
        let message = if message.contains('\n') {
            message
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        } else {
            message
        };
        self.list.push(Problem {
            line,
            col,
            node: node.map(str::to_string),
            message,
        });
    }
}

const TOP_KEYS: &[&str] = &[
    "name",
    "checkpoint",
    "restart",
    "sources",
    "transforms",
    "sinks",
    "tests",
];

/// Reads and parses the file; every problem is returned together.
pub fn load(path: &Path, overrides: &[String]) -> Result<PipelineSpec> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::usage(format!("cannot read pipeline file {}: {e}", path.display())))?;
    parse(path, &text, overrides)
}

pub fn parse(path: &Path, text: &str, overrides: &[String]) -> Result<PipelineSpec> {
    let loc = Locator::new(text);
    let mut c = Collector {
        loc: &loc,
        list: Vec::new(),
    };
    let problems = |c: Collector| Problems {
        file: path.to_path_buf(),
        list: c.list,
    };
    let mut doc = match DeTable::parse(text) {
        Ok(d) => d,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            let mut msg = format!("invalid TOML: {}", e.message().trim_end());
            if msg.ends_with("duplicate key") {
                // Name the key (the parser gives only its place) and where it was set first.
                let key = text.get(span.clone()).unwrap_or("").trim();
                let (line, _) = loc.at(span.start);
                let first = text.lines().take(line.saturating_sub(1)).position(|l| {
                    l.trim_start()
                        .strip_prefix(key)
                        .is_some_and(|r| r.trim_start().starts_with('='))
                });
                msg = format!("invalid TOML: duplicate key `{key}`");
                if let Some(f) = first {
                    msg.push_str(&format!(" (first set on line {})", f + 1));
                }
                msg.push_str("; a key is set once per table");
            }
            c.at(span, None, msg);
            return Err(problems(c).into());
        }
    };
    doc.get_mut().make_owned();
    for o in overrides {
        if let Err(msg) = apply_set(doc.get_mut(), o) {
            c.list.push(Problem {
                line: 0,
                col: 0,
                node: None,
                message: format!("--set {o}: {msg}"),
            });
        }
    }
    env::interpolate(doc.get_mut(), &mut c, &|v| std::env::var(v).ok());
    let doc = doc.into_inner();

    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = abs
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let mut spec = PipelineSpec {
        file: path.to_path_buf(),
        dir,
        text: text.to_string(),
        name: String::new(),
        checkpoint: CheckpointConfig::default(),
        restart: RestartConfig::default(),
        nodes: Vec::new(),
        problems: Vec::new(),
        broken: Vec::new(),
        setting_spans: Vec::new(),
    };

    for (key, value) in doc.iter() {
        let span = value.span();
        match key.get_ref().as_ref() {
            "name" => match value.get_ref().as_str() {
                Some(s) => {
                    spec.name = s.to_string();
                    spec.setting_spans.push(("name".into(), span));
                }
                None => c.at(span, None, "`name` must be a string"),
            },
            "checkpoint" | "restart" => {
                if let Some(t) = value.get_ref().as_table() {
                    for (k, v) in t.iter() {
                        spec.setting_spans
                            .push((format!("{}.{}", key.get_ref(), k.get_ref()), v.span()));
                    }
                }
                if key.get_ref().as_ref() == "restart" {
                    if let Some(v) = deserialize::<RestartConfig>(&mut c, value, None) {
                        spec.restart = v;
                    }
                } else if let Some(v) = deserialize::<CheckpointConfig>(&mut c, value, None) {
                    spec.checkpoint = v;
                }
            }
            "sources" => read_nodes(&mut c, &mut spec, value, Kind::Source),
            "transforms" => read_nodes(&mut c, &mut spec, value, Kind::Transform),
            "sinks" => read_nodes(&mut c, &mut spec, value, Kind::Sink),
            // Read by `weir test` alone; a run ignores them.
            "tests" => {}
            other => c.at(
                key.span(),
                None,
                format!(
                    "unknown key `{other}`{}, expected one of `name`, `checkpoint`, `restart`, `sources`, `transforms`, `sinks`, `tests`",
                    suggest::did_you_mean(other, TOP_KEYS)
                ),
            ),
        }
    }
    if spec.name.is_empty() && !spec.setting_spans.iter().any(|(k, _)| k == "name") {
        spec.name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "pipeline".into());
    }
    spec.problems = c.list;
    Ok(spec)
}

/// Reads a table into its config, reporting every bad key, not just the first: serde stops
/// at the first problem, so the key it points at is set aside and the rest read again. The
/// config read without the bad keys is returned, so that its other settings (expressions,
/// paths) are checked too; the problems already make the file invalid.
fn deserialize<'a, T: serde::de::DeserializeOwned>(
    c: &mut Collector,
    value: &Spanned<DeValue<'a>>,
    node: Option<&str>,
) -> Option<T> {
    let mut value = value.clone();
    let mut set_aside: Vec<String> = Vec::new();
    loop {
        let e = match T::deserialize(ValueDeserializer::from(value.clone())) {
            Ok(v) => return Some(v),
            Err(e) => e,
        };
        let span = e.span().unwrap_or(value.span());
        let message = e.message().to_string();
        // "missing field `expr`" after `expr` was set aside for a wrong type says nothing new.
        if !set_aside
            .iter()
            .any(|k| message.contains(&format!("missing field `{k}`")))
        {
            c.at(span.clone(), node, suggest::unknown_field(&message));
        }
        let table_span = value.span();
        let DeValue::Table(t) = value.get_mut() else {
            return None;
        };
        let culprit = t
            .iter()
            .find(|(k, v)| {
                let (ks, vs) = (k.span(), v.span());
                (ks.start <= span.start && span.start < ks.end.max(ks.start + 1))
                    || (vs.start <= span.start && span.start < vs.end.max(vs.start + 1))
            })
            .map(|(k, _)| k.get_ref().to_string());
        match culprit {
            Some(k) if span != table_span && set_aside.len() < 64 => {
                t.remove(k.as_str());
                set_aside.push(k);
            }
            _ => return None,
        }
    }
}

fn read_nodes<'a>(
    c: &mut Collector,
    spec: &mut PipelineSpec,
    value: &Spanned<DeValue<'a>>,
    kind: Kind,
) {
    let Some(table) = value.get_ref().as_table() else {
        c.at(
            value.span(),
            None,
            format!("`{}` must be a table of named nodes", kind.table()),
        );
        return;
    };
    for (name, node) in table.iter() {
        let name_s = name.get_ref().to_string();
        let n = Some(name_s.as_str());
        if name_s.is_empty()
            || !name_s
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
        {
            c.at(
                name.span(),
                n,
                "a node name may only hold letters, digits, `_` and `-`",
            );
            continue;
        }
        if let Some(prev) = spec.nodes.iter().find(|x| x.name == name_s) {
            c.at(
                name.span(),
                n,
                format!(
                    "the name is already used by [{}.{}]; node names are unique across the file",
                    prev.kind.table(),
                    prev.name
                ),
            );
            continue;
        }
        let Some(t) = node.get_ref().as_table() else {
            c.at(node.span(), n, "a node must be a table");
            spec.broken.push(name_s.clone());
            continue;
        };
        let ty = match t.get("type").map(|v| (v.get_ref().as_str(), v.span())) {
            Some((Some(s), sp)) => (s.to_string(), sp),
            Some((None, sp)) => {
                c.at(sp, n, "`type` must be a string");
                spec.broken.push(name_s.clone());
                continue;
            }
            None => {
                let allowed = match kind {
                    Kind::Source => SOURCE_TYPES,
                    Kind::Transform => TRANSFORM_TYPES,
                    Kind::Sink => SINK_TYPES,
                };
                c.at(
                    node.span(),
                    n,
                    format!("missing `type`, expected one of: {}", allowed.join(", ")),
                );
                spec.broken.push(name_s.clone());
                continue;
            }
        };
        let mut rest = t.clone();
        rest.remove("type");
        let key_spans: Vec<(String, Range<usize>)> = rest
            .iter()
            .map(|(k, v)| (k.get_ref().to_string(), v.span()))
            .collect();
        let input_spans = rest
            .get("inputs")
            .and_then(|v| v.get_ref().as_array())
            .map(|a| a.iter().map(|x| x.span()).collect())
            .unwrap_or_default();
        let body = Spanned::new(node.span(), DeValue::Table(rest));
        let cfg = match (kind, ty.0.as_str()) {
            (Kind::Source, "file") => deserialize(c, &body, n).map(NodeConfig::FileSource),
            (Kind::Source, "generate") => deserialize(c, &body, n).map(NodeConfig::Generate),
            (Kind::Transform, "filter") => deserialize(c, &body, n).map(NodeConfig::Filter),
            (Kind::Transform, "map") => deserialize(c, &body, n).map(NodeConfig::Map),
            (Kind::Transform, "parse") => deserialize(c, &body, n).map(NodeConfig::Parse),
            (Kind::Transform, "aggregate") => deserialize(c, &body, n).map(NodeConfig::Aggregate),
            (Kind::Transform, "window") => deserialize(c, &body, n).map(NodeConfig::Window),
            (Kind::Transform, "dedup") => deserialize(c, &body, n).map(NodeConfig::Dedup),
            (Kind::Sink, "file") => deserialize(c, &body, n).map(NodeConfig::FileSink),
            (Kind::Sink, "exec") => deserialize(c, &body, n).map(NodeConfig::ExecSink),
            (Kind::Sink, "sqlite") => deserialize(c, &body, n).map(NodeConfig::SqliteSink),
            (Kind::Sink, "postgres") => deserialize(c, &body, n).map(NodeConfig::PostgresSink),
            (k, other) => {
                let allowed = match k {
                    Kind::Source => SOURCE_TYPES,
                    Kind::Transform => TRANSFORM_TYPES,
                    Kind::Sink => SINK_TYPES,
                };
                c.at(
                    ty.1,
                    n,
                    format!(
                        "unknown {} type `{other}`{}, expected one of: {}",
                        match k {
                            Kind::Source => "source",
                            Kind::Transform => "transform",
                            Kind::Sink => "sink",
                        },
                        suggest::did_you_mean(other, allowed),
                        allowed.join(", ")
                    ),
                );
                None
            }
        };
        if cfg.is_none() {
            spec.broken.push(name_s.clone());
        }
        if let Some(config) = cfg {
            spec.nodes.push(NodeSpec {
                name: name_s,
                kind,
                config,
                span: node.span(),
                input_spans,
                key_spans,
            });
        }
    }
}

/// Applies `a.b.c=VALUE` to the document. VALUE is read as a TOML value when it is one
/// (`42`, `true`, `"x"`, `["a","b"]`) and as a plain string otherwise (`/tmp/x`).
fn apply_set<'a>(doc: &mut DeTable<'a>, set: &str) -> std::result::Result<(), String> {
    let (path, raw) = set
        .split_once('=')
        .ok_or_else(|| "expected KEY=VALUE".to_string())?;
    let keys: Vec<&str> = path.trim().split('.').collect();
    if keys.iter().any(|k| k.is_empty()) {
        return Err(format!("`{path}` is not a dotted path"));
    }
    // A few bytes per `--set`, once per process: simpler than re-owning a parsed value.
    let leaked: &'static str = Box::leak(raw.to_string().into_boxed_str());
    let value: DeValue<'static> = match DeValue::parse(leaked) {
        Ok(v) if !matches!(v.get_ref(), DeValue::Table(_)) => v.into_inner(),
        _ => DeValue::String(std::borrow::Cow::Borrowed(leaked)),
    };
    let mut table = doc;
    for (i, k) in keys.iter().enumerate() {
        if i + 1 == keys.len() {
            let key = Spanned::new(0..0, std::borrow::Cow::Owned(k.to_string()));
            table.insert(key, Spanned::new(0..0, value));
            return Ok(());
        }
        if table.get(*k).is_none() {
            let key = Spanned::new(0..0, std::borrow::Cow::Owned(k.to_string()));
            table.insert(key, Spanned::new(0..0, DeValue::Table(DeTable::new())));
        }
        table = match table.get_mut(*k).map(|v| v.get_mut()) {
            Some(DeValue::Table(t)) => t,
            _ => return Err(format!("`{k}` in `{path}` is not a table")),
        };
    }
    Ok(())
}
