//! `quadriga sem`: a counting semaphore shared by separate processes, as
//! GNU parallel's `sem` (whose answers, recorded from GNU parallel
//! 20221122, are quoted where they apply). Each test has its own
//! `$XDG_RUNTIME_DIR`, so its semaphores are its own.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Scratch, eventually, process_gone, spawn_and_wait, wait_deadline};

/// A scratch directory with a private runtime directory in it.
fn scratch() -> Scratch {
    let s = Scratch::new();
    std::fs::create_dir(s.join("run")).unwrap();
    std::fs::set_permissions(s.join("run"), std::fs::Permissions::from_mode(0o700)).unwrap();
    s
}

fn sem(dir: &Path, args: &[&str]) -> Command {
    let mut c = common::bin();
    c.current_dir(dir)
        .env("XDG_RUNTIME_DIR", dir.join("run"))
        .arg("sem")
        .args(args);
    c
}

fn spawn_quiet(mut c: Command) -> Child {
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c.spawn().unwrap()
}

/// The most `s` lines before their `e` lines, reading the log in order.
fn most_at_once(log: &str) -> i32 {
    let (mut now, mut most) = (0, 0);
    for l in log.lines() {
        match l {
            "s" => now += 1,
            "e" => now -= 1,
            _ => panic!("bad log line {l:?}"),
        }
        most = most.max(now);
    }
    most
}

#[test]
fn foreground_status_is_the_commands() {
    let dir = scratch();
    // GNU parallel: `sem --fg 'echo hi; exit 3'` prints hi, exits 3.
    let got = spawn_and_wait(sem(dir.path(), &["--fg", "echo hi; exit 3"]), None);
    got.status(3);
    assert_eq!(got.out(), "hi\n");
    let got = spawn_and_wait(sem(dir.path(), &["--fg", "kill -TERM $$"]), None);
    got.status(128 + 15);
}

#[test]
fn no_more_than_n_commands_at_once_across_processes() {
    let dir = scratch();
    for n in [1, 2] {
        let log = dir.join(format!("log{n}"));
        let script = format!("echo s >> {0}; sleep 0.3; echo e >> {0}", log.display());
        let j = n.to_string();
        let children: Vec<Child> = (0..4)
            .map(|_| spawn_quiet(sem(dir.path(), &["--fg", "-j", &j, "--id", &j, &script])))
            .collect();
        for mut c in children {
            assert_eq!(wait_deadline(&mut c, common::DEADLINE), Some(0));
        }
        let log = std::fs::read_to_string(&log).unwrap();
        assert_eq!(log.lines().count(), 8, "every command ran: {log:?}");
        assert!(most_at_once(&log) <= n, "-j {n}: {log:?}");
    }
}

#[test]
fn background_commands_hold_their_slot_and_wait_waits_for_them() {
    let dir = scratch();
    let start = Instant::now();
    // GNU parallel: sem returns at once (status 0); --wait returns after.
    for i in 0..2 {
        let script = format!("sleep 0.4; echo {i} > done{i}");
        let got = spawn_and_wait(sem(dir.path(), &["-j", "2", "--id", "bg", &script]), None);
        got.status(0);
    }
    assert!(!dir.join("done0").exists() || start.elapsed() > Duration::from_millis(400));
    // Both slots are held by the background commands now.
    let got = spawn_and_wait(
        sem(
            dir.path(),
            &["--fg", "-j", "2", "--id", "bg", "--st", "-0.1", "true"],
        ),
        None,
    );
    if start.elapsed() < Duration::from_millis(400) {
        got.status(1);
        assert!(got.err().contains("timed out"), "{}", got.err());
    }
    let got = spawn_and_wait(sem(dir.path(), &["--wait", "--id", "bg"]), None);
    got.status(0);
    assert!(dir.join("done0").exists() && dir.join("done1").exists());
}

