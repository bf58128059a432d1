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

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use bytemuck::Pod;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::shm::Error;
use crate::shm::robust::{Acquired, DIED_AT, RawRobustMutex};
use crate::shm::{HEADER, Kind, PARAMS, Region, fingerprint};
use crate::shm::{LockGuard, LockResult, OwnerDied};

/// The mapping's alignment that layouts may rely on (the smallest page).
const PAGE: usize = 4096;

/// Where the data of a `T` starts in the body, or `None` for an alignment
/// over a page.
fn data_offset<T>() -> Option<usize> {
    let align = std::mem::align_of::<T>().max(64);
    (align <= PAGE).then(|| (HEADER + DIED_AT + 4).next_multiple_of(align) - HEADER)
}

mod private {
    pub trait Sealed {}

    /// The operations of a std atomic type on its plain type `T`.
    pub trait AtomicOps<T>: Sync {
        /// # Safety
        /// `p` is valid for `'a`, aligned for `Self`, and accessed only
        /// atomically meanwhile.
        unsafe fn at<'a>(p: *mut T) -> &'a Self;
        fn load(&self) -> T;
        fn store(&self, v: T);
        fn swap(&self, v: T) -> T;
        fn compare_exchange(&self, current: T, new: T) -> Result<T, T>;
        fn fetch_add(&self, v: T) -> T;
        fn fetch_sub(&self, v: T) -> T;
    }
}

/// A primitive integer with a lock-free atomic type of the same size: the
/// element types of [`AtomicValue`] and [`AtomicArray`], `u8` to `u64`, `i8`
/// to `i64`, `usize`, `isize`. Sealed: it cannot be implemented outside
/// Quadriga.
///
/// ```
/// use quadriga::ipc::{AtomicPlain, AtomicValue};
///
/// fn bump<T: AtomicPlain>(v: &AtomicValue<T>, by: T) -> T {
///     v.fetch_add(by)
/// }
/// let hits = AtomicValue::new(0_u64)?;
/// bump(&hits, 2);
/// assert_eq!(hits.load(), 2);
/// # Ok::<(), quadriga::ipc::Error>(())
/// ```
///
/// A lock-guarded [`Value`] has no atomic operations, so the two disciplines
/// cannot meet on one value:
///
/// ```compile_fail,E0599
/// let v = quadriga::ipc::Value::new(1_u64).unwrap();
/// v.fetch_add(1);
/// ```
pub trait AtomicPlain: Pod + private::Sealed {
    /// The `std::sync::atomic` type of the same size (`AtomicU32` for `u32`).
    type Atomic: private::AtomicOps<Self>;
}

macro_rules! atomic_plain {
    ($($t:ty => $a:ident),* $(,)?) => {$(
        impl private::Sealed for $t {}
        impl AtomicPlain for $t {
            type Atomic = std::sync::atomic::$a;
        }
        // The data is 64-byte aligned and elements are `size_of` apart, so
        // every element is aligned for its atomic type if this holds.
        const _: () = assert!(
            std::mem::size_of::<$t>() == std::mem::size_of::<std::sync::atomic::$a>()
                && std::mem::size_of::<$t>() % std::mem::align_of::<std::sync::atomic::$a>() == 0
        );
        impl private::AtomicOps<$t> for std::sync::atomic::$a {
            unsafe fn at<'a>(p: *mut $t) -> &'a Self {
                // SAFETY: the caller's promise.
                unsafe { Self::from_ptr(p) }
            }
            fn load(&self) -> $t {
                self.load(Ordering::SeqCst)
            }
            fn store(&self, v: $t) {
                self.store(v, Ordering::SeqCst)
            }
            fn swap(&self, v: $t) -> $t {
                self.swap(v, Ordering::SeqCst)
            }
            fn compare_exchange(&self, current: $t, new: $t) -> Result<$t, $t> {
                self.compare_exchange(current, new, Ordering::SeqCst, Ordering::SeqCst)
            }
            fn fetch_add(&self, v: $t) -> $t {
                self.fetch_add(v, Ordering::SeqCst)
            }
            fn fetch_sub(&self, v: $t) -> $t {
                self.fetch_sub(v, Ordering::SeqCst)
            }
        }
    )*};
}

atomic_plain! {
    u8 => AtomicU8, u16 => AtomicU16, u32 => AtomicU32, u64 => AtomicU64, usize => AtomicUsize,
    i8 => AtomicI8, i16 => AtomicI16, i32 => AtomicI32, i64 => AtomicI64, isize => AtomicIsize,
}

/// What `Value` and `Array` share: a region with a lock, a `died` word, and
/// `len` elements of `T` at `data_offset::<T>()`.
struct Shared<T> {
    region: Arc<Region>,
    len: usize,
    _t: PhantomData<T>,
}

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Self {
            region: Arc::clone(&self.region),
            len: self.len,
            _t: PhantomData,
        }
    }
}

