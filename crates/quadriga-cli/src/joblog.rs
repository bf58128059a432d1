//! `--joblog`: GNU parallel's TAB-separated job log, and reading it back for
//! `--resume`, `--resume-failed` and `--retry-failed`.
//!
//! One header line, then a line per job, fields separated by TABs:
//! `Seq Host Starttime JobRuntime Send Receive Exitval Signal Command`, e.g.
//! `1 : 1700000000.123 ␣␣␣␣␣0.002 0 2 0 0 echo a` (TABs shown as spaces).
//!
//! Host is `:` (this machine); Starttime is seconds since the epoch with three
//! decimals; JobRuntime is seconds with three decimals, right-aligned in ten
//! characters; Send is 0 and Receive the bytes the job wrote to stdout (as
//! GNU parallel does for local jobs); Exitval is -1 for a job killed by a
//! timeout, and Signal the number of the signal that ended it. Each line is
//! written with one `write` as its job ends, so a runner that is killed
//! leaves a log `--resume` can use.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::Path;
use std::time::{Duration, SystemTime};

/// The header line.
pub(crate) const HEADER: &str =
    "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n";

/// One finished job.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry<'a> {
    pub(crate) seq: u64,
    pub(crate) start: SystemTime,
    pub(crate) runtime: Duration,
    pub(crate) receive: u64,
    pub(crate) exitval: i32,
    pub(crate) signal: i32,
    pub(crate) command: &'a [u8],
    /// The host it ran on (`--broker`); `:` (here) when `None`.
    pub(crate) host: Option<&'a str>,
}

/// The line for one job.
pub(crate) fn format(e: &Entry<'_>) -> Vec<u8> {
    let start = e
        .start
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let mut line = format!(
        "{}\t{}\t{:.3}\t{:>10.3}\t0\t{}\t{}\t{}\t",
        e.seq,
        // A host name holds no tab; an empty one reads as here.
        e.host
            .filter(|h| !h.is_empty())
            .unwrap_or(":")
            .replace(['\t', '\n'], " "),
        start,
        e.runtime.as_secs_f64(),
        e.receive,
        e.exitval,
        e.signal
    )
    .into_bytes();
    line.extend_from_slice(e.command);
    line.push(b'\n');
    line
}

/// An open job log.
#[derive(Debug)]
pub(crate) struct JobLog {
    file: File,
}

impl JobLog {
    /// Opens the log: appended to (`append`) or truncated; the header is
    /// written when the file is empty.
    pub(crate) fn open(path: &Path, append: bool) -> io::Result<Self> {
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(path)?;
        if file.metadata()?.len() == 0 {
            file.write_all(HEADER.as_bytes())?;
        }
        Ok(JobLog { file })
    }

    pub(crate) fn write(&mut self, e: &Entry<'_>) -> io::Result<()> {
        self.file.write_all(&format(e))
    }
}

/// A job as a previous run logged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Logged {
    pub(crate) exitval: i32,
    pub(crate) signal: i32,
    pub(crate) command: Vec<u8>,
}

impl Logged {
    pub(crate) fn succeeded(&self) -> bool {
        self.exitval == 0 && self.signal == 0
    }
}

/// Reads a job log: the last entry of each sequence number. A missing file
/// is an empty log; lines that do not parse (the header, the rest of a
/// command that held a newline) are skipped.
pub(crate) fn read(path: &Path) -> io::Result<BTreeMap<u64, Logged>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(e),
    };
    let mut entries = BTreeMap::new();
    for line in BufReader::new(file).split(b'\n') {
        let line = line?;
        let fields: Vec<&[u8]> = line.splitn(9, |&b| b == b'\t').collect();
        if fields.len() < 9 {
            continue;
        }
        let num = |f: &[u8]| std::str::from_utf8(f).ok()?.trim().parse::<i64>().ok();
        let (Some(seq), Some(exitval), Some(signal)) =
            (num(fields[0]), num(fields[6]), num(fields[7]))
        else {
            continue;
        };
        if seq < 1 {
            continue;
        }
        entries.insert(
            seq as u64,
            Logged {
                exitval: exitval as i32,
                signal: signal as i32,
                command: fields[8].to_vec(),
            },
        );
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_matches_gnu_parallel() {
        let e = Entry {
            seq: 12,
            start: SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            runtime: Duration::from_millis(2),
            receive: 5,
            exitval: -1,
            signal: 15,
            command: b"sleep 5",
            host: None,
        };
        assert_eq!(
            String::from_utf8(format(&e)).unwrap(),
            "12\t:\t1700000000.123\t     0.002\t0\t5\t-1\t15\tsleep 5\n"
        );
        let remote = Entry {
            host: Some("node\t7"),
            ..e
        };
        assert!(
            String::from_utf8(format(&remote))
                .unwrap()
                .starts_with("12\tnode 7\t1700000000.123\t")
        );
    }

    #[test]
    fn read_back_keeps_the_last_entry_of_each_job() {
        let path =
            std::env::temp_dir().join(format!("quadriga-joblog-test-{}", std::process::id()));
        {
            let mut log = JobLog::open(&path, false).unwrap();
            for (seq, exitval) in [(1, 0), (2, 3), (2, 0), (3, 1)] {
                log.write(&Entry {
                    seq,
                    start: SystemTime::now(),
                    runtime: Duration::ZERO,
                    receive: 0,
                    exitval,
                    signal: 0,
                    host: None,
                    command: b"echo a\tb",
                })
                .unwrap();
            }
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(HEADER));
        let log = read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(log.len(), 3);
        assert!(log[&1].succeeded());
        assert!(log[&2].succeeded());
        assert!(!log[&3].succeeded());
        assert_eq!(log[&3].command, b"echo a\tb");
    }

    #[test]
    fn a_missing_log_is_empty() {
        assert!(read(Path::new("/nonexistent/joblog")).unwrap().is_empty());
    }
}
