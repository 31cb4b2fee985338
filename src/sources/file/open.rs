//! Opening the current file: checking it is still the file the state knows (else finding
//! where it went), taking its head fingerprint, and choosing how to read it: mapped when read
//! to the end, streamed when it may grow or be truncated underneath (a truncated mapping
//! raises SIGBUS), through a decoder for `.gz`, on a helper thread for a FIFO.

use super::fingerprint::content_prefix;
use super::reader::{Input, KeepTail, Reader, CHUNK};
use super::rotation::{self, is_gz};
use super::stdin::{is_fifo, open_stdin, read_fifo};
use super::FileSource;
use crate::error::Error;
use crate::pipeline::spec::{AtEnd, Format};
use crate::value::Str;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

impl FileSource {
    pub(super) fn open_current(&mut self) -> Result<bool, Error> {
        if self.s.pattern == "-" {
            let st = self.stdin.clone().unwrap_or_default();
            let input = open_stdin(st.consumed, &st, &self.name())?;
            let mut crc = crc32fast::Hasher::new();
            if st.consumed > 0 {
                crc = crc32fast::Hasher::new_with_initial_len(st.crc, st.consumed);
            }
            self.reader = Some(Reader {
                crc: Some(crc),
                ..Reader::new(input, st.consumed)
            });
            self.header = st.header.map(|h| h.into_iter().map(Str::from).collect());
            self.csv_layout = None;
            return Ok(true);
        }
        self.open_file = None;
        self.map_guard = None;
        let Some(mut st) = self.files.get(self.cur).cloned() else {
            return Ok(false);
        };
        if st.gone || st.bad {
            return Ok(true);
        }
        // The name may now belong to another file (rotated since the last scan): check the
        // opened file itself, and if it is not the one we know, find where ours went.
        if is_fifo(&st.path) {
            // Opening a FIFO waits for a writer: that happens on a helper thread, as reading
            // stdin does, so this thread still sees signals and checkpoints meanwhile.
            self.reader = Some(Reader::new(
                Input::Stdin(read_fifo(PathBuf::from(&st.path), &self.name())?),
                st.offset,
            ));
            return Ok(true);
        }
        let mut tries = 0;
        let (mut f, md) = loop {
            let f = match File::open(&st.path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if tries == 0 && (st.dev, st.ino) != (0, 0) {
                        tries += 1;
                        self.scan(false)?;
                        match self.files.get(self.cur) {
                            Some(x) if !x.gone => {
                                st = x.clone();
                                continue;
                            }
                            _ => return Ok(true),
                        }
                    }
                    // Gone between the scan and now (rotated away and deleted).
                    let unread = st.size.saturating_sub(st.offset);
                    if unread > 0 {
                        self.ctx.warn(format!(
                            "source '{}': {} disappeared before it was read to the end: {unread} bytes lost",
                            self.name(),
                            st.path
                        ));
                    }
                    self.files[self.cur].gone = true;
                    return Ok(true);
                }
                Err(e) => {
                    return Err(Error::runtime(format!(
                        "source '{}': cannot open {}: {e}",
                        self.name(),
                        st.path
                    )))
                }
            };
            let md = f
                .metadata()
                .map_err(|e| Error::runtime(format!("{}: {e}", st.path)))?;
            let known = (st.dev, st.ino) != (0, 0);
            let same = (md.dev(), md.ino()) == (st.dev, st.ino)
                && (is_gz(&st.path) || !md.is_file() || rotation::still_same(&f, md.len(), &st));
            if !known || same || tries >= 2 {
                break (f, md);
            }
            tries += 1;
            self.scan(false)?;
            match self.files.get(self.cur) {
                Some(x) if !x.gone => st = x.clone(),
                _ => return Ok(true),
            }
        };
        let path = Path::new(&st.path);
        let gz = is_gz(&st.path);
        self.open_file = if gz { None } else { f.try_clone().ok() };
        let len = md.len();
        // Remember what identifies this file as it is now. A gzip file is known by its
        // decompressed content, so it matches the plain file it was compressed from.
        {
            let fe = &mut self.files[self.cur];
            fe.dev = md.dev();
            fe.ino = md.ino();
            if !gz {
                fe.size = len;
            }
            let want = self.s.fingerprint_bytes as u64;
            if fe.fp_len < want && (gz || fe.fp_len < len) {
                let upto = if gz { want } else { want.min(len) };
                if let Some((n, crc)) = content_prefix(path, upto)? {
                    if n > fe.fp_len {
                        fe.fp_len = n;
                        fe.fp_crc = crc;
                    }
                }
            }
        }
        self.header = st
            .header
            .clone()
            .map(|h| h.into_iter().map(Str::from).collect());
        self.csv_layout = None;
        // CSV and TSV are mapped only for the decode pool (`csv_rows`); the sequential reader
        // streams them.
        let use_map = self.s.at_end == AtEnd::Finish
            && !gz
            && md.is_file()
            && len > 0
            && (self.s.parse_threads > 0 || !matches!(self.s.format, Format::Csv | Format::Tsv));
        let mut kept = Vec::new();
        let check = if gz || use_map {
            None
        } else {
            f.try_clone().ok()
        };
        let input = if use_map {
            // SAFETY: the file is opened read-only. If it is truncated while mapped, touching
            // a page past its new end raises SIGBUS, which `sigbus` turns into a page of zeros
            // for this registered mapping; the source stops at the new end (`shrunk_to`).
            match unsafe { memmap2::Mmap::map(&f) } {
                Ok(m) => {
                    let _ = m.advise(memmap2::Advice::Sequential);
                    self.map_guard = crate::sources::sigbus::protect(m.as_ptr(), m.len());
                    Input::Mapped(Arc::new(m))
                }
                Err(_) => Input::Stream(Box::new(f)),
            }
        } else if gz {
            let mut d: Box<dyn Read + Send> = Box::new(flate2::read::MultiGzDecoder::new(
                std::io::BufReader::with_capacity(CHUNK, f),
            ));
            // Offsets of a gzip file count decompressed bytes; the last of those skipped start
            // the reader's tail (see `note_tail`).
            let mut skip = KeepTail(Vec::new());
            let skipped = std::io::copy(&mut (&mut d).take(st.offset), &mut skip)
                .map_err(|e| Error::runtime(format!("{}: {e}", st.path)))?;
            kept = skip.0;
            if skipped < st.offset {
                return Err(Error::runtime(format!(
                    "source '{}': {} has {skipped} bytes but the checkpoint read {}",
                    self.name(),
                    st.path,
                    st.offset
                )));
            }
            Input::Stream(d)
        } else {
            if st.offset > 0 {
                // The bytes before the offset, checked against the tail fingerprint above.
                let n = st.offset.min(rotation::TAIL_BYTES);
                kept = rotation::pread(&f, st.offset - n, n).unwrap_or_default();
                f.seek(SeekFrom::Start(st.offset)).map_err(|e| {
                    Error::runtime(format!("{}: cannot seek to {}: {e}", st.path, st.offset))
                })?;
            }
            Input::Stream(Box::new(f))
        };
        let start = match &input {
            Input::Mapped(m) => (st.offset as usize).min(m.len()),
            _ => 0,
        };
        let mut reader = Reader {
            start,
            kept,
            check,
            ..Reader::new(input, st.offset)
        };
        if matches!(reader.input, Input::Mapped(_)) {
            reader.skip_bom();
        }
        self.reader = Some(reader);
        Ok(true)
    }

    /// A mapped file that is now shorter than its mapping (truncated while `finish` reads it):
    /// its new length, with a warning the first time. Lines past it are not read: their bytes
    /// are gone (the mapping shows zeros there, see `sigbus`).
    pub(super) fn shrunk_to(&mut self) -> Option<u64> {
        let Some(Input::Mapped(m)) = self.reader.as_ref().map(|r| &r.input) else {
            return None;
        };
        let mapped = m.len() as u64;
        let now = self.open_file.as_ref()?.metadata().ok()?.len();
        if now >= mapped {
            return None;
        }
        let (name, offset) = (self.name(), self.reader.as_ref().map_or(0, |r| r.offset));
        if let Some(f) = self.files.get_mut(self.cur) {
            if f.size == mapped {
                f.size = now;
                self.ctx.warn(format!(
                    "source '{name}': {} shrank from {mapped} to {now} bytes while it was read (at byte {offset}): {} bytes lost",
                    f.path,
                    mapped - now.max(offset)
                ));
            }
        }
        Some(now)
    }
}
