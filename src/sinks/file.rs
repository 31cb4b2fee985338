//! The `file` sink: JSON lines, CSV or TSV to a file or stdout.
//!
//! A file sink's checkpoint state is its committed length: at a barrier it flushes and fsyncs,
//! and `resume` truncates the file back to that length before writing, so whatever an
//! interrupted run wrote after its last checkpoint is replaced by the same bytes again.
//! stdout cannot be truncated: it is at-least-once, or exactly-once through a spool file whose
//! contents are released only once the checkpoint that covers them is durable.

use super::spool::Spool;
use crate::error::Error;
use crate::pipeline::spec::{Delivery, Format};
use crate::runtime::message::Batch;
use crate::runtime::stage::{Operator, Output, StageResult, Stop};
use crate::value::Value;
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;

const FLUSH_AT: usize = 256 * 1024;

/// Bytes written to an output file after which the kernel is asked to start writing them to
/// disk (`start_writeback`): the fsync of the next checkpoint then waits only for the last of
/// them, not for all the output of the epoch (2.3 ms of a 70 ms run's final checkpoint for
/// 9 MB of output). RocksDB's `bytes_per_sync` does the same.
const WRITEBACK_AT: u64 = 1 << 20;

#[derive(Serialize, Deserialize, Default, Debug, Clone)]
pub struct SinkState {
    /// Bytes of the output file (or spool) covered by the checkpoint.
    pub committed: u64,
    /// The CSV header in force at that point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<Vec<String>>,
    /// Exactly-once stdout: bytes of the spool already released to stdout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released: Option<u64>,
}

enum Target {
    File(File),
    Stdout,
    /// Exactly-once stdout: records go to this spool first (see `spool`).
    Spool(Spool),
}

pub struct FileSink {
    name: String,
    path: PathBuf,
    format: Format,
    target: Target,
    buf: Vec<u8>,
    /// Bytes written to the target (flushed or in `buf`).
    written: u64,
    header: Option<Vec<String>>,
    /// Bytes written to the file since its writeback was last started.
    unsynced: u64,
    /// CSV/TSV: the writer, kept for the sink's life, and a scratch buffer for one cell.
    csv: Option<csv::Writer<Vec<u8>>>,
    csv_copied: usize,
    cell: Vec<u8>,
}

impl FileSink {
    /// Opens the sink. `restored` is its state from a checkpoint: the file is truncated to the
    /// committed length; without it the file is created empty.
    pub fn open(
        name: &str,
        path: PathBuf,
        format: Format,
        delivery: Delivery,
        spool_dir: Option<PathBuf>,
        restored: Option<SinkState>,
    ) -> Result<FileSink, Error> {
        let st = restored.clone().unwrap_or_default();
        let stdout = path.as_os_str() == "-";
        let target = if stdout && delivery == Delivery::ExactlyOnce {
            let dir = spool_dir.ok_or_else(|| {
                Error::usage(format!(
                    "sink '{name}': delivery = \"exactly-once\" to stdout needs checkpoints (a state directory)"
                ))
            })?;
            Target::Spool(Spool::open(
                name,
                &dir,
                restored.as_ref().map(|r| r.committed),
            )?)
        } else if stdout {
            Target::Stdout
        } else {
            super::create_parent(name, &path)?;
            let f = open_truncated(&path, st.committed, restored.is_some()).map_err(|e| {
                Error::runtime(format!(
                    "sink '{name}': cannot open {}: {e}",
                    path.display()
                ))
            })?;
            Target::File(f)
        };
        Ok(FileSink {
            name: name.to_string(),
            path,
            format,
            target,
            buf: Vec::with_capacity(FLUSH_AT + 64 * 1024),
            written: st.committed,
            header: st.header,
            unsynced: 0,
            csv: None,
            csv_copied: 0,
            cell: Vec::new(),
        })
    }

    fn io_err(&self, what: &str, e: std::io::Error) -> Stop {
        let target = if self.path.as_os_str() == "-" {
            "stdout".to_string()
        } else {
            self.path.display().to_string()
        };
        Stop::Failed(Error::runtime(format!(
            "sink '{}': {what} {target}: {e}",
            self.name
        )))
    }

