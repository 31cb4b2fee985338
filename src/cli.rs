//! Command-line flags, as SPEC section 1 names them.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

const EXAMPLES: &str = "\
Examples:
  weir run pipelines/errors_per_path.toml          run a pipeline file from the start
  weir resume --or-start job.toml                  the one command a cron line needs
  weir do 'select(.status >= 500) | {path, status}' access.jsonl
  weir do --from csv --by .user --agg n=count --agg 'spent=sum(.amount)' --to csv < orders.csv
  weir do --time .ts --window 1m --by .path --agg n=count --print-pipeline app.jsonl > job.toml
  weir test job.toml                               run the [[tests]] of a pipeline file
  weir completions bash > ~/.local/share/bash-completion/completions/weir";

#[derive(Parser, Debug)]
#[command(
    name = "weir",
    version,
    about = "A stream processor for the shell with exactly-once checkpoints",
    long_about = "A stream processor for the shell with exactly-once checkpoints: a pipeline file \
                  of sources, transforms and sinks, run one thread per operator, checkpointed so \
                  that `weir resume` continues exactly where a run stopped. `weir do` is the \
                  one-off form, with no file and no state.",
    after_help = EXAMPLES,
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Print nothing on stderr but errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Say more on stderr (files opened, checkpoints written).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// Flags of the commands that read data: `run`, `resume`, `do`.
#[derive(Args, Debug, Clone)]
pub struct RunFlags {
    /// A progress bar on stderr: auto shows it when stderr is a terminal.
    #[arg(long, value_enum, default_value_t = Progress::Auto)]
    pub progress: Progress,
    /// Write a JSON summary of the run to FILE at the end.
    #[arg(long, value_name = "FILE")]
    pub stats: Option<PathBuf>,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    Auto,
    Always,
    Never,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtEndArg {
    Finish,
    Pause,
    Follow,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShellArg {
    Bash,
    Zsh,
    Fish,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a pipeline from the beginning of its input.
    Run(RunArgs),
    /// Continue a pipeline from its newest valid checkpoint.
    Resume(ResumeArgs),
    /// Parse, wire and compile a pipeline file; print every problem; read no data.
    Validate {
        /// The pipeline file (TOML).
        pipeline: PathBuf,
        /// Override a pipeline value by dotted path, as `run --set` does.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// Print the operator graph: nodes, edges, channel capacities, parallelism.
    Explain {
        /// The pipeline file (TOML).
        pipeline: PathBuf,
        /// Graphviz dot instead of text.
        #[arg(long)]
        dot: bool,
    },
    /// List the checkpoints of a pipeline (or a state directory).
    Checkpoints {
        /// A pipeline file, or its state directory.
        target: PathBuf,
    },
    /// Print one checkpoint (the newest valid one by default) in full, as JSON.
    Inspect {
        /// A pipeline file, or its state directory.
        target: PathBuf,
        /// The checkpoint id (default: the newest valid one).
        id: Option<u64>,
    },
    /// One-off: an expression, a keyed aggregate or a window over files or stdin, to stdout; no pipeline file, no state.
    #[command(after_help = DO_EXAMPLES)]
    Do(DoArgs),
    /// Run the [[tests]] of a pipeline file: exit 0 when all pass, 1 when one fails.
    Test {
        /// The pipeline file (TOML).
        pipeline: PathBuf,
    },
    /// Print shell completions on stdout.
    Completions {
        /// The shell to complete for.
        shell: ShellArg,
    },
    /// Print the manual page (roff) on stdout: `weir man > weir.1; man ./weir.1`.
    Man,
    /// Print the pipeline for another engine (Apache Flink SQL) on stdout.
    #[command(subcommand)]
    Export(ExportTarget),
}

#[derive(Subcommand, Debug)]
pub enum ExportTarget {
    /// A Flink SQL script (run it with `sql-client.sh -f`); refuses what Flink cannot do alike.
    Flink {
        /// The pipeline file (TOML).
        pipeline: PathBuf,
        /// Override a pipeline value by dotted path, e.g. sources.access.path=/tmp/x
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
}

const DO_EXAMPLES: &str = "\
Examples:
  weir do 'select(.status >= 500) | {path, status}' access.jsonl
  weir do --from csv --by .user --agg n=count --agg 'spent=sum(.amount)' --to csv < orders.csv
  weir do --time .ts --window 1m --by .path --agg n=count app.jsonl
  weir do --by .user events.jsonl --print-pipeline > job.toml   # then: weir run job.toml";

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// The pipeline file (TOML).
    pub pipeline: PathBuf,
    /// State directory (default: .weir/<name>/ beside the pipeline file).
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// Move existing state aside and start from nothing.
    #[arg(long)]
    pub fresh: bool,
    /// Override a pipeline value by dotted path, e.g. sources.access.path=/tmp/x
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// What end of input means for every source (overrides at_end).
    #[arg(long, value_enum)]
    pub at_end: Option<AtEndArg>,
    #[command(flatten)]
    pub flags: RunFlags,
}

#[derive(Args, Debug, Clone)]
pub struct ResumeArgs {
    /// The pipeline file (TOML).
    pub pipeline: PathBuf,
    /// State directory (default: .weir/<name>/ beside the pipeline file).
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// Start fresh when there is no checkpoint to resume (for cron).
    #[arg(long)]
    pub or_start: bool,
    /// Resume from this checkpoint id instead of the newest valid one.
    #[arg(long, value_name = "ID")]
    pub from: Option<u64>,
    /// Override a pipeline value by dotted path, e.g. sources.access.path=/tmp/x
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// What end of input means for every source (overrides at_end).
    #[arg(long, value_enum)]
    pub at_end: Option<AtEndArg>,
    /// Print what resuming this (possibly edited) file would do, node by node; run nothing.
    #[arg(long)]
    pub plan: bool,
    /// Start NODE's state empty (repeatable): a source reads from its beginning. Idempotent:
    /// not again from a checkpoint of a run started with the same flag.
    #[arg(long = "drop-state", value_name = "NODE")]
    pub drop_state: Vec<String>,
    #[command(flatten)]
    pub flags: RunFlags,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum DoFormat {
    Jsonl,
    Csv,
    Tsv,
    Lines,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum DoOnError {
    Fail,
    Skip,
}

#[derive(Args, Debug, Clone)]
pub struct DoArgs {
    /// A jq expression applied as a `map` (so `select(...)` filters), then FILEs; the first
    /// argument is a FILE instead when it names an existing file or is `-`.
    #[arg(value_name = "EXPR|FILE")]
    pub args: Vec<String>,
    /// Input format (default: from the file's extension; jsonl for stdin).
    #[arg(long, value_enum, value_name = "FMT")]
    pub from: Option<DoFormat>,
    /// Output format on stdout: jsonl, csv or tsv.
    #[arg(long, value_enum, value_name = "FMT", default_value_t = DoFormat::Jsonl)]
    pub to: DoFormat,
    /// Group by this key expression: a keyed aggregate that emits each key's result at the end.
    #[arg(long, value_name = "KEY")]
    pub by: Option<String>,
    /// An aggregate NAME=FN (count, sum(e), min(e), max(e), avg(e), first(e), last(e),
    /// count_distinct(e)); repeatable; default n=count.
    #[arg(long = "agg", value_name = "NAME=FN")]
    pub aggs: Vec<String>,
    /// The event time of each record (RFC 3339 or epoch seconds), for --window.
    #[arg(long, value_name = "EXPR", requires = "window")]
    pub time: Option<String>,
    /// Tumbling windows of this size over --time ("1m", "10s", "1h").
    #[arg(long, value_name = "SIZE", requires = "time")]
    pub window: Option<String>,
    /// What a bad input record does: fail (exit 3, the default) or skip (count it).
    #[arg(long, value_enum, value_name = "WHAT")]
    pub on_error: Option<DoOnError>,
    /// Print the equivalent pipeline file (checkpoints and all) instead of running.
    #[arg(long)]
    pub print_pipeline: bool,
    #[command(flatten)]
    pub flags: RunFlags,
}
