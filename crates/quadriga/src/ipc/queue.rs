//! [`Queue`]: a bounded MPMC queue between threads and processes, in one
//! region of shared memory, that survives its users being killed.
//!
//! Items are encoded with postcard *before* anything shared is touched (so an
//! item too large for a slot, or one that cannot be encoded, changes nothing),
//! then copied into a ring of fixed-size slots under the producers' robust
//! lock and committed by one store of the ring's `tail`; a getter copies an
//! item out under the consumers' lock and commits by one store of `head`. A
//! process killed at any instant therefore leaves every item either committed
//! whole or absent, and taken or not: nothing half-written is ever read, and
//! the next taker of a dead holder's lock has nothing to repair. Waiting is
//! a short spin, then a futex sleep that costs the other side no system call
//! unless someone actually sleeps. The protocol, its invariants and memory
//! orderings are written down in `ring.rs`; loom checks them.

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::ring::{Layout, Placed, Stop, Wait};
use crate::shm::{Error, ErrorKind};
use crate::shm::{Kind, PARAMS, Region, fingerprint};

/// The largest encoded item a [`Queue`] takes unless built with another
/// [`slot_bytes`](QueueBuilder::slot_bytes): 64 KiB.
pub const DEFAULT_SLOT_BYTES: usize = 64 * 1024;

/// The capacity a [`QueueBuilder`] starts from: 1,024 items.
pub const DEFAULT_CAPACITY: usize = 1024;

/// The longest a waiting call sleeps before it looks again by itself (a
/// wake-up lost with a killed process costs at most this).
const TICK: Duration = Duration::from_millis(100);

/// A bounded multi-producer multi-consumer queue that works between threads
/// and between processes.
///
/// Clone it for another thread; put it in a task's input to send it to a
/// [`ProcessPool`](crate::ProcessPool) worker or a [`Process`](crate::Process)
/// (its shared memory travels as a descriptor). Items are encoded with
/// postcard into fixed-size slots: an item whose encoding is larger than
/// [`slot_bytes`](Queue::slot_bytes) is refused with
/// [`ErrorKind::TooLarge`]. Memory is reserved for `capacity × slot_bytes`
/// but only the pages items actually touch are used.
///
/// Killing a process that is putting or getting never corrupts the queue or
/// blocks the others: an item is committed whole or not at all, and a killed
/// getter loses at most the one item it had taken.
///
/// ```
/// use quadriga::ipc::Queue;
///
/// let q = Queue::new(16)?;
/// let producer = {
///     let q = q.clone();
///     std::thread::spawn(move || {
///         for i in 0..100_u32 {
///             q.put(i).unwrap();
///         }
///         q.close();
///     })
/// };
/// let mut got = Vec::new();
/// while let Ok(i) = q.get() {
///     got.push(i);
/// }
/// producer.join().unwrap();
/// assert_eq!(got, (0..100).collect::<Vec<_>>());
/// # Ok::<(), quadriga::ipc::Error>(())
/// ```
///
/// Between processes, the way Python passes a `Queue` in `args`:
///
/// ```
/// use quadriga::ProcessPool;
/// use quadriga::ipc::Queue;
///
/// #[quadriga::task]
/// fn square_jobs(jobs: Queue<u64>, results: Queue<u64>) {
///     while let Ok(x) = jobs.get() {
///         results.put(x * x).unwrap();
///     }
/// }
///
/// let pool = ProcessPool::new(2)?;
/// let (jobs, results) = (Queue::new(16)?, Queue::new(16)?);
/// let workers: Vec<_> = (0..2)
///     .map(|_| pool.submit(square_jobs, (jobs.clone(), results.clone())))
///     .collect();
/// for x in 1..=10 {
///     jobs.put(x)?;
/// }
/// jobs.close(); // each worker's `get` fails once the jobs are all taken
/// for w in workers {
///     w.join()?;
/// }
/// let mut squares: Vec<u64> = std::iter::from_fn(|| results.try_get().ok()).collect();
/// squares.sort();
/// assert_eq!(squares, [1, 4, 9, 16, 25, 36, 49, 64, 81, 100]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Queue<T> {
    shared: Arc<Shared>,
    _item: PhantomData<fn(T) -> T>,
}

