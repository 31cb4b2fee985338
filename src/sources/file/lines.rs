//! Reading line formats (JSON lines, plain lines): cutting lines from the reader's bytes,
//! decoding them (with the decode pool for mapped files, a helper for the rest), and emitting
//! them in input order with their line numbers and offsets.

use super::decode_pool::{DecodePool, Decoded, Work};
use super::reader::{Fill, Input};
use super::{io_stop, FileSource};
use crate::pipeline::spec::{AtEnd, Format};
use crate::runtime::message::{Origin, Record};
use crate::runtime::stage::{Output, StageResult};
use crate::sources::formats::{decode_jsonl, decode_line, strip_cr};
use crate::sources::ReadStatus;
use std::sync::Arc;

impl FileSource {
    /// Reads line-based formats (jsonl, lines).
    pub(super) fn read_lines(
        &mut self,
        n: usize,
        out: &mut Output,
    ) -> StageResult<(usize, ReadStatus)> {
        let mut consumed = 0usize;
        let finish = self.s.at_end == AtEnd::Finish;
        let last = self.is_last_file();
        let jsonl = self.s.format == Format::Jsonl;
        if jsonl && self.s.parse_threads > 0 {
            if let Some(Input::Mapped(m)) = self.reader.as_ref().map(|r| &r.input) {
                let m = m.clone();
                if self.folding.is_some() {
                    return self.read_folded(out, m);
                }
                return self.read_lines_pooled(n, out, m);
            }
        }
        let mut lines: Vec<(usize, usize)> = Vec::new();
        while consumed < n {
            // 1. The complete lines in the bytes at hand: (length, terminator length).
            lines.clear();
            {
                let r = self.reader.as_mut().expect("reader open");
                let data = r.data();
                let mut pos = 0;
                while lines.len() < n - consumed {
                    let from = if pos == 0 { r.scanned } else { pos };
                    match memchr::memchr(b'\n', &data[from..]) {
                        Some(i) => {
                            lines.push((from + i - pos, 1));
                            pos = from + i + 1;
                        }
                        None => {
                            // A last line without a newline is complete when the input is
                            // over for good; when it may still grow, wait for the rest of it.
                            if pos < data.len() && r.eof && (finish || !last) {
                                lines.push((data.len() - pos, 0));
                            }
                            break;
                        }
                    }
                }
                if !lines.is_empty() {
                    // Records go out one by one: the aggregate's state is no longer all
                    // folded.
                    self.folding = None;
                }
                if lines.is_empty() {
                    r.scanned = data.len();
                    if !r.eof {
                        match r.fill() {
                            Ok(Fill::Data | Fill::Eof) => continue,
                            Ok(Fill::Idle) => return Ok((consumed, ReadStatus::Idle)),
                            // A pipe that fails is no bad record: the run fails (resumable).
                            Err(e) if self.stdin.is_some() => return Err(io_stop(&self.s, e)),
                            Err(e) => {
                                self.bad_file(&format!("cannot be read: {e}"), None, out)?;
                                return Ok((consumed + 1, ReadStatus::Eof));
                            }
                        }
                    }
                    return Ok((consumed, ReadStatus::Eof));
                }
            }
            // A mapped file cut short under us: only the lines that are still in it.
            let mut cut_short = false;
            if let Some(limit) = self.shrunk_to() {
                let mut end = self.reader.as_ref().map_or(0, |r| r.offset);
                let keep = lines
                    .iter()
                    .take_while(|(l, t)| {
                        end += (l + t) as u64;
                        end <= limit
                    })
                    .count();
                cut_short = keep < lines.len();
                lines.truncate(keep);
            }
            // 2. Decode them (on two cores when there are enough).
            let results = self.decode_lines(&lines, jsonl);
            // 3. In input order: records out, bad ones to on_error, positions forward.
            for (&line, res) in lines.iter().zip(results) {
                if self.emit_line(line, res, out)? {
                    consumed += 1;
                }
            }
            if cut_short {
                return Ok((consumed, ReadStatus::Eof));
            }
        }
        Ok((consumed, ReadStatus::More))
    }

    /// Emits one decoded line at the read position and moves past it: the record, or the
    /// bad line to `on_error`. Whether it counts as an input record (blank lines do not).
    pub(super) fn emit_line(
        &mut self,
        (len, term): (usize, usize),
        res: Decoded,
        out: &mut Output,
    ) -> StageResult<bool> {
        let line_no = self.current_line() + 1;
        let r = self.reader.as_mut().expect("reader open");
        let origin = Origin {
            source: self.s.node as u32,
            file: if self.stdin.is_some() {
                0
            } else {
                self.cur as u32
            },
            line: line_no,
            offset: r.offset,
        };
        match res {
            Ok(Some(value)) => {
                r.consume(len + term);
                self.note_position(1);
                out.push(Record { value, origin });
                Ok(true)
            }
            Ok(None) => {
                r.consume(len + term);
                self.note_position(1);
                Ok(false)
            }
            Err(msg) => {
                let raw = strip_cr(&r.data()[..len]).to_vec();
                r.consume(len + term);
                self.note_position(1);
                out.bad(origin, &msg, Some(&raw), None)?;
                Ok(true)
            }
        }
    }

    /// Starts the decode pool, once, with what its workers may need: the projection, the
    /// pushed-down filter and what to fold for.
    pub(super) fn start_pool(&mut self) {
        if self.pool.is_none() {
            // At least one worker: `decode_lines` forks to one even when no mapped file is
            // decoded ahead (`WEIR_PARSE_THREADS=0` with cores to spare).
            self.pool = Some(DecodePool::start(
                self.s.parse_threads.max(1),
                self.s.job_bytes,
                self.projector.clone(),
                self.s.pushdown.as_ref().map(|(e, _)| e.clone()),
                self.folding.as_ref().map(|c| c.spec.clone()),
            ));
        }
    }