impl<T: Pod> Shared<T> {
    fn params(len: usize) -> [u64; PARAMS] {
        let mut p = [0; PARAMS];
        p[0] = len as u64;
        p[1] = std::mem::size_of::<T>() as u64;
        p[2] = std::mem::align_of::<T>() as u64;
        p[3] = data_offset::<T>().unwrap_or(0) as u64;
        p[4] = DIED_AT as u64;
        p
    }

    /// Bytes of body for `len` elements.
    fn body_len(len: usize) -> Option<usize> {
        len.checked_mul(std::mem::size_of::<T>())?
            .checked_add(data_offset::<T>()?)
    }

    fn too_large(kind: Kind, len: usize) -> Error {
        Error::invalid(format!(
            "a shared {kind:?} of {len} elements of {} bytes (aligned to {}) does not fit",
            std::mem::size_of::<T>(),
            std::mem::align_of::<T>()
        ))
    }

    /// A new region of `len` elements, each `fill(i)`.
    fn create(kind: Kind, len: usize, fill: impl Fn(usize) -> T) -> Result<Self, Error> {
        let body = Self::body_len(len).ok_or_else(|| Self::too_large(kind, len))?;
        let region = Region::create(kind, fingerprint::<T>(), Self::params(len), body)?;
        // SAFETY: the body starts with room for the mutex, 128-byte aligned,
        // zeroed and not shared yet.
        unsafe { RawRobustMutex::init(region.body().cast()) }
            .map_err(|e| Error::os("initialising a shared value's lock", e))?;
        let this = Self {
            region: Arc::new(region),
            len,
            _t: PhantomData,
        };
        for i in 0..len {
            // SAFETY: `i < len`, and nobody else sees the memory yet.
            unsafe { this.ptr(i).write(fill(i)) };
        }
        Ok(this)
    }

    fn attach(kind: Kind, region: Region) -> Result<Self, Error> {
        let p = region.params();
        let len = usize::try_from(p[0]).map_err(|_| Self::too_large(kind, usize::MAX))?;
        if p != Self::params(len) || data_offset::<T>().is_none() {
            return Err(Error::invalid(format!(
                "a shared {kind:?} of another layout than {}",
                std::any::type_name::<T>()
            )));
        }
        let need = Self::body_len(len).ok_or_else(|| Self::too_large(kind, len))?;
        if region.body_len() < need {
            return Err(Error::invalid(format!(
                "a shared {kind:?} of {len} elements in {} bytes",
                region.body_len()
            )));
        }
        Ok(Self {
            region: Arc::new(region),
            len,
            _t: PhantomData,
        })
    }

    fn mutex(&self) -> &RawRobustMutex {
        // SAFETY: initialised on create; checked on attach (the layout is this
        // build's); lives as long as the region.
        unsafe { &*self.region.body().cast::<RawRobustMutex>() }
    }

    fn died(&self) -> &AtomicU32 {
        // SAFETY: `DIED_AT` is inside the body, 4-aligned (the body is
        // 128-aligned), and only ever accessed atomically.
        unsafe { AtomicU32::from_ptr(self.region.body().add(DIED_AT).cast()) }
    }

    /// Element `i`: in bounds of the mapping when `i < len`, and aligned.
    fn ptr(&self, i: usize) -> *mut T {
        debug_assert!(i < self.len || (i == 0 && self.len == 0));
        let offset = data_offset::<T>().expect("checked on create and attach");
        // SAFETY (of the arithmetic): `offset + len * size_of::<T>()` is
        // within the body (checked on create and attach).
        self.region
            .body()
            .wrapping_add(offset)
            .cast::<T>()
            .wrapping_add(i)
    }

    fn check(&self, i: usize) {
        assert!(
            i < self.len,
            "index out of bounds: the len is {} but the index is {i}",
            self.len
        );
    }

    /// Takes the lock and reports a dead holder, also one that a convenience
    /// method met and kept in `died`.
    fn lock(&self) -> LockResult<LockGuard<'_>> {
        LockGuard::reporting(self.mutex(), &self.region, self.died(), self.mutex().lock())
    }

    /// Takes the lock for a convenience method: a dead holder's report is
    /// kept for the next `lock`.
    fn lock_quiet(&self) -> LockGuard<'_> {
        let how = self.mutex().lock();
        let guard = LockGuard::new(self.mutex(), Some(&self.region), Some(self.died()));
        if how == Acquired::OwnerDied {
            self.died().store(1, Ordering::Relaxed);
        }
        guard
    }

    fn atomic(&self, i: usize) -> &T::Atomic
    where
        T: AtomicPlain,
    {
        self.check(i);
        // SAFETY: in bounds; aligned (64-aligned data, and the const
        // assertion in `atomic_plain!`); lives as long as the region. Only
        // the atomic types call this, and they access their data in no other
        // way (module docs), in any process: the region's kind is checked.
        unsafe { <T::Atomic as private::AtomicOps<T>>::at(self.ptr(i)) }
    }
}

