//! The `sqlite` sink's database half (the position logic is in `table`): SQLite through
//! rusqlite with SQLite compiled in, in WAL mode so readers see whole epochs only while a run
//! writes, with `synchronous = FULL` because the checkpoint counts on a committed epoch
//! surviving a power cut. One prepared statement, one transaction per epoch.
//!
//! A sink that is the only one of its pipeline writing its file writes rows straight into the
//! epoch's transaction, holding the file's write lock until the barrier. Sinks that share a
//! file must not: one waiting for the lock stops reading its input, which can stop the
//! barrier from reaching the sink that holds it. Those stage each epoch's rows in a TEMP table
//! (a separate file, no lock on the database) and move them over in one short transaction
//! at the barrier.

use super::table::{Backend, ColType, Commit, COMMITS_TABLE};
use crate::error::Error;
use crate::runtime::message::Record;
use crate::value::Value;
use rusqlite::Connection;
use std::path::{Path, PathBuf};

/// How long a write waits for another writer's lock before the run fails (and restarts).
const BUSY_TIMEOUT_MS: u64 = 5000;

pub struct Sqlite {
    name: String,
    path: PathBuf,
    conn: Connection,
    /// The insert (or upsert) statement, once the columns are known.
    sql: String,
    cols: Vec<String>,
    /// Per column: whether it has TEXT affinity, where a number that kept its input text
    /// (`415.50`) is stored as that text; other columns store numbers as SQLite numbers.
    text_cols: Vec<bool>,
    in_tx: bool,
    json: Vec<u8>,
    /// Rows go to a TEMP staging table first (see the module's note).
    staged: bool,
    /// With `staged`: moves the staged rows into the table, in order.
    merge_sql: String,
}

const STAGE: &str = "_weir_stage";

pub fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

impl Sqlite {
    pub fn open(name: &str, path: &Path, staged: bool) -> Result<Sqlite, Error> {
        super::create_parent(name, path)?;
        let conn = Connection::open(path).map_err(|e| {
            Error::runtime(format!(
                "sink '{name}': cannot open SQLite database {}: {e}",
                path.display()
            ))
        })?;
        let db = Sqlite {
            name: name.to_string(),
            path: path.to_path_buf(),
            conn,
            sql: String::new(),
            cols: Vec::new(),
            text_cols: Vec::new(),
            in_tx: false,
            json: Vec::new(),
            staged,
            merge_sql: String::new(),
        };
        db.conn
            .busy_timeout(std::time::Duration::from_millis(BUSY_TIMEOUT_MS))
            .map_err(|e| db.err("setting the busy timeout of", e))?;
        db.conn
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| db.err("switching to WAL mode", e))?;
        db.conn
            .pragma_update(None, "synchronous", "FULL")
            .map_err(|e| db.err("setting synchronous = FULL on", e))?;
        Ok(db)
    }

    fn err(&self, what: &str, e: rusqlite::Error) -> Error {
        let hint = match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                " (another process holds a write lock on it)"
            }
            Some(rusqlite::ErrorCode::ReadOnly) => " (the file or its directory is read-only)",
            _ => "",
        };
        Error::runtime(format!(
            "sink '{}': {what} SQLite database {}: {e}{hint}",
            self.name,
            self.path.display()
        ))
    }

    fn begin(&mut self) -> Result<(), Error> {
        if !self.in_tx {
            // IMMEDIATE: take the write lock now, so a busy database fails here, not halfway.
            // Staged rows only touch the TEMP database, which a deferred transaction leaves
            // the main file's lock alone for.
            let sql = if self.staged {
                "BEGIN"
            } else {
                "BEGIN IMMEDIATE"
            };
            self.conn
                .execute_batch(sql)
                .map_err(|e| self.err("beginning a transaction in", e))?;
            self.in_tx = true;
        }
        Ok(())
    }
}

/// SQLite's rule for a declared type's affinity: TEXT when it names CHAR, CLOB or TEXT and not
/// INT (which comes first).
fn is_text_affinity(declared: &str) -> bool {
    let t = declared.to_ascii_uppercase();
    !t.contains("INT") && ["CHAR", "CLOB", "TEXT"].iter().any(|w| t.contains(w))
}

