//! The Python peers (`peers/cluster_peers.py`): Celery, RQ, Dask distributed
//! and Ray, each installed into the bench's virtualenv on first use, each run
//! as a child process with a deadline, printing one JSON line.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::peer;
use crate::harness::venv::{self, Package};
use crate::suites::{Ctx, progress};

/// A peer system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum System {
    Celery,
    Rq,
    Dask,
    Ray,
}

impl System {
    /// Every peer, in the order they run.
    pub(super) const ALL: [System; 4] = [System::Celery, System::Rq, System::Dask, System::Ray];

    /// The name `cluster_peers.py` takes.
    pub(super) fn arg(self) -> &'static str {
        match self {
            System::Celery => "celery",
            System::Rq => "rq",
            System::Dask => "dask",
            System::Ray => "ray",
        }
    }

    /// The name in the table.
    pub(super) fn label(self) -> &'static str {
        match self {
            System::Celery => "Celery (prefork, Redis broker + backend)",
            System::Rq => "RQ (default Worker)",
            System::Dask => "Dask distributed (LocalCluster)",
            System::Ray => "Ray",
        }
    }

    /// What it needs from PyPI.
    fn packages(self) -> &'static [Package] {
        const CELERY: &[Package] = &[
            Package::named("redis"),
            Package {
                pip: "celery[redis]",
                import: "celery",
            },
        ];
        const RQ: &[Package] = &[Package::named("rq")];
        const DASK: &[Package] = &[Package {
            pip: "dask[distributed]",
            import: "distributed",
        }];
        const RAY: &[Package] = &[Package::named("ray")];
        match self {
            System::Celery => CELERY,
            System::Rq => RQ,
            System::Dask => DASK,
            System::Ray => RAY,
        }
    }
}

/// `cluster_peers.py bench SYSTEM URL ...`: throughput and latency.
pub(super) fn bench(
    ctx: &Ctx,
    system: System,
    url: &str,
    (tasks, trips, reps): (u64, usize, usize),
    log: &Path,
    deadline: Duration,
) -> Result<serde_json::Value, String> {
    run(
        ctx,
        system,
        &[
            "bench".into(),
            system.arg().into(),
            url.into(),
            "--tasks".into(),
            tasks.to_string(),
            "--trips".into(),
            trips.to_string(),
            "--reps".into(),
            reps.to_string(),
        ],
        log,
        deadline,
    )
}

/// `cluster_peers.py kill celery URL --cap S`: Celery's recovery from a
/// worker's SIGKILL, capped.
pub(super) fn kill_celery(
    ctx: &Ctx,
    url: &str,
    cap: Duration,
    acks_late: bool,
    log: &Path,
) -> Result<serde_json::Value, String> {
    let mut args: Vec<String> = vec![
        "kill".into(),
        "celery".into(),
        url.into(),
        "--cap".into(),
        cap.as_secs_f64().to_string(),
    ];
    if acks_late {
        args.push("--acks-late".into());
    }
    run(
        ctx,
        System::Celery,
        &args,
        log,
        cap + Duration::from_secs(120),
    )
}

/// Runs the script in the virtualenv with `system`'s packages; `Err` says
/// why the peer was skipped.
fn run(
    ctx: &Ctx,
    system: System,
    args: &[String],
    log: &Path,
    deadline: Duration,
) -> Result<serde_json::Value, String> {
    let python = venv::python_with(&ctx.python, system.packages())?;
    let script = peer::script("cluster_peers.py");
    progress(&format!("{} {}", system.arg(), args[0]));
    let mut child = Command::new(&python)
        .arg(&script)
        .args(args)
        .arg("--log")
        .arg(log)
        .arg("--deadline")
        .arg(deadline.as_secs().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not run {}: {e}", python.display()))?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    // The script has its own watchdog at `deadline`; this is the backstop.
    let until = Instant::now() + deadline + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break Some(status);
        }
        if Instant::now() >= until {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    let last_err = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no message")
        .trim()
        .to_owned();
    match status {
        None => Err(format!("{} ran past its deadline", system.arg())),
        Some(s) if !s.success() => Err(format!("cluster_peers.py exited with {s}: {last_err}")),
        Some(_) => {
            let last = stdout.lines().last().unwrap_or("");
            serde_json::from_str(last)
                .map_err(|e| format!("cluster_peers.py printed no JSON ({e}): {last:?}"))
        }
    }
}
