//! Job output: capture (memory, then unlinked temp files), grouping, order,
//! tags.
//!
//! **Grouped** (the default): a job's stdout and stderr are captured while it
//! runs and printed when it ends, all of stdout then all of stderr, from this
//! one thread, so two jobs' output never interleave. `-k` prints in input
//! order; finished jobs wait their turn. **`--line-buffer`**: whole lines are
//! printed as they come (with `-k`, only the oldest job's; the others are
//! captured until their turn). **`-u`**: jobs write to our stdout and
//! stderr directly; nothing passes through here.
//!
//! **Memory is bounded.** A stream is kept in memory up to 1 MiB, and all
//! streams together up to 64 MiB; beyond that it goes to a temp file in
//! `$TMPDIR` (`/tmp`), created without a name (`O_TMPFILE`, mode 0600) or, where
//! the file system cannot, unlinked the moment it is created. Either way the
//! file vanishes with its descriptor: a `kill -9` of the runner leaves
//! nothing behind.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use indicatif::ProgressBar;
use rustix::fs::{Mode as FileMode, OFlags};

/// A stream held in memory up to this size before it spills to a file.
const PER_STREAM: usize = 1 << 20;
/// All streams together held in memory up to this size.
const TOTAL_IN_MEMORY: usize = 64 << 20;
/// A line longer than this is printed in pieces in line-buffered mode.
const MAX_PARTIAL_LINE: usize = 1 << 20;

/// How output is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Group,
    LineBuffer,
    Ungroup,
}

/// Which of a job's streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Which {
    Out,
    Err,
}

/// Memory accounting and where spill files go.
#[derive(Debug)]
struct Budget {
    in_memory: usize,
    tmpdir: PathBuf,
}

/// One captured stream: in memory, or (after spilling) all in a file.
#[derive(Debug, Default)]
pub(crate) struct Capture {
    mem: Vec<u8>,
    spill: Option<File>,
}

impl Capture {
    fn push(&mut self, data: &[u8], budget: &mut Budget) -> io::Result<()> {
        if let Some(f) = &mut self.spill {
            return f.write_all(data);
        }
        let grown = self.mem.len() + data.len();
        if grown <= PER_STREAM && budget.in_memory + data.len() <= TOTAL_IN_MEMORY {
            self.mem.extend_from_slice(data);
            budget.in_memory += data.len();
            return Ok(());
        }
        let mut f = spill_file(&budget.tmpdir)?;
        f.write_all(&self.mem)?;
        f.write_all(data)?;
        budget.in_memory -= self.mem.len();
        self.mem = Vec::new();
        self.spill = Some(f);
        Ok(())
    }

    fn is_empty(&self) -> bool {
        self.mem.is_empty() && self.spill.is_none()
    }

    fn release(&mut self, budget: &mut Budget) {
        budget.in_memory -= self.mem.len();
        self.mem = Vec::new();
        self.spill = None;
    }

    /// Whether it went to a file.
    #[cfg(test)]
    fn spilled(&self) -> bool {
        self.spill.is_some()
    }
}

