//! `quadriga::sync` and `ipc::{Value, Array}`: between threads, then between
//! processes: exact counts under contention, holders killed while holding a
//! lock or a permit, barriers and events across processes, and clear errors
//! for bad input. Time is only ever a hang guard (`within`).
//!
//! Workers are this test binary re-executed; the library's constructor turns
//! them into workers before the test harness starts.

mod common;

use std::process::Command;
use std::time::Duration;

use common::within;
use quadriga::ipc::{Array, AtomicArray, AtomicValue, ErrorKind, Value};
use quadriga::sync::{Barrier, Event, Lock, Semaphore, TryLockError};
use quadriga::{Process, ProcessPool};

/// Long enough never to fire on a loaded machine; only a hang guard.
const PATIENCE: Duration = Duration::from_secs(30);

#[test]
fn every_object_is_send_sync_clone_and_serde() {
    fn check<T>()
    where
        T: Send + Sync + Clone + std::fmt::Debug,
        T: serde::Serialize + serde::de::DeserializeOwned,
    {
    }
    check::<Lock>();
    check::<Semaphore>();
    check::<Event>();
    check::<Barrier>();
    check::<Value<u64>>();
    check::<Array<f32>>();
    check::<AtomicValue<u64>>();
    check::<AtomicArray<i8>>();
}

#[test]
fn outside_a_task_input_they_refuse_to_serialise() {
    let err = serde_json::to_string(&Lock::new().unwrap()).unwrap_err();
    assert!(err.to_string().contains("task's input"), "{err}");
}

// ---------------------------------------------------------------- threads

