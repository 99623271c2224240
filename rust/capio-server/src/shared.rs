//! State shared by every thread of a running server: the namespace, the state table, the listening
//! socket, and shutdown coordination.

use crate::cluster::Cluster;
use crate::log;
use crate::namespace::Namespace;
use capio_proto::StateTable;
use capio_proto::sys;
use std::os::fd::AsFd;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Who this server is, for `Status`.
#[derive(Debug, Default, Clone)]
pub struct Identity {
    pub workflow: String,
    /// The CAPIO directory it was started with (clients may attach with others).
    pub capio_dir: PathBuf,
    /// Where its log goes (`None`: stderr).
    pub log: Option<PathBuf>,
    /// Started by `pycapio server start`: clients' teardown requests are ignored.
    pub managed: bool,
}

/// What every thread of the server holds (behind one `Arc`): the namespace behind its lock, the
/// state table, the listening socket, and what a shutdown coordinates.
pub struct Shared {
    ns: Mutex<Namespace>,
    pub table: Arc<StateTable>,
    pub listener: UnixListener,
    /// The canonical CAPIO-CL file, told to every client at `Hello`.
    pub config: Option<PathBuf>,
    stopping: AtomicBool,
    work: Arc<WorkGate>,
    pub identity: Identity,
    /// Observer connections (`pycapio server status`) open now.
    pub observers: AtomicUsize,
    /// Requests clients made so far: what the answers they found without asking save.
    pub client_requests: std::sync::atomic::AtomicU64,
    /// The other nodes' servers, when this one is a rank of an MPI job (`--backend mpi`).
    pub cluster: Option<Cluster>,
}

impl Shared {
    pub fn new(
        ns: Namespace,
        table: Arc<StateTable>,
        listener: UnixListener,
        config: Option<PathBuf>,
        identity: Identity,
        cluster: Option<Cluster>,
    ) -> Shared {
        Shared {
            ns: Mutex::new(ns),
            table,
            listener,
            config,
            stopping: AtomicBool::new(false),
            work: Arc::new(WorkGate::default()),
            client_requests: std::sync::atomic::AtomicU64::new(0),
            identity,
            observers: AtomicUsize::new(0),
            cluster,
        }
    }

    /// The namespace, locked. A panic in some connection thread must not take every other client
    /// down with it, so a poisoned lock is taken over: each namespace operation leaves it consistent
    /// before anything that could panic.
    pub fn ns(&self) -> MutexGuard<'_, Namespace> {
        self.ns.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Start a graceful shutdown (idempotent): wake the accept loop, which runs the shutdown steps.
    pub fn begin_shutdown(&self, why: &str) {
        // Whatever the reason, a client that says Hello from now on is refused (and retries
        // against a fresh server) rather than attached to one that is going away.
        self.ns().refuse_new_clients();
        if !self.stopping.swap(true, Ordering::SeqCst) {
            log::info!("shutting down: {why}");
            // One namespace spans the nodes: none of them can go on without this one.
            if let Some(cluster) = &self.cluster {
                cluster.announce_stop(why);
            }
            sys::shutdown_socket(self.listener.as_fd());
        }
    }

    /// Register work that shutdown must wait for (a commit and its persistence). `None` once
    /// shutdown has begun draining.
    pub fn begin_work(&self) -> Option<WorkGuard> {
        WorkGate::enter(&self.work)
    }

    /// Refuse new work and wait until the work in flight is done.
    pub fn drain_work(&self) {
        self.work.close_and_drain();
    }
}

#[derive(Default)]
struct WorkGate {
    state: Mutex<(usize, bool)>,
    idle: Condvar,
}

impl WorkGate {
    fn enter(gate: &Arc<WorkGate>) -> Option<WorkGuard> {
        let mut st = gate.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.1 {
            return None;
        }
        st.0 += 1;
        Some(WorkGuard(gate.clone()))
    }

    fn close_and_drain(&self) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.1 = true;
        while st.0 > 0 {
            st = self.idle.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Work in flight; shutdown waits until every guard is dropped.
pub struct WorkGuard(Arc<WorkGate>);

impl Drop for WorkGuard {
    fn drop(&mut self) {
        let mut st = self.0.state.lock().unwrap_or_else(|e| e.into_inner());
        st.0 -= 1;
        // Only a draining shutdown waits (and it sets the flag under this lock before waiting):
        // a wake-up otherwise is a futex call per request for nobody.
        if st.0 == 0 && st.1 {
            self.0.idle.notify_all();
        }
    }
}
