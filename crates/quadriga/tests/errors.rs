//! Integration tests of `TaskError` as the thread pool reports it: every kind
//! it can produce, its accessors, its `Display`, and its serde round trip.

mod common;

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::mpsc;

use common::{SOON, within};
use quadriga::{TaskError, TaskErrorKind, ThreadPool};

#[quadriga::task]
fn parse(s: String) -> Result<u32, std::num::ParseIntError> {
    s.parse()
}

#[derive(Debug)]
struct Refused {
    code: u16,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "refused with code {}", self.code)
    }
}

#[quadriga::task]
fn refuse(code: u16) -> Result<(), Refused> {
    Err(Refused { code })
}

#[quadriga::task]
fn file_len(path: String) -> std::io::Result<u64> {
    Ok(std::fs::metadata(path)?.len())
}

static PANIC_LINE: AtomicU32 = AtomicU32::new(0);

#[quadriga::task]
fn panics_in_task(x: u32) -> u32 {
    if x > 0 {
        PANIC_LINE.store(line!() + 1, SeqCst);
        panic!("task panicked with {x}");
    }
    x
}

/// Joins `h`, expecting an error.
fn err_of<T: std::fmt::Debug>(h: quadriga::TaskHandle<T>) -> (u64, TaskError) {
    let id = h.id();
    (id, h.join().unwrap_err())
}

#[test]
fn panic_with_a_str_payload() {
    within(30, || {
        let pool = ThreadPool::new(1).unwrap();
        let line = std::sync::Arc::new(AtomicU32::new(0));
        let l = std::sync::Arc::clone(&line);
        let (id, err) = err_of(pool.spawn(move || -> u8 {
            l.store(line!() + 1, SeqCst);
            panic!("a static str");
        }));
        assert_eq!(err.kind(), TaskErrorKind::Panicked);
        assert!(err.is_panic());
        assert!(!err.is_failed() && !err.is_cancelled() && !err.is_crashed());
        assert_eq!(err.message(), "a static str");
        assert_eq!(err.task_id(), Some(id));
        let at = err.location().expect("panic location recorded");
        assert_eq!(at.file(), file!());
        assert_eq!(at.line(), line.load(SeqCst));
        assert!(at.column() > 0);
        let shown = err.to_string();
        assert!(shown.contains("panicked at"), "{shown}");
        assert!(shown.contains(file!()), "{shown}");
        assert!(
            shown.starts_with(&format!(
                "task `{}` (#{id}) panicked at {at}:\na static str",
                err.task_name().unwrap()
            )),
            "{shown}"
        );
        assert!(format!("{err:?}").contains("Panicked"));
    });
}

#[test]
fn panic_with_a_string_payload() {
    within(30, || {
        let pool = ThreadPool::new(1).unwrap();
        let n = 7;
        let line = std::sync::Arc::new(AtomicU32::new(0));
        let l = std::sync::Arc::clone(&line);
        let (_, err) = err_of(pool.spawn(move || -> u8 {
            l.store(line!() + 1, SeqCst);
            panic!("formatted {n}");
        }));
        assert!(err.is_panic());
        assert_eq!(err.message(), "formatted 7");
        let at = err.location().unwrap();
        assert_eq!((at.file(), at.line()), (file!(), line.load(SeqCst)));

        let (_, err) =
            err_of(pool.spawn(|| -> u8 { std::panic::panic_any(String::from("owned")) }));
        assert_eq!(err.message(), "owned");
    });
}

#[test]
fn panic_with_a_non_string_payload() {
    within(30, || {
        let pool = ThreadPool::new(1).unwrap();
        let line = std::sync::Arc::new(AtomicU32::new(0));
        let l = std::sync::Arc::clone(&line);
        let (_, err) = err_of(pool.spawn(move || -> u8 {
            l.store(line!() + 1, SeqCst);
            std::panic::panic_any(42u32);
        }));
        assert_eq!(err.kind(), TaskErrorKind::Panicked);
        assert!(
            err.message().contains("non-string payload"),
            "{}",
            err.message()
        );
        let at = err.location().expect("location of a non-string panic");
        assert_eq!((at.file(), at.line()), (file!(), line.load(SeqCst)));
    });
}

#[test]
fn panic_in_a_submitted_task_names_the_task() {
    within(30, || {
        let pool = ThreadPool::new(1).unwrap();
        let (id, err) = err_of(pool.submit(panics_in_task, 3));
        assert!(err.is_panic());
        assert_eq!(err.message(), "task panicked with 3");
        assert_eq!(
            err.task_name(),
            Some(concat!(module_path!(), "::panics_in_task"))
        );
        assert_eq!(err.task_id(), Some(id));
        assert_eq!(err.item(), None);
        let at = err.location().unwrap();
        assert_eq!((at.file(), at.line()), (file!(), PANIC_LINE.load(SeqCst)));

        // The same through a map: the item index is recorded, no id.
        let results: Vec<_> = pool.map(panics_in_task, [0, 0, 5]).collect();
        let err = results[2].as_ref().unwrap_err();
        assert!(err.is_panic());
        assert_eq!(err.item(), Some(2));
        assert_eq!(err.location().unwrap().file(), file!());
        assert!(err.to_string().contains("on item 2"), "{err}");
    });
}

