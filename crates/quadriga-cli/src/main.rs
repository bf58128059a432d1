//! `quadriga`: run many jobs in parallel.
//!
//! The binary is thin: arguments → plan → run, with `anyhow` for errors and one
//! exit-code policy (see [`ExitStatus`]). `quadriga run` is GNU parallel's
//! interface for what people use, with `-j auto` from the library's
//! concurrency controller ([`quadriga::adapt::ConcurrencyController`]).
//!
//! - `args.rs`: options (clap) and the raw `::: / :::: / :::+` words → [`args::Plan`].
//! - `extra_args.rs`: GNU parallel's everyday options, flattened into `run`'s.
//! - `input.rs`: sources, cartesian and linked products, `-n`/`-X` grouping,
//!   `-E`, `--shuf`, `-s`; `columns.rs`: `--colsep`, `--csv`, `--trim`,
//!   `--header :`.
//! - `template.rs`: replacement strings, shell quoting, direct exec or shell;
//!   `rpl.rs`: `--plus`, `--rpl` and `{= =}` (a subset of GNU's Perl).
//! - `program.rs`: what a job executes (argv or `$PARALLEL_SHELL -c`), started
//!   as a [`quadriga::child`], with `--workdir`, `--files`, `--nice`;
//!   `tee.rs`: `--pipe --tee`; `limit.rs`: `--limit`; `cpus.rs`:
//!   `--number-of-*`.
//! - `output.rs`: grouping, spill to unlinked temp files, `-k`, tags.
//! - `runner/`: the rules as a state machine (`state.rs` and its rooms) and
//!   the epoll shell around it (`shell.rs`); `joblog.rs`, `halt.rs`, `progress.rs`.
//! - `sem.rs`: `quadriga sem`, GNU's `sem` on `flock`ed slot files.
//! - `status.rs`: `quadriga status`, a cluster queue's snapshot as tables or JSON.
//! - `dashboard.rs`: `quadriga dashboard`, the same snapshot over HTTP.

#![forbid(unsafe_code)]

mod args;
mod columns;
mod cpus;
mod dashboard;
mod extra_args;
mod halt;
mod input;
mod joblog;
mod limit;
mod output;
mod pipe;
mod program;
mod progress;
mod remote;
mod rpl;
mod runner;
mod sem;
mod status;
mod tee;
mod template;
mod watchdog;
mod worker;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::runner::{Outcome, UsageError};

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
    #[command(long_about = args::LONG_ABOUT, after_help = args::AFTER_HELP)]
    Run(Box<args::RunArgs>),
    /// The runner's watchdog (internal): kills the jobs of a runner that died.
    #[command(name = "__watchdog", hide = true)]
    Watchdog,
    /// Show a cluster queue's workers and shards (`--json` for scripts).
    #[command(long_about = status::LONG_ABOUT, after_help = status::AFTER_HELP)]
    Status(status::StatusArgs),
    /// A counting semaphore across shells (like GNU parallel's sem).
    #[command(after_help = sem::AFTER_HELP)]
    Sem(sem::SemArgs),
    /// Serve a live page of a cluster queue and `GET /api/status` (its JSON).
    #[command(after_help = dashboard::AFTER_HELP)]
    Dashboard(dashboard::DashboardArgs),
    /// Run the shell jobs of `quadriga run --broker` on this host.
    #[command(after_help = worker::AFTER_HELP)]
    Worker(worker::WorkerArgs),
}

/// The exit-code policy: 0 success; 1–100 the number of failed jobs, 101 more
/// than 100 (as GNU parallel; `--halt` has its own rules, see `halt.rs`);
/// 128+N stopped by signal N; 141 our stdout was closed (as if by SIGPIPE);
/// 255 a usage or internal error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExitStatus {
    /// Help or version printed.
    Success,
    /// A finished run: the status its policy gives.
    Jobs(i32),
    /// Stopped by this signal.
    Signal(i32),
    /// Our stdout's reader went away.
    BrokenPipe,
    /// A usage or internal error.
    Error,
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> Self {
        match status {
            ExitStatus::Success => ExitCode::SUCCESS,
            ExitStatus::Jobs(n) => ExitCode::from(n.clamp(0, 255) as u8),
            ExitStatus::Signal(sig) => ExitCode::from((128 + sig).clamp(0, 255) as u8),
            ExitStatus::BrokenPipe => ExitCode::from(141),
            ExitStatus::Error => ExitCode::from(255),
        }
    }
}