    fn write_out(&mut self) -> StageResult {
        if self.buf.is_empty() {
            return Ok(());
        }
        let at = self.written - self.buf.len() as u64;
        let r = write_to(&mut self.target, at, &self.buf, &mut self.unsynced);
        self.buf.clear();
        r.map_err(|e| self.write_err(e))
    }

    fn write_err(&self, e: std::io::Error) -> Stop {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            // The reader went away (`| head`): stop quietly, as ripgrep does.
            return Stop::Disconnected;
        }
        self.io_err("cannot write", e)
    }

    fn encode(&mut self, v: &Value) -> StageResult {
        match self.format {
            Format::Jsonl | Format::Lines => {
                // Most records are small: straight into `buf`, whose writes serde_json inlines
                // (through `Spill`, a call per piece was most of the sink's time).
                if text_below(v, FLUSH_AT / 4) {
                    let before = self.buf.len();
                    v.write_json(&mut self.buf);
                    self.buf.push(b'\n');
                    self.written += (self.buf.len() - before) as u64;
                    return if self.buf.len() >= FLUSH_AT {
                        self.write_out()
                    } else {
                        Ok(())
                    };
                }
                // Through `Spill`, so a huge record is not copied whole into `buf` first.
                let mut w = Spill {
                    sink: self,
                    failed: None,
                };
                let r = serde_json::to_writer(&mut w, v)
                    .and_then(|()| w.write_all(b"\n").map_err(serde_json::Error::io));
                if let Some(stop) = w.failed.take() {
                    return Err(stop);
                }
                r.map_err(|e| Stop::Failed(Error::runtime(format!("sink '{}': {e}", self.name))))
            }
            Format::Csv | Format::Tsv => {
                let before = self.buf.len();
                self.encode_csv(v)?;
                self.written += (self.buf.len() - before) as u64;
                Ok(())
            }
        }
    }

    fn encode_csv(&mut self, v: &Value) -> StageResult {
        let Value::Object(m) = v else {
            return Err(Stop::Failed(Error::runtime(format!(
                "sink '{}': CSV and TSV output need records that are objects, got {}",
                self.name,
                v.type_name()
            ))));
        };
        let same = self.header.as_ref().is_some_and(|h| {
            h.len() == m.len() && h.iter().zip(m.keys()).all(|(a, b)| a == b.as_str())
        });
        let delim = if self.format == Format::Tsv {
            b'\t'
        } else {
            b','
        };
        // One writer for the sink's life (it owns an 8 kB buffer); cells are written as bytes,
        // strings as they are and other values as JSON, without a String per cell.
        let w = self.csv.get_or_insert_with(|| {
            // Flexible: a new block may have another number of fields than the one before.
            csv::WriterBuilder::new()
                .delimiter(delim)
                .flexible(true)
                .from_writer(Vec::new())
        });
        let cell = &mut self.cell;
        if !same && self.header.is_some() {
            // A new set of fields starts a new block with its own header, after a blank line
            // (as Miller's csvlite does; the csv writer would write an empty record as `""`).
            self.buf.push(b'\n');
        }
        let r = (|| -> csv::Result<()> {
            if !same {
                w.write_record(m.keys().map(|k| k.as_bytes()))?;
            }
            for x in m.values() {
                match x {
                    Value::Str(s) => w.write_field(s.as_bytes())?,
                    Value::Null => w.write_field(b"")?,
                    other => {
                        cell.clear();
                        other.write_json(cell);
                        w.write_field(&cell[..])?;
                    }
                }
            }
            w.write_record(None::<&[u8]>)?;
            w.flush()?;
            Ok(())
        })();
        // Copy out what this record added; start a fresh writer now and then, at a record
        // boundary, so its output buffer stays small.
        let written = w.get_ref();
        self.buf.extend_from_slice(&written[self.csv_copied..]);
        self.csv_copied = written.len();
        if self.csv_copied > 1 << 20 {
            self.csv = None;
            self.csv_copied = 0;
        }
        if !same {
            self.header = Some(m.keys().map(|k| k.to_string()).collect());
        }
        r.map_err(|e| Stop::Failed(Error::runtime(format!("sink '{}': {e}", self.name))))
    }
}

