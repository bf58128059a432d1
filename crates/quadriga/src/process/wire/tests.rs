//! The wire's tests across its parts: frames, the outbox and the inbox,
//! through closures and a real socket.

use std::os::fd::AsFd;
use std::sync::Arc;

use serde::Serialize;

use super::*;
use crate::task::batch::Batch;
use crate::task::fds::{Fds, FdsError};
use crate::task::transfer::{self, SharedFd};

fn frame(msg: &Down) -> Vec<u8> {
    let mut out = Vec::new();
    encode(msg, &mut out, DEFAULT_MAX_FRAME).unwrap();
    out
}

#[test]
fn round_trip_in_pieces() {
    let mut input = Batch::default();
    input.push(&(1_u32, "two".to_string())).unwrap();
    input.push(&(3_u32, "four".to_string())).unwrap();
    let msgs = [
        Down::Run {
            job: 7,
            task: "t".into(),
            input: std::borrow::Cow::Owned(input),
        },
        Down::Exit,
    ];
    let bytes: Vec<u8> = msgs.iter().flat_map(frame).collect();
    let mut dec = Decoder::new(DEFAULT_MAX_FRAME);
    let mut got = Vec::new();
    for byte in bytes {
        dec.feed(&[byte]);
        while let Some(m) = dec.next::<Down>().unwrap() {
            got.push(m);
        }
    }
    assert_eq!(got, msgs);
    assert!(!dec.has_partial());
}

#[test]
fn oversized_length_is_refused_before_allocating() {
    let mut dec = Decoder::new(1024);
    dec.feed(&u32::MAX.to_le_bytes());
    assert_eq!(
        dec.next::<Up>(),
        Err(FrameError::TooLarge {
            len: u32::MAX as usize,
            max: 1024
        })
    );
}

#[test]
fn encoding_refuses_oversized_messages_and_leaves_output_intact() {
    let mut out = vec![9];
    let mut input = Batch::default();
    input.push_raw(&[0; 2048], &[]);
    let msg = Down::Run {
        job: 1,
        task: "t".into(),
        input: std::borrow::Cow::Owned(input),
    };
    assert!(matches!(
        encode(&msg, &mut out, 1024),
        Err(FrameError::TooLarge { .. })
    ));
    assert_eq!(out, [9]);
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

fn run(input: Batch) -> Down<'static> {
    Down::Run {
        job: 1,
        task: "t".into(),
        input: std::borrow::Cow::Owned(input),
    }
}

/// The frame half of `task::batch`'s
/// `regression_a_batch_sent_a_shared_descriptor_once_per_item`: a frame takes
/// each distinct descriptor of its batch once, whatever the number of items
/// that name it.
#[test]
fn regression_a_frame_sent_a_shared_descriptor_once_per_item() {
    let (shared, other) = (some_fd(), some_fd());
    let mut b = Batch::default();
    b.push(&7_u32).unwrap();
    for i in 0..200_u32 {
        b.push(&(Obj(shared.clone()), i)).unwrap();
    }
    b.push(&(Obj(other.clone()), Obj(shared.clone()))).unwrap();
    let mut out = Outbox::default();
    out.push(&run(b), DEFAULT_MAX_FRAME).unwrap();
    let attached: usize = out.marks.iter().map(|(_, fds)| fds.len()).sum();
    assert_eq!(attached, 2);
}

/// Before: the supervisor dropped what was left of a frame when a send
/// failed, whatever the error; after `ETOOMANYREFS` halfway through a
/// frame, the worker waited forever for the rest. The outbox keeps all
/// of it, and a later flush goes on exactly where the failed one stopped.
#[test]
fn regression_a_refused_descriptor_group_kept_the_rest_of_the_frame() {
    let fds: Vec<SharedFd> = (0..300).map(|_| some_fd()).collect();
    let mut big = Batch::default();
    big.push(&fds.iter().cloned().map(Obj).collect::<Vec<_>>())
        .unwrap();
    let mut small = Batch::default();
    small.push(&(Obj(fds[0].clone()), "small")).unwrap();
    let msgs = [run(big), run(small), Down::Exit];
    let mut out = Outbox::default();
    let ends: Vec<u64> = msgs
        .iter()
        .map(|m| out.push(m, DEFAULT_MAX_FRAME).unwrap())
        .collect();
    let mut stream = Vec::new();
    let mut groups = Vec::new();
    let mut refusals = 0;
    // The first group passes; the second is refused three times.
    let result = out.flush_with(|bytes, fds| {
        if !fds.is_empty() && !groups.is_empty() {
            refusals += 1;
            return Err(rustix::io::Errno::TOOMANYREFS);
        }
        if !fds.is_empty() {
            groups.push(fds.len());
        }
        stream.extend_from_slice(bytes);
        Ok(bytes.len())
    });
    assert_eq!(result, Err(rustix::io::Errno::TOOMANYREFS));
    assert_eq!(refusals, 1);
    assert!(!out.is_empty(), "the rest of the frame was dropped");
    assert_eq!(out.written(), 1, "only the first group's byte is out");
    for _ in 0..2 {
        assert!(
            out.flush_with(|_, _| Err(rustix::io::Errno::TOOMANYREFS))
                .is_err()
        );
        assert_eq!(out.written(), 1);
    }
    // Room again: partial writes, as a socket may take.
    let done = out.flush_with(|bytes, fds| {
        if !fds.is_empty() {
            groups.push(fds.len());
        }
        let n = bytes.len().min(7);
        stream.extend_from_slice(&bytes[..n]);
        Ok(n)
    });
    assert_eq!(done, Ok(true));
    assert_eq!(groups, [253, 47, 1]);
    assert_eq!(out.written(), *ends.last().unwrap());
    assert_eq!(stream.len() as u64, out.written());
    let mut dec = Decoder::new(DEFAULT_MAX_FRAME);
    dec.feed(&stream);
    for msg in msgs {
        // Descriptors are not in the bytes: compare the rest.
        let mut bare = msg;
        if let Down::Run { input, .. } = &mut bare {
            input.to_mut().fds = Fds::default();
        }
        assert_eq!(dec.next::<Down>().unwrap().unwrap(), bare);
    }
    assert!(!dec.has_partial());
}

