//! The contract between `capio_server` and its clients: frames on the control socket, the shared
//! per-file state table, where a workflow's runtime files live, and the few raw syscalls both need.
//!
//! Nothing here knows about Python; `unsafe` code is confined to `sys` and `table` (which also maps the namespace `index`).

pub mod datamap;
pub mod index;
pub mod runtime;
pub mod sys;
pub mod table;
pub mod wire;

pub use table::{Slot, SlotState, StateTable};
pub use wire::*;