/// One `T` in shared memory, with its own robust lock: Python's
/// `multiprocessing.Value`, typed. (For a lock-free integer counter, see
/// [`AtomicValue`].)
///
/// Clone it for another thread or put it in a task's input to a
/// [`ProcessPool`](crate::ProcessPool) or [`Process`](crate::Process): every
/// clone and copy is the same value.
///
/// ```
/// use quadriga::ipc::Value;
///
/// let counter = Value::new(0_u64)?;
/// let threads: Vec<_> = (0..4)
///     .map(|_| {
///         let c = counter.clone();
///         std::thread::spawn(move || {
///             for _ in 0..1000 {
///                 c.update(|n| *n += 1); // under the value's lock
///             }
///         })
///     })
///     .collect();
/// for t in threads {
///     t.join().unwrap();
/// }
/// assert_eq!(counter.get(), 4000);
/// # Ok::<(), quadriga::ipc::Error>(())
/// ```
///
/// `T` is any plain-data type: a primitive, an array of them, or your own
/// `#[repr(C)]` struct deriving `Pod` through the re-exported
/// [`bytemuck`](crate::ipc::bytemuck) (no extra dependency):
///
/// ```
/// use quadriga::ipc::{Value, bytemuck};
///
/// #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
/// #[bytemuck(crate = "quadriga::ipc::bytemuck")]
/// #[repr(C)]
/// struct Point {
///     x: f64,
///     y: f64,
/// }
///
/// let p = Value::new(Point { x: 1.0, y: 2.0 })?;
/// p.lock().unwrap().x = 5.0;
/// assert_eq!(p.get(), Point { x: 5.0, y: 2.0 });
/// # Ok::<(), quadriga::ipc::Error>(())
/// ```
///
/// Data with pointers inside cannot be shared this way (an address means
/// nothing in another process):
///
/// ```compile_fail,E0277
/// let name = quadriga::ipc::Value::new(String::from("no"));
/// ```
///
/// ```compile_fail,E0277
/// static X: u32 = 1;
/// let r = quadriga::ipc::Value::new(&X);
/// ```
///
/// Its guard is not `Send` (the lock belongs to the thread that took it):
///
/// ```compile_fail,E0277
/// fn needs_send<T: Send>(_: T) {}
/// let v = quadriga::ipc::Value::new(1_u32).unwrap();
/// needs_send(v.lock().unwrap());
/// ```
pub struct Value<T> {
    shared: Shared<T>,
}

impl<T: Pod> Value<T> {
    /// A new shared value holding `value`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Os`](super::ErrorKind::Os) if the shared memory could not
    /// be made; [`ErrorKind::Invalid`](super::ErrorKind::Invalid) for a `T`
    /// aligned to more than a page.
    ///
    /// ```
    /// let v = quadriga::ipc::Value::new([0_u8; 16])?;
    /// assert_eq!(v.get(), [0; 16]);
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn new(value: T) -> Result<Self, Error> {
        Ok(Self {
            shared: Shared::create(Kind::Value, 1, |_| value)?,
        })
    }

    /// A copy of the value, read under its lock.
    ///
    /// A dead previous holder is not reported here; the next
    /// [`lock`](Value::lock) reports it.
    ///
    /// ```
    /// let v = quadriga::ipc::Value::new(7_i32)?;
    /// assert_eq!(v.get(), 7);
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn get(&self) -> T {
        let _held = self.shared.lock_quiet();
        // SAFETY: element 0 exists; we hold the lock.
        unsafe { self.shared.ptr(0).read() }
    }

    /// Replaces the value, under its lock. Writing the whole value repairs
    /// what a dead holder may have left, so a pending dead-holder report is
    /// dropped.
    ///
    /// ```
    /// let v = quadriga::ipc::Value::new(7_i32)?;
    /// v.set(8);
    /// assert_eq!(v.get(), 8);
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn set(&self, value: T) {
        // Whether its holder died does not matter: we overwrite all of it.
        let _ = self.shared.mutex().lock();
        let guard = LockGuard::new(
            self.shared.mutex(),
            Some(&self.shared.region),
            Some(self.shared.died()),
        );
        self.shared.died().store(0, Ordering::Relaxed);
        // SAFETY: element 0 exists; we hold the lock.
        unsafe { self.shared.ptr(0).write(value) };
        drop(guard);
    }

