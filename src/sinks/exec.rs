//! The `exec` sink: hands each checkpoint epoch's records to a command, on its stdin, and
//! counts the epoch delivered when the command exits 0. It is Flink's two-phase commit with a
//! command as the transaction:
//!
//! - records of the current epoch are written (in `format`) to a spool file in the state
//!   directory, `<sink>.epoch-<n>`;
//! - at the checkpoint barrier the spool is fsynced and the epoch joins the sink's state as
//!   pending (pre-commit);
//! - once that checkpoint is durable, the command runs on the spool (commit); when it exits 0
//!   the epoch is marked done (`<sink>.exec-done`, written atomically) and its spool removed.
//!
//! A command that fails, times out or is cut short by a crash leaves its epoch pending in the
//! checkpoint, so the run fails (the restart strategy applies) and the next attempt or
//! `resume` runs it again on the same spool: the same epoch number, the same bytes. Epochs
//! whose checkpoint never became durable are never handed over; their records are replayed
//! into new epochs. A command therefore sees every record once if it ignores an epoch number
//! it has already taken in (`WEIR_EPOCH` grows by one per non-empty epoch, across runs in
//! one state directory).

use super::file::FileSink;
use crate::error::Error;
use crate::pipeline::spec::{parse_duration_ms, Delivery, ExecSinkConfig, Format};
use crate::pipeline::PipelineSpec;
use crate::runtime::message::Batch;
use crate::runtime::stage::{Operator, Output, StageResult};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const DEFAULT_TIMEOUT: &str = "5m";

pub struct ExecSettings {
    pub pipeline: String,
    pub name: String,
    pub argv: Vec<String>,
    pub format: Format,
    pub timeout: Duration,
    /// The command runs here: the pipeline file's directory, as relative paths in it do.
    pub cwd: PathBuf,
    /// Where spools and the done marker live: the state directory, or a private temporary
    /// directory when checkpoints are off (then the whole run is one epoch).
    pub dir: PathBuf,
    /// `dir` is that temporary directory, removed with the sink.
    pub temp: bool,
}

impl ExecSettings {
    pub fn new(
        spec: &PipelineSpec,
        name: &str,
        c: &ExecSinkConfig,
        state_dir: Option<&Path>,
    ) -> Result<ExecSettings, Error> {
        let ms = parse_duration_ms(c.timeout.as_deref().unwrap_or(DEFAULT_TIMEOUT))
            .map_err(|e| Error::usage(format!("sink '{name}': timeout: {e}")))?;
        let dir = match state_dir {
            Some(d) => d.to_path_buf(),
            None => {
                let d = std::env::temp_dir().join(format!("weir-{}-{name}", std::process::id()));
                std::fs::create_dir_all(&d).map_err(|e| {
                    Error::runtime(format!("sink '{name}': cannot create {}: {e}", d.display()))
                })?;
                d
            }
        };
        Ok(ExecSettings {
            pipeline: spec.name.clone(),
            name: name.to_string(),
            argv: c.command.clone(),
            format: c.format.unwrap_or(Format::Jsonl),
            timeout: Duration::from_millis(ms.max(1) as u64),
            cwd: spec.dir.clone(),
            dir,
            temp: state_dir.is_none(),
        })
    }
}

/// The exec sink's state in a checkpoint.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct ExecState {
    /// The last epoch number given out (epochs without records get none).
    pub epoch: u64,
    /// Epochs spooled and not known to be done at the checkpoint: run on resume.
    pub pending: Vec<u64>,
    /// The last epoch whose command had exited 0 when the checkpoint was taken.
    pub done: u64,
    /// Records spooled since the start.
    pub records: u64,
}

pub struct ExecSink {
    s: ExecSettings,
    /// The spool of the epoch being filled.
    current: Option<FileSink>,
    epoch: u64,
    done: u64,
    records: u64,
    /// Spooled epochs waiting for their checkpoint: the barrier that closed each (None for
    /// the final snapshot at the end of the stream) and the epoch number.
    pending: VecDeque<(Option<u64>, u64)>,
    /// The barrier being snapshotted, and the highest one seen.
    barrier: Option<u64>,
    max_barrier: u64,
}