static SPILL_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A temp file with no name: `O_TMPFILE`, or created and unlinked at once.
pub(crate) fn spill_file(dir: &Path) -> io::Result<File> {
    let mode = FileMode::RUSR | FileMode::WUSR;
    match rustix::fs::open(dir, OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC, mode) {
        Ok(fd) => return Ok(File::from(fd)),
        Err(e)
            if e != rustix::io::Errno::OPNOTSUPP
                && e != rustix::io::Errno::ISDIR
                && e != rustix::io::Errno::INVAL
                && e != rustix::io::Errno::NOENT =>
        {
            return Err(e.into());
        }
        Err(_) => {}
    }
    loop {
        let n = SPILL_COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!(".quadriga-{}-{n}", std::process::id()));
        let flags = OFlags::CREATE | OFlags::EXCL | OFlags::RDWR | OFlags::CLOEXEC;
        match rustix::fs::open(&path, flags, mode) {
            Ok(fd) => {
                let _ = rustix::fs::unlink(&path);
                return Ok(File::from(fd));
            }
            Err(rustix::io::Errno::EXIST) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// One of a job's streams while it runs.
#[derive(Debug)]
pub(crate) struct Stream {
    capture: Capture,
    /// Line-buffered: the last, unfinished line.
    partial: Vec<u8>,
    /// Bytes seen (the joblog's Receive, for stdout).
    pub(crate) bytes: u64,
}

impl Stream {
    fn new() -> Self {
        Stream {
            capture: Capture::default(),
            partial: Vec::new(),
            bytes: 0,
        }
    }
}

/// A job's output while it runs and until it is printed.
#[derive(Debug)]
pub(crate) struct JobOutput {
    pub(crate) seq: u64,
    tag: Option<Vec<u8>>,
    pub(crate) out: Stream,
    pub(crate) err: Stream,
    /// Line-buffered and allowed to print now.
    streaming: bool,
}

impl JobOutput {
    fn stream(&mut self, which: Which) -> &mut Stream {
        match which {
            Which::Out => &mut self.out,
            Which::Err => &mut self.err,
        }
    }
}

/// The runner's stdout or stderr, written without buffering: a duplicate of
/// descriptor 1 or 2 (close-on-exec), so writes go to the same open file.
#[derive(Debug)]
struct Sink {
    /// `None` if the descriptor was not open (every write then fails, as a
    /// write to a closed descriptor would).
    file: Option<File>,
}

impl Sink {
    fn new(fd: BorrowedFd<'_>) -> Self {
        Sink {
            file: fd.try_clone_to_owned().ok().map(File::from),
        }
    }

    fn file(&mut self) -> io::Result<&mut File> {
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::from(rustix::io::Errno::BADF))
    }
}

/// Writes `data`, putting `tag` TAB before every line; `at_start`: whether
/// the previous byte written ended a line.
fn write_tagged(w: &mut File, data: &[u8], tag: &[u8], at_start: &mut bool) -> io::Result<()> {
    let mut out = Vec::with_capacity(data.len() + 64);
    for line in data.split_inclusive(|&b| b == b'\n') {
        if *at_start {
            out.extend_from_slice(tag);
            out.push(b'\t');
        }
        out.extend_from_slice(line);
        *at_start = line.ends_with(b"\n");
    }
    w.write_all(&out)
}

/// All job output of a run.
#[derive(Debug)]
pub(crate) struct Output {
    mode: Mode,
    keep_order: bool,
    /// `-k`: the next sequence number to print.
    next_seq: u64,
    /// `-k`: finished jobs waiting for their turn.
    waiting: BTreeMap<u64, Option<JobOutput>>,
    budget: Budget,
    stdout: Sink,
    stderr: Sink,
    progress: Option<ProgressBar>,
    /// Set once a write to our stdout failed with a broken pipe.
    pub(crate) broken_pipe: bool,
}

impl Output {
    pub(crate) fn new(mode: Mode, keep_order: bool) -> Self {
        let tmpdir = std::env::var_os("TMPDIR")
            .filter(|d| !d.is_empty())
            .map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
        Output {
            mode,
            keep_order,
            next_seq: 1,
            waiting: BTreeMap::new(),
            budget: Budget {
                in_memory: 0,
                tmpdir,
            },
            stdout: Sink::new(io::stdout().as_fd()),
            stderr: Sink::new(io::stderr().as_fd()),
            progress: None,
            broken_pipe: false,
        }
    }

    pub(crate) fn mode(&self) -> Mode {
        self.mode
    }

    pub(crate) fn set_progress(&mut self, bar: ProgressBar) {
        self.progress = Some(bar);
    }

    /// A new job's output state.
    pub(crate) fn start(&mut self, seq: u64, tag: Option<Vec<u8>>) -> JobOutput {
        let streaming = self.mode == Mode::LineBuffer && (!self.keep_order || seq == self.next_seq);
        JobOutput {
            seq,
            tag,
            out: Stream::new(),
            err: Stream::new(),
            streaming,
        }
    }

    /// Data the job wrote.
    pub(crate) fn data(
        &mut self,
        job: &mut JobOutput,
        which: Which,
        data: &[u8],
    ) -> io::Result<()> {
        let streaming = job.streaming;
        let (stream, tag) = match which {
            Which::Out => (&mut job.out, job.tag.as_deref()),
            Which::Err => (&mut job.err, job.tag.as_deref()),
        };
        stream.bytes += data.len() as u64;
        if self.mode != Mode::LineBuffer {
            return stream.capture.push(data, &mut self.budget);
        }
        // Line-buffered: only whole lines go on (printed or, while it is not
        // this job's turn, captured); the unfinished one waits in `partial`.
        let lines = match data.iter().rposition(|&b| b == b'\n') {
            Some(nl) => {
                let mut lines = std::mem::take(&mut stream.partial);
                lines.extend_from_slice(&data[..=nl]);
                stream.partial.extend_from_slice(&data[nl + 1..]);
                lines
            }
            None => {
                stream.partial.extend_from_slice(data);
                if stream.partial.len() < MAX_PARTIAL_LINE {
                    return Ok(());
                }
                std::mem::take(&mut stream.partial)
            }
        };
        if streaming {
            self.print(which, &lines, tag, &mut true)
        } else {
            stream.capture.push(&lines, &mut self.budget)
        }
    }

    /// Discards what a job wrote (an attempt that will be retried).
    pub(crate) fn discard(&mut self, mut job: JobOutput) {
        job.out.capture.release(&mut self.budget);
        job.err.capture.release(&mut self.budget);
    }

    /// The job ended: print its output now or when its turn comes.
    pub(crate) fn finish(&mut self, mut job: JobOutput) -> io::Result<()> {
        if job.streaming {
            let tag = job.tag.clone();
            for which in [Which::Out, Which::Err] {
                let rest = std::mem::take(&mut job.stream(which).partial);
                if !rest.is_empty() {
                    self.print(which, &rest, tag.as_deref(), &mut true)?;
                }
            }
        } else if !self.keep_order || job.seq == self.next_seq {
            self.replay(&mut job)?;
        } else {
            self.waiting.insert(job.seq, Some(job));
            return Ok(());
        }
        if self.keep_order && job.seq == self.next_seq {
            self.advance()?;
        }
        Ok(())
    }

    /// `-k`: a sequence number that will print nothing (skipped by --resume).
    pub(crate) fn skip(&mut self, seq: u64) -> io::Result<()> {
        if !self.keep_order {
            return Ok(());
        }
        if seq == self.next_seq {
            self.advance()
        } else {
            self.waiting.insert(seq, None);
            Ok(())
        }
    }

    /// The next job in order is done: print those that waited for it.
    fn advance(&mut self) -> io::Result<()> {
        self.next_seq += 1;
        while let Some(entry) = self.waiting.remove(&self.next_seq) {
            if let Some(mut job) = entry {
                self.replay(&mut job)?;
            }
            self.next_seq += 1;
        }
        Ok(())
    }

    /// `-k --line-buffer`: the job whose turn it is starts printing: what it
    /// captured so far, then live.
    pub(crate) fn promote(&mut self, job: &mut JobOutput) -> io::Result<()> {
        if self.mode != Mode::LineBuffer || job.streaming || job.seq != self.next_seq {
            return Ok(());
        }
        self.replay_partial(job)?;
        job.streaming = true;
        Ok(())
    }

    /// The sequence number whose output is next (`-k`).
    pub(crate) fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Prints every job still waiting, in order, whatever the gaps (the run
    /// is ending, so some sequence numbers will never come).
    pub(crate) fn flush_all(&mut self) -> io::Result<()> {
        while let Some((_, entry)) = self.waiting.pop_first() {
            if let Some(mut job) = entry {
                self.replay(&mut job)?;
            }
        }
        Ok(())
    }

    /// Prints a captured job: all of stdout, then all of stderr.
    fn replay(&mut self, job: &mut JobOutput) -> io::Result<()> {
        self.replay_partial(job)?;
        let tag = job.tag.clone();
        for which in [Which::Out, Which::Err] {
            let rest = std::mem::take(&mut job.stream(which).partial);
            if !rest.is_empty() {
                self.print(which, &rest, tag.as_deref(), &mut true)?;
            }
        }
        Ok(())
    }

    /// Prints and releases what a job captured so far (line-buffered jobs
    /// capture whole lines; an unfinished one stays in `partial`).
    fn replay_partial(&mut self, job: &mut JobOutput) -> io::Result<()> {
        let tag = job.tag.clone();
        for which in [Which::Out, Which::Err] {
            let mut capture = std::mem::take(&mut job.stream(which).capture);
            if capture.is_empty() {
                continue;
            }
            let result = self.print_capture(which, &mut capture, tag.as_deref());
            capture.release(&mut self.budget);
            result?;
        }
        Ok(())
    }

    fn print_capture(
        &mut self,
        which: Which,
        c: &mut Capture,
        tag: Option<&[u8]>,
    ) -> io::Result<()> {
        let mut at_start = true;
        if let Some(f) = &mut c.spill {
            f.seek(SeekFrom::Start(0))?;
            if tag.is_none() && self.progress.is_none() {
                let sink = match which {
                    Which::Out => &mut self.stdout,
                    Which::Err => &mut self.stderr,
                };
                // std's copy uses copy_file_range / sendfile / splice here.
                return check_pipe(
                    sink.file().and_then(|out| io::copy(f, out).map(drop)),
                    which,
                    &mut self.broken_pipe,
                );
            }
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = match f.read(&mut buf) {
                    Ok(0) => return Ok(()),
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                self.print(which, &buf[..n], tag, &mut at_start)?;
            }
        }
        let mem = std::mem::take(&mut c.mem);
        let r = self.print(which, &mem, tag, &mut at_start);
        c.mem = mem;
        r
    }

    /// Writes to our stdout or stderr (tagged if asked), around the progress
    /// bar if there is one.
    fn print(
        &mut self,
        which: Which,
        data: &[u8],
        tag: Option<&[u8]>,
        at_start: &mut bool,
    ) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let sink = match which {
            Which::Out => &mut self.stdout,
            Which::Err => &mut self.stderr,
        };
        let mut write = || {
            let file = sink.file()?;
            match tag {
                Some(t) => write_tagged(file, data, t, at_start),
                None => file.write_all(data),
            }
        };
        let r = match &self.progress {
            Some(bar) => bar.suspend(write),
            None => write(),
        };
        check_pipe(r, which, &mut self.broken_pipe)
    }

    /// Writes a line of our own (dry run, `-t`) to stdout or stderr.
    pub(crate) fn line(&mut self, which: Which, text: &[u8]) -> io::Result<()> {
        let mut line = Vec::with_capacity(text.len() + 1);
        line.extend_from_slice(text);
        line.push(b'\n');
        self.print(which, &line, None, &mut true)
    }
}

/// Notes a broken pipe on stdout (the reader went away: not an error of ours).
fn check_pipe(r: io::Result<()>, which: Which, broken: &mut bool) -> io::Result<()> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe && which == Which::Out => {
            *broken = true;
            Err(e)
        }
        // A broken stderr is not worth stopping for.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(dir: &Path) -> Budget {
        Budget {
            in_memory: 0,
            tmpdir: dir.to_path_buf(),
        }
    }

    #[test]
    fn spill_files_have_no_name() {
        let dir = std::env::temp_dir();
        let mut f = spill_file(&dir).unwrap();
        f.write_all(b"hello").unwrap();
        let link = std::fs::read_link(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&f)
        ))
        .unwrap();
        assert!(link.to_string_lossy().ends_with("(deleted)"), "{link:?}");
    }

    #[test]
    fn capture_spills_past_the_per_stream_limit_and_keeps_everything() {
        let dir = std::env::temp_dir();
        let mut b = budget(&dir);
        let mut c = Capture::default();
        let chunk = vec![b'x'; 300_000];
        for _ in 0..3 {
            c.push(&chunk, &mut b).unwrap();
        }
        assert!(!c.spilled());
        assert_eq!(b.in_memory, 900_000);
        c.push(&chunk, &mut b).unwrap();
        assert!(c.spilled());
        assert_eq!(b.in_memory, 0);
        let f = c.spill.as_mut().unwrap();
        f.seek(SeekFrom::Start(0)).unwrap();
        let mut all = Vec::new();
        f.read_to_end(&mut all).unwrap();
        assert_eq!(all.len(), 1_200_000);
        c.release(&mut b);
        assert!(c.is_empty());
    }

    #[test]
    fn the_total_in_memory_is_bounded() {
        let dir = std::env::temp_dir();
        let mut b = budget(&dir);
        let mut captures: Vec<Capture> = (0..100).map(|_| Capture::default()).collect();
        let chunk = vec![b'y'; 1 << 20];
        for c in &mut captures {
            c.push(&chunk, &mut b).unwrap();
        }
        assert!(b.in_memory <= TOTAL_IN_MEMORY);
        assert!(captures.iter().filter(|c| c.spilled()).count() >= 36);
        for c in &mut captures {
            c.release(&mut b);
        }
        assert_eq!(b.in_memory, 0);
    }

    #[test]
    fn tags_every_line() {
        let path = std::env::temp_dir().join(format!("quadriga-tag-test-{}", std::process::id()));
        let mut f = File::create(&path).unwrap();
        let mut at_start = true;
        write_tagged(&mut f, b"a\nb", b"T", &mut at_start).unwrap();
        write_tagged(&mut f, b"c\n\nd\n", b"T", &mut at_start).unwrap();
        drop(f);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(text, "T\ta\nT\tbc\nT\t\nT\td\n");
    }
}