/// The mapping and the ring in it. `ring` points into `region`.
struct Shared {
    ring: Placed,
    region: Region,
}

/// The rings of a region's body, one after another.
pub(super) fn place(
    region: &Region,
    layout: Layout,
    rings: usize,
    init: bool,
) -> Result<Vec<Placed>, Error> {
    assert!(layout.ring_bytes * rings <= region.body_len());
    (0..rings)
        .map(|i| {
            // SAFETY: the body holds `rings` rings of `ring_bytes` (checked
            // above), so the offset stays inside the mapping.
            let at = unsafe { region.body().add(i * layout.ring_bytes) };
            let at = NonNull::new(at).expect("a mapping is not at address 0");
            // SAFETY: `at` is 128-byte aligned (the body is, and `ring_bytes`
            // is a multiple of 128) and the region outlives the ring (both
            // are owned together). A created region is zeroed and not yet
            // shared; an attached one was initialised by its creator.
            unsafe { Placed::new(at, layout, init) }
                .map_err(|e| Error::os("initialising a shared lock", e))
        })
        .collect()
}

/// Creates a region of `rings` rings.
pub(super) fn create_rings(
    layout: Layout,
    kind: Kind,
    fp: u64,
    rings: usize,
) -> Result<(Region, Vec<Placed>), Error> {
    let mut params = [0; PARAMS];
    params[0] = u64::from(layout.cap);
    params[1] = u64::from(layout.slot_bytes);
    let region = Region::create(kind, fp, params, layout.ring_bytes * rings)?;
    let placed = place(&region, layout, rings, true)?;
    Ok((region, placed))
}

/// Attaches the rings of a region received from another process, after
/// checking its layout parameters against its real size.
pub(super) fn attach_rings(region: &Region, rings: usize) -> Result<Vec<Placed>, Error> {
    let params = region.params();
    let layout =
        Layout::attach(params[0], params[1], rings, region.body_len()).map_err(Error::invalid)?;
    place(region, layout, rings, false)
}

impl<T> Queue<T> {
    fn from_parts(region: Region, mut rings: Vec<Placed>) -> Self {
        let ring = rings.pop().expect("one ring");
        Self {
            shared: Arc::new(Shared { ring, region }),
            _item: PhantomData,
        }
    }

    /// A builder, to choose the slot size as well as the capacity.
    ///
    /// ```
    /// use quadriga::ipc::Queue;
    ///
    /// let q: Queue<Vec<u8>> = Queue::builder().capacity(4).slot_bytes(1 << 20).build()?;
    /// assert_eq!((q.capacity(), q.slot_bytes()), (4, 1 << 20));
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn builder() -> QueueBuilder<T> {
        QueueBuilder {
            capacity: DEFAULT_CAPACITY,
            slot_bytes: DEFAULT_SLOT_BYTES,
            _item: PhantomData,
        }
    }

    /// The most items the queue holds.
    ///
    /// ```
    /// let q = quadriga::ipc::Queue::<u8>::new(3)?;
    /// assert_eq!(q.capacity(), 3);
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn capacity(&self) -> usize {
        self.shared.ring.ring().layout().cap as usize
    }

    /// The largest encoded item a slot holds, in bytes.
    ///
    /// ```
    /// use quadriga::ipc::{DEFAULT_SLOT_BYTES, Queue};
    ///
    /// let q = Queue::<String>::new(3)?;
    /// assert_eq!(q.slot_bytes(), DEFAULT_SLOT_BYTES);
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn slot_bytes(&self) -> usize {
        self.shared.ring.ring().layout().slot_bytes as usize
    }

