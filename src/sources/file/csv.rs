//! CSV and TSV: rows from the csv crate, named by the file's header row, with the exact line
//! and offset of each, bad rows and a bad header sent to `on_error`.

use super::reader::{CsvState, OwnedFeed};
use super::FileSource;
use crate::pipeline::spec::Format;
use crate::runtime::message::Record;
use crate::runtime::stage::{Output, StageResult};
use crate::sources::formats::infer;
use crate::sources::ReadStatus;
use crate::value::{Map, Str, Value};

impl FileSource {
    pub(super) fn read_csv(
        &mut self,
        n: usize,
        out: &mut Output,
    ) -> StageResult<(usize, ReadStatus)> {
        let delim = if self.s.format == Format::Tsv {
            b'\t'
        } else {
            b','
        };
        if self.csv.is_none() {
            let r = self.reader.take().expect("reader open");
            let base = r.offset;
            let base_line = self.current_line();
            let mut r = r;
            // Stdin's CRC must cover exactly the bytes of the records returned, not the
            // parser's read-ahead: the feed hashes them once the parser is past them.
            let crc = r.crc.take();
            let boxed = OwnedFeed {
                pending_start: r.offset,
                r,
                crc,
                pending: Vec::new(),
            };
            // Records end at `\n` only (a CRLF's `\r` is taken off the last field below): with
            // its CRLF mode the csv crate places each record's start on the previous `\n`,
            // which would put every line number and offset one off.
            let reader = csv::ReaderBuilder::new()
                .delimiter(delim)
                .has_headers(false)
                .flexible(true)
                .terminator(csv::Terminator::Any(b'\n'))
                .from_reader(boxed);
            self.csv = Some(CsvState {
                reader,
                base,
                base_line,
            });
        }
        let mut consumed = 0;
        let mut rec = csv::ByteRecord::new();
        while consumed < n {
            let line_before = self.current_line();
            let file_is_bad = self.file_is_bad();
            let cs = self.csv.as_mut().expect("csv open");
            let start = cs.base + cs.reader.position().byte();
            if file_is_bad {
                // Read to the end and dropped, so stdin's position stays true.
                match cs.reader.read_byte_record(&mut rec) {
                    Ok(true) => {
                        let pos = cs.base + cs.reader.position().byte();
                        let lines = cs.base_line + cs.reader.position().line().saturating_sub(1);
                        self.set_csv_position(pos, lines);
                        continue;
                    }
                    _ => return Ok((consumed, ReadStatus::Eof)),
                }
            }
            let more = match cs.reader.read_byte_record(&mut rec) {
                Ok(m) => m,
                Err(e) if e.is_io_error() && self.stdin.is_none() => {
                    self.bad_file(&format!("cannot be read: {e}"), None, out)?;
                    return Ok((consumed + 1, ReadStatus::Eof));
                }
                Err(e) => {
                    let pos = cs.base + cs.reader.position().byte();
                    let lines = cs.base_line + cs.reader.position().line().saturating_sub(1);
                    let origin = self.origin(line_before + 1, start);
                    self.set_csv_position(pos, lines);
                    out.bad(origin, &format!("invalid CSV: {e}"), None, None)?;
                    consumed += 1;
                    continue;
                }
            };
            if !more {
                return Ok((consumed, ReadStatus::Eof));
            }
            let pos = cs.base + cs.reader.position().byte();
            let lines = cs.base_line + cs.reader.position().line().saturating_sub(1);
            // The record knows where it starts (after any CRLF of the previous one).
            let (rec_line, rec_byte) = match rec.position() {
                Some(p) => (cs.base_line + p.line(), cs.base + p.byte()),
                None => (line_before + 1, start),
            };
            let origin = self.origin(rec_line, rec_byte);
            self.set_csv_position(pos, lines);
            let mut cells = Vec::with_capacity(rec.len());
            let mut bad = None;
            let last = rec.len().saturating_sub(1);
            for (i, c) in rec.iter().enumerate() {
                let c = if i == last && c.last() == Some(&b'\r') {
                    &c[..c.len() - 1]
                } else {
                    c
                };
                match std::str::from_utf8(c) {
                    Ok(s) => cells.push(s),
                    Err(_) => {
                        bad = Some(format!("invalid UTF-8 in field {}", i + 1));
                        break;
                    }
                }
            }
            if let Some(msg) = bad {
                let raw = csv_text(&rec, delim);
                if self.header.is_none() {
                    // Without its header no row of the file can be read: taking the next
                    // row as the header would silently misname every field.
                    let msg = format!(
                        "the header (line {}) has {msg}: the file's rows cannot be named, so the file is skipped",
                        origin.line
                    );
                    self.bad_file_at(origin, &msg, Some(&raw), out)?;
                    consumed += 1;
                    continue;
                }
                out.bad(origin, &msg, Some(&raw), None)?;
                consumed += 1;
                continue;
            }
            if cells.len() == 1 && cells[0].is_empty() {
                continue;
            }
            let Some(header) = &self.header else {
                let h: Vec<Str> = cells
                    .iter()
                    .map(|c| Str::new(c.trim_start_matches('\u{feff}')))
                    .collect();
                let hs: Vec<String> = h.iter().map(|x| x.to_string()).collect();
                if let Some(st) = &mut self.stdin {
                    st.header = Some(hs);
                } else if let Some(f) = self.files.get_mut(self.cur) {
                    f.header = Some(hs);
                }
                self.header = Some(h);
                continue;
            };
            if cells.len() != header.len() {
                let raw = csv_text(&rec, delim);
                let msg = format!(
                    "the row has {} fields but the header has {}",
                    cells.len(),
                    header.len()
                );
                out.bad(origin, &msg, Some(&raw), None)?;
                consumed += 1;
                continue;
            }
            let mut m = Map::with_capacity(header.len());
            for (k, c) in header.iter().zip(cells) {
                let v = if self.s.infer_types {
                    infer(c)
                } else {
                    Value::str(c)
                };
                m.insert(k.clone(), v);
            }
            out.push(Record {
                value: Value::Object(m),
                origin,
            });
            consumed += 1;
        }
        Ok((consumed, ReadStatus::More))
    }

    pub(super) fn set_csv_position(&mut self, pos: u64, lines_total: u64) {
        if let Some(st) = &mut self.stdin {
            if let Some(cs) = &mut self.csv {
                cs.reader.get_mut().commit(pos);
            }
            st.consumed = pos;
            st.line = lines_total;
        } else if let Some(f) = self.files.get_mut(self.cur) {
            f.offset = pos;
            f.line = lines_total;
        }
    }
}

/// A CSV row as text again (quoted where needed), for dead letters.
pub(super) fn csv_text(rec: &csv::ByteRecord, delim: u8) -> Vec<u8> {
    let mut w = csv::WriterBuilder::new()
        .delimiter(delim)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    let last = rec.len().saturating_sub(1);
    let fields = rec.iter().enumerate().map(|(i, c)| {
        if i == last && c.last() == Some(&b'\r') {
            &c[..c.len() - 1]
        } else {
            c
        }
    });
    if w.write_record(fields).is_err() {
        return rec.as_slice().to_vec();
    }
    let mut v = w.into_inner().unwrap_or_default();
    if v.last() == Some(&b'\n') {
        v.pop();
    }
    v
}
