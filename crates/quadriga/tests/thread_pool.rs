//! Integration tests of the thread backend: `submit`, `spawn`, `map`,
//! `map_unordered`, `scope`, nesting, shutdown and the builder.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{SOON, eventually, within};
use quadriga::{BuildError, Executor, Shutdown, TaskErrorKind, ThreadPool};

#[quadriga::task]
fn square(x: u64) -> u64 {
    x * x
}

#[quadriga::task]
fn panics_on_three(x: u32) -> u32 {
    if x == 3 {
        panic!("item three");
    }
    x * 10
}

/// Sleeps longer for smaller indices, so the items finish out of order.
#[quadriga::task]
fn sleep_inverse(i: u64) -> u64 {
    thread::sleep(Duration::from_millis(15 * (6 - i)));
    i + 100
}

// A chain in which item `i` waits until item `i + 1` has finished: on a pool
// with a thread per item the items finish in exactly reverse order.
const CHAIN: usize = 4;
static CHAIN_DONE: [AtomicBool; CHAIN] = [const { AtomicBool::new(false) }; CHAIN];
static CHAIN_ORDER: Mutex<Vec<usize>> = Mutex::new(Vec::new());

#[quadriga::task]
fn chained(i: usize) -> usize {
    if i + 1 < CHAIN {
        assert!(
            eventually(SOON, || CHAIN_DONE[i + 1].load(SeqCst)),
            "item {} never finished",
            i + 1
        );
    }
    CHAIN_ORDER.lock().unwrap().push(i);
    CHAIN_DONE[i].store(true, SeqCst);
    i * 2
}

#[test]
fn submit_and_spawn_return_results() {
    within(30, || {
        let pool = ThreadPool::new(2).unwrap();
        assert_eq!(pool.threads(), 2);
        assert_eq!(pool.submit(square, 12).join().unwrap(), 144);
        assert_eq!(pool.spawn(|| "abc".len()).join().unwrap(), 3);
        let handles: Vec<_> = (0..50u64).map(|i| pool.submit(square, i)).collect();
        let got: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(got, (0..50u64).map(|i| i * i).collect::<Vec<_>>());
    });
}

#[test]
fn executor_trait_dispatches_to_the_thread_pool() {
    fn total<E: Executor>(e: &E) -> u64 {
        e.map(square, 1..=4).map(Result::unwrap).sum::<u64>() + e.submit(square, 5).join().unwrap()
    }
    within(30, || {
        let pool = ThreadPool::new(2).unwrap();
        assert_eq!(total(&pool), 1 + 4 + 9 + 16 + 25);
        let mut unordered: Vec<_> = Executor::map_unordered(&pool, square, [2, 3])
            .map(|(i, r)| (i, r.unwrap()))
            .collect();
        unordered.sort_unstable();
        assert_eq!(unordered, [(0, 4), (1, 9)]);
        Executor::shutdown(&pool, Shutdown::Wait);
        assert!(pool.is_shut_down());
    });
}

#[test]
fn map_preserves_input_order_when_items_finish_out_of_order() {
    within(30, || {
        let pool = ThreadPool::new(2).unwrap();
        let got: Vec<u64> = pool.map(sleep_inverse, 0..6).map(Result::unwrap).collect();
        assert_eq!(got, [100, 101, 102, 103, 104, 105]);
    });
}

#[test]
fn map_preserves_order_under_forced_reverse_completion() {
    within(30, || {
        // One thread per item, so every item runs at once and the chain completes.
        let pool = ThreadPool::new(CHAIN).unwrap();
        let got: Vec<usize> = pool.map(chained, 0..CHAIN).map(Result::unwrap).collect();
        assert_eq!(got, [0, 2, 4, 6]);
        assert_eq!(
            *CHAIN_ORDER.lock().unwrap(),
            [3, 2, 1, 0],
            "the items did finish in reverse order"
        );
    });
}

