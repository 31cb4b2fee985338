//! `weir completions` and `weir man`: generated from the same clap definition as the flags.

use super::out;
use crate::cli::{Cli, ShellArg};
use crate::error::{Error, Outcome, Result};
use clap::CommandFactory;

pub fn completions(shell: ShellArg) -> Result<Outcome> {
    let shell = match shell {
        ShellArg::Bash => clap_complete::Shell::Bash,
        ShellArg::Zsh => clap_complete::Shell::Zsh,
        ShellArg::Fish => clap_complete::Shell::Fish,
    };
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "weir", &mut buf);
    out(&String::from_utf8_lossy(&buf))
}

pub fn man() -> Result<Outcome> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut buf)
        .map_err(|e| Error::runtime(format!("cannot render the manual page: {e}")))?;
    out(&String::from_utf8_lossy(&buf))
}
