//! Running blocking work without the GIL, with a way back in to run signal handlers.

use pyo3_ffi as ffi;
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

/// Run `f` with the GIL released. `f` gets an `interrupt` callback that briefly retakes the GIL,
/// runs pending signal handlers and returns false if one raised (e.g. KeyboardInterrupt), in
/// which case `f` should stop and report `ClientError::Interrupted`.
pub fn allow_threads<T>(f: impl FnOnce(&mut dyn FnMut() -> bool) -> T) -> T {
    // SAFETY: the caller holds the GIL (entry points always do); we give it back below.
    let state = Cell::new(unsafe { ffi::PyEval_SaveThread() });
    let mut interrupt = || {
        // SAFETY: re-take the GIL with the saved thread state, check signals, release again.
        unsafe {
            ffi::PyEval_RestoreThread(state.get());
            let ok = ffi::PyErr_CheckSignals() == 0;
            state.set(ffi::PyEval_SaveThread());
            ok
        }
    };
    let r = catch_unwind(AssertUnwindSafe(|| f(&mut interrupt)));
    // SAFETY: re-take the GIL before touching Python again, even if `f` panicked.
    unsafe { ffi::PyEval_RestoreThread(state.get()) };
    r.unwrap_or_else(|p| resume_unwind(p))
}
