//! The bounded ring under [`Queue`](super::Queue) and [`Pipe`](super::Pipe):
//! fixed-size slots in shared memory, a two-lock MPMC protocol whose every
//! state change is one store, and futex sleeps that cost nothing when nobody
//! sleeps.
//!
//! # Layout
//!
//! A ring is a [`Control`] block (five 128-byte lines) followed by `cap` slots
//! of `stride` bytes, each `[u32 len][slot_bytes of item]`, `stride` rounded up
//! to 64 bytes. `head` and `tail` count in `0..2·cap` (so any capacity up to
//! 2³¹ works and "full" differs from "empty"); the slot of a count `c` is
//! `c mod cap`; `tail − head (mod 2·cap)` is the number of items.
//!
//! # Protocol and invariants
//!
//! * **Producers** hold the *put* lock (a robust process-shared mutex) while
//!   they check for room, copy the already-encoded item into slot `tail` and
//!   **commit by one `Release` store of `tail + 1`**. Only the put lock's
//!   holder writes `tail` or a free slot.
//! * **Consumers** hold the *get* lock while they copy slot `head` out and
//!   **commit by one `Release` store of `head + 1`**. Only the get lock's
//!   holder writes `head` or reads a full slot.
//! * A producer loads `head` with `Acquire` before it overwrites a slot: the
//!   consumer that freed the slot had finished copying it out. A consumer
//!   loads `tail` with `Acquire`: the item's bytes are there.
//! * **Crash safety.** A process killed at any instant leaves either the old
//!   or the new value of the one index it was about to store: an item is
//!   either committed (whole) or absent, taken or not. A producer killed
//!   mid-copy leaves bytes in a slot past `tail`, which the next producer
//!   overwrites; a consumer killed before its commit leaves the item for the
//!   next consumer, one killed after it has taken it (that item is lost with
//!   it, and only that one). So when a lock reports
//!   [`OwnerDied`](super::robust::Acquired::OwnerDied) there is nothing to
//!   repair, and nothing is repaired.
//! * **Nothing from shared memory is trusted.** Another process can write
//!   anything there. Indices are checked to lie in `0..2·cap` and to describe
//!   at most `cap` items before use (otherwise [`Stop::Corrupt`], and every
//!   operation fails); a slot length above `slot_bytes` is never used for a
//!   copy (the slot is skipped and reported, [`Stop::BadSlot`]).
//! * **Locks are held only for bounded work** (a check and a copy), never
//!   while waiting for room or items: so `try_put`/`try_get` may wait for the
//!   lock without ever waiting for another caller's sleep, and a timed call's
//!   limit covers both waits.
//!
//! # Sleeping and waking
//!
//! Each direction has a [`Wake`] line holding a [`Doorbell`](futex::Doorbell):
//! a futex word whose low bit says a sleeper may be there.
//!
//! * A waiter (after a short spin, see [`Ring::wait`]) arms the doorbell,
//!   issues a `SeqCst` fence, re-checks its condition and, if it still must
//!   wait, sleeps on the value it armed.
//! * A committer stores its index, issues a `SeqCst` fence and rings: only if
//!   the bit is set does it change the word and `FUTEX_WAKE` one sleeper.
//!   The two fences are ordered: either the waiter's re-check sees the
//!   commit, or the committer sees the bit and changes the word, so the sleep
//!   returns at once or is woken. With no waiter the fast path makes no
//!   system call. (Fences rather than `SeqCst` accesses, because loom checks
//!   fences exactly.)
//! * `close` sets `closed` under the put lock (so no put commits after it, and
//!   a getter that reads `closed` then `tail` has seen every item) and rings
//!   both doorbells unconditionally, waking every sleeper.
//! * One sleeper is woken per commit; a woken caller always tries its
//!   operation again before it looks at its deadline, and one whose deadline
//!   passes while it waits for the lock passes the wake-up on, so a wake-up
//!   is not wasted on a caller that gives up. Sleeps last at most a tick
//!   (callers choose it), so a wake-up swallowed by a process killed just as
//!   it was woken delays the others by one tick, not forever. A process killed
//!   asleep leaves the bit set; the next commit finds nobody to wake and
//!   clears it, so the fast path comes back after one slow commit.
//!
//! Before it arms the doorbell, a waiter spins for up to 50 µs (busy for a few
//! hundred pause instructions, then yielding its core), which is what makes a
//! pipe's round trip a microsecond instead of two wake-ups (see `SPIN`).
//!
//! # Checking
//!
//! `loom_tests` model the protocol with loom's atomics, the robust mutex's
//! loom model (whose `abandon` is a holder's death) and the futex's, and with
//! the slots as loom cells, so a slot touched by a producer and a consumer at
//! once is reported as a data race: wrap-around with one producer and one
//! consumer; two producers; a blocked get woken by a put and a blocked put by
//! a get; close waking a blocked getter; a producer dying mid-put. The unit
//! tests feed the checks impossible indices and lengths.

use std::time::{Duration, Instant};

use crate::loom::atomic::{
    AtomicU32,
    Ordering::{Acquire, Release, SeqCst},
    fence,
};
use crate::shm::futex;
use crate::shm::robust::RawRobustMutex;

/// A cache line pair (the unit the x86 prefetcher pulls in together).
#[repr(C, align(128))]
struct Line<T>(T);

/// One end's lock and index.
#[repr(C)]
struct End {
    lock: RawRobustMutex,
    /// `tail` on the put end, `head` on the get end.
    index: AtomicU32,
}

/// A sleeping place: see the module docs.
#[repr(C)]
pub(crate) struct Wake {
    bell: futex::Doorbell,
}

