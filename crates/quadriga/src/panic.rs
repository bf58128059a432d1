//! Panics are data: a task's panic becomes a [`TaskError`] with its message,
//! location and (when `RUST_BACKTRACE` asks for one) backtrace.
//!
//! `catch_unwind` gives only the payload, so a process-wide panic hook, installed
//! once when the first pool is built, records the location and backtrace of
//! panics that happen *inside a task* in a thread-local slot, and prints nothing
//! for them: the error reaches whoever joins the task. Panics outside tasks go to
//! the hook that was installed before ours, unchanged.

use std::any::Any;
use std::backtrace::{Backtrace, BacktraceStatus};
use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

use crate::error::{PanicLocation, TaskError};

thread_local! {
    /// How many task bodies are running on this thread (nested by `yield`).
    static IN_TASK: Cell<u32> = const { Cell::new(0) };
    /// Location and backtrace of the last panic inside a task on this thread.
    static LAST_PANIC: RefCell<Option<(Option<PanicLocation>, Option<String>)>> =
        const { RefCell::new(None) };
    /// Whether `LAST_PANIC` holds something: a cheap check for the hot path.
    static HAS_LAST: Cell<bool> = const { Cell::new(false) };
}

static HOOK: Once = Once::new();

/// Installs the capturing panic hook, chained to the previous one. Idempotent.
pub(crate) fn install_hook() {
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if IN_TASK.with(Cell::get) == 0 {
                return previous(info);
            }
            let location = info
                .location()
                .map(|l| PanicLocation::new(l.file(), l.line(), l.column()));
            let bt = Backtrace::capture();
            let backtrace = (bt.status() == BacktraceStatus::Captured).then(|| bt.to_string());
            LAST_PANIC.with(|slot| *slot.borrow_mut() = Some((location, backtrace)));
            HAS_LAST.with(|h| h.set(true));
        }));
    });
}

/// Marks this thread as running task code for as long as the guard lives.
pub(crate) struct InTask(());

impl InTask {
    pub(crate) fn enter() -> Self {
        IN_TASK.with(|n| n.set(n.get() + 1));
        clear_last();
        InTask(())
    }
}

impl Drop for InTask {
    fn drop(&mut self) {
        IN_TASK.with(|n| n.set(n.get() - 1));
    }
}

/// Forgets a recorded panic location. A panic the previous task (or item)
/// caught itself leaves one behind; a later `resume_unwind`, which skips the
/// hook, must not inherit it. On the hot path this is one thread-local read.
#[inline]
fn clear_last() {
    if HAS_LAST.with(Cell::get) {
        HAS_LAST.with(|h| h.set(false));
        LAST_PANIC.with(|slot| {
            if let Ok(mut slot) = slot.try_borrow_mut() {
                *slot = None;
            }
        });
    }
}

/// Runs `f`, turning a panic into a [`TaskError`] of kind `Panicked`.
/// The caller must hold an [`InTask`] guard for the location to be captured.
#[inline]
pub(crate) fn catch<R>(f: impl FnOnce() -> R) -> Result<R, TaskError> {
    clear_last();
    panic::catch_unwind(AssertUnwindSafe(f)).map_err(from_payload)
}

/// The message of a panic payload, consuming it. Non-string payloads are
/// reported as such, never lost; a payload whose destructor panics is contained.
pub(crate) fn payload_message(payload: Box<dyn Any + Send>) -> String {
    let message = if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload (Box<dyn Any + Send>)".to_owned()
    };
    let _ = panic::catch_unwind(AssertUnwindSafe(move || drop(payload)));
    message
}

/// Builds the error for a caught panic payload, with the location and
/// backtrace the hook recorded.
pub(crate) fn from_payload(payload: Box<dyn Any + Send>) -> TaskError {
    let message = payload_message(payload);
    let (location, backtrace) = LAST_PANIC
        .with(|slot| slot.borrow_mut().take())
        .unwrap_or_default();
    TaskError::panicked(message, location, backtrace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_and_str_payloads_keep_their_message() {
        install_hook();
        let _g = InTask::enter();
        let err = catch(|| panic!("static")).unwrap_err();
        assert_eq!(err.message(), "static");
        let n = 3;
        let err = catch(|| panic!("formatted {n}")).unwrap_err();
        assert_eq!(err.message(), "formatted 3");
        let at = err.location().unwrap();
        assert!(at.file().ends_with("panic.rs"), "{at}");
    }

    #[test]
    fn non_string_payload_is_reported() {
        install_hook();
        let _g = InTask::enter();
        let err = catch(|| std::panic::panic_any(42_u8)).unwrap_err();
        assert!(err.is_panic());
        assert!(err.message().contains("non-string payload"));
    }
}
