//! Command-line flags, as SPEC section 1 names them.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "weir",
    version,
    about = "A stream processor for the shell with exactly-once checkpoints",
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
    /// A progress bar on stderr: auto shows it when stderr is a terminal.
    #[arg(long, global = true, value_enum, default_value_t = Progress::Auto)]
    pub progress: Progress,
    /// Write a JSON summary of the run to FILE at the end.
    #[arg(long, global = true, value_name = "FILE")]
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

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a pipeline from the beginning of its input.
    Run(RunArgs),
    /// Continue a pipeline from its newest valid checkpoint.
    Resume(ResumeArgs),
    /// Parse, wire and compile a pipeline file; print every problem; read no data.
    Validate { pipeline: PathBuf },
    /// Print the operator graph: nodes, edges, channel capacities, parallelism.
    Explain {
        pipeline: PathBuf,
        /// Graphviz dot instead of text.
        #[arg(long)]
        dot: bool,
    },
    /// List the checkpoints of a pipeline (or a state directory).
    Checkpoints { target: PathBuf },
    /// Print one checkpoint (the newest valid one by default) in full, as JSON.
    Inspect { target: PathBuf, id: Option<u64> },
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
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
}

#[derive(Args, Debug, Clone)]
pub struct ResumeArgs {
    pub pipeline: PathBuf,
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// Start fresh when there is no checkpoint to resume (for cron).
    #[arg(long)]
    pub or_start: bool,
    /// Resume from this checkpoint id instead of the newest valid one.
    #[arg(long, value_name = "ID")]
    pub from: Option<u64>,
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    #[arg(long, value_enum)]
    pub at_end: Option<AtEndArg>,
}
