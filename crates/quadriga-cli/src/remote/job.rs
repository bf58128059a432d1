//! What travels: the signed shell job (runner → worker), the signed
//! presence record (runner → workers, through the broker) and the job's
//! result (worker → runner). All postcard; every decoder is bounded.

use serde::{Deserialize, Serialize};

use super::key::SubKey;

/// The wire format's version (the first field of every body).
pub(crate) const VERSION: u8 = 1;
/// The largest signed job accepted.
pub(crate) const MAX_JOB: usize = 1 << 20;
/// The largest result accepted.
pub(crate) const MAX_RESULT: usize = 64 << 10;
/// The cluster task that runs shell jobs.
pub(crate) const TASK: &str = "quadriga.shell";

/// What to execute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Program {
    /// argv, executed directly.
    Direct(Vec<Vec<u8>>),
    /// A command line for `shell -c`.
    Shell { shell: Vec<u8>, script: Vec<u8> },
}

/// A shell job, as signed by the runner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Job {
    pub(crate) version: u8,
    /// The run's random nonce: a job runs only while the presence record
    /// of its run names it.
    pub(crate) nonce: u64,
    /// The runner's broker client id, and the task's sequence number there:
    /// the job belongs to exactly this cluster task.
    pub(crate) client: u64,
    pub(crate) task_seq: u64,
    /// The job's number in the run (`{#}`).
    pub(crate) seq: u64,
    pub(crate) program: Program,
    /// Variables set for it (`PARALLEL_SEQ`, `PARALLEL_JOBSLOT`).
    pub(crate) env: Vec<(String, String)>,
    /// Killed (its whole process group) after this long on the worker.
    pub(crate) timeout_ms: Option<u64>,
}

/// Why a job was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// It does not decode, or its tag does not check (unsigned, tampered,
    /// or signed with another key).
    BadSignature,
    /// Another format version.
    Version(u8),
    /// Too big.
    TooBig(usize),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::BadSignature => {
                f.write_str("not signed with this worker's key (unsigned, tampered or another key)")
            }
            Refusal::Version(v) => write!(f, "job format version {v}, this worker reads {VERSION}"),
            Refusal::TooBig(n) => write!(f, "a job of {n} bytes, over the limit of {MAX_JOB}"),
        }
    }
}

impl Job {
    /// The signed bytes: postcard, then the tag.
    pub(crate) fn seal(&self, key: &SubKey) -> Vec<u8> {
        // Plain data into a Vec: cannot fail.
        key.seal(postcard::to_allocvec(self).unwrap_or_default())
    }

    /// A job from its signed bytes, if the tag checks and it decodes.
    pub(crate) fn open(bytes: &[u8], key: &SubKey) -> Result<Job, Refusal> {
        if bytes.len() > MAX_JOB {
            return Err(Refusal::TooBig(bytes.len()));
        }
        let body = key.open(bytes).ok_or(Refusal::BadSignature)?;
        let job: Job = postcard::from_bytes(body).map_err(|_| Refusal::BadSignature)?;
        if job.version != VERSION {
            return Err(Refusal::Version(job.version));
        }
        Ok(job)
    }
}

/// A run's presence record, renewed by the runner while it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Presence {
    pub(crate) version: u8,
    pub(crate) client: u64,
    pub(crate) nonce: u64,
    /// The runner's clock, ms since the epoch.
    pub(crate) time_ms: u64,
}

impl Presence {
    pub(crate) fn seal(&self, key: &SubKey) -> Vec<u8> {
        key.seal(postcard::to_allocvec(self).unwrap_or_default())
    }

    /// A record from its signed bytes, if the tag checks and it decodes.
    pub(crate) fn open(bytes: &[u8], key: &SubKey) -> Option<Presence> {
        let body = key.open(bytes)?;
        let p: Presence = postcard::from_bytes(body).ok()?;
        (p.version == VERSION).then_some(p)
    }
}

/// How a job ended on its worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct JobResult {
    /// The delivery that ran it (its output chunks carry the same number).
    pub(crate) attempt: u64,
    pub(crate) code: Option<i32>,
    pub(crate) signal: Option<i32>,
    /// Killed by the worker's `--timeout`.
    pub(crate) timed_out: bool,
    /// It could not start (the message is in its stderr).
    pub(crate) spawn_error: bool,
    pub(crate) start_ms: u64,
    pub(crate) runtime_ns: u64,
    pub(crate) cpu_ns: u64,
    pub(crate) max_rss: u64,
    pub(crate) host: String,
}

impl JobResult {
    /// A result from the task's output bytes, bounded.
    pub(crate) fn decode(bytes: &[u8]) -> Option<JobResult> {
        if bytes.len() > MAX_RESULT {
            return None;
        }
        postcard::from_bytes(bytes).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::super::key::{Key, Purpose};
    use super::*;

    fn job() -> Job {
        Job {
            version: VERSION,
            nonce: 7,
            client: 9,
            task_seq: 3,
            seq: 1,
            program: Program::Shell {
                shell: b"/bin/sh".to_vec(),
                script: b"echo hi".to_vec(),
            },
            env: vec![("PARALLEL_SEQ".into(), "1".into())],
            timeout_ms: Some(1000),
        }
    }

    #[test]
    fn jobs_round_trip_and_any_change_is_refused() {
        let key = Key::from_bytes(b"0123456789abcdef".to_vec()).unwrap();
        let k = key.subkey(Purpose::Jobs);
        let sealed = job().seal(&k);
        assert_eq!(Job::open(&sealed, &k).unwrap(), job());
        for i in 0..sealed.len() {
            let mut t = sealed.clone();
            t[i] ^= 0x20;
            assert_eq!(Job::open(&t, &k), Err(Refusal::BadSignature), "byte {i}");
        }
        assert!(Job::open(&sealed, &key.subkey(Purpose::Presence)).is_err());
        let mut old = job();
        old.version = 0;
        assert_eq!(Job::open(&old.seal(&k), &k), Err(Refusal::Version(0)));
    }

    /// Random bytes never panic a decoder (the CLI's stand-in for a fuzz
    /// target: the fuzz crate cannot reach the binary crate).
    #[test]
    fn random_bytes_never_panic_the_decoders() {
        let key = Key::from_bytes(b"0123456789abcdef".to_vec()).unwrap();
        let k = key.subkey(Purpose::Jobs);
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let sealed = job().seal(&k);
        for round in 0..20_000 {
            let len = (next() % 300) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if round % 2 == 0 {
                // Mutations of a valid job reach deeper.
                bytes = sealed.clone();
                let i = (next() as usize) % bytes.len();
                bytes[i] = next() as u8;
                bytes.truncate((next() as usize) % (sealed.len() + 1));
            }
            let _ = Job::open(&bytes, &k);
            let _ = Presence::open(&bytes, &k);
            let _ = JobResult::decode(&bytes);
            // Unsigned decoding too: postcard must stay bounded on its own.
            let _ = postcard::from_bytes::<Job>(&bytes);
        }
    }
}