impl Sqlite {
    /// Per column of `cols`: whether `table`'s declared type for it has TEXT affinity.
    fn text_affinity(&self, table: &str, cols: &[String]) -> Result<Vec<bool>, Error> {
        let r = (|| {
            let mut st = self
                .conn
                .prepare(&format!("PRAGMA main.table_info({})", quote(table)))?;
            let types = st
                .query_map([], |row| {
                    Ok((row.get::<_, String>(1)?, row.get::<_, String>(2)?))
                })?
                .collect::<Result<Vec<(String, String)>, _>>()?;
            Ok(cols
                .iter()
                .map(|c| types.iter().any(|(n, t)| n == c && is_text_affinity(t)))
                .collect())
        })();
        r.map_err(|e| {
            self.err(
                &format!("reading the column types of table '{table}' in"),
                e,
            )
        })
    }
}

impl Backend for Sqlite {
    fn read_commit(&mut self, pipeline: &str, sink: &str) -> Result<Option<Commit>, Error> {
        self.conn
            .execute_batch(&format!(
                "CREATE TABLE IF NOT EXISTS {COMMITS_TABLE} (pipeline TEXT NOT NULL, sink TEXT NOT NULL, lineage TEXT NOT NULL, position INTEGER NOT NULL, epoch INTEGER NOT NULL, PRIMARY KEY (pipeline, sink))"
            ))
            .map_err(|e| self.err("creating _weir_commits in", e))?;
        let r = self.conn.query_row(
            &format!("SELECT lineage, position, epoch FROM {COMMITS_TABLE} WHERE pipeline = ?1 AND sink = ?2"),
            [pipeline, sink],
            |row| {
                Ok(Commit {
                    lineage: row.get(0)?,
                    position: row.get::<_, i64>(1)? as u64,
                    epoch: row.get::<_, i64>(2)? as u64,
                })
            },
        );
        match r {
            Ok(c) => Ok(Some(c)),
            Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
            Err(e) => Err(self.err("reading _weir_commits of", e)),
        }
    }

    fn columns_of(&mut self, table: &str) -> Result<Option<Vec<String>>, Error> {
        let r = (|| {
            let mut st = self
                .conn
                .prepare(&format!("PRAGMA table_info({})", quote(table)))?;
            let names = st
                .query_map([], |row| row.get::<_, String>(1))?
                .collect::<Result<Vec<String>, _>>()?;
            Ok(names)
        })();
        match r {
            Ok(v) if v.is_empty() => Ok(None),
            Ok(v) => Ok(Some(v)),
            Err(e) => Err(self.err(&format!("reading the columns of table '{table}' in"), e)),
        }
    }

