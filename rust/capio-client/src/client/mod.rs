//! The per-process client: a table of open CAPIO fds and the operations on them. Reads and writes
//! touch only the file's shared-memory object and its state slot; open, stat, set-attributes,
//! mkdir, listing, unlink, rename, rmdir, close and exit talk to the server, and a write only when
//! it crosses its memory reservation (`Reserve`).

mod io;
mod local;
mod names;
mod open;
mod stat;
mod wait;

pub use names::DirEntry;
pub use open::Opened;
pub use stat::FileStat;
pub use wait::Readable;

use crate::bootstrap::{self, StartParams};
use crate::conn::Conn;
use crate::error::{ClientError, Result};
use crate::paths::Scope;
use capio_proto::{ExitReq, Fire, Slot, StateTable, server_flags};
use std::collections::HashMap;
use std::fs::File;
use std::os::fd::RawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What `pycapio_init` was given; a second init must match.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub capio_dir: PathBuf,
    pub app: String,
    pub workflow: String,
    pub server_exe: PathBuf,
    pub config_file: Option<PathBuf>,
    pub ready_timeout: Duration,
    /// Upper bound for any single wait (open of a missing file, read of uncommitted data).
    pub wait_timeout: Option<Duration>,
}

struct Handle {
    file: File,
    path: PathBuf,
    /// `None` for a committed input served from its file on disk, or a committed file opened
    /// from its memory object without the server (see `local`).
    slot: Option<u32>,
    /// A committed file opened from its memory object: the slot and access word it was offered
    /// under, whose length is its end while they hold (`Client::offered_end`).
    offered: Option<(u32, u32)>,
    /// A file of the namespace (not an input on disk): reported as the server reports those.
    namespace_file: bool,
    producer: bool,
    fire: Fire,
    readable: bool,
    writable: bool,
    append: bool,
    pos: AtomicU64,
    /// Writes may reach this end without asking the server's memory budget (`Reserve`);
    /// `u64::MAX` when the server has no budget.
    reserved: AtomicU64,
    /// The slot where this reader notes how far it read, for a file whose consumed bytes the
    /// server releases (`OpenReply::progress`).
    progress: Option<u32>,
    /// A writer's mapping of the recycled memory its file came with, made at its first long
    /// write into it (fresh memory is written with `pwrite`).
    map: std::sync::OnceLock<capio_proto::datamap::WriteMap>,
    /// Its file's writers write its memory object directly (`OpenReply::direct_write`): its
    /// length is the object's size until the commit, and this handle's writes are plain ones
    /// through `file`, which the server made for this writer (for a plain writer's CAPIO fd, a
    /// duplicate of the plain fd's).
    direct_write: bool,
}

impl Handle {
    /// The file's length as this handle sees it now: what its producers published, or of a file
    /// written directly and not committed yet, its object's size (as the server's `len`).
    fn live_len(&self, slot: &capio_proto::Slot) -> Result<u64> {
        if !self.direct_write || slot.state() != capio_proto::SlotState::Open {
            return Ok(slot.len.load(std::sync::atomic::Ordering::SeqCst));
        }
        self.file
            .metadata()
            .map(|m| m.len())
            .map_err(|e| ClientError::from_io(e, self.path.clone()))
    }
}

pub struct Client {
    settings: Settings,
    scope: Scope,
    conn: Mutex<Conn>,
    probe: UnixStream,
    table: StateTable,
    handles: Mutex<HashMap<RawFd, Arc<Handle>>>,
    root_dev: std::sync::OnceLock<u64>,
    server_pid: i32,
    started_server: bool,
    /// The server's CAPIO-CL rules (None without a configuration): `exclude` is decided here.
    rules: Option<capio_cl::Rules>,
    /// The server enforces a memory budget: writes past a handle's reserved end ask first.
    memory_limited: bool,
    /// The server's `/proc/<pid>/fd`, where files in memory are reached directly (see `local`).
    server_fds: std::sync::OnceLock<Option<std::os::fd::OwnedFd>>,
}

/// Load the rules the server runs with; a client that asked for a different file is refused, since
/// one server applies one configuration to the whole workflow.
fn load_server_rules(
    settings: &Settings,
    server_config: Option<&Path>,
    scope: &Scope,
) -> Result<Option<capio_cl::Rules>> {
    let same = |a: &Path, b: &Path| std::fs::canonicalize(a).ok() == std::fs::canonicalize(b).ok();
    match (&settings.config_file, server_config) {
        (Some(mine), Some(theirs)) if !same(mine, theirs) => Err(ClientError::Config(format!(
            "workflow '{}' is already served with CAPIO-CL file '{}', not '{}'",
            settings.workflow,
            theirs.display(),
            mine.display()
        ))),
        (Some(mine), None) => Err(ClientError::Config(format!(
            "workflow '{}' is already served without a CAPIO-CL file; '{}' was not applied \
             (stop the server first, or use another workflow name)",
            settings.workflow,
            mine.display()
        ))),
        (_, Some(file)) => capio_cl::load(file, &scope.real)
            .map(Some)
            .map_err(|e| ClientError::Config(e.to_string())),
        (None, None) => Ok(None),
    }
}

