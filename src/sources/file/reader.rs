//! Bytes of the open input, with the exact offset after each one consumed: a memory-mapped
//! file (no copy, no syscall per chunk), a file read with `read()` (possibly through a gzip
//! decoder), or stdin and FIFOs fed by a helper thread. Kept apart from the source so that how
//! bytes arrive (mapping, growth checks, BOM, buffer growth) is one room, and the `Read` feeds
//! the CSV parser pulls through live beside it.

use super::linebuf::LineBuf;
pub(super) use super::linebuf::CHUNK;
use super::rotation;
use crossbeam_channel::{Receiver, RecvTimeoutError};
use std::fs::File;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

pub(super) const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Where bytes come from.
pub(super) enum Input {
    /// Shared with the decode pool's workers, which parse lines ahead of the read position.
    Mapped(Arc<memmap2::Mmap>),
    /// A file read with `read()` (possibly through a gzip decoder).
    Stream(Box<dyn Read + Send>),
    Stdin(Receiver<std::io::Result<Vec<u8>>>),
}

/// The open input with its read-ahead buffer.
pub(super) struct Reader {
    pub(super) input: Input,
    pub(super) buf: LineBuf,
    /// Unconsumed bytes are `buf[start..end]` (or `map[start..]` when mapped).
    pub(super) start: usize,
    pub(super) end: usize,
    /// The first this many unconsumed bytes hold no newline: a line longer than what one read
    /// brings is searched for its end only in the bytes each read adds, not from its start
    /// again (which made a line of hundreds of MB from a `.gz` take quadratic time).
    pub(super) scanned: usize,
    pub(super) eof: bool,
    /// Absolute offset of `start`.
    pub(super) offset: u64,
    /// Running CRC of consumed bytes (stdin only).
    pub(super) crc: Option<crc32fast::Hasher>,
    /// Mapped input: bytes before this were handed back to the kernel.
    pub(super) released: usize,
    /// Streams: the last consumed bytes before `buf[0]` (up to `rotation::TAIL_BYTES`), so
    /// the tail fingerprint of a `.gz` file can be taken without decompressing it again.
    pub(super) kept: Vec<u8>,
    /// A plain file read as a stream (`pause`, `follow`): the same file, to check before each
    /// read that the bytes just consumed are still there (see `fill`).
    pub(super) check: Option<File>,
}

/// Consumed parts of a mapped file are dropped from memory in steps of this size, so a
/// stateless pipeline's memory does not grow with the size of its input.
pub(super) const RELEASE_STEP: usize = 16 << 20;

pub(super) enum Fill {
    Data,
    Eof,
    Idle,
}

impl Reader {
    /// `input` read from `offset`, nothing buffered yet.
    pub(super) fn new(input: Input, offset: u64) -> Reader {
        Reader {
            input,
            buf: LineBuf::default(),
            start: 0,
            end: 0,
            scanned: 0,
            eof: false,
            offset,
            crc: None,
            released: 0,
            kept: Vec::new(),
            check: None,
        }
    }

    pub(super) fn data(&self) -> &[u8] {
        match &self.input {
            Input::Mapped(m) => &m[self.start..],
            _ => &self.buf[self.start..self.end],
        }
    }

    /// Whether the file read as a stream still holds the bytes just consumed, where they were
    /// (the end of the unconsumed ones, which are in `buf` already).
    pub(super) fn still_there(&self) -> bool {
        let Some(fd) = &self.check else { return true };
        let at = self.offset + (self.end - self.start) as u64;
        if fd.metadata().is_ok_and(|m| m.len() < at) {
            return false;
        }
        let v = self.last_bytes(self.end, 64);
        v.is_empty()
            || rotation::pread(fd, at - v.len() as u64, v.len() as u64).is_some_and(|b| b == v)
    }

