//! Integration tests of `TaskHandle` (cancel, wait_timeout, is_finished, ids,
//! `Future`) and of the free functions `wait` and `as_completed`.

mod common;

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc;
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

use common::{Flag, SOON, block_on, eventually, within};
use quadriga::{TaskHandle, ThreadPool, WaitFor};

#[quadriga::task]
fn square(x: u64) -> u64 {
    x * x
}

/// A task that runs until `release` is sent (or dropped), then returns `value`.
fn gated<T: Send + 'static>(pool: &ThreadPool, value: T) -> (TaskHandle<T>, mpsc::Sender<()>) {
    let (tx, rx) = mpsc::channel::<()>();
    let h = pool.spawn(move || {
        let _ = rx.recv_timeout(SOON);
        value
    });
    (h, tx)
}

/// Occupies a one-thread pool's only thread until released.
fn occupy(pool: &ThreadPool) -> (TaskHandle<()>, mpsc::Sender<()>) {
    let (started_tx, started_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let h = pool.spawn(move || {
        started_tx.send(()).unwrap();
        let _ = release_rx.recv_timeout(SOON);
    });
    started_rx.recv_timeout(SOON).expect("occupier started");
    (h, release_tx)
}

#[test]
fn cancelling_a_pending_task_means_it_never_runs() {
    within(30, || {
        let pool = ThreadPool::new(1).unwrap();
        let (busy, release) = occupy(&pool);
        let ran = Arc::new(AtomicUsize::new(0));
        let r = Arc::clone(&ran);
        let h = pool.spawn(move || r.fetch_add(1, SeqCst));
        let id = h.id();
        assert!(!h.is_finished());
        assert!(h.cancel(), "cancel of a pending task");
        assert!(h.is_finished(), "a cancelled handle resolves at once");
        assert!(!h.cancel(), "a second cancel is a no-op");
        drop(release);
        busy.join().unwrap();
        // Let the queue drain: the cancelled job is dequeued and skipped.
        pool.shutdown(quadriga::Shutdown::Wait);
        assert_eq!(ran.load(SeqCst), 0, "a cancelled pending task ran");
        let err = h.join().unwrap_err();
        assert!(err.is_cancelled());
        assert_eq!(err.message(), "cancelled before it started");
        assert_eq!(err.task_id(), Some(id));
    });
}

#[test]
fn cancelling_a_running_task_signals_its_token_and_resolves_promptly() {
    within(30, || {
        let pool = ThreadPool::new(1).unwrap();
        let (started_tx, started_rx) = mpsc::channel();
        let (saw_tx, saw_rx) = mpsc::channel();
        let h = pool.spawn(move || {
            let token = quadriga::cancel_token();
            assert!(!token.is_cancelled());
            started_tx.send(()).unwrap();
            let saw = eventually(SOON, quadriga::is_cancelled);
            saw_tx.send((saw, token.is_cancelled())).unwrap();
            "finished anyway"
        });
        started_rx.recv_timeout(SOON).unwrap();
        let before = Instant::now();
        assert!(h.cancel());
        assert!(
            h.is_finished(),
            "resolved at once, not when the task returns"
        );
        let err = h.join().unwrap_err();
        assert!(before.elapsed() < Duration::from_secs(5));
        assert!(err.is_cancelled());
        assert_eq!(err.message(), "cancelled while running");
        let (saw, token_saw) = saw_rx.recv_timeout(SOON).unwrap();
        assert!(saw, "quadriga::is_cancelled() never turned true");
        assert!(token_saw, "the CancelToken never turned cancelled");
        // The pool carries on after the late output was dropped.
        assert_eq!(pool.submit(square, 4).join().unwrap(), 16);
    });
}

#[test]
fn cancel_after_completion_returns_false_and_keeps_the_result() {
    within(30, || {
        let pool = ThreadPool::new(1).unwrap();
        let h = pool.submit(square, 6);
        assert!(h.wait_timeout(SOON));
        assert!(h.is_finished());
        assert!(!h.cancel());
        assert_eq!(h.join().unwrap(), 36);

        let h = pool.spawn(|| -> u8 { panic!("done badly") });
        assert!(h.wait_timeout(SOON));
        assert!(!h.cancel());
        assert!(h.join().unwrap_err().is_panic(), "the error was kept");
    });
}

#[test]
fn wait_timeout_does_not_cancel() {
    within(30, || {
        let pool = ThreadPool::new(1).unwrap();
        let (h, release) = gated(&pool, 5u32);
        let before = Instant::now();
        assert!(!h.wait_timeout(Duration::from_millis(30)));
        assert!(
            before.elapsed() >= Duration::from_millis(30),
            "returned early"
        );
        assert!(!h.wait_timeout(Duration::ZERO));
        assert!(!h.is_finished());
        release.send(()).unwrap();
        assert!(h.wait_timeout(SOON));
        assert!(h.is_finished());
        assert!(h.wait_timeout(Duration::ZERO), "stays finished");
        assert_eq!(h.join().unwrap(), 5);
    });
}

#[test]
fn ids_are_unique_and_positive() {
    within(30, || {
        let pool = ThreadPool::new(2).unwrap();
        let mut ids = HashSet::new();
        let mut handles = Vec::new();
        for i in 0..200u64 {
            let h = if i % 2 == 0 {
                pool.submit(square, i)
            } else {
                pool.spawn(move || i)
            };
            assert!(h.id() > 0);
            assert!(ids.insert(h.id()), "id {} repeated", h.id());
            handles.push(h);
        }
        // Also across threads submitting at once.
        let more: Vec<u64> = thread::scope(|s| {
            let joins: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        (0..50)
                            .map(|_| {
                                let h = pool.spawn(|| ());
                                let id = h.id();
                                h.join().unwrap();
                                id
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            joins.into_iter().flat_map(|j| j.join().unwrap()).collect()
        });
        for id in more {
            assert!(ids.insert(id), "id {id} repeated across threads");
        }
        for h in handles {
            h.join().unwrap();
        }
        // Debug shows the id.
        let h = pool.submit(square, 1);
        let dbg = format!("{h:?}");
        assert!(dbg.contains(&format!("id: {}", h.id())), "{dbg}");
        h.join().unwrap();
    });
}

#[test]
fn handle_is_a_future_on_a_hand_written_executor() {
    within(30, || {
        let pool = ThreadPool::new(2).unwrap();
        let (out, _polls) = block_on(pool.submit(square, 9), SOON).expect("never woken");
        assert_eq!(out.unwrap(), 81);

        let a = pool.submit(square, 3);
        let b = pool.spawn(|| 4u64);
        let (sum, _) =
            block_on(async { a.await.unwrap() + b.await.unwrap() }, SOON).expect("never woken");
        assert_eq!(sum, 13);

        let e = pool.spawn(|| -> u32 { panic!("async boom") });
        let (r, _) = block_on(e, SOON).expect("never woken");
        assert_eq!(r.unwrap_err().message(), "async boom");
    });
}

/// Polls the handle once (which must be pending), then lets the task finish.
struct ReleaseAfterFirstPoll<T> {
    handle: TaskHandle<T>,
    release: Option<mpsc::Sender<()>>,
    first_was_pending: Option<bool>,
}

impl<T> Future for ReleaseAfterFirstPoll<T> {
    type Output = (Result<T, quadriga::TaskError>, bool);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let r = Pin::new(&mut self.handle).poll(cx);
        if self.first_was_pending.is_none() {
            self.first_was_pending = Some(r.is_pending());
        }
        if let Some(tx) = self.release.take() {
            tx.send(()).unwrap();
        }
        let first = self.first_was_pending.unwrap();
        r.map(|out| (out, first))
    }
}

#[test]
fn a_task_completing_after_the_first_poll_wakes_the_future() {
    within(30, || {
        let pool = ThreadPool::new(1).unwrap();
        let (h, release) = gated(&pool, 77u32);
        let fut = ReleaseAfterFirstPoll {
            handle: h,
            release: Some(release),
            first_was_pending: None,
        };
        let ((out, first_pending), polls) =
            block_on(fut, SOON).expect("the completion never woke the future");
        assert!(first_pending, "the first poll should have been pending");
        assert!(polls >= 2);
        assert_eq!(out.unwrap(), 77);
    });
}

#[test]
fn the_latest_waker_is_the_one_woken() {
    within(30, || {
        let pool = ThreadPool::new(1).unwrap();
        let (mut h, release) = gated(&pool, 1u8);
        let first = Flag::new();
        let second = Flag::new();
        let w1 = Waker::from(Arc::clone(&first));
        let w2 = Waker::from(Arc::clone(&second));
        assert!(
            Pin::new(&mut h)
                .poll(&mut Context::from_waker(&w1))
                .is_pending()
        );
        assert!(
            Pin::new(&mut h)
                .poll(&mut Context::from_waker(&w2))
                .is_pending()
        );
        release.send(()).unwrap();
        assert!(
            eventually(SOON, || second.was_woken()),
            "the waker of the latest poll was never woken"
        );
        match Pin::new(&mut h).poll(&mut Context::from_waker(&w2)) {
            Poll::Ready(r) => assert_eq!(r.unwrap(), 1),
            Poll::Pending => panic!("woken but still pending"),
        }
    });
}

#[test]
fn wait_first_completed_returns_when_one_ends() {
    within(30, || {
        let pool = ThreadPool::new(2).unwrap();
        let (slow, release) = gated(&pool, 0u64);
        let handles = vec![slow, pool.submit(square, 3)];
        let (done, pending) = quadriga::wait(&handles, WaitFor::FirstCompleted, Some(SOON));
        assert_eq!(done, [1]);
        assert_eq!(pending, [0]);
        assert!(!handles[0].is_finished(), "wait must not cancel");
        drop(release);
        let (done, pending) = quadriga::wait(&handles, WaitFor::All, Some(SOON));
        assert_eq!((done, pending), (vec![0, 1], vec![]));
        let got: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(got, [0, 9]);
    });
}

#[test]
fn wait_first_error_returns_at_the_first_error() {
    within(30, || {
        let pool = ThreadPool::new(2).unwrap();
        let (slow, release) = gated(&pool, 0u32);
        let handles = vec![slow, pool.spawn(|| -> u32 { panic!("bad") })];
        let (done, pending) = quadriga::wait(&handles, WaitFor::FirstError, Some(SOON));
        assert_eq!(done, [1]);
        assert_eq!(pending, [0]);
        drop(release);

        // Without errors it waits for all.
        let handles: Vec<_> = (0..5u64)
            .map(|i| {
                pool.spawn(move || {
                    thread::sleep(Duration::from_millis(5 * i));
                    i
                })
            })
            .collect();
        let (done, pending) = quadriga::wait(&handles, WaitFor::FirstError, Some(SOON));
        assert_eq!(done, [0, 1, 2, 3, 4]);
        assert!(pending.is_empty());
    });
}

#[test]
fn wait_with_an_expiring_timeout_returns_the_pending_indices() {
    within(30, || {
        let pool = ThreadPool::new(2).unwrap();
        let (slow, release) = gated(&pool, 0u64);
        let fast = pool.submit(square, 2);
        assert!(fast.wait_timeout(SOON));
        let handles = vec![fast, slow];
        for mode in [WaitFor::All, WaitFor::FirstError] {
            let timeout = Duration::from_millis(30);
            let before = Instant::now();
            let (done, pending) = quadriga::wait(&handles, mode, Some(timeout));
            assert!(before.elapsed() >= timeout, "{mode:?} returned early");
            assert_eq!(done, [0], "{mode:?}");
            assert_eq!(pending, [1], "{mode:?}");
        }
        assert!(!handles[1].is_finished(), "wait must not cancel");
        drop(release);
        for h in handles {
            h.join().unwrap();
        }
    });
}

#[test]
fn wait_on_an_empty_slice_returns_immediately() {
    within(10, || {
        let none: [TaskHandle<u32>; 0] = [];
        for mode in [WaitFor::FirstCompleted, WaitFor::FirstError, WaitFor::All] {
            let (done, pending) = quadriga::wait(&none, mode, None);
            assert!(done.is_empty() && pending.is_empty(), "{mode:?}");
        }
        assert_eq!(
            quadriga::as_completed(Vec::<TaskHandle<u8>>::new()).count(),
            0
        );
    });
}

#[test]
fn as_completed_yields_in_completion_order() {
    within(30, || {
        // Three threads, so the three gated tasks all run at once; releasing
        // them one at a time fixes the completion order.
        let pool = ThreadPool::new(3).unwrap();
        let (h0, r0) = gated(&pool, "zero");
        let (h1, r1) = gated(&pool, "one");
        let (h2, r2) = gated(&pool, "two");
        let mut it = quadriga::as_completed(vec![h0, h1, h2]);
        assert_eq!(it.size_hint(), (3, Some(3)));
        r2.send(()).unwrap();
        let (i, r) = it.next().unwrap();
        assert_eq!((i, r.unwrap()), (2, "two"));
        r0.send(()).unwrap();
        let (i, r) = it.next().unwrap();
        assert_eq!((i, r.unwrap()), (0, "zero"));
        r1.send(()).unwrap();
        let (i, r) = it.next().unwrap();
        assert_eq!((i, r.unwrap()), (1, "one"));
        assert!(it.next().is_none());
        assert!(it.next().is_none());
    });
}

#[test]
fn as_completed_yields_each_handle_exactly_once() {
    within(30, || {
        let pool = ThreadPool::new(2).unwrap();
        let mut handles: Vec<_> = (0..64u64)
            .map(|i| {
                pool.spawn(move || {
                    thread::sleep(Duration::from_micros(200 * (i % 5)));
                    if i % 9 == 0 {
                        panic!("item {i}");
                    }
                    i
                })
            })
            .collect();
        // Some already finished before as_completed sees them.
        assert!(handles[0].wait_timeout(SOON));
        let extra = pool.submit(square, 1);
        assert!(extra.wait_timeout(SOON));
        handles.push(pool.spawn(|| 64));
        let mut seen = [false; 65];
        let mut n = 0;
        for (i, r) in quadriga::as_completed(handles) {
            assert!(!seen[i], "index {i} yielded twice");
            seen[i] = true;
            n += 1;
            match r {
                Ok(v) => assert_eq!(v, i as u64),
                Err(e) => {
                    assert!(i % 9 == 0 && i < 64, "index {i}: {e}");
                    assert_eq!(e.message(), format!("item {i}"));
                }
            }
        }
        assert_eq!(n, 65);
        assert_eq!(extra.join().unwrap(), 1);
    });
}

#[test]
fn cancelled_handles_count_as_completed_for_wait_and_as_completed() {
    within(30, || {
        let pool = ThreadPool::new(1).unwrap();
        let (busy, release) = occupy(&pool);
        let queued = pool.submit(square, 5);
        let handles = vec![queued];
        assert!(handles[0].cancel());
        let (done, pending) = quadriga::wait(&handles, WaitFor::All, Some(SOON));
        assert_eq!((done, pending), (vec![0], vec![]));
        let mut it = quadriga::as_completed(handles);
        let (i, r) = it.next().unwrap();
        assert_eq!(i, 0);
        assert!(r.unwrap_err().is_cancelled());
        drop(release);
        busy.join().unwrap();
    });
}

#[test]
fn a_dropped_handle_detaches_the_task_which_still_runs() {
    within(30, || {
        let pool = ThreadPool::new(1).unwrap();
        let ran = Arc::new(AtomicUsize::new(0));
        let r = Arc::clone(&ran);
        drop(pool.spawn(move || {
            thread::sleep(Duration::from_millis(10));
            r.fetch_add(1, SeqCst)
        }));
        pool.shutdown(quadriga::Shutdown::Wait);
        assert_eq!(ran.load(SeqCst), 1, "a detached task did not run");
    });
}

#[test]
fn wait_returns_at_once_for_a_handle_already_finished() {
    within(30, || {
        let pool = ThreadPool::new(1).unwrap();
        let done = pool.submit(square, 3);
        assert!(done.wait_timeout(SOON));
        let (slow, release) = gated(&pool, 0u64);
        let handles = vec![slow, done];
        // No timeout: this would block if the finished handle were missed.
        let (done, pending) = quadriga::wait(&handles, WaitFor::FirstCompleted, None);
        assert_eq!((done, pending), (vec![1], vec![0]));
        drop(release);
        for h in handles {
            h.join().unwrap();
        }
    });
}

/// `wait` takes `&[TaskHandle]`, and a `TaskHandle` is `Sync`: two threads may
/// wait on the same handles at once. Each must see the completions.
#[test]
fn two_threads_waiting_on_the_same_handles_both_return() {
    within(30, || {
        let pool = ThreadPool::new(2).unwrap();
        let (a, release_a) = gated(&pool, 1u32);
        let (b, release_b) = gated(&pool, 2u32);
        let handles = vec![a, b];
        let timeout = Duration::from_secs(3);
        let (first, second) = thread::scope(|s| {
            let first = s.spawn(|| quadriga::wait(&handles, WaitFor::All, Some(timeout)));
            thread::sleep(Duration::from_millis(50));
            let second = s.spawn(|| quadriga::wait(&handles, WaitFor::All, Some(timeout)));
            thread::sleep(Duration::from_millis(50));
            release_a.send(()).unwrap();
            release_b.send(()).unwrap();
            (first.join().unwrap(), second.join().unwrap())
        });
        assert_eq!(second, (vec![0, 1], vec![]), "the later wait");
        assert_eq!(
            first,
            (vec![0, 1], vec![]),
            "the earlier wait missed the completions"
        );
    });
}

/// `join` on one of the pool's own threads runs queued work while it waits,
/// so a task may join work it submitted to its own one-thread pool. `wait`
/// does not, so the same pattern stalls until the timeout (or forever).
#[test]
fn wait_inside_a_task_on_its_own_one_thread_pool() {
    within(30, || {
        let pool = Arc::new(ThreadPool::new(1).unwrap());
        let p = Arc::clone(&pool);
        let outer = pool.spawn(move || {
            let inner = vec![p.submit(square, 2), p.submit(square, 3)];
            let started = Instant::now();
            let result = quadriga::wait(&inner, WaitFor::All, Some(Duration::from_secs(2)));
            let waited = started.elapsed();
            let sum: u64 = inner.into_iter().map(|h| h.join().unwrap()).sum();
            (result, waited, sum)
        });
        let ((done, pending), waited, sum) = outer.join().unwrap();
        assert_eq!(sum, 13);
        assert_eq!(
            (done, pending),
            (vec![0, 1], vec![]),
            "wait gave up after {waited:?} while the inner tasks sat queued behind it"
        );
    });
}
