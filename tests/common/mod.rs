//! Helpers for the integration tests: a temporary project directory, running the real `weir`
//! binary with a timeout (never hang), background processes with signals, a seeded random
//! number generator and small JSON helpers for computing expected outputs independently.
//! Every test starts weir through here ([`weir_command`] builds each launch): to the end
//! (`run_weir*`, `weir_at*`, `Proj::weir*`) or in the background ([`spawn_at`], `Proj::spawn*`),
//! so every wait is bounded by [`TIMEOUT`] and no weir outlives its test.

#![allow(dead_code)]

mod cases;
pub use cases::*;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// No single weir invocation in these tests may take longer than this.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// `FAILPOINTS` setting (with `--features failpoints`) that makes every source wait, after
/// each batch, for the coordinator's decision on a checkpoint: checkpoints by record count
/// (`every_records`) then fall after the same batches in every run, however loaded the
/// machine, so a test can rely on how many there are and crash at the n-th.
pub const LOCKSTEP: &str = "checkpoint-lockstep=return";

pub const SIGINT: i32 = 2;
pub const SIGKILL: i32 = 9;
pub const SIGTERM: i32 = 15;

/// The path of the `weir` binary cargo built for these tests.
pub fn weir_bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("weir")
}

/// What one finished weir invocation left behind.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Out {
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Panics with the full output unless the exit code is `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            code,
            "expected exit code {code}, got {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code,
            truncate(&self.stdout_str(), 4000),
            truncate(&self.stderr, 4000)
        );
        self
    }

    /// No panic, no Rust backtrace: whatever weir did, it did it on purpose.
    #[track_caller]
    pub fn expect_no_panic(&self) -> &Self {
        assert!(
            !self.stderr.contains("panicked") && !self.stderr.contains("RUST_BACKTRACE"),
            "weir panicked:\n{}",
            self.stderr
        );
        self
    }
}

pub fn truncate(s: &str, n: usize) -> String {
    if s.len() <= n {
        s.to_string()
    } else {
        let mut end = n;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}... ({} bytes in all)", &s[..end], s.len())
    }
}

/// The exit code of a process, or 128 + the signal that killed it (as a shell reports it).
pub fn code_of(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => c,
        (None, Some(s)) => 128 + s,
        _ => -1,
    }
}

/// The one place a weir command line is built: the binary cargo built (under `under`, a
/// program such as `setpriv ...` or `/usr/bin/time ...` that takes the command as its last
/// arguments, if given), in `cwd`, with `RUST_BACKTRACE=0`, no `FAILPOINTS` inherited from the
/// test's own environment, and `env` added.
fn weir_command(cwd: &Path, args: &[&str], env: &[(&str, &str)], under: &[&str]) -> Command {
    let mut c = match under.split_first() {
        Some((program, its_args)) => {
            let mut c = Command::new(program);
            c.args(its_args).arg(weir_bin());
            c
        }
        None => Command::new(weir_bin()),
    };
    c.current_dir(cwd)
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .env_remove("FAILPOINTS")
        .envs(env.iter().copied());
    c
}

/// Runs weir to completion with `cwd` as working directory and `stdin` as input; kills it and
/// panics if it takes longer than [`TIMEOUT`].
pub fn weir_at(cwd: &Path, args: &[&str], stdin: Option<&[u8]>) -> Out {
    weir_at_t(cwd, args, stdin, TIMEOUT)
}

/// [`weir_at`] with its own time limit, for runs that must be quick (a hang fails fast).
pub fn weir_at_t(cwd: &Path, args: &[&str], stdin: Option<&[u8]>, timeout: Duration) -> Out {
    let mut cmd = assert_cmd::Command::from_std(weir_command(cwd, args, &[], &[]));
    cmd.timeout(timeout);
    cmd.write_stdin(stdin.map(|s| s.to_vec()).unwrap_or_default());
    let start = Instant::now();
    let out = cmd.output().expect("weir could be started");
    let elapsed = start.elapsed();
    let code = code_of(out.status);
    assert!(
        elapsed < timeout,
        "weir {args:?} did not finish within {timeout:?} (killed: a hang); stderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Out {
        code,
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed,
    }
}

/// A temporary directory that holds a pipeline, its inputs and outputs.
pub struct Proj {
    pub tmp: tempfile::TempDir,
}

impl Default for Proj {
    fn default() -> Self {
        Self::new()
    }
}

impl Proj {
    pub fn new() -> Proj {
        Proj {
            tmp: tempfile::Builder::new()
                .prefix("weir-it-")
                .tempdir()
                .expect("a temporary directory"),
        }
    }

    pub fn root(&self) -> &Path {
        self.tmp.path()
    }

    /// Absolute path of `rel` inside the project.
    pub fn p(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// `p(rel)` as a string, for command lines.
    pub fn s(&self, rel: &str) -> String {
        self.p(rel).to_str().expect("UTF-8 temp path").to_string()
    }

    pub fn write(&self, rel: &str, data: impl AsRef<[u8]>) -> PathBuf {
        let p = self.p(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::write(&p, data).unwrap();
        p
    }

    pub fn append(&self, rel: &str, data: impl AsRef<[u8]>) {
        let mut f = fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(self.p(rel))
            .unwrap();
        f.write_all(data.as_ref()).unwrap();
        f.sync_all().unwrap();
    }

    #[track_caller]
    pub fn read(&self, rel: &str) -> Vec<u8> {
        fs::read(self.p(rel)).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
    }

    #[track_caller]
    pub fn read_str(&self, rel: &str) -> String {
        String::from_utf8(self.read(rel)).unwrap_or_else(|e| panic!("{rel} is not UTF-8: {e}"))
    }

    pub fn exists(&self, rel: &str) -> bool {
        self.p(rel).exists()
    }

    /// Runs weir in the project root.
    pub fn weir(&self, args: &[&str]) -> Out {
        weir_at(self.root(), args, None)
    }

    /// Runs weir in the project root; fails if it takes longer than `t`.
    pub fn weir_t(&self, args: &[&str], t: Duration) -> Out {
        weir_at_t(self.root(), args, None, t)
    }

    /// Runs weir in the project root with `stdin` as input.
    pub fn weir_stdin(&self, args: &[&str], stdin: &[u8]) -> Out {
        weir_at(self.root(), args, Some(stdin))
    }

    /// Checkpoint files (`ckpt-<10 digits>.weir`) of a state directory, sorted by name.
    pub fn ckpts(&self, state_rel: &str) -> Vec<PathBuf> {
        ckpts_in(&self.p(state_rel))
    }

    /// Starts weir in the background in the project root: stdout and stderr go to files in
    /// the project (`<tag>.stdout`, `<tag>.stderr`), stdin is `stdin`.
    pub fn spawn(&self, tag: &str, args: &[&str], stdin: Stdio) -> Bg {
        self.spawn_env(tag, args, stdin, &[])
    }

    /// `spawn` with extra environment variables.
    pub fn spawn_env(&self, tag: &str, args: &[&str], stdin: Stdio, env: &[(&str, &str)]) -> Bg {
        spawn_at(
            self.root(),
            tag,
            args,
            Spawn {
                env,
                stdin: Some(stdin),
                ..Spawn::default()
            },
        )
    }
}

/// How [`spawn_at`] wires a background weir, beyond its directory and arguments; the default
/// is stdin from `/dev/null`, stdout to `<tag>.stdout`, no extra environment.
#[derive(Default)]
pub struct Spawn<'a> {
    /// Extra environment variables (`FAILPOINTS` among them: it is unset otherwise).
    pub env: &'a [(&'a str, &'a str)],
    /// stdin; `/dev/null` when `None`. With `Stdio::piped()` the test writes into
    /// `bg.child.stdin`; with a `File`, weir reads a regular file.
    pub stdin: Option<Stdio>,
    /// A file stdout is appended to, created if missing (as `>> file` does; `/dev/null`
    /// discards it); `<tag>.stdout` beside the stderr file when `None`.
    pub stdout: Option<&'a Path>,
    /// A program to run weir under, taking the weir command as its last arguments
    /// (`setpriv --reuid=nobody ...`, `/usr/bin/time -f ...`).
    pub under: &'a [&'a str],
}

/// Starts weir in the background in `cwd`, wired as `how` says; stderr always goes to
/// `<tag>.stderr` in `cwd` (a file, never a pipe nobody reads: a chatty weir cannot block on
/// it). [`Bg::wait`] is bounded by [`TIMEOUT`], and dropping the [`Bg`] kills a weir still
/// running, so a test that fails half-way leaves nothing behind.
pub fn spawn_at(cwd: &Path, tag: &str, args: &[&str], how: Spawn) -> Bg {
    let stderr = cwd.join(format!("{tag}.stderr"));
    let (stdout, out) = match how.stdout {
        Some(p) => (
            p.to_path_buf(),
            fs::OpenOptions::new().create(true).append(true).open(p),
        ),
        None => {
            let p = cwd.join(format!("{tag}.stdout"));
            let f = fs::File::create(&p);
            (p, f)
        }
    };
    let out = out.unwrap_or_else(|e| panic!("cannot open {stdout:?} for weir's stdout: {e}"));
    let err = fs::File::create(&stderr)
        .unwrap_or_else(|e| panic!("cannot create {stderr:?} for weir's stderr: {e}"));
    let child = weir_command(cwd, args, how.env, how.under)
        .stdin(how.stdin.unwrap_or_else(Stdio::null))
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .expect("weir could be started");
    Bg {
        child,
        stdout,
        stderr,
        started: Instant::now(),
    }
}

pub fn ckpts_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(rd) => rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                let n = p.file_name().unwrap().to_string_lossy().into_owned();
                n.len() == "ckpt-0000000001.weir".len()
                    && n.starts_with("ckpt-")
                    && n.ends_with(".weir")
                    && n[5..15].bytes().all(|b| b.is_ascii_digit())
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

/// A weir running in the background.
pub struct Bg {
    pub child: Child,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    pub started: Instant,
}

impl Bg {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends signal number `sig` to the process (with kill(1): no libc in the dependencies).
    pub fn signal(&self, sig: i32) {
        if sig == SIGKILL {
            let _ = self.child_kill();
            return;
        }
        let st = std::process::Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill(1) runs");
        assert!(st.success(), "kill -{sig} {} failed", self.pid());
    }

    fn child_kill(&self) -> std::io::Result<()> {
        let st = std::process::Command::new("kill")
            .arg("-9")
            .arg(self.pid().to_string())
            .status()?;
        if st.success() {
            Ok(())
        } else {
            Err(std::io::Error::other("kill -9 failed"))
        }
    }

    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits up to `t` for the process to end; its exit code (128 + signal if killed).
    pub fn wait_for(&mut self, t: Duration) -> Option<i32> {
        let deadline = Instant::now() + t;
        loop {
            match self.child.try_wait() {
                Ok(Some(st)) => return Some(code_of(st)),
                Ok(None) => {}
                Err(e) => panic!("waiting for weir: {e}"),
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits for the end (at most [`TIMEOUT`]); kills it with SIGKILL and panics on timeout.
    #[track_caller]
    pub fn wait(&mut self) -> i32 {
        match self.wait_for(TIMEOUT) {
            Some(c) => c,
            None => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "weir did not finish within {TIMEOUT:?}; stderr:\n{}",
                    self.stderr_str()
                );
            }
        }
    }

    /// kill -9 and reap.
    pub fn kill9(&mut self) -> i32 {
        let _ = self.child.kill();
        self.wait()
    }

    pub fn stderr_str(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    pub fn stdout_bytes(&self) -> Vec<u8> {
        fs::read(&self.stdout).unwrap_or_default()
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        // Never leave a weir behind when a test fails half-way.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Ends a `follow` run once its sink holds `all` records, with SIGTERM (a final checkpoint):
/// the run's exit code, and whether the records were all out. A run started a moment before
/// may not have opened its sink yet, and the file then still holds what a killed run wrote
/// after its last checkpoint, which the new run truncates: a count taken then is not the new
/// run's, and the SIGTERM may stop it before it has read everything. So when the stopped run's
/// output is short, it is resumed once more (`restart`) and stopped the same way; its file then
/// ends exactly where the final checkpoint committed it, nothing is truncated, and the count is
/// the resumed run's own. A line lost for good stays lost through any number of resumes.
pub fn stop_follow_when_caught_up(
    run: &mut Bg,
    mut restart: impl FnMut() -> Bg,
    count: impl Fn() -> usize,
    all: usize,
) -> (i32, bool) {
    let mut caught_up = wait_until(Duration::from_secs(60), || count() >= all);
    run.signal(15);
    let mut code = run.wait();
    if count() < all {
        *run = restart();
        caught_up = wait_until(Duration::from_secs(60), || count() >= all);
        run.signal(15);
        code = run.wait();
    }
    (code, caught_up)
}

/// Polls `cond` every few milliseconds for at most `t`; whether it became true.
pub fn wait_until(t: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + t;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// splitmix64: a small seeded generator, so "random" moments and data are reproducible.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo)
    }
}

/// A JSON string literal, escaped as serde_json (and jq) escape it.
pub fn js(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// Lines of a text, without their `\n`.
pub fn lines(s: &str) -> Vec<String> {
    s.lines().map(str::to_string).collect()
}

/// Parses every line of a jsonl text.
#[track_caller]
pub fn parse_jsonl(s: &str) -> Vec<serde_json::Value> {
    s.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect()
}

/// The records of a jsonl file another process may be writing: only its complete lines (a
/// line whose `\n` has not been written yet is not a record yet), none when it is missing.
pub fn jsonl_so_far(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = text.rfind('\n').map_or("", |end| &text[..=end]);
    parse_jsonl(complete)
}

/// Where two texts first differ, by line, for a failure message (outputs here run to
/// thousands of lines, too many to print whole); `None` when they are equal.
pub fn first_difference(got: &str, want: &str) -> Option<String> {
    if got == want {
        return None;
    }
    let (g, w): (Vec<&str>, Vec<&str>) = (got.lines().collect(), want.lines().collect());
    if g == w {
        return Some(format!("the same {} lines, with other line ends", g.len()));
    }
    let i = g
        .iter()
        .zip(&w)
        .position(|(x, y)| x != y)
        .unwrap_or(g.len().min(w.len()));
    Some(format!(
        "{} lines against {} expected; first difference at line {}:\n  got:      {:?}\n  expected: {:?}",
        g.len(),
        w.len(),
        i + 1,
        g.get(i),
        w.get(i)
    ))
}

/// Whether `sub` appears in `all` in the same relative order (a subsequence).
pub fn is_subsequence(sub: &[String], all: &[String]) -> bool {
    let mut it = all.iter();
    sub.iter().all(|x| it.any(|y| y == x))
}

/// The line of a stderr text with an optional `weir: ` prefix removed.
pub fn strip_prefix(line: &str) -> &str {
    line.strip_prefix("weir: ").unwrap_or(line)
}

/// Flips one bit in the middle of a file.
pub fn flip_byte(p: &Path, at: usize) {
    let mut b = fs::read(p).unwrap();
    let i = at.min(b.len() - 1);
    b[i] ^= 0x20;
    fs::write(p, b).unwrap();
}

/// Modification time and bytes of a file, to show that nothing touched it.
pub fn snapshot(p: &Path) -> (std::time::SystemTime, Vec<u8>) {
    let md = fs::metadata(p).unwrap();
    (md.modified().unwrap(), fs::read(p).unwrap())
}

/// Reads a `--stats` file.
#[track_caller]
pub fn read_stats(p: &Path) -> serde_json::Value {
    let text = fs::read_to_string(p).unwrap_or_else(|e| panic!("no stats file {p:?}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("stats are not JSON: {e}\n{text}"))
}

/// The stats entry of one node.
#[track_caller]
pub fn node_stats<'a>(stats: &'a serde_json::Value, node: &str) -> &'a serde_json::Value {
    stats["nodes"]
        .as_array()
        .expect("stats.nodes is an array")
        .iter()
        .find(|n| n["node"] == node)
        .unwrap_or_else(|| panic!("no node {node} in stats: {stats}"))
}

/// Runs weir in `dir` with `FAILPOINTS` set to `fail_points` (or unset) and waits for it.
pub fn run_weir(dir: &Path, args: &[&str], fail_points: Option<&str>) -> std::process::Output {
    run_weir_env(dir, args, fail_points, &[])
}

/// `run_weir` with extra environment variables.
pub fn run_weir_env(
    dir: &Path,
    args: &[&str],
    fail_points: Option<&str>,
    env: &[(&str, &str)],
) -> std::process::Output {
    run_weir_full(dir, args, fail_points, env, None)
}

/// `run_weir` with `input` on stdin.
pub fn run_weir_stdin(dir: &Path, args: &[&str], input: impl AsRef<[u8]>) -> std::process::Output {
    run_weir_full(dir, args, None, &[], Some(input.as_ref()))
}

/// The one foreground launcher behind `run_weir*`: kills weir and fails the test if it takes
/// longer than [`TIMEOUT`], so a hang is a failure, never a stuck suite.
fn run_weir_full(
    dir: &Path,
    args: &[&str],
    fail_points: Option<&str>,
    env: &[(&str, &str)],
    stdin: Option<&[u8]>,
) -> std::process::Output {
    let mut c = weir_command(dir, args, env, &[]);
    if let Some(fp) = fail_points {
        c.env("FAILPOINTS", fp);
    }
    let mut cmd = assert_cmd::Command::from_std(c);
    cmd.timeout(TIMEOUT);
    cmd.write_stdin(stdin.map(|s| s.to_vec()).unwrap_or_default());
    let start = Instant::now();
    let o = cmd.output().expect("weir could be started");
    assert!(
        start.elapsed() < TIMEOUT,
        "weir {args:?} did not finish within {TIMEOUT:?} (killed: a hang); stderr:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// Fails with weir's stderr unless `o` exited with `code` (`None`: killed by a signal, as an
/// abort at a crash point is).
pub fn expect_exit(o: &std::process::Output, code: Option<i32>) {
    assert_eq!(
        o.status.code(),
        code,
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