    /// How many items are in the queue now. Other threads and processes may
    /// change it at any moment: a hint, not a promise.
    ///
    /// ```
    /// let q = quadriga::ipc::Queue::new(3)?;
    /// q.put('a').unwrap();
    /// assert_eq!(q.len(), 1);
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.shared.ring.ring().len()
    }

    /// Whether the queue is empty now (a hint, like [`len`](Queue::len)).
    ///
    /// ```
    /// let q = quadriga::ipc::Queue::<u8>::new(3)?;
    /// assert!(q.is_empty());
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Closes the queue, for every clone in every process: puts fail with
    /// [`ErrorKind::Closed`] from now on, gets take what is left and then
    /// fail with `Closed`. Every caller waiting in a put or a get wakes.
    ///
    /// ```
    /// use quadriga::ipc::Queue;
    ///
    /// let q = Queue::new(4)?;
    /// q.put(1).unwrap();
    /// q.close();
    /// assert!(q.put(2).unwrap_err().error().is_closed());
    /// assert_eq!(q.get()?, 1);
    /// assert!(q.get().unwrap_err().is_closed());
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn close(&self) {
        self.shared.ring.ring().close();
    }

    /// Whether [`close`](Queue::close) was called (by anyone).
    ///
    /// ```
    /// let q = quadriga::ipc::Queue::<u8>::new(1)?;
    /// assert!(!q.is_closed());
    /// q.close();
    /// assert!(q.is_closed());
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn is_closed(&self) -> bool {
        self.shared.ring.ring().is_closed()
    }
}

impl<T: Serialize + DeserializeOwned + Send> Queue<T> {
    /// A queue of at most `capacity` items of up to
    /// [`DEFAULT_SLOT_BYTES`] each (encoded); see [`Queue::builder`] for
    /// other slot sizes. A capacity of 0 is an [`ErrorKind::Invalid`] error.
    ///
    /// ```
    /// use quadriga::ipc::{ErrorKind, Queue};
    ///
    /// let q = Queue::<u64>::new(100)?;
    /// assert_eq!(q.capacity(), 100);
    /// assert_eq!(Queue::<u64>::new(0).unwrap_err().kind(), ErrorKind::Invalid);
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn new(capacity: usize) -> Result<Self, Error> {
        Self::builder().capacity(capacity).build()
    }

    /// Puts `item`, waiting while the queue is full. Fails only if the queue
    /// is closed, or the item is too large or cannot be encoded; the error
    /// gives the item back.
    ///
    /// ```
    /// let q = quadriga::ipc::Queue::new(2)?;
    /// q.put("hello".to_string()).unwrap();
    /// assert_eq!(q.get()?, "hello");
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn put(&self, item: T) -> Result<(), PutError<T>> {
        self.put_with(item, Wait::Forever)
    }

    /// Puts `item` if there is room now; otherwise fails with
    /// [`ErrorKind::Full`] and gives it back. It never waits for room, only,
    /// briefly, for another producer to finish copying its item in.
    ///
    /// ```
    /// let q = quadriga::ipc::Queue::new(1)?;
    /// q.try_put(1).unwrap();
    /// let err = q.try_put(2).unwrap_err();
    /// assert!(err.error().is_full());
    /// assert_eq!(err.into_inner(), 2);
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn try_put(&self, item: T) -> Result<(), PutError<T>> {
        self.put_with(item, Wait::No)
    }

    /// Puts `item`, waiting at most `timeout` for room; then fails with
    /// [`ErrorKind::Timeout`] and gives it back.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let q = quadriga::ipc::Queue::new(1)?;
    /// q.put_timeout(1, Duration::from_millis(10)).unwrap();
    /// let err = q.put_timeout(2, Duration::from_millis(10)).unwrap_err();
    /// assert!(err.error().is_timeout());
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<(), PutError<T>> {
        self.put_with(item, Wait::after(timeout))
    }