/// Writes `bytes`, which are the sink's output from logical position `at` (the spool keeps
/// positions; a file and stdout just take the bytes). `unsynced` counts the bytes written to
/// a file since its writeback was last started, and it is started every [`WRITEBACK_AT`].
fn write_to(target: &mut Target, at: u64, bytes: &[u8], unsynced: &mut u64) -> std::io::Result<()> {
    match target {
        Target::File(_) | Target::Spool(_) => {
            fail::fail_point!("sink-write-error", |_| Err(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                "No space left on device (injected)"
            )));
            match target {
                Target::File(f) => {
                    f.write_all(bytes)?;
                    *unsynced += bytes.len() as u64;
                    if *unsynced >= WRITEBACK_AT {
                        *unsynced = 0;
                        start_writeback(f);
                    }
                    Ok(())
                }
                Target::Spool(s) => s.append(at, bytes),
                Target::Stdout => Ok(()),
            }
        }
        Target::Stdout => {
            let mut o = std::io::stdout().lock();
            o.write_all(bytes).and_then(|_| o.flush())
        }
    }
}

/// Asks the kernel to start writing `f`'s dirty pages to disk, without waiting for them (the
/// checkpoint's fsync still makes them durable, and reports any error). Where there is no such
/// call, or `f` is no regular file, it does nothing.
fn start_writeback(f: &File) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: a syscall on a descriptor `f` keeps open; it touches no memory of ours.
        // Its result is a hint's: an error (ESPIPE on a FIFO) changes nothing here.
        unsafe {
            libc::sync_file_range(f.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = f;
}

/// Whether the strings, keys and numbers' kept texts of `v` add up to fewer than `limit`
/// bytes, and it has fewer than `limit` values: then its JSON is short (escapes at most
/// sixfold) and may be gathered in the sink's buffer whole.
fn text_below(v: &Value, limit: usize) -> bool {
    fn walk(v: &Value, left: &mut usize) -> bool {
        let cost = match v {
            Value::Str(s) => s.len() + 1,
            Value::Float(_, Some(lit)) => lit.as_str().len() + 1,
            Value::Array(a) => {
                *left = left.saturating_sub(1);
                return a.iter().all(|x| walk(x, left));
            }
            Value::Object(m) => {
                *left = left.saturating_sub(1);
                return m.iter().all(|(k, x)| {
                    *left = left.saturating_sub(k.len() + 1);
                    walk(x, left)
                });
            }
            _ => 1,
        };
        *left = left.saturating_sub(cost);
        *left > 0
    }
    let mut left = limit;
    walk(v, &mut left) && left > 0
}

/// Where a record's JSON is encoded: small pieces are gathered in the sink's buffer, written
/// out whenever it holds [`FLUSH_AT`] bytes, even in the middle of a record; a piece of at
/// least that size (a long string, which serde_json hands over in one piece) goes to the
/// target straight from the value, after what was gathered. So a 200 MB line costs no 200 MB
/// buffer (nor the doubling of one as it grows) on top of the record.
struct Spill<'a> {
    sink: &'a mut FileSink,
    /// Why writing failed, for the sink's own error (serde_json only carries an io::Error).
    failed: Option<Stop>,
}

impl Write for Spill<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let s = &mut *self.sink;
        let r = if bytes.len() < FLUSH_AT {
            s.buf.extend_from_slice(bytes);
            s.written += bytes.len() as u64;
            // A huge string full of escapes comes in small pieces: they must not pile up.
            if s.buf.len() >= FLUSH_AT {
                s.write_out()
            } else {
                Ok(())
            }
        } else {
            s.write_out().and_then(|()| {
                // After `write_out`, nothing is held: these bytes start at `written`.
                let at = s.written;
                s.written += bytes.len() as u64;
                write_to(&mut s.target, at, bytes, &mut s.unsynced).map_err(|e| s.write_err(e))
            })
        };
        if let Err(stop) = r {
            self.failed = Some(stop);
            return Err(std::io::Error::other("the sink could not write"));
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Opens `path` for writing at the end of its first `len` bytes (truncating anything after);
/// a fresh run (`keep` false) starts from an empty file.
fn open_truncated(path: &std::path::Path, len: u64, keep: bool) -> std::io::Result<File> {
    let mut f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(!keep)
        .open(path)?;
    if keep {
        let md = f.metadata()?;
        if !md.is_file() {
            // `/dev/null`, a FIFO: nothing to truncate or to hold to a length.
            return Ok(f);
        }
        let cur = md.len();
        if cur < len {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("the file has {cur} bytes but the checkpoint committed {len}: it was changed outside weir"),
            ));
        }
        f.set_len(len)?;
        f.seek(SeekFrom::Start(len))?;
    }
    Ok(f)
}

