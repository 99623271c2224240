//! The only place that calls `pyo3_ffi`: owned references, argument parsing, conversions, error
//! mapping, GIL release and buffers, each as a small safe wrapper. Callers must hold the GIL
//! (every entry point does: CPython calls them with it) unless a function says otherwise.

pub mod args;
pub mod buffer;
pub mod convert;
pub mod err;
pub mod gil;
pub mod module;
pub mod obj;
pub mod process;
pub mod proxy;
