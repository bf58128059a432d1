//! `quadriga run`'s arguments, and the plan they make.
//!
//! Options come first (clap); the first word that is not an option starts
//! the command, and everything after it is taken raw: the command words, then
//! input groups introduced by `:::`, `:::+`, `::::` and `::::+`, which clap's
//! model does not fit, so they are split here.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args};

use crate::halt::{self, Halt};
use crate::input::{InputSpec, PerJob, SourceKind, SourceSpec, parse_delimiter};
use crate::output::Mode;
use crate::progress;
use crate::template::{Template, TemplateOptions};

/// `quadriga run --help`: what comes after the options.
pub(crate) const LONG_ABOUT: &str = "Run a command once per input, in parallel (like GNU parallel, \
at xargs speed).\n\n\
Inputs follow the command after ::: (arguments) or :::: (files), or come from -a FILE or stdin. \
Replacement strings: {} {.} {/} {//} {/.} {#} {%}, and by position {1} {2.} {3/} {-1} ...; with none, the \
input is appended; --plus and --rpl add more, and with --colsep (or --csv) {1} {2} are \
columns, named by --header :. Values are quoted for the shell; a command of plain words runs without one \
(otherwise /bin/sh, or $PARALLEL_SHELL).\n\n\
-j auto (the default) measures each job's CPU time against its wall time, and the throughput, \
and picks the number of jobs: about one per core for CPU-bound work, more for work that \
waits, until throughput stops improving (-v shows each decision).\n\n\
Exit status: 0 if every job succeeded; 1-100 the number of failed jobs; 101 more than 100 \
failed; 128+N stopped by signal N; 141 stdout closed; 255 a usage or internal error (see \
--halt for its rules).";

/// Examples for `quadriga run --help`.
pub(crate) const AFTER_HELP: &str = "Examples:\n  quadriga run gzip ::: *.log\n  \
find . -name '*.jpg' | quadriga run -k convert {} {.}.png\n  \
quadriga run --joblog log --timeout 30 curl -sO ::: $(cat urls)";

