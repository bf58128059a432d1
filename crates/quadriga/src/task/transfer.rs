//! Passing IPC objects inside task inputs: their descriptors travel beside the
//! bytes, as `SCM_RIGHTS` on the worker's socket.
//!
//! An IPC object serialises as an index into a list of descriptors, not as the
//! descriptor number (which means nothing in another process):
//!
//! * **Encoding** runs inside [`collect`], which gives the object's
//!   `Serialize` a list to push its descriptor onto ([`serialize_fd`]); the
//!   list travels with the encoded item (`task::batch::Batch`), and the supervisor
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

use std::cell::Cell;
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

/// Whether a scope is open on this thread, and whether its list is in use.
/// A plain byte: a thread-local without a destructor costs one load to reach,
/// and scopes open and close once per item of a `map` (a million tiny items
/// measured 10% slower through a thread-local `Vec`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// No scope: IPC objects refuse to (de)serialise.
    Closed,
    /// A scope whose list is empty and not in the list slot.
    Empty,
    /// A scope whose list is in the list slot.
    Listed,
}

thread_local! {
    static OUT_STATE: Cell<State> = const { Cell::new(State::Closed) };
    /// The descriptors the item being encoded names, each once (found by a
    /// linear search: an item names a few).
    static OUT_LIST: Cell<Vec<SharedFd>> = const { Cell::new(Vec::new()) };
    static IN_STATE: Cell<State> = const { Cell::new(State::Closed) };
    /// The descriptors that came with the item being decoded.
    static IN_LIST: Cell<Vec<SharedFd>> = const { Cell::new(Vec::new()) };
}

const NOT_HERE: &str = "quadriga IPC objects (queues, pipes, shared values, locks) carry a \
    file descriptor and can only be sent inside a task's input to a ProcessPool or Process";

type StateKey = &'static std::thread::LocalKey<Cell<State>>;
type ListKey = &'static std::thread::LocalKey<Cell<Vec<SharedFd>>>;

/// An open scope. When it ends, however it ends (a panic in the encoder or
/// decoder included), the scope it was opened in (if any) comes back, list
/// and all; its own list is returned or dropped.
struct Scope {
    state: StateKey,
    list: ListKey,
    outer: State,
    /// The outer scope's list, when it had one in the slot.
    outer_list: Vec<SharedFd>,
    open: bool,
}

impl Scope {
    #[inline]
    fn enter(state: StateKey, list: ListKey, with: Vec<SharedFd>) -> Self {
        let inner = if with.is_empty() {
            State::Empty
        } else {
            State::Listed
        };
        let outer = state.replace(inner);
        // Only a nested scope, or one given descriptors, touches the list.
        let outer_list = if outer == State::Listed || inner == State::Listed {
            list.replace(with)
        } else {
            Vec::new()
        };
        Self {
            state,
            list,
            outer,
            outer_list,
            open: true,
        }
    }

    /// Ends the scope; its list.
    #[inline]
    fn leave(mut self) -> Vec<SharedFd> {
        self.open = false;
        self.restore()
    }

    #[inline]
    fn restore(&mut self) -> Vec<SharedFd> {
        let mine = self.state.replace(self.outer);
        if mine == State::Listed || self.outer == State::Listed {
            self.list.replace(std::mem::take(&mut self.outer_list))
        } else {
            Vec::new()
        }
    }
}

impl Drop for Scope {
    #[inline]
    fn drop(&mut self) {
        if self.open {
            self.restore();
        }
    }
}

/// Runs an encoder, collecting the descriptors that IPC objects in it push.
#[inline]
pub(crate) fn collect<R>(encode: impl FnOnce() -> R) -> (R, Vec<SharedFd>) {
    let scope = Scope::enter(&OUT_STATE, &OUT_LIST, Vec::new());
    let result = encode();
    (result, scope.leave())
}

