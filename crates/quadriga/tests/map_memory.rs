//! `map` over an infinite input is lazy and bounded: a counting global
//! allocator shows that the live heap stays flat however many items pass.
//!
//! The allocator's counters are process-wide, so the tests here take turns.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use common::within;
use quadriga::{Shutdown, ThreadPool};

/// `System`, counting live bytes and their high-water mark.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
/// Number of allocation calls (`alloc`, `alloc_zeroed`, growing `realloc`).
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    ALLOCS.fetch_add(1, Relaxed);
    let now = LIVE.fetch_add(bytes, Relaxed) + bytes;
    PEAK.fetch_max(now, Relaxed);
}

fn shrank(bytes: usize) {
    LIVE.fetch_sub(bytes, Relaxed);
}

/// The counters are process-wide: the tests in this file take turns.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees carry over; the counting touches only
// atomics and never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged; the caller upholds `alloc_zeroed`'s contract.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged; `ptr` came from this allocator with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged; the caller upholds `realloc`'s contract.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                shrank(layout.size() - new_size);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

#[quadriga::task]
fn double(x: u64) -> u64 {
    x.wrapping_mul(2)
}

/// Consumes `n` results of a map over the infinite input `0..` on a fresh
/// two-thread pool, without collecting them; returns their sum and the peak
/// live heap while they were consumed, above the level at the start, in bytes.
/// Afterwards `shutdown(Wait)` lets the chunks still in flight finish, so that
/// nothing spills over into the next measurement.
fn sum_and_peak(n: usize) -> (u64, usize) {
    let pool = ThreadPool::new(2).unwrap();
    pool.spawn(|| ()).join().unwrap();
    let base = LIVE.load(Relaxed);
    PEAK.store(base, Relaxed);
    let mut map = pool.map(double, 0u64..);
    let sum = map
        .by_ref()
        .take(n)
        .fold(0u64, |acc, r| acc.wrapping_add(r.unwrap()));
    let peak = PEAK.load(Relaxed).saturating_sub(base);
    drop(map);
    pool.shutdown(Shutdown::Wait);
    (sum, peak)
}

const MIB: usize = 1 << 20;

#[test]
fn map_over_an_infinite_input_stays_flat_in_memory() {
    let _serial = serial();
    within(120, || {
        // Warm up: the panic hook, thread-locals, lazily built statics.
        let (s, _) = sum_and_peak(10_000);
        assert_eq!(s, 10_000 * 9_999);

        let small_n = 200_000;
        let big_n = 2_000_000;
        let (small_sum, small_peak) = sum_and_peak(small_n);
        let (big_sum, big_peak) = sum_and_peak(big_n);
        let expect = |n: usize| (n as u64) * (n as u64 - 1);
        assert_eq!(small_sum, expect(small_n));
        assert_eq!(big_sum, expect(big_n));
        eprintln!(
            "peak live heap: {small_n} items {:.2} MiB, {big_n} items {:.2} MiB",
            small_peak as f64 / MIB as f64,
            big_peak as f64 / MIB as f64
        );
        // Keeping every result would take 2M × 24 bytes = 46 MiB; the map's
        // window (a few chunks of at most 1 MiB each) needs about 10.
        assert!(
            big_peak < 24 * MIB,
            "peak live heap {big_peak} bytes for {big_n} items: not bounded"
        );
        // Ten times the items must not mean ten times the memory.
        assert!(
            big_peak <= 2 * small_peak + 8 * MIB,
            "peak grew with the item count: {small_peak} bytes for {small_n}, \
             {big_peak} bytes for {big_n}"
        );
    });
}

/// Items at or past this index block until their map is dropped.
static GATE_AT: AtomicU64 = AtomicU64::new(u64::MAX);
static GATED_RAN: AtomicUsize = AtomicUsize::new(0);

#[quadriga::task]
fn gated(x: u64) -> u64 {
    GATED_RAN.fetch_add(1, Relaxed);
    if x >= GATE_AT.load(Relaxed) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !quadriga::is_cancelled() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    x
}

/// Dropping a map (what `.take(n)` on an infinite input ends with) skips its
/// queued chunks. Nobody can read their results any more, so skipping them
/// should cost next to nothing, not one `TaskError` (three allocations, about
/// 230 bytes) per skipped item.
#[test]
fn dropping_a_map_does_not_allocate_per_skipped_item() {
    let _serial = serial();
    within(60, || {
        // One thread: once it blocks on the gate, every later chunk waits queued.
        let pool = ThreadPool::new(1).unwrap();
        let pulled = Arc::new(AtomicUsize::new(0));
        let p = Arc::clone(&pulled);
        let mut map = pool.map(
            gated,
            (0u64..).inspect(move |_| {
                p.fetch_add(1, Relaxed);
            }),
        );
        // Let chunk sizes grow, then gate every item not yet pulled: those
        // will be dispatched in new chunks, behind the one that blocks.
        let mut sum = map.by_ref().take(50_000).map(Result::unwrap).sum::<u64>();
        let gate = pulled.load(Relaxed) as u64;
        GATE_AT.store(gate, Relaxed);
        // Take everything before the gate: it is all in ungated chunks.
        sum += map
            .by_ref()
            .take(gate as usize - 50_000)
            .map(Result::unwrap)
            .sum::<u64>();
        assert_eq!(sum, gate * (gate - 1) / 2);

        let allocs_before = ALLOCS.load(Relaxed);
        drop(map);
        pool.shutdown(Shutdown::Wait);
        let allocs = ALLOCS.load(Relaxed) - allocs_before;
        let skipped = pulled.load(Relaxed) - GATED_RAN.load(Relaxed);
        eprintln!("dropping the map skipped {skipped} items with {allocs} allocations");
        assert!(skipped > 0, "no chunk was left queued to skip");
        assert!(
            allocs < skipped / 4 + 64,
            "dropping the map made {allocs} allocations to skip {skipped} items"
        );
    });
}