/// The shared state of a ring, at the start of its memory.
#[repr(C)]
pub(crate) struct Control {
    put: Line<End>,
    get: Line<End>,
    /// Getters sleep here; producers wake them.
    not_empty: Line<Wake>,
    /// Producers sleep here; getters wake them.
    not_full: Line<Wake>,
    /// Non-zero once closed.
    closed: Line<AtomicU32>,
}

/// Bytes a [`Control`] takes in shared memory (a multiple of 128).
#[cfg(not(quadriga_loom))]
const CONTROL_BYTES: usize = std::mem::size_of::<Control>();
/// Under loom the control block lives on the heap; the layout keeps the real size.
#[cfg(quadriga_loom)]
const CONTROL_BYTES: usize = 5 * 128;

const _: () = assert!(CONTROL_BYTES.is_multiple_of(128));

impl Control {
    /// Initialises a control block in place. (Under loom the block lives on
    /// the heap instead: [`Control::new`].)
    ///
    /// # Safety
    /// `this` points to zeroed memory of at least [`CONTROL_BYTES`] bytes,
    /// 128-byte aligned, which no other thread or process uses yet.
    #[cfg(not(quadriga_loom))]
    pub(crate) unsafe fn init(this: *mut Self) -> std::io::Result<()> {
        // Zeroed memory is a valid `AtomicU32` 0, so only the locks need
        // initialising.
        // SAFETY: the caller's promise; the fields lie inside `*this`.
        unsafe {
            RawRobustMutex::init(&raw mut (*this).put.0.lock)?;
            RawRobustMutex::init(&raw mut (*this).get.0.lock)?;
        }
        Ok(())
    }

    /// A control block on the heap, for loom models.
    #[cfg(quadriga_loom)]
    pub(crate) fn new() -> Self {
        let end = || {
            Line(End {
                lock: RawRobustMutex::new(),
                index: AtomicU32::new(0),
            })
        };
        let wake = || {
            Line(Wake {
                bell: futex::Doorbell::default(),
            })
        };
        Self {
            put: end(),
            get: end(),
            not_empty: wake(),
            not_full: wake(),
            closed: Line(AtomicU32::new(0)),
        }
    }
}

/// Largest capacity: counts run in `0..2·cap`, which must fit a `u32`.
pub(crate) const MAX_CAPACITY: usize = 1 << 31;
/// Largest slot: its length is a `u32`, and a slot must stay addressable.
pub(crate) const MAX_SLOT_BYTES: usize = 1 << 30;

/// The sizes of one ring, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    pub(crate) cap: u32,
    pub(crate) slot_bytes: u32,
    /// Bytes from one slot to the next (length word included), a multiple of 64.
    pub(crate) stride: usize,
    /// Bytes of the whole ring (control block and slots), a multiple of 128.
    pub(crate) ring_bytes: usize,
}

impl Layout {
    /// Checks sizes asked for by a caller, or read from another process's
    /// header: `Err` says what is wrong.
    pub(crate) fn new(capacity: u64, slot_bytes: u64) -> Result<Self, String> {
        if capacity == 0 {
            return Err("a capacity of 0: a queue must hold at least one item".into());
        }
        if capacity > MAX_CAPACITY as u64 {
            return Err(format!(
                "a capacity of {capacity}: at most {MAX_CAPACITY} items"
            ));
        }
        if slot_bytes == 0 || slot_bytes > MAX_SLOT_BYTES as u64 {
            return Err(format!(
                "a slot of {slot_bytes} bytes: slots hold 1 to {MAX_SLOT_BYTES} bytes"
            ));
        }
        let stride = (slot_bytes as usize + 4).next_multiple_of(64);
        let ring_bytes = (capacity as usize)
            .checked_mul(stride)
            .and_then(|s| s.checked_add(CONTROL_BYTES))
            .map(|s| s.next_multiple_of(128))
            .filter(|&s| s <= isize::MAX as usize / 2)
            .ok_or_else(|| {
                format!("{capacity} slots of {slot_bytes} bytes do not fit in memory")
            })?;
        Ok(Self {
            cap: capacity as u32,
            slot_bytes: slot_bytes as u32,
            stride,
            ring_bytes,
        })
    }

    /// Checks the layout parameters of an object received from another
    /// process against the real length of its body (`rings` rings).
    pub(crate) fn attach(
        capacity: u64,
        slot_bytes: u64,
        rings: usize,
        body_len: usize,
    ) -> Result<Self, String> {
        let layout = Self::new(capacity, slot_bytes)?;
        match layout.ring_bytes.checked_mul(rings) {
            Some(len) if len == body_len => Ok(layout),
            _ => Err(format!(
                "a shared object of {body_len} bytes cannot hold {rings} ring(s) of \
                 {capacity} slots of {slot_bytes} bytes"
            )),
        }
    }
}

/// The slots of a ring.
#[cfg(not(quadriga_loom))]
pub(crate) struct Slots {
    base: std::ptr::NonNull<u8>,
    stride: usize,
}

// SAFETY: slots are plain shared memory; the protocol gives each slot one
// writer (the put lock's holder, while the slot is free) or readers (the get
// lock's holder, while it is full), never both.
#[cfg(not(quadriga_loom))]
unsafe impl Send for Slots {}
// SAFETY: as above.
#[cfg(not(quadriga_loom))]
unsafe impl Sync for Slots {}

