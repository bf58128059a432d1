//! `--pipe --tee`: all of stdin to every job (GNU parallel's `--tee`), e.g.
//! `seq 1000 | quadriga run --pipe --tee --tag 'grep -c {}' ::: 4 5 6`.
//!
//! The jobs are the inputs after `:::` (or `-a FILE`), all running at once.
//! Each job's stdin is a pipe; when the last job has started, a thread
//! reads our stdin and writes each piece to every pipe in turn, so the
//! slowest job sets the pace and memory stays at one piece. A job that
//! closes its stdin early only leaves the list. At the end of stdin the
//! pipes close, and the jobs see their end of file.

use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::sync::Mutex;

use rustix::pipe::{PipeFlags, pipe_with};

/// The pipes of the jobs started so far, until all have started.
#[derive(Debug)]
struct Tee {
    expected: usize,
    writers: Vec<OwnedFd>,
    started: bool,
}

static TEE: Mutex<Option<Tee>> = Mutex::new(None);

/// Makes this run a `--tee` run of `jobs` jobs.
pub(crate) fn install(jobs: usize) {
    *TEE.lock().unwrap_or_else(|e| e.into_inner()) = Some(Tee {
        expected: jobs,
        writers: Vec::new(),
        started: false,
    });
}

/// A new job's stdin, if this is a `--tee` run: its pipe, once the copying
/// has not begun (a job started again after it has gets `None`: no data).
pub(crate) fn job_stdin() -> io::Result<Option<OwnedFd>> {
    let mut guard = TEE.lock().unwrap_or_else(|e| e.into_inner());
    let Some(tee) = guard.as_mut() else {
        return Ok(None);
    };
    if tee.started {
        return Ok(None);
    }
    let (r, w) = pipe_with(PipeFlags::CLOEXEC)?;
    tee.writers.push(w);
    if tee.writers.len() >= tee.expected {
        tee.started = true;
        let writers = std::mem::take(&mut tee.writers);
        std::thread::Builder::new()
            .name("quadriga-tee".into())
            .spawn(move || copy(io::stdin().lock(), writers))?;
    }
    Ok(Some(r))
}

/// Copies `input` to every writer, dropping those whose reader is gone.
fn copy(mut input: impl Read, writers: Vec<OwnedFd>) {
    let mut writers: Vec<std::fs::File> = writers.into_iter().map(std::fs::File::from).collect();
    let mut buf = vec![0u8; 128 * 1024];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        writers.retain_mut(|w| w.write_all(&buf[..n]).is_ok());
        if writers.is_empty() {
            break;
        }
    }
    // Dropping the writers closes the pipes: end of file for the jobs.
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reader_gets_everything_and_a_closed_one_is_dropped() {
        let data: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let (r1, w1) = pipe_with(PipeFlags::CLOEXEC).unwrap();
        let (r2, w2) = pipe_with(PipeFlags::CLOEXEC).unwrap();
        let (r3, w3) = pipe_with(PipeFlags::CLOEXEC).unwrap();
        drop(r3);
        let input = io::Cursor::new(data.clone());
        let t = std::thread::spawn(move || copy(input, vec![w1, w2, w3]));
        let readers: Vec<_> = [r1, r2]
            .into_iter()
            .map(|r| {
                std::thread::spawn(move || {
                    let mut v = Vec::new();
                    std::fs::File::from(r).read_to_end(&mut v).unwrap();
                    v
                })
            })
            .collect();
        t.join().unwrap();
        for r in readers {
            assert!(r.join().unwrap() == data);
        }
    }
}
