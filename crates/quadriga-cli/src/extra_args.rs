//! The rest of GNU parallel's everyday options, flattened into `quadriga
//! run`'s: columns (`--colsep`, `--csv`, `--trim`; `--header :` is read from
//! the stream options), replacement strings (`--plus`, `--rpl`), input
//! (`-E`, `--shuf`, `--xargs`, `-s`), where jobs run and where their output
//! goes (`--workdir`, `--nice`, `--files`, `--tmpdir`), and what the machine
//! has (`--number-of-cpus` ...).

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Args;

/// GNU parallel's everyday options.
#[derive(Debug, Args)]
pub(crate) struct ExtraArgs {
    /// Split each input into columns at REGEX; {1} {2} ... are the columns
    /// (trimmed, unless --trim n).
    #[arg(short = 'C', long, value_name = "REGEX", allow_hyphen_values = true)]
    pub(crate) colsep: Option<String>,

    /// Inputs are CSV: columns with CSV quoting (--colsep gives the delimiter).
    #[arg(long)]
    pub(crate) csv: bool,

    /// Trim spaces and tabs of inputs: n (none), l, r, lr or rl.
    #[arg(long, value_name = "n|l|r|lr")]
    pub(crate) trim: Option<String>,

    /// More replacement strings: {+/} {+.} {+..} {..} {/..} {##} {0#} {0%}
    /// {:-str} {:n} {:n:m} {#re} {%re} {/re/str} {^str} ...
    #[arg(long)]
    pub(crate) plus: bool,

    /// Define a replacement string: 'TAG EXPRESSION' (a subset of GNU's Perl:
    /// s/re/text/, ||, uc, lc ...; see docs/gnu-parallel.md).
    #[arg(long, value_name = "'TAG EXPR'")]
    pub(crate) rpl: Vec<String>,

    /// A value equal to EOF ends its input source.
    #[arg(
        short = 'E',
        long = "eof",
        value_name = "EOF",
        allow_hyphen_values = true
    )]
    pub(crate) eof: Option<String>,

    /// Run the jobs in a random order (reads all input first).
    #[arg(long)]
    pub(crate) shuf: bool,

    /// As many inputs per job as the command line takes (see -s).
    #[arg(long)]
    pub(crate) xargs: bool,

    /// The longest command line, in bytes, for -X, -m and --xargs.
    #[arg(short = 's', long = "max-chars", value_name = "N")]
    pub(crate) max_chars: Option<usize>,

    /// Save each job's stdout in a file under --tmpdir and print the file's name.
    #[arg(long)]
    pub(crate) files: bool,

    /// Where --files and --wd ... make theirs (default: $TMPDIR, else /tmp).
    #[arg(long, value_name = "DIR")]
    pub(crate) tmpdir: Option<PathBuf>,

    /// Run the jobs at niceness N (the runner takes it on, and its jobs inherit it).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub(crate) nice: Option<i32>,

    /// Run the jobs in DIR; ... for a new temporary directory per job,
    /// removed when it ends.
    #[arg(long, visible_alias = "wd", value_name = "DIR")]
    pub(crate) workdir: Option<OsString>,

    /// Variables for the jobs' environment: locally every variable is
    /// passed already, so this only checks the names (GNU's meaning is remote).
    #[arg(long, value_name = "VAR")]
    pub(crate) env: Vec<String>,

    /// Before each job, run COMMAND: exit 0 starts the job, 1 waits, 2 kills
    /// the youngest job (run again later).
    #[arg(long, value_name = "COMMAND")]
    pub(crate) limit: Option<String>,

    /// With --pipe: all of stdin to every job (the jobs are the inputs
    /// after :::, all running at once).
    #[arg(long)]
    pub(crate) tee: bool,

    /// Accepted for compatibility: output held back is kept in memory up to
    /// 64 MiB and only then spilled, uncompressed (see docs/gnu-parallel.md).
    #[arg(long)]
    pub(crate) compress: bool,

    /// Work as `quadriga sem` (GNU's `parallel --semaphore`), with -j (default
    /// 1), --id, --fg, --wait and --semaphoretimeout.
    #[arg(long, visible_alias = "sem")]
    pub(crate) semaphore: bool,

    /// With --semaphore: the semaphore's name.
    #[arg(long, value_name = "ID", requires = "semaphore")]
    pub(crate) id: Option<String>,

    /// With --semaphore: run in the foreground and exit with the command's status.
    #[arg(long, requires = "semaphore")]
    pub(crate) fg: bool,

    /// With --semaphore: wait until every command of the semaphore has ended.
    #[arg(long, requires = "semaphore")]
    pub(crate) wait: bool,

    /// With --semaphore: S > 0 runs anyway after S seconds; S < 0 gives up.
    #[arg(
        long = "semaphoretimeout",
        visible_alias = "st",
        value_name = "S",
        allow_hyphen_values = true,
        requires = "semaphore"
    )]
    pub(crate) semaphore_timeout: Option<f64>,

    /// Print the number of physical cores and exit (GNU's old name for
    /// --number-of-cores).
    #[arg(long)]
    pub(crate) number_of_cpus: bool,

    /// Print the number of physical cores and exit.
    #[arg(long)]
    pub(crate) number_of_cores: bool,

    /// Print the number of hardware threads and exit.
    #[arg(long)]
    pub(crate) number_of_threads: bool,

    /// Print the number of CPU sockets and exit.
    #[arg(long)]
    pub(crate) number_of_sockets: bool,
}

impl ExtraArgs {
    /// `--number-of-...`: the line to print instead of running, if asked.
    pub(crate) fn info(&self) -> Option<String> {
        let t = crate::cpus::Topology::read();
        // GNU's --number-of-cpus is its old name for the cores.
        if self.number_of_threads {
            Some(t.threads.to_string())
        } else if self.number_of_cores || self.number_of_cpus {
            Some(t.cores.to_string())
        } else if self.number_of_sockets {
            Some(t.sockets.to_string())
        } else {
            None
        }
    }

    /// Checks `--env` names: a variable name, or `_` (GNU's "the variables
    /// not in ~/.parallel/ignored_vars").
    pub(crate) fn check_env(&self) -> Result<(), String> {
        for e in &self.env {
            let ok = e == "_"
                || (!e.is_empty()
                    && e.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'*')
                    && !e.as_bytes()[0].is_ascii_digit());
            if !ok {
                return Err(format!("--env {e:?}: not a variable name"));
            }
        }
        Ok(())
    }
}