#[test]
fn a_killed_holder_frees_its_slot() {
    let dir = scratch();
    let mut holder = sem(dir.path(), &["--fg", "--id", "k", "sleep 30"]);
    holder.process_group(0);
    let mut holder = spawn_quiet(holder);
    // The slot is taken once a second command cannot get it.
    assert!(eventually(Duration::from_secs(20), || {
        let got = spawn_and_wait(
            sem(dir.path(), &["--fg", "--id", "k", "--st", "-0.05", "true"]),
            None,
        );
        got.code == Some(1)
    }));
    // kill -9 of the whole group: sem and its sleep.
    let pgid = holder.id() as i32;
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .status();
    let _ = holder.wait();
    assert!(process_gone(holder.id()));
    let got = spawn_and_wait(
        sem(
            dir.path(),
            &["--fg", "--id", "k", "--st", "-10", "echo free"],
        ),
        None,
    );
    got.status(0);
    assert_eq!(got.out(), "free\n");
}

#[test]
fn a_positive_timeout_runs_anyway() {
    let dir = scratch();
    let mut holder = sem(dir.path(), &["--fg", "--id", "t", "sleep 3"]);
    holder.process_group(0);
    let mut holder = spawn_quiet(holder);
    assert!(eventually(Duration::from_secs(20), || {
        spawn_and_wait(
            sem(dir.path(), &["--fg", "--id", "t", "--st", "-0.05", "true"]),
            None,
        )
        .code
            == Some(1)
    }));
    // GNU parallel: `--st 1` runs the command after a second, status 0.
    let got = spawn_and_wait(
        sem(
            dir.path(),
            &["--fg", "--id", "t", "--st", "0.2", "echo anyway"],
        ),
        None,
    );
    got.status(0);
    assert_eq!(got.out(), "anyway\n");
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", holder.id())])
        .status();
    let _ = holder.wait();
}

#[test]
fn the_semaphore_directory_is_private() {
    let dir = scratch();
    let got = spawn_and_wait(sem(dir.path(), &["--fg", "--id", "../x y", "true"]), None);
    got.status(0);
    let base = dir.join("run/quadriga/sem");
    for d in [base.clone(), base.join("%2E.%2Fx%20y")] {
        let mode = std::fs::metadata(&d).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{}", d.display());
    }
    // Opened up by someone: refused.
    std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755)).unwrap();
    let got = spawn_and_wait(sem(dir.path(), &["--fg", "--id", "x", "echo ran"]), None);
    got.status(255);
    assert!(got.out().is_empty());
    assert!(got.err().contains("0700"), "{}", got.err());
}

#[test]
fn run_semaphore_is_sem() {
    let dir = scratch();
    let run = |args: &[&str]| {
        let mut c = common::bin();
        c.current_dir(dir.path())
            .env("XDG_RUNTIME_DIR", dir.join("run"))
            .arg("run")
            .args(args);
        spawn_and_wait(c, None)
    };
    // GNU parallel: `parallel --semaphore --fg 'echo hi; exit 4'` prints hi, exits 4.
    let got = run(&["--semaphore", "--fg", "echo hi; exit 4"]);
    got.status(4);
    assert_eq!(got.out(), "hi\n");
    // The same slots as `quadriga sem`: held by one, refused to the other.
    let mut holder = sem(dir.path(), &["--fg", "--id", "s", "sleep 3"]);
    holder.process_group(0);
    let mut holder = spawn_quiet(holder);
    assert!(eventually(Duration::from_secs(20), || {
        run(&["--sem", "--fg", "--id", "s", "--st", "-0.05", "true"]).code == Some(1)
    }));
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", holder.id())])
        .status();
    let _ = holder.wait();
    let got = run(&["--sem", "--fg", "--id", "s", "--st", "-10", "echo free"]);
    got.status(0);
    assert_eq!(got.out(), "free\n");
    // Its options need --semaphore.
    run(&["--fg", "echo", "a"]).status(255);
}
