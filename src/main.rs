//! Entry point: parse flags, run the command, print the error, exit with the code that
//! `error::exit_code` decides. Nothing else in weir exits the process.

use clap::Parser;

/// Records are allocated by one stage thread and freed by another; glibc malloc serializes
/// those cross-thread frees on arena locks (they dominated the filter thread's profile).
/// Counted per thread for the expression memory limit (`weir::alloc`).
#[global_allocator]
static GLOBAL: weir::alloc::Counting<mimalloc::MiMalloc> =
    weir::alloc::Counting(mimalloc::MiMalloc);

fn main() {
    // Reads FAILPOINTS; compiled in only for the tests' builds.
    #[cfg(feature = "failpoints")]
    let _scenario = fail::FailScenario::setup();
    let cli = match weir::cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            if !e.use_stderr() {
                // --help and --version: on stdout, exit 0.
                let _ = e.print();
                std::process::exit(0);
            }
            if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                // `weir` alone: the help, on stderr since nothing was asked for.
                let _ = e.print();
                std::process::exit(2);
            }
            // A usage error, said as every other weir message is (SPEC: exit 2).
            let text = e.render().to_string();
            let text = text.strip_prefix("error: ").unwrap_or(&text);
            eprint!("weir: {text}");
            if !text.ends_with('\n') {
                eprintln!();
            }
            std::process::exit(2);
        }
    };
    let result = weir::commands::dispatch(cli);
    if let Err(e) = &result {
        eprintln!("weir: {}", weir::escape::message(&e.to_string()));
    }
    let code = weir::error::exit_code(&result);
    #[cfg(feature = "failpoints")]
    drop(_scenario);
    std::process::exit(code);
}
