//! The per-process client: a table of open CAPIO fds and the operations on them. Reads and writes
//! touch only the file's shared-memory object and its state slot; only open, stat, mkdir, listing,
//! unlink, rename, rmdir and exit talk to the server.

use crate::bootstrap::{self, StartParams};
use crate::conn::{Conn, status_of};
use crate::error::{ClientError, Result};
use crate::paths::Scope;
use capio_proto::{
    CloseReq, Empty, ExitReq, Kind, ListReply, MkdirReq, OpenReply, OpenReq, ReserveReply,
    ReserveReq, SetAttrReq, Slot, SlotState, StatReply, StateTable, StatusReply, fire, node_kind,
    open_kind, rename_tail, server_flags, sys,
};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long one futex sleep lasts before the waiter checks that the server is alive and that no
/// signal handler wants to run. Wake-ups for data never depend on it.
const WAIT_SLICE: Duration = Duration::from_millis(250);

/// What a waiter for a missing path waits for: its timeout is `ENOENT`, not `ETIMEDOUT`.
const TO_BE_CREATED: &str = "to be created";

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
    /// The normalised path it was opened as (inside the CAPIO directory), for `fstat`.
    capio_path: PathBuf,
    /// `None` for a committed input served from its file on disk.
    slot: Option<u32>,
    producer: bool,
    fire: u32,
    readable: bool,
    writable: bool,
    append: bool,
    pos: AtomicU64,
    /// Writes may reach this end without asking the server's memory budget (`Reserve`);
    /// `u64::MAX` when the server has no budget.
    reserved: AtomicU64,
}

/// A directory entry: its name and its `node_kind` (with `node_kind::LINK` for a symbolic link;
/// `node_kind::is_dir` tells a directory).
pub type DirEntry = (Vec<u8>, u32);

#[derive(Clone, Copy, Debug)]
pub struct FileStat {
    pub is_dir: bool,
    pub size: u64,
    pub mtime_ns: i64,
    /// Permission bits.
    pub mode: u32,
    pub committed: bool,
    pub atime_ns: i64,
    pub ctime_ns: i64,
    pub uid: u32,
    pub gid: u32,
    /// The `S_IFMT` bits of `st_mode`.
    pub file_type: u32,
    pub nlink: u32,
    /// `st_ino`/`st_dev` of the file's data object or disk node (see `reported_identity`).
    pub ino: u64,
    pub dev: u64,
}

fn ns(s: i64, n: i64) -> i64 {
    s.saturating_mul(1_000_000_000).saturating_add(n)
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
}

