//! Running the plan: start jobs up to the limit, carry their output, reap
//! them, time them out, log them, retry them, halt.
//!
//! Two halves:
//!
//! - `state.rs`: the rules, as a state machine without I/O. It is told what
//!   happened, with the time, and answers with actions. Its rooms: `gate.rs`
//!   (limit, slots, `--delay`, `--memfree`, `--load`), `kill.rs` (why a job
//!   is killed, `--timeout` fixed or `N%`), `retry.rs` (`--retries`, and the
//!   kills that are not the job's fault); `halt.rs` (a sibling) has `--halt`.
//! - `shell.rs`: the I/O. One thread sleeps in a [`quadriga::child::Poller`]
//!   on every job's stdout and stderr pipes and pidfd, the caught-signal
//!   pipe and the input thread's eventfd, until the core's next deadline. It
//!   spawns, reads, reaps and signals, and does what the core asks. `results.rs`
//!   writes `--results` files.
//!
//! A job's life: admitted (slot taken), rendered, spawned (controller ticket
//! taken), its pipes read as they fill, and, when its pidfd says it exited,
//! reaped, its pipes drained to what is buffered, and finished: retried, or
//! logged, printed and counted, after which the halt policy is checked.
//! Killing (timeout, halt, a signal, `--memfree`) is SIGTERM to the job's
//! process group, then SIGKILL 300 ms later (and at once to whatever of the
//! group outlives the job).

mod gate;
mod kill;
mod results;
mod retry;
mod shell;
mod state;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};

use anyhow::{Context, Result};

use self::state::Job;
use crate::args::{Plan, Resume};
use crate::input::{Feed, Next, OpenInput};
use crate::joblog::{self, Logged};
use crate::output::{Output, Which};
use crate::template::JobContext;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Ran to the end (or halted): the exit status by the policy.
    Finished(i32),
    /// Stopped by a signal.
    Interrupted(i32),
    /// Our stdout was closed by its reader.
    BrokenPipe,
}

/// An error that is the user's, not ours (exit status 255 either way, but no
/// "error:" chain).
#[derive(Debug)]
pub(crate) struct UsageError(pub(crate) String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Runs the plan.
pub(crate) fn run(mut plan: Plan) -> Result<Outcome> {
    if plan.remote.is_some() {
        crate::remote::check(&plan).map_err(UsageError)?;
    }
    let previous = match (&plan.joblog, plan.resume) {
        (Some((path, _)), r) if r != Resume::No => joblog::read(path)
            .with_context(|| format!("cannot read the joblog {}", path.display()))?,
        _ => BTreeMap::new(),
    };
    let mut queue = VecDeque::new();
    let feed = match (&plan.pipe, &plan.input) {
        (Some(pipe), Some(_)) => {
            let slots = match plan.jobs {
                crate::args::Jobs::Fixed(n) => n,
                crate::args::Jobs::Auto => plan.cores,
            };
            Feed::Pipe(crate::pipe::Source::open(pipe, slots).context("cannot read the input")?)
        }
        (_, Some(spec)) => {
            let materialize = plan.dry_run
                || plan.progress.is_some()
                || plan.needs_total()
                || plan.halt.as_ref().is_some_and(|h| h.needs_total());
            OpenInput::open(spec.clone())
                .map_err(UsageError)?
                .into_feed(materialize)
                .context("cannot read the input")?
        }
        (_, None) => {
            // --retry-failed: the failed commands of the joblog, by sequence.
            for (&seq, logged) in &previous {
                if !logged.succeeded() {
                    queue.push_back(Job {
                        seq,
                        args: Vec::new(),
                        attempts: 0,
                        command: Some(logged.command.clone()),
                        stdin: None,
                    });
                }
            }
            Feed::Ready(VecDeque::new())
        }
    };
    plan.set_run_facts(feed.total().map(|n| (n + queue.len()) as u64))
        .map_err(UsageError)?;
    let mut output = Output::new(
        plan.mode,
        plan.keep_order && plan.resume != Resume::RetryFailed,
    );

    if plan.dry_run {
        return dry_run(&plan, feed, queue, &previous, &mut output);
    }
    shell::run(plan, feed, queue, previous, output)
}

/// `--dry-run`: print every command, run nothing.
fn dry_run(
    plan: &Plan,
    mut feed: Feed,
    queue: VecDeque<Job>,
    previous: &BTreeMap<u64, Logged>,
    output: &mut Output,
) -> Result<Outcome> {
    for job in queue {
        output.line(Which::Out, job.command.as_deref().unwrap_or_default())?;
    }
    let mut seq = 0;
    loop {
        let args = match feed.next_blocking() {
            Next::Job(a) => a,
            Next::Block(_) => Vec::new(),
            Next::Done => break,
            Next::Pending => unreachable!("the dry run reads its input first"),
            Next::Error(e) => anyhow::bail!("reading the input: {e}"),
        };
        seq += 1;
        if skip(plan.resume, previous, seq) {
            continue;
        }
        let ctx = JobContext {
            args: &args,
            seq,
            slot: 1,
        };
        output.line(Which::Out, &plan.template.render(ctx).shell)?;
    }
    Ok(Outcome::Finished(0))
}

/// Whether `--resume`/`--resume-failed` skips this sequence number.
fn skip(resume: Resume, previous: &BTreeMap<u64, Logged>, seq: u64) -> bool {
    match resume {
        Resume::Resume => previous.contains_key(&seq),
        Resume::ResumeFailed => previous.get(&seq).is_some_and(Logged::succeeded),
        Resume::No | Resume::RetryFailed => false,
    }
}