/// `quadriga run [OPTIONS] COMMAND... [::: ARGS...]...`
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Jobs at once: N, N% of the cores, +N or -N cores, 0 (as many as
    /// allowed), or auto (measure and adapt).
    #[arg(
        short = 'j',
        long = "jobs",
        visible_alias = "max-procs",
        short_alias = 'P',
        default_value = "auto",
        allow_hyphen_values = true,
        value_name = "N"
    )]
    pub(crate) jobs: String,

    /// The most jobs -j auto (or -j 0) may run at once.
    #[arg(long, default_value_t = 256, value_name = "N")]
    pub(crate) max_jobs: usize,

    /// Print output in the order of the input, not of completion.
    #[arg(short = 'k', long)]
    pub(crate) keep_order: bool,

    /// Group each job's output, printed when it ends: stdout, then stderr (the default).
    #[arg(long, overrides_with_all = ["ungroup", "line_buffer"])]
    pub(crate) group: bool,

    /// Do not group: jobs write straight to stdout and stderr (fastest; may mix).
    #[arg(short = 'u', long, overrides_with_all = ["group", "line_buffer"])]
    pub(crate) ungroup: bool,

    /// Print whole lines as they come; lines of different jobs may alternate.
    #[arg(long = "line-buffer", visible_alias = "lb", overrides_with_all = ["group", "ungroup"])]
    pub(crate) line_buffer: bool,

    /// Prefix each output line with the job's arguments and a TAB.
    #[arg(long)]
    pub(crate) tag: bool,

    /// Prefix each output line with STR (replacement strings allowed) and a TAB.
    #[arg(long, value_name = "STR")]
    pub(crate) tagstring: Option<OsString>,

    /// Log each job (GNU parallel's format) to FILE; +FILE appends.
    #[arg(long, visible_alias = "jl", value_name = "FILE")]
    pub(crate) joblog: Option<OsString>,

    /// Skip jobs the joblog shows as run.
    #[arg(long)]
    pub(crate) resume: bool,

    /// Skip jobs the joblog shows as succeeded; run failed and unrun ones.
    #[arg(long)]
    pub(crate) resume_failed: bool,

    /// Run again the commands the joblog shows as failed (ignores the command and inputs).
    #[arg(long)]
    pub(crate) retry_failed: bool,

    /// Run a failing job up to N times in all (0: until it succeeds).
    #[arg(long, value_name = "N")]
    pub(crate) retries: Option<u32>,

    /// Kill a job (its whole process group) after DURATION (s, m, h, d), or
    /// after N% of the median run time of succeeded jobs.
    #[arg(long, value_name = "DURATION")]
    pub(crate) timeout: Option<String>,

    /// Stop early: now|soon,fail|success|done=N|N% (e.g. now,fail=1).
    #[arg(
        long,
        visible_alias = "halt-on-error",
        value_name = "WHEN,WHY=N",
        allow_hyphen_values = true
    )]
    pub(crate) halt: Option<String>,

    /// Print the commands, run nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,

    /// Show a progress bar on stderr (on a terminal).
    #[arg(long)]
    pub(crate) bar: bool,

    /// Show the estimated time left on stderr (on a terminal).
    #[arg(long)]
    pub(crate) eta: bool,

    /// Show progress counts on stderr (on a terminal).
    #[arg(long)]
    pub(crate) progress: bool,

    /// Save each job's stdout, stderr and seq under DIR/1/ARG/...; with
    /// replacement strings, to files named by them.
    #[arg(long, visible_alias = "res", value_name = "DIR")]
    pub(crate) results: Option<OsString>,

    /// Wait DURATION between job starts.
    #[arg(long, value_name = "DURATION")]
    pub(crate) delay: Option<String>,

    /// Start a job only with SIZE of memory available (K M G T: ×1024; k m g t: ×1000).
    #[arg(long, value_name = "SIZE")]
    pub(crate) memfree: Option<String>,

    /// Start a job only while fewer than N processes are running (N, N%, +N, -N of the cores).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub(crate) load: Option<String>,

    /// Read inputs from FILE (- for stdin); repeatable.
    #[arg(short = 'a', long = "arg-file", value_name = "FILE")]
    pub(crate) arg_file: Vec<OsString>,

    /// Inputs end with NUL, not newline.
    #[arg(short = '0', long = "null")]
    pub(crate) null: bool,

    /// Inputs end with DELIM (escapes such as \n, \0, \x2c).
    #[arg(
        short = 'd',
        long = "delimiter",
        value_name = "DELIM",
        allow_hyphen_values = true
    )]
    pub(crate) delimiter: Option<String>,

    /// Use up to N inputs per job.
    #[arg(short = 'n', long = "max-args", value_name = "N")]
    pub(crate) max_args: Option<usize>,

    /// Use up to N inputs per job, as {1}..{N}.
    #[arg(short = 'N', long = "max-replace-args", value_name = "N")]
    pub(crate) max_replace_args: Option<usize>,

    /// Many inputs per job, sharing them evenly; a word holding {} repeats per input.
    #[arg(short = 'X')]
    pub(crate) context_replace: bool,

    /// Many inputs per job, sharing them evenly; {} becomes all of them.
    #[arg(short = 'm')]
    pub(crate) multiple: bool,

    /// Use STR instead of {}.
    #[arg(short = 'I', value_name = "STR")]
    pub(crate) replace: Option<OsString>,

    /// Quote the command: each word is one argument, taken literally.
    #[arg(short = 'q', long)]
    pub(crate) quote: bool,

    /// Skip jobs whose inputs are blank.
    #[arg(short = 'r', long = "no-run-if-empty")]
    pub(crate) no_run_if_empty: bool,

    /// Link all input sources (pairwise; shorter ones wrap around).
    #[arg(long, visible_alias = "xapply")]
    pub(crate) link: bool,

    /// Use SEP instead of ::: .
    #[arg(long, value_name = "SEP", default_value = ":::")]
    pub(crate) arg_sep: String,

    /// Use SEP instead of :::: .
    #[arg(long, value_name = "SEP", default_value = "::::")]
    pub(crate) arg_file_sep: String,

    /// Print each command on stderr before it runs.
    #[arg(short = 't', long = "verbose")]
    pub(crate) print_commands: bool,

    /// Explain: print each -j auto decision and its reason, and a summary, on stderr.
    #[arg(short = 'v', action = ArgAction::Count)]
    pub(crate) explain: u8,

    /// Accepted for compatibility with GNU parallel; ignored.
    #[arg(long, hide = true)]
    pub(crate) will_cite: bool,
    /// Accepted for compatibility with GNU parallel; ignored.
    #[arg(long, hide = true)]
    pub(crate) no_notice: bool,
    /// Accepted for compatibility with GNU parallel; ignored.
    #[arg(long, hide = true)]
    pub(crate) plain: bool,

    #[command(flatten)]
    pub(crate) pipe: crate::pipe::PipeArgs,

    #[command(flatten)]
    pub(crate) extra: crate::extra_args::ExtraArgs,

    #[command(flatten)]
    pub(crate) remote: crate::remote::RemoteArgs,

    /// The command, then its inputs: ::: ARGS, :::+ ARGS (linked), :::: FILES, ::::+ FILES.
    #[arg(trailing_var_arg = true, value_name = "COMMAND")]
    pub(crate) command: Vec<OsString>,
}

