//! Passing IPC objects inside task inputs: their descriptors travel beside the
//! bytes, as `SCM_RIGHTS` on the worker's socket.
//!
//! An IPC object serialises as an index into a list of descriptors, not as the
//! descriptor number (which means nothing in another process):
//!
//! * **Encoding** runs inside [`collect`], which gives the object's
//!   `Serialize` a list to push its descriptor onto ([`serialize_fd`]); the
//!   list travels with the encoded item (`wire::Batch`), and the supervisor
//!   sends it with the frame.
//! * **Decoding** runs inside [`provide`] with the descriptors that came with
//!   the item; the object's `Deserialize` takes its own by index
//!   ([`deserialize_fd`]) and maps it.
//!
//! Outside those scopes (a task's *output*, `serde_json`, a file) an IPC object
//! refuses to serialise, with an error that says why, rather than writing a
//! number that would name some other descriptor on the other side.

use std::cell::RefCell;
use std::os::fd::OwnedFd;
use std::sync::Arc;

/// A descriptor shared by the objects (and clones) that use it.
pub(crate) type SharedFd = Arc<OwnedFd>;

/// Most descriptors one item may carry (the kernel's limit per message is 253;
/// the wire splits larger lists across messages, this bounds the receiver).
pub(crate) const MAX_FDS_PER_ITEM: usize = 1024;

thread_local! {
    static OUTGOING: RefCell<Option<Vec<SharedFd>>> = const { RefCell::new(None) };
    static INCOMING: RefCell<Option<Vec<SharedFd>>> = const { RefCell::new(None) };
}

const NOT_HERE: &str = "quadriga IPC objects (queues, pipes, shared values, locks) carry a \
    file descriptor and can only be sent inside a task's input to a ProcessPool or Process";

/// Runs an encoder, collecting the descriptors that IPC objects in it push.
pub(crate) fn collect<R>(encode: impl FnOnce() -> R) -> (R, Vec<SharedFd>) {
    let outer = OUTGOING.with(|o| o.borrow_mut().replace(Vec::new()));
    let result = encode();
    let fds = OUTGOING.with(|o| std::mem::replace(&mut *o.borrow_mut(), outer));
    (result, fds.unwrap_or_default())
}

/// Runs a decoder with `fds` (those that came with the item) available.
pub(crate) fn provide<R>(fds: &[SharedFd], decode: impl FnOnce() -> R) -> R {
    let outer = INCOMING.with(|i| i.borrow_mut().replace(fds.to_vec()));
    let result = decode();
    INCOMING.with(|i| *i.borrow_mut() = outer);
    result
}

/// Serialises `fd` as its index in the current item's descriptor list.
pub(crate) fn serialize_fd<S: serde::Serializer>(fd: &SharedFd, s: S) -> Result<S::Ok, S::Error> {
    let index = OUTGOING.with(|o| {
        let mut o = o.borrow_mut();
        let list = o.as_mut()?;
        list.push(fd.clone());
        Some(list.len() - 1)
    });
    match index.and_then(|i| u32::try_from(i).ok()) {
        Some(i) if (i as usize) < MAX_FDS_PER_ITEM => s.serialize_u32(i),
        Some(_) => Err(serde::ser::Error::custom(format!(
            "an item may carry at most {MAX_FDS_PER_ITEM} IPC objects"
        ))),
        None => Err(serde::ser::Error::custom(NOT_HERE)),
    }
}

/// Takes the descriptor a [`serialize_fd`] index names from the item's list.
pub(crate) fn deserialize_fd<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SharedFd, D::Error> {
    let index: u32 = serde::Deserialize::deserialize(d)?;
    INCOMING.with(|i| match &*i.borrow() {
        None => Err(serde::de::Error::custom(NOT_HERE)),
        Some(list) => list.get(index as usize).cloned().ok_or_else(|| {
            serde::de::Error::custom(format!(
                "an IPC object names descriptor {index} but its item came with {}",
                list.len()
            ))
        }),
    })
}

#[cfg(all(test, not(quadriga_loom)))]
mod tests {
    use super::*;

    struct Holder(SharedFd);

    impl serde::Serialize for Holder {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            serialize_fd(&self.0, s)
        }
    }

    impl<'de> serde::Deserialize<'de> for Holder {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            deserialize_fd(d).map(Holder)
        }
    }

    fn some_fd() -> SharedFd {
        Arc::new(rustix::fs::memfd_create(c"t", rustix::fs::MemfdFlags::CLOEXEC).unwrap())
    }

    #[test]
    fn descriptors_travel_by_index_within_a_scope() {
        let (a, b) = (some_fd(), some_fd());
        let (bytes, fds) = collect(|| postcard::to_stdvec(&(Holder(a.clone()), Holder(b.clone()))));
        let bytes = bytes.unwrap();
        assert_eq!(fds.len(), 2);
        let (x, y): (Holder, Holder) = provide(&fds, || postcard::from_bytes(&bytes)).unwrap();
        assert!(Arc::ptr_eq(&x.0, &a) && Arc::ptr_eq(&y.0, &b));
    }

    #[test]
    fn outside_a_scope_it_is_a_clear_error() {
        let err = postcard::to_stdvec(&Holder(some_fd())).unwrap_err();
        let _ = err; // postcard keeps no message; serde_json shows it
        let err = serde_json::to_string(&Holder(some_fd())).unwrap_err();
        assert!(err.to_string().contains("task's input"), "{err}");
        let bytes = collect(|| postcard::to_stdvec(&Holder(some_fd())))
            .0
            .unwrap();
        assert!(provide(&[], || postcard::from_bytes::<Holder>(&bytes)).is_err());
    }
}
