//! Feeding a job its data: a block written, or a range of the file spliced,
//! into its stdin pipe (or named pipe) as the pipe has room, without ever
//! blocking; and `--cat`'s temporary file.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::pipe::{PipeFlags, SpliceFlags, pipe_with, splice};

use super::JobStdin;

/// The most a job's pipe is asked to hold (Linux's default ceiling for
/// unprivileged processes, `/proc/sys/fs/pipe-max-size`), so that a default
/// block goes in one write.
const PIPE_SIZE: usize = 1 << 20;

/// What a [`Writer::pump`] came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pumped {
    /// All written: close the pipe (the job sees end of file).
    Done,
    /// The pipe is full: wait until it is writable.
    Blocked,
    /// The job closed its end (or another error): its business, not ours.
    Closed,
}

/// A job's data on its way into a pipe.
#[derive(Debug)]
pub(crate) struct Writer {
    fd: OwnedFd,
    data: JobStdin,
    /// Bytes written so far.
    pos: u64,
    /// A named pipe: closing it before the job has read everything would
    /// throw away what is buffered (a FIFO's buffer dies with its last
    /// open descriptor), so it stays open until the buffer is empty.
    named: bool,
}

impl Writer {
    /// A pipe for a job's stdin: the read end to give the job, and the
    /// writer (non-blocking) that fills the write end.
    pub(crate) fn pipe(data: JobStdin) -> io::Result<(OwnedFd, Writer)> {
        let (r, w) = pipe_with(PipeFlags::CLOEXEC)?;
        rustix::io::ioctl_fionbio(&w, true)?;
        // No data yet (`--round-robin`): blocks of any size will come.
        let want = match data.len() {
            0 => PIPE_SIZE,
            n => (n as usize).clamp(4096, PIPE_SIZE),
        };
        // A smaller pipe works too, only with more wake-ups.
        let _ = rustix::pipe::fcntl_setpipe_size(&w, want);
        Ok((
            r,
            Writer {
                fd: w,
                data,
                pos: 0,
                named: false,
            },
        ))
    }

    /// `--fifo`: a named pipe at `path`, opened for reading and writing
    /// (so the open does not wait for the job, and the job's open does not
    /// wait for us), non-blocking.
    pub(crate) fn fifo(path: &Path, data: JobStdin) -> io::Result<Writer> {
        rustix::fs::mkfifoat(rustix::fs::CWD, path, Mode::RUSR | Mode::WUSR)?;
        let fd = rustix::fs::open(
            path,
            OFlags::RDWR | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let want = (data.len() as usize).clamp(4096, PIPE_SIZE);
        let _ = rustix::pipe::fcntl_setpipe_size(&fd, want);
        Ok(Writer {
            fd,
            data,
            pos: 0,
            named: true,
        })
    }

    /// `--round-robin`: the next block for this job, once the last is written.
    pub(crate) fn refill(&mut self, data: JobStdin) {
        debug_assert!(self.pos >= self.data.len());
        self.data = data;
        self.pos = 0;
    }

    /// The descriptor to wait on for room.
    pub(crate) fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// All written, and (a named pipe) all read: it may be closed. A
    /// named pipe that is written but not yet read out must be looked at
    /// again later (its readiness says nothing about that).
    pub(crate) fn finished(&self) -> bool {
        self.pos >= self.data.len()
            && (!self.named || rustix::io::ioctl_fionread(&self.fd).map_or(true, |n| n == 0))
    }

    /// Whether this is a named pipe (`--fifo`).
    pub(crate) fn is_named(&self) -> bool {
        self.named
    }

    /// Writes what the pipe takes now.
    pub(crate) fn pump(&mut self) -> Pumped {
        loop {
            let total = self.data.len();
            if self.pos >= total {
                return Pumped::Done;
            }
            let res = match &self.data {
                JobStdin::Block { header, body } => {
                    let h = header.len() as u64;
                    let slice = if self.pos < h {
                        &header[self.pos as usize..]
                    } else {
                        &body[(self.pos - h) as usize..]
                    };
                    rustix::io::write(&self.fd, slice)
                }
                JobStdin::Range {
                    header,
                    file,
                    start,
                    end,
                } => {
                    let h = header.len() as u64;
                    if self.pos < h {
                        rustix::io::write(&self.fd, &header[self.pos as usize..])
                    } else {
                        let mut off = start + (self.pos - h);
                        let len = (end - off).min(1 << 30) as usize;
                        match splice(
                            &**file,
                            Some(&mut off),
                            &self.fd,
                            None,
                            len,
                            SpliceFlags::NONBLOCK | SpliceFlags::MOVE,
                        ) {
                            // A file system without splice: through a buffer.
                            Err(Errno::INVAL | Errno::NOSYS) => {
                                copy_through_buffer(file, off, len, &self.fd)
                            }
                            // The file was cut short under us.
                            Ok(0) => return Pumped::Closed,
                            other => other,
                        }
                    }
                }
            };
            match res {
                Ok(n) => self.pos += n as u64,
                Err(Errno::AGAIN) => return Pumped::Blocked,
                Err(Errno::INTR) => continue,
                Err(_) => return Pumped::Closed,
            }
        }
    }
}

/// Reads a piece of the range and writes what the pipe takes (the rest is
/// read again next time).
fn copy_through_buffer(
    file: &File,
    off: u64,
    len: usize,
    fd: &OwnedFd,
) -> rustix::io::Result<usize> {
    let mut buf = vec![0; len.min(64 * 1024)];
    let n = file
        .read_at(&mut buf, off)
        .map_err(|e| Errno::from_io_error(&e).unwrap_or(Errno::IO))?;
    if n == 0 {
        return Ok(0);
    }
    rustix::io::write(fd, &buf[..n])
}

/// A file or named pipe removed when the job is done with it.
#[derive(Debug)]
pub(crate) struct TempPath(PathBuf);

impl TempPath {
    /// A fresh name in the temporary directory (nothing is created).
    pub(crate) fn new(seq: u64, attempt: u32) -> Self {
        TempPath(
            std::env::temp_dir().join(format!("quadriga-{}-{seq}-{attempt}", std::process::id())),
        )
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }

    /// `--cat`: the data written into a new file (0600) at this path.
    pub(crate) fn write(&self, data: &JobStdin) -> io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&self.0)?;
        match data {
            JobStdin::Block { header, body } => {
                f.write_all(header)?;
                f.write_all(body)?;
            }
            JobStdin::Range {
                header,
                file,
                start,
                end,
            } => {
                f.write_all(header)?;
                let mut buf = vec![0; (end - start).min(1 << 20) as usize];
                let mut off = *start;
                while off < *end {
                    let n = ((end - off) as usize).min(buf.len());
                    file.read_exact_at(&mut buf[..n], off)?;
                    f.write_all(&buf[..n])?;
                    off += n as u64;
                }
            }
        }
        Ok(())
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