    fn put_with(&self, item: T, wait: Wait) -> Result<(), PutError<T>> {
        let ring = self.shared.ring.ring();
        let slot_bytes = ring.layout().slot_bytes;
        let result = with_encoded(&item, slot_bytes, "queue slot", |bytes| {
            ring.push(bytes, wait, TICK)
                .map_err(|stop| stop_error(stop, "queue"))
        });
        result.map_err(|error| PutError { item, error })
    }

    /// Takes the oldest item, waiting while the queue is empty. Fails with
    /// [`ErrorKind::Closed`] once the queue is closed and empty.
    ///
    /// ```
    /// let q = quadriga::ipc::Queue::new(2)?;
    /// q.put(7_u8).unwrap();
    /// assert_eq!(q.get()?, 7);
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn get(&self) -> Result<T, Error> {
        self.get_with(Wait::Forever)
    }

    /// Takes the oldest item if there is one now; otherwise fails with
    /// [`ErrorKind::Empty`] (or `Closed`, once closed and empty). It never
    /// waits for an item, only, briefly, for another getter to finish
    /// copying one out.
    ///
    /// ```
    /// let q = quadriga::ipc::Queue::<u8>::new(2)?;
    /// assert!(q.try_get().unwrap_err().is_empty());
    /// q.put(1).unwrap();
    /// assert_eq!(q.try_get()?, 1);
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn try_get(&self) -> Result<T, Error> {
        self.get_with(Wait::No)
    }

    /// Takes the oldest item, waiting at most `timeout` for one; then fails
    /// with [`ErrorKind::Timeout`].
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let q = quadriga::ipc::Queue::<u8>::new(2)?;
    /// assert!(q.get_timeout(Duration::from_millis(10)).unwrap_err().is_timeout());
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, Error> {
        self.get_with(Wait::after(timeout))
    }

    fn get_with(&self, wait: Wait) -> Result<T, Error> {
        let ring = self.shared.ring.ring();
        with_decoded(|buf| {
            ring.pop(buf, wait, TICK)
                .map_err(|stop| stop_error(stop, "queue"))
        })
    }
}

impl<T> Clone for Queue<T> {
    /// Another handle to the same queue.
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            _item: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("capacity", &self.capacity())
            .field("slot_bytes", &self.slot_bytes())
            .field("len", &self.len())
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// Inside a task's input, a queue travels as its shared memory's descriptor;
/// anywhere else serialising it is an error.
impl<T> Serialize for Queue<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.shared.region.serialize(s)
    }
}

/// Attaches to the queue a task's input carries, after checking that it is a
/// queue of this item type whose layout fits its memory.
impl<'de, T> Deserialize<'de> for Queue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let region = Region::deserialize(d, Kind::Queue, fingerprint::<T>())?;
        let rings = attach_rings(&region, 1).map_err(serde::de::Error::custom)?;
        Ok(Self::from_parts(region, rings))
    }
}

/// Builds a [`Queue`] with a chosen capacity and slot size.
///
/// ```
/// use quadriga::ipc::Queue;
///
/// let q = Queue::<[u8; 16]>::builder().capacity(10).slot_bytes(64).build()?;
/// q.put([1; 16]).unwrap();
/// # Ok::<(), quadriga::ipc::Error>(())
/// ```
pub struct QueueBuilder<T> {
    capacity: usize,
    slot_bytes: usize,
    _item: PhantomData<fn(T) -> T>,
}

impl<T> QueueBuilder<T> {
    /// The most items the queue holds (default [`DEFAULT_CAPACITY`]); at
    /// least 1, at most 2³¹.
    ///
    /// ```
    /// let q = quadriga::ipc::Queue::<u8>::builder().capacity(5).build()?;
    /// assert_eq!(q.capacity(), 5);
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// The largest encoded item, in bytes (default [`DEFAULT_SLOT_BYTES`]);
    /// at least 1, at most 1 GiB.
    ///
    /// ```
    /// let q = quadriga::ipc::Queue::<String>::builder().slot_bytes(16).build()?;
    /// assert!(q.put("x".repeat(100)).unwrap_err().error().is_too_large());
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn slot_bytes(mut self, bytes: usize) -> Self {
        self.slot_bytes = bytes;
        self
    }