/// The server hands every open of a file the same open file description (one offset, read-write).
/// A reader gets its own, read-only one, so `os.read`/`subprocess` through its `fileno()` never
/// move another reader's offset and can never write into the producer's data.
fn private_read_only(shared: &File, path: &Path) -> Result<File> {
    use std::os::fd::AsRawFd;
    File::open(format!("/proc/self/fd/{}", shared.as_raw_fd()))
        .map_err(|e| ClientError::from_io(e, path.to_path_buf()))
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

    /// The normalised path `fd` was opened as (it does not follow later renames).
    pub fn fd_path(&self, fd: RawFd) -> Result<PathBuf> {
        Ok(self.handle(fd)?.capio_path.clone())
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

    fn deadline(&self) -> Option<Instant> {
        self.settings.wait_timeout.map(|t| Instant::now() + t)
    }

    /// One bounded sleep on `slot` while its word still equals `seen`, with the liveness, signal
    /// and deadline checks every waiter needs.
    fn sleep_on(
        &self,
        slot: &Slot,
        seen: u32,
        deadline: Option<Instant>,
        path: &Path,
        what: &'static str,
        interrupt: &mut dyn FnMut() -> bool,
    ) -> Result<()> {
        let slice = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    let secs = self.settings.wait_timeout.map_or(0.0, |t| t.as_secs_f64());
                    if what == TO_BE_CREATED {
                        return Err(ClientError::NeverCreated {
                            path: path.to_path_buf(),
                            secs,
                        });
                    }
                    return Err(ClientError::Timeout {
                        path: path.to_path_buf(),
                        what,
                        secs,
                    });
                }
                left.min(WAIT_SLICE)
            }
            None => WAIT_SLICE,
        };
        let woke = slot.wait(seen, Some(slice));
        if woke != sys::Wake::Changed {
            if !interrupt() {
                return Err(ClientError::Interrupted);
            }
            if sys::peer_hung_up(&self.probe) {
                return Err(ClientError::ServerGone(self.settings.workflow.clone()));
            }
        }
        Ok(())
    }

    /// Open `path` with Linux `open(2)` flags; returns a real fd. A read-only open of a path that
    /// does not exist yet waits until a producer creates it.
    pub fn open(
        &self,
        path: &Path,
        flags: i32,
        mode: u32,
        interrupt: &mut dyn FnMut() -> bool,
    ) -> Result<RawFd> {
        let abs = self.require_capio_path(path)?;
        // A file it creates gets `mode` less the process's umask, as from `open(2)`.
        let mode = if flags & libc::O_CREAT != 0 {
            mode & !sys::current_umask()
        } else {
            mode
        };
        let req = OpenReq {
            flags: flags as u32,
            mode,
        };
        let deadline = self.deadline();
        loop {
            let reply = self
                .conn()
                .call(Kind::Open, &req, abs.as_os_str().as_bytes())?;
            let (r, _) = status_of::<OpenReply>(&reply.body, |r| r.status, path)?;
            match r.kind {
                open_kind::WAIT => {
                    let ns = self.table.namespace();
                    self.sleep_on(ns, r.generation, deadline, path, TO_BE_CREATED, interrupt)?;
                    continue;
                }
                open_kind::PASS => {
                    // Not CAPIO's (a FIFO, a device): the OS opens it, blocking as it would, and
                    // the fd is an ordinary one that no CAPIO call claims.
                    use std::os::fd::IntoRawFd;
                    use std::os::unix::fs::OpenOptionsExt;
                    // What the server saw must still be what opens: no create or truncate (the
                    // node exists), no final link followed, and nothing but a FIFO, socket or
                    // device accepted, so a swap made meanwhile cannot reach a regular file.
                    let acc = flags & libc::O_ACCMODE;
                    let file = std::fs::OpenOptions::new()
                        .read(acc == libc::O_RDONLY || acc == libc::O_RDWR)
                        .write(acc == libc::O_WRONLY || acc == libc::O_RDWR)
                        .custom_flags(
                            (flags
                                & !(libc::O_ACCMODE
                                    | libc::O_CREAT
                                    | libc::O_EXCL
                                    | libc::O_TRUNC))
                                | libc::O_NOFOLLOW,
                        )
                        .mode(mode)
                        .open(&abs)
                        .map_err(|e| ClientError::from_io(e, path.to_path_buf()))?;
                    let kind = file
                        .metadata()
                        .map_err(|e| ClientError::from_io(e, path.to_path_buf()))?
                        .file_type();
                    if kind.is_file() || kind.is_dir() || kind.is_symlink() {
                        return Err(ClientError::os(libc::ENXIO, path.to_path_buf()));
                    }
                    return Ok(file.into_raw_fd());
                }
                open_kind::MEMORY | open_kind::DISK => {
                    let fd = reply
                        .fd
                        .ok_or_else(|| ClientError::os(libc::EIO, path.to_path_buf()))?;
                    let acc = flags & libc::O_ACCMODE;
                    let append = flags & libc::O_APPEND != 0;
                    let slot = (r.kind == open_kind::MEMORY).then_some(r.slot);
                    let mut file = File::from(fd);
                    if r.kind == open_kind::MEMORY && acc == libc::O_RDONLY {
                        file = private_read_only(&file, path)?;
                    }
                    let handle = Handle {
                        file,
                        path: path.to_path_buf(),
                        capio_path: abs.clone(),
                        slot,
                        producer: r.producer != 0,
                        fire: r.fire,
                        readable: acc == libc::O_RDONLY || acc == libc::O_RDWR,
                        writable: acc == libc::O_WRONLY || acc == libc::O_RDWR,
                        append,
                        pos: AtomicU64::new(if append { r.size } else { 0 }),
                        reserved: AtomicU64::new(if self.memory_limited { 0 } else { u64::MAX }),
                    };
                    let raw = handle.file.as_raw_fd();
                    self.handles
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(raw, Arc::new(handle));
                    return Ok(raw);
                }
                _ => return Err(ClientError::os(libc::EIO, path.to_path_buf())),
            }
        }
    }

    /// Close a CAPIO fd. The server is told without waiting for an answer.
    pub fn close(&self, fd: RawFd) -> Result<()> {
        let h = self
            .handles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&fd)
            .ok_or_else(|| ClientError::os(libc::EBADF, None))?;
        if let Some(slot) = h.slot {
            let req = CloseReq {
                slot,
                writable: u32::from(h.writable),
            };
            // The fd is closed locally either way. A reader loses nothing when the server is
            // gone, but what a writer wrote will never be committed or persisted: say so.
            let sent = self.conn().send(Kind::Close, &req, &[]);
            if h.writable {
                sent?;
            }
        }
        Ok(())
    }

    /// Make sure the memory budget holds `h`'s file up to `end` before bytes go there. Costs one
    /// atomic load unless the write crosses the end granted last (then one round trip, which
    /// grants headroom beyond `end`).
    fn reserve(&self, h: &Handle, slot: u32, end: u64) -> Result<()> {
        if end <= h.reserved.load(SeqCst) {
            return Ok(());
        }
        let req = ReserveReq { slot, _pad: 0, end };
        let reply = self.conn().call(Kind::Reserve, &req, &[])?;
        let (r, _) = status_of::<ReserveReply>(&reply.body, |r| r.status, &h.path)?;
        h.reserved.fetch_max(r.granted, SeqCst);
        Ok(())
    }

    /// The end of the bytes `h` may read now at `off`: waits per the fire rule unless the caller
    /// produces the file.
    fn readable_end(
        &self,
        h: &Handle,
        off: u64,
        interrupt: &mut dyn FnMut() -> bool,
    ) -> Result<u64> {
        let Some(index) = h.slot else {
            return Ok(h
                .file
                .metadata()
                .map_err(|e| ClientError::from_io(e, h.path.clone()))?
                .len());
        };
        let slot = self.slot(index)?;
        let deadline = self.deadline();
        loop {
            let seen = slot.seq.load(SeqCst);
            let len = slot.len.load(SeqCst);
            match slot.state() {
                _ if h.producer => return Ok(len),
                SlotState::Committed => return Ok(len),
                SlotState::Aborted => {
                    return Err(ClientError::ProducerDied {
                        path: h.path.clone(),
                    });
                }
                _ if h.fire == fire::NO_UPDATE && len > off => return Ok(len),
                _ => {}
            }
            let what = if h.fire == fire::NO_UPDATE {
                "to have more data"
            } else {
                "to be committed"
            };
            self.sleep_on(slot, seen, deadline, &h.path, what, interrupt)?;
        }
    }

    /// Wait, per the fire rule, until `want` bytes from `offset` (the fd's position when None) can
    /// be read, or until the file's end is final (committed, or the caller produces it) when they
    /// never will; `want == None` waits for the final end. Returns `(offset, end)`: the bytes in
    /// `offset..end` are readable now (`end < offset` past the end of the file). Lets callers size
    /// a buffer exactly (a whole-file read) or map a committed range.
    pub fn readable(
        &self,
        fd: RawFd,
        offset: Option<u64>,
        want: Option<u64>,
        interrupt: &mut dyn FnMut() -> bool,
    ) -> Result<(u64, u64)> {
        let h = self.handle(fd)?;
        if !h.readable {
            return Err(ClientError::os(libc::EBADF, None));
        }
        let off = offset.unwrap_or_else(|| h.pos.load(SeqCst));
        let target = want.map(|w| off.saturating_add(w));
        if target == Some(off) {
            return Ok((off, off));
        }
        let mut cur = off;
        loop {
            let end = self.readable_end(&h, cur, interrupt)?;
            // `readable_end` returns at or before `cur` only when no more bytes will come.
            if end <= cur || target.is_some_and(|t| end >= t) {
                return Ok((off, end));
            }
            cur = end;
        }
    }

    /// Read into `buf` at `offset`, or at the fd's position (advancing it) when `offset` is None.
    /// Returns 0 only at the end of a committed file.
    pub fn read(
        &self,
        fd: RawFd,
        buf: &mut [u8],
        offset: Option<u64>,
        interrupt: &mut dyn FnMut() -> bool,
    ) -> Result<usize> {
        let h = self.handle(fd)?;
        if !h.readable {
            return Err(ClientError::os(libc::EBADF, None));
        }
        let off = offset.unwrap_or_else(|| h.pos.load(SeqCst));
        if buf.is_empty() {
            return Ok(0);
        }
        let end = self.readable_end(&h, off, interrupt)?;
        let want = end.saturating_sub(off).min(buf.len() as u64) as usize;
        let mut got = 0;
        while got < want {
            match h.file.read_at(&mut buf[got..want], off + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ClientError::from_io(e, h.path.clone())),
            }
        }
        if offset.is_none() {
            h.pos.store(off + got as u64, SeqCst);
        }
        Ok(got)
    }

    /// Write all of `data` at `offset`, or at the position (the end, with O_APPEND) when None.
    pub fn write(&self, fd: RawFd, data: &[u8], offset: Option<u64>) -> Result<usize> {
        let h = self.handle(fd)?;
        if !h.writable {
            return Err(ClientError::os(libc::EBADF, None));
        }
        let slot = match h.slot {
            Some(i) => self.slot(i)?,
            None => return Err(ClientError::os(libc::EBADF, None)),
        };
        // An append finds the end, writes and publishes under the file's append lock: two
        // processes appending, or one appending while another truncates, never write at a stale
        // end. A failed append publishes nothing, so the next one starts where this one did.
        let appending = offset.is_none() && h.append;
        let _append_lock = appending.then(|| slot.lock_appends());
        let off = match offset {
            Some(o) => o,
            None if appending => slot.len.load(SeqCst),
            None => h.pos.load(SeqCst),
        };
        let end = off
            .checked_add(data.len() as u64)
            .ok_or_else(|| ClientError::os(libc::EFBIG, h.path.clone()))?;
        if let Some(index) = h.slot {
            self.reserve(&h, index, end)?;
        }
        h.file
            .write_all_at(data, off)
            .map_err(|e| ClientError::from_io(e, h.path.clone()))?;
        slot.publish(end);
        if offset.is_none() {
            h.pos.store(end, SeqCst);
        }
        Ok(data.len())
    }

    fn current_size(&self, h: &Handle) -> Result<u64> {
        match h.slot {
            Some(i) => Ok(self.slot(i)?.len.load(SeqCst)),
            None => Ok(h
                .file
                .metadata()
                .map_err(|e| ClientError::from_io(e, h.path.clone()))?
                .len()),
        }
    }

    pub fn seek(&self, fd: RawFd, offset: i64, whence: i32) -> Result<u64> {
        let h = self.handle(fd)?;
        let base = match whence {
            libc::SEEK_SET => 0,
            libc::SEEK_CUR => h.pos.load(SeqCst) as i64,
            libc::SEEK_END => self.current_size(&h)? as i64,
            _ => return Err(ClientError::os(libc::EINVAL, None)),
        };
        let new = base
            .checked_add(offset)
            .filter(|p| *p >= 0)
            .ok_or_else(|| ClientError::os(libc::EINVAL, None))?;
        h.pos.store(new as u64, SeqCst);
        Ok(new as u64)
    }

    pub fn tell(&self, fd: RawFd) -> Result<u64> {
        Ok(self.handle(fd)?.pos.load(SeqCst))
    }

    pub fn truncate(&self, fd: RawFd, size: u64) -> Result<()> {
        let h = self.handle(fd)?;
        let (index, slot) = match h.slot {
            Some(i) if h.writable => (i, self.slot(i)?),
            _ => return Err(ClientError::os(libc::EINVAL, None)),
        };
        self.reserve(&h, index, size)?;
        let _append_lock = slot.lock_appends();
        h.file
            .set_len(size)
            .map_err(|e| ClientError::from_io(e, h.path.clone()))?;
        slot.reset_len(size);
        slot.bump();
        Ok(())
    }

    pub fn fstat(&self, fd: RawFd) -> Result<FileStat> {
        use std::os::unix::fs::MetadataExt;
        let h = self.handle(fd)?;
        let meta = h
            .file
            .metadata()
            .map_err(|e| ClientError::from_io(e, h.path.clone()))?;
        let (size, committed) = match h.slot {
            Some(i) => {
                let s = self.slot(i)?;
                (s.len.load(SeqCst), s.state() == SlotState::Committed)
            }
            None => (meta.len(), true),
        };
        // As the server's `stat` of the file: a memory data object on the directory's device.
        let (dev, ino) = match h.slot {
            Some(_) => capio_proto::reported_identity(meta.dev(), meta.ino(), self.root_dev()),
            None => (meta.dev(), meta.ino()),
        };
        // The data object's inode carries the file's mode, owner and times (see the server).
        Ok(FileStat {
            is_dir: false,
            size,
            mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
            mode: meta.mode() & 0o7777,
            committed,
            atime_ns: ns(meta.atime(), meta.atime_nsec()),
            ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
            uid: meta.uid(),
            gid: meta.gid(),
            file_type: libc::S_IFREG,
            // A memfd has no name; a committed input on disk has its own links.
            nlink: if h.slot.is_some() {
                1
            } else {
                u32::try_from(meta.nlink()).unwrap_or(u32::MAX)
            },
            ino,
            dev,
        })
    }

    /// Stat a path inside the CAPIO directory; never waits. With `follow == false`, a final
    /// symbolic link (on disk) is reported itself, as `lstat` does.
    pub fn stat_at(&self, path: &Path, follow: bool) -> Result<FileStat> {
        let abs = self.require_capio_path(path)?;
        let kind = if follow { Kind::Stat } else { Kind::Lstat };
        let reply = self
            .conn()
            .call(kind, &Empty {}, abs.as_os_str().as_bytes())?;
        let (r, _) = status_of::<StatReply>(&reply.body, |r| r.status, path)?;
        Ok(FileStat {
            is_dir: r.kind == node_kind::DIR,
            size: r.size,
            mtime_ns: r.mtime_ns,
            mode: r.mode,
            committed: r.committed != 0,
            atime_ns: r.atime_ns,
            ctime_ns: r.ctime_ns,
            uid: r.uid,
            gid: r.gid,
            file_type: r.file_type,
            nlink: r.nlink,
            ino: r.ino,
            dev: r.dev,
        })
    }

    /// Stat a path inside the CAPIO directory; never waits.
    pub fn stat(&self, path: &Path) -> Result<FileStat> {
        self.stat_at(path, true)
    }

    /// Change a path's mode, owner or times (`chmod`, `chown`, `utimensat`); with `follow ==
    /// false` a final symbolic link itself.
    pub fn set_attrs(&self, path: &Path, attrs: &sys::Attrs, follow: bool) -> Result<()> {
        let abs = self.require_capio_path(path)?;
        let req = SetAttrReq::new(attrs, !follow);
        let reply = self
            .conn()
            .call(Kind::SetAttr, &req, abs.as_os_str().as_bytes())?;
        status_of::<StatusReply>(&reply.body, |r| r.status, path)?;
        Ok(())
    }

    /// `fchmod`, `fchown`, `futimens` of a CAPIO fd: applied to the file it holds (the kernel
    /// keeps them there, and checks the caller's permissions as for any file).
    pub fn set_fd_attrs(&self, fd: RawFd, attrs: &sys::Attrs) -> Result<()> {
        use std::os::fd::AsFd;
        let h = self.handle(fd)?;
        sys::set_attrs_fd(h.file.as_fd(), attrs)
            .map_err(|e| ClientError::from_io(e, None::<PathBuf>))
    }

    pub fn mkdir(&self, path: &Path, mode: u32) -> Result<()> {
        let abs = self.require_capio_path(path)?;
        let mode = mode & !sys::current_umask();
        let reply = self.conn().call(
            Kind::Mkdir,
            &MkdirReq { mode, _pad: 0 },
            abs.as_os_str().as_bytes(),
        )?;
        status_of::<StatusReply>(&reply.body, |r| r.status, path)?;
        Ok(())
    }

    fn list_once(&self, path: &Path) -> Result<(ListReply, Vec<DirEntry>)> {
        let abs = self.require_capio_path(path)?;
        let reply = self
            .conn()
            .call(Kind::List, &Empty {}, abs.as_os_str().as_bytes())?;
        let (r, tail) = status_of::<ListReply>(&reply.body, |r| r.status, path)?;
        let entries = capio_proto::parse_entries(tail)
            .into_iter()
            .map(|(k, n)| (n.to_vec(), k))
            .collect();
        Ok((r, entries))
    }

    /// The entries of a directory inside the CAPIO directory, once it is complete: a reader that
    /// does not produce it waits for its commit (both fire rules: a list cannot grow later).
    pub fn listdir(
        &self,
        path: &Path,
        interrupt: &mut dyn FnMut() -> bool,
    ) -> Result<Vec<DirEntry>> {
        let (entries, _) = self.list_new(path, &HashSet::new(), false, interrupt)?;
        Ok(entries)
    }

    /// The entries not in `seen`, and whether the directory is complete. With `stream` and a
    /// `no_update` directory this returns as soon as there is a new entry; otherwise it waits for
    /// the directory's commit (a producer of the directory never waits).
    pub fn list_new(
        &self,
        path: &Path,
        seen: &HashSet<Vec<u8>>,
        stream: bool,
        interrupt: &mut dyn FnMut() -> bool,
    ) -> Result<(Vec<DirEntry>, bool)> {
        let deadline = self.deadline();
        loop {
            let (r, entries) = self.list_once(path)?;
            let fresh: Vec<DirEntry> = entries
                .into_iter()
                .filter(|(n, _)| !seen.contains(n))
                .collect();
            let complete = r.committed != 0 || r.producer != 0;
            if complete || (stream && r.fire == fire::NO_UPDATE && !fresh.is_empty()) {
                return Ok((fresh, complete));
            }
            let what = if r.missing != 0 {
                TO_BE_CREATED
            } else if r.fire == fire::NO_UPDATE {
                "to have new entries"
            } else {
                "to be committed"
            };
            self.sleep_on(
                self.table.namespace(),
                r.generation,
                deadline,
                path,
                what,
                interrupt,
            )?;
        }
    }

    /// Remove a file (`unlink(2)`); fds already open on it keep working.
    pub fn unlink(&self, path: &Path) -> Result<()> {
        self.path_request(Kind::Unlink, path)
    }

    /// Remove an empty directory (`rmdir(2)`).
    pub fn rmdir(&self, path: &Path) -> Result<()> {
        self.path_request(Kind::Rmdir, path)
    }

    /// A request whose body is only the path and whose reply is only a status.
    fn path_request(&self, kind: Kind, path: &Path) -> Result<()> {
        let abs = self.require_capio_path(path)?;
        let reply = self
            .conn()
            .call(kind, &Empty {}, abs.as_os_str().as_bytes())?;
        status_of::<StatusReply>(&reply.body, |r| r.status, path)?;
        Ok(())
    }

    /// Move `src` to `dst` like `rename(2)` / `os.replace`, replacing an existing file at `dst`.
    pub fn rename(&self, src: &Path, dst: &Path) -> Result<()> {
        let cwd = std::env::current_dir().map_err(|e| ClientError::from_io(e, None::<PathBuf>))?;
        let (from, to) = rename_ends(&self.scope, &cwd, src, dst)?;
        let (req, tail) = rename_tail(from.as_os_str().as_bytes(), to.as_os_str().as_bytes())?;
        let reply = self.conn().call(Kind::Rename, &req, &tail)?;
        status_of::<StatusReply>(&reply.body, |r| r.status, src)?;
        Ok(())
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
        let reply = self.conn().call(
            Kind::Exit,
            &ExitReq {
                teardown: u32::from(teardown_server),
                _pad: 0,
            },
            &[],
        )?;
        status_of::<StatusReply>(&reply.body, |r| r.status, &self.scope.real)?;
        Ok(())
    }
}

