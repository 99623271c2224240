//! Rust consumer side of pycapio's C API: the function table behind the capsule
//! `pycapio._pycapio.C_API` (the same `#[repr(C)]` layout as `capsule/pycapio_capi.h`), an import
//! that checks its version, and a safe wrapper.
//!
//! ```no_run
//! use std::io::Write;
//! # fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! // Once, with the GIL held (e.g. in your module's exec slot):
//! // SAFETY: the GIL is held here.
//! let api = unsafe { capio_capi::Api::import()? };
//! // Then from any thread, with or without the GIL:
//! let mut f = capio_capi::CapioFile::create(api, "/capio/dir/out.dat")?;
//! f.write_all(b"results")?;
//! f.close()?;
//! # Ok(()) }
//! ```
//!
//! Errors are `io::Error`s built from the C API's `-errno` (see the header for the CAPIO-specific
//! ones: `ENOTCONN` not initialised, `EXDEV` outside the CAPIO directory, `ETIMEDOUT` for
//! `PYCAPIO_WAIT_TIMEOUT`).

mod abi;
mod api;
mod file;

pub use abi::{
    ABI_MAJOR, ABI_MINOR, ATTR, CAPSULE_NAME, CapiTable, Header, ImportError, KIND_DIR, KIND_FILE,
    MAGIC, MODULE, Stat, check_header,
};
pub use api::{Api, DirEntry};
pub use file::CapioFile;
