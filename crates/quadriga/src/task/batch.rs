//! [`Batch`]: a task's inputs (or outputs), each item encoded on its own and
//! laid end to end, so that a batch can be split into single items (after a
//! crash) and one undecodable item fails alone, without whoever carries it
//! knowing the task's types.

use serde::{Deserialize, Serialize};

use super::fds::{Fds, FdsError};
use super::transfer::{self, SharedFd};

/// Items encoded one by one and laid end to end; `ends[i]` is where item `i` ends.
///
/// An item may hold IPC objects (a `Queue`, a `Lock`…): their descriptors ride
/// beside the bytes in `fds` (never encoded; the socket carries them as
/// `SCM_RIGHTS`), each descriptor once per batch however many items name it
/// (a `map` over `(shared.clone(), x)` sends one). Item `i` names its
/// descriptors by its own indices `0..k`, and `fd_refs[fd_ends[i-1]..fd_ends[i]]`
/// says where each of them is in `fds`, so the decoder of an item sees its own
/// descriptors only. `fd_refs` numbers descriptors in order of first use, so
/// the batch carries `max(fd_refs) + 1` of them. While no item has any,
/// `fd_ends` and `fd_refs` stay empty, so a plain batch pays two bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Batch {
    pub(crate) bytes: Vec<u8>,
    pub(crate) ends: Vec<u32>,
    pub(crate) fd_ends: Vec<u32>,
    pub(crate) fd_refs: Vec<u32>,
    #[serde(skip)]
    pub(crate) fds: Fds,
}

