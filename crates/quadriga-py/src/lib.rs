//! The Rust part of the `quadriga` Python package (`python/`), imported as
//! `quadriga._quadriga`: the process pool of the `quadriga` library, driven
//! from Python, and the tasks its workers run.
//!
//! * `worker.rs`: the two registered tasks a worker runs (call a pickled
//!   callable, run the initializer); each hands its bytes to the pure-Python
//!   `quadriga._runner`, holding the GIL, and returns what it gives back.
//! * `pool.rs`: `Pool`, the pool as a Python class: submit bytes, collect the
//!   outcomes of finished tasks (waiting with the GIL released), cancel,
//!   shut down.
//!
//! Pickling, futures, chunking and exceptions are Python's business
//! (`python/quadriga/`); this crate moves bytes and reports how tasks ended.

mod pool;
mod worker;

use pyo3::prelude::*;

/// The extension module.
#[pymodule]
fn _quadriga(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<pool::Pool>()?;
    m.add_function(wrap_pyfunction!(worker::serve_worker, m)?)?;
    Ok(())
}
