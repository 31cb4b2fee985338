//! The `postgres` sink's database half (the position logic is in `table`): one transaction
//! per epoch over the blocking `postgres` client, rows sent with `COPY ... FROM STDIN` in text
//! format (about ten times faster than inserts). Upserts go through a temporary staging table:
//! COPY into it, then one `INSERT ... ON CONFLICT DO UPDATE` of each key's last row.

use super::table::{Backend, ColType, Commit, COMMITS_TABLE};
use crate::error::Error;
use crate::runtime::message::Record;
use crate::value::Value;
use postgres::{Client, NoTls};
use std::io::Write;

/// Rows are sent once this many bytes of COPY text are buffered (and at every commit).
const COPY_AT: usize = 4 << 20;

const STAGE: &str = "_weir_stage";

pub struct Postgres {
    name: String,
    client: Client,
    cols: Vec<String>,
    /// Per column: whether it is an integer column, which reads an integral number only as
    /// digits (`1`, not `1.0` nor `1e+16`); every other column gets a number's input text when
    /// it kept one (`numeric` keeps `415.50`'s scale, `text` its characters).
    int_cols: Vec<bool>,
    /// `COPY <table or stage> (...) FROM STDIN`.
    copy_sql: String,
    /// With `key`: moves the staged rows into the table.
    merge_sql: Option<String>,
    in_tx: bool,
    buf: Vec<u8>,
    scratch: Vec<u8>,
    /// Staged rows' order, so a key's last row wins.
    seq: u64,
}

