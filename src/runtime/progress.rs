//! The progress bar on stderr and the one-line summary it leaves behind. One unit system
//! (decimal: MB, MB/s), an ETA when every input's size is known, the last checkpoint.
//! indicatif hides a stderr that is not a terminal, which made `--progress always` act like
//! `auto`; `Stderr` below is a terminal-like target that always draws.

use super::context::Context;
use crate::cli::Progress as Mode;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};
use std::io::{IsTerminal, Write};
use std::sync::atomic::Ordering;
use std::time::Instant;

pub struct Progress {
    bar: ProgressBar,
    started: Instant,
    quiet: bool,
}

/// stderr as indicatif's terminal, whether or not it is one.
#[derive(Debug)]
struct Stderr;

impl Stderr {
    fn put(&self, s: &str) -> std::io::Result<()> {
        std::io::stderr().lock().write_all(s.as_bytes())
    }
}

impl TermLike for Stderr {
    fn width(&self) -> u16 {
        std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(100)
    }
    fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
        if n > 0 {
            self.put(&format!("\x1b[{n}A"))?;
        }
        Ok(())
    }
    fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
        if n > 0 {
            self.put(&format!("\x1b[{n}B"))?;
        }
        Ok(())
    }
    fn move_cursor_right(&self, n: usize) -> std::io::Result<()> {
        if n > 0 {
            self.put(&format!("\x1b[{n}C"))?;
        }
        Ok(())
    }
    fn move_cursor_left(&self, n: usize) -> std::io::Result<()> {
        if n > 0 {
            self.put(&format!("\x1b[{n}D"))?;
        }
        Ok(())
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.put(&format!("{s}\n"))
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        self.put(s)
    }
    fn clear_line(&self) -> std::io::Result<()> {
        self.put("\r\x1b[2K")
    }
    fn flush(&self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Sums over the sources: records read, bytes read.
fn read_so_far(ctx: &Context, sources: &[usize]) -> (u64, u64) {
    sources
        .iter()
        .map(|&i| {
            (
                ctx.stats[i].records_in.load(Ordering::Relaxed),
                ctx.stats[i].bytes_read.load(Ordering::Relaxed),
            )
        })
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
}

impl Progress {
    /// A bar over the input's size when every source's size is known; a spinner otherwise.
    pub fn new(mode: Mode, quiet: bool, ctx: &Context, sources: &[usize]) -> Option<Progress> {
        let show = match mode {
            Mode::Always => true,
            Mode::Never => false,
            Mode::Auto => std::io::stderr().is_terminal() && !quiet,
        };
        if !show {
            return None;
        }
        let sizes: Vec<u64> = sources
            .iter()
            .map(|&i| ctx.stats[i].bytes_total.load(Ordering::Relaxed))
            .collect();
        let known = !sizes.is_empty() && sizes.iter().all(|&b| b > 0);
        // A terminal is drawn on as indicatif does (it knows its width); anything else only
        // with `always`, through `Stderr`.
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr_with_hz(5)
        } else {
            ProgressDrawTarget::term_like_with_hz(Box::new(Stderr), 5)
        };
        let (bar, template) = if known {
            (
                ProgressBar::with_draw_target(Some(sizes.iter().sum()), target),
                "{bar:30} {decimal_bytes}/{decimal_total_bytes} ({decimal_bytes_per_sec}, ETA {eta}) {msg}",
            )
        } else {
            (
                ProgressBar::with_draw_target(None, target),
                "{spinner} {elapsed_precise} {msg}",
            )
        };
        bar.set_style(
            ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        Some(Progress {
            bar,
            started: Instant::now(),
            quiet,
        })
    }

    pub fn draw(&self, ctx: &Context, sources: &[usize], last_checkpoint: Option<u64>) {
        let (recs, bytes) = read_so_far(ctx, sources);
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let last = last_checkpoint
            .map(|c| format!("checkpoint {c}"))
            .unwrap_or_else(|| "no checkpoint yet".into());
        if self.bar.length().is_some() {
            self.bar.set_position(bytes);
            self.bar.set_message(format!(
                "{recs} records ({:.0}/s), {last}",
                recs as f64 / secs
            ));
        } else {
            self.bar.set_message(format!(
                "{recs} records ({:.0}/s), {:.1} MB read, {last}",
                recs as f64 / secs,
                bytes as f64 / 1e6
            ));
        }
        self.bar.tick();
    }

    /// Clears the bar and leaves one line in its place (unless `-q`).
    pub fn finish(&self, ctx: &Context, sources: &[usize], checkpoints: usize) {
        self.bar.finish_and_clear();
        if self.quiet {
            return;
        }
        let (recs, bytes) = read_so_far(ctx, sources);
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let sum = |f: fn(&super::context::NodeStats) -> &std::sync::atomic::AtomicU64| -> u64 {
            ctx.stats.iter().map(|s| f(s).load(Ordering::Relaxed)).sum()
        };
        eprintln!(
            "weir: {recs} records, {:.1} MB in {secs:.1} s ({:.1} MB/s), {checkpoints} checkpoints, {} late, {} errors",
            bytes as f64 / 1e6,
            bytes as f64 / 1e6 / secs,
            sum(|s| &s.late),
            sum(|s| &s.errors),
        );
    }
}