#[cfg(not(quadriga_loom))]
impl Slots {
    /// The slots that follow a control block at `ring`.
    ///
    /// # Safety
    /// `ring` is the start of `layout.ring_bytes` bytes of mapped memory that
    /// outlive the returned value.
    pub(crate) unsafe fn new(ring: std::ptr::NonNull<u8>, layout: &Layout) -> Self {
        Self {
            // SAFETY: the slots start CONTROL_BYTES into the ring's memory.
            base: unsafe { ring.add(CONTROL_BYTES) },
            stride: layout.stride,
        }
    }

    fn slot(&self, index: u32) -> *mut u8 {
        // SAFETY: callers pass `index < cap`, and the ring holds `cap` slots.
        unsafe { self.base.as_ptr().add(index as usize * self.stride) }
    }

    /// Writes `bytes` and their length into slot `index`.
    ///
    /// # Safety
    /// `index < cap`, `bytes.len() <= slot_bytes`, and the caller may write
    /// the slot: it holds the put lock and the slot is free.
    unsafe fn write(&self, index: u32, bytes: &[u8]) {
        let slot = self.slot(index);
        // SAFETY: the caller's promise: the slot has room for the length and
        // the bytes, and nobody reads it until the commit.
        unsafe {
            slot.cast::<u32>().write(bytes.len() as u32);
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), slot.add(4), bytes.len());
        }
    }

    /// Copies slot `index` into `out`; `Err(len)` if its length word is over
    /// `slot_bytes` (nothing is copied then).
    ///
    /// # Safety
    /// `index < cap`, and the caller may read the slot: it holds the get lock
    /// and the slot is full.
    unsafe fn read(&self, index: u32, slot_bytes: u32, out: &mut Vec<u8>) -> Result<(), u32> {
        let slot = self.slot(index);
        // SAFETY: the caller's promise; the length is checked before it is used.
        let len = unsafe { slot.cast::<u32>().read_volatile() };
        if len > slot_bytes {
            return Err(len);
        }
        out.clear();
        out.reserve(len as usize);
        // SAFETY: `len <= slot_bytes` bytes follow the length word; `out` has
        // room for them; its length is set only after the copy.
        unsafe {
            std::ptr::copy_nonoverlapping(slot.add(4), out.as_mut_ptr(), len as usize);
            out.set_len(len as usize);
        }
        Ok(())
    }
}

/// Under loom, the slots are loom cells, so a protocol bug that lets a
/// producer and a consumer touch one slot at once is reported as a data race.
#[cfg(quadriga_loom)]
pub(crate) struct Slots {
    cells: Box<[loom::cell::UnsafeCell<Vec<u8>>]>,
}

#[cfg(quadriga_loom)]
impl Slots {
    /// # Safety
    /// None needed under loom: the memory at `ring` is not used.
    pub(crate) unsafe fn new(_ring: std::ptr::NonNull<u8>, layout: &Layout) -> Self {
        Self::model(layout.cap)
    }

    pub(crate) fn model(cap: u32) -> Self {
        Self {
            cells: (0..cap)
                .map(|_| loom::cell::UnsafeCell::new(Vec::new()))
                .collect(),
        }
    }

    unsafe fn write(&self, index: u32, bytes: &[u8]) {
        self.cells[index as usize].with_mut(|v| {
            // SAFETY: loom checks the caller's claim of exclusive access.
            let v = unsafe { &mut *v };
            v.clear();
            v.extend_from_slice(bytes);
        });
    }

    unsafe fn read(&self, index: u32, _slot_bytes: u32, out: &mut Vec<u8>) -> Result<(), u32> {
        self.cells[index as usize].with(|v| {
            out.clear();
            // SAFETY: loom checks the caller's claim that nobody writes.
            out.extend_from_slice(unsafe { &*v });
        });
        Ok(())
    }
}

impl std::fmt::Debug for Slots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Slots")
    }
}

/// A ring placed in mapped memory: where its control block and slots are.
/// Its owner keeps the mapping alive for as long as the `Placed`.
pub(crate) struct Placed {
    #[cfg(not(quadriga_loom))]
    ctl: std::ptr::NonNull<Control>,
    #[cfg(quadriga_loom)]
    ctl: Box<Control>,
    slots: Slots,
    layout: Layout,
}

// SAFETY: the pointers are into shared memory whose every access is
// synchronised by the protocol above (atomics and the robust locks).
unsafe impl Send for Placed {}
// SAFETY: as above.
unsafe impl Sync for Placed {}

impl std::fmt::Debug for Placed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Placed")
            .field("layout", &self.layout)
            .finish()
    }
}

impl Placed {
    /// The ring of `layout` at `at`; `init` sets up a fresh ring there.
    ///
    /// # Safety
    /// `at` is the start of `layout.ring_bytes` bytes of mapped shared
    /// memory, 128-byte aligned, that outlive the returned value. With `init`,
    /// the memory is zeroed and no other thread or process uses it yet;
    /// without, it holds a ring (initialised by another `Placed`, maybe in
    /// another process).
    pub(crate) unsafe fn new(
        at: std::ptr::NonNull<u8>,
        layout: Layout,
        init: bool,
    ) -> std::io::Result<Self> {
        #[cfg(not(quadriga_loom))]
        let ctl = {
            let ctl = at.cast::<Control>();
            if init {
                // SAFETY: the caller's promise; CONTROL_BYTES fit in the ring.
                unsafe { Control::init(ctl.as_ptr())? };
            }
            ctl
        };
        #[cfg(quadriga_loom)]
        let ctl = {
            let _ = init;
            Box::new(Control::new())
        };
        Ok(Self {
            ctl,
            // SAFETY: the caller's promise.
            slots: unsafe { Slots::new(at, &layout) },
            layout,
        })
    }

