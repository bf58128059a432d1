//! `quadriga`: run many jobs in parallel.
//!
//! The binary is thin: arguments → plan → run, with `anyhow` for errors and one
//! exit-code policy (see [`ExitStatus`]). The work is done by the `quadriga`
//! library.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

/// Run many jobs at once: threads, processes, async — chosen by measurement.
#[derive(Debug, Parser)]
#[command(name = "quadriga", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a command once per input, in parallel (like GNU parallel / xargs -P).
    Run(RunArgs),
}

/// `quadriga run [OPTIONS] COMMAND... [::: ARGS...]`
#[derive(Debug, Args)]
struct RunArgs {
    /// Number of jobs at once: N, N%, +N, -N, 0, or `auto` (measure and adapt).
    #[arg(short = 'j', long = "jobs", default_value = "auto")]
    jobs: String,

    /// The command and its inputs (`:::` separates argument lists).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

/// The exit-code policy: 0 success; 1–101 the number of failed jobs (capped,
/// as GNU parallel does); 255 a usage or internal error.
#[derive(Debug, Clone, Copy)]
enum ExitStatus {
    Success,
    Error,
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> Self {
        match status {
            ExitStatus::Success => ExitCode::SUCCESS,
            ExitStatus::Error => ExitCode::from(255),
        }
    }
}

fn run(args: &RunArgs) -> Result<ExitStatus> {
    anyhow::bail!(
        "`quadriga run` is not implemented yet (asked for -j {} on {:?})",
        args.jobs,
        args.command
    )
}

fn main() -> ExitCode {
    quadriga::init();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // clap prints help and version on stdout with success; usage errors
            // on stderr, and those get our usage-error status.
            let _ = err.print();
            return if err.use_stderr() {
                ExitStatus::Error.into()
            } else {
                ExitStatus::Success.into()
            };
        }
    };
    let result = match &cli.command {
        Command::Run(args) => run(args),
    };
    match result {
        Ok(status) => status.into(),
        Err(err) => {
            eprintln!("quadriga: error: {err:#}");
            ExitStatus::Error.into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_defaults_to_auto_jobs() {
        let cli = Cli::try_parse_from(["quadriga", "run", "echo", ":::", "a"]).unwrap();
        let Command::Run(args) = cli.command;
        assert_eq!(args.jobs, "auto");
        assert_eq!(args.command, ["echo", ":::", "a"]);
    }
}