impl ExecSink {
    /// Opens the sink and first runs the command on every epoch the checkpoint left pending.
    pub fn open(s: ExecSettings, state: Option<&[u8]>) -> Result<ExecSink, Error> {
        let st: ExecState = match state {
            None => ExecState::default(),
            Some(b) => serde_json::from_slice(b).map_err(|e| {
                Error::runtime(format!("sink '{}': state in checkpoint: {e}", s.name))
            })?,
        };
        let mut sink = ExecSink {
            done: 0,
            epoch: st.epoch,
            records: st.records,
            current: None,
            pending: VecDeque::new(),
            barrier: None,
            max_barrier: 0,
            s,
        };
        if state.is_some() {
            sink.done = sink.read_done()?.max(st.done);
            let mut todo = st.pending.clone();
            todo.sort_unstable();
            let done = sink.done;
            for e in todo.into_iter().filter(|&e| e > done) {
                sink.run(e)?;
            }
        } else {
            // A fresh start (`weir run`) numbers on from the epochs an earlier run in this
            // state directory handed over, so a command that ignores numbers it has seen
            // takes the new run's epochs in.
            sink.done = sink.read_done()?;
            sink.epoch = sink.done;
        }
        sink.remove_stale_spools();
        Ok(sink)
    }

    fn spool(&self, e: u64) -> PathBuf {
        self.s.dir.join(format!("{}.epoch-{e}", self.s.name))
    }

    fn done_path(&self) -> PathBuf {
        self.s.dir.join(format!("{}.exec-done", self.s.name))
    }

    fn read_done(&self) -> Result<u64, Error> {
        match std::fs::read_to_string(self.done_path()) {
            Ok(t) => t.trim().parse().map_err(|_| {
                Error::runtime(format!(
                    "sink '{}': {} does not hold an epoch number",
                    self.s.name,
                    self.done_path().display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(Error::runtime(format!(
                "sink '{}': cannot read {}: {e}",
                self.s.name,
                self.done_path().display()
            ))),
        }
    }

    /// Spools of epochs already done, or of epochs a crashed run started after the
    /// checkpoint (their numbers will be given out again).
    fn remove_stale_spools(&self) {
        let prefix = format!("{}.epoch-", self.s.name);
        let Ok(rd) = std::fs::read_dir(&self.s.dir) else {
            return;
        };
        for ent in rd.flatten() {
            let name = ent.file_name();
            let Some(n) = name
                .to_str()
                .and_then(|n| n.strip_prefix(&prefix))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            if n <= self.done || n > self.epoch {
                let _ = std::fs::remove_file(ent.path());
            }
        }
    }

    fn fail(&self, e: u64, what: String) -> Error {
        Error::runtime(format!(
            "sink '{}': epoch {e}: {what}; the epoch stays pending and is given to the command again on restart or `weir resume`",
            self.s.name
        ))
    }

    /// Runs the command on epoch `e`'s spool; Ok once it exited 0 and the epoch is marked done.
    fn run(&mut self, e: u64) -> Result<(), Error> {
        let spool = self.spool(e);
        let input = std::fs::File::open(&spool).map_err(|err| {
            self.fail(
                e,
                format!(
                    "cannot open its spool {}: {err} (the state directory was changed outside weir?)",
                    spool.display()
                ),
            )
        })?;
        crate::crash_point!("exec-before-command");
        let argv = &self.s.argv;
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .current_dir(&self.s.cwd)
            .env("WEIR_PIPELINE", &self.s.pipeline)
            .env("WEIR_SINK", &self.s.name)
            .env("WEIR_EPOCH", e.to_string())
            .stdin(input)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|err| self.fail(e, format!("cannot run `{}`: {err}", argv[0])))?;
        // stdout carries data only, so the command's output of both kinds goes to stderr.
        let (tx, rx) = crossbeam_channel::unbounded::<()>();
        let prefix = format!("weir: sink '{}' epoch {e}: ", self.s.name);
        let mut forwarders = 0;
        if let Some(o) = child.stdout.take() {
            forwarders += 1;
            forward(o, prefix.clone(), tx.clone());
        }
        if let Some(o) = child.stderr.take() {
            forwarders += 1;
            forward(o, prefix, tx);
        }
        let deadline = Instant::now() + self.s.timeout;
        let mut nap = Duration::from_millis(1);
        let status = loop {
            match child.try_wait() {
                Ok(Some(st)) => break st,
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(self.fail(
                        e,
                        format!(
                            "the command did not finish within timeout = {:?}; it was killed",
                            self.s.timeout
                        ),
                    ));
                }
                Ok(None) => {
                    std::thread::sleep(nap);
                    nap = (nap * 2).min(Duration::from_millis(50));
                }
                Err(err) => return Err(self.fail(e, format!("waiting for the command: {err}"))),
            }
        };
        // Let its last lines through; a background grandchild holding the pipes open is not
        // waited for.
        for _ in 0..forwarders {
            if rx.recv_timeout(Duration::from_secs(1)).is_err() {
                break;
            }
        }
        if !status.success() {
            let how = match status.code() {
                Some(c) => format!("the command exited with code {c}"),
                None => {
                    use std::os::unix::process::ExitStatusExt;
                    format!(
                        "the command was killed by signal {}",
                        status.signal().unwrap_or(0)
                    )
                }
            };
            return Err(self.fail(e, how));
        }
        crate::crash_point!("exec-after-command");
        crate::checkpoint::atomic::write(&self.done_path(), e.to_string().as_bytes())?;
        self.done = e;
        let _ = std::fs::remove_file(&spool);
        Ok(())
    }
}

/// Copies a command's output to stderr line by line, each line prefixed; `done` on EOF.
fn forward(
    r: impl std::io::Read + Send + 'static,
    prefix: String,
    done: crossbeam_channel::Sender<()>,
) {
    let _ = std::thread::Builder::new()
        .name("weir:exec-output".into())
        .spawn(move || {
            let mut r = std::io::BufReader::new(r);
            let mut line = Vec::new();
            loop {
                line.clear();
                match r.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let text = String::from_utf8_lossy(&line);
                        let mut err = std::io::stderr().lock();
                        let _ = writeln!(err, "{prefix}{}", text.trim_end_matches(['\n', '\r']));
                    }
                }
            }
            let _ = done.send(());
        });
}