    /// The ring's operations.
    pub(crate) fn ring(&self) -> Ring<'_> {
        #[cfg(not(quadriga_loom))]
        // SAFETY: the memory outlives `self` (the promise made to `new`), and
        // a `Control` is only ever used through shared references.
        let ctl = unsafe { self.ctl.as_ref() };
        #[cfg(quadriga_loom)]
        let ctl = &*self.ctl;
        Ring::new(ctl, &self.slots, self.layout)
    }
}

/// Why an operation did not happen; nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stop {
    Full,
    Empty,
    Closed,
    Timeout,
    /// The indices in shared memory are impossible: the ring is unusable.
    Corrupt(String),
    /// A slot's length word was impossible; the slot was skipped (committed
    /// as taken) so that the ring stays usable.
    BadSlot {
        len: u32,
        slot_bytes: u32,
    },
}

/// How long an operation may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Not at all for room or items (it may still wait for a lock, which is
    /// held only for bounded work).
    No,
    Until(Instant),
    Forever,
}

impl Wait {
    /// `Until(now + d)`, or `Forever` if that is beyond the clock.
    pub(crate) fn after(d: Duration) -> Self {
        Instant::now()
            .checked_add(d)
            .map_or(Wait::Forever, Wait::Until)
    }

    pub(crate) fn passed(self) -> bool {
        match self {
            Wait::No => true,
            Wait::Until(d) => Instant::now() >= d,
            Wait::Forever => false,
        }
    }
}

/// Which condition a caller waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dir {
    /// An item to take (or the ring closed).
    NotEmpty,
    /// Room to put (or the ring closed).
    NotFull,
}

/// A held lock; unlocks on drop. `!Send`, like the lock's ownership.
struct Held<'a>(&'a RawRobustMutex, std::marker::PhantomData<*const ()>);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        // SAFETY: a `Held` exists only while this thread holds the lock.
        unsafe { self.0.unlock() };
    }
}

/// The ring's operations over its control block and slots.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ring<'a> {
    ctl: &'a Control,
    slots: &'a Slots,
    layout: Layout,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Control")
    }
}

/// How long a caller spins (then yields) before it sleeps. Measured on the
/// 2-core VM this was written on, with the `ipc` benchmarks: without a spin,
/// a pipe's ping-pong p50 was 55–62 µs (a futex wake-up and a reschedule each
/// way, no better than Python); with 10 µs, 1.5 µs; with 50 µs, 1.2–1.4 µs
/// and a p99 of ~2 µs. Queue throughput did not change. A waiter that then
/// sleeps has burnt at most this much CPU.
#[cfg(not(quadriga_loom))]
const SPIN: Duration = Duration::from_micros(50);

/// Rounds of busy spinning (1, 2, 4 … 32 pause instructions) before the spin
/// yields its core instead, in case the thread it waits for needs it.
#[cfg(not(quadriga_loom))]
const HOT_SPINS: u32 = 10;

impl<'a> Ring<'a> {
    pub(crate) fn new(ctl: &'a Control, slots: &'a Slots, layout: Layout) -> Self {
        Self { ctl, slots, layout }
    }

    pub(crate) fn layout(&self) -> Layout {
        self.layout
    }

