//! [`Value`] and [`Array`]: plain data in shared memory, like Python's
//! `multiprocessing.Value` and `Array`; [`AtomicValue`] and [`AtomicArray`]:
//! their lock-free counterparts for the primitive integers.
//!
//! # Design
//!
//! Only plain data crosses: `T: bytemuck::Pod` (no pointers, no padding, every
//! bit pattern valid), so whatever another process, or a dead writer, left in
//! the memory is a valid `T`. A `String`, a `Vec` or a reference does not
//! compile.
//!
//! Layout of the body (the same for all four types; each has its own kind in
//! the header, so one is never attached as another):
//!
//! ```text
//! mutex   RawRobustMutex: the value's own lock (`lock`, `get`, `set`, ...)
//! died    u32: a dead holder's report kept for the next `lock` (see below)
//! data    T, or `len` T's; at an offset aligned to max(align_of::<T>(), 64)
//!         from the page-aligned mapping, so the same in every process
//! ```
//!
//! **Lock, not seqlock.** `get` and `set` take the lock, as guards do. A
//! seqlock would make reads lock-free, but its readers copy data while a
//! writer may be changing it (a data race, which Rust leaves undefined) and a
//! writer that dies mid-write leaves the sequence odd, so readers would need
//! the lock to repair it anyway. The robust lock costs tens of nanoseconds
//! when uncontended, and a dead writer is reported.
//!
//! **Dead writers.** [`Value::lock`] reports a holder that died (the
//! [`OwnerDied`] error carries the guard), and one whose thread panicked while
//! holding the lock (an `update` whose closure panicked, a guard dropped while
//! unwinding), as `std`'s `Mutex` poisons: either may have left the value
//! half-updated. The conveniences `get`, `set`, `update`, `to_vec` return
//! plain values: when *they* take the lock from a dead holder, they store the
//! news in `died`, and the next `lock` reports it (once). A whole-value
//! [`Value::set`] repairs the value, so it clears the news instead.
//!
//! **Atomics are separate types.** For the primitive integers
//! ([`AtomicPlain`]), [`AtomicValue`] and [`AtomicArray`] offer `load`,
//! `store`, `swap`, `compare_exchange`, `fetch_add`, `fetch_sub` on the shared
//! word directly, lock-free and `SeqCst`, and nothing else: no lock, no guard.
//! Had one type offered both, a guard's `&mut T` (or a locked copy) and an
//! atomic operation from another thread could touch the same memory at once,
//! a data race and so undefined behaviour reachable from safe code. Their
//! mutex stays in the layout, unused, so all four share one layout and one
//! set of checks.
//!
//! The atomics are `std`'s, not the `crate::loom` shim's: they stand for
//! the user's own `T` in shared memory and must have exactly its layout
//! (checked at compile time); there is no protocol of ours in them to model.
//!
//! Everything taken from a received region is checked before use: the element
//! size, alignment and offset must be this build's, and `len` elements must
//! fit in the memory (checked arithmetic).
//!
//! * `shared.rs`: the layout all four share (`Shared<T>`: a region with a
//!   lock, a `died` word and `len` elements), checked on attach;
//! * `locked.rs`: [`Value`] and [`Array`], each access under the lock, and
//!   their guards;
//! * `atomic.rs`: [`AtomicPlain`], [`AtomicValue`] and [`AtomicArray`], each
//!   access one atomic instruction, never a lock.

/// `Clone`, `Debug` and serde for a handle on a `Shared<T>` (the four types
/// travel alike: as their region, re-attached and checked on arrival).
macro_rules! shared_handle {
    ($name:ident, $kind:ident, $bound:path, single: $single:literal) => {
        impl<T> Clone for $name<T> {
            fn clone(&self) -> Self {
                Self {
                    shared: self.shared.clone(),
                }
            }
        }

        impl<T: $bound> std::fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("type", &std::any::type_name::<T>())
                    .field("len", &self.shared.len)
                    .finish_non_exhaustive()
            }
        }

        impl<T: $bound> serde::Serialize for $name<T> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.shared.region.serialize(s)
            }
        }

        impl<'de, T: $bound> serde::Deserialize<'de> for $name<T> {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let region = crate::shm::Region::deserialize(
                    d,
                    crate::shm::Kind::$kind,
                    crate::shm::fingerprint::<T>(),
                )?;
                let shared = super::shared::Shared::attach(crate::shm::Kind::$kind, region)
                    .map_err(serde::de::Error::custom)?;
                if $single && shared.len != 1 {
                    return Err(serde::de::Error::custom(concat!(
                        "a shared ",
                        stringify!($name),
                        " whose layout says it holds several elements"
                    )));
                }
                Ok(Self { shared })
            }
        }
    };
}
use shared_handle;

mod atomic;
mod locked;
mod shared;
#[cfg(all(test, not(quadriga_loom)))]
mod tests;

pub use atomic::{AtomicArray, AtomicPlain, AtomicValue};
pub use locked::{Array, ArrayGuard, Value, ValueGuard};
