//! The worker: the current binary re-executed with [`WORKER_ENV`] set and its
//! socket as standard input. A constructor in `.init_array` turns such a
//! process into a worker before `main` runs (in binaries, examples, test
//! harnesses and doctests alike); [`bootstrap`] does the same for platforms
//! or link setups where constructors do not run, called by
//! [`crate::init`] and by the pools. The worker never calls back into
//! `init`: the edge goes one way, from `init` down to [`bootstrap`].
//!
//! The worker is single-threaded and simple: read a frame, run the job, write
//! the outcome, and flush after each job so the supervisor sees every completion
//! as it happens (a crash then costs only the job that was running).

use std::io::Write;
use std::os::fd::{AsFd, FromRawFd};
use std::os::unix::net::UnixStream;
use std::sync::Once;

use crate::process::wire::{self, Decoder, Down, Up};
use crate::task::batch::Batch;
use crate::task::outcomes::Outcomes;
use crate::task::registry;

/// The variable that marks a worker, holding its socket's descriptor number.
pub(crate) const WORKER_ENV: &str = "QUADRIGA_WORKER";
/// The frame bound the supervisor uses, so both sides agree.
pub(crate) const MAX_FRAME_ENV: &str = "QUADRIGA_MAX_FRAME";
/// The pid of the process that started the worker.
pub(crate) const PARENT_ENV: &str = "QUADRIGA_PARENT";
/// The worker's address-space limit in bytes, if any.
pub(crate) const MEMORY_LIMIT_ENV: &str = "QUADRIGA_MEMORY_LIMIT";
/// The marker of a worker started as another program
/// (`ProcessPoolBuilder::worker_program`), in place of [`WORKER_ENV`]: the
/// constructor leaves such a process alone, and it serves when it calls
/// [`serve_program_worker`] (a library loaded by an interpreter must not run
/// the worker loop inside `dlopen`).
pub(crate) const PROGRAM_WORKER_ENV: &str = "QUADRIGA_PROGRAM_WORKER";

/// Exit code of a worker whose supervisor sent something it could not read.
const EXIT_PROTOCOL: i32 = 70;

#[used]
#[unsafe(link_section = ".init_array")]
static WORKER_CTOR: extern "C" fn() = worker_ctor;

extern "C" fn worker_ctor() {
    if std::env::var_os(WORKER_ENV).is_some() {
        bootstrap();
    }
}

static BOOTSTRAP: Once = Once::new();

/// Prepares this process, once: if it was started as a worker, runs the
/// worker loop and exits; otherwise installs the panic hook that records
/// where tasks panic, and returns. What [`crate::init`], the constructor and
/// the pools call.
pub(crate) fn bootstrap() {
    BOOTSTRAP.call_once(|| {
        divert_if_worker();
        crate::panic::install_hook();
    });
}

/// If this process was started by `ProcessPoolBuilder::worker_program`, runs
/// the worker loop and exits; else returns.
pub(crate) fn serve_program_worker() {
    divert(PROGRAM_WORKER_ENV);
}

/// If this process is a worker, runs the worker loop and exits; else returns.
fn divert_if_worker() {
    divert(WORKER_ENV);
}

/// If `marker` is set, runs the worker loop and exits; else returns.
fn divert(marker: &str) {
    let Some(value) = std::env::var_os(marker) else {
        return;
    };
    let number = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let max_frame = number(MAX_FRAME_ENV).map_or(wire::DEFAULT_MAX_FRAME, |v| v as usize);
    let parent = number(PARENT_ENV);
    let memory_limit = number(MEMORY_LIMIT_ENV);
    // SAFETY: called from `bootstrap`, which runs once, before `main` (from
    // the constructor) or first thing in it, or by a program worker's start
    // before it runs anything else: no other thread reads the environment
    // yet. Removing the markers keeps programs the task starts from thinking
    // they are workers too.
    unsafe {
        for name in [marker, MAX_FRAME_ENV, PARENT_ENV, MEMORY_LIMIT_ENV] {
            std::env::remove_var(name);
        }
    }
    if value != "0" {
        eprintln!("quadriga: {marker} is set but this is not a worker's start");
        std::process::exit(EXIT_PROTOCOL);
    }
    let sock = match set_up(parent, memory_limit) {
        Ok(sock) => sock,
        Err(err) => {
            eprintln!(
                "quadriga worker {}: could not start: {err}",
                std::process::id()
            );
            std::process::exit(EXIT_PROTOCOL);
        }
    };
    crate::panic::install_hook();
    let code = match serve(sock, max_frame) {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("quadriga worker {}: {err}", std::process::id());
            EXIT_PROTOCOL
        }
    };
    std::process::exit(code);
}

