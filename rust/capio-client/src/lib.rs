//! The CAPIO client: attach to a workflow's server (starting it on first use), then open, read,
//! write and list CAPIO files. File bytes move through shared memory directly; waits sleep on
//! futex words in the shared state table. No Python here: the extension module wraps this.
#![forbid(unsafe_code)]

mod bootstrap;
mod client;
mod conn;
pub mod control;
mod error;
pub mod paths;

pub use bootstrap::StartParams;
pub use client::{Client, DirEntry, FileStat, Opened, Readable, Settings};
pub use error::{ClientError, Result};
