//! `Map::collect` into a `Vec`: inputs of known length are split across the
//! threads and results written in place. These tests pin that it gives exactly
//! what the streaming `Iterator::collect` gives, errors and panics included.

mod common;

use std::collections::HashSet;
use std::sync::Mutex;
use std::thread::{self, ThreadId};
use std::time::Duration;

use common::within;
use quadriga::{Shutdown, TaskError, TaskErrorKind, ThreadPool};

#[quadriga::task]
fn mix(x: u64) -> u64 {
    x.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (x >> 7)
}

#[quadriga::task]
fn label(x: u32) -> Result<String, String> {
    match x {
        700 | 300_000 => Err(format!("bad {x}")),
        1_234 => panic!("item 1234"),
        _ => Ok(format!("#{x}")),
    }
}

/// The threads that ran [`note_thread`].
static THREADS: Mutex<Option<HashSet<ThreadId>>> = Mutex::new(None);

#[quadriga::task]
fn note_thread(x: u32) -> u32 {
    // Long enough that one thread cannot take every piece before the other starts.
    thread::sleep(Duration::from_millis(2));
    THREADS
        .lock()
        .unwrap()
        .get_or_insert_with(HashSet::new)
        .insert(thread::current().id());
    x
}

#[test]
fn collect_matches_a_sequential_map_for_every_kind_of_finite_input() {
    within(60, || {
        let pool = ThreadPool::new(3).unwrap();
        for n in [0u64, 1, 2, 5, 511, 512, 513, 100_000, 1_000_003] {
            let expected: Vec<u64> = (0..n).map(mix::call).collect();
            let range: Vec<u64> = pool.map(mix, 0..n).collect::<Result<_, _>>().unwrap();
            assert_eq!(range, expected, "range of {n}");
            let inputs: Vec<u64> = (0..n).collect();
            let slice: Vec<u64> = pool
                .map(mix, inputs.iter().copied())
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(slice, expected, "slice of {n}");
            let kept: Vec<Result<u64, TaskError>> = pool.map(mix, inputs).collect();
            assert_eq!(kept.len(), n as usize);
            assert!(
                kept.iter()
                    .zip(&expected)
                    .all(|(k, e)| k.as_ref().unwrap() == e)
            );
        }
        // Only an upper bound known (a filter): still in place, still in order.
        let odd: Vec<u64> = pool
            .map(mix, (0..10_000u64).filter(|x| x % 2 == 1))
            .collect::<Result<_, _>>()
            .unwrap();
        let expected: Vec<u64> = (0..10_000u64)
            .filter(|x| x % 2 == 1)
            .map(mix::call)
            .collect();
        assert_eq!(odd, expected);
    });
}

#[test]
fn collect_into_a_vec_of_results_keeps_each_error_at_its_item() {
    within(60, || {
        let pool = ThreadPool::new(2).unwrap();
        let results: Vec<Result<String, TaskError>> = pool.map(label, 0..400_000).collect();
        assert_eq!(results.len(), 400_000);
        for (i, r) in results.iter().enumerate() {
            match i {
                700 | 300_000 => {
                    let e = r.as_ref().unwrap_err();
                    assert_eq!(e.kind(), TaskErrorKind::Failed);
                    assert_eq!(e.message(), format!("bad {i}"));
                    assert_eq!(e.item(), Some(i as u64));
                }
                1_234 => {
                    let e = r.as_ref().unwrap_err();
                    assert!(e.is_panic());
                    assert_eq!(e.message(), "item 1234");
                    assert_eq!(e.item(), Some(1_234));
                    assert!(e.task_name().unwrap().ends_with("::label"));
                }
                _ => assert_eq!(r.as_ref().unwrap(), &format!("#{i}")),
            }
        }
    });
}

#[test]
fn collect_into_a_result_gives_the_first_error_in_input_order() {
    within(60, || {
        let pool = ThreadPool::new(2).unwrap();
        let err = pool
            .map(label, 0..400_000)
            .collect::<Result<Vec<String>, _>>()
            .unwrap_err();
        assert_eq!(err.item(), Some(700));
        assert_eq!(err.message(), "bad 700");
        // The same through the streaming path, for comparison.
        let streamed = Iterator::collect::<Result<Vec<String>, _>>(pool.map(label, 0..400_000));
        assert_eq!(streamed.unwrap_err().item(), Some(700));
        // Past the first error: the panic at 1234 comes first.
        let err = pool
            .map(label, 701..400_000)
            .collect::<Result<Vec<String>, _>>()
            .unwrap_err();
        assert!(err.is_panic());
        assert_eq!(err.item(), Some(1_234 - 701));
    });
}

#[test]
fn collect_runs_on_more_than_one_thread() {
    within(60, || {
        let pool = ThreadPool::new(2).unwrap();
        let got: Vec<u32> = pool
            .map(note_thread, 0..64)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(got, (0..64).collect::<Vec<_>>());
        let threads = THREADS.lock().unwrap().take().unwrap();
        // The pool's two threads, and the caller's when the lanes fall behind.
        assert!(
            threads.len() >= 2,
            "pieces ran on {} threads",
            threads.len()
        );
    });
}

#[test]
fn collect_after_a_partial_read_and_on_infinite_inputs_streams_correctly() {
    within(60, || {
        let pool = ThreadPool::new(2).unwrap();
        let mut map = pool.map(mix, 0..1_000u64);
        let first = map.next().unwrap().unwrap();
        let rest: Vec<u64> = map.collect::<Result<_, _>>().unwrap();
        assert_eq!(first, mix::call(0));
        assert_eq!(rest, (1..1_000).map(mix::call).collect::<Vec<_>>());
        // No upper bound: the streaming path, lazy, fine on an infinite input.
        let taken: Vec<u64> = pool.map(mix, 0..).take(100).map(Result::unwrap).collect();
        assert_eq!(taken, (0..100).map(mix::call).collect::<Vec<_>>());
    });
}

#[test]
fn collect_inside_a_task_on_a_one_thread_pool_does_not_deadlock() {
    within(60, || {
        let pool = std::sync::Arc::new(ThreadPool::new(1).unwrap());
        let inner = std::sync::Arc::clone(&pool);
        let sum = pool
            .spawn(move || {
                let v: Vec<u64> = inner
                    .map(mix, 0..50_000u64)
                    .collect::<Result<_, _>>()
                    .unwrap();
                v.len()
            })
            .join()
            .unwrap();
        assert_eq!(sum, 50_000);
    });
}

#[test]
fn collect_on_a_shut_down_pool_ends_every_item_cancelled() {
    within(60, || {
        let pool = ThreadPool::new(2).unwrap();
        pool.shutdown(Shutdown::Wait);
        let results: Vec<Result<u64, TaskError>> = pool.map(mix, 0..1_000u64).collect();
        assert_eq!(results.len(), 1_000);
        assert!(
            results
                .iter()
                .all(|r| r.as_ref().unwrap_err().is_cancelled())
        );
        let err = pool
            .map(mix, 0..10u64)
            .collect::<Result<Vec<_>, _>>()
            .unwrap_err();
        assert!(err.is_cancelled());
        assert_eq!(err.item(), Some(0));
    });
}