/// A postcard flavor that appends to a `Vec` it borrows, so a failed encoding
/// can be cut off without losing what was there before.
struct Append<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for Append<'_> {
    type Output = ();

    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.0.push(byte);
        Ok(())
    }

    fn try_extend(&mut self, bytes: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

impl Batch {
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// Item `i`'s bytes, or `None` if the batch is malformed there.
    pub(crate) fn item(&self, i: usize) -> Option<&[u8]> {
        let end = *self.ends.get(i)? as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        self.bytes.get(start..end)
    }

    /// How many distinct descriptors the batch says it carries (what a worker
    /// must have received with it).
    pub(crate) fn fd_count(&self) -> usize {
        self.fd_refs.iter().max().map_or(0, |&n| n as usize + 1)
    }

    /// Item `i`'s descriptors, in the order its IPC objects name them.
    pub(crate) fn item_fds(&self, i: usize) -> Result<Vec<SharedFd>, FdsError> {
        let Some(&end) = self.fd_ends.get(i) else {
            return Ok(Vec::new()); // no item of the batch has any
        };
        let start = if i == 0 { 0 } else { self.fd_ends[i - 1] };
        let refs = self
            .fd_refs
            .get(start as usize..end as usize)
            .ok_or(FdsError::Malformed)?;
        refs.iter()
            .map(|&r| match self.fds.list.get(r as usize) {
                Some(Some(fd)) => Ok(fd.clone()),
                Some(None) => Err(FdsError::Lost),
                None => Err(FdsError::Malformed),
            })
            .collect()
    }

    /// Appends one item's encoding, with the descriptors of the IPC objects in
    /// it. On error the batch is unchanged.
    pub(crate) fn push<T: Serialize>(&mut self, item: &T) -> Result<(), postcard::Error> {
        let start = self.bytes.len();
        let (encoded, fds) =
            transfer::collect(|| postcard::serialize_with_flavor(item, Append(&mut self.bytes)));
        let end = encoded.and_then(|()| {
            u32::try_from(self.bytes.len()).map_err(|_| postcard::Error::SerializeBufferFull)
        });
        match end {
            Ok(end) => {
                self.ends.push(end);
                self.note_fds(&fds);
                Ok(())
            }
            Err(err) => {
                self.bytes.truncate(start);
                Err(err)
            }
        }
    }

    /// Records the descriptors of the item just appended: each goes into
    /// `fds` once per batch, and the item's references point there.
    fn note_fds(&mut self, fds: &[SharedFd]) {
        if fds.is_empty() && self.fd_ends.is_empty() {
            return;
        }
        // The first item with descriptors: the ones before it had none.
        self.fd_ends.resize(self.ends.len() - 1, 0);
        for fd in fds {
            let at = self.fds.place(fd);
            self.fd_refs.push(at);
        }
        self.fd_ends.push(self.fd_refs.len() as u32);
    }

    /// Appends raw, already encoded bytes as one item, with its descriptors.
    pub(crate) fn push_raw(&mut self, raw: &[u8], fds: &[SharedFd]) {
        self.bytes.extend_from_slice(raw);
        self.ends.push(self.bytes.len() as u32);
        self.note_fds(fds);
    }

    /// One batch per item.
    pub(crate) fn split(&self) -> Vec<Batch> {
        (0..self.len())
            .map(|i| {
                let mut one = Batch::default();
                // A sender's batch is never malformed; were it, the item would
                // fail alone, naming descriptors it does not have.
                let fds = self.item_fds(i).unwrap_or_default();
                one.push_raw(self.item(i).unwrap_or_default(), &fds);
                one
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::TaskError;
    use crate::task::outcomes::Outcomes;
    use std::sync::Arc;

    #[test]
    fn batches_split_and_outcomes_align() {
        let mut b = Batch::default();
        for i in 0..3_u64 {
            b.push(&i).unwrap();
        }
        let parts = b.split();
        assert_eq!(parts.len(), 3);
        assert_eq!(
            postcard::from_bytes::<u64>(parts[2].item(0).unwrap()).unwrap(),
            2
        );
        let mut o = Outcomes::default();
        o.push_ok(&[1]);
        o.push_err(TaskError::codec("x"));
        o.push_ok(&[2]);
        let items: Vec<_> = o.into_items().collect();
        assert_eq!(items[0].as_ref().unwrap(), &[1]);
        assert!(items[1].is_err());
        assert_eq!(items[2].as_ref().unwrap(), &[2]);
    }

    #[test]
    fn malformed_batch_items_are_none() {
        let b = Batch {
            bytes: vec![1, 2],
            ends: vec![1, 9, 0],
            ..Batch::default()
        };
        assert_eq!(b.item(0), Some(&[1][..]));
        assert_eq!(b.item(1), None);
        assert_eq!(b.item(2), None);
        assert_eq!(b.item(3), None);
    }

    /// Before: `postcard::to_extend` consumed the buffer, so an item whose
    /// encoding failed took every earlier item of the batch with it (a map
    /// chunk then sent malformed items).
    #[test]
    fn regression_a_failed_push_kept_the_earlier_items() {
        struct Fussy(u32);
        impl Serialize for Fussy {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if self.0 == 3 {
                    Err(serde::ser::Error::custom("not this one"))
                } else {
                    (self.0, "padding").serialize(s)
                }
            }
        }
        let mut b = Batch::default();
        for i in 0..5 {
            assert_eq!(b.push(&Fussy(i)).is_err(), i == 3);
        }
        let got: Vec<u32> = (0..b.len())
            .map(|i| {
                postcard::from_bytes::<(u32, String)>(b.item(i).unwrap())
                    .unwrap()
                    .0
            })
            .collect();
        assert_eq!(got, [0, 1, 2, 4]);
    }

    /// Serialises as its descriptor, like an IPC object.
    struct Obj(SharedFd);

    impl Serialize for Obj {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            transfer::serialize_fd(&self.0, s)
        }
    }

    fn some_fd() -> SharedFd {
        Arc::new(rustix::fs::memfd_create(c"t", rustix::fs::MemfdFlags::CLOEXEC).unwrap())
    }

    /// Before: a descriptor went once per item that named it (a `map` over
    /// `(shared.clone(), x)` sent it once per item, and the worker opened it
    /// that many times).
    #[test]
    fn regression_a_batch_sent_a_shared_descriptor_once_per_item() {
        let (shared, other) = (some_fd(), some_fd());
        let mut b = Batch::default();
        b.push(&7_u32).unwrap(); // an item without any, first
        for i in 0..200_u32 {
            b.push(&(Obj(shared.clone()), i)).unwrap();
        }
        b.push(&(Obj(other.clone()), Obj(shared.clone()))).unwrap();
        assert_eq!(b.fds.list.len(), 2);
        assert_eq!(b.fd_count(), 2);
        assert!(b.item_fds(0).unwrap().is_empty());
        for i in 1..=200 {
            let fds = b.item_fds(i).unwrap();
            assert_eq!(fds.len(), 1);
            assert!(Arc::ptr_eq(&fds[0], &shared));
        }
        // The last item names `other` first: its own indices follow its order.
        let last = b.item_fds(201).unwrap();
        assert!(Arc::ptr_eq(&last[0], &other) && Arc::ptr_eq(&last[1], &shared));
        // Split after a crash, each part carries just its item's descriptors.
        let parts = b.split();
        assert_eq!(parts[0].fd_count(), 0);
        assert_eq!(parts[5].fds.list.len(), 1);
        assert_eq!(parts[201].fds.list.len(), 2);
        assert!(Arc::ptr_eq(&parts[201].item_fds(0).unwrap()[1], &shared));
    }
}