/// How many jobs at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Jobs {
    Auto,
    Fixed(usize),
}

/// `--timeout`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Timeout {
    Fixed(Duration),
    /// Percent of the median run time of succeeded jobs.
    Percent(f64),
}

/// `--resume` and friends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::enum_variant_names)] // the option names
pub(crate) enum Resume {
    No,
    Resume,
    ResumeFailed,
    RetryFailed,
}

/// `--tag` / `--tagstring`.
#[derive(Debug, Clone)]
pub(crate) enum Tag {
    Args,
    Template(Template),
}

/// `--results`.
#[derive(Debug, Clone)]
pub(crate) enum Results {
    /// DIR/1/ARG1/2/ARG2/{stdout,stderr,seq}; with `--header :`, the
    /// column names instead of 1, 2 ...
    Dir(PathBuf, Vec<Vec<u8>>),
    /// A name with replacement strings: a file (and .err, .seq), or a
    /// directory when it ends in /.
    Named(Template),
}

/// Everything a run needs, checked.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) template: Template,
    /// `None` with --retry-failed.
    pub(crate) input: Option<InputSpec>,
    pub(crate) jobs: Jobs,
    pub(crate) max_jobs: usize,
    pub(crate) cores: usize,
    pub(crate) mode: Mode,
    pub(crate) keep_order: bool,
    pub(crate) tag: Option<Tag>,
    pub(crate) joblog: Option<(PathBuf, bool)>,
    pub(crate) resume: Resume,
    /// Attempts per job; 0: unlimited.
    pub(crate) attempts: u32,
    pub(crate) timeout: Option<Timeout>,
    pub(crate) halt: Option<Halt>,
    pub(crate) dry_run: bool,
    pub(crate) progress: Option<progress::Kind>,
    pub(crate) results: Option<Results>,
    pub(crate) delay: Option<Duration>,
    pub(crate) memfree: Option<u64>,
    pub(crate) load: Option<f64>,
    pub(crate) explain: u8,
    pub(crate) print_commands: bool,
    pub(crate) shell: OsString,
    /// `--pipe` or `--pipepart`.
    pub(crate) pipe: Option<crate::pipe::PipeSpec>,
    /// `--broker`: the jobs run on `quadriga worker`s.
    pub(crate) remote: Option<crate::remote::RemoteArgs>,
    /// `--workdir`, `--files`, `--nice`: how each job is started.
    pub(crate) setup: crate::program::JobSetup,
    /// `--limit`: a command asked before each job starts (see `limit.rs`).
    pub(crate) limit: bool,
    /// `--pipe --tee`: all of stdin to every job (see `tee.rs`).
    pub(crate) tee: bool,
}