impl Drop for ExecSink {
    fn drop(&mut self) {
        // Without checkpoints nothing can resume, so nothing here is worth keeping.
        if self.s.temp {
            let _ = std::fs::remove_dir_all(&self.s.dir);
        }
    }
}

impl Operator for ExecSink {
    fn process(&mut self, input: usize, batch: Batch, out: &mut Output) -> StageResult {
        if batch.records.is_empty() {
            return Ok(());
        }
        if self.current.is_none() {
            let e = self.epoch + 1;
            self.current = Some(FileSink::open(
                &self.s.name,
                self.spool(e),
                self.s.format,
                Delivery::AtLeastOnce,
                None,
                None,
            )?);
        }
        self.records += batch.records.len() as u64;
        match &mut self.current {
            Some(f) => f.process(input, batch, out),
            None => Ok(()),
        }
    }

    fn barrier(&mut self, id: u64) {
        self.barrier = Some(id);
        self.max_barrier = self.max_barrier.max(id);
    }

    fn snapshot(&mut self) -> Result<Vec<u8>, Error> {
        let barrier = self.barrier.take();
        if let Some(mut f) = self.current.take() {
            // Pre-commit: the epoch's bytes are durable before the checkpoint names them.
            f.snapshot()?;
            if let Ok(d) = std::fs::File::open(&self.s.dir) {
                let _ = d.sync_all();
            }
            self.epoch += 1;
            self.pending.push_back((barrier, self.epoch));
        }
        let st = ExecState {
            epoch: self.epoch,
            pending: self.pending.iter().map(|p| p.1).collect(),
            done: self.done,
            records: self.records,
        };
        serde_json::to_vec(&st).map_err(|e| Error::runtime(e.to_string()))
    }

    fn committed(&mut self, id: u64) -> Result<(), Error> {
        // Checkpoint `id` holds every epoch closed at barrier `id` or before, and the final
        // epoch if it came after every barrier this sink saw (the end of the stream).
        while let Some(&(b, e)) = self.pending.front() {
            let covered = match b {
                Some(b) => b <= id,
                None => id > self.max_barrier,
            };
            if !covered {
                break;
            }
            self.run(e)?;
            self.pending.pop_front();
        }
        Ok(())
    }
}
