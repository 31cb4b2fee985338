//! The half of the `sqlite` and `postgres` sinks that does not depend on the database: the
//! sink's position, what to skip on resume, the table's columns, and when to commit.
//!
//! Output is deterministic, so a sink's position (records it has been given since the start)
//! names its output exactly. Each epoch (the records between two checkpoint barriers) is
//! written in one database transaction that also stores the position in `_weir_commits`; at the
//! barrier the transaction commits and the position goes into the checkpoint. The database is
//! therefore never behind the checkpoint, and may be ahead of it (a crash after the commit,
//! before the checkpoint was durable). On resume, the records between the checkpoint's position
//! and the database's are replayed by upstream and skipped here, so every record lands once.
//!
//! A run that crashed before its first checkpoint has no checkpoint to resume, yet may have
//! committed rows: the lineage (a token kept in the state directory, new with every
//! `weir run`, kept by `weir resume` and restarts) tells such rows, which `resume --or-start`
//! skips, from those of an earlier `weir run`, which it does not.

use crate::error::Error;
use crate::pipeline::spec::TableSinkConfig;
use crate::pipeline::PipelineSpec;
use crate::runtime::message::{Batch, Record};
use crate::runtime::stage::{Operator, Output, StageResult, Stop};
use crate::value::{Map, Str, Value};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The table that holds every sink's position, in every database weir writes.
pub const COMMITS_TABLE: &str = "_weir_commits";

/// A sink's row in `_weir_commits`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub lineage: String,
    /// Records of the sink's output the database holds.
    pub position: u64,
    /// Transactions committed so far.
    pub epoch: u64,
}

/// The kind of value a column was made for, when the table is created from a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColType {
    Int,
    Real,
    Text,
    Bool,
    /// Arrays and objects, stored as JSON text.
    Json,
}

impl ColType {
    pub fn of(v: &Value) -> ColType {
        match v {
            Value::Int(_) => ColType::Int,
            Value::Float(..) => ColType::Real,
            Value::Bool(_) => ColType::Bool,
            Value::Array(_) | Value::Object(_) => ColType::Json,
            Value::Null | Value::Str(_) => ColType::Text,
        }
    }
}

/// Column `col` of a record. Records usually carry their fields in the table's column order,
/// so `fields` (walked along with the columns) has it next; otherwise it is looked up.
#[inline]
pub fn field<'a, 'b>(
    m: &'a Map,
    fields: &mut impl Iterator<Item = (&'b Str, &'a Value)>,
    col: &str,
) -> Option<&'a Value>
where
    'a: 'b,
{
    match fields.next() {
        Some((k, v)) if k.as_str() == col => Some(v),
        _ => m.get(col),
    }
}

/// `CREATE TABLE IF NOT EXISTS` for `table` (quoted already): the columns with their types,
/// and `key` as the primary key; `quote` quotes a column name.
pub fn create_sql(
    table: &str,
    cols: &[(String, String)],
    key: &[String],
    quote: fn(&str) -> String,
) -> String {
    let mut defs: Vec<String> = cols
        .iter()
        .map(|(n, t)| format!("{} {t}", quote(n)))
        .collect();
    if !key.is_empty() {
        let k: Vec<String> = key.iter().map(|k| quote(k)).collect();
        defs.push(format!("PRIMARY KEY ({})", k.join(", ")));
    }
    format!("CREATE TABLE IF NOT EXISTS {table} ({})", defs.join(", "))
}

/// ` ON CONFLICT (key) DO UPDATE SET col = excluded.col, ...` (or `DO NOTHING` when every
/// column is in the key), the upsert clause both databases read.
pub fn on_conflict(cols: &[String], key: &[String], quote: fn(&str) -> String) -> String {
    let k: Vec<String> = key.iter().map(|k| quote(k)).collect();
    let set: Vec<String> = cols
        .iter()
        .filter(|c| !key.contains(c))
        .map(|c| format!("{0} = excluded.{0}", quote(c)))
        .collect();
    if set.is_empty() {
        format!(" ON CONFLICT ({}) DO NOTHING", k.join(", "))
    } else {
        format!(
            " ON CONFLICT ({}) DO UPDATE SET {}",
            k.join(", "),
            set.join(", ")
        )
    }
}