    /// Runs `f` on the value under its lock, and returns what `f` returns:
    /// `with lock: counter.value += 1` in one call.
    ///
    /// A dead previous holder is not reported here; the next
    /// [`lock`](Value::lock) reports it.
    ///
    /// ```
    /// let v = quadriga::ipc::Value::new(1_u32)?;
    /// let old = v.update(|n| std::mem::replace(n, *n * 10));
    /// assert_eq!((old, v.get()), (1, 10));
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn update<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let _held = self.shared.lock_quiet();
        // SAFETY: element 0 exists; we hold the lock, so this is the only
        // reference (no atomic access exists for a `Value`: module docs).
        f(unsafe { &mut *self.shared.ptr(0) })
    }

    /// Takes the value's lock and returns a guard that derefs to the value.
    ///
    /// # Errors
    ///
    /// [`OwnerDied`] (carrying the guard) if a previous holder died holding
    /// the lock, possibly halfway through an update. The lock is held either
    /// way.
    ///
    /// ```
    /// let v = quadriga::ipc::Value::new(1_u32)?;
    /// {
    ///     let mut n = v.lock().unwrap();
    ///     *n += 1;
    /// }
    /// assert_eq!(v.get(), 2);
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn lock(&self) -> LockResult<ValueGuard<'_, T>> {
        let data = self.shared.ptr(0);
        let wrap = |lock| ValueGuard {
            _lock: lock,
            data,
            _t: PhantomData,
        };
        self.shared
            .lock()
            .map(wrap)
            .map_err(|died| OwnerDied::new(wrap(died.into_inner())))
    }
}

/// The held lock of a [`Value`]; derefs to the value. Unlocks when dropped, on
/// the thread that locked (it is not `Send`).
///
/// ```
/// let v = quadriga::ipc::Value::new([1_u32, 2])?;
/// let mut pair = v.lock().unwrap();
/// pair[0] += pair[1];
/// drop(pair);
/// assert_eq!(v.get(), [3, 2]);
/// # Ok::<(), quadriga::ipc::Error>(())
/// ```
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ValueGuard<'a, T> {
    _lock: LockGuard<'a>,
    data: *mut T,
    _t: PhantomData<&'a mut T>,
}

impl<T> Deref for ValueGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the value's memory, valid while the region lives (the guard
        // borrows the `Value`), and ours alone while the lock is held.
        unsafe { &*self.data }
    }
}

impl<T> DerefMut for ValueGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference.
        unsafe { &mut *self.data }
    }
}

impl<T: fmt::Debug> fmt::Debug for ValueGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ValueGuard").field(&**self).finish()
    }
}

/// A fixed-length array of `T` in shared memory, with one robust lock for the
/// whole: Python's `multiprocessing.Array`, typed.
///
/// Indices out of range **panic**, as slice indexing does. Every accessor
/// takes the lock; for lock-free per-element counters of integers, use
/// [`AtomicArray`].
///
/// ```
/// use quadriga::ipc::Array;
///
/// let pixels = Array::new(4, [0_u8; 3])?;
/// let threads: Vec<_> = (0..4)
///     .map(|t| {
///         let p = pixels.clone();
///         std::thread::spawn(move || p.set(t, [t as u8; 3]))
///     })
///     .collect();
/// for t in threads {
///     t.join().unwrap();
/// }
/// assert_eq!(pixels.get(3), [3, 3, 3]);
/// # Ok::<(), quadriga::ipc::Error>(())
/// ```
///
/// Its guard derefs to `[T]` and is not `Send`:
///
/// ```compile_fail,E0277
/// fn needs_send<T: Send>(_: T) {}
/// let a = quadriga::ipc::Array::new(3, 0_u8).unwrap();
/// needs_send(a.lock().unwrap());
/// ```
pub struct Array<T> {
    shared: Shared<T>,
}

impl<T: Pod> Array<T> {
    /// A new shared array of `len` copies of `fill`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Invalid`](super::ErrorKind::Invalid) if `len` elements do
    /// not fit in memory; [`ErrorKind::Os`](super::ErrorKind::Os) if the shared
    /// memory could not be made.
    ///
    /// ```
    /// use quadriga::ipc::{Array, ErrorKind};
    ///
    /// let a = Array::new(3, 1.5_f32)?;
    /// assert_eq!(a.to_vec(), [1.5; 3]);
    /// assert_eq!(Array::new(usize::MAX, 0_u64).unwrap_err().kind(), ErrorKind::Invalid);
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn new(len: usize, fill: T) -> Result<Self, Error> {
        Ok(Self {
            shared: Shared::create(Kind::Array, len, |_| fill)?,
        })
    }

    /// A new shared array holding a copy of `items`.
    ///
    /// # Errors
    ///
    /// As [`Array::new`].
    ///
    /// ```
    /// let a = quadriga::ipc::Array::from_slice(&[1_i16, 2, 3])?;
    /// assert_eq!(a.get(2), 3);
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn from_slice(items: &[T]) -> Result<Self, Error> {
        Ok(Self {
            shared: Shared::create(Kind::Array, items.len(), |i| items[i])?,
        })
    }

