//! A process-shared, robust mutex: the lock every cross-process object here is
//! built on.
//!
//! It is glibc's `pthread_mutex_t` with `PTHREAD_PROCESS_SHARED` and
//! `PTHREAD_MUTEX_ROBUST`, placed in shared memory. When a thread dies holding
//! it (its process killed, aborted, crashed, or the thread just exited), the
//! kernel walks the dead thread's robust list, marks the lock word
//! `FUTEX_OWNER_DIED` and wakes a waiter; the next `lock` then succeeds with
//! [`Acquired::OwnerDied`]. We mark the mutex consistent at once, so it is never
//! left unrecoverable: the caller decides whether the protected state needs a
//! repair, and is told so.
//!
//! Ownership is per thread: only the thread that locked may unlock. Guards
//! built on this type are therefore `!Send`.
//!
//! Under `cfg(quadriga_loom)` it is a model with the same outcomes, and
//! [`RawRobustMutex::abandon`] stands for a holder's death.

#[cfg(all(test, not(quadriga_loom)))]
use std::time::Instant;

/// How a lock was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Acquired {
    /// The previous holder unlocked it.
    Clean,
    /// The previous holder died holding it: the state it guards may be
    /// half-updated. The lock is held and usable.
    OwnerDied,
}

impl Acquired {
    pub(crate) fn owner_died(self) -> bool {
        self == Acquired::OwnerDied
    }
}

/// Where a `died` word may follow a mutex in shared memory (`Lock`, `Value`,
/// `Array`): the report of a holder whose thread panicked while holding it,
/// kept for the next taker (see `shm::guard`).
pub(crate) const DIED_AT: usize = std::mem::size_of::<RawRobustMutex>().next_multiple_of(4);

#[cfg(not(quadriga_loom))]
pub(crate) use real::RawRobustMutex;

#[cfg(quadriga_loom)]
pub(crate) use model::RawRobustMutex;

#[cfg(not(quadriga_loom))]
mod real {
    use std::cell::UnsafeCell;
    use std::time::Instant;

    use super::Acquired;

    unsafe extern "C" {
        /// glibc 2.30 and later (POSIX 2024): `pthread_mutex_timedlock` with
        /// a chosen clock. The `libc` crate does not declare it yet.
        fn pthread_mutex_clocklock(
            mutex: *mut libc::pthread_mutex_t,
            clock: libc::clockid_t,
            abstime: *const libc::timespec,
        ) -> libc::c_int;
    }

    /// Rounds of `RawRobustMutex::spin` (1, 2, 4 … 64 pause instructions
    /// between tries: about 2 µs in all) before `lock` blocks.
    const SPINS: u32 = 12;

    /// Lives in shared memory; see the module docs.
    #[repr(C)]
    pub(crate) struct RawRobustMutex {
        inner: UnsafeCell<libc::pthread_mutex_t>,
    }

    // SAFETY: a process-shared pthread mutex is made to be used from many
    // threads (and processes) at once through a shared reference.
    unsafe impl Sync for RawRobustMutex {}
    // SAFETY: as above; the value is plain memory until initialised in place.
    unsafe impl Send for RawRobustMutex {}