impl Plan {
    /// Tells every template what the run knows once its input is read;
    /// `--tee` starts here (an error if its jobs cannot all run at once).
    pub(crate) fn set_run_facts(&mut self, total: Option<u64>) -> Result<(), String> {
        let slots = match self.jobs {
            Jobs::Fixed(n) => n,
            Jobs::Auto => self.cores,
        };
        if self.tee {
            let total = total.unwrap_or(0) as usize;
            if total > slots {
                return Err(format!(
                    "--tee runs every job at once: {total} jobs need -j {total} or more (try -j 0)"
                ));
            }
            crate::tee::install(total);
        }
        let facts = crate::template::RunFacts { total, slots };
        self.template.set_run_facts(facts);
        if let Some(Tag::Template(t)) = &mut self.tag {
            t.set_run_facts(facts);
        }
        if let Some(Results::Named(t)) = &mut self.results {
            t.set_run_facts(facts);
        }
        Ok(())
    }

    /// Whether a template needs the number of jobs before the first starts.
    pub(crate) fn needs_total(&self) -> bool {
        self.tee
            || self.template.needs_total()
            || matches!(&self.tag, Some(Tag::Template(t)) if t.needs_total())
            || matches!(&self.results, Some(Results::Named(t)) if t.needs_total())
    }
}

/// Parses `-j`-style counts: N, N%, +N, -N, relative to `cores`.
pub(crate) fn parse_count(s: &str, cores: usize) -> Result<f64, String> {
    let bad = || format!("bad number {s:?} (expected N, N%, +N or -N)");
    let s = s.trim();
    if let Some(p) = s.strip_suffix('%') {
        let p: f64 = p.parse().map_err(|_| bad())?;
        return Ok(cores as f64 * p / 100.0);
    }
    if let Some(n) = s.strip_prefix('+') {
        let n: f64 = n.parse().map_err(|_| bad())?;
        return Ok(cores as f64 + n);
    }
    if let Some(n) = s.strip_prefix('-') {
        let n: f64 = n.parse().map_err(|_| bad())?;
        return Ok(cores as f64 - n);
    }
    s.parse().map_err(|_| bad())
}

/// Parses `-j`.
pub(crate) fn parse_jobs(s: &str, cores: usize, max_jobs: usize) -> Result<Jobs, String> {
    if s == "auto" {
        return Ok(Jobs::Auto);
    }
    let n = parse_count(s, cores)?;
    if s.trim() == "0" {
        return Ok(Jobs::Fixed(max_jobs.max(1)));
    }
    Ok(Jobs::Fixed((n.round() as i64).max(1) as usize))
}

/// Parses a duration: seconds, or with s, m, h, d suffixes (`1h30m`, `2.5s`).
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("bad duration {s:?} (expected e.g. 10, 2.5s, 1m30s)");
    let s = s.trim();
    if s.is_empty() {
        return Err(bad());
    }
    let mut total = 0.0;
    let mut num = String::new();
    for c in s.chars() {
        let unit = match c {
            's' => 1.0,
            'm' => 60.0,
            'h' => 3600.0,
            'd' => 86400.0,
            c if c.is_ascii_digit() || c == '.' => {
                num.push(c);
                continue;
            }
            _ => return Err(bad()),
        };
        let v: f64 = num.parse().map_err(|_| bad())?;
        total += v * unit;
        num.clear();
    }
    if !num.is_empty() {
        total += num.parse::<f64>().map_err(|_| bad())?;
    }
    if !total.is_finite() || total < 0.0 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(total))
}