    /// The number of elements.
    ///
    /// ```
    /// let a = quadriga::ipc::Array::new(5, 0_u8)?;
    /// assert_eq!(a.len(), 5);
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.shared.len
    }

    /// Whether it has no elements.
    ///
    /// ```
    /// let a = quadriga::ipc::Array::<u8>::from_slice(&[])?;
    /// assert!(a.is_empty());
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.shared.len == 0
    }

    /// A copy of element `index`, read under the lock.
    ///
    /// # Panics
    ///
    /// If `index >= len()`.
    ///
    /// ```
    /// let a = quadriga::ipc::Array::from_slice(&[4_u8, 5])?;
    /// assert_eq!(a.get(1), 5);
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn get(&self, index: usize) -> T {
        self.shared.check(index);
        let _held = self.shared.lock_quiet();
        // SAFETY: in bounds; we hold the lock.
        unsafe { self.shared.ptr(index).read() }
    }

    /// Replaces element `index`, under the lock.
    ///
    /// # Panics
    ///
    /// If `index >= len()`.
    ///
    /// ```
    /// let a = quadriga::ipc::Array::from_slice(&[4_u8, 5])?;
    /// a.set(0, 9);
    /// assert_eq!(a.to_vec(), [9, 5]);
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn set(&self, index: usize, value: T) {
        self.shared.check(index);
        let _held = self.shared.lock_quiet();
        // SAFETY: in bounds; we hold the lock.
        unsafe { self.shared.ptr(index).write(value) };
    }

    /// A copy of every element, read under the lock.
    ///
    /// ```
    /// let a = quadriga::ipc::Array::new(2, 7_u32)?;
    /// assert_eq!(a.to_vec(), vec![7, 7]);
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn to_vec(&self) -> Vec<T> {
        let held = self.shared.lock_quiet();
        let v = self.slice().to_vec();
        drop(held);
        v
    }

    /// The elements, for a caller holding the lock.
    fn slice(&self) -> &[T] {
        // SAFETY: `len` elements from an aligned pointer inside the body (or
        // a dangling aligned one for none); the caller holds the lock.
        unsafe { std::slice::from_raw_parts(self.shared.ptr(0), self.shared.len) }
    }

    /// Takes the array's lock and returns a guard that derefs to `[T]`.
    ///
    /// # Errors
    ///
    /// [`OwnerDied`] (carrying the guard) if a previous holder died holding
    /// the lock. The lock is held either way.
    ///
    /// ```
    /// let a = quadriga::ipc::Array::new(3, 0_u32)?;
    /// {
    ///     let mut items = a.lock().unwrap();
    ///     items.copy_from_slice(&[1, 2, 3]);
    ///     items.reverse();
    /// }
    /// assert_eq!(a.to_vec(), [3, 2, 1]);
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn lock(&self) -> LockResult<ArrayGuard<'_, T>> {
        let data = self.shared.ptr(0);
        let len = self.shared.len;
        let wrap = |lock| ArrayGuard {
            _lock: lock,
            data,
            len,
            _t: PhantomData,
        };
        self.shared
            .lock()
            .map(wrap)
            .map_err(|died| OwnerDied::new(wrap(died.into_inner())))
    }
}

/// The held lock of an [`Array`]; derefs to `[T]`. Unlocks when dropped, on
/// the thread that locked (it is not `Send`).
///
/// ```
/// let a = quadriga::ipc::Array::from_slice(&[3_u8, 1, 2])?;
/// a.lock().unwrap().sort();
/// assert_eq!(a.to_vec(), [1, 2, 3]);
/// # Ok::<(), quadriga::ipc::Error>(())
/// ```
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ArrayGuard<'a, T> {
    _lock: LockGuard<'a>,
    data: *mut T,
    len: usize,
    _t: PhantomData<&'a mut [T]>,
}

impl<T> Deref for ArrayGuard<'_, T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        // SAFETY: `len` elements of the array's memory (aligned, in bounds),
        // valid while the region lives (the guard borrows the `Array`), and
        // ours alone while the lock is held.
        unsafe { std::slice::from_raw_parts(self.data, self.len) }
    }
}

impl<T> DerefMut for ArrayGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.data, self.len) }
    }
}

impl<T: fmt::Debug> fmt::Debug for ArrayGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ArrayGuard").field(&&**self).finish()
    }
}

/// One primitive integer in shared memory, operated on atomically: a
/// lock-free counter or flag shared between threads and processes.
///
/// Where [`Value`] guards any plain `T` with a lock, this is for the integer
/// types ([`AtomicPlain`]), and every access is one atomic instruction
/// (`SeqCst`): nothing to lock, nothing a dead process can leave half-done.
/// The two are separate types so that a lock's `&mut T` and an atomic
/// operation can never touch the same memory at once (which would be a data
/// race, undefined behaviour).
///
/// ```
/// use quadriga::ipc::AtomicValue;
///
/// let hits = AtomicValue::new(0_u64)?;
/// let threads: Vec<_> = (0..4)
///     .map(|_| {
///         let h = hits.clone();
///         std::thread::spawn(move || {
///             for _ in 0..1000 {
///                 h.fetch_add(1);
///             }
///         })
///     })
///     .collect();
/// for t in threads {
///     t.join().unwrap();
/// }
/// assert_eq!(hits.load(), 4000);
/// # Ok::<(), quadriga::ipc::Error>(())
/// ```
///
/// A float or a struct has no atomic operations (use [`Value`] and its lock):
///
/// ```compile_fail,E0277
/// let v = quadriga::ipc::AtomicValue::new(1.5_f64).unwrap();
/// ```
pub struct AtomicValue<T> {
    shared: Shared<T>,
}

