//! IPC objects inside task inputs reach worker processes: one object, more
//! than one socket message can carry (253), one per item of a map, and a
//! single `Process`.
//!
//! (These tasks live in an integration test on purpose: a task defined inside
//! the `quadriga` crate itself may register after the worker's constructor has
//! run, since both are `.init_array` entries of one crate, so the lib's own
//! unit tests do not run tasks in workers.)

mod common;

use common::{SOON, eventually, within};
use quadriga::ipc::AtomicValue;
use quadriga::{Process, ProcessPool};

#[quadriga::task]
fn bump(cells: Vec<AtomicValue<u64>>) -> u32 {
    for c in &cells {
        c.fetch_add(1);
    }
    std::process::id()
}

#[quadriga::task]
fn hold_and_die(lock: quadriga::sync::Lock, queue: quadriga::ipc::Queue<u64>) {
    let _held = lock.lock();
    queue.put(1).unwrap();
    std::process::abort();
}

#[test]
fn nothing_is_named_in_dev_shm_even_after_a_crash() {
    within(120, || {
        let _serial = serial();
        quadriga::init();
        let listing = || {
            let mut names: Vec<_> = std::fs::read_dir("/dev/shm")
                .map(|d| d.filter_map(|e| e.ok().map(|e| e.file_name())).collect())
                .unwrap_or_default();
            names.sort();
            names
        };
        let before = listing();
        let lock = quadriga::sync::Lock::new().unwrap();
        let queue = quadriga::ipc::Queue::new(4).unwrap();
        let map: quadriga::ipc::SharedMap<u32, u32> = quadriga::ipc::SharedMap::new(8).unwrap();
        map.insert(&1, &1).unwrap();
        let died = Process::spawn(hold_and_die, (lock.clone(), queue.clone())).unwrap();
        assert!(died.join().unwrap_err().is_crashed());
        assert_eq!(queue.get().unwrap(), 1);
        assert!(lock.lock().is_err(), "the dead holder is reported");
        assert_eq!(listing(), before, "a name appeared in /dev/shm");
    });
}

#[test]
fn objects_reach_pool_workers_and_processes_through_their_inputs() {
    within(120, || {
        let _serial = serial();
        quadriga::init();
        descriptors_do_not_leak_into_workers_or_pile_up_here();
        let pool = ProcessPool::new(2).unwrap();
        let one = AtomicValue::new(41_u64).unwrap();
        let pid = pool.submit(bump, vec![one.clone()]).join().unwrap();
        assert_ne!(pid, std::process::id());
        assert_eq!(one.load(), 42);

        // More descriptors than one message carries, in one input.
        let many: Vec<AtomicValue<u64>> = (0..300).map(|_| AtomicValue::new(0).unwrap()).collect();
        pool.submit(bump, many.clone()).join().unwrap();
        assert!(many.iter().all(|c| c.load() == 1));

        // A map: every item its own descriptors, many items per job.
        let cell = AtomicValue::new(0_u64).unwrap();
        let inputs = (0..200).map(|_| vec![cell.clone()]);
        assert_eq!(pool.map(bump, inputs).filter(Result::is_ok).count(), 200);
        assert_eq!(cell.load(), 200);

        // A single `Process`.
        let lone = AtomicValue::new(0_u64).unwrap();
        Process::spawn(bump, vec![lone.clone()])
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(lone.load(), 1);
    });
}

#[quadriga::task]
fn open_files_limit() -> (Option<u64>, Option<u64>) {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    (limit.current, limit.maximum)
}