    fn hold(&self, lock: &'a RawRobustMutex, wait: Wait) -> Result<Held<'a>, Stop> {
        // A dead holder needs no repair (module docs): `OwnerDied` is ignored.
        match wait {
            Wait::No | Wait::Forever => {
                lock.lock();
            }
            Wait::Until(deadline) => {
                lock.lock_until(deadline).ok_or(Stop::Timeout)?;
            }
        }
        Ok(Held(lock, std::marker::PhantomData))
    }

    /// `2·cap`, the modulus of the counts.
    fn span(&self) -> u64 {
        2 * u64::from(self.layout.cap)
    }

    fn next(&self, count: u32) -> u32 {
        ((u64::from(count) + 1) % self.span()) as u32
    }

    fn slot_of(&self, count: u32) -> u32 {
        count % self.layout.cap
    }

    /// Items between `head` and `tail`, if those are possible values.
    fn used(&self, head: u32, tail: u32) -> Result<u32, Stop> {
        let span = self.span();
        if u64::from(head) >= span || u64::from(tail) >= span {
            return Err(self.corrupt(head, tail));
        }
        let used = ((u64::from(tail) + span - u64::from(head)) % span) as u32;
        if used > self.layout.cap {
            return Err(self.corrupt(head, tail));
        }
        Ok(used)
    }

    fn corrupt(&self, head: u32, tail: u32) -> Stop {
        Stop::Corrupt(format!(
            "the shared memory was overwritten: head {head} and tail {tail} are \
             impossible for a capacity of {}",
            self.layout.cap
        ))
    }

    /// Puts `bytes` (at most `slot_bytes`) if there is room now.
    pub(crate) fn try_push(&self, bytes: &[u8], wait: Wait) -> Result<(), Stop> {
        // Callers encode within the limit (`with_encoded`); a slip here would
        // write past the slot, so it is checked in every build.
        assert!(bytes.len() <= self.layout.slot_bytes as usize);
        let held = self.hold(&self.ctl.put.0.lock, wait)?;
        crate::fault_point!("ring.push.locked");
        if self.ctl.closed.0.load(Acquire) != 0 {
            return Err(Stop::Closed);
        }
        let tail = self.ctl.put.0.index.load(Acquire);
        let head = self.ctl.get.0.index.load(Acquire);
        if self.used(head, tail)? >= self.layout.cap {
            return Err(Stop::Full);
        }
        // SAFETY: `slot_of` is below cap; we hold the put lock and the slot is
        // free (fewer than cap items); the caller bounds the length.
        unsafe { self.slots.write(self.slot_of(tail), bytes) };
        crate::fault_point!("ring.push.copied");
        // The commit.
        self.ctl.put.0.index.store(self.next(tail), Release);
        crate::fault_point!("ring.push.committed");
        drop(held);
        crate::fault_point!("ring.push.unlocked");
        self.notify(&self.ctl.not_empty.0);
        Ok(())
    }

    /// Takes the oldest item into `out` if there is one now.
    pub(crate) fn try_pop(&self, out: &mut Vec<u8>, wait: Wait) -> Result<(), Stop> {
        let held = self.hold(&self.ctl.get.0.lock, wait)?;
        crate::fault_point!("ring.pop.locked");
        // `closed` before `tail`: a close that we see came after every commit.
        let closed = self.ctl.closed.0.load(Acquire) != 0;
        let head = self.ctl.get.0.index.load(Acquire);
        let tail = self.ctl.put.0.index.load(Acquire);
        if self.used(head, tail)? == 0 {
            return Err(if closed { Stop::Closed } else { Stop::Empty });
        }
        // SAFETY: `slot_of` is below cap; we hold the get lock and the slot is
        // full (at least one item).
        let read = unsafe {
            self.slots
                .read(self.slot_of(head), self.layout.slot_bytes, out)
        };
        crate::fault_point!("ring.pop.copied");
        // The commit (a bad slot is skipped too, or it would block the ring).
        self.ctl.get.0.index.store(self.next(head), Release);
        crate::fault_point!("ring.pop.committed");
        drop(held);
        crate::fault_point!("ring.pop.unlocked");
        self.notify(&self.ctl.not_full.0);
        read.map_err(|len| Stop::BadSlot {
            len,
            slot_bytes: self.layout.slot_bytes,
        })
    }

    /// Puts `bytes`, waiting for room as `wait` allows.
    pub(crate) fn push(&self, bytes: &[u8], wait: Wait, tick: Duration) -> Result<(), Stop> {
        let mut waited = false;
        loop {
            match self.try_push(bytes, wait) {
                Err(Stop::Full) if wait == Wait::No => return Err(Stop::Full),
                Err(Stop::Full) if wait.passed() => return Err(Stop::Timeout),
                Err(Stop::Full) => self.wait(Dir::NotFull, wait, tick),
                Err(Stop::Timeout) if waited => {
                    // Timed out waiting for the lock after a wake-up that
                    // may have been meant for us: pass it on.
                    self.notify(&self.ctl.not_full.0);
                    return Err(Stop::Timeout);
                }
                done => return done,
            }
            waited = true;
        }
    }

    /// Takes an item into `out`, waiting for one as `wait` allows.
    pub(crate) fn pop(&self, out: &mut Vec<u8>, wait: Wait, tick: Duration) -> Result<(), Stop> {
        let mut waited = false;
        loop {
            match self.try_pop(out, wait) {
                Err(Stop::Empty) if wait == Wait::No => return Err(Stop::Empty),
                Err(Stop::Empty) if wait.passed() => return Err(Stop::Timeout),
                Err(Stop::Empty) => self.wait(Dir::NotEmpty, wait, tick),
                Err(Stop::Timeout) if waited => {
                    // As in `push`: the wake-up goes to the next sleeper.
                    self.notify(&self.ctl.not_empty.0);
                    return Err(Stop::Timeout);
                }
                done => return done,
            }
            waited = true;
        }
    }

    /// Whether a caller waiting for `dir` should look again: the condition may
    /// hold (impossible indices count as "look": the operation reports them).
    pub(crate) fn ready(&self, dir: Dir) -> bool {
        if self.ctl.closed.0.load(Acquire) != 0 {
            return true;
        }
        let tail = self.ctl.put.0.index.load(Acquire);
        let head = self.ctl.get.0.index.load(Acquire);
        match (dir, self.used(head, tail)) {
            (_, Err(_)) => true,
            (Dir::NotEmpty, Ok(used)) => used > 0,
            (Dir::NotFull, Ok(used)) => used < self.layout.cap,
        }
    }

    fn wake_of(&self, dir: Dir) -> &'a Wake {
        match dir {
            Dir::NotEmpty => &self.ctl.not_empty.0,
            Dir::NotFull => &self.ctl.not_full.0,
        }
    }

    /// Waits until `dir` may hold, a wake-up, `wait`'s deadline or `tick`,
    /// whichever is first; may return early. Spins briefly first.
    pub(crate) fn wait(&self, dir: Dir, wait: Wait, tick: Duration) {
        self.wait_unless(dir, wait, tick, || false);
    }

    /// [`wait`](Self::wait), but `stop` is asked just before the sleep, and a
    /// `true` means do not sleep. It is asked after the sleeper has armed the
    /// doorbell, so whatever makes it true and then pokes the ring (a pipe
    /// peer that closes its socket, then pokes) cannot slip between the
    /// question and the sleep.
    pub(crate) fn wait_unless(
        &self,
        dir: Dir,
        wait: Wait,
        tick: Duration,
        stop: impl FnOnce() -> bool,
    ) {
        if self.spin(dir) {
            return;
        }
        let timeout = match wait {
            Wait::No => return,
            Wait::Until(d) => d.saturating_duration_since(Instant::now()).min(tick),
            Wait::Forever => tick,
        };
        let w = self.wake_of(dir);
        let armed = w.bell.arm();
        fence(SeqCst);
        if !self.ready(dir) && !timeout.is_zero() && !stop() {
            w.bell.sleep(armed, Some(timeout));
        }
    }

