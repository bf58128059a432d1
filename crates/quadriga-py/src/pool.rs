//! `Pool`: a `quadriga::ProcessPool` whose tasks carry bytes, as a Python
//! class. Each task's handle is polled once with a waker that, when the task
//! ends, sends its id down a channel; `collect` waits on that channel with
//! the GIL released and returns the outcomes of the tasks that ended.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};
use quadriga::{ProcessPool, Shutdown, TaskError, TaskErrorKind, TaskHandle};
use serde_bytes::ByteBuf;

use crate::worker::{call, init};

type Outcome = Result<ByteBuf, TaskError>;

/// A task in flight, or one that ended before anyone collected it.
enum Slot {
    Running(TaskHandle<ByteBuf>),
    Ended(Outcome),
}

/// Sends a task's id when its handle is ready.
struct Notify {
    id: u64,
    tx: Sender<u64>,
}

impl Wake for Notify {
    fn wake(self: Arc<Self>) {
        let _ = self.tx.send(self.id);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let _ = self.tx.send(self.id);
    }
}

/// The process pool under `quadriga.ProcessPool`.
#[pyclass(frozen, module = "quadriga._quadriga")]
pub(crate) struct Pool {
    /// `None` once forgotten in a forked child.
    pool: RwLock<Option<ProcessPool>>,
    slots: Mutex<HashMap<u64, Slot>>,
    tx: Sender<u64>,
    rx: Receiver<u64>,
}

fn seconds(value: Option<f64>, what: &str) -> PyResult<Option<Duration>> {
    value
        .map(|s| {
            Duration::try_from_secs_f64(s).map_err(|_| {
                PyValueError::new_err(format!("{what} must be a number of seconds ≥ 0, not {s}"))
            })
        })
        .transpose()
}