/// What a `pre_exec` hook would have done, done by the worker to itself before
/// any task code runs: take the socket off standard input (which becomes
/// `/dev/null`), die with the parent, apply the memory limit, and raise the
/// soft limit of open files to the hard one (descriptors of IPC objects arrive
/// by the hundred; the common soft limit of 1024 is a leftover of `select`,
/// which a worker does not use).
fn set_up(parent: Option<u64>, memory_limit: Option<u64>) -> std::io::Result<UnixStream> {
    use rustix::process::{Resource, Rlimit, Signal};
    rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
    // The parent may have died before the line above: then nobody will ever
    // send a signal, so check by hand.
    let ppid = rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get() as u64);
    if parent.is_some_and(|p| p != ppid) {
        std::process::exit(0);
    }
    // SAFETY: descriptor 0 is open: the supervisor made the socket our stdin.
    let stdin = unsafe { std::os::fd::BorrowedFd::borrow_raw(0) };
    let sock = rustix::io::fcntl_dupfd_cloexec(stdin, 3)?;
    let null = rustix::fs::open(
        "/dev/null",
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    // SAFETY: as above, descriptor 0 is open; `dup2` replaces it atomically.
    let mut stdin = unsafe { std::os::fd::OwnedFd::from_raw_fd(0) };
    rustix::io::dup2(&null, &mut stdin)?;
    // Descriptor 0 must stay open (it is /dev/null now): do not close it.
    std::mem::forget(stdin);
    raise_open_files_limit();
    if let Some(bytes) = memory_limit {
        rustix::process::setrlimit(
            Resource::As,
            Rlimit {
                current: Some(bytes),
                maximum: Some(bytes),
            },
        )?;
    }
    Ok(UnixStream::from(sock))
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; best effort (a worker
/// that cannot still runs, and a frame whose descriptors do not fit fails
/// alone, see `wire::Inbox`).
fn raise_open_files_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let Rlimit { current, maximum } = getrlimit(Resource::Nofile);
    if let (Some(current), Some(maximum)) = (current, maximum)
        && current < maximum
    {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(maximum),
                maximum: Some(maximum),
            },
        );
    }
}

fn serve(sock: UnixStream, max_frame: usize) -> std::io::Result<()> {
    let reader = sock.try_clone()?;
    let mut writer = sock;
    let mut dec = Decoder::new(max_frame);
    let mut out = Vec::with_capacity(1 << 12);
    let mut scratch = vec![0_u8; 1 << 16];
    // Descriptors received with frames not yet decoded (see `wire::Outbox`).
    let mut fds = wire::Inbox::default();
    let pid = std::process::id();
    loop {
        loop {
            let msg = match dec.next::<Down>() {
                Ok(Some(msg)) => msg,
                Ok(None) => break,
                Err(err) => return Err(std::io::Error::other(err)),
            };
            match msg {
                Down::Init { task, mut input } => {
                    claim_fds(input.to_mut(), &mut fds)?;
                    let reply = match init(&task, &input) {
                        Ok(()) => Up::Ready {
                            pid,
                            protocol: wire::PROTOCOL,
                        },
                        Err(error) => Up::InitFailed { error },
                    };
                    let failed = matches!(reply, Up::InitFailed { .. });
                    send(&mut writer, &mut out, &reply, max_frame)?;
                    if failed {
                        return Ok(());
                    }
                }
                Down::Run {
                    job,
                    task,
                    mut input,
                } => {
                    claim_fds(input.to_mut(), &mut fds)?;
                    let (outcomes, nanos) = match registry::lookup(&task) {
                        Ok(entry) => registry::run(entry, &input),
                        Err(err) => {
                            let mut o = Outcomes::default();
                            for _ in 0..input.len() {
                                o.push_err(err.clone());
                            }
                            (o, 0)
                        }
                    };
                    let reply = Up::Done {
                        job,
                        nanos,
                        outcomes,
                    };
                    if let Err(wire::FrameError::TooLarge { len, max }) =
                        wire::encode(&reply, &mut out, max_frame)
                    {
                        // The outputs do not fit in a frame: report that per item.
                        let mut o = Outcomes::default();
                        let err = crate::error::TaskError::codec(format!(
                            "the job's outputs take {len} bytes, over the frame limit of {max} bytes"
                        ));
                        for _ in 0..input.len() {
                            o.push_err(err.clone());
                        }
                        send(
                            &mut writer,
                            &mut out,
                            &Up::Done {
                                job,
                                nanos,
                                outcomes: o,
                            },
                            max_frame,
                        )?;
                    } else {
                        writer.write_all(&out)?;
                        out.clear();
                    }
                }
                Down::Exit => return Ok(()),
            }
        }
        let n = fds.recv(reader.as_fd(), &mut scratch)?;
        dec.feed(&scratch[..n]);
        if n == 0 {
            return Ok(()); // the supervisor closed the socket: it is gone or done
        }
    }
}

fn send(w: &mut UnixStream, out: &mut Vec<u8>, msg: &Up, max: usize) -> std::io::Result<()> {
    wire::encode(msg, out, max).map_err(std::io::Error::other)?;
    w.write_all(out)?;
    out.clear();
    Ok(())
}

/// Gives a batch the descriptors that came with its frame (those lost in
/// transit as `None`: the items naming them fail alone).
fn claim_fds(input: &mut Batch, fds: &mut wire::Inbox) -> std::io::Result<()> {
    input.fds = crate::task::fds::Fds::received(fds.claim(input.fd_count())?);
    Ok(())
}

/// Runs the initializer task, if any; its output is discarded.
fn init(task: &str, input: &Batch) -> Result<(), crate::error::TaskError> {
    if task.is_empty() {
        return Ok(());
    }
    let entry = registry::lookup(task)?;
    let (outcomes, _) = registry::run(entry, input);
    match outcomes.into_items().next() {
        Some(Err(err)) => Err(err),
        _ => Ok(()),
    }
}
