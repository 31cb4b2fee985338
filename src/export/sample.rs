//! The columns of a file source, learnt from its first records, for `weir export flink`.
//!
//! weir's records carry no schema, but a Flink table must declare every column and its
//! type. The exporter reads the first records of the source's files (in weir's order: names
//! sorted, gzip decompressed) and declares what they hold; a field whose values do not
//! share one SQL type is refused rather than declared wrongly.

use super::jq_sql::Ty;
use crate::pipeline::spec::Format;
use crate::sources::formats::{decode_jsonl, infer};
use crate::value::Value;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// Records read to learn the columns.
pub const SAMPLE_RECORDS: usize = 1000;

/// A source's columns in the order they were first seen.
#[derive(Debug, Default, Clone)]
pub struct Columns {
    pub cols: Vec<(String, Ty)>,
}

/// The files a source path names, in the order weir reads them.
pub fn files(path: &Path) -> Result<Vec<PathBuf>, String> {
    let p = path.to_string_lossy();
    if p.contains(['*', '?', '[']) {
        let mut v: Vec<PathBuf> = glob::glob(&p)
            .map_err(|e| format!("bad glob `{p}`: {e}"))?
            .filter_map(|r| r.ok())
            .filter(|f| f.is_file())
            .collect();
        v.sort();
        Ok(v)
    } else if path.is_file() {
        Ok(vec![path.to_path_buf()])
    } else {
        Ok(Vec::new())
    }
}

fn open(f: &Path) -> Result<Box<dyn BufRead>, String> {
    let file = std::fs::File::open(f).map_err(|e| format!("{}: {e}", f.display()))?;
    let r: Box<dyn Read> = if f.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    Ok(Box::new(BufReader::new(r)))
}

/// Reads up to [`SAMPLE_RECORDS`] records of `path` in `format` and declares their columns.
pub fn learn(path: &Path, format: Format) -> Result<Columns, String> {
    let files = files(path)?;
    if files.is_empty() {
        return Err(format!(
            "{} matches no file here: the exporter reads the first records to declare Flink's columns",
            path.display()
        ));
    }
    let mut cols: Vec<(String, Ty)> = Vec::new();
    let mut seen = 0;
    for f in &files {
        if seen >= SAMPLE_RECORDS {
            break;
        }
        let mut r = open(f)?;
        match format {
            Format::Jsonl => {
                let mut line = Vec::new();
                let mut n = 0usize;
                while seen < SAMPLE_RECORDS {
                    line.clear();
                    n += 1;
                    match r.read_until(b'\n', &mut line) {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e) => return Err(format!("{}: {e}", f.display())),
                    }
                    // Bad lines are the source's on_error business, not the schema's.
                    if let Ok(Some(Value::Object(m))) = decode_jsonl(&line, None) {
                        seen += 1;
                        for (k, v) in m.iter() {
                            add(&mut cols, k, v)
                                .map_err(|e| format!("{} line {n}: {e}", f.display()))?;
                        }
                    }
                }
            }
            Format::Csv | Format::Tsv => {
                let mut rd = csv::ReaderBuilder::new()
                    .delimiter(if format == Format::Tsv { b'\t' } else { b',' })
                    .flexible(true)
                    .from_reader(r);
                let header: Vec<String> = rd
                    .headers()
                    .map_err(|e| format!("{}: {e}", f.display()))?
                    .iter()
                    .map(String::from)
                    .collect();
                for (i, rec) in rd.records().enumerate() {
                    if seen >= SAMPLE_RECORDS {
                        break;
                    }
                    let Ok(rec) = rec else { continue };
                    seen += 1;
                    for (k, cell) in header.iter().zip(rec.iter()) {
                        add(&mut cols, k, &infer(cell))
                            .map_err(|e| format!("{} line {}: {e}", f.display(), i + 2))?;
                    }
                }
            }
            Format::Lines => {
                cols = vec![("line".into(), Ty::Str)];
                seen = SAMPLE_RECORDS;
            }
        }
    }
    // A field only ever null is declared a string: it can only pass through as null.
    for (_, t) in cols.iter_mut() {
        if *t == Ty::Null {
            *t = Ty::Str;
        }
    }
    Ok(Columns { cols })
}

fn ty_of(v: &Value) -> Result<Ty, String> {
    Ok(match v {
        Value::Null => Ty::Null,
        Value::Bool(_) => Ty::Bool,
        Value::Int(_) => Ty::Int,
        Value::Float(..) => Ty::Dbl,
        Value::Str(_) => Ty::Str,
        Value::Array(_) => return Err("arrays have no column type here".into()),
        Value::Object(m) => {
            let mut fields = Vec::new();
            for (k, v) in m.iter() {
                add(&mut fields, k, v)?;
            }
            Ty::Row(fields)
        }
    })
}

fn add(cols: &mut Vec<(String, Ty)>, k: &str, v: &Value) -> Result<(), String> {
    let t = ty_of(v).map_err(|e| format!("field `{k}`: {e}"))?;
    match cols.iter_mut().find(|(n, _)| n == k) {
        None => cols.push((k.to_string(), t)),
        Some((_, have)) => {
            *have = merge(have, &t).ok_or_else(|| {
                format!(
                    "field `{k}` holds both {} and {} values; a Flink column has one type",
                    name(have),
                    name(&t)
                )
            })?
        }
    }
    Ok(())
}

fn merge(a: &Ty, b: &Ty) -> Option<Ty> {
    match (a, b) {
        (Ty::Row(x), Ty::Row(y)) => {
            let mut out = x.clone();
            for (k, t) in y {
                match out.iter_mut().find(|(n, _)| n == k) {
                    None => out.push((k.clone(), t.clone())),
                    Some((_, have)) => *have = merge(have, t)?,
                }
            }
            Some(Ty::Row(out))
        }
        _ => super::jq_sql::unify(a, b),
    }
}

fn name(t: &Ty) -> &'static str {
    match t {
        Ty::Str => "string",
        Ty::Int | Ty::Dbl => "number",
        Ty::Bool => "boolean",
        Ty::Row(_) => "object",
        Ty::Null => "null",
    }
}