/// A number with an optional K M G T P suffix, scaled: ×1024ⁿ for capitals;
/// for lower case ×1000ⁿ, or ×1024ⁿ where `lower_binary` (GNU's `--block`).
/// `None` if it is not such a number.
pub(crate) fn scaled(s: &str, lower_binary: bool) -> Option<f64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last() {
        Some(c) if c.is_ascii_alphabetic() => {
            let exp = match c.to_ascii_lowercase() {
                'k' => 1,
                'm' => 2,
                'g' => 3,
                't' => 4,
                'p' => 5,
                _ => return None,
            };
            let base: f64 = if c.is_ascii_uppercase() || lower_binary {
                1024.0
            } else {
                1000.0
            };
            (&s[..s.len() - 1], base.powi(exp))
        }
        _ => (s, 1.0),
    };
    Some(num.parse::<f64>().ok()? * mult)
}

/// Parses a size: bytes with an optional K M G T P (×1024ⁿ) or k m g t p (×1000ⁿ).
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let bad = || format!("bad size {s:?} (expected e.g. 500M or 2G)");
    let v = scaled(s, false).ok_or_else(bad)?;
    if !v.is_finite() || v < 0.0 {
        return Err(bad());
    }
    Ok(v as u64)
}

/// What the trailing words hold: the command, then the input sources.
fn split_command(
    words: &[OsString],
    arg_sep: &str,
    file_sep: &str,
) -> (Vec<Vec<u8>>, Vec<SourceSpec>) {
    #[derive(PartialEq)]
    enum Kind {
        Args,
        Files,
    }
    let arg_sep = arg_sep.as_bytes();
    let file_sep = file_sep.as_bytes();
    let mut command = Vec::new();
    let mut sources: Vec<SourceSpec> = Vec::new();
    let mut current: Option<(Kind, bool)> = None;
    for w in words {
        let b = w.as_bytes();
        let sep = if b == arg_sep {
            Some((Kind::Args, false))
        } else if b.strip_suffix(b"+") == Some(arg_sep) {
            Some((Kind::Args, true))
        } else if b == file_sep {
            Some((Kind::Files, false))
        } else if b.strip_suffix(b"+") == Some(file_sep) {
            Some((Kind::Files, true))
        } else {
            None
        };
        if let Some((kind, linked)) = sep {
            if kind == Kind::Args {
                sources.push(SourceSpec {
                    kind: SourceKind::Args(Vec::new()),
                    linked,
                    skip_first: false,
                });
            }
            current = Some((kind, linked));
            continue;
        }
        match &mut current {
            None => command.push(b.to_vec()),
            Some((Kind::Args, _)) => {
                if let Some(SourceSpec {
                    kind: SourceKind::Args(v),
                    ..
                }) = sources.last_mut()
                {
                    v.push(b.to_vec());
                }
            }
            Some((Kind::Files, linked)) => {
                let kind = if b == b"-" {
                    SourceKind::Stdin
                } else {
                    SourceKind::File(PathBuf::from(w))
                };
                sources.push(SourceSpec {
                    kind,
                    linked: *linked,
                    skip_first: false,
                });
                // Each further file of the same :::: is its own source.
                *linked = false;
            }
        }
    }
    (command, sources)
}

