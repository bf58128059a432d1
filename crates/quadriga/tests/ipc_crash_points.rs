//! A process SIGKILLed at every named step of the shared-memory protocols
//! (the hidden `fault-injection` feature: `quadriga::fault::arm`), and what
//! the survivors find: exactly the old state or exactly the new one, never a
//! half; nobody asleep for ever; the object usable afterwards.
//!
//! Kills that land where they happen to land (`ipc_queue.rs`, `ipc_sync.rs`)
//! mostly strike a process that is asleep; these strike inside the critical
//! sections, between a copy and its commit, between a commit and its wake.

#![cfg(feature = "fault-injection")]

mod common;

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::within;
use quadriga::ipc::Queue;
use quadriga::sync::{Barrier, Event, Semaphore, TryLockError};
use quadriga::{Process, ProcessHandle};

/// Long enough for anything that should happen, short enough to fail a hang.
const PATIENCE: Duration = Duration::from_secs(30);

/// Joins a child that must have killed itself at its armed point.
fn killed<T: std::fmt::Debug>(child: ProcessHandle<T>, point: &str) {
    let err = child
        .join()
        .expect_err(&format!("{point}: the child outlived its crash point"));
    assert!(err.is_crashed(), "{point}: {err}");
    assert_eq!(err.signal(), Some(9), "{point}: {err}");
}

/// Everything in the queue now, without waiting.
fn drain(q: &Queue<u32>) -> Vec<u32> {
    std::iter::from_fn(|| q.try_get().ok()).collect()
}

// ----------------------------------------------------------------- queue

#[quadriga::task]
fn put_and_die(q: Queue<u32>, point: String, item: u32) {
    quadriga::fault::arm(&point);
    q.put(item).unwrap();
}

#[quadriga::task]
fn get_and_die(q: Queue<u32>, point: String) -> u32 {
    quadriga::fault::arm(&point);
    q.get().unwrap()
}

/// A producer killed at each step of `put`: before its commit the item is
/// absent, after it the item is there whole; a getter asleep on the empty
/// queue gets it even when the producer died before waking anyone; the lock
/// the dead producer held is taken over by the next put.
#[test]
fn a_producer_killed_at_each_step_of_put() {
    within(120, || {
        quadriga::init();
        for (point, committed) in [
            ("ring.push.locked", false),
            ("ring.push.copied", false),
            ("ring.push.committed", true),
            ("ring.push.unlocked", true),
        ] {
            let q = Queue::<u32>::new(4).unwrap();
            q.put(1).unwrap();
            assert_eq!(q.get().unwrap(), 1, "the ring has wrapped once");
            let (tx, rx) = mpsc::channel();
            let getter = q.clone();
            let reader = thread::spawn(move || tx.send(getter.get_timeout(PATIENCE)).unwrap());
            let child = Process::spawn(put_and_die, (q.clone(), point.to_string(), 7)).unwrap();
            killed(child, point);
            if committed {
                let got = rx.recv_timeout(PATIENCE).expect("the getter hangs");
                assert_eq!(got.unwrap(), 7, "{point}");
            } else {
                // Nothing arrived: the next put (which takes the dead
                // producer's lock) is what the getter receives.
                q.put(8).unwrap();
                let got = rx.recv_timeout(PATIENCE).expect("the getter hangs");
                assert_eq!(got.unwrap(), 8, "{point}: a half-put item was seen");
            }
            reader.join().unwrap();
            assert!(q.is_empty(), "{point}");
            q.put(9).unwrap();
            q.put(10).unwrap();
            assert_eq!(drain(&q), [9, 10], "{point}: usable afterwards");
        }
    });
}