/// A worker starts with the soft limit of open files raised to the hard one:
/// descriptors of IPC objects arrive by the hundred, and the common soft limit
/// of 1024 would make every replacement worker fail the same way.
#[test]
fn a_worker_raises_its_soft_limit_of_open_files() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    within(120, || {
        let _serial = serial();
        quadriga::init();
        let ours = getrlimit(Resource::Nofile);
        let Some(hard) = ours.maximum else {
            return; // no finite hard limit: nothing to raise to
        };
        /// Puts this process's limit back, even if the test fails.
        struct Restore(Rlimit);
        impl Drop for Restore {
            fn drop(&mut self) {
                setrlimit(Resource::Nofile, self.0).unwrap();
            }
        }
        let _restore = Restore(ours);
        let low = hard.min(256);
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(low),
                maximum: Some(hard),
            },
        )
        .unwrap();
        let pool = ProcessPool::new(1).unwrap();
        let limits = pool.submit(open_files_limit, ()).join().unwrap();
        assert_eq!(limits, (Some(hard), Some(hard)), "started with {low}");
    });
}

/// Before: when a worker ran out of descriptors receiving a later frame's
/// (`MSG_CTRUNC`), it exited, so the job it was running was blamed as
/// crashed, and so was every job after it. Now only the items whose
/// descriptors were lost fail, as codec errors that say why, and the worker
/// goes on. (The limit is lowered on the worker alone, with `prlimit`.)
#[test]
fn regression_descriptors_lost_to_the_fd_limit_crashed_the_worker() {
    use rustix::process::{Pid, Resource, Rlimit, prlimit};
    within(120, || {
        let _serial = serial();
        quadriga::init();
        let pool = one_worker_up();
        let pid = pool.worker_pids()[0];
        let open = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count() as u64;
        let room = Some(open + 16);
        prlimit(
            Pid::from_raw(pid as i32),
            Resource::Nofile,
            Rlimit {
                current: room,
                maximum: room,
            },
        )
        .unwrap();
        let small = AtomicValue::new(0_u64).unwrap();
        let many: Vec<AtomicValue<u64>> = (0..100).map(|_| AtomicValue::new(0).unwrap()).collect();
        // Submitted together, so the worker may read ahead past the head.
        let before = pool.submit(bump, vec![small.clone()]);
        let too_many = pool.submit(bump, many.clone());
        let after = pool.submit(bump, vec![small.clone()]);
        assert_eq!(before.join().unwrap(), pid);
        let err = too_many.join().unwrap_err();
        assert_eq!(err.kind(), quadriga::TaskErrorKind::Codec, "{err}");
        assert!(err.to_string().contains("RLIMIT_NOFILE"), "{err}");
        assert_eq!(after.join().unwrap(), pid);
        // In a map, the items without descriptors are unaffected.
        let results: Vec<_> = pool.map(bump, vec![vec![], many.clone(), vec![]]).collect();
        assert_eq!(results[0].as_ref().unwrap(), &pid);
        assert!(
            results[1]
                .as_ref()
                .unwrap_err()
                .to_string()
                .contains("RLIMIT_NOFILE")
        );
        assert_eq!(results[2].as_ref().unwrap(), &pid);
        assert_eq!(small.load(), 2);
        assert!(
            many.iter().all(|m| m.load() == 0),
            "a task ran without its input"
        );
        assert_eq!(pool.worker_pids(), [pid], "the worker was replaced");
    });
}

/// Before: a send refused with `ETOOMANYREFS` (more descriptors in flight than
/// a non-root user's `RLIMIT_NOFILE`) dropped the rest of a half-sent frame:
/// the worker waited forever for it, and the job hung. Root is exempt from
/// that limit, so the refusals are injected (`wire.send_fds`): the frame is
/// sent whole once the kernel takes it again, on the same worker.
#[cfg(feature = "fault-injection")]
#[test]
fn regression_a_refused_descriptor_send_hung_the_job() {
    with_refusals(|pool, toomanyrefs| {
        let pid = pool.worker_pids()[0];
        // 300 distinct objects: two groups; the first goes, the second is
        // refused three times, then taken.
        quadriga::fault::arm_errno("wire.send_fds", toomanyrefs, 1, 3);
        let many: Vec<AtomicValue<u64>> = (0..300).map(|_| AtomicValue::new(0).unwrap()).collect();
        let first = pool.submit(bump, many.clone());
        let shared = AtomicValue::new(0_u64).unwrap();
        let rest: Vec<_> = (0..5)
            .map(|_| pool.submit(bump, vec![shared.clone(); 300]))
            .collect();
        assert_eq!(first.join().unwrap(), pid);
        for h in rest {
            assert_eq!(h.join().unwrap(), pid);
        }
        assert!(many.iter().all(|c| c.load() == 1));
        assert_eq!(shared.load(), 5 * 300);
        assert_eq!(pool.worker_pids(), [pid], "the worker was replaced");
    });
}