fn run(args: args::RunArgs) -> ExitStatus {
    if let Some(line) = args.extra.info() {
        println!("{line}");
        return ExitStatus::Success;
    }
    if args.extra.semaphore {
        return sem_status(sem::run(&sem::SemArgs::from_run(&args)));
    }
    if let Some(l) = &args.extra.limit {
        limit::install(l.as_bytes().to_vec());
    }
    let plan = match args.plan() {
        Ok(plan) => plan,
        Err(msg) => {
            eprintln!("quadriga: {msg}");
            return ExitStatus::Error;
        }
    };
    plan.setup.clone().install();
    let result = runner::run(plan);
    program::cleanup();
    match result {
        Ok(Outcome::Finished(n)) => ExitStatus::Jobs(n),
        Ok(Outcome::Interrupted(sig)) => ExitStatus::Signal(sig),
        Ok(Outcome::BrokenPipe) => ExitStatus::BrokenPipe,
        Err(err) => {
            match err.downcast_ref::<UsageError>() {
                Some(usage) => eprintln!("quadriga: {usage}"),
                None => eprintln!("quadriga: error: {err:#}"),
            }
            ExitStatus::Error
        }
    }
}

/// A subcommand's result: success, or its error on one line (whatever the
/// cause chain holds) and the usage/internal-error status.
fn one_line(result: anyhow::Result<()>) -> ExitStatus {
    match result {
        Ok(()) => ExitStatus::Success,
        Err(err) => {
            eprintln!("quadriga: error: {}", format!("{err:#}").replace('\n', " "));
            ExitStatus::Error
        }
    }
}

/// `quadriga sem`'s result: the command's status (`--fg`), 1 when
/// `--semaphoretimeout` gave up, 255 for other errors.
fn sem_status(result: anyhow::Result<i32>) -> ExitStatus {
    match result {
        Ok(code) => ExitStatus::Jobs(code),
        Err(e) if e.is::<sem::Timeout>() => {
            eprintln!("quadriga: {e}");
            ExitStatus::Jobs(1)
        }
        Err(e) => one_line(Err(e)),
    }
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
    let status = match cli.command {
        Command::Run(args) => run(*args),
        Command::Watchdog => {
            let _ = watchdog::run(std::io::stdin().lock());
            ExitStatus::Success
        }
        Command::Status(args) => one_line(status::run(&args)),
        Command::Sem(args) => sem_status(sem::run(&args)),
        Command::Dashboard(args) => one_line(dashboard::run(&args)),
        Command::Worker(args) => one_line(worker::run(&args)),
    };
    status.into()
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
        let Command::Run(args) = cli.command else {
            panic!("not run");
        };
        assert_eq!(args.jobs, "auto");
        assert_eq!(args.command, ["echo", ":::", "a"]);
    }

    #[test]
    fn options_before_the_command_and_hyphens_after() {
        let cli = Cli::try_parse_from([
            "quadriga", "run", "-kj", "-1", "--tag", "-0", "grep", "-v", "x", ":::", "-a",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not run");
        };
        assert!(args.keep_order && args.tag && args.null);
        assert_eq!(args.jobs, "-1");
        assert_eq!(args.command, ["grep", "-v", "x", ":::", "-a"]);
    }

    #[test]
    fn exit_codes() {
        assert_eq!(ExitCode::from(ExitStatus::Jobs(3)), ExitCode::from(3));
        assert_eq!(ExitCode::from(ExitStatus::Error), ExitCode::from(255));
        assert_eq!(ExitCode::from(ExitStatus::Signal(2)), ExitCode::from(130));
    }
}
