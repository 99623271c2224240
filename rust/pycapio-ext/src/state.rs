//! The process's one CAPIO client (a Rust object, not a Python one). After `fork` the child drops
//! the parent's connection and attaches again, as the same app, on its next CAPIO call.

use capio_client::{Client, ClientError, Settings};
use std::sync::{Arc, Mutex, MutexGuard};

struct State {
    client: Option<Arc<Client>>,
    /// The settings a forked child re-attaches with.
    after_fork: Option<Settings>,
    /// What `pycapio_init` returned (server pid if this process started it, else -1).
    init_result: i64,
    /// Whether a `CapioContext` attached (or confirmed) this client: only then may a later context
    /// reuse it with other start-up settings (a plain `pycapio_init` exports nothing for it).
    by_context: bool,
}

static STATE: Mutex<State> = Mutex::new(State {
    client: None,
    after_fork: None,
    init_result: -1,
    by_context: false,
});

fn lock() -> MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// The attached client, re-attaching in a forked child.
pub fn current() -> Result<Arc<Client>, ClientError> {
    let mut st = lock();
    if let Some(c) = &st.client {
        return Ok(c.clone());
    }
    let settings = st.after_fork.clone().ok_or(ClientError::NotInitialized)?;
    // The settings stay until the attach succeeds, so a failed attempt can be retried.
    let c = Arc::new(Client::connect(settings)?);
    st.after_fork = None;
    st.client = Some(c.clone());
    Ok(c)
}

pub fn peek() -> Option<Arc<Client>> {
    lock().client.clone()
}

pub fn install(c: Arc<Client>, init_result: i64) {
    let mut st = lock();
    st.client = Some(c);
    st.after_fork = None;
    st.init_result = init_result;
    st.by_context = false;
}

pub fn by_context() -> bool {
    lock().by_context
}

pub fn set_by_context() {
    lock().by_context = true;
}

pub fn init_result() -> i64 {
    lock().init_result
}

pub fn take() -> Option<Arc<Client>> {
    let mut st = lock();
    st.after_fork = None;
    st.by_context = false;
    st.client.take()
}

/// In a forked child: forget the parent's connection (closing only the child's copies of its fds).
pub fn after_fork_in_child() {
    let mut st = lock();
    if let Some(c) = st.client.take() {
        st.after_fork = Some(c.settings().clone());
        st.init_result = -1;
    }
}