    /// Up to `len` bytes just before `buf[upto]` (from `kept` when `buf` has fewer).
    pub(super) fn last_bytes(&self, upto: usize, len: usize) -> Vec<u8> {
        let from_buf = upto.min(len);
        let from_kept = (len - from_buf).min(self.kept.len());
        let mut v = Vec::with_capacity(from_kept + from_buf);
        v.extend_from_slice(&self.kept[self.kept.len() - from_kept..]);
        v.extend_from_slice(&self.buf[upto - from_buf..upto]);
        v
    }

    /// The `len` bytes of a stream just before offset `at` (at most the read position), when
    /// it still has them: the CSV parser reads ahead of the records it returned.
    pub(super) fn consumed_before(&self, at: u64, len: usize) -> Option<Vec<u8>> {
        if matches!(self.input, Input::Mapped(_)) || at > self.offset {
            return None;
        }
        let back = usize::try_from(self.offset - at).ok()?;
        let upto = self.start.checked_sub(back)?;
        let v = self.last_bytes(upto, len);
        (v.len() == len).then_some(v)
    }

    pub(super) fn consume(&mut self, n: usize) {
        if let Some(h) = &mut self.crc {
            let s = self.start;
            h.update(&self.buf[s..s + n]);
        }
        self.start += n;
        self.offset += n as u64;
        self.scanned = 0;
        self.release_to(self.start);
    }

    /// Hands the mapped pages before `pos` back to the kernel, in steps of `RELEASE_STEP`:
    /// the read position, or, while folding, the end of the lines folded so far.
    pub(super) fn release_to(&mut self, pos: usize) {
        if let Input::Mapped(m) = &self.input {
            if pos.saturating_sub(self.released) >= RELEASE_STEP {
                let end = pos & !4095;
                // SAFETY: a read-only, file-backed mapping; these pages are behind the read
                // position (or folded already) and not needed again (records own copies of
                // their data), and if they were (an epoch read again record by record), the
                // kernel would read them back from the file.
                let _ = unsafe {
                    m.unchecked_advise_range(
                        memmap2::UncheckedAdvice::DontNeed,
                        self.released,
                        end - self.released,
                    )
                };
                self.released = end;
            }
        }
    }

    /// A UTF-8 byte order mark at the very start of the input is no part of the data, as jq
    /// and Miller read it: it would make line 1 invalid JSON and `lines` keep U+FEFF. It is
    /// consumed like data, so offsets (and stdin's CRC) stay those of the bytes themselves.
    pub(super) fn skip_bom(&mut self) {
        if self.offset == 0 && self.data().starts_with(BOM) {
            self.consume(BOM.len());
        }
    }

    /// Reads more bytes after the unconsumed ones.
    pub(super) fn fill(&mut self) -> std::io::Result<Fill> {
        if matches!(self.input, Input::Mapped(_)) {
            self.eof = true;
            return Ok(Fill::Eof);
        }
        if !self.still_there() {
            // Truncated or written again in place since the last read: what the next read
            // returns would not follow what was read. The file ends here for this open; the
            // next open finds it replaced (its tail fingerprint is of the bytes consumed).
            self.eof = true;
            return Ok(Fill::Eof);
        }
        if self.start > 0 {
            let tail = rotation::TAIL_BYTES as usize;
            let from = self.start.saturating_sub(tail);
            if self.start - from < tail {
                self.kept.extend_from_slice(&self.buf[from..self.start]);
                let cut = self.kept.len().saturating_sub(tail);
                self.kept.drain(..cut);
            } else {
                self.kept.clear();
                self.kept.extend_from_slice(&self.buf[from..self.start]);
            }
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            // What a huge line grew the buffer to goes back to the kernel once it is consumed.
            self.buf.shrink(self.end)?;
        }
        if self.buf.len() - self.end < CHUNK / 2 {
            self.buf.reserve(self.end + CHUNK, self.end)?;
        }
        match &mut self.input {
            Input::Stream(f) => {
                let n = f.read(&mut self.buf[self.end..])?;
                if n == 0 {
                    self.eof = true;
                    return Ok(Fill::Eof);
                }
                self.end += n;
                self.skip_bom();
                Ok(Fill::Data)
            }
            Input::Stdin(rx) => match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(Ok(chunk)) => {
                    self.buf.reserve(self.end + chunk.len(), self.end)?;
                    self.buf[self.end..self.end + chunk.len()].copy_from_slice(&chunk);
                    self.end += chunk.len();
                    self.skip_bom();
                    Ok(Fill::Data)
                }
                Ok(Err(e)) => Err(e),
                Err(RecvTimeoutError::Timeout) => Ok(Fill::Idle),
                Err(RecvTimeoutError::Disconnected) => {
                    self.eof = true;
                    Ok(Fill::Eof)
                }
            },
            Input::Mapped(_) => Ok(Fill::Eof),
        }
    }
}