/// Runs a decoder with `fds` (those that came with the item) available.
#[inline]
pub(crate) fn provide<R>(fds: &[SharedFd], decode: impl FnOnce() -> R) -> R {
    let scope = Scope::enter(&IN_STATE, &IN_LIST, fds.to_vec());
    let result = decode();
    drop(scope.leave());
    result
}

/// Serialises `fd` as its index in the current item's descriptor list (the
/// index it already has, if the item named it before).
pub(crate) fn serialize_fd<S: serde::Serializer>(fd: &SharedFd, s: S) -> Result<S::Ok, S::Error> {
    if OUT_STATE.get() == State::Closed {
        return Err(serde::ser::Error::custom(NOT_HERE));
    }
    OUT_STATE.set(State::Listed);
    let mut fds = OUT_LIST.take();
    let at = match fds.iter().position(|f| Arc::ptr_eq(f, fd)) {
        Some(at) => at,
        None if fds.len() < MAX_FDS_PER_ITEM => {
            fds.push(fd.clone());
            fds.len() - 1
        }
        None => MAX_FDS_PER_ITEM,
    };
    OUT_LIST.set(fds);
    if at < MAX_FDS_PER_ITEM {
        s.serialize_u32(at as u32)
    } else {
        Err(serde::ser::Error::custom(format!(
            "an item may carry at most {MAX_FDS_PER_ITEM} distinct IPC objects"
        )))
    }
}

/// Takes the descriptor a [`serialize_fd`] index names from the item's list.
pub(crate) fn deserialize_fd<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SharedFd, D::Error> {
    let index: u32 = serde::Deserialize::deserialize(d)?;
    let list = match IN_STATE.get() {
        State::Closed => return Err(serde::de::Error::custom(NOT_HERE)),
        State::Empty => Vec::new(),
        State::Listed => IN_LIST.take(),
    };
    let found = list.get(index as usize).cloned().ok_or_else(|| {
        serde::de::Error::custom(format!(
            "an IPC object names descriptor {index} but its item came with {}",
            list.len()
        ))
    });
    if IN_STATE.get() == State::Listed {
        IN_LIST.set(list);
    }
    found
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

    /// A scope opened inside another (an encoder that encodes something
    /// else on the way) has its own list, and the outer one's comes back.
    #[test]
    fn nested_scopes_keep_their_own_descriptors() {
        let (a, b, c) = (some_fd(), some_fd(), some_fd());
        let (outer, outer_fds) = collect(|| {
            let first = postcard::to_stdvec(&Holder(a.clone())).unwrap();
            let (inner, inner_fds) =
                collect(|| postcard::to_stdvec(&(Holder(b.clone()), Holder(c.clone()))).unwrap());
            assert_eq!(inner_fds.len(), 2);
            assert!(Arc::ptr_eq(&inner_fds[0], &b) && Arc::ptr_eq(&inner_fds[1], &c));
            let (empty, none) = collect(|| postcard::to_stdvec(&1_u8).unwrap());
            assert!(none.is_empty());
            let second = postcard::to_stdvec(&Holder(c.clone())).unwrap();
            (first, inner, empty, second)
        });
        assert_eq!(outer_fds.len(), 2, "a and c, not b");
        assert!(Arc::ptr_eq(&outer_fds[0], &a) && Arc::ptr_eq(&outer_fds[1], &c));
        let (first, inner, _, second) = outer;
        let (x, y): (Holder, Holder) = provide(&outer_fds, || {
            let nested: (Holder, Holder) = provide(&[b.clone(), c.clone()], || {
                postcard::from_bytes(&inner).unwrap()
            });
            assert!(Arc::ptr_eq(&nested.0.0, &b));
            (
                postcard::from_bytes(&first).unwrap(),
                postcard::from_bytes(&second).unwrap(),
            )
        });
        assert!(Arc::ptr_eq(&x.0, &a) && Arc::ptr_eq(&y.0, &c));
        // Closed again afterwards.
        assert!(serde_json::to_string(&Holder(a)).is_err());
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