    /// `read_lines` for JSON lines in a mapped file, decoded by the pool (see `DecodePool`).
    pub(super) fn read_lines_pooled(
        &mut self,
        n: usize,
        out: &mut Output,
        map: Arc<memmap2::Mmap>,
    ) -> StageResult<(usize, ReadStatus)> {
        let start = self.reader.as_ref().map_or(0, |r| r.start);
        self.start_pool();
        let pool = self.pool.as_mut().expect("pool started");
        if self.ready.len() == 0 {
            pool.reset(&map, start);
        }
        // Where this file's records come from; each record adds its line and offset.
        let here = self.origin(0, 0);
        let mut consumed = 0;
        let mut dropped = 0;
        // A run of lines that decoded to records is pushed with positions computed here, and
        // the reader and file positions move once per run rather than once per line.
        let (mut run_lines, mut run_bytes) = (0u64, 0usize);
        let mut line0 = self.current_line();
        let mut off0 = self.reader.as_ref().map_or(0, |r| r.offset);
        let mut limit = self.shrunk_to();
        while consumed < n {
            let Some((line, res)) = self.ready.next() else {
                let pool = self.pool.as_mut().expect("pool started");
                pool.top_up(Work::Decode);
                let filter = self.s.pushdown.as_ref().map(|(e, _)| e);
                match pool.take(self.projector.as_ref(), filter) {
                    Some((job, judged)) => (self.ready, self.ready_judged) = (job, judged),
                    None => {
                        self.advance(run_lines, run_bytes);
                        self.count_dropped(dropped);
                        return Ok((consumed, ReadStatus::Eof));
                    }
                }
                // Hand the next job out before emitting this one, so workers stay busy.
                pool.top_up(Work::Decode);
                limit = self.shrunk_to();
                continue;
            };
            if limit.is_some_and(|l| off0 + (run_bytes + line.0 + line.1) as u64 > l) {
                // The file was cut short under us: what is past its end is gone.
                self.ready = Vec::new().into_iter().zip(Vec::new());
                self.advance(run_lines, run_bytes);
                self.count_dropped(dropped);
                return Ok((consumed, ReadStatus::Eof));
            }
            match res {
                // Dropped by the pushed-down filter: consumed, as if it had gone to the filter.
                None => {
                    run_lines += 1;
                    run_bytes += line.0 + line.1;
                    consumed += 1;
                    dropped += 1;
                }
                Some(Ok(Some(value))) => {
                    let r = Record {
                        value,
                        origin: Origin {
                            line: line0 + run_lines + 1,
                            offset: off0 + run_bytes as u64,
                            ..here
                        },
                    };
                    if self.ready_judged {
                        out.push_judged(r);
                    } else {
                        out.push(r);
                    }
                    run_lines += 1;
                    run_bytes += line.0 + line.1;
                    consumed += 1;
                }
                Some(res) => {
                    self.advance(run_lines, run_bytes);
                    (run_lines, run_bytes) = (0, 0);
                    if self.emit_line(line, res, out)? {
                        consumed += 1;
                    }
                    line0 = self.current_line();
                    off0 = self.reader.as_ref().map_or(0, |r| r.offset);
                }
            }
        }
        self.advance(run_lines, run_bytes);
        self.count_dropped(dropped);
        Ok((consumed, ReadStatus::More))
    }

    /// Decodes consecutive lines at the start of the unconsumed bytes. JSON parsing is the
    /// most expensive step of most pipelines, so when there are cores to spare, the later part
    /// of a large enough batch is parsed by a parse worker while this thread parses the rest;
    /// results come back in order.
    pub(super) fn decode_lines(&mut self, lines: &[(usize, usize)], jsonl: bool) -> Vec<Decoded> {
        let decode_one = |line: &[u8], p: Option<&crate::value::Projector>| -> Decoded {
            if jsonl {
                decode_jsonl(line, p)
            } else {
                decode_line(line).map(Some)
            }
        };
        let mut out = Vec::with_capacity(lines.len());
        let split = if jsonl && self.s.parallel_parse && lines.len() >= 256 {
            lines.len() * 45 / 100
        } else {
            lines.len()
        };
        if split < lines.len() {
            self.start_pool();
        }
        let data = self.reader.as_ref().expect("reader open").data();
        let head: usize = lines[..split].iter().map(|(l, t)| l + t).sum();
        // The later part goes to a worker first, as one copied block (tens of kB; parsing it
        // costs far more than the copy), so that both parts are parsed at once.
        let forked = match self.pool.as_mut() {
            Some(pool) if split < lines.len() => {
                let end = head + lines[split..].iter().map(|(l, t)| l + t).sum::<usize>();
                pool.fork(data[head..end].to_vec(), lines[split..].to_vec())
            }
            _ => None,
        };
        let mut pos = 0;
        for &(len, term) in &lines[..split] {
            out.push(decode_one(&data[pos..pos + len], self.projector.as_ref()));
            pos += len + term;
        }
        if split == lines.len() {
            return out;
        }
        let rest = forked.and_then(|w| self.pool.as_mut()?.join(w));
        match rest {
            Some(rest) => out.extend(rest),
            None => {
                // No worker took the block, or it is gone: decode here.
                for &(len, term) in &lines[split..] {
                    out.push(decode_one(&data[pos..pos + len], self.projector.as_ref()));
                    pos += len + term;
                }
            }
        }
        out
    }
}
