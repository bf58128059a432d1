//! Passing IPC objects inside task inputs: their descriptors travel beside the
//! bytes, as `SCM_RIGHTS` on the worker's socket.
//!
//! An IPC object serialises as an index into a list of descriptors, not as the
//! descriptor number (which means nothing in another process):
//!
//! * **Encoding** runs inside [`collect`], which gives the object's
//!   `Serialize` a list to push its descriptor onto ([`serialize_fd`]); the
//!   list travels with the encoded item (`wire::Batch`), and the supervisor
//!   sends it with the frame. A descriptor that an item names more than once
//!   (clones of one object) is in its list once.
//! * **Decoding** runs inside [`provide`] with the descriptors that came with
//!   the item; the object's `Deserialize` takes its own by index
//!   ([`deserialize_fd`]) and maps it.
//!
//! Outside those scopes (a task's *output*, `serde_json`, a file) an IPC object
//! refuses to serialise, with an error that says why, rather than writing a
//! number that would name some other descriptor on the other side. Each scope
//! ends (and the one outside it comes back) even when the encoder or decoder
//! panics, so a caught panic never leaves a scope open behind it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::Arc;

/// A descriptor shared by the objects (and clones) that use it.
pub(crate) type SharedFd = Arc<OwnedFd>;

/// Most distinct descriptors one item may carry. The wire splits a list across
/// messages of at most 253 (the kernel's limit per message); this bounds the
/// receiver, and stays well under the common soft limit of 1024 open files
/// (which a worker raises to its hard limit anyway), so that an item and the
/// worker's own descriptors fit together.
pub(crate) const MAX_FDS_PER_ITEM: usize = 512;

/// The descriptors an item being encoded names, each once.
#[derive(Default)]
struct Outgoing {
    fds: Vec<SharedFd>,
    /// Where each descriptor (by the address of its `Arc`) is in `fds`.
    index: HashMap<usize, u32>,
}

thread_local! {
    static OUTGOING: RefCell<Option<Outgoing>> = const { RefCell::new(None) };
    static INCOMING: RefCell<Option<Vec<SharedFd>>> = const { RefCell::new(None) };
}

const NOT_HERE: &str = "quadriga IPC objects (queues, pipes, shared values, locks) carry a \
    file descriptor and can only be sent inside a task's input to a ProcessPool or Process";

/// Puts back what a scope replaced when it ends, however it ends (a panic in
/// the encoder or decoder included).
struct Restore<T: 'static> {
    key: &'static std::thread::LocalKey<RefCell<Option<T>>>,
    outer: Option<Option<T>>,
}

impl<T: 'static> Restore<T> {
    /// Opens a scope holding `value`.
    fn enter(key: &'static std::thread::LocalKey<RefCell<Option<T>>>, value: T) -> Self {
        let outer = key.with(|k| k.borrow_mut().replace(value));
        Self {
            key,
            outer: Some(outer),
        }
    }

    /// Closes the scope and returns what it held.
    fn leave(mut self) -> Option<T> {
        let outer = self.outer.take().expect("left once");
        self.key
            .with(|k| std::mem::replace(&mut *k.borrow_mut(), outer))
    }
}

impl<T: 'static> Drop for Restore<T> {
    fn drop(&mut self) {
        if let Some(outer) = self.outer.take() {
            // `try_with`: during thread teardown there is nothing to restore.
            let _ = self.key.try_with(|k| *k.borrow_mut() = outer);
        }
    }
}

/// Runs an encoder, collecting the descriptors that IPC objects in it push.
pub(crate) fn collect<R>(encode: impl FnOnce() -> R) -> (R, Vec<SharedFd>) {
    let scope = Restore::enter(&OUTGOING, Outgoing::default());
    let result = encode();
    let fds = scope.leave().map(|o| o.fds).unwrap_or_default();
    (result, fds)
}

/// Runs a decoder with `fds` (those that came with the item) available.
pub(crate) fn provide<R>(fds: &[SharedFd], decode: impl FnOnce() -> R) -> R {
    let _scope = Restore::enter(&INCOMING, fds.to_vec());
    decode()
}

