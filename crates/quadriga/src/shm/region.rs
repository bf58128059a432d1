//! Shared memory private to the user: an anonymous `memfd`, sealed to its size,
//! mapped shared.
//!
//! * **Private.** A memfd has no name anyone can open: it is reachable only
//!   through a descriptor, which we pass to our own workers over their socket
//!   (`SCM_RIGHTS`, see `task::transfer` and `shm::passing`). Its mode is also set to 0600. Nothing is
//!   created under `/dev/shm`, so nothing is left there after an exit or a
//!   crash: the memory is freed when the last mapping and descriptor go.
//! * **Sealed.** `F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL`: no process can
//!   truncate it under another's mapping (which would turn reads into
//!   `SIGBUS`). [`Region::attach`] refuses a descriptor without those seals.
//! * **Self-describing.** The first [`HEADER`] bytes say what the object is: a
//!   magic number, the layout version, the [`Kind`], a fingerprint of the Rust
//!   type it holds, and up to eight layout parameters (capacity, slot size…).
//!   The attaching side checks all of it against the memfd's real size
//!   ([`check_header`], fuzzed) before using any offset derived from it.
//!
//! Invariant for every object built on a region: the header is read once, at
//! attach time, and everything later reads from shared memory (indices,
//! lengths) is bounded before use, since another process can write anything
//! there.

use std::os::fd::{AsFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::Arc;

use super::error::Error;

/// The bytes before an object's body (two cache lines).
pub(crate) const HEADER: usize = 128;

const MAGIC: u64 = u64::from_le_bytes(*b"QDRGSHM1");
const VERSION: u32 = 1;

/// What a region holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
#[allow(dead_code)] // each variant is used by its object's module
pub(crate) enum Kind {
    Queue = 1,
    Value = 2,
    Array = 3,
    Lock = 4,
    Semaphore = 5,
    Event = 6,
    Barrier = 7,
    Map = 8,
    Pipe = 9,
    AtomicValue = 10,
    AtomicArray = 11,
}

/// Number of layout parameters a header carries.
pub(crate) const PARAMS: usize = 8;

#[repr(C)]
struct Header {
    magic: u64,
    version: u32,
    kind: u32,
    fingerprint: u64,
    body_len: u64,
    params: [u64; PARAMS],
}

const _: () = assert!(std::mem::size_of::<Header>() <= HEADER);

/// A stable fingerprint of `T` within one build: both ends of a channel are
/// the same executable (workers are `/proc/self/exe`), so a mismatch means the
/// object was sent to a task expecting another type.
pub(crate) fn fingerprint<T: ?Sized>() -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325; // FNV-1a
    for b in std::any::type_name::<T>().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Checks a header read from a region of `file_len` bytes: returns its layout
/// parameters and body length, or why it is not a `kind` object for `fp`.
/// Pure, so the fuzzer can drive it with any bytes.
pub(crate) fn check_header(
    bytes: &[u8],
    file_len: u64,
    kind: Kind,
    fp: u64,
) -> Result<([u64; PARAMS], usize), String> {
    if bytes.len() < std::mem::size_of::<Header>() || file_len < HEADER as u64 {
        return Err(format!("a shared object of {file_len} bytes is too small"));
    }
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    if u64_at(0) != MAGIC {
        return Err("not a quadriga shared object".into());
    }
    if u32_at(8) != VERSION {
        return Err(format!(
            "a shared object of layout version {} (this build reads {VERSION})",
            u32_at(8)
        ));
    }
    if u32_at(12) != kind as u32 {
        return Err(format!(
            "a shared object of kind {}, expected {kind:?}",
            u32_at(12)
        ));
    }
    if u64_at(16) != fp {
        return Err(format!(
            "a shared {kind:?} of another item type was sent where this one was expected"
        ));
    }
    let body_len = u64_at(24);
    if Some(body_len) != file_len.checked_sub(HEADER as u64) {
        return Err(format!(
            "a shared object says it has {body_len} bytes but the memory holds {file_len}"
        ));
    }
    let mut params = [0; PARAMS];
    for (i, p) in params.iter_mut().enumerate() {
        *p = u64_at(32 + 8 * i);
    }
    let body_len = usize::try_from(body_len).map_err(|_| "too large".to_string())?;
    Ok((params, body_len))
}

/// Fuzzing entry point: the header check on any bytes and any claimed size
/// (the first 8 bytes) must return, never panic. Not a public API: only for
/// the tests and the fuzz crate (hidden feature `fuzzing`).
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub fn fuzz_header(data: &[u8]) {
    let (len, rest) = data.split_at(data.len().min(8));
    let mut claimed = [0_u8; 8];
    claimed[..len.len()].copy_from_slice(len);
    let file_len = u64::from_le_bytes(claimed);
    for kind in [Kind::Queue, Kind::Value, Kind::Lock, Kind::Map, Kind::Pipe] {
        let _ = check_header(rest, file_len, kind, fingerprint::<u64>());
    }
}

/// A mapped shared-memory object; see the module docs. Clones of an IPC object
/// share one `Arc<Region>`; the mapping goes with the last.
pub(crate) struct Region {
    fd: Arc<OwnedFd>,
    ptr: NonNull<u8>,
    len: usize,
    params: [u64; PARAMS],
}

// SAFETY: the region is plain shared memory; every object built on it
// synchronises its own accesses (atomics, robust mutexes).
unsafe impl Send for Region {}
// SAFETY: as above.
unsafe impl Sync for Region {}

impl std::fmt::Debug for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Region")
            .field("len", &self.len)
            .field("params", &self.params)
            .finish()
    }
}