#[test]
fn map_unordered_yields_each_index_exactly_once() {
    within(30, || {
        let pool = ThreadPool::new(2).unwrap();
        let n = 1000u64;
        let mut seen = vec![false; n as usize];
        let mut count = 0;
        for (i, r) in pool.map_unordered(square, 0..n) {
            assert!(!seen[i], "index {i} yielded twice");
            seen[i] = true;
            assert_eq!(r.unwrap(), (i as u64) * (i as u64), "result of index {i}");
            count += 1;
        }
        assert_eq!(count, n as usize);
        assert!(seen.iter().all(|&s| s));

        // Also with items that finish out of order.
        let mut got: Vec<(usize, u64)> = pool
            .map_unordered(sleep_inverse, 0..6)
            .map(|(i, r)| (i, r.unwrap()))
            .collect();
        got.sort_unstable();
        assert_eq!(got, (0..6).map(|i| (i, i as u64 + 100)).collect::<Vec<_>>());
    });
}

#[test]
fn a_panicking_map_item_fails_only_that_item() {
    within(30, || {
        let pool = ThreadPool::new(2).unwrap();
        let results: Vec<_> = pool.map(panics_on_three, 0..8).collect();
        assert_eq!(results.len(), 8);
        for (i, r) in results.into_iter().enumerate() {
            if i == 3 {
                let err = r.unwrap_err();
                assert_eq!(err.kind(), TaskErrorKind::Panicked);
                assert_eq!(err.message(), "item three");
                assert_eq!(err.item(), Some(3));
                assert!(err.task_name().unwrap().ends_with("::panics_on_three"));
            } else {
                assert_eq!(r.unwrap(), i as u32 * 10);
            }
        }
        let mut bad = Vec::new();
        for (i, r) in pool.map_unordered(panics_on_three, 0..8) {
            match r {
                Ok(v) => assert_eq!(v, i as u32 * 10),
                Err(e) => {
                    assert!(e.is_panic());
                    assert_eq!(e.item(), Some(i as u64));
                    bad.push(i);
                }
            }
        }
        assert_eq!(bad, [3]);
    });
}

#[test]
fn panicking_tasks_never_kill_the_pool() {
    within(60, || {
        let pool = ThreadPool::new(2).unwrap();
        let panics: Vec<_> = (0..100)
            .map(|i| pool.spawn(move || -> u32 { panic!("panic {i}") }))
            .collect();
        for (i, h) in panics.into_iter().enumerate() {
            let err = h.join().unwrap_err();
            assert!(err.is_panic());
            assert_eq!(err.message(), format!("panic {i}"));
        }
        let oks: Vec<_> = (0..100u64).map(|i| pool.spawn(move || i + 1)).collect();
        for (i, h) in oks.into_iter().enumerate() {
            assert_eq!(h.join().unwrap(), i as u64 + 1);
        }
        assert_eq!(pool.submit(square, 9).join().unwrap(), 81);
    });
}

#[test]
fn builder_rejects_zero_threads() {
    assert!(matches!(ThreadPool::new(0), Err(BuildError::ZeroThreads)));
    assert!(matches!(
        ThreadPool::builder().threads(0).build(),
        Err(BuildError::ZeroThreads)
    ));
    let err = ThreadPool::new(0).unwrap_err();
    assert_eq!(err.to_string(), "a pool needs at least one thread (got 0)");
}

#[test]
fn builder_defaults_to_available_parallelism() {
    within(30, || {
        let pool = ThreadPool::builder().build().unwrap();
        let cores = thread::available_parallelism().map_or(1, usize::from);
        assert_eq!(pool.threads(), cores);
        assert_eq!(pool.spawn(|| 1).join().unwrap(), 1);
    });
}

#[test]
fn threads_are_named_after_the_pool() {
    within(30, || {
        let pool = ThreadPool::builder()
            .threads(2)
            .name("resize")
            .stack_size(2 << 20)
            .build()
            .unwrap();
        let names: HashSet<String> = (0..40)
            .map(|_| pool.spawn(|| thread::current().name().map(str::to_owned)))
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap().expect("pool threads are named"))
            .collect();
        assert!(!names.is_empty());
        for name in &names {
            assert!(
                name == "resize-0" || name == "resize-1",
                "unexpected thread name {name:?}"
            );
        }

        let default = ThreadPool::new(1).unwrap();
        let name = default
            .spawn(|| thread::current().name().map(str::to_owned))
            .join()
            .unwrap();
        assert_eq!(name.as_deref(), Some("quadriga-0"));
    });
}