/// Serialises `fd` as its index in the current item's descriptor list (the
/// index it already has, if the item named it before).
pub(crate) fn serialize_fd<S: serde::Serializer>(fd: &SharedFd, s: S) -> Result<S::Ok, S::Error> {
    let index = OUTGOING.with(|o| {
        let mut o = o.borrow_mut();
        let o = o.as_mut()?;
        let key = Arc::as_ptr(fd) as usize;
        if let Some(&at) = o.index.get(&key) {
            return Some(at as usize);
        }
        let at = o.fds.len();
        if at < MAX_FDS_PER_ITEM {
            o.fds.push(fd.clone());
            o.index.insert(key, at as u32);
        }
        Some(at)
    });
    match index {
        Some(i) if i < MAX_FDS_PER_ITEM => s.serialize_u32(i as u32),
        Some(_) => Err(serde::ser::Error::custom(format!(
            "an item may carry at most {MAX_FDS_PER_ITEM} distinct IPC objects"
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

    #[test]
    fn an_item_carries_each_descriptor_once() {
        let (a, b) = (some_fd(), some_fd());
        let item = (Holder(a.clone()), Holder(b.clone()), Holder(a.clone()));
        let (bytes, fds) = collect(|| postcard::to_stdvec(&item));
        assert_eq!(fds.len(), 2, "a named twice travels once");
        let bytes = bytes.unwrap();
        let (x, y, z): (Holder, Holder, Holder) =
            provide(&fds, || postcard::from_bytes(&bytes)).unwrap();
        assert!(Arc::ptr_eq(&x.0, &a) && Arc::ptr_eq(&y.0, &b) && Arc::ptr_eq(&z.0, &a));
    }

    #[test]
    fn an_item_may_not_carry_too_many_descriptors() {
        let many: Vec<Holder> = (0..=MAX_FDS_PER_ITEM).map(|_| Holder(some_fd())).collect();
        let (bytes, _) = collect(|| serde_json::to_string(&many));
        let err = bytes.unwrap_err().to_string();
        assert!(err.contains("at most"), "{err}");
        // The same object many times is one descriptor: no limit applies.
        let one = some_fd();
        let same: Vec<Holder> = (0..=MAX_FDS_PER_ITEM)
            .map(|_| Holder(one.clone()))
            .collect();
        let (bytes, fds) = collect(|| postcard::to_stdvec(&same));
        assert!(bytes.is_ok());
        assert_eq!(fds.len(), 1);
    }

    /// Before: a panic inside `collect` left the thread's scope open, so the
    /// descriptors it had collected stayed referenced, and an IPC object later
    /// serialised anywhere (JSON) wrote an index instead of refusing.
    #[test]
    fn regression_a_panicking_encoder_left_the_collecting_scope_open() {
        struct Bomb(Holder);
        impl serde::Serialize for Bomb {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let _ = self.0.serialize(s);
                panic!("a user's Serialize panics after an IPC object");
            }
        }
        let fd = some_fd();
        let bomb = Bomb(Holder(fd.clone()));
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            collect(|| postcard::to_stdvec(&bomb))
        }));
        assert!(caught.is_err());
        drop(bomb);
        assert_eq!(Arc::strong_count(&fd), 1, "the collected descriptor leaked");
        let queue = crate::ipc::Queue::<u32>::new(2).unwrap();
        let err = serde_json::to_string(&queue).unwrap_err();
        assert!(err.to_string().contains("task's input"), "{err}");
        // A scope around the panicking one is whole again afterwards.
        let (inner, fds) = collect(|| {
            let caught = std::panic::catch_unwind(|| {
                collect(|| -> () { panic!("inner") });
            });
            assert!(caught.is_err());
            postcard::to_stdvec(&Holder(fd.clone()))
        });
        assert!(inner.is_ok());
        assert_eq!(fds.len(), 1);
    }

    /// Before: a panic inside `provide` left the item's descriptors available
    /// to whatever decoded next on the thread.
    #[test]
    fn regression_a_panicking_decoder_left_the_providing_scope_open() {
        let fd = some_fd();
        let (bytes, fds) = collect(|| postcard::to_stdvec(&Holder(fd.clone())));
        let bytes = bytes.unwrap();
        let caught = std::panic::catch_unwind(|| {
            provide(&fds, || -> () { panic!("a user's Deserialize panics") });
        });
        assert!(caught.is_err());
        drop(fds);
        assert_eq!(Arc::strong_count(&fd), 1, "the provided descriptor leaked");
        assert!(postcard::from_bytes::<Holder>(&bytes).is_err());
    }
}