#[pymethods]
impl Pool {
    /// Starts `workers` workers as `program args…`; `init` is the pickled
    /// initializer's payload, if any.
    #[new]
    #[pyo3(signature = (program, args, workers, timeout=None, memory_limit=None, max_tasks=None, init_payload=None, grace=0.5))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        program: String,
        args: Vec<String>,
        workers: usize,
        timeout: Option<f64>,
        memory_limit: Option<u64>,
        max_tasks: Option<u64>,
        init_payload: Option<Vec<u8>>,
        grace: f64,
    ) -> PyResult<Self> {
        let mut builder = ProcessPool::builder()
            .workers(workers)
            .worker_program(program, args)
            .grace(seconds(Some(grace), "grace")?.unwrap_or_default());
        if let Some(limit) = seconds(timeout, "timeout")? {
            builder = builder.timeout(limit);
        }
        if let Some(bytes) = memory_limit {
            builder = builder.memory_limit(bytes);
        }
        if let Some(n) = max_tasks {
            builder = builder.max_tasks_per_worker(n);
        }
        if let Some(payload) = init_payload {
            builder = builder.initializer(init, ByteBuf::from(payload));
        }
        let pool = builder
            .build()
            .map_err(|e| PyRuntimeError::new_err(format!("could not start the pool: {e}")))?;
        let (tx, rx) = crossbeam_channel::unbounded();
        Ok(Pool {
            pool: RwLock::new(Some(pool)),
            slots: Mutex::new(HashMap::new()),
            tx,
            rx,
        })
    }

    /// Submits one task; returns its id. `timeout` (seconds) overrides the
    /// pool's.
    #[pyo3(signature = (payload, timeout=None))]
    fn submit(&self, payload: &[u8], timeout: Option<f64>) -> PyResult<u64> {
        let timeout = seconds(timeout, "timeout")?;
        let guard = self.pool.read().unwrap_or_else(PoisonError::into_inner);
        let pool = guard
            .as_ref()
            .ok_or_else(|| PyRuntimeError::new_err("the pool belongs to another process"))?;
        let input = ByteBuf::from(payload);
        let handle = match timeout {
            Some(limit) => pool.submit_timeout(call, input, limit),
            None => pool.submit(call, input),
        };
        let id = handle.id();
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        // Polled under the lock, so the waker's id finds the slot in place.
        let slot = slots.entry(id).or_insert(Slot::Running(handle));
        if let Slot::Running(handle) = slot {
            let waker = Waker::from(Arc::new(Notify {
                id,
                tx: self.tx.clone(),
            }));
            if let Poll::Ready(outcome) = Pin::new(handle).poll(&mut Context::from_waker(&waker)) {
                *slot = Slot::Ended(outcome);
                let _ = self.tx.send(id);
            }
        }
        Ok(id)
    }

    /// Waits at most `timeout` seconds (with the GIL released) for tasks to
    /// end; returns up to `max` of them, each `(id, True, bytes)` or
    /// `(id, False, (kind, message, pid, signal, exit_code, timeout))`.
    fn collect<'py>(
        &self,
        py: Python<'py>,
        timeout: f64,
        max: usize,
    ) -> PyResult<Vec<Bound<'py, PyTuple>>> {
        let wait = seconds(Some(timeout), "timeout")?.unwrap_or_default();
        let rx = &self.rx;
        let ids = py.detach(|| {
            let mut ids = Vec::new();
            match rx.recv_timeout(wait) {
                Ok(id) => ids.push(id),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return ids,
            }
            while ids.len() < max.max(1) {
                match rx.try_recv() {
                    Ok(id) => ids.push(id),
                    Err(_) => break,
                }
            }
            ids
        });
        let mut ended = Vec::with_capacity(ids.len());
        {
            let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            for id in ids {
                let Some(slot) = slots.remove(&id) else {
                    continue;
                };
                match slot {
                    Slot::Ended(outcome) => ended.push((id, outcome)),
                    Slot::Running(mut handle) => {
                        let waker = Waker::from(Arc::new(Notify {
                            id,
                            tx: self.tx.clone(),
                        }));
                        match Pin::new(&mut handle).poll(&mut Context::from_waker(&waker)) {
                            Poll::Ready(outcome) => ended.push((id, outcome)),
                            Poll::Pending => {
                                slots.insert(id, Slot::Running(handle));
                            }
                        }
                    }
                }
            }
        }
        ended
            .into_iter()
            .map(|(id, outcome)| match outcome {
                Ok(bytes) => PyTuple::new(
                    py,
                    [
                        id.into_pyobject(py)?.into_any(),
                        true.into_pyobject(py)?.to_owned().into_any(),
                        PyBytes::new(py, &bytes).into_any(),
                    ],
                ),
                Err(err) => {
                    let info = (
                        kind_name(err.kind()),
                        err.message().to_owned(),
                        err.pid(),
                        err.signal(),
                        err.exit_code(),
                        err.timeout().map(|t| t.as_secs_f64()),
                    )
                        .into_pyobject(py)?;
                    PyTuple::new(
                        py,
                        [
                            id.into_pyobject(py)?.into_any(),
                            false.into_pyobject(py)?.to_owned().into_any(),
                            info.into_any(),
                        ],
                    )
                }
            })
            .collect()
    }

    /// Cancels a task: a queued one never runs, a running one's worker is
    /// killed. Returns whether it had not yet ended.
    fn cancel(&self, id: u64) -> bool {
        let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        match slots.get(&id) {
            Some(Slot::Running(handle)) => handle.cancel(),
            _ => false,
        }
    }

    /// Stops the pool: waits for what was submitted, or (`cancel`) cancels
    /// it and kills what runs; then stops every worker. The GIL is released.
    fn shutdown(&self, py: Python<'_>, cancel: bool) {
        let guard = self.pool.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(pool) = guard.as_ref() {
            let mode = if cancel {
                Shutdown::Cancel
            } else {
                Shutdown::Wait
            };
            py.detach(|| pool.shutdown(mode));
        }
    }

    /// The pids of the workers alive now.
    fn worker_pids(&self) -> Vec<u32> {
        let guard = self.pool.read().unwrap_or_else(PoisonError::into_inner);
        guard
            .as_ref()
            .map(ProcessPool::worker_pids)
            .unwrap_or_default()
    }

    /// The number of tasks submitted and not yet collected.
    fn pending(&self) -> usize {
        self.slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// In a forked child: forgets the parent's pool without stopping it (its
    /// supervisor thread and workers belong to the parent; dropping it here
    /// would wait for a thread that does not exist in this process).
    fn forget(&self) {
        let pool = self
            .pool
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        std::mem::forget(pool);
        let slots = std::mem::take(&mut *self.slots.lock().unwrap_or_else(PoisonError::into_inner));
        std::mem::forget(slots);
    }
}

fn kind_name(kind: TaskErrorKind) -> &'static str {
    match kind {
        TaskErrorKind::Panicked => "panicked",
        TaskErrorKind::Failed => "failed",
        TaskErrorKind::Crashed => "crashed",
        TaskErrorKind::TimedOut => "timed_out",
        TaskErrorKind::Cancelled => "cancelled",
        TaskErrorKind::Lost => "lost",
        TaskErrorKind::Codec => "codec",
        _ => "other",
    }
}
