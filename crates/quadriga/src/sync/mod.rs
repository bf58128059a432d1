//! Synchronisation across processes: `Lock`, `Semaphore`, `Event`, `Barrier`.
//!
//! Like the [`ipc`](crate::ipc) objects, each works between threads and
//! between processes (pass it in a task's input). A process that dies holding
//! a lock or a permit does not deadlock the rest: the next taker gets it and is
//! told that its owner died, so it can repair what the dead one left.
//!
//! ```
//! use quadriga::sync::{Event, Lock};
//!
//! let lock = Lock::new()?;
//! let done = Event::new()?;
//! let (l, d) = (lock.clone(), done.clone());
//! std::thread::spawn(move || {
//!     let _held = l.lock().unwrap();
//!     d.set();
//! });
//! done.wait();
//! let _held = lock.lock().unwrap();
//! # Ok::<(), quadriga::ipc::Error>(())
//! ```
//!
//! * [`Lock`]: mutual exclusion; its guard is released when dropped.
//! * [`Semaphore`]: a bounded number of permits; a dead holder's permit is
//!   reclaimed by the next acquirer.
//! * [`Event`]: a flag to wait on; `set` wakes every waiter.
//! * [`Barrier`]: `parties` meet, then all go on; it *breaks* (for everyone)
//!   on a timeout, an abort or a party's death inside it.
//!
//! Taking a lock or a permit returns a [`LockResult`] in the style of std's
//! `PoisonError`: `Err(`[`OwnerDied`]`)` carries the guard, held and usable,
//! and says that the previous holder died while holding it, or panicked
//! (which `std` calls poisoning). Guards are not `Send`: a robust lock is
//! owned by the thread that took it, and locking again on that thread panics
//! instead of deadlocking.
//!
//! Every object is one small shared-memory region (see [`ipc`](crate::ipc));
//! the source of each (`src/sync/*.rs`) states its layout, invariants and
//! memory orderings. Waits sleep on a futex in that memory; nothing spins. A
//! waiter also looks again every 25 ms on its own, because a
//! holder that dies wakes nobody who waits on anything but the lock itself
//! (a semaphore's permit, a barrier's generation, an event's flag).

/// `Serialize`/`Deserialize` for a sync object: it travels as its region (a
/// descriptor beside a task input, see `task::transfer`) and is re-attached,
/// checked, by its `attach(Region)`.
macro_rules! serde_by_region {
    ($ty:ident, $kind:expr) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.region.serialize(s)
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let region =
                    crate::shm::Region::deserialize(d, $kind, crate::shm::fingerprint::<$ty>())?;
                Self::attach(region).map_err(serde::de::Error::custom)
            }
        }
    };
}
use serde_by_region;

mod barrier;
mod event;
mod lock;
mod semaphore;

pub use crate::shm::{LockGuard, LockResult, OwnerDied, TryLockError, TryLockResult};
pub use barrier::{Barrier, BarrierWaitResult};
pub use event::Event;
pub use lock::Lock;
pub use semaphore::{Permit, Semaphore};