    /// Spins (then yields) while the condition is false, at most `SPIN`.
    /// Whether it became true. Not under loom: it would only multiply states.
    fn spin(&self, dir: Dir) -> bool {
        #[cfg(quadriga_loom)]
        {
            let _ = dir;
            false
        }
        #[cfg(not(quadriga_loom))]
        {
            for i in 0..HOT_SPINS {
                if self.ready(dir) {
                    return true;
                }
                for _ in 0..(1 << i.min(5)) {
                    std::hint::spin_loop();
                }
            }
            let start = Instant::now();
            while start.elapsed() < SPIN {
                if self.ready(dir) {
                    return true;
                }
                std::thread::yield_now();
            }
            false
        }
    }

    /// Wakes one sleeper of `w` if any may be asleep (module docs).
    fn notify(&self, w: &Wake) {
        fence(SeqCst);
        w.bell.ring(1);
    }

    /// Wakes every sleeper of `dir`, to make them look again.
    pub(crate) fn poke(&self, dir: Dir) {
        self.wake_of(dir).bell.ring_all();
    }

    /// Closes the ring: puts fail from now on, gets drain it; every sleeper
    /// wakes.
    pub(crate) fn close(&self) {
        if let Ok(held) = self.hold(&self.ctl.put.0.lock, Wait::Forever) {
            self.ctl.closed.0.store(1, Release);
            drop(held);
        }
        self.poke(Dir::NotEmpty);
        self.poke(Dir::NotFull);
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.ctl.closed.0.load(Acquire) != 0
    }

    /// Items in the ring now (a snapshot; 0 if the indices are impossible).
    ///
    /// `head` is read on both sides of `tail`: if getters moved it past the
    /// `tail` read in between, the pair would look impossible (or be wildly
    /// off), so it is read again, a bounded number of times.
    pub(crate) fn len(&self) -> usize {
        let mut head = self.ctl.get.0.index.load(Acquire);
        for _ in 0..64 {
            let tail = self.ctl.put.0.index.load(Acquire);
            let again = self.ctl.get.0.index.load(Acquire);
            if again == head {
                return self.used(head, tail).unwrap_or(0) as usize;
            }
            head = again;
        }
        // Still moving after 64 looks: the ring is very busy, and any answer
        // is stale at once; the last pair that is possible will do.
        let tail = self.ctl.put.0.index.load(Acquire);
        self.used(head, tail).unwrap_or(0) as usize
    }
}

#[cfg(all(test, not(quadriga_loom)))]
mod tests {
    use super::*;

    #[test]
    fn layouts_are_checked() {
        assert!(Layout::new(0, 8).unwrap_err().contains("capacity of 0"));
        assert!(Layout::new(1 << 32, 8).is_err());
        assert!(Layout::new(4, 0).is_err());
        assert!(Layout::new(4, (MAX_SLOT_BYTES + 1) as u64).is_err());
        let l = Layout::new(3, 10).unwrap();
        assert_eq!((l.cap, l.slot_bytes, l.stride), (3, 10, 64));
        assert_eq!(l.ring_bytes, CONTROL_BYTES + 3 * 64 + 64);
        assert_eq!(Layout::attach(3, 10, 2, 2 * l.ring_bytes), Ok(l));
        assert!(Layout::attach(3, 10, 2, 2 * l.ring_bytes + 128).is_err());
        assert!(Layout::attach(u64::MAX, 10, 2, 2 * l.ring_bytes).is_err());
        assert!(Layout::attach(3, u64::MAX, 1, l.ring_bytes).is_err());
    }

    /// A ring on the heap, the way a region holds it.
    struct Heap {
        mem: Vec<u128>,
        placed: Option<Placed>,
    }

    fn heap(cap: u64, slot_bytes: u64) -> Heap {
        let layout = Layout::new(cap, slot_bytes).unwrap();
        // `u128` for alignment; 128-byte alignment is only for speed.
        let mut mem = vec![0_u128; layout.ring_bytes / 16 + 8];
        let offset = mem.as_ptr().align_offset(128) / 16;
        let at = std::ptr::NonNull::new(mem[offset..].as_mut_ptr().cast::<u8>()).unwrap();
        // SAFETY: zeroed, unshared, big enough, aligned; `Heap` keeps `mem`
        // alive (a Vec's buffer does not move when the Vec does).
        let placed = unsafe { Placed::new(at, layout, true).unwrap() };
        Heap {
            mem,
            placed: Some(placed),
        }
    }