    impl std::fmt::Debug for RawRobustMutex {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("RawRobustMutex")
        }
    }

    impl RawRobustMutex {
        /// Initialises a mutex in place.
        ///
        /// # Safety
        /// `this` is valid for writes, suitably aligned, and no other thread or
        /// process uses the memory until this returns (a fresh mapping that has
        /// not been shared yet).
        pub(crate) unsafe fn init(this: *mut Self) -> std::io::Result<()> {
            let check = |rc: libc::c_int| {
                if rc == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::from_raw_os_error(rc))
                }
            };
            let mut attr = std::mem::MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
            // SAFETY: `attr` is a valid place for an attribute object; it is
            // initialised before use and destroyed after.
            unsafe {
                check(libc::pthread_mutexattr_init(attr.as_mut_ptr()))?;
                let result = check(libc::pthread_mutexattr_setpshared(
                    attr.as_mut_ptr(),
                    libc::PTHREAD_PROCESS_SHARED,
                ))
                .and_then(|()| {
                    check(libc::pthread_mutexattr_setrobust(
                        attr.as_mut_ptr(),
                        libc::PTHREAD_MUTEX_ROBUST,
                    ))
                })
                .and_then(|()| {
                    // Error-checking: locking again on the thread that holds
                    // it fails with EDEADLK (a clear panic below) instead of
                    // hanging that thread for ever.
                    check(libc::pthread_mutexattr_settype(
                        attr.as_mut_ptr(),
                        libc::PTHREAD_MUTEX_ERRORCHECK,
                    ))
                })
                .and_then(|()| {
                    // `UnsafeCell<T>` has the layout of `T`.
                    check(libc::pthread_mutex_init(this.cast(), attr.as_ptr()))
                });
                libc::pthread_mutexattr_destroy(attr.as_mut_ptr());
                result
            }
        }

        fn raw(&self) -> *mut libc::pthread_mutex_t {
            self.inner.get()
        }

        /// Marks the state consistent after `EOWNERDEAD`.
        fn taken(&self, rc: libc::c_int) -> Option<Acquired> {
            match rc {
                0 => Some(Acquired::Clean),
                libc::EOWNERDEAD => {
                    // SAFETY: we hold the mutex (EOWNERDEAD means acquired).
                    unsafe { libc::pthread_mutex_consistent(self.raw()) };
                    Some(Acquired::OwnerDied)
                }
                libc::EBUSY | libc::ETIMEDOUT => None,
                libc::EDEADLK => panic!(
                    "quadriga: this thread already holds this shared lock; taking it \
                     again would deadlock (drop the guard first)"
                ),
                // ENOTRECOVERABLE (cannot happen: we always mark it consistent),
                // EINVAL (not a mutex: the mapping was corrupted by a peer): a
                // bug or hostile memory.
                other => panic!(
                    "quadriga: a shared lock failed: {}",
                    std::io::Error::from_raw_os_error(other)
                ),
            }
        }

        /// Blocks until the lock is held.
        pub(crate) fn lock(&self) -> Acquired {
            if let Some(a) = self.spin() {
                return a;
            }
            loop {
                // SAFETY: the mutex was initialised by `init` and lives as long
                // as `self`.
                let rc = unsafe { libc::pthread_mutex_lock(self.raw()) };
                if let Some(a) = self.taken(rc) {
                    return a;
                }
            }
        }

        /// Tries for a moment before a caller blocks: the sections our locks
        /// guard last well under a microsecond, and a blocked taker pays a
        /// futex sleep and wake-up, several microseconds, each time (glibc's
        /// robust mutexes do not spin by themselves).
        fn spin(&self) -> Option<Acquired> {
            for i in 0..SPINS {
                if let Some(a) = self.try_lock() {
                    return Some(a);
                }
                for _ in 0..(1 << i.min(6)) {
                    std::hint::spin_loop();
                }
            }
            None
        }

        /// Takes the lock if it is free now.
        pub(crate) fn try_lock(&self) -> Option<Acquired> {
            // SAFETY: as in `lock`.
            let rc = unsafe { libc::pthread_mutex_trylock(self.raw()) };
            // glibc's robust trylock says EDEADLK when this thread holds it:
            // for a try, that is plain "busy" (a semaphore's scan meets the
            // permits its own thread holds).
            if rc == libc::EDEADLK {
                return None;
            }
            self.taken(rc)
        }

        /// Blocks until the lock is held or `deadline` passes (`None`).
        pub(crate) fn lock_until(&self, deadline: Instant) -> Option<Acquired> {
            loop {
                if let Some(a) = self.try_lock() {
                    return Some(a);
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return None;
                }
                // `Instant` is CLOCK_MONOTONIC, and so is this deadline: a step
                // of the wall clock cannot stretch the wait.
                let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
                let mut sec = now.tv_sec.saturating_add(left.as_secs() as i64);
                let mut nsec = now.tv_nsec + i64::from(left.subsec_nanos());
                if nsec >= 1_000_000_000 {
                    sec = sec.saturating_add(1);
                    nsec -= 1_000_000_000;
                }
                let ts = libc::timespec {
                    tv_sec: sec as libc::time_t,
                    tv_nsec: nsec as _,
                };
                // SAFETY: as in `lock`; `ts` is a valid timespec.
                let rc = unsafe { pthread_mutex_clocklock(self.raw(), libc::CLOCK_MONOTONIC, &ts) };
                if let Some(a) = self.taken(rc) {
                    return Some(a);
                }
            }
        }

        /// Releases the lock.
        ///
        /// # Safety
        /// The calling thread holds the lock.
        pub(crate) unsafe fn unlock(&self) {
            // SAFETY: the caller holds the lock.
            unsafe { libc::pthread_mutex_unlock(self.raw()) };
        }
    }
}

#[cfg(quadriga_loom)]
mod model {
    use std::time::Instant;

    use super::Acquired;
    use crate::loom::{Condvar, Mutex};

    #[derive(Debug, Default)]
    struct State {
        held: bool,
        owner_died: bool,
    }

    /// The loom model: the same outcomes, and `abandon` for a death.
    #[derive(Debug, Default)]
    pub(crate) struct RawRobustMutex {
        state: Mutex<State>,
        freed: Condvar,
    }

    impl RawRobustMutex {
        pub(crate) fn new() -> Self {
            Self::default()
        }

