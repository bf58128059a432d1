//! Input sources and how they combine into each job's arguments.
//!
//! Each `:::` group, `::::` file and `-a` file is a source; with none, stdin
//! is. Sources combine as a cartesian product, the first varying slowest;
//! `:::+`/`::::+` link a source to the previous one (pairwise, the shortest
//! decides), `--link` links them all (the longest decides, shorter ones
//! wrap around). A *record* is one value per source; a job takes one record,
//! or `-n`/`-N` of them, or with `-X`/`-m` an even share of all of them.
//!
//! Only the first source is read lazily (so `yes | quadriga run ...` works);
//! the others are read whole first, as the product needs them again and again.
//! A source that may block (stdin, a file that is a pipe) is read on a thread
//! of its own, which hands batches of jobs to the runner over a bounded
//! channel and wakes it through an eventfd.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering, fence};

use crossbeam_channel::{Receiver, TryRecvError};
use rustix::event::{EventfdFlags, eventfd};

use crate::columns::ColumnSpec;

/// One job's arguments.
pub(crate) type Args = Vec<Vec<u8>>;

/// Where a source's values come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SourceKind {
    /// `::: a b c`
    Args(Vec<Vec<u8>>),
    /// `-a -`, `:::: -`, or no source given.
    Stdin,
    /// `-a FILE`, `:::: FILE`
    File(PathBuf),
}

/// One source, and whether it is linked to the previous one (`:::+`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SourceSpec {
    pub(crate) kind: SourceKind,
    pub(crate) linked: bool,
    /// `--header :` took its first value already (a file read twice).
    pub(crate) skip_first: bool,
}

/// How many records make one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PerJob {
    /// `-n N` / `-N N` (0: consume one record, pass no argument).
    Exactly(usize),
    /// `-X` / `-m` without `-n`: all records shared evenly between `jobs`
    /// job slots, within the command-line size limit.
    Fill { jobs: usize },
}

/// Everything about the input.
#[derive(Debug, Clone)]
pub(crate) struct InputSpec {
    pub(crate) sources: Vec<SourceSpec>,
    pub(crate) link_all: bool,
    pub(crate) delimiter: Vec<u8>,
    pub(crate) per_job: PerJob,
    /// `-r`: skip jobs whose arguments are all blank.
    pub(crate) skip_blank: bool,
    /// `--colsep`, `--csv`, `--trim`: values cut into columns.
    pub(crate) columns: ColumnSpec,
    /// `-E`: a value equal to this ends its source.
    pub(crate) eof: Option<Vec<u8>>,
    /// `--shuf`: run the jobs in a random order (all read first).
    pub(crate) shuffle: bool,
    /// `-s`: the longest command line for `-X`, `-m` and `--xargs`.
    pub(crate) line: Option<LineLimit>,
    /// `{choose_k}`, `{uniq}`: jobs to skip.
    pub(crate) filters: Vec<crate::rpl::JobFilter>,
}

/// `-s N`: a job's command, as the template renders it, must be shorter
/// than `max` bytes (GNU parallel's measure).
#[derive(Debug, Clone)]
pub(crate) struct LineLimit {
    pub(crate) max: usize,
    pub(crate) template: Arc<crate::template::Template>,
}

impl LineLimit {
    fn len(&self, args: &[Vec<u8>]) -> usize {
        self.template
            .render(crate::template::JobContext {
                args,
                seq: 1,
                slot: 1,
            })
            .shell
            .len()
    }

    fn fits(&self, len: usize) -> bool {
        len < self.max
    }
}

/// Bytes of arguments one `-X`/`-m` job may take (like xargs's default).
const MAX_LINE: usize = 128 * 1024;

enum Opened {
    Values(Vec<Vec<u8>>),
    Reader(Items),
}

/// Splits a reader at a delimiter.
pub(crate) struct Items {
    reader: Box<dyn BufRead + Send>,
    delim: Vec<u8>,
    done: bool,
    /// `-E`: the value that ends the input.
    eof: Option<Vec<u8>>,
    /// `--csv`: a value with an open quote goes on past the delimiter.
    csv: bool,
}

impl std::fmt::Debug for Items {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Items").field("delim", &self.delim).finish()
    }
}

impl Items {
    fn new(reader: Box<dyn BufRead + Send>, delim: Vec<u8>) -> Self {
        Items {
            reader,
            delim,
            done: false,
            eof: None,
            csv: false,
        }
    }