#[test]
fn a_task_can_submit_to_its_own_one_thread_pool_and_join() {
    within(30, || {
        let pool = Arc::new(ThreadPool::new(1).unwrap());
        let p = Arc::clone(&pool);
        let outer = pool.spawn(move || {
            let inner = p.submit(square, 7);
            let sibling = p.spawn(|| 1);
            inner.join().unwrap() + sibling.join().unwrap()
        });
        assert_eq!(outer.join().unwrap(), 50);
    });
}

fn fib(pool: &Arc<ThreadPool>, n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    let p = Arc::clone(pool);
    let a = pool.spawn(move || fib(&p, n - 1));
    let b = fib(pool, n - 2);
    a.join().unwrap() + b
}

#[test]
fn recursive_spawn_and_join_does_not_deadlock() {
    within(30, || {
        for threads in [1, 2] {
            let pool = Arc::new(ThreadPool::new(threads).unwrap());
            let p = Arc::clone(&pool);
            let h = pool.spawn(move || fib(&p, 12));
            assert_eq!(h.join().unwrap(), 144, "on {threads} thread(s)");
        }
    });
}

#[test]
fn a_task_can_consume_a_map_on_its_own_one_thread_pool() {
    within(30, || {
        let pool = Arc::new(ThreadPool::new(1).unwrap());
        let p = Arc::clone(&pool);
        let h = pool.spawn(move || p.map(square, 0..100u64).map(Result::unwrap).sum::<u64>());
        assert_eq!(h.join().unwrap(), (0..100u64).map(|i| i * i).sum::<u64>());
        let p = Arc::clone(&pool);
        let h = pool.spawn(move || p.map_unordered(square, 0..100u64).count());
        assert_eq!(h.join().unwrap(), 100);
    });
}

#[test]
fn scope_body_joining_a_spawned_handle_on_a_one_thread_pool() {
    within(30, || {
        let pool = ThreadPool::new(1).unwrap();
        let data = [1u64, 2, 3, 4];
        let total = pool.scope(|s| {
            let h = s.spawn(|_| data.iter().sum::<u64>());
            let nested = s.spawn(|s2| s2.spawn(|_| data.len()).join().unwrap());
            h.join().unwrap() + nested.join().unwrap() as u64
        });
        assert_eq!(total, 14);
    });
}

#[test]
fn scope_waits_for_unjoined_tasks_and_contains_their_panics() {
    within(30, || {
        let pool = ThreadPool::new(2).unwrap();
        let counter = AtomicUsize::new(0);
        let r = pool.scope(|s| {
            for _ in 0..20 {
                drop(s.spawn(|_| {
                    thread::sleep(Duration::from_millis(1));
                    counter.fetch_add(1, SeqCst);
                }));
            }
            drop(s.spawn(|_| -> () { panic!("dropped, unjoined") }));
            s.spawn(|_| -> u8 { panic!("joined") }).join()
        });
        assert_eq!(counter.load(SeqCst), 20, "scope returned before its tasks");
        let err = r.unwrap_err();
        assert!(err.is_panic());
        assert_eq!(err.message(), "joined");
    });
}

#[test]
fn cancelling_a_scoped_task_before_it_starts_means_it_never_runs() {
    within(30, || {
        // On one thread the scope body occupies the only worker, so the scoped
        // task cannot start before the body cancels it.
        let pool = ThreadPool::new(1).unwrap();
        let ran = AtomicBool::new(false);
        let err = pool.scope(|s| {
            let h = s.spawn(|_| ran.store(true, SeqCst));
            assert!(h.cancel());
            h.join().unwrap_err()
        });
        assert!(err.is_cancelled());
        assert!(!ran.load(SeqCst), "a cancelled scoped task ran");
    });
}

/// Blocks the pool's (only) thread until `release` is sent or dropped.
fn blocker(pool: &ThreadPool) -> (quadriga::TaskHandle<()>, mpsc::Sender<()>) {
    let (started_tx, started_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let h = pool.spawn(move || {
        started_tx.send(()).unwrap();
        let _ = release_rx.recv_timeout(SOON);
    });
    started_rx.recv_timeout(SOON).expect("blocker started");
    (h, release_tx)
}

#[test]
fn shutdown_wait_runs_every_queued_task() {
    within(30, || {
        let pool = ThreadPool::new(1).unwrap();
        let counter = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..5)
            .map(|_| {
                let c = Arc::clone(&counter);
                pool.spawn(move || {
                    thread::sleep(Duration::from_millis(10));
                    c.fetch_add(1, SeqCst)
                })
            })
            .collect();
        pool.shutdown(Shutdown::Wait);
        assert!(pool.is_shut_down());
        assert_eq!(counter.load(SeqCst), 5, "shutdown(Wait) returned early");
        assert!(handles.iter().all(|h| h.is_finished()));
        let mut got: Vec<usize> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        got.sort_unstable();
        assert_eq!(got, [0, 1, 2, 3, 4]);
    });
}