        /// # Safety
        /// As for the real one: `this` is valid for writes and not yet shared.
        pub(crate) unsafe fn init(this: *mut Self) -> std::io::Result<()> {
            // SAFETY: the caller's promise.
            unsafe { this.write(Self::new()) };
            Ok(())
        }

        fn take(state: &mut State) -> Acquired {
            state.held = true;
            if std::mem::take(&mut state.owner_died) {
                Acquired::OwnerDied
            } else {
                Acquired::Clean
            }
        }

        pub(crate) fn lock(&self) -> Acquired {
            let mut state = self.state.lock();
            while state.held {
                state = self.freed.wait(state);
            }
            Self::take(&mut state)
        }

        pub(crate) fn try_lock(&self) -> Option<Acquired> {
            let mut state = self.state.lock();
            (!state.held).then(|| Self::take(&mut state))
        }

        /// Loom has no clock: the same as `lock`.
        pub(crate) fn lock_until(&self, _deadline: Instant) -> Option<Acquired> {
            Some(self.lock())
        }

        /// # Safety
        /// The calling thread holds the lock (as for the real one).
        pub(crate) unsafe fn unlock(&self) {
            let mut state = self.state.lock();
            assert!(state.held, "unlock of a free lock");
            state.held = false;
            drop(state);
            self.freed.notify_all();
        }

        /// What the kernel does when the holder dies: the lock is free and the
        /// next taker is told. Also fires the pollers' timer (see
        /// `futex::poll_tick`).
        pub(crate) fn abandon(&self) {
            let mut state = self.state.lock();
            assert!(state.held, "abandon of a free lock");
            state.held = false;
            state.owner_died = true;
            drop(state);
            self.freed.notify_all();
            crate::shm::futex::poll_tick();
        }
    }
}

#[cfg(all(test, not(quadriga_loom)))]
mod tests {
    use super::*;

    fn boxed() -> Box<RawRobustMutex> {
        let mut m = Box::<RawRobustMutex>::new_uninit();
        // SAFETY: a fresh, unshared allocation of the right layout.
        unsafe {
            RawRobustMutex::init(m.as_mut_ptr()).unwrap();
            m.assume_init()
        }
    }

    #[test]
    fn a_thread_that_exits_holding_it_is_reported_to_the_next_taker() {
        let m: &'static RawRobustMutex = Box::leak(boxed());
        std::thread::spawn(move || assert_eq!(m.lock(), Acquired::Clean))
            .join()
            .unwrap();
        assert_eq!(m.lock(), Acquired::OwnerDied);
        // SAFETY: held by this thread.
        unsafe { m.unlock() };
        assert_eq!(m.try_lock(), Some(Acquired::Clean));
        let deadline = Instant::now() + std::time::Duration::from_millis(20);
        let other = std::thread::spawn(move || m.lock_until(deadline));
        assert_eq!(
            other.join().unwrap(),
            None,
            "held by us: the other times out"
        );
        // SAFETY: held by this thread.
        unsafe { m.unlock() };
    }

    #[test]
    fn locking_again_on_the_holding_thread_panics_instead_of_hanging() {
        let m: &'static RawRobustMutex = Box::leak(boxed());
        assert_eq!(m.lock(), Acquired::Clean);
        assert_eq!(m.try_lock(), None, "held: try_lock says busy");
        let again =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| m.lock())).unwrap_err();
        let message = crate::panic::payload_message(again);
        assert!(message.contains("already holds"), "{message}");
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        assert!(
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| m.lock_until(deadline)))
                .is_err()
        );
        // SAFETY: still held by this thread.
        unsafe { m.unlock() };
        assert_eq!(m.try_lock(), Some(Acquired::Clean));
        // SAFETY: held by this thread.
        unsafe { m.unlock() };
    }

    #[test]
    fn a_timed_lock_gives_up_at_its_deadline_not_before() {
        let m: &'static RawRobustMutex = Box::leak(boxed());
        std::thread::spawn(move || {
            m.lock(); // and exits holding it
        })
        .join()
        .unwrap();
        // Held by a dead thread: taken at once, and told.
        let deadline = Instant::now() + std::time::Duration::from_secs(30);
        assert_eq!(m.lock_until(deadline), Some(Acquired::OwnerDied));
        let (tx, rx) = std::sync::mpsc::channel();
        let start = Instant::now();
        std::thread::spawn(move || {
            let deadline = Instant::now() + std::time::Duration::from_millis(50);
            tx.send(m.lock_until(deadline)).unwrap();
        });
        let got = rx.recv_timeout(std::time::Duration::from_secs(30));
        assert_eq!(got, Ok(None), "held here: the other thread gives up");
        assert!(start.elapsed() >= std::time::Duration::from_millis(50));
        // SAFETY: held by this thread.
        unsafe { m.unlock() };
    }
}