/// What a table sink needs from its database. Every call names the sink in its errors.
pub trait Backend: Send {
    /// The sink's row of `_weir_commits` (created if missing).
    fn read_commit(&mut self, pipeline: &str, sink: &str) -> Result<Option<Commit>, Error>;
    /// The table's columns in order, or None if there is no such table.
    fn columns_of(&mut self, table: &str) -> Result<Option<Vec<String>>, Error>;
    fn sql_type(&self, t: ColType) -> &'static str;
    /// Creates the table (`key` is its primary key) if it does not exist.
    fn create_table(
        &mut self,
        table: &str,
        cols: &[(String, String)],
        key: &[String],
    ) -> Result<(), Error>;
    /// Rows from now on go to `table`'s `cols`; with a `key`, as upserts.
    fn prepare(&mut self, table: &str, cols: &[String], key: &[String]) -> Result<(), Error>;
    /// Writes records in the epoch's transaction, which it begins if none is open.
    fn write(&mut self, records: &[Record]) -> Result<(), Error>;
    /// Stores the sink's row and commits the epoch's transaction.
    fn commit(&mut self, pipeline: &str, sink: &str, c: &Commit) -> Result<(), Error>;
}

pub struct TableSettings {
    pub pipeline: String,
    pub name: String,
    pub table: String,
    /// From the pipeline file, in order: name and SQL type.
    pub columns: Option<Vec<(String, String)>>,
    pub key: Vec<String>,
    /// This state directory's lineage (see the module's note).
    pub lineage: String,
}

impl TableSettings {
    pub fn new(
        spec: &PipelineSpec,
        name: &str,
        c: &TableSinkConfig,
        state_dir: Option<&Path>,
    ) -> Result<TableSettings, Error> {
        let columns = c.columns.as_ref().map(|t| {
            t.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("text").to_string()))
                .collect()
        });
        Ok(TableSettings {
            pipeline: spec.name.clone(),
            name: name.to_string(),
            table: c.table.clone(),
            columns,
            key: c.key.clone(),
            lineage: lineage(name, state_dir)?,
        })
    }
}

/// The lineage token of `state_dir`, made and stored durably the first time. Without a state
/// directory every run is its own lineage.
pub fn lineage(sink: &str, state_dir: Option<&Path>) -> Result<String, Error> {
    let fresh = || {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        format!(
            "{:08x}{:08x}",
            crc32fast::hash(format!("{t}|{}|{sink}", std::process::id()).as_bytes()),
            (t as u64 ^ (t >> 64) as u64) as u32
        )
    };
    let Some(dir) = state_dir else {
        return Ok(fresh());
    };
    let path = dir.join(format!("{sink}.lineage"));
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => return Ok(s.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(Error::runtime(format!(
                "sink '{sink}': cannot read {}: {e}",
                path.display()
            )))
        }
    }
    let l = fresh();
    crate::checkpoint::atomic::write(&path, l.as_bytes())?;
    Ok(l)
}

/// A table sink's state in a checkpoint.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct TableState {
    /// Records of the sink's output that the database held at the checkpoint.
    pub position: u64,
    /// Epochs (transactions) committed.
    pub epochs: u64,
    pub lineage: String,
}

pub struct TableSink<B: Backend> {
    s: TableSettings,
    db: B,
    /// The columns rows are written to, once known.
    cols: Option<Vec<String>>,
    /// Records given to the sink since the start (skipped ones included).
    position: u64,
    epochs: u64,
    lineage: String,
    /// Records the database already holds, still to come from upstream's replay.
    skip: u64,
    /// Rows written since the last commit.
    dirty: bool,
}

impl<B: Backend> TableSink<B> {
    pub fn open(s: TableSettings, mut db: B, state: Option<&[u8]>) -> Result<Self, Error> {
        let name = s.name.clone();
        let restored: Option<TableState> =
            match state {
                None => None,
                Some(b) => Some(serde_json::from_slice(b).map_err(|e| {
                    Error::runtime(format!("sink '{name}': state in checkpoint: {e}"))
                })?),
            };
        let lineage = restored
            .as_ref()
            .map(|r| r.lineage.clone())
            .filter(|l| !l.is_empty())
            .unwrap_or_else(|| s.lineage.clone());
        let at = restored.as_ref().map(|r| r.position).unwrap_or(0);
        let mut epochs = restored.as_ref().map(|r| r.epochs).unwrap_or(0);
        let mut skip = 0;
        if let Some(c) = db.read_commit(&s.pipeline, &name)? {
            if c.lineage == lineage {
                if c.position < at {
                    return Err(Error::runtime(format!(
                        "sink '{name}': the database holds {} records of this sink's output but the checkpoint says {at} were committed: table '{}' or {COMMITS_TABLE} was changed outside weir (restored from a backup?)",
                        c.position, s.table
                    )));
                }
                skip = c.position - at;
                epochs = c.epoch;
            }
        }
        let mut sink = TableSink {
            s,
            db,
            cols: None,
            position: at,
            epochs,
            lineage,
            skip,
            dirty: false,
        };
        // Fail at start, not at the first record, when the table can be settled now.
        if sink.s.columns.is_some() || sink.db.columns_of(&sink.s.table)?.is_some() {
            sink.settle_columns(None)?;
        }
        Ok(sink)
    }