#[test]
fn shutdown_cancel_skips_queued_tasks_and_signals_the_running_one() {
    within(30, || {
        let pool = ThreadPool::new(1).unwrap();
        let (started_tx, started_rx) = mpsc::channel();
        let running = pool.spawn(move || {
            started_tx.send(()).unwrap();
            eventually(SOON, quadriga::is_cancelled)
        });
        let counter = Arc::new(AtomicUsize::new(0));
        let queued: Vec<_> = (0..10)
            .map(|_| {
                let c = Arc::clone(&counter);
                pool.spawn(move || c.fetch_add(1, SeqCst))
            })
            .collect();
        started_rx.recv_timeout(SOON).unwrap();
        pool.shutdown(Shutdown::Cancel);
        assert!(
            running.join().unwrap(),
            "the running task never saw is_cancelled()"
        );
        for h in queued {
            assert!(
                h.is_finished(),
                "shutdown returned before a queued task ended"
            );
            let err = h.join().unwrap_err();
            assert!(err.is_cancelled(), "{err}");
        }
        assert_eq!(counter.load(SeqCst), 0, "a queued task ran after Cancel");
    });
}

#[test]
fn shutdown_cancel_ends_a_map_in_progress_without_running_items() {
    static RAN: AtomicUsize = AtomicUsize::new(0);
    #[quadriga::task]
    fn counted(x: u32) -> u32 {
        RAN.fetch_add(1, SeqCst);
        x
    }
    within(30, || {
        let pool = Arc::new(ThreadPool::new(1).unwrap());
        let (started_tx, started_rx) = mpsc::channel();
        let blocker = pool.spawn(move || {
            started_tx.send(()).unwrap();
            eventually(SOON, quadriga::is_cancelled)
        });
        started_rx.recv_timeout(SOON).unwrap();
        let p = Arc::clone(&pool);
        let consumer = thread::spawn(move || p.map(counted, 0..50).collect::<Vec<_>>());
        thread::sleep(Duration::from_millis(20));
        pool.shutdown(Shutdown::Cancel);
        assert!(blocker.join().unwrap());
        let results = consumer.join().unwrap();
        assert_eq!(results.len(), 50, "every item has an outcome");
        for (i, r) in results.iter().enumerate() {
            let err = r.as_ref().unwrap_err();
            assert!(err.is_cancelled(), "item {i}: {err}");
            assert_eq!(err.item(), Some(i as u64));
        }
        assert_eq!(RAN.load(SeqCst), 0, "an item ran after Cancel");
    });
}

#[test]
fn shutdown_timeout_reports_a_task_still_running() {
    within(30, || {
        let pool = ThreadPool::new(1).unwrap();
        let (h, release) = blocker(&pool);
        assert!(!pool.shutdown_timeout(Shutdown::Wait, Some(Duration::from_millis(20))));
        drop(release);
        assert!(pool.shutdown_timeout(Shutdown::Wait, Some(SOON)));
        assert!(h.is_finished());
        h.join().unwrap();
    });
}

#[test]
fn submissions_after_shutdown_resolve_at_once_as_cancelled() {
    within(30, || {
        let pool = ThreadPool::new(2).unwrap();
        pool.shutdown(Shutdown::Wait);
        let ran = Arc::new(AtomicBool::new(false));
        let r = Arc::clone(&ran);
        let h = pool.spawn(move || r.store(true, SeqCst));
        assert!(h.is_finished(), "not resolved at once");
        assert!(h.join().unwrap_err().is_cancelled());
        let h = pool.submit(square, 2);
        assert!(h.is_finished());
        let err = h.join().unwrap_err();
        assert!(err.is_cancelled());
        assert!(err.task_name().unwrap().ends_with("::square"));

        let results: Vec<_> = pool.map(square, 0..10).collect();
        assert_eq!(results.len(), 10);
        for (i, r) in results.into_iter().enumerate() {
            let err = r.unwrap_err();
            assert!(err.is_cancelled());
            assert_eq!(err.item(), Some(i as u64));
        }
        assert_eq!(pool.map_unordered(square, 0..10).count(), 10);
        thread::sleep(Duration::from_millis(10));
        assert!(!ran.load(SeqCst));
    });
}