impl RunArgs {
    /// Checks the arguments and makes the plan.
    pub(crate) fn plan(mut self) -> Result<Plan, String> {
        let cores = quadriga::child::cores();
        let max_jobs = self.max_jobs.max(1);
        let remote = self.remote.broker.is_some().then(|| self.remote.clone());
        let mut jobs = parse_jobs(&self.jobs, cores, max_jobs)?;
        // --pipe --tee: not blocks but all of stdin, to jobs made of the
        // arguments, all at once (-j auto: as many as --max-jobs).
        let tee = self.extra.tee && self.pipe.pipe;
        if tee {
            if self.pipe.pipepart || self.pipe.round_robin || self.pipe.cat || self.pipe.fifo {
                return Err(
                    "--tee works with --pipe alone (not --pipepart, --round-robin, --cat, --fifo)"
                        .into(),
                );
            }
            if self.arg_file.iter().any(|f| f.as_bytes() == b"-") {
                return Err("--tee: stdin is the data, not an input source".into());
            }
            self.pipe.pipe = false;
            self.pipe.block = None;
            if jobs == Jobs::Auto {
                jobs = Jobs::Fixed(max_jobs);
            }
        }
        // --header without a stream: the first input names the columns.
        let streaming = self.pipe.pipe || self.pipe.pipepart || self.pipe.round_robin;
        let column_header = if streaming {
            None
        } else {
            self.pipe.header.take()
        };
        let pipe = self
            .pipe
            .spec(self.max_replace_args.or(self.max_args), &self.arg_file)?;
        // --round-robin: one job per slot for the whole stream, so the
        // number of slots is fixed (auto would have nothing to measure).
        let jobs = match jobs {
            Jobs::Auto if pipe.as_ref().is_some_and(|p| p.round_robin) => Jobs::Fixed(cores),
            j => j,
        };
        let (command, mut sources) =
            split_command(&self.command, &self.arg_sep, &self.arg_file_sep);
        if tee && (sources.is_empty() && self.arg_file.is_empty()) {
            return Err("--tee needs the jobs' inputs after ::: (stdin is the data)".into());
        }
        if tee && sources.iter().any(|s| s.kind == SourceKind::Stdin) {
            return Err("--tee: stdin is the data, not an input source".into());
        }
        let mut file_sources: Vec<SourceSpec> = self
            .arg_file
            .iter()
            .map(|f| SourceSpec {
                kind: if f.as_bytes() == b"-" {
                    SourceKind::Stdin
                } else {
                    SourceKind::File(PathBuf::from(f))
                },
                linked: false,
                skip_first: false,
            })
            .collect();
        file_sources.append(&mut sources);
        let mut sources = file_sources;
        if sources.is_empty() {
            sources.push(SourceSpec {
                kind: SourceKind::Stdin,
                linked: false,
                skip_first: false,
            });
        }
        if let Some(first) = sources.first_mut() {
            first.linked = false;
        }

        if self.max_args.is_some() && self.max_replace_args.is_some() {
            return Err("use -n or -N, not both".into());
        }
        if self.context_replace && self.multiple {
            return Err("use -X or -m, not both".into());
        }
        let per_record = self.max_args.or(self.max_replace_args);
        let fill = self.context_replace || self.multiple || self.extra.xargs;
        // --xargs: as many as fit, not shared between the slots.
        let jobs_for_fill = match jobs {
            _ if self.extra.xargs && !(self.context_replace || self.multiple) => 1,
            Jobs::Fixed(n) => n,
            Jobs::Auto => cores,
        };
        let per_job = match per_record {
            Some(n) => PerJob::Exactly(n),
            None if fill => PerJob::Fill {
                jobs: jobs_for_fill,
            },
            None => PerJob::Exactly(1),
        };
        // -n and -N imply -X unless -m.
        let context_replace = self.context_replace || (per_record.is_some() && !self.multiple);

        let delimiter = match (&self.delimiter, self.null) {
            (Some(_), true) => return Err("use -0 or -d, not both".into()),
            (Some(d), false) => parse_delimiter(d)?,
            (None, true) => vec![0],
            (None, false) => vec![b'\n'],
        };

        let resume = match (self.resume, self.resume_failed, self.retry_failed) {
            (false, false, false) => Resume::No,
            (true, false, false) => Resume::Resume,
            (_, true, false) => Resume::ResumeFailed,
            (_, _, true) => Resume::RetryFailed,
        };
        let replace = self.replace.as_ref().map(|r| r.as_bytes().to_vec());
        self.extra.check_env()?;
        let columns = crate::columns::ColumnSpec::new(
            self.extra.colsep.as_deref(),
            self.extra.csv,
            self.extra.trim.as_deref(),
        )?;
        let names = match column_header.as_deref() {
            None => Vec::new(),
            Some(":") => {
                if resume == Resume::RetryFailed {
                    Vec::new()
                } else {
                    crate::columns::take_headers(&mut sources, &delimiter, &columns)?
                }
            }
            Some(_) => {
                return Err(
                    "--header without --pipe takes only : (the first input names the columns)"
                        .into(),
                );
            }
        };
        let extra = crate::rpl::Replacements::new(self.extra.plus, &self.extra.rpl)?;
        let template_options = TemplateOptions {
            quote_words: self.quote,
            context_replace,
            replace: replace.as_deref(),
            extra: Some(&extra),
            names: &names,
        };
        let unquoted_options = TemplateOptions {
            quote_words: false,
            context_replace: false,
            ..template_options
        };
        let template = Template::new(&command, template_options);

        let mode = if self.ungroup {
            Mode::Ungroup
        } else if self.line_buffer {
            Mode::LineBuffer
        } else {
            Mode::Group
        };
        let tag = match (&self.tagstring, self.tag) {
            (Some(t), _) => Some(Tag::Template(Template::new_unquoted_with(
                t.as_bytes(),
                unquoted_options,
            ))),
            (None, true) => Some(Tag::Args),
            (None, false) => None,
        };
        // GNU parallel ignores tags with -u.
        let tag = if mode == Mode::Ungroup { None } else { tag };

        let joblog = self.joblog.as_ref().map(|j| {
            let b = j.as_bytes();
            match b.strip_prefix(b"+") {
                Some(rest) if !rest.is_empty() => {
                    (PathBuf::from(OsString::from_vec(rest.to_vec())), true)
                }
                _ => (PathBuf::from(j), false),
            }
        });
        if resume != Resume::No && joblog.is_none() {
            return Err("--resume, --resume-failed and --retry-failed need --joblog".into());
        }
        let joblog = joblog.map(|(p, append)| (p, append || resume != Resume::No));

        let timeout = match &self.timeout {
            None => None,
            Some(t) => Some(match t.strip_suffix('%') {
                Some(p) => {
                    let p: f64 = p.parse().map_err(|_| format!("bad --timeout {t:?}"))?;
                    if p <= 0.0 {
                        return Err(format!("bad --timeout {t:?}"));
                    }
                    Timeout::Percent(p)
                }
                None => {
                    let d = parse_duration(t)?;
                    if d.is_zero() {
                        return Err("--timeout must be more than 0".into());
                    }
                    Timeout::Fixed(d)
                }
            }),
        };
        let halt = match &self.halt {
            Some(h) => halt::parse(h)?,
            None => None,
        };
        let progress = if self.bar {
            Some(progress::Kind::Bar)
        } else if self.eta {
            Some(progress::Kind::Eta)
        } else if self.progress {
            Some(progress::Kind::Progress)
        } else {
            None
        };
        let results = match &self.results {
            None => None,
            Some(r) => {
                if mode == Mode::Ungroup {
                    return Err("--results cannot be used with -u".into());
                }
                let b = r.as_bytes();
                if [".csv", ".tsv", ".json"]
                    .iter()
                    .any(|e| b.ends_with(e.as_bytes()))
                {
                    return Err(
                        "--results to CSV, TSV or JSON is not supported; give a directory".into(),
                    );
                }
                let t = Template::new_unquoted_with(b, unquoted_options);
                Some(if t.has_replacements() {
                    Results::Named(t)
                } else {
                    Results::Dir(PathBuf::from(r), names.clone())
                })
            }
        };
        let delay = self.delay.as_deref().map(parse_duration).transpose()?;
        let memfree = self.memfree.as_deref().map(parse_size).transpose()?;
        let load = match &self.load {
            Some(l) => {
                let v = parse_count(l, cores)?;
                Some(if v <= 0.0 { 0.01 } else { v })
            }
            None => None,
        };
        for t in [
            Some(&template),
            tag_template(&tag),
            results_template(&results),
        ]
        .into_iter()
        .flatten()
        {
            if let Some(e) = t.error() {
                return Err(e.to_string());
            }
        }
        if self.extra.files && mode == Mode::Ungroup {
            return Err("--files cannot be used with -u".into());
        }
        let setup = crate::program::JobSetup::new(
            self.extra.workdir.as_deref(),
            self.extra.files,
            self.extra.tmpdir.clone(),
            self.extra.nice,
        )?;
        let input = (resume != Resume::RetryFailed).then_some(InputSpec {
            sources,
            link_all: self.link,
            delimiter,
            per_job,
            skip_blank: self.no_run_if_empty,
            columns,
            eof: self.extra.eof.as_ref().map(|e| e.as_bytes().to_vec()),
            shuffle: self.extra.shuf,
            filters: template.filters(),
            line: self.extra.max_chars.map(|max| crate::input::LineLimit {
                max,
                template: std::sync::Arc::new(template.clone()),
            }),
        });
        Ok(Plan {
            template,
            input,
            jobs,
            max_jobs,
            cores,
            mode,
            keep_order: self.keep_order,
            tag,
            joblog,
            resume,
            attempts: self.retries.unwrap_or(1),
            timeout,
            halt,
            dry_run: self.dry_run,
            progress,
            results,
            delay,
            memfree,
            load,
            explain: self.explain,
            print_commands: self.print_commands,
            shell: crate::program::shell(),
            pipe,
            setup,
            limit: self.extra.limit.is_some(),
            tee,
            remote,
        })
    }
}