    fn csv(mut self, csv: bool) -> Self {
        self.csv = csv;
        self
    }

    /// A value; with `--csv`, values joined while a quote is open.
    fn next_record(&mut self) -> Option<io::Result<Vec<u8>>> {
        let mut v = match self.next_value()? {
            Ok(v) => v,
            Err(e) => return Some(Err(e)),
        };
        while self.csv && memchr::memchr_iter(b'"', &v).count() % 2 == 1 {
            match self.next_value() {
                Some(Ok(more)) => {
                    v.extend_from_slice(&self.delim);
                    v.extend_from_slice(&more);
                }
                Some(Err(e)) => return Some(Err(e)),
                None => break,
            }
        }
        Some(Ok(v))
    }

    fn with_eof(mut self, eof: Option<Vec<u8>>) -> Self {
        self.eof = eof;
        self
    }

    fn next_value(&mut self) -> Option<io::Result<Vec<u8>>> {
        if self.done {
            return None;
        }
        let last = *self.delim.last().expect("delimiter is not empty");
        let mut item = Vec::new();
        loop {
            match self.reader.read_until(last, &mut item) {
                Ok(0) => {
                    self.done = true;
                    return (!item.is_empty()).then_some(Ok(item));
                }
                Ok(_) => {
                    if item.ends_with(&self.delim) {
                        item.truncate(item.len() - self.delim.len());
                        return Some(Ok(item));
                    }
                    if item.last() != Some(&last) {
                        // End of input without the delimiter.
                        self.done = true;
                        return Some(Ok(item));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

impl Iterator for Items {
    type Item = io::Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        let v = self.next_record()?;
        if let (Ok(v), Some(eof)) = (&v, &self.eof)
            && v == eof
        {
            self.done = true;
            return None;
        }
        Some(v)
    }
}

/// Opens every source; errors here (a missing file) are usage errors.
pub(crate) struct OpenInput {
    spec: InputSpec,
    opened: Vec<Opened>,
    may_block: bool,
}

impl std::fmt::Debug for OpenInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenInput")
            .field("spec", &self.spec)
            .field("may_block", &self.may_block)
            .finish()
    }
}

impl OpenInput {
    pub(crate) fn open(spec: InputSpec) -> Result<Self, String> {
        let mut opened = Vec::new();
        let mut may_block = false;
        let mut stdin_used = false;
        for s in &spec.sources {
            match &s.kind {
                SourceKind::Args(v) => {
                    let mut v = v.clone();
                    if let Some(eof) = &spec.eof
                        && let Some(at) = v.iter().position(|x| x == eof)
                    {
                        v.truncate(at);
                    }
                    opened.push(Opened::Values(v));
                }
                SourceKind::Stdin => {
                    if stdin_used {
                        return Err("stdin can be only one input source".into());
                    }
                    stdin_used = true;
                    may_block = true;
                    let reader: Box<dyn BufRead + Send> =
                        Box::new(BufReader::with_capacity(64 * 1024, io::stdin()));
                    opened.push(Opened::Reader(
                        Items::new(reader, spec.delimiter.clone())
                            .with_eof(spec.eof.clone())
                            .csv(spec.columns.is_csv()),
                    ));
                }
                SourceKind::File(path) => {
                    let file = File::open(path)
                        .map_err(|e| format!("cannot open input file {}: {e}", path.display()))?;
                    let regular = file.metadata().map(|m| m.is_file()).unwrap_or(false);
                    may_block |= !regular;
                    let reader: Box<dyn BufRead + Send> =
                        Box::new(BufReader::with_capacity(64 * 1024, file));
                    let mut items = Items::new(reader, spec.delimiter.clone())
                        .with_eof(spec.eof.clone())
                        .csv(spec.columns.is_csv());
                    if s.skip_first {
                        // The header, read already.
                        let _ = items.next_record();
                    }
                    opened.push(Opened::Reader(items));
                }
            }
        }
        Ok(OpenInput {
            spec,
            opened,
            may_block,
        })
    }

    /// Reads everything now.
    pub(crate) fn read_all(self) -> io::Result<Vec<Args>> {
        self.into_jobs()?.collect()
    }

    /// The jobs' arguments, lazily where possible.
    fn into_jobs(self) -> io::Result<Box<dyn Iterator<Item = io::Result<Args>> + Send>> {
        let OpenInput { spec, opened, .. } = self;
        let mut records = records(&spec, opened)?;
        if !spec.columns.is_identity() {
            let mut columns = spec.columns.splitter();
            records = Box::new(records.map(move |r| r.map(|v| columns.record(v))));
        }
        if spec.shuffle {
            let mut all: Vec<Args> = records.collect::<io::Result<_>>()?;
            fastrand::shuffle(&mut all);
            records = Box::new(all.into_iter().map(Ok));
        }
        let skip_blank = spec.skip_blank;
        let jobs: Box<dyn Iterator<Item = io::Result<Args>> + Send> = match spec.per_job {
            PerJob::Exactly(n) => {
                let chunks = Chunks {
                    records,
                    per_job: n,
                };
                match spec.line.clone() {
                    // -s: a job whose command is too long is an error.
                    Some(limit) => Box::new(chunks.enumerate().map(move |(i, job)| {
                        let job = job?;
                        let len = limit.len(&job);
                        if limit.fits(len) {
                            Ok(job)
                        } else {
                            Err(io::Error::other(format!(
                                "command line too long ({len} >= {}) at input {i}",
                                limit.max
                            )))
                        }
                    })),
                    None => Box::new(chunks),
                }
            }
            PerJob::Fill { jobs } => {
                let all: Vec<Args> = records.collect::<io::Result<_>>()?;
                let jobs = match &spec.line {
                    Some(limit) => fill_to_limit(all, jobs, limit)?,
                    None => fill(all, jobs),
                };
                Box::new(jobs.into_iter().map(Ok))
            }
        };
        let filters = spec.filters.clone();
        let jobs: Box<dyn Iterator<Item = io::Result<Args>> + Send> = if filters.is_empty() {
            jobs
        } else {
            Box::new(jobs.filter(move |r| match r {
                Ok(args) => filters.iter().all(|f| f.keeps(args)),
                Err(_) => true,
            }))
        };
        Ok(if skip_blank {
            Box::new(jobs.filter(|r| {
                match r {
                    Ok(args) => !args
                        .iter()
                        .all(|a| a.iter().all(|b| b.is_ascii_whitespace())),
                    Err(_) => true,
                }
            }))
        } else {
            jobs
        })
    }

    /// The feed the runner pulls from: read now, or on a thread if reading
    /// may block.
    pub(crate) fn into_feed(self, materialize: bool) -> io::Result<Feed> {
        if materialize || !self.may_block {
            let jobs = self.read_all()?;
            return Ok(Feed::Ready(jobs.into()));
        }
        let (tx, rx) = crossbeam_channel::bounded::<Batch>(4096);
        let wake = Arc::new(eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?);
        let waiting = Arc::new(AtomicBool::new(false));
        let (thread_wake, thread_waiting) = (Arc::clone(&wake), Arc::clone(&waiting));
        std::thread::Builder::new()
            .name("quadriga-input".into())
            .spawn(move || {
                // Each job goes over at once (a slow producer's lines must not
                // wait for a batch to fill); the eventfd is written only when
                // the runner said it is waiting.
                let send = |batch: Batch| {
                    let ok = tx.send(batch).is_ok();
                    // Pairs with the fence in `Feed::next` (store-load on both sides).
                    fence(Ordering::SeqCst);
                    if thread_waiting.swap(false, Ordering::SeqCst) {
                        let _ = rustix::io::write(thread_wake.as_fd(), &1u64.to_ne_bytes());
                    }
                    ok
                };
                let jobs = match self.into_jobs() {
                    Ok(j) => j,
                    Err(e) => {
                        send(Batch::Error(e.to_string()));
                        return;
                    }
                };
                for job in jobs {
                    let sent = match job {
                        Ok(args) => send(Batch::Job(args)),
                        Err(e) => {
                            send(Batch::Error(e.to_string()));
                            false
                        }
                    };
                    if !sent {
                        return;
                    }
                }
                // Dropping `tx` ends the feed; wake the runner to see it.
                drop(tx);
                fence(Ordering::SeqCst);
                if thread_waiting.swap(false, Ordering::SeqCst) {
                    let _ = rustix::io::write(thread_wake.as_fd(), &1u64.to_ne_bytes());
                }
            })?;
        Ok(Feed::Stream { rx, wake, waiting })
    }
}

/// What the input thread hands over.
#[derive(Debug)]
pub(crate) enum Batch {
    Job(Args),
    Error(String),
}

/// What the runner pulls jobs from.
#[derive(Debug)]
pub(crate) enum Feed {
    /// Read already.
    Ready(VecDeque<Args>),
    /// `--pipe`/`--pipepart`: blocks or ranges of data, one per job.
    Pipe(crate::pipe::Source),
    /// Being read on the input thread.
    Stream {
        rx: Receiver<Batch>,
        wake: Arc<OwnedFd>,
        /// Set by the runner before it sleeps on `wake`.
        waiting: Arc<AtomicBool>,
    },
}

/// The answer to "next job, please".
#[derive(Debug)]
pub(crate) enum Next {
    Job(Args),
    /// `--pipe`/`--pipepart`: a job's data.
    Block(crate::pipe::JobStdin),
    /// Not yet: the input thread will wake the runner.
    Pending,
    Done,
    Error(String),
}

impl Feed {
    pub(crate) fn next(&mut self) -> Next {
        match self {
            Feed::Ready(q) => q.pop_front().map_or(Next::Done, Next::Job),
            Feed::Pipe(src) => match src.next() {
                crate::pipe::Pulled::Block(b) => Next::Block(b),
                crate::pipe::Pulled::Pending => Next::Pending,
                crate::pipe::Pulled::Done => Next::Done,
                crate::pipe::Pulled::Error(e) => Next::Error(e),
            },
            Feed::Stream { rx, waiting, .. } => {
                let got = match rx.try_recv() {
                    Err(TryRecvError::Empty) => {
                        // Say we wait, then look again: a job sent between
                        // the two looks is seen by the second.
                        waiting.store(true, Ordering::SeqCst);
                        fence(Ordering::SeqCst);
                        rx.try_recv()
                    }
                    other => other,
                };
                match got {
                    Ok(Batch::Job(job)) => Next::Job(job),
                    Ok(Batch::Error(e)) => Next::Error(e),
                    Err(TryRecvError::Empty) => Next::Pending,
                    Err(TryRecvError::Disconnected) => Next::Done,
                }
            }
        }
    }

    /// The next job, waiting for a `--pipe` block if need be (`--dry-run`
    /// has no event loop; other feeds it reads whole first).
    pub(crate) fn next_blocking(&mut self) -> Next {
        match self {
            Feed::Pipe(src) => match src.next_blocking() {
                crate::pipe::Pulled::Block(b) => Next::Block(b),
                crate::pipe::Pulled::Pending => Next::Pending,
                crate::pipe::Pulled::Done => Next::Done,
                crate::pipe::Pulled::Error(e) => Next::Error(e),
            },
            _ => self.next(),
        }
    }

    /// The eventfd the input thread signals, if there is a thread.
    pub(crate) fn wake_fd(&self) -> Option<&OwnedFd> {
        match self {
            Feed::Ready(_) => None,
            Feed::Pipe(src) => src.wake_fd(),
            Feed::Stream { wake, .. } => Some(wake),
        }
    }

    /// Clears the eventfd after a wake-up.
    pub(crate) fn drain_wake(&self) {
        if let Some(fd) = self.wake_fd() {
            let mut buf = [0u8; 8];
            let _ = rustix::io::read(fd.as_fd(), &mut buf);
        }
    }

    /// The number of jobs, when known in advance.
    pub(crate) fn total(&self) -> Option<usize> {
        match self {
            Feed::Ready(q) => Some(q.len()),
            Feed::Pipe(src) => src.total(),
            Feed::Stream { .. } => None,
        }
    }
}

type Records = Box<dyn Iterator<Item = io::Result<Args>> + Send>;

/// The records (one value per source), in order.
fn records(spec: &InputSpec, mut opened: Vec<Opened>) -> io::Result<Records> {
    if spec.link_all {
        let all: Vec<Vec<Vec<u8>>> = opened
            .into_iter()
            .map(materialize)
            .collect::<io::Result<_>>()?;
        let longest = all.iter().map(Vec::len).max().unwrap_or(0);
        if all.iter().any(Vec::is_empty) {
            return Ok(Box::new(std::iter::empty()));
        }
        return Ok(Box::new((0..longest).map(move |i| {
            Ok(all.iter().map(|s| s[i % s.len()].clone()).collect())
        })));
    }
    // Groups of linked sources.
    let mut groups: Vec<Vec<Opened>> = Vec::new();
    for (s, o) in spec.sources.iter().zip(opened.drain(..)) {
        match groups.last_mut() {
            Some(g) if s.linked => g.push(o),
            _ => groups.push(vec![o]),
        }
    }
    let mut groups = groups.into_iter();
    let first = groups.next().map(Zip::new);
    let rest: Vec<Vec<Args>> = groups
        .map(|g| Zip::new(g).collect::<io::Result<Vec<_>>>())
        .collect::<io::Result<_>>()?;
    let Some(first) = first else {
        return Ok(Box::new(std::iter::empty()));
    };
    if rest.is_empty() {
        return Ok(Box::new(first));
    }
    if rest.iter().any(Vec::is_empty) {
        return Ok(Box::new(std::iter::empty()));
    }
    Ok(Box::new(Product {
        first,
        rest,
        head: None,
        odometer: Vec::new(),
    }))
}

fn materialize(o: Opened) -> io::Result<Vec<Vec<u8>>> {
    match o {
        Opened::Values(v) => Ok(v),
        Opened::Reader(items) => items.collect(),
    }
}

/// Linked sources read in lockstep; the shortest ends the group.
struct Zip {
    sources: Vec<Box<dyn Iterator<Item = io::Result<Vec<u8>>> + Send>>,
    done: bool,
}

impl Zip {
    fn new(group: Vec<Opened>) -> Self {
        let sources = group
            .into_iter()
            .map(
                |o| -> Box<dyn Iterator<Item = io::Result<Vec<u8>>> + Send> {
                    match o {
                        Opened::Values(v) => Box::new(v.into_iter().map(Ok)),
                        Opened::Reader(items) => Box::new(items),
                    }
                },
            )
            .collect();
        Zip {
            sources,
            done: false,
        }
    }
}

impl Iterator for Zip {
    type Item = io::Result<Args>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let mut record = Vec::with_capacity(self.sources.len());
        for s in &mut self.sources {
            match s.next() {
                Some(Ok(v)) => record.push(v),
                Some(Err(e)) => {
                    self.done = true;
                    return Some(Err(e));
                }
                None => {
                    self.done = true;
                    return None;
                }
            }
        }
        Some(Ok(record))
    }
}

/// The cartesian product: each record of the first group with every
/// combination of the others (the last varying fastest).
struct Product {
    first: Zip,
    rest: Vec<Vec<Args>>,
    head: Option<Args>,
    odometer: Vec<usize>,
}

impl Iterator for Product {
    type Item = io::Result<Args>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.head.is_none() {
            match self.first.next()? {
                Ok(h) => self.head = Some(h),
                Err(e) => return Some(Err(e)),
            }
            self.odometer = vec![0; self.rest.len()];
        }
        let head = self.head.as_ref().expect("set above");
        let mut record = head.clone();
        for (g, &i) in self.rest.iter().zip(&self.odometer) {
            record.extend(g[i].iter().cloned());
        }
        // Advance: last group fastest.
        let mut k = self.rest.len();
        loop {
            if k == 0 {
                self.head = None;
                break;
            }
            k -= 1;
            self.odometer[k] += 1;
            if self.odometer[k] < self.rest[k].len() {
                break;
            }
            self.odometer[k] = 0;
        }
        Some(Ok(record))
    }
}

/// `-n N`: N records per job, flattened.
struct Chunks {
    records: Records,
    per_job: usize,
}

impl Iterator for Chunks {
    type Item = io::Result<Args>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.per_job == 0 {
            // Consume one record, insert nothing.
            return match self.records.next()? {
                Ok(_) => Some(Ok(Vec::new())),
                Err(e) => Some(Err(e)),
            };
        }
        let mut args = Vec::new();
        for _ in 0..self.per_job {
            match self.records.next() {
                Some(Ok(r)) => args.extend(r),
                Some(Err(e)) => return Some(Err(e)),
                None => break,
            }
        }
        (!args.is_empty()).then_some(Ok(args))
    }
}