/// A sink that keeps the last `rotation::TAIL_BYTES` bytes written to it.
pub(super) struct KeepTail(pub(super) Vec<u8>);

impl std::io::Write for KeepTail {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let tail = rotation::TAIL_BYTES as usize;
        let b2 = &b[b.len().saturating_sub(tail)..];
        self.0.extend_from_slice(b2);
        let cut = self.0.len().saturating_sub(tail);
        self.0.drain(..cut);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A `Read` over the reader's unconsumed bytes, for the CSV parser.
pub(super) struct CsvFeed<'a> {
    pub(super) r: &'a mut Reader,
}

impl Read for CsvFeed<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let d = self.r.data();
            if !d.is_empty() {
                let n = d.len().min(out.len());
                out[..n].copy_from_slice(&d[..n]);
                self.r.consume(n);
                return Ok(n);
            }
            if self.r.eof {
                return Ok(0);
            }
            match self.r.fill()? {
                Fill::Eof => return Ok(0),
                Fill::Data | Fill::Idle => continue,
            }
        }
    }
}

pub(super) struct CsvState {
    /// Bytes consumed by the CSV parser beyond the last record it returned.
    pub(super) reader: csv::Reader<OwnedFeed>,
    pub(super) base: u64,
    pub(super) base_line: u64,
}

/// Owns the reader for the CSV parser.
pub(super) struct OwnedFeed {
    pub(super) r: Reader,
    /// Stdin only: CRC of the bytes before `pending_start`, and the bytes handed to the
    /// parser since then.
    pub(super) crc: Option<crc32fast::Hasher>,
    pub(super) pending: Vec<u8>,
    pub(super) pending_start: u64,
    /// Whether the parser has had bytes: its first read gets one byte, since csv-core drops a
    /// byte order mark at the start of the first bytes it sees, which must only ever be the
    /// file's own (skipped already, see `Reader::skip_bom`), never a row's where a resumed run
    /// starts (see `csv_rows::RowReader`).
    pub(super) primed: bool,
}

impl OwnedFeed {
    /// The parser has consumed everything before `pos`: fold those bytes into the CRC.
    pub(super) fn commit(&mut self, pos: u64) {
        if let Some(h) = &mut self.crc {
            let k = (pos.saturating_sub(self.pending_start) as usize).min(self.pending.len());
            h.update(&self.pending[..k]);
            self.pending.drain(..k);
            self.pending_start += k as u64;
        }
    }

    pub(super) fn crc(&self) -> Option<u32> {
        self.crc.as_ref().map(|h| h.clone().finalize())
    }
}

impl Read for OwnedFeed {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let out = if self.primed || out.is_empty() {
            out
        } else {
            &mut out[..1]
        };
        let n = CsvFeed { r: &mut self.r }.read(out)?;
        self.primed |= n > 0;
        if self.crc.is_some() {
            self.pending.extend_from_slice(&out[..n]);
        }
        Ok(n)
    }
}