impl Operator for FileSink {
    fn process(&mut self, _input: usize, batch: Batch, out: &mut Output) -> StageResult {
        for r in &batch.records {
            self.encode(&r.value)?;
        }
        // A sink's output is what it writes: `--stats` counts it as `records_out`.
        out.ctx.stats[out.node].add_out(batch.records.len());
        if self.buf.len() >= FLUSH_AT {
            self.write_out()?;
        }
        Ok(())
    }

    fn finish(&mut self, _out: &mut Output) -> StageResult {
        self.write_out()
    }

    fn idle(&mut self) -> StageResult {
        self.write_out()
    }

    fn snapshot(&mut self) -> Result<Vec<u8>, Error> {
        match self.write_out() {
            Ok(()) => {}
            Err(Stop::Failed(e)) => return Err(e),
            Err(Stop::Disconnected) => return Err(Error::runtime("stdout was closed")),
        }
        let fsync = match &mut self.target {
            Target::File(f) => {
                crate::crash_point!("sink-before-fsync");
                match f.metadata() {
                    // A character device (`/dev/null`) or a FIFO has nothing to make durable
                    // and refuses fsync (EINVAL).
                    Ok(md) if !md.is_file() => Ok(()),
                    _ => f.sync_data(),
                }
            }
            Target::Spool(s) => {
                crate::crash_point!("sink-before-fsync");
                let r = s.sync();
                s.snapshot(self.written);
                r
            }
            Target::Stdout => Ok(()),
        };
        fsync.map_err(|e| {
            Error::runtime(format!(
                "sink '{}': fsync {}: {e}",
                self.name,
                self.path.display()
            ))
        })?;
        let st = SinkState {
            committed: self.written,
            header: self.header.clone(),
            released: match &self.target {
                Target::Spool(s) => Some(s.released()),
                _ => None,
            },
        };
        serde_json::to_vec(&st).map_err(|e| Error::runtime(e.to_string()))
    }