fn on_threads<F>(n: usize, f: F)
where
    F: Fn(usize) + Send + Sync + Clone + 'static,
{
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let f = f.clone();
            std::thread::spawn(move || f(i))
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn threads_count_exactly_under_a_lock_and_with_atomics() {
    within(60, || {
        let lock = Lock::new().unwrap();
        let locked = Value::new(0_u64).unwrap();
        let atomic = AtomicValue::new(0_u64).unwrap();
        let per_slot = AtomicArray::new(4, 0_u32).unwrap();
        let (l, v, a, s) = (
            lock.clone(),
            locked.clone(),
            atomic.clone(),
            per_slot.clone(),
        );
        on_threads(4, move |i| {
            for _ in 0..10_000 {
                let _held = l.lock().unwrap();
                v.set(v.get() + 1);
                drop(_held);
                a.fetch_add(1);
                s.fetch_add(i, 1);
            }
        });
        assert_eq!(locked.get(), 40_000);
        assert_eq!(atomic.load(), 40_000);
        assert_eq!(per_slot.to_vec(), [10_000; 4]);
    });
}

#[test]
fn a_thread_that_exits_holding_is_reported_to_the_next_taker() {
    within(60, || {
        let lock = Lock::new().unwrap();
        let sem = Semaphore::new(1).unwrap();
        let (l, s) = (lock.clone(), sem.clone());
        std::thread::spawn(move || {
            std::mem::forget(l.lock().unwrap());
            std::mem::forget(s.acquire().unwrap());
        })
        .join()
        .unwrap();
        let guard = lock.lock().unwrap_err().into_inner();
        drop(guard);
        assert!(lock.lock().is_ok(), "reported once, then clean");
        match sem.try_acquire() {
            Err(TryLockError::OwnerDied(died)) => drop(died.into_inner()),
            other => panic!("{other:?}"),
        }
        assert_eq!(sem.available(), 1);
    });
}

/// A holder whose thread panicked (so its guard was dropped while unwinding)
/// may have left a half-done update, as a dead one may: the next taker of a
/// `Lock`, a `Value`'s or `Array`'s lock, or the permit is told, once.
#[test]
fn a_panic_while_holding_is_reported_like_a_death() {
    within(60, || {
        let lock = Lock::new().unwrap();
        let sem = Semaphore::new(1).unwrap();
        let pair = Value::new([0_u32; 2]).unwrap();
        let items = Array::new(3, 0_u8).unwrap();
        let (l, s, p, a) = (lock.clone(), sem.clone(), pair.clone(), items.clone());
        let panicked = std::thread::spawn(move || {
            let _held = l.lock().unwrap();
            let _permit = s.acquire().unwrap();
            let _items = a.lock().unwrap();
            p.update(|both| {
                both[0] = 1;
                panic!("halfway through");
            });
        })
        .join();
        assert!(panicked.is_err());
        let lock_died = lock.lock().unwrap_err().into_inner();
        drop(lock_died);
        assert!(lock.lock().is_ok(), "reported once");
        assert!(matches!(sem.try_acquire(), Err(TryLockError::OwnerDied(_))));
        assert!(sem.try_acquire().is_ok(), "reported once");
        assert_eq!(sem.available(), 1);
        // The conveniences read quietly; `lock` is told.
        assert_eq!(pair.get(), [1, 0]);
        let half = pair.lock().unwrap_err().into_inner();
        assert_eq!(*half, [1, 0], "the half-done update is there to repair");
        drop(half);
        assert!(pair.lock().is_ok());
        assert!(items.lock().is_err());
        assert!(items.lock().is_ok());
        // A clean drop is not reported.
        drop(lock.lock().unwrap());
        assert!(lock.try_lock().is_ok());
    });
}

#[test]
fn timeouts_give_up_and_leave_nothing_held() {
    within(60, || {
        let lock = Lock::new().unwrap();
        let sem = Semaphore::new(1).unwrap();
        let held = (lock.lock().unwrap(), sem.acquire().unwrap());
        let (l, s) = (lock.clone(), sem.clone());
        std::thread::spawn(move || {
            assert!(matches!(
                l.lock_timeout(Duration::from_millis(20)),
                Err(TryLockError::WouldBlock)
            ));
            assert!(matches!(
                s.acquire_timeout(Duration::from_millis(20)),
                Err(TryLockError::WouldBlock)
            ));
        })
        .join()
        .unwrap();
        drop(held);
        assert!(lock.try_lock().is_ok());
        assert_eq!(sem.available(), 1);
    });
}

/// Leaks a held guard, drops every handle to its lock (which would unmap a
/// mutex still on this thread's robust list), then unlocks an older lock
/// (which walks that list) and takes more.
#[quadriga::task]
fn leak_a_guard_then_drop_its_lock() -> u32 {
    let older = Lock::new().unwrap();
    let held = older.lock().unwrap();
    let leaked = Lock::new().unwrap();
    std::mem::forget(leaked.lock().unwrap());
    let sem = Semaphore::new(1).unwrap();
    std::mem::forget(sem.acquire().unwrap());
    let v = Value::new(0_u8).unwrap();
    std::mem::forget(v.lock().unwrap());
    drop((leaked, sem, v));
    drop(held);
    let again = Lock::new().unwrap();
    drop(again.lock().unwrap());
    7
}

/// Regression: a leaked guard (`mem::forget` is safe) must keep its mapping,
/// or glibc's robust list would point into unmapped memory and the next
/// unlock on that thread would crash or corrupt memory.
#[test]
fn a_leaked_guard_keeps_its_memory_mapped() {
    within(60, || {
        quadriga::init();
        let got = Process::spawn(leak_a_guard_then_drop_its_lock, ())
            .unwrap()
            .join();
        assert_eq!(got, Ok(7));
    });
}

// -------------------------------------------------------------- processes

/// How a task dies while holding something.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
enum Death {
    Kill,
    Abort,
}

fn die(how: Death) -> ! {
    match how {
        Death::Kill => {
            let _ = rustix::process::kill_process(
                rustix::process::getpid(),
                rustix::process::Signal::KILL,
            );
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        Death::Abort => std::process::abort(),
    }
}

/// Takes the lock, tells the parent, waits a moment (so that the parent is
/// blocked in `lock()` when it dies), and dies holding it.
#[quadriga::task]
fn die_holding_lock(lock: Lock, holding: Event, how: Death) {
    std::mem::forget(lock.lock().unwrap());
    holding.set();
    std::thread::sleep(Duration::from_millis(50));
    die(how)
}

#[test]
fn a_process_killed_holding_a_lock_hands_it_to_the_next_taker() {
    within(60, || {
        quadriga::init();
        let lock = Lock::new().unwrap();
        for how in [Death::Kill, Death::Abort] {
            let holding = Event::new().unwrap();
            let p = Process::spawn(die_holding_lock, (lock.clone(), holding.clone(), how)).unwrap();
            assert!(holding.wait_timeout(PATIENCE), "{how:?}: never took it");
            // Blocks until the kernel releases the dead holder's lock.
            let died = lock.lock().expect_err("the holder died holding it");
            let guard = died.into_inner();
            assert!(lock.try_lock().is_err(), "{how:?}: the guard holds it");
            drop(guard);
            assert!(p.join().unwrap_err().is_crashed(), "{how:?}");
            assert!(lock.lock().is_ok(), "{how:?}: reported once");
        }
    });
}

/// Starts a two-step update of the pair under its lock and dies halfway.
#[quadriga::task]
fn die_halfway_through_an_update(pair: Value<[u64; 2]>, holding: Event) {
    let mut both = pair.lock().unwrap();
    both[0] += 1;
    std::mem::forget(both);
    holding.set();
    die(Death::Kill)
}

#[test]
fn a_half_done_update_is_reported_with_the_guard_to_repair_it() {
    within(60, || {
        quadriga::init();
        let pair = Value::new([0_u64; 2]).unwrap();
        let holding = Event::new().unwrap();
        let p = Process::spawn(
            die_halfway_through_an_update,
            (pair.clone(), holding.clone()),
        )
        .unwrap();
        assert!(holding.wait_timeout(PATIENCE));
        let mut died = pair.lock().expect_err("the writer died holding it");
        assert_eq!(**died.get_ref(), [1, 0], "what the dead writer left");
        let guard = died.get_mut();
        guard[1] = guard[0]; // the repair
        drop(died);
        assert_eq!(pair.get(), [1, 1]);
        assert!(p.join().unwrap_err().is_crashed());
        assert!(pair.lock().is_ok());
    });
}

/// Takes a permit, tells the parent, and dies holding it.
#[quadriga::task]
fn die_holding_permit(sem: Semaphore, holding: Event) {
    std::mem::forget(sem.acquire().unwrap());
    holding.set();
    std::thread::sleep(Duration::from_millis(50));
    die(Death::Kill)
}

#[test]
fn a_process_killed_holding_a_permit_hands_it_to_a_waiter() {
    within(60, || {
        quadriga::init();
        let sem = Semaphore::new(2).unwrap();
        let mut dead = Vec::new();
        for _ in 0..2 {
            let holding = Event::new().unwrap();
            dead.push(Process::spawn(die_holding_permit, (sem.clone(), holding.clone())).unwrap());
            assert!(holding.wait_timeout(PATIENCE));
        }
        // Both permits are with processes about to die: we wait, and get
        // each back with the news.
        let first = sem.acquire().expect_err("reclaimed from the dead");
        let second = sem.acquire().expect_err("reclaimed from the dead");
        assert_eq!(sem.available(), 0);
        drop((first.into_inner(), second.into_inner()));
        assert_eq!(sem.available(), 2);
        for p in dead {
            assert!(p.join().unwrap_err().is_crashed());
        }
        let fine = (sem.acquire().unwrap(), sem.acquire().unwrap());
        drop(fine);
    });
}

const OPS: u64 = 100_000;

/// Runs `task(input(i))` in four processes at once (each task first meets the
/// others at a barrier, so the four really contend) and joins them.
fn four_processes<T, F>(task: T, input: F)
where
    T: quadriga::Task<Output = ()>,
    F: Fn(usize, Barrier) -> T::Input,
{
    let start = Barrier::new(4).unwrap();
    let ps: Vec<_> = (0..4)
        .map(|i| Process::spawn(task, input(i, start.clone())).unwrap())
        .collect();
    for p in ps {
        p.join().unwrap();
    }
}

#[quadriga::task]
fn add_under_lock(start: Barrier, lock: Lock, counter: Value<u64>) {
    start.wait_timeout(PATIENCE).unwrap();
    for _ in 0..OPS {
        let _held = lock.lock().unwrap();
        counter.set(counter.get() + 1);
    }
}

#[quadriga::task]
fn add_atomically(start: Barrier, counter: AtomicValue<u64>, slots: AtomicArray<u64>, slot: usize) {
    start.wait_timeout(PATIENCE).unwrap();
    for _ in 0..OPS {
        counter.fetch_add(1);
        slots.fetch_add(slot, 1);
    }
}

#[quadriga::task]
fn pass_through_semaphore(
    start: Barrier,
    sem: Semaphore,
    inside: AtomicValue<u32>,
    stats: AtomicArray<u64>,
) {
    start.wait_timeout(PATIENCE).unwrap();
    for _ in 0..OPS {
        let _permit = sem.acquire().unwrap();
        let before = inside.fetch_add(1);
        if before as usize >= sem.permits() {
            stats.fetch_add(1, 1); // a violation
        }
        stats.fetch_add(0, 1); // an entry
        inside.fetch_sub(1);
    }
}

#[test]
fn four_processes_count_exactly_under_a_lock() {
    within(120, || {
        quadriga::init();
        let lock = Lock::new().unwrap();
        let counter = Value::new(0_u64).unwrap();
        four_processes(add_under_lock, |_, start| {
            (start, lock.clone(), counter.clone())
        });
        assert_eq!(counter.get(), 4 * OPS);
    });
}

#[test]
fn four_processes_count_exactly_with_atomics() {
    within(120, || {
        quadriga::init();
        let counter = AtomicValue::new(0_u64).unwrap();
        let slots = AtomicArray::new(4, 0_u64).unwrap();
        four_processes(add_atomically, |i, start| {
            (start, counter.clone(), slots.clone(), i)
        });
        assert_eq!(counter.load(), 4 * OPS);
        assert_eq!(slots.to_vec(), [OPS; 4]);
    });
}

#[test]
fn four_processes_never_exceed_a_semaphores_permits() {
    within(120, || {
        quadriga::init();
        let sem = Semaphore::new(2).unwrap();
        let inside = AtomicValue::new(0_u32).unwrap();
        let stats = AtomicArray::new(2, 0_u64).unwrap();
        four_processes(pass_through_semaphore, |_, start| {
            (start, sem.clone(), inside.clone(), stats.clone())
        });
        assert_eq!(stats.to_vec(), [4 * OPS, 0], "[entries, over-admissions]");
        assert_eq!(sem.available(), 2);
    });
}

#[quadriga::task]
fn tally(counter: Value<u64>, hist: AtomicArray<u32>, x: u64) -> u64 {
    counter.update(|c| *c += x);
    hist.fetch_add((x % 8) as usize, 1);
    x
}

#[test]
fn a_pool_map_passes_the_same_objects_with_every_item() {
    within(120, || {
        quadriga::init();
        let pool = ProcessPool::new(4).unwrap();
        let counter = Value::new(0_u64).unwrap();
        let hist = AtomicArray::new(8, 0_u32).unwrap();
        let (c, h) = (counter.clone(), hist.clone());
        let inputs = (1..=10_000_u64).map(move |x| (c.clone(), h.clone(), x));
        let echoed: u64 = pool.map(tally, inputs).map(Result::unwrap).sum();
        assert_eq!(echoed, 10_000 * 10_001 / 2);
        assert_eq!(counter.get(), 10_000 * 10_001 / 2);
        assert_eq!(hist.to_vec(), [1250; 8]);
    });
}

const ROUNDS: u64 = 20;

/// Meets the others `ROUNDS` times; after each meeting, every party's arrival
/// for that round must be counted. Returns how many rounds it led.
#[quadriga::task]
fn meet(barrier: Barrier, arrivals: AtomicValue<u64>) -> Result<u64, String> {
    let mut led = 0;
    for round in 0..ROUNDS {
        arrivals.fetch_add(1);
        let r = barrier.wait_timeout(PATIENCE).map_err(|e| e.to_string())?;
        led += u64::from(r.is_leader());
        let seen = arrivals.load();
        let parties = barrier.parties() as u64;
        if seen < parties * (round + 1) {
            return Err(format!("round {round}: went on after {seen} arrivals"));
        }
    }
    Ok(led)
}

#[test]
fn a_barrier_holds_four_processes_together_for_many_rounds() {
    within(120, || {
        quadriga::init();
        let barrier = Barrier::new(4).unwrap();
        let arrivals = AtomicValue::new(0_u64).unwrap();
        let ps: Vec<_> = (0..4)
            .map(|_| Process::spawn(meet, (barrier.clone(), arrivals.clone())).unwrap())
            .collect();
        let led: u64 = ps.into_iter().map(|p| p.join().unwrap()).sum();
        assert_eq!(led, ROUNDS, "one leader per round");
        assert_eq!(arrivals.load(), 4 * ROUNDS);
        assert!(!barrier.is_broken());
    });
}

#[quadriga::task]
fn wait_at(barrier: Barrier) -> String {
    match barrier.wait() {
        Ok(_) => "passed".into(),
        Err(e) => format!("{:?}", e.kind()),
    }
}

#[test]
fn a_timed_out_party_breaks_the_barrier_for_the_processes_waiting() {
    within(60, || {
        quadriga::init();
        let barrier = Barrier::new(3).unwrap();
        let waiter = Process::spawn(wait_at, barrier.clone()).unwrap();
        while barrier.n_waiting() < 1 {
            std::thread::sleep(Duration::from_millis(1));
        }
        // The third party never comes (it "died before arriving").
        let err = barrier.wait_timeout(Duration::from_millis(50)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Timeout);
        assert_eq!(waiter.join().unwrap(), "Broken");
        assert_eq!(barrier.wait().unwrap_err().kind(), ErrorKind::Broken);
        barrier.reset();
        assert!(!barrier.is_broken());
    });
}

#[quadriga::task]
fn set_after(event: Event, ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
    event.set();
}

#[test]
fn an_event_set_by_a_child_wakes_the_parent() {
    within(60, || {
        quadriga::init();
        let event = Event::new().unwrap();
        let p = Process::spawn(set_after, (event.clone(), 50)).unwrap();
        event.wait();
        assert!(event.is_set());
        p.join().unwrap();
        event.clear();
        assert!(!event.wait_timeout(Duration::from_millis(1)));
    });
}

#[quadriga::task]
fn read_index(items: Array<u8>, index: usize) -> u8 {
    items.get(index)
}

#[test]
fn bad_input_gives_clear_errors() {
    within(60, || {
        let err = Semaphore::new(0).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Invalid);
        assert!(err.to_string().contains("permits, not 0"), "{err}");
        let err = Barrier::new(0).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Invalid);
        assert!(err.to_string().contains("parties, not 0"), "{err}");
        let err = Array::new(usize::MAX / 2, 0_u64).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Invalid);

        // An index out of range panics like a slice's, also in a worker.
        quadriga::init();
        let items = Array::from_slice(&[1_u8, 2, 3]).unwrap();
        let err = Process::spawn(read_index, (items.clone(), 3))
            .unwrap()
            .join()
            .unwrap_err();
        assert!(
            err.message()
                .contains("index out of bounds: the len is 3 but the index is 3"),
            "{err}"
        );
        assert_eq!(
            Process::spawn(read_index, (items, 2)).unwrap().join(),
            Ok(3)
        );
    });
}

#[test]
fn shared_counter_example_counts_exactly() {
    let out = Command::new(common::example("shared_counter"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "4 processes × 10000 increments: counter = 40000\n"
    );
}