/// A fixed-length array of primitive integers in shared memory, each element
/// operated on atomically: per-slot counters, a histogram, flags.
///
/// The lock-free counterpart of [`Array`], for the [`AtomicPlain`] types (see
/// [`AtomicValue`] on why the two are separate). Indices out of range
/// **panic**, as slice indexing does.
///
/// ```
/// use quadriga::ipc::AtomicArray;
///
/// let hist = AtomicArray::new(4, 0_u64)?;
/// let threads: Vec<_> = (0..4)
///     .map(|t| {
///         let h = hist.clone();
///         std::thread::spawn(move || {
///             for i in 0..100 {
///                 h.fetch_add((i + t) % 4, 1);
///             }
///         })
///     })
///     .collect();
/// for t in threads {
///     t.join().unwrap();
/// }
/// assert_eq!(hist.to_vec(), [100, 100, 100, 100]);
/// # Ok::<(), quadriga::ipc::Error>(())
/// ```
pub struct AtomicArray<T> {
    shared: Shared<T>,
}

macro_rules! shared_handle {
    ($name:ident, $kind:ident, $bound:path, single: $single:literal) => {
        impl<T> Clone for $name<T> {
            fn clone(&self) -> Self {
                Self {
                    shared: self.shared.clone(),
                }
            }
        }

        impl<T: $bound> fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("type", &std::any::type_name::<T>())
                    .field("len", &self.shared.len)
                    .finish_non_exhaustive()
            }
        }

        impl<T: $bound> Serialize for $name<T> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.shared.region.serialize(s)
            }
        }

        impl<'de, T: $bound> Deserialize<'de> for $name<T> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let region = Region::deserialize(d, Kind::$kind, fingerprint::<T>())?;
                let shared =
                    Shared::attach(Kind::$kind, region).map_err(serde::de::Error::custom)?;
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

shared_handle!(Value, Value, Pod, single: true);
shared_handle!(Array, Array, Pod, single: false);
shared_handle!(AtomicValue, AtomicValue, AtomicPlain, single: true);
shared_handle!(AtomicArray, AtomicArray, AtomicPlain, single: false);

impl<T: AtomicPlain> AtomicValue<T> {
    /// A new shared atomic holding `value`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Os`](super::ErrorKind::Os) if the shared memory could not
    /// be made.
    ///
    /// ```
    /// let hits = quadriga::ipc::AtomicValue::new(0_u64)?;
    /// assert_eq!(hits.load(), 0);
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn new(value: T) -> Result<Self, Error> {
        Ok(Self {
            shared: Shared::create(Kind::AtomicValue, 1, |_| value)?,
        })
    }

    fn word(&self) -> &T::Atomic {
        self.shared.atomic(0)
    }

    /// Reads the value atomically.
    ///
    /// ```
    /// let v = quadriga::ipc::AtomicValue::new(5_u16)?;
    /// assert_eq!(v.load(), 5);
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn load(&self) -> T {
        private::AtomicOps::load(self.word())
    }

    /// Writes the value atomically.
    ///
    /// ```
    /// let v = quadriga::ipc::AtomicValue::new(5_u16)?;
    /// v.store(6);
    /// assert_eq!(v.load(), 6);
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn store(&self, value: T) {
        private::AtomicOps::store(self.word(), value);
    }

    /// Replaces the value atomically and returns the old one.
    ///
    /// ```
    /// let v = quadriga::ipc::AtomicValue::new(5_i64)?;
    /// assert_eq!(v.swap(9), 5);
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn swap(&self, value: T) -> T {
        private::AtomicOps::swap(self.word(), value)
    }

    /// Stores `new` if the value is `current`, atomically. Returns the previous
    /// value: `Ok` if it was `current` (and was replaced), `Err` otherwise.
    ///
    /// ```
    /// let v = quadriga::ipc::AtomicValue::new(5_u8)?;
    /// assert_eq!(v.compare_exchange(5, 6), Ok(5));
    /// assert_eq!(v.compare_exchange(5, 7), Err(6));
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn compare_exchange(&self, current: T, new: T) -> Result<T, T> {
        private::AtomicOps::compare_exchange(self.word(), current, new)
    }

    /// Adds to the value atomically (wrapping on overflow); returns the old
    /// value.
    ///
    /// ```
    /// let v = quadriga::ipc::AtomicValue::new(5_u32)?;
    /// assert_eq!(v.fetch_add(2), 5);
    /// assert_eq!(v.load(), 7);
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn fetch_add(&self, value: T) -> T {
        private::AtomicOps::fetch_add(self.word(), value)
    }