#[test]
fn dropping_the_pool_still_resolves_queued_handles() {
    within(30, || {
        let pool = ThreadPool::new(1).unwrap();
        let (first, release) = blocker(&pool);
        let queued: Vec<_> = (0..10u64).map(|i| pool.submit(square, i)).collect();
        drop(pool);
        drop(release);
        first.join().unwrap();
        for (i, h) in queued.into_iter().enumerate() {
            assert!(h.wait_timeout(SOON), "handle {i} never resolved");
            // The pool's documentation: queued tasks run to completion.
            assert_eq!(h.join().unwrap(), (i * i) as u64);
        }
    });
}

#[test]
fn map_and_map_unordered_on_an_empty_input() {
    within(30, || {
        let pool = ThreadPool::new(2).unwrap();
        assert_eq!(pool.map(square, Vec::<u64>::new()).count(), 0);
        assert_eq!(pool.map_unordered(square, Vec::<u64>::new()).count(), 0);
        let mut m = pool.map(square, std::iter::empty());
        assert!(m.next().is_none());
        assert!(m.next().is_none(), "fused after the end");
    });
}

#[test]
fn map_is_lazy_on_an_infinite_input() {
    within(30, || {
        let pool = ThreadPool::new(2).unwrap();
        let pulled = AtomicUsize::new(0);
        let first: Vec<u64> = pool
            .map(
                square,
                (1u64..).inspect(|_| {
                    pulled.fetch_add(1, SeqCst);
                }),
            )
            .take(5)
            .map(Result::unwrap)
            .collect();
        assert_eq!(first, [1, 4, 9, 16, 25]);
        let pulled = pulled.load(SeqCst);
        assert!(
            (5..100_000).contains(&pulled),
            "pulled {pulled} inputs for 5 outputs"
        );
    });
}

#[test]
fn dropping_a_map_cancels_its_running_items() {
    static SAW_CANCEL: AtomicBool = AtomicBool::new(false);
    #[quadriga::task]
    fn slow_unless_first(i: u32) -> u32 {
        if i > 0 {
            // Runs until the map is dropped.
            SAW_CANCEL.store(eventually(SOON, quadriga::is_cancelled), SeqCst);
        }
        i
    }
    within(30, || {
        let pool = ThreadPool::new(2).unwrap();
        let started = Instant::now();
        {
            let mut m = pool.map(slow_unless_first, 0..2);
            assert_eq!(m.next().unwrap().unwrap(), 0);
        }
        pool.shutdown(Shutdown::Wait);
        assert!(
            SAW_CANCEL.load(SeqCst),
            "a running item of a dropped map never saw is_cancelled()"
        );
        assert!(started.elapsed() < SOON);
    });
}

#[test]
fn shutdown_from_one_of_the_pools_own_threads_does_not_wait_for_itself() {
    within(30, || {
        let pool = Arc::new(ThreadPool::new(1).unwrap());
        let p = Arc::clone(&pool);
        let h = pool.spawn(move || {
            let all_done = p.shutdown_timeout(Shutdown::Wait, None);
            (all_done, p.is_shut_down())
        });
        assert_eq!(h.join().unwrap(), (false, true));
        assert!(pool.spawn(|| 1).join().unwrap_err().is_cancelled());
    });
}

#[test]
fn scoped_tasks_after_a_cancel_shutdown_end_cancelled_without_running() {
    within(30, || {
        let pool = ThreadPool::new(2).unwrap();
        let before = pool.scope(|s| s.spawn(|_| quadriga::is_cancelled()).join().unwrap());
        assert!(!before);
        pool.shutdown(Shutdown::Cancel);
        let ran = AtomicUsize::new(0);
        let after = pool.scope(|s| s.spawn(|_| ran.fetch_add(1, SeqCst)).join());
        assert!(
            after.unwrap_err().is_cancelled(),
            "like spawn/submit after shutdown"
        );
        assert_eq!(ran.load(SeqCst), 0, "the scoped task ran");
    });
}