#[test]
fn err_from_a_result_task_is_failed_with_its_display_message() {
    within(30, || {
        let pool = ThreadPool::new(2).unwrap();
        let expected = "x1".parse::<u32>().unwrap_err().to_string();
        let (id, err) = err_of(pool.submit(parse, "x1".to_string()));
        assert_eq!(err.kind(), TaskErrorKind::Failed);
        assert!(err.is_failed() && !err.is_panic());
        assert_eq!(err.message(), expected);
        assert!(err.task_name().unwrap().ends_with("::parse"));
        assert_eq!(err.task_id(), Some(id));
        assert!(err.location().is_none());
        assert_eq!(
            err.to_string(),
            format!(
                "task `{}` (#{id}) failed: {expected}",
                err.task_name().unwrap()
            )
        );
        assert_eq!(pool.submit(parse, "41".to_string()).join().unwrap(), 41);

        let (id, err) = err_of(pool.submit(refuse, 503));
        assert!(err.is_failed());
        assert_eq!(err.message(), "refused with code 503");
        assert!(err.task_name().unwrap().ends_with("::refuse"));
        assert_eq!(err.task_id(), Some(id));

        // Through a map: each failing item is its own error.
        let results: Vec<_> = pool
            .map(parse, ["1", "two", "3"].map(String::from))
            .collect();
        assert_eq!(*results[0].as_ref().unwrap(), 1);
        let err = results[1].as_ref().unwrap_err();
        assert!(err.is_failed());
        assert_eq!(err.item(), Some(1));
        assert_eq!(*results[2].as_ref().unwrap(), 3);
    });
}

#[test]
fn io_result_task_fails_with_the_io_message() {
    within(30, || {
        let pool = ThreadPool::new(1).unwrap();
        let missing = "/definitely/not/here/quadriga-test".to_string();
        let expected = std::fs::metadata(&missing).unwrap_err().to_string();
        let (id, err) = err_of(pool.submit(file_len, missing));
        assert!(err.is_failed());
        assert_eq!(err.message(), expected);
        assert!(err.task_name().unwrap().ends_with("::file_len"));
        assert_eq!(err.task_id(), Some(id));
        let this_file = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/errors.rs").to_string();
        let len = pool.submit(file_len, this_file.clone()).join().unwrap();
        assert_eq!(len, std::fs::metadata(this_file).unwrap().len());
    });
}

#[test]
fn cancelled_task_ends_as_cancelled() {
    within(30, || {
        let pool = ThreadPool::new(1).unwrap();
        let (started_tx, started_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let busy = pool.spawn(move || {
            started_tx.send(()).unwrap();
            let _ = release_rx.recv_timeout(SOON);
        });
        started_rx.recv_timeout(SOON).unwrap();
        let h = pool.submit(parse, "5".to_string());
        let id = h.id();
        assert!(h.cancel());
        let err = h.join().unwrap_err();
        assert_eq!(err.kind(), TaskErrorKind::Cancelled);
        assert!(err.is_cancelled() && !err.is_failed() && !err.is_timed_out());
        assert!(err.task_name().unwrap().ends_with("::parse"));
        assert_eq!(err.task_id(), Some(id));
        assert!(err.to_string().contains("cancelled"), "{err}");
        drop(release_tx);
        busy.join().unwrap();
    });
}

#[test]
fn task_error_round_trips_through_serde_json() {
    within(30, || {
        let pool = ThreadPool::new(1).unwrap();
        let errors = [
            pool.submit(panics_in_task, 1).join().unwrap_err(),
            pool.submit(parse, "nope".to_string()).join().unwrap_err(),
            pool.map(parse, ["?".to_string()])
                .next()
                .unwrap()
                .unwrap_err(),
            {
                pool.shutdown(quadriga::Shutdown::Wait);
                pool.submit(parse, "1".to_string()).join().unwrap_err()
            },
        ];
        let kinds: Vec<_> = errors.iter().map(TaskError::kind).collect();
        assert_eq!(
            kinds,
            [
                TaskErrorKind::Panicked,
                TaskErrorKind::Failed,
                TaskErrorKind::Failed,
                TaskErrorKind::Cancelled
            ]
        );
        for err in errors {
            let json = serde_json::to_string(&err).unwrap();
            let back: TaskError = serde_json::from_str(&json).unwrap();
            assert_eq!(back, err, "{json}");
            assert_eq!(back.to_string(), err.to_string());
            assert_eq!(back.kind(), err.kind());
            assert_eq!(back.task_id(), err.task_id());
            assert_eq!(back.item(), err.item());
            assert_eq!(back.location(), err.location());
        }
        let kind: TaskErrorKind =
            serde_json::from_str(&serde_json::to_string(&TaskErrorKind::TimedOut).unwrap())
                .unwrap();
        assert_eq!(kind, TaskErrorKind::TimedOut);
        assert_eq!(TaskErrorKind::TimedOut.to_string(), "timed out");
    });
}

#[test]
fn failed_error_built_by_hand() {
    let err = TaskError::failed("disk full");
    assert!(err.is_failed());
    assert_eq!(err.message(), "disk full");
    assert_eq!(err.task_name(), None);
    assert_eq!(err.to_string(), "task failed: disk full");
}

/// A panic that a task catches itself must not leave its location behind for
/// a later panic that runs no hook (`resume_unwind`) on the same thread.
#[test]
fn resumed_panic_does_not_inherit_a_stale_location() {
    within(30, || {
        let pool = ThreadPool::new(1).unwrap();
        // Task 1 panics and catches its own panic: the hook records a location.
        let caught = pool
            .spawn(|| std::panic::catch_unwind(|| panic!("caught inside")).is_err())
            .join()
            .unwrap();
        assert!(caught);
        // Task 2, on the same (only) thread, re-raises a payload without a hook.
        let err = pool
            .spawn(|| -> u8 { std::panic::resume_unwind(Box::new("resumed")) })
            .join()
            .unwrap_err();
        assert!(err.is_panic());
        assert_eq!(err.message(), "resumed");
        if let Some(at) = err.location() {
            panic!("a resume_unwind panic reports the location of an earlier, caught panic: {at}");
        }
    });
}