/// `-X`/`-m`: all records shared evenly between `jobs` jobs, each within
/// the command-line size limit.
fn fill(records: Vec<Args>, jobs: usize) -> Vec<Args> {
    let total = records.len();
    if total == 0 {
        return Vec::new();
    }
    let share = total.div_ceil(jobs.max(1));
    let mut out = Vec::new();
    let mut cur: Args = Vec::new();
    let (mut count, mut bytes) = (0, 0);
    for r in records {
        let size: usize = r.iter().map(|a| a.len() + 3).sum();
        if count > 0 && (count == share || bytes + size > MAX_LINE) {
            out.push(std::mem::take(&mut cur));
            count = 0;
            bytes = 0;
        }
        count += 1;
        bytes += size;
        cur.extend(r);
    }
    out.push(cur);
    out
}

/// [`fill`] with `-s`: each job's command line measured as rendered (the
/// first record exactly, each further one by what it adds after another).
fn fill_to_limit(records: Vec<Args>, jobs: usize, limit: &LineLimit) -> io::Result<Vec<Args>> {
    let total = records.len();
    let share = total.div_ceil(jobs.max(1)).max(1);
    let mut out = Vec::new();
    let mut cur: Args = Vec::new();
    let (mut count, mut len) = (0, 0);
    for (i, r) in records.into_iter().enumerate() {
        if count > 0 {
            let mut two = cur[..1].to_vec();
            two.extend(r.iter().cloned());
            let grows = limit.len(&two).saturating_sub(limit.len(&cur[..1]));
            if count < share && limit.fits(len + grows) {
                count += 1;
                len += grows;
                cur.extend(r);
                continue;
            }
            out.push(std::mem::take(&mut cur));
        }
        len = limit.len(&r);
        if !limit.fits(len) {
            return Err(io::Error::other(format!(
                "command line too long ({len} >= {}) at input {i}",
                limit.max
            )));
        }
        count = 1;
        cur = r;
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

/// Reads everything from a reader into one value (for tests).
#[cfg(test)]
fn items_of(input: &[u8], delim: &[u8]) -> Vec<Vec<u8>> {
    let reader: Box<dyn BufRead + Send> = Box::new(io::Cursor::new(input.to_vec()));
    Items::new(reader, delim.to_vec())
        .collect::<io::Result<_>>()
        .unwrap()
}

/// Parses `-d`: characters, C escapes (`\n`, `\t`, `\0`, `\\`), octal
/// (`\012`) and hexadecimal (`\x0a`) codes.
pub(crate) fn parse_delimiter(s: &str) -> Result<Vec<u8>, String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' || i + 1 == b.len() {
            out.push(b[i]);
            i += 1;
            continue;
        }
        i += 1;
        let c = b[i];
        i += 1;
        match c {
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'r' => out.push(b'\r'),
            b'a' => out.push(7),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'v' => out.push(11),
            b'\\' => out.push(b'\\'),
            b'x' => {
                let end = (i..b.len().min(i + 2))
                    .take_while(|&j| b[j].is_ascii_hexdigit())
                    .last()
                    .map_or(i, |j| j + 1);
                let v = u8::from_str_radix(&s[i..end], 16)
                    .map_err(|_| format!("bad hexadecimal escape in delimiter {s:?}"))?;
                out.push(v);
                i = end;
            }
            b'0'..=b'7' => {
                let start = i - 1;
                let end = (start..b.len().min(start + 3))
                    .take_while(|&j| (b'0'..=b'7').contains(&b[j]))
                    .last()
                    .map_or(start + 1, |j| j + 1);
                let v = u32::from_str_radix(&s[start..end], 8).unwrap_or(0);
                out.push((v & 0xff) as u8);
                i = end;
            }
            other => {
                out.push(b'\\');
                out.push(other);
            }
        }
    }
    if out.is_empty() {
        return Err("the delimiter is empty".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<Vec<u8>> {
        items.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    fn spec(sources: Vec<(SourceKind, bool)>) -> InputSpec {
        InputSpec {
            sources: sources
                .into_iter()
                .map(|(kind, linked)| SourceSpec {
                    kind,
                    linked,
                    skip_first: false,
                })
                .collect(),
            link_all: false,
            delimiter: b"\n".to_vec(),
            per_job: PerJob::Exactly(1),
            skip_blank: false,
            columns: ColumnSpec::new(None, false, None).unwrap(),
            eof: None,
            shuffle: false,
            line: None,
            filters: Vec::new(),
        }
    }

    fn jobs(spec: InputSpec) -> Vec<Vec<String>> {
        OpenInput::open(spec)
            .unwrap()
            .read_all()
            .unwrap()
            .into_iter()
            .map(|a| {
                a.into_iter()
                    .map(|x| String::from_utf8(x).unwrap())
                    .collect()
            })
            .collect()
    }

    fn args(items: &[&str]) -> SourceKind {
        SourceKind::Args(v(items))
    }

    #[test]
    fn splitting() {
        assert_eq!(items_of(b"a\nb\n", b"\n"), v(&["a", "b"]));
        assert_eq!(items_of(b"a\n\nb", b"\n"), v(&["a", "", "b"]));
        assert_eq!(items_of(b"a\0b c\0", b"\0"), v(&["a", "b c"]));
        assert_eq!(items_of(b"a,b,c\n", b","), v(&["a", "b", "c\n"]));
        assert_eq!(items_of(b"a::b:c::", b"::"), v(&["a", "b:c"]));
        assert!(items_of(b"", b"\n").is_empty());
    }

    #[test]
    fn delimiter_escapes() {
        assert_eq!(parse_delimiter("\\n").unwrap(), b"\n");
        assert_eq!(parse_delimiter("\\0").unwrap(), b"\0");
        assert_eq!(parse_delimiter("\\x41,").unwrap(), b"A,");
        assert_eq!(parse_delimiter("\\101").unwrap(), b"A");
        assert_eq!(parse_delimiter(",").unwrap(), b",");
        assert!(parse_delimiter("").is_err());
    }

    #[test]
    fn cartesian_product_first_varies_slowest() {
        let s = spec(vec![
            (args(&["a", "b"]), false),
            (args(&["1", "2", "3"]), false),
        ]);
        assert_eq!(
            jobs(s),
            [
                ["a", "1"],
                ["a", "2"],
                ["a", "3"],
                ["b", "1"],
                ["b", "2"],
                ["b", "3"]
            ]
        );
        let s = spec(vec![
            (args(&["a", "b"]), false),
            (args(&["1"]), false),
            (args(&["x", "y"]), false),
        ]);
        assert_eq!(
            jobs(s),
            [
                ["a", "1", "x"],
                ["a", "1", "y"],
                ["b", "1", "x"],
                ["b", "1", "y"]
            ]
        );
    }

    #[test]
    fn linked_sources() {
        // ::: a b c :::+ 1 2 ::: X Y  (the shortest decides)
        let s = spec(vec![
            (args(&["a", "b", "c"]), false),
            (args(&["1", "2"]), true),
            (args(&["X", "Y"]), false),
        ]);
        assert_eq!(
            jobs(s),
            [
                ["a", "1", "X"],
                ["a", "1", "Y"],
                ["b", "2", "X"],
                ["b", "2", "Y"]
            ]
        );
        // --link: the longest decides, the others wrap around.
        let mut s = spec(vec![
            (args(&["1", "2"]), false),
            (args(&["a", "b", "c"]), false),
        ]);
        s.link_all = true;
        assert_eq!(jobs(s), [["1", "a"], ["2", "b"], ["1", "c"]]);
    }

    #[test]
    fn several_records_per_job() {
        let mut s = spec(vec![(args(&["a", "b", "c"]), false)]);
        s.per_job = PerJob::Exactly(2);
        assert_eq!(jobs(s.clone()), vec![vec!["a", "b"], vec!["c"]]);
        s.per_job = PerJob::Exactly(0);
        assert_eq!(jobs(s.clone()).len(), 3);
        s.per_job = PerJob::Fill { jobs: 2 };
        let mut s5 = s.clone();
        s5.sources[0].kind = args(&["a", "b", "c", "d", "e"]);
        assert_eq!(jobs(s5), vec![vec!["a", "b", "c"], vec!["d", "e"]]);
    }

    #[test]
    fn blank_jobs_are_skipped_with_r() {
        let mut s = spec(vec![(args(&["a", " ", "", "b"]), false)]);
        s.skip_blank = true;
        assert_eq!(jobs(s), [["a"], ["b"]]);
    }

    #[test]
    fn an_empty_source_means_no_jobs() {
        let s = spec(vec![(args(&["a"]), false), (args(&[]), false)]);
        assert!(jobs(s).is_empty());
    }

    #[test]
    fn missing_file_is_an_error() {
        let s = spec(vec![(SourceKind::File("/nonexistent/x".into()), false)]);
        assert!(OpenInput::open(s).is_err());
    }
}