/// Frames and descriptors through a real socket: each frame claims its
/// own, in the groups they were sent in.
#[test]
fn descriptors_cross_a_socket_frame_by_frame() {
    use rustix::net::{AddressFamily, SocketFlags, SocketType, socketpair};
    let (tx, rx) = socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .unwrap();
    let fds: Vec<SharedFd> = (0..300).map(|_| some_fd()).collect();
    let mut big = Batch::default();
    big.push(&fds.iter().cloned().map(Obj).collect::<Vec<_>>())
        .unwrap();
    let mut small = Batch::default();
    small.push(&Obj(fds[299].clone())).unwrap();
    small.push(&Obj(fds[299].clone())).unwrap();
    let mut out = Outbox::default();
    out.push(&run(big), DEFAULT_MAX_FRAME).unwrap();
    out.push(&run(small), DEFAULT_MAX_FRAME).unwrap();
    assert_eq!(
        out.flush(tx.as_fd(), rustix::net::SendFlags::empty()),
        Ok(true)
    );
    drop(tx);
    let mut inbox = Inbox::default();
    let mut dec = Decoder::new(DEFAULT_MAX_FRAME);
    let mut buf = vec![0; 1 << 16];
    let mut got = Vec::new();
    loop {
        while let Some(Down::Run { mut input, .. }) = dec.next::<Down>().unwrap() {
            let input = input.to_mut();
            input.fds = Fds::received(inbox.claim(input.fd_count()).unwrap());
            got.push(std::mem::take(input));
        }
        let n = inbox.recv(rx.as_fd(), &mut buf).unwrap();
        if n == 0 {
            break;
        }
        dec.feed(&buf[..n]);
    }
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].item_fds(0).unwrap().len(), 300);
    assert_eq!(got[1].fd_count(), 1, "one descriptor for both items");
    let same = |a: &SharedFd, b: &SharedFd| {
        let (a, b) = (rustix::fs::fstat(a).unwrap(), rustix::fs::fstat(b).unwrap());
        (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
    };
    assert!(same(&got[0].item_fds(0).unwrap()[299], &fds[299]));
    assert!(same(&got[1].item_fds(1).unwrap()[0], &fds[299]));
    assert!(inbox.groups.is_empty());
}

/// A group lost in transit (`MSG_CTRUNC`, the worker out of descriptors)
/// fails the items that name its descriptors, not the frame's others and
/// not the frames behind it.
#[test]
fn a_lost_group_fails_only_the_items_that_name_it() {
    let fds: Vec<SharedFd> = (0..300).map(|_| some_fd()).collect();
    let mut b = Batch::default();
    b.push(&fds[..253].iter().cloned().map(Obj).collect::<Vec<_>>())
        .unwrap();
    b.push(&"no descriptors").unwrap();
    b.push(&fds[253..].iter().cloned().map(Obj).collect::<Vec<_>>())
        .unwrap();
    let mut inbox = Inbox::default();
    inbox.groups.push_back(None); // the first group: lost
    inbox.groups.push_back(Some(fds[253..].to_vec()));
    inbox.groups.push_back(Some(vec![fds[0].clone()])); // the next frame's
    let mut got = b.clone();
    got.fds = Fds::received(inbox.claim(b.fd_count()).unwrap());
    assert_eq!(got.item_fds(0).unwrap_err(), FdsError::Lost);
    assert!(FdsError::Lost.to_string().contains("RLIMIT_NOFILE"));
    assert_eq!(got.item_fds(1).unwrap().len(), 0);
    assert_eq!(got.item_fds(2).unwrap().len(), 47);
    assert_eq!(inbox.claim(1).unwrap().len(), 1);
    // A lost descriptor is never sent on.
    let mut out = Outbox::default();
    assert_eq!(
        out.push(&run(got), DEFAULT_MAX_FRAME),
        Err(FrameError::LostDescriptor)
    );
    assert!(out.is_empty());
    // A group that is not what the sender would have sent is an error.
    inbox.groups.push_back(Some(fds[..2].to_vec()));
    assert!(inbox.claim(3).is_err());
    assert!(inbox.claim(1).is_err(), "nothing left");
}