/// Both ends of a rename, normalised inside the CAPIO directory. One end outside is `EXDEV`, decided
/// here as between two file systems, so callers fall back to copy and delete like `shutil.move`;
/// both outside is not a CAPIO call at all.
fn rename_ends(scope: &Scope, cwd: &Path, src: &Path, dst: &Path) -> Result<(PathBuf, PathBuf)> {
    match (scope.resolve(src, cwd), scope.resolve(dst, cwd)) {
        (Some(from), Some(to)) => Ok((from, to)),
        (None, None) => Err(ClientError::OutsideCapioDir {
            path: src.to_path_buf(),
            root: scope.real.clone(),
        }),
        _ => Err(ClientError::os(libc::EXDEV, src.to_path_buf())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rename_across_the_capio_boundary_is_exdev_without_a_server() {
        let scope = Scope {
            real: "/data".into(),
            given: "/link".into(),
        };
        let cwd = Path::new("/data/sub");
        let ends = |src: &str, dst: &str| rename_ends(&scope, cwd, Path::new(src), Path::new(dst));
        assert_eq!(
            ends("a", "/link/b").unwrap(),
            ("/data/sub/a".into(), "/data/b".into())
        );
        for (src, dst) in [("a", "/tmp/b"), ("/tmp/a", "../b")] {
            match ends(src, dst) {
                Err(ClientError::Os { errno, path }) => {
                    assert_eq!((errno, path), (libc::EXDEV, Some(PathBuf::from(src))));
                }
                other => panic!("{src} -> {dst}: {other:?}"),
            }
        }
        assert!(matches!(
            ends("/tmp/a", "/tmp/b"),
            Err(ClientError::OutsideCapioDir { .. })
        ));
    }
}