/// `a.b` is schema `a`, table `b`; each part is quoted as written.
pub fn quote(ident: &str) -> String {
    ident
        .split('.')
        .map(|p| format!("\"{}\"", p.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(".")
}

fn quote_col(c: &str) -> String {
    format!("\"{}\"", c.replace('"', "\"\""))
}

impl Postgres {
    pub fn connect(name: &str, url: &str) -> Result<Postgres, Error> {
        // The URL is not repeated in messages: it may hold a password.
        let client = Client::connect(url, NoTls).map_err(|e| {
            let why = match e.as_db_error() {
                Some(d) => d.to_string(),
                None => e.to_string(),
            };
            Error::runtime(format!(
                "sink '{name}': cannot connect to PostgreSQL: {why}"
            ))
        })?;
        Ok(Postgres {
            name: name.to_string(),
            client,
            cols: Vec::new(),
            int_cols: Vec::new(),
            copy_sql: String::new(),
            merge_sql: None,
            in_tx: false,
            buf: Vec::new(),
            scratch: Vec::new(),
            seq: 0,
        })
    }

    fn err(&self, what: &str, e: impl std::fmt::Display) -> Error {
        Error::runtime(format!("sink '{}': PostgreSQL: {what}: {e}", self.name))
    }

    /// A `postgres::Error`'s server message when there is one (its Display says only "db error").
    fn pg(&self, what: &str, e: postgres::Error) -> Error {
        match e.as_db_error() {
            Some(d) => self.err(what, d),
            None => self.err(what, e),
        }
    }

    fn begin(&mut self) -> Result<(), Error> {
        if !self.in_tx {
            self.client
                .batch_execute("BEGIN")
                .map_err(|e| self.pg("BEGIN", e))?;
            self.in_tx = true;
        }
        Ok(())
    }

    /// Sends the buffered rows (in the open transaction).
    fn flush(&mut self) -> Result<(), Error> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.begin()?;
        let r = (|| -> Result<(), postgres::Error> {
            let mut w = self.client.copy_in(&self.copy_sql)?;
            // A write error here is the connection's; `finish` reports it as the server saw it.
            let _ = w.write_all(&self.buf);
            w.finish()?;
            Ok(())
        })();
        r.map_err(|e| self.pg("COPY", e))?;
        self.buf.clear();
        if let Some(m) = &self.merge_sql {
            let m = m.clone();
            self.client
                .batch_execute(&m)
                .map_err(|e| self.pg("upsert from the staged rows", e))?;
            self.seq = 0;
        }
        Ok(())
    }

    /// The columns of `table` in their order, each with its type's name (`bigint`, `text`);
    /// none when there is no such table.
    fn columns(&mut self, table: &str) -> Result<Vec<(String, String)>, Error> {
        let rows = self
            .client
            .query(
                "SELECT attname::text, atttypid::regtype::text FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                &[&quote(table)],
            )
            .map_err(|e| self.pg(&format!("reading the columns of table '{table}'"), e))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// One value in COPY text format; `int_col` as in `int_cols`.
    fn cell(&mut self, v: Option<&Value>, int_col: bool) {
        let out = &mut self.buf;
        match v {
            // An integer column reads digits only: an integral number is written as such,
            // whatever its input text (`1.0`, `1e3`) or its printed form (`1e+16`) is.
            Some(Value::Float(f, _)) if int_col && f.fract() == 0.0 && f.abs() < 9.2e18 => {
                out.extend_from_slice(itoa::Buffer::new().format(*f as i64).as_bytes())
            }
            None | Some(Value::Null) => out.extend_from_slice(b"\\N"),
            Some(Value::Bool(b)) => out.push(if *b { b't' } else { b'f' }),
            Some(Value::Int(n)) => out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
            Some(Value::Float(..)) | Some(Value::Array(_)) | Some(Value::Object(_)) => {
                self.scratch.clear();
                if let Some(v) = v {
                    v.write_json(&mut self.scratch);
                }
                escape(out, &self.scratch);
            }
            Some(Value::Str(s)) => escape(out, s.as_bytes()),
        }
    }
}

fn escape(out: &mut Vec<u8>, s: &[u8]) {
    if !s
        .iter()
        .any(|&b| matches!(b, b'\\' | b'\t' | b'\n' | b'\r'))
    {
        out.extend_from_slice(s);
        return;
    }
    for &b in s {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
}

impl Backend for Postgres {
    fn read_commit(&mut self, pipeline: &str, sink: &str) -> Result<Option<Commit>, Error> {
        self.client
            .batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {COMMITS_TABLE} (pipeline text NOT NULL, sink text NOT NULL, lineage text NOT NULL, position bigint NOT NULL, epoch bigint NOT NULL, PRIMARY KEY (pipeline, sink))"
            ))
            .map_err(|e| self.pg("creating _weir_commits", e))?;
        let rows = self
            .client
            .query(
                &format!("SELECT lineage, position, epoch FROM {COMMITS_TABLE} WHERE pipeline = $1 AND sink = $2"),
                &[&pipeline, &sink],
            )
            .map_err(|e| self.pg("reading _weir_commits", e))?;
        Ok(rows.first().map(|r| Commit {
            lineage: r.get(0),
            position: r.get::<_, i64>(1) as u64,
            epoch: r.get::<_, i64>(2) as u64,
        }))
    }

    fn columns_of(&mut self, table: &str) -> Result<Option<Vec<String>>, Error> {
        let names: Vec<String> = self.columns(table)?.into_iter().map(|(n, _)| n).collect();
        Ok((!names.is_empty()).then_some(names))
    }

    fn sql_type(&self, t: ColType) -> &'static str {
        match t {
            ColType::Int => "bigint",
            ColType::Real => "double precision",
            ColType::Bool => "boolean",
            ColType::Text | ColType::Json => "text",
        }
    }

    fn create_table(
        &mut self,
        table: &str,
        cols: &[(String, String)],
        key: &[String],
    ) -> Result<(), Error> {
        let sql = super::table::create_sql(&quote(table), cols, key, quote_col);
        self.client
            .batch_execute(&sql)
            .map_err(|e| self.pg(&format!("creating table '{table}'"), e))
    }

    fn prepare(&mut self, table: &str, cols: &[String], key: &[String]) -> Result<(), Error> {
        let names: Vec<String> = cols.iter().map(|c| quote_col(c)).collect();
        let names = names.join(", ");
        if key.is_empty() {
            self.copy_sql = format!("COPY {} ({names}) FROM STDIN", quote(table));
            self.merge_sql = None;
        } else {
            self.client
                .batch_execute(&format!(
                    "DROP TABLE IF EXISTS pg_temp.{STAGE}; CREATE TEMP TABLE {STAGE} AS SELECT {names}, 0::bigint AS _weir_seq FROM {} WITH NO DATA",
                    quote(table)
                ))
                .map_err(|e| self.pg("creating the staging table", e))?;
            let k: Vec<String> = key.iter().map(|k| quote_col(k)).collect();
            let k = k.join(", ");
            let action = super::table::on_conflict(cols, key, quote_col);
            self.copy_sql = format!("COPY {STAGE} ({names}, _weir_seq) FROM STDIN");
            self.merge_sql = Some(format!(
                "INSERT INTO {} ({names}) SELECT DISTINCT ON ({k}) {names} FROM {STAGE} ORDER BY {k}, _weir_seq DESC{action}; TRUNCATE {STAGE}",
                quote(table)
            ));
        }
        let types = self.columns(table)?;
        self.int_cols = cols
            .iter()
            .map(|c| {
                types
                    .iter()
                    .any(|(n, t)| n == c && matches!(t.as_str(), "smallint" | "integer" | "bigint"))
            })
            .collect();
        self.cols = cols.to_vec();
        Ok(())
    }

    fn write(&mut self, records: &[Record]) -> Result<(), Error> {
        let staged = self.merge_sql.is_some();
        for rec in records {
            let Value::Object(m) = &rec.value else {
                return Err(self.err(
                    "writing a row",
                    format!(
                        "a row must come from an object, got {}",
                        rec.value.type_name()
                    ),
                ));
            };
            let mut fields = m.iter();
            for i in 0..self.cols.len() {
                if i > 0 {
                    self.buf.push(b'\t');
                }
                let v = super::table::field(m, &mut fields, &self.cols[i]);
                self.cell(v, self.int_cols[i]);
            }
            if staged {
                self.buf.push(b'\t');
                self.buf
                    .extend_from_slice(itoa::Buffer::new().format(self.seq).as_bytes());
                self.seq += 1;
            }
            self.buf.push(b'\n');
        }
        if self.buf.len() >= COPY_AT {
            self.flush()?;
        }
        Ok(())
    }

    fn commit(&mut self, pipeline: &str, sink: &str, c: &Commit) -> Result<(), Error> {
        self.flush()?;
        self.begin()?;
        self.client
            .execute(
                &format!("INSERT INTO {COMMITS_TABLE} (pipeline, sink, lineage, position, epoch) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (pipeline, sink) DO UPDATE SET lineage = EXCLUDED.lineage, position = EXCLUDED.position, epoch = EXCLUDED.epoch"),
                &[&pipeline, &sink, &c.lineage, &(c.position as i64), &(c.epoch as i64)],
            )
            .map_err(|e| self.pg("storing the position", e))?;
        self.client
            .batch_execute("COMMIT")
            .map_err(|e| self.pg("COMMIT", e))?;
        self.in_tx = false;
        Ok(())
    }
}
