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

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// A runtime whose clock moves only when every task waits.
    fn paused() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap()
    }

    fn open_streams(feed: &Feed) -> usize {
        feed.streams.load(Ordering::Acquire)
    }

    #[test]
    fn a_reader_gets_the_latest_chunk_and_a_closed_stream_is_let_go() {
        paused().block_on(async {
            let feed = Feed::idle();
            feed.publish("first");
            let mut body = open(&feed).unwrap();
            let mut next = async || {
                let frame = body.frame().await.unwrap().unwrap();
                frame.into_data().unwrap()
            };
            assert_eq!(&next().await[..], b"retry: 2000\n\n");
            assert_eq!(&next().await[..], b"first");
            // While it does not read, two chunks wait in the channel and the
            // task holds a third; of those published meanwhile only the
            // latest is sent.
            for chunk in ["b", "c", "d", "e", "f", "g"] {
                feed.publish(chunk);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            for chunk in ["b", "c", "d", "g"] {
                assert_eq!(&next().await[..], chunk.as_bytes());
            }
            assert_eq!(open_streams(&feed), 1);
            drop(body);
            feed.publish("fourth");
            tokio::time::sleep(Duration::from_millis(10)).await;
            assert_eq!(open_streams(&feed), 0, "closed: let go at the next chunk");
        });
    }

    #[test]
    fn a_stream_nobody_reads_is_let_go_after_the_stall_limit() {
        paused().block_on(async {
            let feed = Feed::idle();
            let body = open(&feed).unwrap();
            for chunk in ["a", "b", "c", "d", "e"] {
                feed.publish(chunk);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            assert_eq!(open_streams(&feed), 1, "still within the limit");
            tokio::time::sleep(STALL).await;
            assert_eq!(open_streams(&feed), 0, "let go");
            drop(body);
        });
    }

    #[test]
    fn no_more_than_the_limit_are_open_at_once() {
        paused().block_on(async {
            let feed = Feed::idle();
            let bodies: Vec<_> = (0..MAX_STREAMS).map(|_| open(&feed).unwrap()).collect();
            assert!(open(&feed).is_none());
            assert_eq!(open_streams(&feed), MAX_STREAMS, "a refusal is not counted");
            drop(bodies);
            feed.publish("x");
            tokio::time::sleep(Duration::from_millis(10)).await;
            assert_eq!(open_streams(&feed), 0);
            assert!(open(&feed).is_some());
        });
    }
}
