//! CSV and TSV: rows named by the file's header row, with the exact line and offset of each,
//! bad rows and a bad header sent to `on_error`. A mapped file's rows are read by the decode
//! pool's workers ahead of the read position (`read_csv_pooled`, and `csv_rows` for where a
//! job may start); any other input's by the csv crate's reader on the source's thread. Both
//! read with csv-core configured alike and judge a row with `CsvLayout::row`, so records,
//! line numbers, offsets and messages are the same either way.

use super::csv_rows::{csv_text, header_of, CsvLayout, Row, RowOut, RowReader};
use super::decode_pool::Work;
use super::reader::{CsvState, Fill, Input, OwnedFeed, BOM};
use super::{io_stop, FileSource};
use crate::pipeline::spec::Format;
use crate::runtime::message::{Origin, Record};
use crate::runtime::stage::{Output, StageResult};
use crate::sources::ReadStatus;
use crate::value::Str;
use std::sync::Arc;

impl FileSource {
    pub(super) fn read_csv(
        &mut self,
        n: usize,
        out: &mut Output,
    ) -> StageResult<(usize, ReadStatus)> {
        let delim = self.csv_delim();
        if self.csv.is_none() && self.s.parse_threads > 0 {
            if let Some(Input::Mapped(m)) = self.reader.as_ref().map(|r| &r.input) {
                let m = m.clone();
                return self.read_csv_mapped(n, out, m);
            }
        }
        if self.csv.is_none() {
            // Records go out one by one: the aggregate's state is no longer all folded.
            if self.folding.is_some() {
                self.stop_folding();
            }
            // A byte order mark at the start is skipped by the reader as it first fills
            // (`Reader::skip_bom`): that must be done before the parser's base offset is
            // taken, or every offset after it would be 3 short (and a resumed run would start
            // 3 bytes early), and before stdin's CRC is handed to the feed, which must cover it.
            let r = self.reader.as_mut().expect("reader open");
            while r.offset == 0 && r.data().len() < BOM.len() && !r.eof {
                match r.fill() {
                    Ok(Fill::Data | Fill::Eof) => {}
                    Ok(Fill::Idle) => return Ok((0, ReadStatus::Idle)),
                    // A pipe that fails is no bad record: the run fails (resumable).
                    Err(e) if self.stdin.is_some() => return Err(io_stop(&self.s, e)),
                    Err(e) => {
                        self.bad_file(&format!("cannot be read: {e}"), None, out)?;
                        return Ok((1, ReadStatus::Eof));
                    }
                }
            }
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
                primed: false,
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
        let mut layout = self.csv_layout();
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
            let fields = rec.len();
            if self.header.is_none() {
                consumed += self.header_row(rec.iter(), fields, origin, out)?;
                layout = self.csv_layout();
                continue;
            }
            let Some(layout) = &layout else { continue };
            match layout.row(rec.iter(), fields, rec.as_slice()) {
                Row::Blank => {}
                Row::Bad(msg) => {
                    let raw = csv_text(rec.iter(), fields, delim);
                    out.bad(origin, &msg, Some(&raw), None)?;
                    consumed += 1;
                }
                Row::Record(value) => {
                    out.push(Record { value, origin });
                    consumed += 1;
                }
            }
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

    fn csv_delim(&self) -> u8 {
        if self.s.format == Format::Tsv {
            b'\t'
        } else {
            b','
        }
    }

    /// The open file's header with what the pipeline reads of its rows, once the header is
    /// known.
    fn csv_layout(&mut self) -> Option<Arc<CsvLayout>> {
        if self.csv_layout.is_none() {
            let header = self.header.as_ref()?;
            self.csv_layout = Some(Arc::new(CsvLayout::new(
                header,
                self.s.fields.as_deref(),
                self.s.infer_types,
                self.csv_delim(),
            )));
        }
        self.csv_layout.clone()
    }

    /// A row read while the file's header is not known: the header, or a blank line before it.
    /// A header with a field that is not UTF-8 sends the file to `on_error` (without its header
    /// no row can be read: taking the next row as the header would silently misname every
    /// field); returns the records that counts for (1), else 0.
    fn header_row<'a>(
        &mut self,
        fields: impl Iterator<Item = &'a [u8]> + Clone,
        n: usize,
        origin: Origin,
        out: &mut Output,
    ) -> StageResult<usize> {
        match header_of(fields.clone(), n) {
            Err(msg) => {
                let raw = csv_text(fields, n, self.csv_delim());
                let msg = format!(
                    "the header (line {}) has {msg}: the file's rows cannot be named, so the file is skipped",
                    origin.line
                );
                self.bad_file_at(origin, &msg, Some(&raw), out)?;
                Ok(1)
            }
            Ok(None) => Ok(0),
            Ok(Some(h)) => {
                self.set_header(h);
                Ok(0)
            }
        }
    }

    /// Takes `h` as the open file's header, kept in its state for a resumed run.
    fn set_header(&mut self, h: Vec<Str>) {
        let hs: Vec<String> = h.iter().map(|x| x.to_string()).collect();
        if let Some(st) = &mut self.stdin {
            st.header = Some(hs);
        } else if let Some(f) = self.files.get_mut(self.cur) {
            f.header = Some(hs);
        }
        self.header = Some(h);
        self.csv_layout = None;
    }

    /// `read_csv` for a mapped file: the header row (and the rest of a file found bad) on this
    /// thread, row by row, then the rows through the decode pool.
    fn read_csv_mapped(
        &mut self,
        n: usize,
        out: &mut Output,
        map: Arc<memmap2::Mmap>,
    ) -> StageResult<(usize, ReadStatus)> {
        let mut consumed = 0;
        if self.header.is_none() || self.file_is_bad() {
            let delim = self.csv_delim();
            let mut rr = RowReader::new(delim);
            let limit = self.shrunk_to();
            while self.header.is_none() || self.file_is_bad() {
                if consumed >= n {
                    return Ok((consumed, ReadStatus::More));
                }
                let (start, offset) = self.reader.as_ref().map_or((0, 0), |r| (r.start, r.offset));
                let Some((len, lines)) = rr.read(&map[start..]) else {
                    return Ok((consumed, ReadStatus::Eof));
                };
                if limit.is_some_and(|l| offset + len as u64 > l) {
                    // The file was cut short under us: what is past its end is gone.
                    return Ok((consumed, ReadStatus::Eof));
                }
                let origin = self.origin(self.current_line() + 1, offset);
                self.advance(lines, len);
                if self.file_is_bad() {
                    // Read to the end and dropped, as the sequential reader does.
                    continue;
                }
                consumed += self.header_row(rr.fields(), rr.len(), origin, out)?;
            }
        }
        let (k, status) = self.read_csv_pooled(n.saturating_sub(consumed), out, map)?;
        Ok((consumed + k, status))
    }

    /// The rows of a mapped file whose header is known, read by the decode pool's workers
    /// ahead of the read position. Only emitting moves the position, line numbers and
    /// checkpoints, in file order, as in `read_lines_pooled`; and a job is used only if it
    /// starts exactly where the rows before it end (see `csv_rows`).
    fn read_csv_pooled(
        &mut self,
        n: usize,
        out: &mut Output,
        map: Arc<memmap2::Mmap>,
    ) -> StageResult<(usize, ReadStatus)> {
        let Some(layout) = self.csv_layout() else {
            return Ok((0, ReadStatus::More));
        };
        if self.folding.is_some() {
            return self.read_folded(out, map);
        }
        let start = self.reader.as_ref().map_or(0, |r| r.start);
        self.start_pool();
        if self.csv_ready.len() == 0 {
            if let Some(pool) = self.pool.as_mut() {
                pool.reset(&map, start);
            }
        }
        // Where this file's records come from; each row adds its line and offset.
        let here = self.origin(0, 0);
        let mut consumed = 0;
        let mut dropped = 0;
        // The rows emitted since the position last moved: it moves once per run of rows.
        let (mut run_lines, mut run_bytes) = (0u64, 0usize);
        let mut line0 = self.current_line();
        let mut off0 = self.reader.as_ref().map_or(0, |r| r.offset);
        let mut limit = self.shrunk_to();
        while consumed < n {
            let Some(row) = self.csv_ready.next() else {
                self.advance(run_lines, run_bytes);
                (run_lines, run_bytes) = (0, 0);
                line0 = self.current_line();
                off0 = self.reader.as_ref().map_or(0, |r| r.offset);
                // Every row taken back so far is out: the next job must start where they end.
                let at = self.reader.as_ref().map_or(0, |r| r.start);
                let filter = self.s.pushdown.as_ref().map(|(e, _)| e);
                let pool = self.pool.as_mut().expect("pool started");
                pool.top_up(Work::Csv(&layout));
                let Some(job) = pool.take_csv(&layout, filter) else {
                    self.count_dropped(dropped);
                    return Ok((consumed, ReadStatus::Eof));
                };
                if job.start != at {
                    // Cut inside a row (or before the blank lines a row's read starts with):
                    // it and the jobs cut after it are read again from where the rows end.
                    pool.rewind(at);
                    continue;
                }
                (self.csv_ready, self.ready_judged) = (job.rows.into_iter(), job.judged);
                // Hand the next job out before emitting this one, so workers stay busy.
                pool.top_up(Work::Csv(&layout));
                limit = self.shrunk_to();
                continue;
            };
            if limit.is_some_and(|l| off0 + (run_bytes + row.bytes) as u64 > l) {
                // The file was cut short under us: what is past its end is gone.
                self.csv_ready = Vec::new().into_iter();
                self.advance(run_lines, run_bytes);
                self.count_dropped(dropped);
                return Ok((consumed, ReadStatus::Eof));
            }
            let origin = Origin {
                line: line0 + run_lines + 1,
                offset: off0 + run_bytes as u64,
                ..here
            };
            run_lines += row.lines;
            run_bytes += row.bytes;
            match row.out {
                RowOut::Record(value) => {
                    if self.ready_judged {
                        out.push_judged(Record { value, origin });
                    } else {
                        out.push(Record { value, origin });
                    }
                    consumed += 1;
                }
                // Dropped by the pushed-down filter: consumed, as if it had gone to the filter.
                RowOut::Dropped => {
                    consumed += 1;
                    dropped += 1;
                }
                RowOut::Blank => {}
                RowOut::Bad(msg, raw) => {
                    // The position is past the row first, as the sequential reader has it.
                    self.advance(run_lines, run_bytes);
                    (run_lines, run_bytes) = (0, 0);
                    line0 = self.current_line();
                    off0 = self.reader.as_ref().map_or(0, |r| r.offset);
                    out.bad(origin, &msg, Some(&raw), None)?;
                    consumed += 1;
                }
            }
        }
        self.advance(run_lines, run_bytes);
        self.count_dropped(dropped);
        Ok((consumed, ReadStatus::More))
    }
}