impl Client {
    /// Attach to the workflow's server (starting it if needed).
    pub fn connect(settings: Settings) -> Result<Client> {
        let cwd = std::env::current_dir().map_err(|e| ClientError::from_io(e, None::<PathBuf>))?;
        let scope = Scope::new(&settings.capio_dir, &cwd)
            .map_err(|e| ClientError::from_io(e, settings.capio_dir.clone()))?;
        // A bad configuration is reported here, with its JSON path, before any server is started.
        if let Some(file) = &settings.config_file {
            capio_cl::load(file, &scope.real).map_err(|e| ClientError::Config(e.to_string()))?;
        }
        let attached = bootstrap::attach(&StartParams {
            workflow: &settings.workflow,
            app: &settings.app,
            capio_dir: &scope.real,
            server_exe: &settings.server_exe,
            config_file: settings.config_file.as_deref(),
            ready_timeout: settings.ready_timeout,
            managed: false,
        })?;
        let probe = attached
            .conn
            .probe()
            .map_err(|e| ClientError::from_io(e, None::<PathBuf>))?;
        let rules = load_server_rules(&settings, attached.config.as_deref(), &scope)?;
        Ok(Client {
            settings,
            scope,
            rules,
            conn: Mutex::new(attached.conn),
            probe,
            table: attached.table,
            handles: Mutex::new(HashMap::new()),
            root_dev: std::sync::OnceLock::new(),
            server_pid: attached.server_pid,
            started_server: attached.started,
            memory_limited: attached.flags & server_flags::MEMORY_LIMIT != 0,
            server_fds: std::sync::OnceLock::new(),
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The real path of the CAPIO directory.
    pub fn capio_dir(&self) -> &Path {
        &self.scope.real
    }

    /// The server's pid if this client started it.
    pub fn started_server_pid(&self) -> Option<i32> {
        self.started_server.then_some(self.server_pid)
    }

    /// The normalised path inside the CAPIO directory, or None when `p` is outside it.
    /// Paths the CAPIO-CL file excludes are not CAPIO's.
    pub fn capio_path(&self, p: &Path) -> Option<PathBuf> {
        // An absolute path needs no working directory: one getcwd less on every open.
        let abs = if p.is_absolute() {
            self.scope.resolve(p, Path::new("/"))?
        } else {
            self.scope.resolve(p, &std::env::current_dir().ok()?)?
        };
        match &self.rules {
            Some(r) if r.is_excluded(&abs) => None,
            _ => Some(abs),
        }
    }

    fn require_capio_path(&self, p: &Path) -> Result<PathBuf> {
        self.capio_path(p)
            .ok_or_else(|| ClientError::OutsideCapioDir {
                path: p.to_path_buf(),
                root: self.scope.real.clone(),
            })
    }

    /// The device of the CAPIO directory, looked up once.
    fn root_dev(&self) -> u64 {
        use std::os::unix::fs::MetadataExt;
        *self
            .root_dev
            .get_or_init(|| std::fs::metadata(&self.scope.real).map_or(0, |m| m.dev()))
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Conn> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn handle(&self, fd: RawFd) -> Result<Arc<Handle>> {
        let handles = self.handles.lock().unwrap_or_else(|e| e.into_inner());
        handles
            .get(&fd)
            .cloned()
            .ok_or_else(|| ClientError::os(libc::EBADF, None))
    }

    pub fn is_capio_fd(&self, fd: RawFd) -> bool {
        self.handles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&fd)
    }

    fn slot(&self, index: u32) -> Result<&Slot> {
        self.table.slot(index).ok_or(ClientError::Os {
            errno: libc::EIO,
            path: None,
        })
    }

    /// Clean termination: the server commits this client's `on_termination` files and persists
    /// them before answering. Open fds are closed.
    pub fn exit(&self, teardown_server: bool) -> Result<()> {
        let fds: Vec<RawFd> = self
            .handles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .copied()
            .collect();
        for fd in fds {
            let _ = self.close(fd);
        }
        let req = ExitReq {
            teardown: u32::from(teardown_server),
            _pad: 0,
        };
        self.conn().call(&req, &[])?.check(&self.scope.real)?;
        Ok(())
    }
}