    /// Creates the queue: [`ErrorKind::Invalid`] for sizes out of range,
    /// [`ErrorKind::Os`] if the shared memory cannot be had.
    ///
    /// ```
    /// use quadriga::ipc::{ErrorKind, Queue};
    ///
    /// let err = Queue::<u8>::builder().capacity(0).build().unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Invalid);
    /// ```
    pub fn build(self) -> Result<Queue<T>, Error> {
        let layout =
            Layout::new(self.capacity as u64, self.slot_bytes as u64).map_err(Error::invalid)?;
        let (region, rings) = create_rings(layout, Kind::Queue, fingerprint::<T>(), 1)?;
        Ok(Queue::from_parts(region, rings))
    }
}

impl<T> fmt::Debug for QueueBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueBuilder")
            .field("capacity", &self.capacity)
            .field("slot_bytes", &self.slot_bytes)
            .finish()
    }
}

/// A put that did not happen: why, and the item, given back.
///
/// Converts into [`Error`] (dropping the item) with `?`.
///
/// ```
/// use quadriga::ipc::{ErrorKind, Queue};
///
/// let q = Queue::new(1)?;
/// q.put("first".to_string()).unwrap();
/// let err = q.try_put("second".to_string()).unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Full);
/// assert_eq!(err.into_inner(), "second");
/// # Ok::<(), quadriga::ipc::Error>(())
/// ```
pub struct PutError<T> {
    item: T,
    error: Error,
}

impl<T> PutError<T> {
    pub(super) fn new(item: T, error: Error) -> Self {
        Self { item, error }
    }

    /// The item that was not put.
    ///
    /// ```
    /// let q = quadriga::ipc::Queue::new(1)?;
    /// q.close();
    /// assert_eq!(q.put(5).unwrap_err().into_inner(), 5);
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn into_inner(self) -> T {
        self.item
    }

    /// Why it was not put.
    ///
    /// ```
    /// let q = quadriga::ipc::Queue::new(1)?;
    /// q.close();
    /// assert!(q.put(5).unwrap_err().error().is_closed());
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn error(&self) -> &Error {
        &self.error
    }

    /// The kind of [`error`](PutError::error).
    ///
    /// ```
    /// use quadriga::ipc::{ErrorKind, Queue};
    ///
    /// let q = Queue::new(1)?;
    /// q.close();
    /// assert_eq!(q.put(5).unwrap_err().kind(), ErrorKind::Closed);
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn kind(&self) -> ErrorKind {
        self.error.kind()
    }

    /// The item and the error.
    ///
    /// ```
    /// let q = quadriga::ipc::Queue::new(1)?;
    /// q.close();
    /// let (item, error) = q.put(5).unwrap_err().into_parts();
    /// assert!(item == 5 && error.is_closed());
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn into_parts(self) -> (T, Error) {
        (self.item, self.error)
    }
}

impl<T> From<PutError<T>> for Error {
    fn from(e: PutError<T>) -> Self {
        e.error
    }
}

impl<T> fmt::Debug for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PutError")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Display for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl<T> std::error::Error for PutError<T> {}