    impl Heap {
        fn ring(&self) -> Ring<'_> {
            self.placed.as_ref().unwrap().ring()
        }
    }

    impl Drop for Heap {
        fn drop(&mut self) {
            self.placed = None;
            let _ = self.mem.len();
        }
    }

    const T: Duration = Duration::from_millis(100);

    /// `wait_unless` asks `stop` once before it would sleep, and a `true`
    /// means no sleep at all: with a tick of an hour and no deadline, only
    /// that lets it return (a pipe whose peer is gone relies on it). A ring
    /// that is ready returns without asking.
    #[test]
    fn wait_unless_does_not_sleep_when_told_to_stop() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let h = heap(2, 8);
            let r = h.ring();
            let hour = Duration::from_secs(3600);
            let mut asked = 0;
            r.wait_unless(Dir::NotEmpty, Wait::Forever, hour, || {
                asked += 1;
                true
            });
            let before_ready = asked;
            r.push(&[1], Wait::No, T).unwrap();
            r.wait_unless(Dir::NotEmpty, Wait::Forever, hour, || {
                asked += 1;
                true
            });
            tx.send((before_ready, asked)).unwrap();
        });
        let asked = rx.recv_timeout(Duration::from_secs(30));
        assert_eq!(asked, Ok((1, 1)), "asked once, then not when ready");
    }

    #[test]
    fn counts_wrap_at_twice_the_capacity() {
        let h = heap(3, 8);
        let r = h.ring();
        let mut out = Vec::new();
        for i in 0..20_u8 {
            r.push(&[i, i], Wait::No, T).unwrap();
            r.push(&[i], Wait::No, T).unwrap();
            assert_eq!(r.len(), 2);
            r.pop(&mut out, Wait::No, T).unwrap();
            assert_eq!(out, [i, i]);
            r.pop(&mut out, Wait::No, T).unwrap();
            assert_eq!(out, [i]);
        }
        assert_eq!(r.pop(&mut out, Wait::No, T), Err(Stop::Empty));
        for _ in 0..3 {
            r.push(&[], Wait::No, T).unwrap();
        }
        assert_eq!(r.push(&[], Wait::No, T), Err(Stop::Full));
        let soon = Wait::after(Duration::from_millis(5));
        assert_eq!(r.push(&[], soon, T), Err(Stop::Timeout));
    }

    #[test]
    fn impossible_indices_and_lengths_are_refused() {
        let h = heap(4, 8);
        let r = h.ring();
        let mut out = Vec::new();
        r.push(&[1, 2, 3], Wait::No, T).unwrap();
        // Another process scribbles over the slot's length word.
        // SAFETY: test-only poke into the ring's first slot, unused by others.
        unsafe { r.slots.slot(0).cast::<u32>().write(1_000) };
        let err = r.pop(&mut out, Wait::No, T).unwrap_err();
        assert_eq!(
            err,
            Stop::BadSlot {
                len: 1000,
                slot_bytes: 8
            }
        );
        // The bad slot was skipped: the ring is still usable.
        r.push(&[4], Wait::No, T).unwrap();
        r.pop(&mut out, Wait::No, T).unwrap();
        assert_eq!(out, [4]);
        // And an impossible tail makes every operation fail, not misbehave.
        r.ctl.put.0.index.store(9, Release);
        assert!(matches!(
            r.pop(&mut out, Wait::No, T),
            Err(Stop::Corrupt(_))
        ));
        assert!(matches!(r.push(&[1], Wait::No, T), Err(Stop::Corrupt(_))));
        assert!(r.ready(Dir::NotEmpty) && r.ready(Dir::NotFull));
        assert_eq!(r.len(), 0);
        r.ctl.put.0.index.store(3, Release);
        r.ctl.get.0.index.store(6, Release);
        // head 6, tail 3: 5 items in a ring of 4 (counts mod 8) is impossible.
        assert!(matches!(
            r.pop(&mut out, Wait::No, T),
            Err(Stop::Corrupt(_))
        ));
    }

    #[test]
    fn a_blocked_getter_is_woken_by_a_put_and_by_close() {
        let h = heap(2, 8);
        std::thread::scope(|s| {
            let r = h.ring();
            let getter = s.spawn(move || {
                let mut out = Vec::new();
                let first = r.pop(&mut out, Wait::Forever, Duration::from_secs(60));
                let second = r.pop(&mut out, Wait::Forever, Duration::from_secs(60));
                (first, out, second)
            });
            std::thread::sleep(Duration::from_millis(20));
            r.push(&[7], Wait::No, T).unwrap();
            std::thread::sleep(Duration::from_millis(20));
            r.close();
            let (first, out, second) = getter.join().unwrap();
            assert_eq!((first, out, second), (Ok(()), vec![7], Err(Stop::Closed)));
            assert_eq!(r.push(&[1], Wait::No, T), Err(Stop::Closed));
        });
    }
}

#[cfg(all(test, quadriga_loom))]
mod loom_tests {
    use super::*;
    use loom::thread;
    use std::sync::Arc;

    const T: Duration = Duration::from_millis(100);

    struct Model {
        ctl: Control,
        slots: Slots,
        layout: Layout,
    }

    impl Model {
        fn new(cap: u32) -> Arc<Self> {
            Arc::new(Self {
                ctl: Control::new(),
                slots: Slots::model(cap),
                layout: Layout::new(u64::from(cap), 8).unwrap(),
            })
        }

        fn ring(&self) -> Ring<'_> {
            Ring::new(&self.ctl, &self.slots, self.layout)
        }

        fn put(&self, v: u8) {
            self.ring().push(&[v], Wait::Forever, T).unwrap();
        }