fn map(fd: &OwnedFd, len: usize) -> std::io::Result<NonNull<u8>> {
    use rustix::mm::{MapFlags, ProtFlags, mmap};
    // SAFETY: a fresh shared mapping of a file we hold; no Rust object aliases
    // it until we hand out pointers into it.
    let ptr = unsafe {
        mmap(
            std::ptr::null_mut(),
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::SHARED,
            fd,
            0,
        )?
    };
    Ok(NonNull::new(ptr.cast()).expect("mmap returned null"))
}

impl Region {
    /// A new zeroed object of `kind` with a `body_len`-byte body.
    pub(crate) fn create(
        kind: Kind,
        fp: u64,
        params: [u64; PARAMS],
        body_len: usize,
    ) -> Result<Self, Error> {
        use rustix::fs::{MemfdFlags, Mode, SealFlags};
        let len = body_len
            .checked_add(HEADER)
            .filter(|&l| l <= isize::MAX as usize)
            .ok_or_else(|| Error::invalid(format!("a shared object of {body_len} bytes")))?;
        let os = |what: &'static str| move |e: rustix::io::Errno| Error::os(what, e.into());
        let fd = rustix::fs::memfd_create(
            c"quadriga-shm",
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )
        .map_err(os("memfd_create"))?;
        rustix::fs::fchmod(&fd, Mode::RUSR | Mode::WUSR).map_err(os("fchmod"))?;
        rustix::fs::ftruncate(&fd, len as u64)
            .map_err(|e| Error::os(&format!("sizing a shared object to {len} bytes"), e.into()))?;
        rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)
            .map_err(os("sealing shared memory"))?;
        let ptr = map(&fd, len).map_err(|e| Error::os("mapping shared memory", e))?;
        let header = Header {
            magic: MAGIC,
            version: VERSION,
            kind: kind as u32,
            fingerprint: fp,
            body_len: body_len as u64,
            params,
        };
        // SAFETY: the mapping is at least HEADER bytes, page-aligned, and not
        // shared with anyone yet.
        unsafe { ptr.cast::<Header>().as_ptr().write(header) };
        Ok(Self {
            fd: Arc::new(fd),
            ptr,
            len,
            params,
        })
    }

    /// Maps an object received from another process, after checking that it is
    /// a `kind` object for items of fingerprint `fp`.
    pub(crate) fn attach(fd: Arc<OwnedFd>, kind: Kind, fp: u64) -> Result<Self, Error> {
        use rustix::fs::SealFlags;
        // Seals first, size second: once sealed against shrinking and growing
        // (and against unsealing), the size read next is the size for good,
        // so the mapping can never reach past the end of the file (SIGBUS).
        let seals = rustix::fs::fcntl_get_seals(fd.as_fd())
            .map_err(|_| Error::invalid("a shared object that is not a sealed memfd"))?;
        if !seals.contains(SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL) {
            return Err(Error::invalid(
                "a shared object that is not sealed to its size",
            ));
        }
        let st = rustix::fs::fstat(fd.as_fd()).map_err(|e| Error::os("fstat", e.into()))?;
        let file_len = st.st_size as u64;
        let len = usize::try_from(file_len)
            .ok()
            .filter(|&l| l >= HEADER && l <= isize::MAX as usize)
            .ok_or_else(|| Error::invalid(format!("a shared object of {file_len} bytes")))?;
        let ptr = map(&fd, len).map_err(|e| Error::os("mapping shared memory", e))?;
        let mut head = [0_u8; std::mem::size_of::<Header>()];
        // SAFETY: the mapping holds at least HEADER bytes; a racing writer can
        // only change values, which `check_header` validates after the copy.
        unsafe { std::ptr::copy_nonoverlapping(ptr.as_ptr(), head.as_mut_ptr(), head.len()) };
        let mut region = Self {
            fd,
            ptr,
            len,
            params: [0; PARAMS],
        };
        let (params, _) = check_header(&head, file_len, kind, fp).map_err(Error::invalid)?;
        region.params = params;
        Ok(region)
    }

    /// The layout parameters given to [`Region::create`], as checked on attach.
    pub(crate) fn params(&self) -> [u64; PARAMS] {
        self.params
    }

    /// The start of the body: `HEADER` bytes in, so 128-byte aligned.
    pub(crate) fn body(&self) -> *mut u8 {
        // SAFETY: the mapping is at least HEADER bytes long.
        unsafe { self.ptr.as_ptr().add(HEADER) }
    }

    /// The body's length in bytes.
    pub(crate) fn body_len(&self) -> usize {
        self.len - HEADER
    }

    /// The descriptor, to send the object to another process.
    #[allow(dead_code)] // tests; objects serialise through `Region::serialize`
    pub(crate) fn fd(&self) -> &Arc<OwnedFd> {
        &self.fd
    }

    /// Serialises the region for a task input (see `task::transfer`).
    pub(crate) fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        crate::task::transfer::serialize_fd(&self.fd, s)
    }

    /// Takes a region from a task input and attaches it as [`Region::attach`].
    pub(crate) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
        kind: Kind,
        fp: u64,
    ) -> Result<Self, D::Error> {
        let fd = crate::task::transfer::deserialize_fd(d)?;
        Self::attach(fd, kind, fp).map_err(serde::de::Error::custom)
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: we mapped exactly `len` bytes at `ptr`, and every reference
        // into the mapping is tied to an `Arc<Region>` that is now gone.
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

#[cfg(all(test, not(quadriga_loom)))]
mod tests {
    use super::*;

    #[test]
    fn create_then_attach_checks_kind_type_and_size() {
        let r = Region::create(
            Kind::Queue,
            fingerprint::<u32>(),
            [7, 0, 0, 0, 0, 0, 0, 0],
            4096,
        )
        .unwrap();
        // SAFETY: the body is 4096 bytes.
        unsafe { r.body().write(42) };
        let again = Region::attach(r.fd().clone(), Kind::Queue, fingerprint::<u32>()).unwrap();
        assert_eq!(again.params()[0], 7);
        assert_eq!(again.body_len(), 4096);
        // SAFETY: as above; the two mappings share the memory.
        assert_eq!(unsafe { again.body().read() }, 42);
        let wrong_kind = Region::attach(r.fd().clone(), Kind::Lock, fingerprint::<u32>());
        assert!(wrong_kind.unwrap_err().to_string().contains("kind"));
        let wrong_type = Region::attach(r.fd().clone(), Kind::Queue, fingerprint::<u64>());
        assert!(wrong_type.unwrap_err().to_string().contains("type"));
    }

    #[test]
    fn memory_is_private_and_sealed() {
        let r = Region::create(Kind::Value, 1, [0; PARAMS], 64).unwrap();
        let st = rustix::fs::fstat(r.fd().as_fd()).unwrap();
        assert_eq!(st.st_mode & 0o777, 0o600);
        assert!(
            rustix::fs::ftruncate(r.fd().as_fd(), 0).is_err(),
            "shrinking must be sealed"
        );
    }

    #[test]
    fn an_unsealed_memfd_is_refused() {
        let fd = rustix::fs::memfd_create(c"x", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        rustix::fs::ftruncate(&fd, 4096).unwrap();
        let err = Region::attach(Arc::new(fd), Kind::Value, 1).unwrap_err();
        assert!(err.to_string().contains("sealed"), "{err}");
    }

    #[test]
    fn a_memfd_whose_seals_can_still_change_is_refused() {
        use rustix::fs::{MemfdFlags, SealFlags};
        let fd = rustix::fs::memfd_create(c"x", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
            .unwrap();
        rustix::fs::ftruncate(&fd, 4096).unwrap();
        // Sealed to its size, but not against more seals (a write seal could
        // still be added under the users' feet): only a memfd sealed the
        // way `Region::create` seals one is accepted.
        rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW).unwrap();
        let err = Region::attach(Arc::new(fd), Kind::Value, 1).unwrap_err();
        assert!(err.to_string().contains("sealed"), "{err}");
    }

    #[test]
    fn header_check_survives_random_bytes() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for n in 0..20_000 {
            let data: Vec<u8> = (0..n % 160)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            fuzz_header(&data);
        }
    }

    #[test]
    fn header_checks_reject_garbage() {
        for len in [0_u64, 5, 127, 128, 1 << 40] {
            assert!(check_header(&[0; 96], len, Kind::Queue, 0).is_err());
        }
        let mut h = vec![0_u8; 96];
        h[..8].copy_from_slice(&MAGIC.to_le_bytes());
        h[8..12].copy_from_slice(&VERSION.to_le_bytes());
        h[12..16].copy_from_slice(&(Kind::Queue as u32).to_le_bytes());
        h[24..32].copy_from_slice(&10_u64.to_le_bytes());
        assert!(check_header(&h, 138, Kind::Queue, 0).is_ok());
        assert!(
            check_header(&h, 139, Kind::Queue, 0).is_err(),
            "body length must match"
        );
    }
}