thread_local! {
    /// Each thread's encoding and decoding buffer, taken while in use (so a
    /// reentrant call just gets a new one).
    static SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Buffers above this are freed after use rather than kept.
const KEEP_SCRATCH: usize = 256 * 1024;

fn scratch() -> Vec<u8> {
    let mut buf = SCRATCH.take();
    buf.clear();
    buf
}

fn recycle(buf: Vec<u8>) {
    if buf.capacity() <= KEEP_SCRATCH {
        SCRATCH.set(buf);
    }
}

/// Encodes `item` into this thread's buffer and hands the bytes to `f`, if
/// they fit in `limit`; otherwise a [`ErrorKind::TooLarge`] error naming both
/// sizes. Nothing shared is touched before the item is encoded.
pub(super) fn with_encoded<T: Serialize, R>(
    item: &T,
    limit: u32,
    place: &str,
    f: impl FnOnce(&[u8]) -> Result<R, Error>,
) -> Result<R, Error> {
    let mut buf = scratch();
    // Encoding stops at the limit: a huge item is refused after `limit` bytes
    // of work and memory, not after a copy of all of it.
    let encoded = postcard::serialize_with_flavor(
        item,
        Bounded {
            buf: &mut buf,
            limit: limit as usize,
        },
    );
    let result = match encoded {
        Ok(()) => f(&buf),
        Err(postcard::Error::SerializeBufferFull) => {
            // Only counted, for the message: no copy of the item is made.
            let size = postcard::serialize_with_flavor(item, Count(0))
                .map_or_else(|_| "more than".to_owned(), |n| n.to_string());
            Err(Error::new(
                ErrorKind::TooLarge,
                format!(
                    "an item of {size} bytes (encoded) is larger than a {place} of {limit} bytes"
                ),
            ))
        }
        Err(e) => Err(Error::codec(format!("encoding an item: {e}"))),
    };
    recycle(buf);
    result
}

/// A postcard output that fails with `SerializeBufferFull` past `limit` bytes.
struct Bounded<'a> {
    buf: &'a mut Vec<u8>,
    limit: usize,
}

impl postcard::ser_flavors::Flavor for Bounded<'_> {
    type Output = ();

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        if data.len() > self.limit - self.buf.len() {
            return Err(postcard::Error::SerializeBufferFull);
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.try_extend(&[data])
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// A postcard output that only counts bytes.
struct Count(usize);

impl postcard::ser_flavors::Flavor for Count {
    type Output = usize;

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0 += data.len();
        Ok(())
    }

    fn try_push(&mut self, _: u8) -> postcard::Result<()> {
        self.0 += 1;
        Ok(())
    }

    fn finalize(self) -> postcard::Result<usize> {
        Ok(self.0)
    }
}

/// Lets `fill` put an item's bytes into this thread's buffer, then decodes it.
pub(super) fn with_decoded<T: DeserializeOwned>(
    fill: impl FnOnce(&mut Vec<u8>) -> Result<(), Error>,
) -> Result<T, Error> {
    let mut buf = scratch();
    let result = fill(&mut buf).and_then(|()| match postcard::take_from_bytes::<T>(&buf) {
        Ok((item, [])) => Ok(item),
        Ok((_, rest)) => Err(Error::codec(format!(
            "decoding an item: {} bytes were left over",
            rest.len()
        ))),
        Err(e) => Err(Error::codec(format!("decoding an item: {e}"))),
    });
    recycle(buf);
    result
}

/// The error for a ring's refusal, `what` naming the object.
pub(super) fn stop_error(stop: Stop, what: &str) -> Error {
    match stop {
        Stop::Full => Error::new(ErrorKind::Full, format!("the {what} is full")),
        Stop::Empty => Error::new(ErrorKind::Empty, format!("the {what} is empty")),
        Stop::Closed => Error::new(ErrorKind::Closed, format!("the {what} is closed")),
        Stop::Timeout => Error::new(
            ErrorKind::Timeout,
            format!("the {what}'s time limit passed"),
        ),
        Stop::Corrupt(detail) => Error::invalid(format!("{what}: {detail}")),
        Stop::BadSlot { len, slot_bytes } => Error::codec(format!(
            "a {what} slot claimed {len} bytes, more than its {slot_bytes}: the shared \
             memory was overwritten; that item was dropped"
        )),
    }
}
