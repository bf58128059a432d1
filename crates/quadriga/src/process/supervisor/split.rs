//! A chunk whose worker died, split into single-item jobs whose outcomes are
//! gathered back into the chunk's own sink, so only the item that crashes
//! fails.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::TaskError;
use crate::task::outcomes::Outcomes;

use super::job::{Job, Sink};

/// One job per item of `job`, in order; `job`'s sink gets all their outcomes,
/// in item order, once the last one ends. Dropping a part unfinished drops the
/// chunk's sink unfinished (its map answers those items as cancelled).
pub(super) fn split(job: Job) -> Vec<Job> {
    let parts = job.input.split();
    let assembly = Arc::new(Mutex::new(Assembly {
        sink: Some(job.sink),
        items: (0..parts.len()).map(|_| None).collect(),
        left: parts.len(),
        elapsed: Duration::ZERO,
    }));
    parts
        .into_iter()
        .enumerate()
        .map(|(index, input)| Job {
            id: crate::handle::next_id(),
            task: job.task,
            input,
            timeout: job.timeout,
            retries: job.retries,
            sink: Box::new(Part {
                assembly: Arc::clone(&assembly),
                index,
            }),
            started: true,
        })
        .collect()
}

/// Gathers the single-item jobs a crashed chunk was split into.
struct Assembly {
    sink: Option<Box<dyn Sink>>,
    items: Vec<Option<Result<Vec<u8>, TaskError>>>,
    left: usize,
    elapsed: Duration,
}

struct Part {
    assembly: Arc<Mutex<Assembly>>,
    index: usize,
}

impl Sink for Part {
    fn start(&mut self) -> bool {
        true
    }

    fn finish(self: Box<Self>, outcomes: Outcomes, elapsed: Duration) {
        let mut a = self.assembly.lock().unwrap_or_else(|p| p.into_inner());
        let item = match outcomes.iter().next() {
            Some(Ok(bytes)) => Ok(bytes.to_vec()),
            Some(Err(Some(err))) => Err(err.clone()),
            Some(Err(None)) | None => Err(TaskError::codec("no outcome for a split item")),
        };
        if a.items[self.index].replace(item).is_none() {
            a.left -= 1;
        }
        a.elapsed += elapsed;
        if a.left == 0 {
            let sink = a.sink.take();
            let mut whole = Outcomes::default();
            for item in a.items.iter_mut() {
                match item.take().expect("every part answered") {
                    Ok(bytes) => whole.push_ok(&bytes),
                    Err(err) => whole.push_err(err),
                }
            }
            let elapsed = a.elapsed;
            drop(a);
            if let Some(sink) = sink {
                sink.finish(whole, elapsed);
            }
        }
    }
}