/// A send that is refused for good (here: every time) must not hang either:
/// after a bounded time the worker is killed and the job fails with a clear
/// error; the pool, and a lone `Process`, go on.
#[cfg(feature = "fault-injection")]
#[test]
fn a_descriptor_send_refused_for_good_fails_the_job_not_the_pool() {
    with_refusals(|pool, toomanyrefs| {
        let cell = AtomicValue::new(0_u64).unwrap();
        quadriga::fault::arm_errno("wire.send_fds", toomanyrefs, 0, u32::MAX);
        let err = pool.submit(bump, vec![cell.clone()]).join().unwrap_err();
        assert!(err.is_crashed(), "{err}");
        assert!(err.to_string().contains("RLIMIT_NOFILE"), "{err}");
        let err = Process::spawn(bump, vec![cell.clone()])
            .unwrap()
            .join()
            .unwrap_err();
        assert!(err.is_crashed(), "{err}");
        assert!(err.to_string().contains("RLIMIT_NOFILE"), "{err}");
        assert_eq!(cell.load(), 0);
        quadriga::fault::disarm();
        pool.submit(bump, vec![cell.clone()]).join().unwrap();
        assert_eq!(cell.load(), 1);
    });
}

/// Runs `test` (with a started one-worker pool, and `ETOOMANYREFS` to arm the
/// send failure with) alone, under a watchdog, and disarms the failure point
/// afterwards, even after a panic.
#[cfg(feature = "fault-injection")]
fn with_refusals(test: impl FnOnce(ProcessPool, i32) + Send + 'static) {
    let toomanyrefs = rustix::io::Errno::TOOMANYREFS.raw_os_error();
    within(120, move || {
        let _serial = serial();
        quadriga::init();
        let _disarm = Disarm;
        test(one_worker_up(), toomanyrefs);
    });
}

/// Disarms the failure point when a test ends, even by a panic.
#[cfg(feature = "fault-injection")]
struct Disarm;

#[cfg(feature = "fault-injection")]
impl Drop for Disarm {
    fn drop(&mut self) {
        quadriga::fault::disarm();
    }
}

/// A pool of one worker, started (a first task has run on it).
fn one_worker_up() -> ProcessPool {
    let pool = ProcessPool::new(1).unwrap();
    pool.submit(bump, vec![]).join().unwrap();
    pool
}

/// The tests here run one at a time: one of them counts descriptors.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Counts this process's descriptors (hence `serial`).
fn descriptors_do_not_leak_into_workers_or_pile_up_here() {
    {
        let count = || std::fs::read_dir("/proc/self/fd").unwrap().count();
        let pool = one_worker_up();
        let before = count();
        for _ in 0..50 {
            let v = AtomicValue::new(0_u64).unwrap();
            pool.submit(bump, vec![v.clone(), v.clone()])
                .join()
                .unwrap();
            assert_eq!(v.load(), 2);
        }
        // The supervisor drops a job's input (and its descriptors) just after
        // handing the result over, so give it a moment.
        assert!(
            eventually(SOON, || count() == before),
            "descriptors left open in the parent: {} before, {} after",
            before,
            count()
        );
        let worker = pool.worker_pids()[0];
        let in_worker = std::fs::read_dir(format!("/proc/{worker}/fd"))
            .unwrap()
            .count();
        assert!(in_worker < 16, "{in_worker} descriptors open in the worker");
    }
}
