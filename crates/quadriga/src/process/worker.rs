//! The worker: the current binary re-executed with [`WORKER_ENV`] set to the
//! number of an inherited socket. A constructor in `.init_array` turns such a
//! process into a worker before `main` runs (in binaries, examples, test
//! harnesses and doctests alike); [`crate::init`] does the same for platforms
//! or link setups where constructors do not run.
//!
//! The worker is single-threaded and simple: read a frame, run the job, write
//! the outcome, and flush after each job so the supervisor sees every completion
//! as it happens (a crash then costs only the job that was running).

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::net::UnixStream;

use crate::process::registry;
use crate::process::wire::{self, Decoder, Down, Outcomes, Up};

/// The variable that marks a worker, holding its socket's descriptor number.
pub(crate) const WORKER_ENV: &str = "QUADRIGA_WORKER";
/// The frame bound the supervisor uses, so both sides agree.
pub(crate) const MAX_FRAME_ENV: &str = "QUADRIGA_MAX_FRAME";

/// Exit code of a worker whose supervisor sent something it could not read.
const EXIT_PROTOCOL: i32 = 70;

#[used]
#[unsafe(link_section = ".init_array")]
static WORKER_CTOR: extern "C" fn() = worker_ctor;

extern "C" fn worker_ctor() {
    if std::env::var_os(WORKER_ENV).is_some() {
        crate::init();
    }
}

/// If this process is a worker, runs the worker loop and exits; else returns.
pub(crate) fn divert_if_worker() {
    let Some(value) = std::env::var_os(WORKER_ENV) else {
        return;
    };
    let max_frame = std::env::var(MAX_FRAME_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(wire::DEFAULT_MAX_FRAME);
    // SAFETY: called from `init`, which runs once, before `main` (from the
    // constructor) or first thing in it: no other thread reads the environment
    // yet. Removing the marker keeps programs the task starts from thinking
    // they are workers too.
    unsafe {
        std::env::remove_var(WORKER_ENV);
        std::env::remove_var(MAX_FRAME_ENV);
    }
    let Some(fd) = value.to_str().and_then(|v| v.parse::<RawFd>().ok()) else {
        eprintln!("quadriga: {WORKER_ENV} is set but is not a descriptor number");
        std::process::exit(EXIT_PROTOCOL);
    };
    crate::panic::install_hook();
    // SAFETY: the supervisor passed us this descriptor, open and ours alone: it
    // cleared close-on-exec on exactly this number before exec, and nothing else
    // in this fresh process has taken ownership of it.
    let sock = unsafe { UnixStream::from_raw_fd(fd) };
    let code = match serve(sock, max_frame) {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("quadriga worker {}: {err}", std::process::id());
            EXIT_PROTOCOL
        }
    };
    std::process::exit(code);
}

fn serve(sock: UnixStream, max_frame: usize) -> std::io::Result<()> {
    let mut reader = sock.try_clone()?;
    let mut writer = sock;
    let mut dec = Decoder::new(max_frame);
    let mut out = Vec::with_capacity(1 << 12);
    let mut scratch = vec![0_u8; 1 << 16];
    let pid = std::process::id();
    loop {
        loop {
            let msg = match dec.next::<Down>() {
                Ok(Some(msg)) => msg,
                Ok(None) => break,
                Err(err) => return Err(std::io::Error::other(err)),
            };
            match msg {
                Down::Init { task, input } => {
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
                Down::Run { job, task, input } => {
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
        let n = reader.read(&mut scratch)?;
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

/// Runs the initializer task, if any; its output is discarded.
fn init(task: &str, input: &wire::Batch) -> Result<(), crate::error::TaskError> {
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
