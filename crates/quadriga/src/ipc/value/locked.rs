//! [`Value`] and [`Array`]: plain data in shared memory under a robust lock,
//! and their guards. A dead writer is reported to the next `lock` (see the
//! module docs of `ipc::value`).

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::Ordering;

use bytemuck::Pod;

use super::shared::Shared;
use crate::shm::{Error, Kind};
use crate::shm::{LockGuard, LockResult, OwnerDied};

/// One `T` in shared memory, with its own robust lock: Python's
/// `multiprocessing.Value`, typed. (For a lock-free integer counter, see
/// [`AtomicValue`](super::AtomicValue).)
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
    pub(super) shared: Shared<T>,
}

impl<T: Pod> Value<T> {
    /// A new shared value holding `value`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Os`](crate::ipc::ErrorKind::Os) if the shared memory could not
    /// be made; [`ErrorKind::Invalid`](crate::ipc::ErrorKind::Invalid) for a `T`
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
/// [`AtomicArray`](super::AtomicArray).
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
    pub(super) shared: Shared<T>,
}

impl<T: Pod> Array<T> {
    /// A new shared array of `len` copies of `fill`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Invalid`](crate::ipc::ErrorKind::Invalid) if `len` elements do
    /// not fit in memory; [`ErrorKind::Os`](crate::ipc::ErrorKind::Os) if the shared
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

super::shared_handle!(Value, Value, Pod, single: true);
super::shared_handle!(Array, Array, Pod, single: false);