fn tag_template(tag: &Option<Tag>) -> Option<&Template> {
    match tag {
        Some(Tag::Template(t)) => Some(t),
        _ => None,
    }
}

fn results_template(results: &Option<Results>) -> Option<&Template> {
    match results {
        Some(Results::Named(t)) => Some(t),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    #[test]
    fn jobs_forms() {
        assert_eq!(parse_jobs("auto", 4, 256), Ok(Jobs::Auto));
        assert_eq!(parse_jobs("3", 4, 256), Ok(Jobs::Fixed(3)));
        assert_eq!(parse_jobs("50%", 4, 256), Ok(Jobs::Fixed(2)));
        assert_eq!(parse_jobs("200%", 4, 256), Ok(Jobs::Fixed(8)));
        assert_eq!(parse_jobs("+2", 4, 256), Ok(Jobs::Fixed(6)));
        assert_eq!(parse_jobs("-1", 4, 256), Ok(Jobs::Fixed(3)));
        assert_eq!(parse_jobs("-9", 4, 256), Ok(Jobs::Fixed(1)));
        assert_eq!(parse_jobs("0", 4, 100), Ok(Jobs::Fixed(100)));
        assert!(parse_jobs("many", 4, 256).is_err());
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("2.5"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("x").is_err());
        assert_eq!(parse_size("1K"), Ok(1024));
        assert_eq!(parse_size("2k"), Ok(2000));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("123"), Ok(123));
        assert!(parse_size("1Q").is_err());
    }

    #[test]
    fn splitting_command_and_sources() {
        let (cmd, src) = split_command(
            &os(&[
                "echo", "-n", ":::", "a", "b", ":::+", "1", "2", "::::", "f1", "-", "::::+", "f3",
            ]),
            ":::",
            "::::",
        );
        assert_eq!(cmd, [b"echo".to_vec(), b"-n".to_vec()]);
        assert_eq!(src.len(), 5);
        assert_eq!(
            src[0].kind,
            SourceKind::Args(vec![b"a".to_vec(), b"b".to_vec()])
        );
        assert!(src[1].linked);
        assert_eq!(src[2].kind, SourceKind::File("f1".into()));
        assert!(!src[2].linked);
        assert_eq!(src[3].kind, SourceKind::Stdin);
        assert!(src[4].linked);
        // No command: the inputs are the commands.
        let (cmd, src) = split_command(&os(&[":::", "echo a"]), ":::", "::::");
        assert!(cmd.is_empty());
        assert_eq!(src.len(), 1);
    }
}
