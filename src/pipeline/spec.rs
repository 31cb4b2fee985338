//! The pipeline file's schema: one serde struct per table, `deny_unknown_fields` everywhere so a
//! misspelt key is an error, not a silently ignored setting.

use serde::Deserialize;

#[derive(Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct CheckpointConfig {
    /// Time between checkpoints ("2s"), or "off".
    pub every: Option<String>,
    /// Records read (over all sources) between checkpoints.
    pub every_records: Option<u64>,
    pub retain: Option<usize>,
    /// State directory; relative paths resolve against the pipeline file's directory.
    pub dir: Option<String>,
}

#[derive(Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct RestartConfig {
    pub attempts: Option<u32>,
    pub delay: Option<String>,
    pub backoff: Option<f64>,
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum AtEnd {
    #[default]
    Finish,
    Pause,
    Follow,
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    #[default]
    Fail,
    Skip,
    DeadLetter,
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Jsonl,
    Csv,
    Tsv,
    Lines,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct FileSourceConfig {
    pub path: String,
    pub format: Option<Format>,
    #[serde(default)]
    pub at_end: AtEnd,
    #[serde(default)]
    pub on_error: OnError,
    pub dead_letter: Option<String>,
    pub infer_types: Option<bool>,
    /// Bytes at the start of a file that identify it across renames (default 1024).
    pub fingerprint_bytes: Option<usize>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct GenerateConfig {
    /// Records to make; without it the source never ends.
    pub count: Option<u64>,
    /// Records per second (wall clock pacing only; the records themselves do not change).
    pub rate: Option<f64>,
    #[serde(default)]
    pub seed: u64,
    /// Distinct users in the synthetic records.
    pub keys: Option<u64>,
    #[serde(default)]
    pub at_end: AtEnd,
    #[serde(default)]
    pub on_error: OnError,
    pub dead_letter: Option<String>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct ExprConfig {
    pub inputs: Vec<String>,
    pub expr: String,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct ParseConfig {
    pub inputs: Vec<String>,
    pub field: String,
    /// Named groups become fields; or `preset`, a known log format.
    pub regex: Option<String>,
    pub preset: Option<String>,
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Emit {
    #[default]
    Final,
    Updates,
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum TimeUnit {
    #[default]
    S,
    Ms,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct AggregateConfig {
    pub inputs: Vec<String>,
    pub key: Option<String>,
    pub aggs: toml::Table,
    #[serde(default)]
    pub emit: Emit,
    pub state_ttl: Option<String>,
    /// Event time for `state_ttl`; without it the TTL counts records.
    pub time: Option<String>,
    pub time_unit: Option<TimeUnit>,
    /// strftime format of `time` strings that are not RFC 3339.
    pub time_format: Option<String>,
    /// Instances that share the keys (see `transforms::parallel`); 1 when absent.
    pub parallelism: Option<i64>,
    /// Key groups the keys are hashed into, fixed at the first run (default 128).
    pub max_parallelism: Option<i64>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    pub inputs: Vec<String>,
    pub key: Option<String>,
    pub time: String,
    pub time_unit: Option<TimeUnit>,
    /// strftime format of `time` strings that are not RFC 3339.
    pub time_format: Option<String>,
    pub size: Option<String>,
    pub slide: Option<String>,
    pub gap: Option<String>,
    pub out_of_orderness: Option<String>,
    pub allowed_lateness: Option<String>,
    pub aggs: toml::Table,
    /// Instances that share the keys (see `transforms::parallel`); 1 when absent.
    pub parallelism: Option<i64>,
    /// Key groups the keys are hashed into, fixed at the first run (default 128).
    pub max_parallelism: Option<i64>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct DedupConfig {
    pub inputs: Vec<String>,
    pub key: String,
    /// A duration of event time (with `time`), or a number of records (without).
    pub ttl: toml::Value,
    pub time: Option<String>,
    pub time_unit: Option<TimeUnit>,
    /// strftime format of `time` strings that are not RFC 3339.
    pub time_format: Option<String>,
    /// Instances that share the keys (see `transforms::parallel`); 1 when absent.
    pub parallelism: Option<i64>,
    /// Key groups the keys are hashed into, fixed at the first run (default 128).
    pub max_parallelism: Option<i64>,
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Delivery {
    #[default]
    AtLeastOnce,
    ExactlyOnce,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    pub inputs: Vec<String>,
    pub path: String,
    pub format: Option<Format>,
    /// Only meaningful for stdout: files are always exactly-once.
    pub delivery: Option<Delivery>,
}

/// `exec`: hands each checkpoint epoch's records to a command (see `sinks::exec`).
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct ExecSinkConfig {
    pub inputs: Vec<String>,
    /// The argv; no shell unless it names one.
    pub command: Vec<String>,
    pub format: Option<Format>,
    /// How long one epoch's command may run (default "5m").
    pub timeout: Option<String>,
}

/// `sqlite` and `postgres`: rows into a table (see `sinks::table`). `path` is the SQLite
/// file, `url` the libpq connection string; each type takes only its own.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct TableSinkConfig {
    pub inputs: Vec<String>,
    pub path: Option<String>,
    pub url: Option<String>,
    pub table: String,
    /// Column name -> SQL type, in order; without it, the first record's keys.
    pub columns: Option<toml::Table>,
    /// Upsert on these columns instead of plain inserts.
    #[serde(default)]
    pub key: Vec<String>,
}

/// What a node is, after its `type` key has been read.
#[derive(Debug, Clone)]
pub enum NodeConfig {
    FileSource(FileSourceConfig),
    Generate(GenerateConfig),
    Filter(ExprConfig),
    Map(ExprConfig),
    Parse(ParseConfig),
    Aggregate(AggregateConfig),
    Window(WindowConfig),
    Dedup(DedupConfig),
    FileSink(FileSinkConfig),
    ExecSink(ExecSinkConfig),
    SqliteSink(TableSinkConfig),
    PostgresSink(TableSinkConfig),
}

impl NodeConfig {
    pub fn type_name(&self) -> &'static str {
        match self {
            NodeConfig::FileSource(_) | NodeConfig::FileSink(_) => "file",
            NodeConfig::Generate(_) => "generate",
            NodeConfig::Filter(_) => "filter",
            NodeConfig::Map(_) => "map",
            NodeConfig::Parse(_) => "parse",
            NodeConfig::Aggregate(_) => "aggregate",
            NodeConfig::Window(_) => "window",
            NodeConfig::Dedup(_) => "dedup",
            NodeConfig::ExecSink(_) => "exec",
            NodeConfig::SqliteSink(_) => "sqlite",
            NodeConfig::PostgresSink(_) => "postgres",
        }
    }

    pub fn inputs(&self) -> &[String] {
        match self {
            NodeConfig::FileSource(_) | NodeConfig::Generate(_) => &[],
            NodeConfig::Filter(c) | NodeConfig::Map(c) => &c.inputs,
            NodeConfig::Parse(c) => &c.inputs,
            NodeConfig::Aggregate(c) => &c.inputs,
            NodeConfig::Window(c) => &c.inputs,
            NodeConfig::Dedup(c) => &c.inputs,
            NodeConfig::FileSink(c) => &c.inputs,
            NodeConfig::ExecSink(c) => &c.inputs,
            NodeConfig::SqliteSink(c) | NodeConfig::PostgresSink(c) => &c.inputs,
        }
    }
}

/// Key groups of a keyed node when `max_parallelism` is not set (Flink's default too).
pub const DEFAULT_MAX_PARALLELISM: i64 = 128;
/// The most key groups a keyed node may have (Flink's limit): a key group fits 15 bits.
pub const MAX_MAX_PARALLELISM: i64 = 32_768;

/// `parallelism` and `max_parallelism` of a keyed node (`aggregate`, `window`, `dedup`), with
/// the defaults, as written (`transforms::build` checks them); `None` for other nodes.
pub fn keyed_parallelism(c: &NodeConfig) -> Option<(i64, i64)> {
    let (p, m) = match c {
        NodeConfig::Aggregate(a) => (a.parallelism, a.max_parallelism),
        NodeConfig::Window(w) => (w.parallelism, w.max_parallelism),
        NodeConfig::Dedup(d) => (d.parallelism, d.max_parallelism),
        _ => return None,
    };
    Some((p.unwrap_or(1), m.unwrap_or(DEFAULT_MAX_PARALLELISM)))
}

pub const SOURCE_TYPES: &[&str] = &["file", "generate"];
pub const TRANSFORM_TYPES: &[&str] = &["filter", "map", "parse", "aggregate", "window", "dedup"];
pub const SINK_TYPES: &[&str] = &["file", "exec", "sqlite", "postgres"];

/// The longest duration accepted: 100 years. Longer ones are typos (`"999999999999999h"`) and
/// would overflow event-time arithmetic (window ends past the year 9999).
pub const MAX_DURATION_MS: i64 = 100 * 365 * 86_400_000;

/// Parses "500ms", "2s", "1m", "1h30m", "1d", "1.5s" into milliseconds, exactly: decimal
/// digits are read as integers, so a duration that is not a whole number of milliseconds
/// ("0.5ms") is refused rather than rounded, and one past [`MAX_DURATION_MS`] is refused
/// rather than saturated.
pub fn parse_duration_ms(s: &str) -> Result<i64, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    if t == "0" {
        return Ok(0);
    }
    let not_duration =
        || format!("`{s}` is not a duration (like \"500ms\", \"10s\", \"1m\", \"1h30m\")");
    let too_long = || format!("`{s}` is longer than the longest duration accepted (100 years)");
    let mut total: i128 = 0;
    let b = t.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let start = i;
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
            i += 1;
        }
        if start == i {
            return Err(not_duration());
        }
        let (whole, frac) = match t[start..i].split_once('.') {
            Some((w, f)) => (w, f),
            None => (&t[start..i], ""),
        };
        if (whole.is_empty() && frac.is_empty()) || frac.contains('.') {
            return Err(not_duration());
        }
        let ustart = i;
        while i < b.len() && b[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit_ms: i128 = match &t[ustart..i] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => return Err(format!("`{s}` needs a unit (ms, s, m, h, d)")),
            u => return Err(format!("unknown unit `{u}` in `{s}` (use ms, s, m, h, d)")),
        };
        // 19 digits fit an i128 times any unit; more is past the limit anyway (or zeros).
        let digits = |d: &str| -> Result<i128, String> {
            let d = d.trim_start_matches('0');
            if d.len() > 19 {
                return Err(too_long());
            }
            Ok(if d.is_empty() {
                0
            } else {
                d.parse().map_err(|_| not_duration())?
            })
        };
        let frac = frac.trim_end_matches('0');
        if frac.len() > 12 {
            return Err(format!("`{s}` is not a whole number of milliseconds"));
        }
        let scale = 10i128.pow(frac.len() as u32);
        let f = if frac.is_empty() { 0 } else { digits(frac)? } * unit_ms;
        if f % scale != 0 {
            return Err(format!(
                "`{s}` is not a whole number of milliseconds (the smallest unit is 1ms)"
            ));
        }
        total += digits(whole)? * unit_ms + f / scale;
        if total > MAX_DURATION_MS as i128 {
            return Err(too_long());
        }
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
    }
    Ok(total as i64)
}

/// The format of a path, from the config or its extension.
pub fn source_format(path: &str, f: Option<Format>) -> Format {
    f.unwrap_or_else(|| match ext(path).as_deref() {
        Some("csv") => Format::Csv,
        Some("tsv") | Some("tab") => Format::Tsv,
        Some("log") | Some("txt") => Format::Lines,
        _ => Format::Jsonl,
    })
}

pub fn sink_format(path: &str, f: Option<Format>) -> Format {
    f.unwrap_or_else(|| match ext(path).as_deref() {
        Some("csv") => Format::Csv,
        Some("tsv") | Some("tab") => Format::Tsv,
        _ => Format::Jsonl,
    })
}

fn ext(path: &str) -> Option<String> {
    let p = path.strip_suffix(".gz").unwrap_or(path);
    let name = p.rsplit('/').next()?;
    let (_, e) = name.rsplit_once('.')?;
    Some(e.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("500ms"), Ok(500));
        assert_eq!(parse_duration_ms("2s"), Ok(2000));
        assert_eq!(parse_duration_ms("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration_ms("1.5s"), Ok(1500));
        assert!(parse_duration_ms("5").is_err());
        assert!(parse_duration_ms("5x").is_err());
        assert!(parse_duration_ms("").is_err());
        assert_eq!(parse_duration_ms("1.1s"), Ok(1100));
        assert_eq!(parse_duration_ms("0.001s"), Ok(1));
        assert_eq!(parse_duration_ms(".5s"), Ok(500));
        assert_eq!(parse_duration_ms("0.50s"), Ok(500));
        assert_eq!(parse_duration_ms("36500d"), Ok(MAX_DURATION_MS));
        for bad in [
            "0.5ms",
            "0.0001s",
            "1.2.3s",
            ".s",
            "999999999999999h",
            "36501d",
        ] {
            assert!(parse_duration_ms(bad).is_err(), "{bad}");
        }
        assert!(parse_duration_ms("99999999999999999999999999999h").is_err());
    }
}