/// A consumer killed at each step of `get`: before its commit the item stays
/// for the next getter, after it the item is gone with it (and only that
/// one); a producer asleep on the full queue gets its room even when the
/// consumer died before waking anyone.
#[test]
fn a_consumer_killed_at_each_step_of_get() {
    within(120, || {
        quadriga::init();
        for (point, taken) in [
            ("ring.pop.locked", false),
            ("ring.pop.copied", false),
            ("ring.pop.committed", true),
            ("ring.pop.unlocked", true),
        ] {
            let q = Queue::<u32>::new(3).unwrap();
            for i in 1..=3 {
                q.put(i).unwrap();
            }
            let (tx, rx) = mpsc::channel();
            let putter = q.clone();
            let writer = thread::spawn(move || {
                tx.send(putter.put_timeout(4, PATIENCE).map_err(|e| e.to_string()))
                    .unwrap()
            });
            let child = Process::spawn(get_and_die, (q.clone(), point.to_string())).unwrap();
            killed(child, point);
            if taken {
                let put = rx.recv_timeout(PATIENCE).expect("the putter hangs");
                assert_eq!(put, Ok(()), "{point}");
                assert_eq!(drain(&q), [2, 3, 4], "{point}: only the taken item is gone");
            } else {
                // Nothing was taken: the queue is still full until we get.
                assert_eq!(q.len(), 3, "{point}");
                assert_eq!(q.get().unwrap(), 1, "{point}: the item stayed");
                let put = rx.recv_timeout(PATIENCE).expect("the putter hangs");
                assert_eq!(put, Ok(()), "{point}");
                assert_eq!(drain(&q), [2, 3, 4], "{point}");
            }
            writer.join().unwrap();
            q.put(5).unwrap();
            assert_eq!(q.get().unwrap(), 5, "{point}: usable afterwards");
        }
    });
}

// ------------------------------------------------------------- semaphore

#[quadriga::task]
fn take_permit_and_die(sem: Semaphore, point: String) {
    quadriga::fault::arm(&point);
    let _permit = sem.acquire();
    unreachable!("killed while taking the permit");
}

#[quadriga::task]
fn give_permit_back_and_die(sem: Semaphore, holding: Event, point: String) {
    let permit = sem.acquire().unwrap();
    holding.set();
    // Give the parent's waiter time to fall asleep (the outcome asserted does
    // not depend on it; the path through the sleep is the one of interest).
    thread::sleep(Duration::from_millis(100));
    quadriga::fault::arm(&point);
    drop(permit);
}

/// A holder killed while taking its permit, or at each step of giving it
/// back: a waiter gets the permit, told that its holder died unless the
/// release had already unlocked it.
#[test]
fn a_permit_holder_killed_at_each_step() {
    within(120, || {
        quadriga::init();
        let sem = Semaphore::new(1).unwrap();
        let child = Process::spawn(
            take_permit_and_die,
            (sem.clone(), "semaphore.acquire.locked".to_string()),
        )
        .unwrap();
        killed(child, "semaphore.acquire.locked");
        match sem.acquire_timeout(PATIENCE) {
            Err(TryLockError::OwnerDied(permit)) => drop(permit),
            other => panic!("not reclaimed from the dead holder: {other:?}"),
        }

        for (point, holder_died) in [
            ("semaphore.release.cleared", true),
            ("semaphore.release.unlocked", false),
        ] {
            let holding = Event::new().unwrap();
            let child = Process::spawn(
                give_permit_back_and_die,
                (sem.clone(), holding.clone(), point.to_string()),
            )
            .unwrap();
            assert!(holding.wait_timeout(PATIENCE), "{point}");
            let waited = sem.acquire_timeout(PATIENCE);
            killed(child, point);
            match waited {
                Ok(permit) => {
                    assert!(!holder_died, "{point}: the dead holder was not reported");
                    drop(permit);
                }
                Err(TryLockError::OwnerDied(permit)) => {
                    assert!(holder_died, "{point}: a clean release reported as a death");
                    drop(permit);
                }
                Err(TryLockError::WouldBlock) => panic!("{point}: no permit"),
            }
            assert_eq!(sem.available(), 1, "{point}");
        }
    });
}

// --------------------------------------------------------------- barrier

#[quadriga::task]
fn arrive_and_die(barrier: Barrier, point: String) {
    quadriga::fault::arm(&point);
    let _ = barrier.wait();
    unreachable!("killed inside the barrier");
}