    /// Decides the columns (from the file, the existing table, or `first`'s keys), creating
    /// the table if needed, and prepares the backend's statements.
    fn settle_columns(&mut self, first: Option<&Value>) -> Result<(), Error> {
        let s = &self.s;
        let cols: Vec<String> = if let Some(cols) = &s.columns {
            self.db.create_table(&s.table, cols, &s.key)?;
            cols.iter().map(|c| c.0.clone()).collect()
        } else if let Some(cols) = self.db.columns_of(&s.table)? {
            cols
        } else {
            let Some(Value::Object(m)) = first else {
                return Err(Error::runtime(format!(
                    "sink '{}': table '{}' does not exist and the first record is not an object to take its columns from; give `columns`",
                    s.name, s.table
                )));
            };
            let defs: Vec<(String, String)> = m
                .iter()
                .map(|(k, v)| (k.to_string(), self.db.sql_type(ColType::of(v)).to_string()))
                .collect();
            if let Some(k) = s.key.iter().find(|k| m.get(k).is_none()) {
                return Err(Error::runtime(format!(
                    "sink '{}': key column `{k}` is not a field of the first record, which table '{}' takes its columns from (fields: {})",
                    s.name,
                    s.table,
                    m.keys().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
                )));
            }
            self.db.create_table(&s.table, &defs, &s.key)?;
            defs.into_iter().map(|d| d.0).collect()
        };
        for k in &s.key {
            if !cols.contains(k) {
                return Err(Error::runtime(format!(
                    "sink '{}': key column `{k}` is not a column of table '{}' (columns: {})",
                    s.name,
                    s.table,
                    cols.join(", ")
                )));
            }
        }
        self.db.prepare(&s.table, &cols, &s.key)?;
        self.cols = Some(cols);
        Ok(())
    }

    fn state(&self) -> Result<Vec<u8>, Error> {
        serde_json::to_vec(&TableState {
            position: self.position,
            epochs: self.epochs,
            lineage: self.lineage.clone(),
        })
        .map_err(|e| Error::runtime(e.to_string()))
    }
}

impl<B: Backend> Operator for TableSink<B> {
    fn process(&mut self, _input: usize, batch: Batch, _out: &mut Output) -> StageResult {
        let n = batch.records.len() as u64;
        let skipped = self.skip.min(n);
        self.skip -= skipped;
        self.position += skipped;
        let rest = &batch.records[skipped as usize..];
        if rest.is_empty() {
            return Ok(());
        }
        if self.cols.is_none() {
            self.settle_columns(Some(&rest[0].value))?;
        }
        // An upsert needs the whole key: NULLs never conflict, so such a row would be
        // inserted again on every update instead of replacing its row.
        for r in rest.iter().filter(|_| !self.s.key.is_empty()) {
            let m = r.value.as_object();
            if let Some(k) = self.s.key.iter().find(|k| {
                m.and_then(|m| m.get(k))
                    .is_none_or(|v| matches!(v, Value::Null))
            }) {
                return Err(Stop::Failed(Error::runtime(format!(
                    "sink '{}': a record has no value for key column `{k}` of table '{}' (fields: {})",
                    self.s.name,
                    self.s.table,
                    m.map(|m| m.keys().map(|k| k.as_str()).collect::<Vec<_>>().join(", "))
                        .unwrap_or_else(|| r.value.type_name().to_string())
                ))));
            }
        }
        self.db.write(rest)?;
        self.position += rest.len() as u64;
        self.dirty = true;
        Ok(())
    }

    fn snapshot(&mut self) -> Result<Vec<u8>, Error> {
        if self.dirty {
            crate::crash_point!("table-before-commit");
            let c = Commit {
                lineage: self.lineage.clone(),
                position: self.position,
                epoch: self.epochs + 1,
            };
            self.db.commit(&self.s.pipeline, &self.s.name, &c)?;
            self.epochs += 1;
            self.dirty = false;
            crate::crash_point!("table-after-commit");
        }
        self.state()
    }
}