        fn get(&self) -> Result<u8, Stop> {
            let mut out = Vec::new();
            self.ring().pop(&mut out, Wait::Forever, T).map(|()| out[0])
        }
    }

    /// One producer, one consumer, three items through two slots: both
    /// sides block in turn, the counts wrap, order is kept, no wake-up is
    /// lost (loom would report the sleeper as a deadlock).
    #[test]
    fn spsc_wraps_around() {
        loom::model(|| spsc_three_items(2));
    }

    fn spsc_three_items(cap: u32) {
        let m = Model::new(cap);
        let p = Arc::clone(&m);
        let producer = thread::spawn(move || (0..3).for_each(|v| p.put(v)));
        let got: Vec<u8> = (0..3).map(|_| m.get().unwrap()).collect();
        producer.join().unwrap();
        assert_eq!(got, [0, 1, 2]);
    }

    /// Two producers and a consumer: each item arrives exactly once.
    #[test]
    fn two_producers_one_consumer() {
        loom::model(|| {
            let m = Model::new(2);
            let producers: Vec<_> = [1, 2]
                .into_iter()
                .map(|v| {
                    let m = Arc::clone(&m);
                    thread::spawn(move || m.put(v))
                })
                .collect();
            let mut got = [m.get().unwrap(), m.get().unwrap()];
            producers.into_iter().for_each(|p| p.join().unwrap());
            got.sort_unstable();
            assert_eq!(got, [1, 2]);
            assert_eq!(
                m.ring().try_pop(&mut Vec::new(), Wait::No),
                Err(Stop::Empty)
            );
        });
    }

    /// A getter that sleeps on an empty queue is woken by a put.
    #[test]
    fn blocking_get_is_woken_by_put() {
        loom::model(|| {
            let m = Model::new(1);
            let g = Arc::clone(&m);
            let getter = thread::spawn(move || g.get());
            m.put(5);
            assert_eq!(getter.join().unwrap(), Ok(5));
        });
    }

    /// A blocking put on a full queue is woken by a get.
    #[test]
    fn blocking_put_is_woken_by_get() {
        loom::model(|| {
            let m = Model::new(1);
            m.put(1);
            let p = Arc::clone(&m);
            let producer = thread::spawn(move || p.put(2));
            assert_eq!(m.get(), Ok(1));
            assert_eq!(m.get(), Ok(2));
            producer.join().unwrap();
        });
    }

    /// Close wakes a getter asleep on an empty queue, and a put that raced
    /// with the close is either taken or refused, never stranded.
    #[test]
    fn close_wakes_a_blocked_getter() {
        loom::model(|| {
            let m = Model::new(2);
            let g = Arc::clone(&m);
            let getter = thread::spawn(move || {
                let mut got = Vec::new();
                loop {
                    match g.get() {
                        Ok(v) => got.push(v),
                        Err(stop) => return (got, stop),
                    }
                }
            });
            let put = m.ring().try_push(&[3], Wait::No);
            m.ring().close();
            let (got, stop) = getter.join().unwrap();
            assert_eq!(stop, Stop::Closed);
            match put {
                Ok(()) => assert_eq!(got, [3]),
                Err(e) => panic!("put before close failed: {e:?}"),
            }
        });
    }

    /// Capacity one: the counts wrap every second item (span 2), with both
    /// sides blocking in turn.
    #[test]
    fn counts_wrap_at_capacity_one() {
        loom::model(|| spsc_three_items(1));
    }

    /// Two getters asleep on an empty queue and two puts: each put wakes one
    /// sleeper (the futex model wakes exactly as many as asked), and both
    /// getters get an item; a wake lost or sent to nobody is a deadlock.
    #[test]
    fn two_sleeping_getters_are_each_woken() {
        loom::model(|| {
            let m = Model::new(2);
            let getters: Vec<_> = (0..2)
                .map(|_| {
                    let g = Arc::clone(&m);
                    thread::spawn(move || g.get().unwrap())
                })
                .collect();
            m.put(1);
            m.put(2);
            let mut got: Vec<u8> = getters.into_iter().map(|g| g.join().unwrap()).collect();
            got.sort_unstable();
            assert_eq!(got, [1, 2]);
        });
    }

    /// A consumer that dies holding the get lock after copying an item out,
    /// before its commit, leaves the item for the next consumer (which takes
    /// the lock, told the owner died): taken exactly once.
    #[test]
    fn a_consumer_dying_mid_get_leaves_the_item() {
        loom::model(|| {
            let m = Model::new(2);
            m.put(5);
            let d = Arc::clone(&m);
            let dying = thread::spawn(move || {
                let ctl = &d.ctl;
                ctl.get.0.lock.lock();
                let r = d.ring();
                let head = ctl.get.0.index.load(Acquire);
                let mut out = Vec::new();
                // SAFETY: as in `try_pop`: the get lock is held, the slot full.
                let _ = unsafe { d.slots.read(r.slot_of(head), 8, &mut out) };
                // Killed here: copied, not committed.
                ctl.get.0.lock.abandon();
            });
            let c = Arc::clone(&m);
            let consumer = thread::spawn(move || c.get());
            dying.join().unwrap();
            m.put(6);
            assert_eq!(consumer.join().unwrap(), Ok(5));
            assert_eq!(m.get(), Ok(6));
            assert_eq!(m.ring().len(), 0);
        });
    }

    /// A producer that dies holding the lock mid-copy leaves nothing
    /// committed; the next producer takes the lock (told the owner died) and
    /// its item is the only one the consumer sees.
    #[test]
    fn a_producer_dying_mid_put_leaves_nothing() {
        loom::model(|| {
            let m = Model::new(2);
            let d = Arc::clone(&m);
            let dying = thread::spawn(move || {
                let ctl = &d.ctl;
                ctl.put.0.lock.lock();
                let r = d.ring();
                let tail = ctl.put.0.index.load(Acquire);
                let head = ctl.get.0.index.load(Acquire);
                if r.used(head, tail).unwrap() < r.layout.cap {
                    // SAFETY: as in `try_push`: the lock is held, the slot free.
                    unsafe { d.slots.write(r.slot_of(tail), &[99]) };
                }
                // Killed here: no commit, no unlock.
                ctl.put.0.lock.abandon();
            });
            let p = Arc::clone(&m);
            let producer = thread::spawn(move || p.put(2));
            assert_eq!(m.get(), Ok(2));
            dying.join().unwrap();
            producer.join().unwrap();
            assert_eq!(
                m.ring().try_pop(&mut Vec::new(), Wait::No),
                Err(Stop::Empty)
            );
            assert_eq!(m.ring().len(), 0);
        });
    }
}
