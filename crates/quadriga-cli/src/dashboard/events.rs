//! `GET /api/events`: the feed as server-sent events, one chunk a second.
//!
//! Each stream is a small task that waits for the feed's next chunk and
//! hands it to the connection through a channel of two. Nothing piles up:
//! the feed keeps only its latest chunk, so a slow reader skips seconds; a
//! reader that takes nothing for [`STALL`] is dropped; a closed connection
//! drops the body, which ends the task at the next chunk (within a second).
//! At most [`MAX_STREAMS`] are open at once.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame};
use tokio::sync::mpsc;

use super::feed::Feed;

/// The most event streams open at once.
pub(crate) const MAX_STREAMS: usize = 64;

/// How long a stream may take no data before it is closed.
pub(crate) const STALL: Duration = Duration::from_secs(30);

/// The body of one event stream.
#[derive(Debug)]
pub(crate) struct Events(mpsc::Receiver<Bytes>);

impl Body for Events {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

/// Counts an open stream while it lives.
struct Open(Arc<Feed>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A new stream of `feed`'s chunks, or `None` when [`MAX_STREAMS`] are open.
/// Must be called on the runtime.
pub(crate) fn open(feed: &Arc<Feed>) -> Option<Events> {
    let n = feed.streams.fetch_add(1, Ordering::AcqRel);
    let open = Open(Arc::clone(feed));
    if n >= MAX_STREAMS {
        return None;
    }
    let mut chunks = feed.subscribe();
    let (tx, rx) = mpsc::channel(2);
    tokio::spawn(async move {
        let _open = open;
        // Tell the browser how soon to come back after a drop.
        if tx
            .send(Bytes::from_static(b"retry: 2000\n\n"))
            .await
            .is_err()
        {
            return;
        }
        loop {
            let chunk = chunks.borrow_and_update().clone();
            if let Some(chunk) = chunk {
                match tokio::time::timeout(STALL, tx.send(chunk)).await {
                    Ok(Ok(())) => {}
                    // Closed, or not reading: let it go.
                    _ => return,
                }
            }
            if chunks.changed().await.is_err() {
                return;
            }
        }
    });
    Some(Events(rx))
}
