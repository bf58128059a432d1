//! [`AtomicValue`] and [`AtomicArray`]: primitive integers in shared memory,
//! each access one `SeqCst` atomic instruction, never a lock; and
//! [`AtomicPlain`], the sealed trait of their element types.

use std::sync::atomic::Ordering;

use bytemuck::Pod;

use super::shared::Shared;
use crate::shm::{Error, Kind};

#[allow(
    unnameable_types,
    reason = "sealed: AtomicPlain's supertraits are not to be named outside the crate"
)]
pub(super) mod private {
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
/// A lock-guarded [`Value`](super::Value) has no atomic operations, so the two disciplines
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

/// One primitive integer in shared memory, operated on atomically: a
/// lock-free counter or flag shared between threads and processes.
///
/// Where [`Value`](super::Value) guards any plain `T` with a lock, this is for the integer
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
/// A float or a struct has no atomic operations (use [`Value`](super::Value) and its lock):
///
/// ```compile_fail,E0277
/// let v = quadriga::ipc::AtomicValue::new(1.5_f64).unwrap();
/// ```
pub struct AtomicValue<T> {
    pub(super) shared: Shared<T>,
}

/// A fixed-length array of primitive integers in shared memory, each element
/// operated on atomically: per-slot counters, a histogram, flags.
///
/// The lock-free counterpart of [`Array`](super::Array), for the [`AtomicPlain`] types (see
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
    pub(super) shared: Shared<T>,
}

super::shared_handle!(AtomicValue, AtomicValue, AtomicPlain, single: true);
super::shared_handle!(AtomicArray, AtomicArray, AtomicPlain, single: false);

impl<T: AtomicPlain> AtomicValue<T> {
    /// A new shared atomic holding `value`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Os`](crate::ipc::ErrorKind::Os) if the shared memory could not
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
    /// As [`Array::new`](super::Array::new).
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
    /// As [`Array::new`](super::Array::new).
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