    /// Subtracts from the value atomically (wrapping on overflow); returns
    /// the old value.
    ///
    /// ```
    /// let v = quadriga::ipc::AtomicValue::new(5_i32)?;
    /// assert_eq!(v.fetch_sub(7), 5);
    /// assert_eq!(v.load(), -2);
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn fetch_sub(&self, value: T) -> T {
        private::AtomicOps::fetch_sub(self.word(), value)
    }
}

impl<T: AtomicPlain> AtomicArray<T> {
    /// A new shared array of `len` copies of `fill`.
    ///
    /// # Errors
    ///
    /// As [`Array::new`].
    ///
    /// ```
    /// let a = quadriga::ipc::AtomicArray::new(3, 0_u32)?;
    /// assert_eq!(a.to_vec(), [0; 3]);
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn new(len: usize, fill: T) -> Result<Self, Error> {
        Ok(Self {
            shared: Shared::create(Kind::AtomicArray, len, |_| fill)?,
        })
    }

    /// A new shared array holding a copy of `items`.
    ///
    /// # Errors
    ///
    /// As [`Array::new`].
    ///
    /// ```
    /// let a = quadriga::ipc::AtomicArray::from_slice(&[1_i16, 2, 3])?;
    /// assert_eq!(a.load(2), 3);
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn from_slice(items: &[T]) -> Result<Self, Error> {
        Ok(Self {
            shared: Shared::create(Kind::AtomicArray, items.len(), |i| items[i])?,
        })
    }

    /// The number of elements.
    ///
    /// ```
    /// let a = quadriga::ipc::AtomicArray::new(5, 0_u8)?;
    /// assert_eq!(a.len(), 5);
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.shared.len
    }

    /// Whether it has no elements.
    ///
    /// ```
    /// let a = quadriga::ipc::AtomicArray::<u8>::from_slice(&[])?;
    /// assert!(a.is_empty());
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.shared.len == 0
    }

    /// Every element, each read atomically (not one snapshot of the whole:
    /// other processes may change elements while it reads).
    ///
    /// ```
    /// let a = quadriga::ipc::AtomicArray::new(2, 7_u32)?;
    /// a.fetch_add(1, 1);
    /// assert_eq!(a.to_vec(), vec![7, 8]);
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn to_vec(&self) -> Vec<T> {
        (0..self.shared.len).map(|i| self.load(i)).collect()
    }

    /// Reads element `index` atomically.
    ///
    /// # Panics
    ///
    /// If `index >= len()` (as every per-index method).
    ///
    /// ```
    /// let a = quadriga::ipc::AtomicArray::from_slice(&[1_u64, 2])?;
    /// assert_eq!(a.load(1), 2);
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn load(&self, index: usize) -> T {
        private::AtomicOps::load(self.shared.atomic(index))
    }

    /// Writes element `index` atomically.
    ///
    /// ```
    /// let a = quadriga::ipc::AtomicArray::new(2, 0_u64)?;
    /// a.store(0, 3);
    /// assert_eq!(a.load(0), 3);
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn store(&self, index: usize, value: T) {
        private::AtomicOps::store(self.shared.atomic(index), value);
    }

    /// Replaces element `index` atomically; returns the old value.
    ///
    /// ```
    /// let a = quadriga::ipc::AtomicArray::new(2, 0_u64)?;
    /// assert_eq!(a.swap(1, 3), 0);
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn swap(&self, index: usize, value: T) -> T {
        private::AtomicOps::swap(self.shared.atomic(index), value)
    }

    /// Stores `new` in element `index` if it is `current`, atomically; `Ok`
    /// with the previous value if it was, `Err` with the actual value if not.
    ///
    /// ```
    /// let a = quadriga::ipc::AtomicArray::new(2, 0_i8)?;
    /// assert_eq!(a.compare_exchange(0, 0, -1), Ok(0));
    /// assert_eq!(a.compare_exchange(0, 0, -2), Err(-1));
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn compare_exchange(&self, index: usize, current: T, new: T) -> Result<T, T> {
        private::AtomicOps::compare_exchange(self.shared.atomic(index), current, new)
    }

    /// Adds to element `index` atomically (wrapping); returns the old value.
    ///
    /// ```
    /// let a = quadriga::ipc::AtomicArray::new(2, 0_usize)?;
    /// a.fetch_add(1, 5);
    /// assert_eq!(a.to_vec(), [0, 5]);
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn fetch_add(&self, index: usize, value: T) -> T {
        private::AtomicOps::fetch_add(self.shared.atomic(index), value)
    }

    /// Subtracts from element `index` atomically (wrapping); returns the old
    /// value.
    ///
    /// ```
    /// let a = quadriga::ipc::AtomicArray::new(1, 5_isize)?;
    /// assert_eq!(a.fetch_sub(0, 6), 5);
    /// assert_eq!(a.load(0), -1);
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn fetch_sub(&self, index: usize, value: T) -> T {
        private::AtomicOps::fetch_sub(self.shared.atomic(index), value)
    }
}