    fn committed(&mut self, _id: u64) -> Result<(), Error> {
        // The checkpoint that covers everything written so far is durable: release it.
        match &mut self.target {
            Target::Spool(s) => s.committed(),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::{Map, Str};

    /// Only small records skip `Spill`: one long string, many short ones or many values make
    /// a record big, so a huge line is still never gathered whole in the sink's buffer.
    #[test]
    fn only_small_records_are_gathered_whole() {
        let mut m = Map::new();
        m.push_unique(Str::new("user"), Value::str("u1"));
        m.push_unique(Str::new("status"), Value::Int(500));
        let small = Value::Object(m);
        assert!(text_below(&small, FLUSH_AT / 4));
        let long = Value::str(&"x".repeat(FLUSH_AT / 4));
        assert!(!text_below(&long, FLUSH_AT / 4));
        let many_strings = Value::Array(vec![Value::str(&"y".repeat(100)); FLUSH_AT / 400]);
        assert!(!text_below(&many_strings, FLUSH_AT / 4));
        let many_values = Value::Array(vec![Value::Null; FLUSH_AT / 4]);
        assert!(!text_below(&many_values, FLUSH_AT / 4));
        let mut keys = Map::new();
        for i in 0..FLUSH_AT / 40 {
            keys.push_unique(Str::from(format!("{i:020}")), Value::Null);
        }
        assert!(!text_below(&Value::Object(keys), FLUSH_AT / 4));
    }

    /// An exactly-once JSON-lines sink writing to `path`.
    fn sink(path: PathBuf) -> FileSink {
        FileSink::open(
            "out",
            path,
            Format::Jsonl,
            Delivery::ExactlyOnce,
            None,
            None,
        )
        .unwrap()
    }

    /// The sizes of the sink's writes in the writeback tests: 100 kB to 400 kB, 10 MB in all.
    fn write_sizes() -> impl Iterator<Item = usize> {
        (0..40).map(|i| 100_000 + (i % 4) * 100_000)
    }

    /// `n` bytes `b` through the sink's buffer and `write_out`, as records would go.
    fn write(s: &mut FileSink, b: u8, n: usize) {
        s.buf.extend(std::iter::repeat_n(b, n));
        s.written += n as u64;
        assert!(s.write_out().is_ok(), "{}", s.path.display());
    }

    /// A file's writeback is started once every `WRITEBACK_AT` bytes written, whatever the
    /// sizes of the writes; `/dev/null` (a character device, which refuses the call) takes the
    /// hint without an error, and the file holds exactly what was written.
    #[test]
    fn writeback_starts_every_writeback_at_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("out.jsonl");
        for path in [file.clone(), PathBuf::from("/dev/null")] {
            let mut s = sink(path.clone());
            let mut starts = 0u64;
            let mut total = 0u64;
            for n in write_sizes() {
                total += n as u64;
                let before = s.unsynced;
                write(&mut s, b'x', n);
                if s.unsynced < before + n as u64 {
                    starts += 1;
                    assert_eq!(s.unsynced, 0);
                }
                assert!(s.unsynced < WRITEBACK_AT);
            }
            assert_eq!(total, 10_000_000);
            // Each start comes after at least WRITEBACK_AT bytes and at most one write more.
            let most = total / WRITEBACK_AT;
            let least = total / (WRITEBACK_AT + 400_000);
            assert!(
                (least..=most).contains(&starts),
                "{}: {starts} starts",
                path.display()
            );
        }
        assert_eq!(std::fs::metadata(&file).unwrap().len(), 10_000_000);
    }

    /// What the kernel says about the output file (`cachestat`, Linux 6.5): pages cached,
    /// dirty and under writeback; `None` where the call is missing.
    #[cfg(target_os = "linux")]
    fn cachestat(path: &std::path::Path) -> Option<[u64; 3]> {
        use std::os::fd::AsRawFd;
        let f = File::open(path).unwrap();
        // `struct cachestat_range` (offset, length; 0 is to the end) and `struct cachestat`
        // (cached, dirty, writeback, evicted, recently evicted).
        let range = [0u64; 2];
        let mut st = [0u64; 5];
        // SAFETY: the syscall reads `range` and writes `st`, both live and of the kernel's
        // layout; 451 is its number on every architecture.
        let r = unsafe { libc::syscall(451, f.as_raw_fd(), range.as_ptr(), st.as_mut_ptr(), 0) };
        if r != 0 {
            eprintln!("skipped: cachestat: {}", std::io::Error::last_os_error());
            return None;
        }
        Some([st[0], st[1], st[2]])
    }

    /// What the kernel says: after 10 MB written through the sink, at most the bytes since
    /// the last start (under `WRITEBACK_AT` plus one write) are still dirty in the page cache
    /// (without the writeback, all 10 MB would be: the kernel's own flusher waits 30 s); after
    /// the checkpoint's `snapshot`, none is dirty or still being written (its fsync waited for
    /// them). Skipped, saying so, where `cachestat` is missing.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_kernel_writes_all_but_the_last_mib_and_the_checkpoint_waits_for_it() {
        // In the project's `target/`, on a disk (a temp dir may be on tmpfs, which has no
        // writeback).
        let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
        std::fs::create_dir_all(&target).unwrap();
        let dir = tempfile::tempdir_in(target).unwrap();
        let path = dir.path().join("out.jsonl");
        let mut s = sink(path.clone());
        for n in write_sizes() {
            write(&mut s, b'x', n);
        }
        let page = 4096;
        let Some([cached, dirty, _]) = cachestat(&path) else {
            return;
        };
        assert!(cached * page >= 9_000_000, "{cached} pages cached");
        assert!(
            dirty * page <= WRITEBACK_AT + 400_000 + 16 * page,
            "{dirty} of {cached} pages still dirty ({} unsynced bytes)",
            s.unsynced
        );
        // The last bytes, still in the sink's buffer at the barrier, are written and synced too.
        s.buf.extend(std::iter::repeat_n(b'y', 5000));
        s.written += 5000;
        assert!(s.snapshot().is_ok());
        let Some([cached, dirty, writeback]) = cachestat(&path) else {
            return;
        };
        assert_eq!(
            (dirty, writeback),
            (0, 0),
            "of {cached} pages after the checkpoint"
        );
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 10_005_000);
    }
}