    fn sql_type(&self, t: ColType) -> &'static str {
        match t {
            ColType::Int | ColType::Bool => "INTEGER",
            ColType::Real => "REAL",
            ColType::Text | ColType::Json => "TEXT",
        }
    }

    fn create_table(
        &mut self,
        table: &str,
        cols: &[(String, String)],
        key: &[String],
    ) -> Result<(), Error> {
        let sql = super::table::create_sql(&quote(table), cols, key, quote);
        self.conn
            .execute_batch(&sql)
            .map_err(|e| self.err(&format!("creating table '{table}' in"), e))
    }

    fn prepare(&mut self, table: &str, cols: &[String], key: &[String]) -> Result<(), Error> {
        let names: Vec<String> = cols.iter().map(|c| quote(c)).collect();
        let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
        let mut sql = format!(
            "INSERT INTO main.{} ({}) VALUES ({})",
            quote(table),
            names.join(", "),
            marks.join(", ")
        );
        if !key.is_empty() {
            sql.push_str(&super::table::on_conflict(cols, key, quote));
        }
        if self.staged {
            self.conn
                .execute_batch(&format!(
                    "DROP TABLE IF EXISTS temp.{STAGE}; CREATE TEMP TABLE {STAGE} AS SELECT {} FROM main.{} WHERE 0",
                    names.join(", "),
                    quote(table)
                ))
                .map_err(|e| self.err("creating the staging table for", e))?;
            // `WHERE true` lets SQLite read ON CONFLICT as the upsert clause (its parser
            // needs it after a SELECT); ORDER BY rowid keeps the rows' order, so a key's
            // last row wins.
            let (head, tail) = sql.split_once(" VALUES ").unwrap_or((&sql, ""));
            let conflict = tail.split_once(" ON CONFLICT").map(|x| x.1).unwrap_or("");
            self.merge_sql = format!(
                "{head} SELECT {} FROM temp.{STAGE} WHERE true ORDER BY rowid{}{conflict}; DELETE FROM temp.{STAGE}",
                names.join(", "),
                if conflict.is_empty() { "" } else { " ON CONFLICT" }
            );
            sql = format!(
                "INSERT INTO temp.{STAGE} ({}) VALUES ({})",
                names.join(", "),
                marks.join(", ")
            );
        }
        // Compile it now: a wrong table or key fails before any data is read.
        self.conn
            .prepare_cached(&sql)
            .map_err(|e| self.err(&format!("preparing the insert into '{table}' of"), e))?;
        self.sql = sql;
        self.text_cols = self.text_affinity(table, cols)?;
        self.cols = cols.to_vec();
        Ok(())
    }

    fn write(&mut self, records: &[Record]) -> Result<(), Error> {
        self.begin()?;
        let r = (|| -> Result<(), String> {
            let mut st = self
                .conn
                .prepare_cached(&self.sql)
                .map_err(|e| e.to_string())?;
            for rec in records {
                let Value::Object(m) = &rec.value else {
                    return Err(format!(
                        "a row must come from an object, got {}",
                        rec.value.type_name()
                    ));
                };
                let mut fields = m.iter();
                for (i, c) in self.cols.iter().enumerate() {
                    let r = match super::table::field(m, &mut fields, c) {
                        None | Some(Value::Null) => {
                            st.raw_bind_parameter(i + 1, rusqlite::types::Null)
                        }
                        Some(Value::Bool(b)) => st.raw_bind_parameter(i + 1, *b as i64),
                        Some(Value::Int(n)) => st.raw_bind_parameter(i + 1, *n),
                        Some(Value::Float(_, Some(lit))) if self.text_cols[i] => {
                            st.raw_bind_parameter(i + 1, lit.as_str())
                        }
                        Some(Value::Float(f, _)) => st.raw_bind_parameter(i + 1, *f),
                        Some(Value::Str(s)) => st.raw_bind_parameter(i + 1, s.as_str()),
                        Some(v) => {
                            self.json.clear();
                            v.write_json(&mut self.json);
                            st.raw_bind_parameter(
                                i + 1,
                                std::str::from_utf8(&self.json).unwrap_or_default(),
                            )
                        }
                    };
                    r.map_err(|e| e.to_string())?;
                }
                st.raw_execute().map_err(|e| e.to_string())?;
            }
            Ok(())
        })();
        r.map_err(|e| {
            Error::runtime(format!(
                "sink '{}': writing to SQLite database {}: {e}",
                self.name,
                self.path.display()
            ))
        })
    }

    fn commit(&mut self, pipeline: &str, sink: &str, c: &Commit) -> Result<(), Error> {
        if self.staged {
            if self.in_tx {
                self.conn
                    .execute_batch("COMMIT")
                    .map_err(|e| self.err("staging rows for", e))?;
                self.in_tx = false;
            }
            self.conn
                .execute_batch("BEGIN IMMEDIATE")
                .map_err(|e| self.err("beginning a transaction in", e))?;
            self.in_tx = true;
            let merge = std::mem::take(&mut self.merge_sql);
            let r = self.conn.execute_batch(&merge);
            self.merge_sql = merge;
            r.map_err(|e| self.err("moving the staged rows into", e))?;
        }
        self.begin()?;
        self.conn
            .execute(
                &format!("INSERT INTO {COMMITS_TABLE} (pipeline, sink, lineage, position, epoch) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (pipeline, sink) DO UPDATE SET lineage = excluded.lineage, position = excluded.position, epoch = excluded.epoch"),
                rusqlite::params![pipeline, sink, c.lineage, c.position as i64, c.epoch as i64],
            )
            .map_err(|e| self.err("storing the position in", e))?;
        self.conn
            .execute_batch("COMMIT")
            .map_err(|e| self.err("committing to", e))?;
        self.in_tx = false;
        Ok(())
    }
}
