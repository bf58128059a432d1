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
use quadriga::ipc::Value;
use quadriga::{Process, ProcessPool};

#[quadriga::task]
fn bump(cells: Vec<Value<u64>>) -> u32 {
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
        let one = Value::new(41_u64).unwrap();
        let pid = pool.submit(bump, vec![one.clone()]).join().unwrap();
        assert_ne!(pid, std::process::id());
        assert_eq!(one.load(), 42);

        // More descriptors than one message carries, in one input.
        let many: Vec<Value<u64>> = (0..300).map(|_| Value::new(0).unwrap()).collect();
        pool.submit(bump, many.clone()).join().unwrap();
        assert!(many.iter().all(|c| c.load() == 1));

        // A map: every item its own descriptors, many items per job.
        let cell = Value::new(0_u64).unwrap();
        let inputs = (0..200).map(|_| vec![cell.clone()]);
        assert_eq!(pool.map(bump, inputs).filter(Result::is_ok).count(), 200);
        assert_eq!(cell.load(), 200);

        // A single `Process`.
        let lone = Value::new(0_u64).unwrap();
        Process::spawn(bump, vec![lone.clone()])
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(lone.load(), 1);
    });
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
        let pool = ProcessPool::new(1).unwrap();
        pool.submit(bump, vec![]).join().unwrap(); // the worker is up
        let before = count();
        for _ in 0..50 {
            let v = Value::new(0_u64).unwrap();
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