#[cfg(all(test, not(quadriga_loom)))]
mod tests {
    use super::*;
    use crate::shm::TryLockError;

    #[test]
    fn layout_is_aligned_for_any_plain_type() {
        #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
        #[repr(C, align(256))]
        struct Wide([u8; 256]);
        let w = Value::new(Wide([7; 256])).unwrap();
        assert_eq!(w.shared.ptr(0) as usize % 256, 0);
        assert_eq!(w.get().0[255], 7);
        let a = Array::new(3, 1_u64).unwrap();
        assert_eq!(a.shared.ptr(0) as usize % 64, 0);
        let z = Array::new(1000, ()).unwrap();
        assert_eq!(z.to_vec().len(), 1000);
    }

    #[test]
    fn a_dead_holder_is_kept_for_lock_by_get_and_dropped_by_set() {
        let v = Value::new(1_u32).unwrap();
        let die = |v: &Value<u32>| {
            let v = v.clone();
            std::thread::spawn(move || std::mem::forget(v.lock().unwrap()))
                .join()
                .unwrap();
        };
        die(&v);
        assert_eq!(v.get(), 1, "get works, quietly");
        assert!(v.lock().is_err(), "the next lock is told");
        assert!(v.lock().is_ok(), "once");
        die(&v);
        v.set(2);
        assert!(v.lock().is_ok(), "a whole-value set repairs");
        let a = Array::new(2, 0_i32).unwrap();
        let a2 = a.clone();
        std::thread::spawn(move || std::mem::forget(a2.lock()))
            .join()
            .unwrap();
        a.set(1, 5);
        let err = a.lock().unwrap_err();
        assert_eq!(**err.get_ref(), [0, 5]);
        let _ = TryLockError::from(err);
    }

    #[test]
    fn received_layouts_are_checked() {
        let a = Array::new(4, 0_u32).unwrap();
        // The same bytes read as another element type: refused by type.
        let r = Region::attach(
            a.shared.region.fd().clone(),
            Kind::Array,
            fingerprint::<u32>(),
        )
        .unwrap();
        assert!(Shared::<u32>::attach(Kind::Array, r).is_ok());
        let r = Region::attach(
            a.shared.region.fd().clone(),
            Kind::Array,
            fingerprint::<u32>(),
        )
        .unwrap();
        assert!(
            Shared::<u64>::attach(Kind::Array, r).is_err(),
            "size differs"
        );
        // A length that does not fit the memory.
        let mut p = Shared::<u32>::params(1 << 40);
        p[0] = u64::MAX;
        let r = Region::create(Kind::Array, fingerprint::<u32>(), p, 256).unwrap();
        let err = Shared::<u32>::attach(Kind::Array, r).err().unwrap();
        assert_eq!(err.kind(), super::super::ErrorKind::Invalid);
        let r = Region::create(
            Kind::Array,
            fingerprint::<u32>(),
            Shared::<u32>::params(1000),
            256,
        )
        .unwrap();
        assert!(Shared::<u32>::attach(Kind::Array, r).is_err(), "too short");
    }

    #[test]
    fn an_atomic_is_never_attached_as_a_locked_value_or_the_reverse() {
        let atomic = AtomicValue::new(1_u64).unwrap();
        let as_value = Region::attach(
            atomic.shared.region.fd().clone(),
            Kind::Value,
            fingerprint::<u64>(),
        );
        assert!(as_value.unwrap_err().to_string().contains("kind"));
        let locked = Array::new(2, 1_u64).unwrap();
        let as_atomic = Region::attach(
            locked.shared.region.fd().clone(),
            Kind::AtomicArray,
            fingerprint::<u64>(),
        );
        assert!(as_atomic.unwrap_err().to_string().contains("kind"));
    }

    #[test]
    fn atomics_count_exactly_across_threads() {
        let v = AtomicValue::new(0_i64).unwrap();
        let a = AtomicArray::new(3, 0_u16).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (v, a) = (v.clone(), a.clone());
                std::thread::spawn(move || {
                    for i in 0..3000 {
                        v.fetch_sub(1);
                        a.fetch_add(i % 3, 1);
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(v.load(), -12_000);
        assert_eq!(a.to_vec(), [4000, 4000, 4000]);
        assert_eq!(v.swap(5), -12_000);
        assert_eq!(v.compare_exchange(5, 6), Ok(5));
        a.store(1, 9);
        assert_eq!(a.compare_exchange(1, 8, 1), Err(9));
        assert_eq!((a.len(), a.is_empty()), (3, false));
    }

    #[test]
    #[should_panic(expected = "index out of bounds: the len is 2 but the index is 2")]
    fn out_of_range_panics_like_a_slice() {
        AtomicArray::new(2, 0_u8).unwrap().fetch_add(2, 1);
    }
}
