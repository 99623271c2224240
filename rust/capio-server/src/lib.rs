//! `capio_server`: the node-local CAPIO server of one workflow. It owns the namespace of the CAPIO
//! directories its clients use, hands out shared-memory files, tracks producers and client
//! lifetimes, enforces the workflow's CAPIO-CL rules (commit, fire, permanent, exclude, storage)
//! and persists committed files. Layers: listener (the server loop) → session/connection →
//! handlers → namespace (+ rules, backing, persist, disk), with `shared` the state every thread
//! holds.
// Unsafe code only where MPI's non-blocking sends need it (`cluster::transport`), and in a test
// of the memory pool that maps memory as a client's `view()` does.
#![deny(unsafe_code)]

pub mod backing;
pub mod cli;
pub mod cluster;
pub mod connection;
pub mod disk;
pub mod error;
pub mod handlers;
pub mod json;
pub mod leftovers;
pub mod listener;
pub mod log;
pub mod namespace;
pub mod paths;
pub mod persist;
pub mod pool;
pub mod ready;
pub mod rules;
pub mod session;
pub mod shared;
pub mod spill;
pub mod status;

#[cfg(test)]
mod testdir;