/// Waits at the barrier on a thread of this process, with no timeout: only
/// the barrier's own handling of a death can end the wait.
fn wait_here(barrier: &Barrier) -> (thread::JoinHandle<()>, mpsc::Receiver<Result<bool, String>>) {
    let (tx, rx) = mpsc::channel();
    let b = barrier.clone();
    let t = thread::spawn(move || {
        let r = b.wait().map(|r| r.is_leader()).map_err(|e| e.to_string());
        tx.send(r).unwrap();
    });
    (t, rx)
}

/// A party on a thread here waits at `barrier` (first, very likely: the
/// outcome asserted does not depend on it) while a child process arrives and
/// kills itself at `point`; what the waiter got.
fn wait_while_a_party_dies(barrier: &Barrier, point: &str) -> Result<bool, String> {
    let (waiter, rx) = wait_here(barrier);
    thread::sleep(Duration::from_millis(100));
    let child = Process::spawn(arrive_and_die, (barrier.clone(), point.to_string())).unwrap();
    killed(child, point);
    let got = rx.recv_timeout(PATIENCE).expect("the waiter hangs");
    waiter.join().unwrap();
    got
}

/// A party killed inside the barrier's mutex (before it arrives, or after
/// it counted itself) breaks the barrier for the parties already waiting,
/// which would otherwise sleep for ever: the kernel wakes only the mutex's
/// own waiters.
#[test]
fn a_party_killed_inside_the_barrier_breaks_it_for_those_waiting() {
    within(120, || {
        quadriga::init();
        for point in ["barrier.wait.locked", "barrier.wait.arrived"] {
            let barrier = Barrier::new(3).unwrap();
            let got = wait_while_a_party_dies(&barrier, point);
            assert!(got.unwrap_err().contains("broken"), "{point}");
            assert!(barrier.is_broken(), "{point}");
            barrier.reset();
            assert!(!barrier.is_broken(), "{point}");
        }
    });
}

/// The last party (the leader) killed after it released the generation but
/// before it woke anyone: the waiters still go on, released, not broken.
/// Killed before it unlocked, it also leaves the mutex owner-died, which
/// breaks the *next* generation (a party died inside a barrier call).
#[test]
fn a_leader_killed_after_releasing_still_releases_the_others() {
    within(120, || {
        quadriga::init();
        for (point, next_broken) in [
            ("barrier.lead.released", true),
            ("barrier.lead.unlocked", false),
        ] {
            let barrier = Barrier::new(2).unwrap();
            let got = wait_while_a_party_dies(&barrier, point);
            assert_eq!(got, Ok(false), "{point}: released, and not the leader");
            // The next round: with two live parties it either completes, or
            // finds the barrier broken by the dead leader's mutex.
            let (other, rx) = wait_here(&barrier);
            let here = barrier.wait_timeout(PATIENCE);
            let there = rx.recv_timeout(PATIENCE).expect("the other party hangs");
            other.join().unwrap();
            if next_broken {
                assert!(
                    here.is_err() && there.is_err(),
                    "{point}: {here:?} {there:?}"
                );
                barrier.reset();
            } else {
                assert!(here.is_ok() && there.is_ok(), "{point}: {here:?} {there:?}");
            }
        }
    });
}

// ----------------------------------------------------------------- event

#[quadriga::task]
fn set_and_die(event: Event) {
    thread::sleep(Duration::from_millis(100));
    quadriga::fault::arm("event.set.stored");
    event.set();
}

/// A setter killed after it set the event but before it woke anyone: the
/// waiters still see it.
#[test]
fn a_setter_killed_before_its_wake_still_releases_the_waiters() {
    within(60, || {
        quadriga::init();
        let event = Event::new().unwrap();
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let e = event.clone();
                let (tx, rx) = mpsc::channel();
                thread::spawn(move || {
                    e.wait();
                    tx.send(()).unwrap();
                });
                rx
            })
            .collect();
        let child = Process::spawn(set_and_die, event.clone()).unwrap();
        killed(child, "event.set.stored");
        for w in waiters {
            w.recv_timeout(PATIENCE).expect("a waiter missed the set");
        }
        assert!(event.is_set());
    });
}
