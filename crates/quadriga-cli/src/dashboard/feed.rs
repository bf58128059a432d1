//! The feed: one thread reads the queue once a second (the status snapshot,
//! the recent failures, the dead letters) and publishes it as one ready-made
//! chunk of server-sent events, keeping a sample for the chart's history.
//!
//! The chunk goes into a `watch` channel, which holds only the latest one:
//! however many pages listen and however slowly they read, the feed keeps
//! one chunk, and each listener takes the newest when it is ready (a slow
//! one skips seconds, it never queues them).

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use quadriga::cluster::{BrokerConfig, QueueReader};
use serde::Serialize;
use tokio::sync::watch;

use super::history::{History, Sample};

/// How often the queue is read.
pub(crate) const EVERY: Duration = Duration::from_secs(1);

/// The most failures sent to the page.
pub(crate) const FAILURES: usize = 20;

/// The most dead letters sent to the page.
pub(crate) const DEAD: usize = 50;

/// What the feed shares with the server.
#[derive(Debug)]
pub(crate) struct Feed {
    frames: watch::Sender<Option<Bytes>>,
    history: Mutex<History>,
    /// Open event streams (see `events.rs`).
    pub(crate) streams: AtomicUsize,
}

impl Feed {
    /// Starts the reader thread for the queue `config` names (one
    /// connection, kept).
    pub(crate) fn start(config: &BrokerConfig) -> anyhow::Result<Arc<Feed>> {
        let mut reader = QueueReader::new(config)?;
        let feed = Arc::new(Feed {
            frames: watch::Sender::new(None),
            history: Mutex::new(History::default()),
            streams: AtomicUsize::new(0),
        });
        let shared = Arc::clone(&feed);
        std::thread::Builder::new()
            .name("quadriga-dashboard-feed".into())
            .spawn(move || {
                loop {
                    let started = Instant::now();
                    let frame = shared.tick(&mut reader);
                    shared.frames.send_replace(Some(frame));
                    std::thread::sleep(EVERY.saturating_sub(started.elapsed()));
                }
            })?;
        Ok(feed)
    }

    /// A feed with no reader thread, whose chunks a test publishes.
    #[cfg(test)]
    pub(crate) fn idle() -> Arc<Feed> {
        Arc::new(Feed {
            frames: watch::Sender::new(None),
            history: Mutex::new(History::default()),
            streams: AtomicUsize::new(0),
        })
    }

    /// Publishes `chunk` as the reader thread does.
    #[cfg(test)]
    pub(crate) fn publish(&self, chunk: &'static str) {
        self.frames
            .send_replace(Some(Bytes::from_static(chunk.as_bytes())));
    }

    /// A listener: sees the latest chunk, and each new one.
    pub(crate) fn subscribe(&self) -> watch::Receiver<Option<Bytes>> {
        self.frames.subscribe()
    }

    /// The chart's samples, oldest first.
    pub(crate) fn history(&self) -> MutexGuard<'_, History> {
        self.history.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One reading: `status`, `failures` and `dead` events, or one
    /// `broker-error` event.
    fn tick(&self, reader: &mut QueueReader) -> Bytes {
        let status = match reader.status() {
            Ok(status) => status,
            Err(e) => return event("broker-error", &error(&e)),
        };
        self.history().push(Sample::of(&status));
        let mut out = event("status", &status).to_vec();
        match reader.failures(FAILURES) {
            Ok(f) => out.extend_from_slice(&event("failures", &f)),
            Err(e) => out.extend_from_slice(&event("broker-error", &error(&e))),
        }
        let shards = status
            .shards
            .iter()
            .filter(|s| s.dead_letters > 0)
            .map(|s| s.shard);
        match reader.dead_letters(shards, DEAD) {
            Ok(d) => out.extend_from_slice(&event("dead", &d)),
            Err(e) => out.extend_from_slice(&event("broker-error", &error(&e))),
        }
        Bytes::from(out)
    }
}

/// `{"error": "..."}`.
pub(crate) fn error(e: &dyn std::fmt::Display) -> serde_json::Value {
    serde_json::json!({ "error": e.to_string() })
}

/// One server-sent event: its name and its data, one line of JSON.
fn event(name: &str, data: &impl Serialize) -> Bytes {
    let json = serde_json::to_string(data).unwrap_or_else(|e| error(&e).to_string());
    Bytes::from(format!("event: {name}\ndata: {json}\n\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_a_name_and_one_data_line() {
        let e = event("dead", &serde_json::json!({ "a": "x\ny" }));
        assert_eq!(&e[..], b"event: dead\ndata: {\"a\":\"x\\ny\"}\n\n");
    }
}
