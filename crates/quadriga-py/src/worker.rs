//! The worker's side: a Python interpreter started by the pool
//! (`python -c "…import quadriga._worker"`) calls [`serve_worker`], which
//! runs the library's worker loop; the loop runs the tasks below by name.

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use serde_bytes::ByteBuf;

/// Hands `payload` to `quadriga._runner.<function>` holding the GIL, and
/// returns the bytes it gives back. An error here is the runner's own
/// failure (it catches the task's exceptions itself).
fn run_in_python(function: &str, payload: &[u8]) -> Result<ByteBuf, String> {
    Python::attach(|py| {
        let runner = py.import("quadriga._runner")?;
        let out = runner.call_method1(function, (PyBytes::new(py, payload),))?;
        let bytes = out.cast::<PyBytes>()?;
        Ok::<_, PyErr>(ByteBuf::from(bytes.as_bytes()))
    })
    .map_err(|err| format!("the Python worker could not run the task: {err}"))
}

/// Calls a pickled callable (or a chunk of a map) and returns its pickled
/// outcome: see `quadriga._runner.run`.
#[quadriga::task(name = "quadriga_py.call")]
pub(crate) fn call(payload: ByteBuf) -> Result<ByteBuf, String> {
    run_in_python("run", &payload)
}

/// Runs the pool's pickled initializer; a raised exception fails the
/// worker's start (three in a row break the pool).
#[quadriga::task(name = "quadriga_py.init")]
pub(crate) fn init(payload: ByteBuf) -> Result<(), String> {
    let out = run_in_python("initialize", &payload)?;
    if out.is_empty() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out).into_owned())
    }
}

/// In a worker started by a `Pool`: serves tasks until the pool stops it,
/// then exits the process (without Python's finalisation, as `os._exit`).
/// Anywhere else: returns at once.
#[pyfunction]
pub(crate) fn serve_worker(py: Python<'_>) {
    py.detach(quadriga::ProcessPool::serve_program_worker);
}
