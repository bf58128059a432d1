//! `Shared<T>`: what [`Value`](super::Value), [`Array`](super::Array) and
//! their atomic counterparts share: the layout of the body (see the module
//! docs of `ipc::value`), made on create and checked on attach.

use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use bytemuck::Pod;

use super::atomic::{AtomicPlain, private};
use crate::shm::robust::{Acquired, DIED_AT, RawRobustMutex};
use crate::shm::{Error, HEADER, Kind, PARAMS, Region, fingerprint};
use crate::shm::{LockGuard, LockResult};

/// The mapping's alignment that layouts may rely on (the smallest page).
const PAGE: usize = 4096;

/// Where the data of a `T` starts in the body, or `None` for an alignment
/// over a page.
fn data_offset<T>() -> Option<usize> {
    let align = std::mem::align_of::<T>().max(64);
    (align <= PAGE).then(|| (HEADER + DIED_AT + 4).next_multiple_of(align) - HEADER)
}

/// What `Value` and `Array` share: a region with a lock, a `died` word, and
/// `len` elements of `T` at `data_offset::<T>()`.
pub(super) struct Shared<T> {
    pub(super) region: Arc<Region>,
    pub(super) len: usize,
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
    pub(super) fn params(len: usize) -> [u64; PARAMS] {
        let mut p = [0; PARAMS];
        p[0] = len as u64;
        p[1] = std::mem::size_of::<T>() as u64;
        p[2] = std::mem::align_of::<T>() as u64;
        p[3] = data_offset::<T>().unwrap_or(0) as u64;
        p[4] = DIED_AT as u64;
        p
    }

    /// Bytes of body for `len` elements.
    pub(super) fn body_len(len: usize) -> Option<usize> {
        len.checked_mul(std::mem::size_of::<T>())?
            .checked_add(data_offset::<T>()?)
    }

    pub(super) fn too_large(kind: Kind, len: usize) -> Error {
        Error::invalid(format!(
            "a shared {kind:?} of {len} elements of {} bytes (aligned to {}) does not fit",
            std::mem::size_of::<T>(),
            std::mem::align_of::<T>()
        ))
    }

    /// A new region of `len` elements, each `fill(i)`.
    pub(super) fn create(kind: Kind, len: usize, fill: impl Fn(usize) -> T) -> Result<Self, Error> {
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

    pub(super) fn attach(kind: Kind, region: Region) -> Result<Self, Error> {
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

    pub(super) fn mutex(&self) -> &RawRobustMutex {
        // SAFETY: initialised on create; checked on attach (the layout is this
        // build's); lives as long as the region.
        unsafe { &*self.region.body().cast::<RawRobustMutex>() }
    }

    pub(super) fn died(&self) -> &AtomicU32 {
        // SAFETY: `DIED_AT` is inside the body, 4-aligned (the body is
        // 128-aligned), and only ever accessed atomically.
        unsafe { AtomicU32::from_ptr(self.region.body().add(DIED_AT).cast()) }
    }

    /// Element `i`: in bounds of the mapping when `i < len`, and aligned.
    pub(super) fn ptr(&self, i: usize) -> *mut T {
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

    pub(super) fn check(&self, i: usize) {
        assert!(
            i < self.len,
            "index out of bounds: the len is {} but the index is {i}",
            self.len
        );
    }

    /// Takes the lock and reports a dead holder, also one that a convenience
    /// method met and kept in `died`.
    pub(super) fn lock(&self) -> LockResult<LockGuard<'_>> {
        LockGuard::reporting(self.mutex(), &self.region, self.died(), self.mutex().lock())
    }

    /// Takes the lock for a convenience method: a dead holder's report is
    /// kept for the next `lock`.
    pub(super) fn lock_quiet(&self) -> LockGuard<'_> {
        let how = self.mutex().lock();
        let guard = LockGuard::new(self.mutex(), Some(&self.region), Some(self.died()));
        if how == Acquired::OwnerDied {
            self.died().store(1, Ordering::Relaxed);
        }
        guard
    }

    pub(super) fn atomic(&self, i: usize) -> &T::Atomic
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
