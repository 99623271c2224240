//! The server's model of the CAPIO directories it serves: files (data object, state slot, CAPIO-CL
//! rule, producers, open and close counts), directories in creation order with their commit state,
//! and attached clients. Callers keep it behind one mutex; its only I/O is data-object management
//! and confined disk access, so it is tested without sockets.

use crate::backing::{self, Backing};
use crate::disk::{self, Kind as DiskKind};
use crate::error::FsError;
use crate::log::{info, warning};
use crate::paths::confine;
use crate::persist;
use crate::rules::fire_wire;
use capio_cl::{CommitRule, Rule, Rules};
use capio_proto::table::NAMESPACE_SLOT;
use capio_proto::{Slot, SlotState, StateTable, node_kind, sys};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, Seek};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Instant;

pub type ClientId = u64;

const O_ACCMODE: u32 = libc::O_ACCMODE as u32;
const O_WRONLY: u32 = libc::O_WRONLY as u32;
const O_RDWR: u32 = libc::O_RDWR as u32;
const O_CREAT: u32 = libc::O_CREAT as u32;
const O_EXCL: u32 = libc::O_EXCL as u32;
const O_TRUNC: u32 = libc::O_TRUNC as u32;
const O_DIRECTORY: u32 = libc::O_DIRECTORY as u32;

struct Client {
    pid: i32,
    /// Its parent, grandparent, ... at attach time: the processes of its own step, which it is
    /// waited on by (a child read by its parent step) and which it never waits on.
    ancestors: Vec<i32>,
    app: String,
    /// Canonical CAPIO directory; every path the client names must lie inside it.
    root: PathBuf,
    /// Its device: what a CAPIO file's identity is reported on (`reported_identity`).
    root_dev: u64,
    /// Sent `Exit`: its later EOF is not a crash and it no longer counts as attached.
    exited: bool,
    produces: HashSet<u32>,
    opened: HashSet<u32>,
}

struct FileNode {
    slot: u32,
    /// The memfd or hidden file holding the bytes; clients receive duplicates (sharing its offset).
    data: File,
    backing: Backing,
    /// Canonical root of the creator: persistence never writes outside it.
    root: PathBuf,
    /// The CAPIO-CL rule of its current path (a rename looks it up again).
    rule: Rule,
    producers: BTreeSet<ClientId>,
    /// Open count per client, so a crashed client's opens can be released.
    opens: HashMap<ClientId, u32>,
    /// Writable closes by producers since it was (re)opened for writing: what `on_close:N` counts.
    closes_by_producers: u64,
    /// Mirror of the slot's state (the slot is shared memory anyone could scribble on).
    state: SlotState,
    /// Apps that opened it, for the shutdown report.
    apps: BTreeSet<String>,
    /// The namespace-wide number of its last commit, so a persist of an older commit never lands
    /// after a newer one, even when the slot and path are reused by another file meanwhile.
    generation: u64,
    persisted: bool,
    /// Its disk copy as persisted: a persisted file whose real path no longer shows this was
    /// removed or replaced by another program, and is not served from memory any more.
    disk_id: Option<disk::Identity>,
    /// Bytes of the memory budget this file holds (see `memory`).
    charged: u64,
    /// A `Reserve` was refused: logged once per file.
    refused: bool,
}

/// A directory `Mkdir` created: on disk at once, so that what CAPIO does not intercept (`chdir`, a
/// child's `cwd`, links, C libraries) finds it; its listing and commit follow its CAPIO-CL rule.
/// Also a directory that existed on disk before but has a `dirname` rule (`adopted`).
struct MadeDir {
    /// Canonical root of its creator: its disk copy is made inside it.
    root: PathBuf,
    /// The CAPIO-CL directory rule of its current path.
    rule: Rule,
    /// Its creator and every client that created an entry in it, until they terminate.
    producers: BTreeSet<ClientId>,
    committed: bool,
    /// It was on disk before the namespace knew it: never removed at shutdown.
    adopted: bool,
    /// Some client has produced it (made it, or created an entry in it). Until then an adopted
    /// directory does not commit when an unrelated client terminates.
    produced: bool,
    /// An adopted directory's entries on disk when adopted: they count toward `on_n_files`, so a
    /// directory a previous run completed is complete now (re-running only its consumer).
    before: HashSet<OsString>,
    /// Its permission bits when made (or adopted): what it gets back if another program removes
    /// it from disk while it still holds files only in memory.
    mode: u32,
}

/// Children in creation order, kept for any directory something was created in (also for
/// directories that were on disk before); `made` when `Mkdir` created it or a `dirname` rule
/// adopted it.
#[derive(Default)]
struct DirNode {
    made: Option<MadeDir>,
    /// Names in creation order; `None` where one was removed, until the next compaction.
    children: Vec<Option<OsString>>,
    /// Where each present name sits in `children`, so removal costs O(1) in a big directory.
    index: HashMap<OsString, usize>,
}

impl DirNode {
    fn add(&mut self, name: &OsStr) {
        if !self.index.contains_key(name) {
            self.index.insert(name.to_owned(), self.children.len());
            self.children.push(Some(name.to_owned()));
        }
    }

    fn remove(&mut self, name: &OsStr) {
        if let Some(at) = self.index.remove(name) {
            self.children[at] = None;
        }
        // Amortised: holes never outnumber names by much.
        if self.children.len() > 2 * self.index.len() + 16 {
            self.children.retain(Option::is_some);
            for (at, name) in self.children.iter().flatten().enumerate() {
                if let Some(i) = self.index.get_mut(name) {
                    *i = at;
                }
            }
        }
    }

    fn names(&self) -> impl Iterator<Item = &OsString> {
        self.children.iter().flatten()
    }
}

/// The outcome of an `Open`.
#[derive(Debug)]
pub enum Opened {
    Memory {
        slot: u32,
        producer: bool,
        fire: u32,
        size: u64,
        data: OwnedFd,
    },
    Disk {
        size: u64,
        file: File,
    },
    /// Missing: sleep until the namespace slot's `seq` moves past `generation`, then retry.
    Wait {
        generation: u32,
    },
    /// Not CAPIO's to serve (a FIFO, a socket, a device node): the client opens it itself.
    Pass,
}

/// What `stat` reports. A CAPIO file's mode, owner and times are those of its data object, which
/// the kernel keeps as for any file (writes move `mtime`, attribute changes `ctime`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    pub kind: u32,
    pub size: u64,
    pub mtime_ns: i64,
    /// Permission bits.
    pub mode: u32,
    pub committed: bool,
    pub atime_ns: i64,
    pub ctime_ns: i64,
    pub uid: u32,
    pub gid: u32,
    /// `S_IFMT` bits.
    pub file_type: u32,
    pub nlink: u32,
    /// The node's identity: its disk inode and device, or its data object's for a CAPIO file.
    pub ino: u64,
    pub dev: u64,
}

impl Stat {
    fn of_meta(kind: u32, meta: &fs::Metadata, committed: bool) -> Stat {
        let ns = |s: i64, n: i64| s.saturating_mul(1_000_000_000).saturating_add(n);
        Stat {
            kind,
            size: meta.len(),
            mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
            mode: meta.mode() & 0o7777,
            committed,
            atime_ns: ns(meta.atime(), meta.atime_nsec()),
            ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
            uid: meta.uid(),
            gid: meta.gid(),
            file_type: meta.mode() & libc::S_IFMT,
            // A CAPIO file's data object has no name (a memfd), yet the file has one.
            nlink: u32::try_from(meta.nlink()).unwrap_or(u32::MAX).max(1),
            ino: meta.ino(),
            dev: meta.dev(),
        }
    }
}

/// The listing kind of an `S_IFMT` file type.
fn kind_of_type(file_type: u32) -> u32 {
    match file_type {
        libc::S_IFDIR => node_kind::DIR,
        libc::S_IFREG => node_kind::FILE,
        _ => node_kind::OTHER,
    }
}

/// Symbolic links followed in one lookup before `ELOOP`, as Linux allows.
const MAX_LINKS: usize = 40;

/// `path` with `.`, `..` and empty components resolved lexically; `None` above `/`.
fn normalize(path: &Path) -> Option<PathBuf> {
    use std::path::Component;
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::Normal(n) => out.push(n),
        }
    }
    Some(out)
}

/// A directory's entries and what a reader may conclude from them.
#[derive(Debug, PartialEq, Eq)]
pub struct Listing {
    /// CAPIO entries in creation order, then disk entries not listed yet.
    pub entries: Vec<(u32, OsString)>,
    /// No entry will be added any more under its rule (always, for disk directories without a
    /// `dirname` rule).
    pub committed: bool,
    pub fire: u32,
    /// The caller produces it, so it never waits on it.
    pub producer: bool,
    /// It does not exist yet, but a producer may still make it (see `producer_may_appear`).
    pub missing: bool,
}

/// A file that will never reach its real path: aborted by a crash, or left at shutdown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lost {
    pub path: PathBuf,
    pub size: u64,
    pub apps: Vec<String>,
    pub state: SlotState,
}

/// What happened when a client's connection ended.
#[derive(Debug)]
pub struct Departure {
    /// "app 'name' (pid N)", for logs.
    pub label: String,
    /// It went away without `Exit`.
    pub crashed: bool,
    pub aborted: Vec<Lost>,
    /// Commits its departure caused (directories it was the last producer of, and what follows
    /// from them), to persist.
    pub commits: Vec<Commit>,
}

/// A committed file to persist: its path and the generation of the commit.
pub type Commit = (PathBuf, u64);

/// Where a path lives.
enum Where {
    File,
    Dir,
    Disk(Box<disk::Node>),
    Missing,
}

pub struct Namespace {
    table: Arc<StateTable>,
    rules: Rules,
    files: HashMap<PathBuf, FileNode>,
    by_slot: HashMap<u32, PathBuf>,
    /// Files unlinked (or replaced by a rename) while some fd still had them open, by slot: they
    /// keep working for those fds, as unlinked files do, and free their slot at the last close.
    unlinked: HashMap<u32, FileNode>,
    dirs: HashMap<PathBuf, DirNode>,
    clients: HashMap<ClientId, Client>,
    next_client: ClientId,
    next_slot: u32,
    /// Slots of removed files that no fd refers to any more.
    free_slots: Vec<u32>,
    /// Generation of the latest commit of any file.
    last_generation: u64,
    teardown: bool,
    /// Set once the server decided to stop: no new client is taken.
    closing: bool,
    /// Every app that ever attached: an app seen before and without live clients now has
    /// terminated, which is how a reader learns that a declared producer will never create a file.
    apps_seen: HashSet<String>,
    /// Slots of the files whose rule is `on_file`: the candidates when something commits.
    on_file: BTreeSet<u32>,
    /// Made directories not committed yet.
    open_dirs: BTreeSet<PathBuf>,
    /// Something committed since the last `settle`: `on_file` and directory rules may follow.
    settle_due: bool,
    /// Commits made by the current operation that must be persisted, for the caller to take.
    to_persist: Vec<Commit>,
    budget: memory::Budget,
    /// Read-only opens answered `WAIT`, by client and path: (first, latest) time asked. A waiting
    /// client asks again at least every 250 ms, so a fresh `latest` means it still waits.
    waiting: HashMap<(ClientId, PathBuf), (Instant, Instant)>,
    started: Instant,
}

/// The parent, grandparent, ... of `pid`, from `/proc` (empty when it cannot be read).
fn ancestors_of(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let mut cur = pid;
    while out.len() < 64 {
        let Ok(stat) = fs::read_to_string(format!("/proc/{cur}/stat")) else {
            break;
        };
        // `pid (comm) state ppid ...`: comm may hold spaces and parentheses, so split after the
        // last ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|v| v.parse::<i32>().ok());
        match ppid {
            Some(p) if p > 1 => {
                out.push(p);
                cur = p;
            }
            _ => break,
        }
    }
    out
}

/// A new data object for the file at `path`, backed as `rule` says, holding `seed`'s content and
/// positioned at its start (clients share its file offset).
fn new_data(
    root: &Path,
    path: &Path,
    rule: &Rule,
    seed: Option<File>,
) -> Result<(File, Backing, u64), FsError> {
    let (mut data, backing) = backing::create(root, path, rule.storage)?;
    let seeded = match seed {
        None => Ok(0),
        Some(mut src) => io::copy(&mut src, &mut data).and_then(|len| data.rewind().map(|()| len)),
    };
    match seeded {
        Ok(len) => Ok((data, backing, len)),
        Err(e) => {
            backing::discard(&data, backing);
            Err(e.into())
        }
    }
}

impl Namespace {
    pub fn new(table: Arc<StateTable>, rules: Rules) -> Namespace {
        Namespace {
            table,
            rules,
            files: HashMap::new(),
            by_slot: HashMap::new(),
            unlinked: HashMap::new(),
            dirs: HashMap::new(),
            clients: HashMap::new(),
            next_client: 1,
            next_slot: NAMESPACE_SLOT + 1,
            free_slots: Vec::new(),
            last_generation: 0,
            teardown: false,
            closing: false,
            apps_seen: HashSet::new(),
            on_file: BTreeSet::new(),
            open_dirs: BTreeSet::new(),
            settle_due: false,
            to_persist: Vec::new(),
            budget: memory::Budget::default(),
            waiting: HashMap::new(),
            started: Instant::now(),
        }
    }

    /// The commits to persist that the last operations made, in path order.
    pub fn take_commits(&mut self) -> Vec<Commit> {
        let mut out = std::mem::take(&mut self.to_persist);
        out.sort();
        out
    }

    fn slot(&self, index: u32) -> &Slot {
        self.table
            .slot(index)
            .expect("slots are only handed out inside the table")
    }

    /// Register a client. Its root must be an existing directory, given canonically (the client
    /// resolves it; a non-canonical spelling would split one directory into two namespaces).
    pub fn hello(&mut self, pid: i32, app: &str, root: &Path) -> Result<ClientId, FsError> {
        if self.closing {
            return Err(FsError::Closing);
        }
        if !root.is_absolute() {
            return Err(FsError::BadPath);
        }
        let real = fs::canonicalize(root).map_err(|_| FsError::NotFound)?;
        let meta = fs::metadata(&real).map_err(|_| FsError::NotFound)?;
        if !meta.is_dir() {
            return Err(FsError::NotFound);
        }
        if real != root {
            return Err(FsError::BadPath);
        }
        let id = self.next_client;
        self.next_client += 1;
        self.apps_seen.insert(app.to_owned());
        self.clients.insert(
            id,
            Client {
                pid,
                ancestors: ancestors_of(pid),
                app: app.to_owned(),
                root: real,
                root_dev: meta.dev(),
                exited: false,
                produces: HashSet::new(),
                opened: HashSet::new(),
            },
        );
        Ok(id)
    }

    /// The root of a live client, once `path` is known to lie inside it and to be CAPIO's: an
    /// excluded path is `EXDEV` like one outside the root. Clients send neither; this is defence
    /// in depth.
    fn root_for(&self, cid: ClientId, path: &Path) -> Result<PathBuf, FsError> {
        let client = self
            .clients
            .get(&cid)
            .filter(|c| !c.exited)
            .ok_or(FsError::Exited)?;
        confine(path, &client.root)?;
        if self.excluded(path) {
            return Err(FsError::Excluded);
        }
        Ok(client.root.clone())
    }

    /// `path` with symbolic links in its parent directories resolved, when they lead to a
    /// directory inside `root`: the namespace knows a file by one path, the real one, however it
    /// is reached (`dlink/f` and `real/f` with `dlink -> real` are one file). A link leading
    /// outside (or to an excluded path) is left for the confined disk look-ups to refuse. No disk
    /// access where the parent is the root, a directory the server made, or one something was
    /// created in: those are keyed by their real path already (the hot create path).
    fn real_path(&self, root: &Path, path: &Path) -> PathBuf {
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return path.to_path_buf();
        };
        if path == root
            || parent == root
            || self.dirs.contains_key(parent)
            || self.files.contains_key(path)
            || !parent.starts_with(root)
        {
            return path.to_path_buf();
        }
        match fs::canonicalize(parent) {
            Ok(real) if real != parent && confine(&real, root).is_ok() => {
                let real = real.join(name);
                if self.excluded(&real) {
                    path.to_path_buf()
                } else {
                    real
                }
            }
            _ => path.to_path_buf(),
        }
    }

    fn excluded(&self, path: &Path) -> bool {
        self.rules.is_excluded(path)
    }

    fn app_of(&self, cid: ClientId) -> &str {
        self.clients.get(&cid).map_or("", |c| c.app.as_str())
    }

    /// Aborted files are invisible to lookups; only `open` sees them (to report or restart them).
    fn visible_file(&self, path: &Path) -> Option<&FileNode> {
        self.files
            .get(path)
            .filter(|f| f.state != SlotState::Aborted)
    }

    fn is_made_dir(&self, path: &Path) -> bool {
        self.dirs.get(path).is_some_and(|d| d.made.is_some())
    }

    /// `File` or `Dir` when the namespace has `path`, `None` when only the disk can tell.
    fn locate_ns(&self, root: &Path, path: &Path) -> Result<Option<Where>, FsError> {
        if self.visible_file(path).is_some() {
            return Ok(Some(Where::File));
        }
        if self.is_made_dir(path) {
            return Ok(Some(Where::Dir));
        }
        let mut ancestors = path.ancestors().skip(1).take_while(|a| a.starts_with(root));
        if ancestors.any(|a| self.visible_file(a).is_some()) {
            return Err(FsError::NotDir);
        }
        Ok(None)
    }

    fn locate(&self, root: &Path, path: &Path) -> Result<Where, FsError> {
        if let Some(found) = self.locate_ns(root, path)? {
            return Ok(found);
        }
        Ok(match disk::lookup(root, path)? {
            Some(node) => Where::Disk(Box::new(node)),
            None => Where::Missing,
        })
    }

    /// The parent of `path` (which is strictly inside `root`) must be a directory.
    fn check_parent(&self, root: &Path, path: &Path) -> Result<(), FsError> {
        let parent = path.parent().ok_or(FsError::Exists)?;
        match self.locate(root, parent)? {
            Where::Dir => Ok(()),
            Where::Disk(node) if node.kind == DiskKind::Dir => Ok(()),
            Where::File | Where::Disk(_) => Err(FsError::NotDir),
            Where::Missing => Err(FsError::NotFound),
        }
    }

    /// `cid` created `path`: list it in its parent, whose producers `cid` joins while the parent
    /// is not committed (its entry count may commit it).
    fn add_child(&mut self, cid: ClientId, path: &Path) {
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return;
        };
        if !self.dirs.contains_key(parent)
            && let Some(root) = self.clients.get(&cid).map(|c| c.root.clone())
        {
            // The first entry made in a directory the namespace did not know: one rule lookup
            // per directory, not per entry.
            self.adopt(&root, parent);
        }
        let dir = self.dirs.entry(parent.to_path_buf()).or_default();
        dir.add(name);
        if let Some(made) = dir.made.as_mut().filter(|m| !m.committed) {
            made.producers.insert(cid);
            made.produced = true;
            self.settle_due = true;
        }
    }

    /// A directory on disk that a `dirname` rule covers follows the rule like one made during the
    /// run: its listing waits or streams until the rule commits it. Its entries are the ones on
    /// disk at adoption and those created through CAPIO during the run: `on_n_files` counts both,
    /// so one that already holds its count is committed at once.
    fn adopt(&mut self, root: &Path, path: &Path) {
        if self.is_made_dir(path) || !self.rules.has_dir_rule(path) {
            return;
        }
        let Ok(Some(node)) = disk::lookup(root, path) else {
            return;
        };
        if node.kind != DiskKind::Dir {
            return;
        }
        let before = disk::list(&node.real)
            .map(|names| names.into_iter().map(|(_, name)| name).collect())
            .unwrap_or_default();
        self.dirs.entry(path.to_path_buf()).or_default().made = Some(MadeDir {
            root: root.to_path_buf(),
            rule: self.rules.dir_rule_for(path),
            producers: BTreeSet::new(),
            committed: false,
            adopted: true,
            produced: false,
            before,
            mode: node.meta.mode() & 0o7777,
        });
        self.open_dirs.insert(path.to_path_buf());
        // `on_n_files: 0`, or `on_file` with its dependencies committed already.
        self.settle_due = true;
        self.settle();
    }

    fn remove_child(&mut self, path: &Path) {
        if let (Some(parent), Some(name)) = (path.parent(), path.file_name())
            && let Some(dir) = self.dirs.get_mut(parent)
        {
            dir.remove(name);
            if let Some(made) = dir.made.as_mut() {
                made.before.remove(name);
            }
        }
    }

    /// The node behind a slot: a file in the namespace, or an unlinked one an fd still holds.
    fn node_mut(&mut self, slot: u32) -> Option<&mut FileNode> {
        match self.by_slot.get(&slot) {
            Some(path) => self.files.get_mut(path),
            None => self.unlinked.get_mut(&slot),
        }
    }

    fn alloc_slot(&mut self) -> Result<u32, FsError> {
        if let Some(slot) = self.free_slots.pop() {
            return Ok(slot);
        }
        if self.next_slot >= self.table.slots() {
            return Err(FsError::TableFull);
        }
        self.next_slot += 1;
        Ok(self.next_slot - 1)
    }

    /// Take the file at `path` (if any) out of the namespace. Its memfd lives on for the fds
    /// already open on it; the slot is reused only once the last of them is closed.
    fn forget_file(&mut self, path: &Path) {
        let Some(mut node) = self.files.remove(path) else {
            return;
        };
        if node.backing == Backing::Hidden {
            // Nobody can reach it by name any more: its hidden data file goes as a memfd would.
            if let Err(e) = backing::remove_hidden(&node.data) {
                warning!("cannot remove the data file of {}: {e}", path.display());
            }
            node.backing = Backing::Anonymous;
        }
        self.by_slot.remove(&node.slot);
        self.remove_child(path);
        let slot = node.slot;
        self.unlinked.insert(slot, node);
        self.release_unlinked(slot);
    }

    /// Free an unlinked file's slot once no fd can refer to it any more.
    fn release_unlinked(&mut self, slot: u32) {
        if !self.unlinked.get(&slot).is_some_and(|n| n.opens.is_empty()) {
            return;
        }
        if let Some(mut node) = self.unlinked.remove(&slot) {
            self.budget.set_charge(&mut node, 0);
        }
        self.on_file.remove(&slot);
        // A stale slot number left in a client's sets would name the slot's next file.
        for client in self.clients.values_mut() {
            client.produces.remove(&slot);
            client.opened.remove(&slot);
        }
        let s = self.slot(slot);
        s.reset_len(0);
        s.set_state(SlotState::Free);
        self.free_slots.push(slot);
    }

    /// A committed, persisted file whose real path another program has removed or replaced since
    /// (a long-lived server between runs: `rm -f out.bin`) must not be served from memory: forget
    /// the memory copy, so the disk answers, or nothing does. One `lstat`, for persisted files
    /// only. Fds already open keep the old copy, as with an unlinked file.
    pub fn forget_if_stale(&mut self, cid: ClientId, path: &Path) -> Result<(), FsError> {
        let root = self.root_for(cid, path)?;
        let path: &Path = &self.real_path(&root, path);
        if !self.drop_stale(path) {
            self.drop_stale_dir(path);
        }
        Ok(())
    }

    /// A made directory that another program removed from disk (`rm -rf out` between two runs of
    /// a long-lived server) is forgotten too, once nothing in it lives only in memory: making it
    /// again (`os.makedirs`) must not fail with `EEXIST`. One that still holds such files exists
    /// for CAPIO (they are listed and opened in it), so it is made again on disk, where `stat`,
    /// `chdir` and other programs look.
    fn drop_stale_dir(&mut self, path: &Path) -> bool {
        let Some((dir, made)) = self
            .dirs
            .get(path)
            .and_then(|d| d.made.as_ref().map(|m| (d, m)))
        else {
            return false;
        };
        if fs::symlink_metadata(path).is_ok() {
            return false;
        }
        let (root, mode) = (made.root.clone(), made.mode);
        let children: Vec<PathBuf> = dir.names().map(|name| path.join(name)).collect();
        for child in &children {
            if !self.drop_stale(child) {
                self.drop_stale_dir(child);
            }
        }
        let live = children
            .iter()
            .any(|c| self.visible_file(c).is_some() || self.is_made_dir(c));
        if live {
            // A live subdirectory made again may have brought it back already.
            if fs::symlink_metadata(path).is_err() {
                match disk::mkdir_exact(&root, path, mode) {
                    Ok(()) => info!(
                        "directory {} was removed from disk by another program while holding \
                         files in memory: made it again",
                        path.display()
                    ),
                    Err(e) => warning!("cannot make {} again: {e}", path.display()),
                }
            }
            return false;
        }
        info!(
            "directory {} was removed from disk by another program: forgetting it",
            path.display()
        );
        self.dirs.remove(path);
        self.open_dirs.remove(path);
        self.remove_child(path);
        self.table.namespace().bump();
        true
    }

    fn drop_stale(&mut self, path: &Path) -> bool {
        let Some(node) = self.files.get(path) else {
            return false;
        };
        if !(node.persisted && node.state == SlotState::Committed) {
            return false;
        }
        // Without a recorded identity there is nothing to compare: keep serving it.
        if node
            .disk_id
            .is_none_or(|id| disk::identity(path) == Some(id))
        {
            return false;
        }
        info!(
            "{} was removed or replaced on disk since it was persisted: not serving it from memory",
            path.display()
        );
        self.forget_file(path);
        self.table.namespace().bump();
        true
    }

    pub fn open(
        &mut self,
        cid: ClientId,
        path: &Path,
        flags: u32,
        mode: u32,
    ) -> Result<Opened, FsError> {
        let root = self.root_for(cid, path)?;
        let path: &Path = &self.real_path(&root, path);
        self.drop_stale(path);
        let exclusive_create = flags & (O_CREAT | O_EXCL) == O_CREAT | O_EXCL;
        let (resolved, probe) = self.resolve_links(&root, path, !exclusive_create)?;
        if exclusive_create && matches!(probe, Some(disk::Probe::Link(_))) {
            // `O_EXCL` never follows a final symbolic link, dangling or not.
            return Err(FsError::Exists);
        }
        if resolved != path {
            self.drop_stale(&resolved);
        }
        let path = &resolved;
        // Read before deciding the path is missing: a create after this point moves `seq` past it,
        // so the client's futex wait cannot miss it.
        let generation = self.table.namespace().seq.load(SeqCst);
        let writable = matches!(flags & O_ACCMODE, O_WRONLY | O_RDWR);
        let create = flags & O_CREAT != 0;
        let exclusive = create && flags & O_EXCL != 0;
        if flags & O_DIRECTORY != 0 {
            // As the kernel (also for `O_TMPFILE`, which includes it): never a file, and never a
            // wait. A directory itself is not opened through CAPIO.
            return Err(match self.locate(&root, path)? {
                _ if create => FsError::BadFlags(flags),
                _ if self.files.contains_key(path) => FsError::NotDir,
                Where::File => FsError::NotDir,
                Where::Disk(node) if node.kind != DiskKind::Dir => FsError::NotDir,
                Where::Dir | Where::Disk(_) => FsError::IsDir,
                Where::Missing => FsError::NotFound,
            });
        }
        let opened = if self.files.contains_key(path) {
            self.open_existing(cid, path, flags)
        } else {
            // The probe already saw nothing on disk: no second look-up for a create.
            let found = match probe {
                Some(disk::Probe::Nothing) => Where::Missing,
                _ => self.locate(&root, path)?,
            };
            match found {
                Where::File => self.open_existing(cid, path, flags),
                // As the kernel: `O_CREAT | O_EXCL` on anything that exists is `EEXIST` (which
                // `tempfile.mkstemp` retries on); other opens of a directory are `EISDIR`.
                Where::Dir | Where::Disk(_) if exclusive => Err(FsError::Exists),
                Where::Dir => Err(FsError::IsDir),
                Where::Disk(node) => match node.kind {
                    DiskKind::Dir => Err(FsError::IsDir),
                    DiskKind::Other => Ok(Opened::Pass),
                    DiskKind::File if !writable => {
                        let file = disk::open_read(&node)?;
                        let size = file.metadata()?.len();
                        Ok(Opened::Disk { size, file })
                    }
                    DiskKind::File => self.import(cid, root, path, &node, flags & O_TRUNC != 0),
                },
                Where::Missing if create => {
                    self.check_parent(&root, path)?;
                    // The client applied its umask, as `open(2)` does.
                    self.insert(cid, root, path, None, mode & 0o7777)?;
                    self.opened(cid, path)
                }
                Where::Missing if !writable => self.missing_read(cid, path, generation),
                Where::Missing => Err(FsError::NotFound),
            }
        };
        match &opened {
            Ok(Opened::Wait { .. }) => self.note_waiting(cid, path),
            _ => self.done_waiting(cid, path),
        }
        self.settle();
        opened
    }

    /// A read-only open of a path nobody has created: wait for it while a producer may still
    /// appear, `ENOENT` at once otherwise (an optional-file probe must not hang).
    fn missing_read(&self, cid: ClientId, path: &Path, generation: u32) -> Result<Opened, FsError> {
        if self.producer_may_appear(cid, path) {
            Ok(Opened::Wait { generation })
        } else {
            Err(FsError::NotFound)
        }
    }

    /// The one rule for "`path` is missing now: wait, or answer `ENOENT`?", for opens and
    /// listings alike. With apps declared (CAPIO-CL `output_stream`) to produce it: wait until
    /// every one of them has terminated, unless the caller is one of them (it never waits for its
    /// own output). Without: wait while another client is attached, since only a live process
    /// can still create it — but not for the caller's ancestors (its parent step waits on it).
    /// Terminations bump the namespace generation, so waiters ask again then.
    fn producer_may_appear(&self, cid: ClientId, path: &Path) -> bool {
        let declared = self.rules.declared_producers(path);
        let me = self.app_of(cid);
        if declared.is_empty() {
            // Any other live client may still make it, except the caller's ancestors: the step
            // that started it is waiting for it, not making files for it.
            let ancestors = self.clients.get(&cid).map_or(&[][..], |c| &c.ancestors);
            return self
                .clients
                .iter()
                .any(|(id, c)| *id != cid && !c.exited && !ancestors.contains(&c.pid));
        }
        !declared.iter().any(|app| app == me)
            && !declared.iter().all(|app| self.app_terminated(app))
    }

    /// A committed input opened for writing becomes a CAPIO file, seeded with its disk content.
    fn import(
        &mut self,
        cid: ClientId,
        root: PathBuf,
        path: &Path,
        node: &disk::Node,
        truncate: bool,
    ) -> Result<Opened, FsError> {
        let seed = if truncate {
            None
        } else {
            Some(disk::open_read(node)?)
        };
        self.insert(cid, root, path, seed, node.meta.mode() & 0o7777)?;
        // Opening a file for writing changes none of its times: keep the input's until written.
        if let Some(file) = self.files.get(path) {
            let ns = |s: i64, n: i64| s.saturating_mul(1_000_000_000).saturating_add(n);
            let times = sys::Attrs {
                atime: sys::TimeSet::At(ns(node.meta.atime(), node.meta.atime_nsec())),
                mtime: sys::TimeSet::At(ns(node.meta.mtime(), node.meta.mtime_nsec())),
                ..sys::Attrs::default()
            };
            if let Err(e) = sys::set_attrs_fd(file.data.as_fd(), &times) {
                warning!("cannot keep the times of {}: {e}", path.display());
            }
        }
        self.opened(cid, path)
    }

    /// Create the file at `path`, produced by `cid`, backed as its rule says and seeded with
    /// `seed`'s content.
    fn insert(
        &mut self,
        cid: ClientId,
        root: PathBuf,
        path: &Path,
        seed: Option<File>,
        mode: u32,
    ) -> Result<(), FsError> {
        let rule = self.rules.rule_for(path);
        // Before the copy: an input bigger than the budget must not even pass through memory.
        if rule.storage == capio_cl::Storage::Memory
            && let Some(seed) = &seed
        {
            self.budget.check(seed.metadata()?.len())?;
        }
        let (data, backing, len) = new_data(&root, path, &rule, seed)?;
        // The data object carries the file's mode, owner and times, kept by the kernel.
        if let Err(e) = data.set_permissions(fs::Permissions::from_mode(mode)) {
            backing::discard(&data, backing);
            return Err(e.into());
        }
        let slot = match self.alloc_slot() {
            Ok(slot) => slot,
            Err(e) => {
                backing::discard(&data, backing);
                return Err(e);
            }
        };
        let s = self.slot(slot);
        s.reset_len(len);
        s.set_state(SlotState::Open);
        if matches!(rule.commit, CommitRule::OnFile(_)) {
            self.on_file.insert(slot);
        }
        self.files.insert(
            path.to_path_buf(),
            FileNode {
                slot,
                data,
                backing,
                root,
                rule,
                producers: BTreeSet::from([cid]),
                opens: HashMap::new(),
                closes_by_producers: 0,
                state: SlotState::Open,
                apps: BTreeSet::new(),
                generation: 0,
                persisted: false,
                disk_id: None,
                charged: 0,
                refused: false,
            },
        );
        self.by_slot.insert(slot, path.to_path_buf());
        if backing == Backing::Anonymous {
            self.charge(slot, len);
        }
        if let Some(client) = self.clients.get_mut(&cid) {
            client.produces.insert(slot);
        }
        self.add_child(cid, path);
        self.table.namespace().bump();
        Ok(())
    }

    fn open_existing(&mut self, cid: ClientId, path: &Path, flags: u32) -> Result<Opened, FsError> {
        let writable = matches!(flags & O_ACCMODE, O_WRONLY | O_RDWR);
        let create = flags & O_CREAT != 0;
        let table = &self.table;
        let node = self.files.get_mut(path).ok_or(FsError::NotFound)?;
        let client = self.clients.get_mut(&cid).ok_or(FsError::Exited)?;
        let slot = table.slot(node.slot).ok_or(FsError::TableFull)?;
        if create && flags & O_EXCL != 0 {
            return Err(FsError::Exists);
        }
        if node.state == SlotState::Aborted {
            if !(writable && create) {
                return Err(FsError::Aborted);
            }
            // Restart: a new producer writes the file again from scratch.
            let _append_lock = slot.lock_appends();
            node.data.set_len(0)?;
            slot.reset_len(0);
            self.budget.set_charge(node, 0);
            node.producers = BTreeSet::from([cid]);
            node.closes_by_producers = 0;
            node.state = SlotState::Open;
            node.persisted = false;
            slot.set_state(SlotState::Open);
            client.produces.insert(node.slot);
            table.namespace().bump();
        } else if writable {
            node.producers.insert(cid);
            client.produces.insert(node.slot);
            if node.state == SlotState::Committed {
                // A new round of writing: its `on_close:N` counts afresh.
                node.state = SlotState::Open;
                node.persisted = false;
                node.closes_by_producers = 0;
                slot.set_state(SlotState::Open);
                table.namespace().bump();
            }
            if flags & O_TRUNC != 0 {
                // Under the append lock: an append in flight elsewhere must not land past the new end.
                let _append_lock = slot.lock_appends();
                node.data.set_len(0)?;
                slot.reset_len(0);
                self.budget.set_charge(node, 0);
            }
        }
        self.opened(cid, path)
    }

    /// Count an open and build the `Memory` reply. A declared producer counts as a producer even
    /// when it only reads: it never waits on the file.
    fn opened(&mut self, cid: ClientId, path: &Path) -> Result<Opened, FsError> {
        let kin = self
            .files
            .get(path)
            .is_some_and(|n| self.made_by_ancestor(cid, &n.producers));
        let table = &self.table;
        let node = self.files.get_mut(path).ok_or(FsError::NotFound)?;
        let client = self.clients.get_mut(&cid).ok_or(FsError::Exited)?;
        let data = OwnedFd::from(node.data.try_clone()?);
        *node.opens.entry(cid).or_default() += 1;
        node.apps.insert(client.app.clone());
        client.opened.insert(node.slot);
        let size = table.slot(node.slot).map_or(0, |s| s.len.load(SeqCst));
        Ok(Opened::Memory {
            slot: node.slot,
            producer: node.producers.contains(&cid)
                || kin
                || self.rules.is_producer(&client.app, path),
            fire: fire_wire(node.rule.fire),
            size,
            data,
        })
    }

    /// One of `producers` is an ancestor of `cid` (the step that started it, e.g. with
    /// `subprocess`): the child reads that step's files as the step itself would, without waiting
    /// for a commit that only the step's end brings — and the step is waiting for the child.
    /// Siblings (two ranks of one app) are not kin: each waits for the other's commits.
    fn made_by_ancestor(&self, cid: ClientId, producers: &BTreeSet<ClientId>) -> bool {
        let Some(me) = self.clients.get(&cid) else {
            return false;
        };
        producers.iter().any(|id| {
            self.clients
                .get(id)
                .is_some_and(|p| me.ancestors.contains(&p.pid))
        })
    }

    /// One-way close: unknown slots (a `DISK` open, a stale message) are ignored. A writable
    /// close by a producer counts towards `on_close:N`.
    pub fn close(&mut self, cid: ClientId, slot: u32, writable: bool) {
        let Some(node) = self.node_mut(slot) else {
            return;
        };
        let Some(count) = node.opens.get_mut(&cid) else {
            return;
        };
        *count -= 1;
        let last = *count == 0;
        if last {
            node.opens.remove(&cid);
        }
        let by_producer = writable && node.producers.contains(&cid);
        if last && let Some(client) = self.clients.get_mut(&cid) {
            client.opened.remove(&slot);
        }
        if by_producer {
            self.producer_closed(slot);
        }
        if last {
            self.release_unlinked(slot);
        }
        self.settle();
    }

    pub fn stat(&self, cid: ClientId, path: &Path) -> Result<Stat, FsError> {
        let root = self.root_for(cid, path)?;
        let path: &Path = &self.real_path(&root, path);
        let path = &self.through_links(&root, path)?;
        match self.locate(&root, path)? {
            Where::File => {
                let node = self.visible_file(path).ok_or(FsError::NotFound)?;
                let meta = node.data.metadata()?;
                let root_dev = self.clients.get(&cid).map_or(0, |c| c.root_dev);
                let (dev, ino) = capio_proto::reported_identity(meta.dev(), meta.ino(), root_dev);
                Ok(Stat {
                    size: self.slot(node.slot).len.load(SeqCst),
                    nlink: 1,
                    ino,
                    dev,
                    ..Stat::of_meta(node_kind::FILE, &meta, node.state == SlotState::Committed)
                })
            }
            Where::Dir => {
                // A made directory is on disk: its attributes are the disk's, its state CAPIO's.
                let made = self
                    .dirs
                    .get(path)
                    .and_then(|d| d.made.as_ref())
                    .ok_or(FsError::NotFound)?;
                let real = disk::lookup(&root, path)?.ok_or(FsError::NotFound)?;
                Ok(Stat::of_meta(node_kind::DIR, &real.meta, made.committed))
            }
            Where::Disk(node) => Ok(Stat::of_meta(node.wire_kind(), &node.meta, true)),
            Where::Missing => Err(FsError::NotFound),
        }
    }

    /// `stat` without following a final symbolic link: one on disk is reported itself.
    pub fn lstat(&self, cid: ClientId, path: &Path) -> Result<Stat, FsError> {
        let root = self.root_for(cid, path)?;
        let path: &Path = &self.real_path(&root, path);
        if self.locate_ns(&root, path)?.is_none()
            && let Some(meta) = disk::link_metadata(&root, path)?
        {
            return Ok(Stat::of_meta(node_kind::OTHER, &meta, true));
        }
        self.stat(cid, path)
    }

    /// Where a lookup of `path` really goes when its last component is a symbolic link on disk
    /// whose target (lexically resolved, as many times as links follow links) stays inside
    /// `root`: a link to a CAPIO file then reaches that file. A target outside `root` is left to
    /// the confined disk lookup, which refuses it.
    fn through_links(&self, root: &Path, path: &Path) -> Result<PathBuf, FsError> {
        Ok(self.resolve_links(root, path, true)?.0)
    }

    /// [`Self::through_links`], also returning what the disk has at the final path when the
    /// namespace does not know it (`None` when it does). With `follow` false a final link is not
    /// followed (the probe then says `Link`).
    fn resolve_links(
        &self,
        root: &Path,
        path: &Path,
        follow: bool,
    ) -> Result<(PathBuf, Option<disk::Probe>), FsError> {
        let mut cur = path.to_path_buf();
        for _ in 0..MAX_LINKS {
            if self.locate_ns(root, &cur)?.is_some() {
                return Ok((cur, None));
            }
            let parent_made = cur.parent().is_some_and(|p| self.is_made_dir(p));
            let probe = disk::probe(root, &cur, parent_made)?;
            let disk::Probe::Link(target) = &probe else {
                return Ok((cur, Some(probe)));
            };
            let next = cur.parent().and_then(|p| normalize(&p.join(target)));
            let Some(next) = next
                .filter(|n| follow && n != root && confine(n, root).is_ok() && !self.excluded(n))
            else {
                return Ok((cur, Some(probe)));
            };
            cur = next;
        }
        Err(FsError::Io(io::Error::from_raw_os_error(libc::ELOOP)))
    }

    /// Change the attributes of `path` as `chmod`, `chown` and `utimensat` do (`nofollow`: a final
    /// symbolic link itself). A CAPIO file's live in its data object, so the kernel applies its
    /// own rules to them; a persisted file's disk copy changes too, so the disk never disagrees.
    pub fn set_attrs(
        &mut self,
        cid: ClientId,
        path: &Path,
        attrs: &sys::Attrs,
        nofollow: bool,
    ) -> Result<(), FsError> {
        let root = self.root_for(cid, path)?;
        let path: &Path = &self.real_path(&root, path);
        if nofollow
            && self.locate_ns(&root, path)?.is_none()
            && disk::link_metadata(&root, path)?.is_some()
        {
            let entry = disk::entry(&root, path)?.ok_or(FsError::NotFound)?;
            return Ok(sys::set_attrs_path(&entry.real, attrs, true)?);
        }
        let path = &self.through_links(&root, path)?;
        match self.locate(&root, path)? {
            Where::File => {
                let node = self.visible_file(path).ok_or(FsError::NotFound)?;
                sys::set_attrs_fd(node.data.as_fd(), attrs)?;
                if node.persisted
                    && node.backing != Backing::InPlace
                    && let Ok(Some(copy)) = disk::lookup(&root, path)
                    && copy.kind == DiskKind::File
                    && let Err(e) = sys::set_attrs_path(&copy.real, attrs, false)
                {
                    warning!("cannot update the attributes of {}: {e}", path.display());
                }
                Ok(())
            }
            Where::Dir => {
                let real = disk::lookup(&root, path)?.ok_or(FsError::NotFound)?;
                Ok(sys::set_attrs_path(&real.real, attrs, false)?)
            }
            Where::Disk(node) => Ok(sys::set_attrs_path(&node.real, attrs, false)?),
            Where::Missing => Err(FsError::NotFound),
        }
    }

    /// Make a directory, produced by `cid`: on disk at once (with its mode), in the namespace
    /// for its listing and its CAPIO-CL rule.
    pub fn mkdir(&mut self, cid: ClientId, path: &Path, mode: u32) -> Result<(), FsError> {
        let root = self.root_for(cid, path)?;
        let path: &Path = &self.real_path(&root, path);
        self.drop_stale_dir(path);
        // An aborted file keeps its node (it may be restarted), so its path stays taken.
        if self.files.contains_key(path) || !matches!(self.locate(&root, path)?, Where::Missing) {
            return Err(FsError::Exists);
        }
        self.check_parent(&root, path)?;
        // The client applied its umask; `mkdir(2)` keeps only the sticky bit beyond rwx.
        disk::mkdir_exact(&root, path, mode & 0o1777)?;
        self.dirs.entry(path.to_path_buf()).or_default().made = Some(MadeDir {
            root,
            rule: self.rules.dir_rule_for(path),
            producers: BTreeSet::from([cid]),
            committed: false,
            adopted: false,
            produced: true,
            before: HashSet::new(),
            mode: mode & 0o1777,
        });
        self.open_dirs.insert(path.to_path_buf());
        // `on_n_files: 0`, or `on_file` with its dependencies already committed.
        self.settle_due = true;
        self.add_child(cid, path);
        self.table.namespace().bump();
        self.settle();
        Ok(())
    }

    /// Entries of a directory (CAPIO entries in creation order, then disk entries not yet
    /// listed), its commit state and fire rule.
    pub fn list(&mut self, cid: ClientId, path: &Path) -> Result<Listing, FsError> {
        let root = self.root_for(cid, path)?;
        let path: &Path = &self.real_path(&root, path);
        // A link to a directory lists that directory, CAPIO entries included.
        let path: &Path = &self.through_links(&root, path)?;
        self.drop_stale_dir(path);
        self.adopt(&root, path);
        let real = match self.locate(&root, path)? {
            Where::Dir => disk::lookup(&root, path)
                .ok()
                .flatten()
                .filter(|n| n.kind == DiskKind::Dir)
                .map(|n| n.real),
            Where::Disk(node) if node.kind == DiskKind::Dir => Some(node.real),
            Where::File | Where::Disk(_) => return Err(FsError::NotDir),
            Where::Missing if self.producer_may_appear(cid, path) => {
                return Ok(Listing {
                    entries: Vec::new(),
                    committed: false,
                    fire: fire_wire(self.rules.dir_rule_for(path).fire),
                    producer: false,
                    missing: true,
                });
            }
            Where::Missing => return Err(FsError::NotFound),
        };
        let on_disk = match &real {
            Some(real) => disk::list(real)?,
            None => Vec::new(),
        };
        self.drop_stale_children(path, &on_disk);
        let mut entries = Vec::new();
        let mut seen = HashSet::new();
        if let Some(dir) = self.dirs.get(path) {
            for name in dir.names() {
                let child = path.join(name);
                let kind = if self.visible_file(&child).is_some() {
                    node_kind::FILE
                } else if self.is_made_dir(&child) {
                    node_kind::DIR
                } else {
                    continue;
                };
                seen.insert(name.clone());
                entries.push((kind, name.clone()));
            }
        }
        for (kind, name) in on_disk {
            if !seen.contains(&name) {
                // A link is listed with the kind of what a look-up through it finds, which may be
                // a CAPIO file or directory the disk does not have.
                let kind = if kind & node_kind::LINK != 0 {
                    self.stat(cid, &path.join(&name))
                        .map_or(kind, |st| node_kind::LINK | kind_of_type(st.file_type))
                } else {
                    kind
                };
                entries.push((kind, name));
            }
        }
        let declared = self.rules.is_producer(self.app_of(cid), path);
        let listing = match self.dirs.get(path).and_then(|d| d.made.as_ref()) {
            Some(made) => Listing {
                entries,
                // Nobody produces it now and nobody can any more: complete for this caller.
                committed: made.committed
                    || (made.producers.is_empty() && !self.producer_may_appear(cid, path)),
                fire: fire_wire(made.rule.fire),
                producer: declared
                    || made.producers.contains(&cid)
                    || self.made_by_ancestor(cid, &made.producers),
                missing: false,
            },
            // On disk before anyone here made it, without a `dirname` rule: complete.
            None => Listing {
                entries,
                committed: true,
                fire: fire_wire(self.rules.dir_rule_for(path).fire),
                producer: declared,
                missing: false,
            },
        };
        Ok(listing)
    }

    /// Persisted files in `dir` that the disk listing `on_disk` lacks were removed by another
    /// program: they are not listed (nor served) any more. Costs nothing beyond the listing.
    fn drop_stale_children(&mut self, dir: &Path, on_disk: &[(u32, OsString)]) {
        let Some(d) = self.dirs.get(dir) else {
            return;
        };
        let present: HashSet<&OsString> = on_disk.iter().map(|(_, name)| name).collect();
        let gone: Vec<PathBuf> = d
            .names()
            .filter(|name| !present.contains(name))
            .map(|name| dir.join(name))
            .filter(|child| {
                self.files
                    .get(child)
                    .is_some_and(|n| n.persisted && n.state == SlotState::Committed)
            })
            .collect();
        for child in gone {
            self.drop_stale(&child);
        }
    }

    /// Clean termination: the client stops producing; files and directories left without
    /// producers commit. Returns the commits to persist, in path order.
    pub fn exit(&mut self, cid: ClientId, teardown: bool) -> Result<Vec<Commit>, FsError> {
        let client = self.clients.get_mut(&cid).ok_or(FsError::Exited)?;
        if client.exited {
            return Ok(Vec::new());
        }
        client.exited = true;
        self.teardown |= teardown;
        let produces = std::mem::take(&mut client.produces);
        for slot in produces {
            self.stop_producing(cid, slot);
        }
        self.dirs_lose_producer(cid);
        // Waiting openers re-check: a declared producer app may have just terminated.
        self.table.namespace().bump();
        self.settle();
        Ok(self.take_commits())
    }

    /// The work to persist one commit, or `None` when a later reopen or commit superseded it.
    pub fn persist_job(
        &self,
        path: &Path,
        generation: u64,
    ) -> Result<Option<persist::Job>, FsError> {
        let Some(node) = self.current_commit(path, generation) else {
            return Ok(None);
        };
        Ok(Some(persist::Job {
            path: path.to_path_buf(),
            root: node.root.clone(),
            slot: node.slot,
            generation,
            data: node.data.try_clone()?,
            len: self.slot(node.slot).len.load(SeqCst),
            in_place: node.backing == Backing::Hidden,
        }))
    }

    /// The file at `path` if `generation` is still its current commit.
    fn current_commit(&self, path: &Path, generation: u64) -> Option<&FileNode> {
        self.files
            .get(path)
            .filter(|n| n.generation == generation && n.state == SlotState::Committed)
    }

    /// Rename a written temp file over the real path, unless its commit was superseded meanwhile
    /// (then the temp is discarded). Runs under the lock, so the check and the rename are atomic
    /// with respect to reopens.
    pub fn install(&mut self, job: &persist::Job, temp: persist::Temp) -> io::Result<bool> {
        let Some(node) = self.files.get_mut(&job.path).filter(|n| {
            n.slot == job.slot && n.generation == job.generation && n.state == SlotState::Committed
        }) else {
            return Ok(false);
        };
        // The temp file is the persisted copy: renaming keeps its identity.
        let id = fs::symlink_metadata(temp.path()).map(|m| disk::Identity::of(&m));
        temp.install()?;
        node.persisted = true;
        node.disk_id = id.ok();
        Ok(true)
    }

    /// Persist a `storage: fs` file by renaming its hidden data file over the real path (under
    /// the lock, like `install`). `Ok(false)` when there is nothing to do, because the commit was
    /// superseded or the data file lost its hidden name; the caller then copies as for memory.
    pub fn install_in_place(&mut self, job: &persist::Job) -> Result<bool, FsError> {
        let Some(node) = self.files.get_mut(&job.path).filter(|n| {
            n.slot == job.slot
                && n.generation == job.generation
                && n.state == SlotState::Committed
                && n.backing == Backing::Hidden
        }) else {
            return Ok(false);
        };
        if !backing::rename_into_place(&node.root, &node.data, &job.path, job.len)? {
            return Ok(false);
        }
        node.backing = Backing::InPlace;
        node.persisted = true;
        node.disk_id = node.data.metadata().ok().map(|m| disk::Identity::of(&m));
        Ok(true)
    }

    /// The client's connection ended. Without a prior `Exit` it crashed: every file it alone was
    /// producing aborts (readers get an error instead of waiting forever). Directories it was the
    /// last producer of commit either way, so their readers are released too.
    pub fn detach(&mut self, cid: ClientId) -> Departure {
        let Some(client) = self.clients.remove(&cid) else {
            return Departure {
                label: format!("client {cid}"),
                crashed: false,
                aborted: Vec::new(),
                commits: Vec::new(),
            };
        };
        let label = format!("app '{}' (pid {})", client.app, client.pid);
        let mut aborted = Vec::new();
        for &slot in &client.produces {
            let path = self.by_slot.get(&slot).cloned();
            let Some(apps) = self.abort_if_orphaned(cid, slot) else {
                continue;
            };
            // An unlinked file's readers are released too, but nobody expected it on disk.
            if let Some(path) = path {
                aborted.push(Lost {
                    path,
                    size: self.slot(slot).len.load(SeqCst),
                    apps,
                    state: SlotState::Open,
                });
            }
        }
        for &slot in &client.opened {
            if let Some(node) = self.node_mut(slot) {
                node.opens.remove(&cid);
            }
            self.release_unlinked(slot);
        }
        self.dirs_lose_producer(cid);
        self.forget_waits_of(cid);
        // Always: waiting openers re-check whether a declared producer app is gone now.
        self.table.namespace().bump();
        self.settle();
        aborted.sort_by(|a, b| a.path.cmp(&b.path));
        Departure {
            label,
            crashed: !client.exited,
            aborted,
            commits: self.take_commits(),
        }
    }

    /// `cid` crashed: abort the file in `slot` if nobody else produces it. Returns its apps then.
    fn abort_if_orphaned(&mut self, cid: ClientId, slot: u32) -> Option<Vec<String>> {
        let node = self.node_mut(slot)?;
        node.producers.remove(&cid);
        if !(node.producers.is_empty() && node.state == SlotState::Open) {
            return None;
        }
        node.state = SlotState::Aborted;
        let apps = node.apps.iter().cloned().collect();
        self.slot(slot).set_state(SlotState::Aborted);
        Some(apps)
    }

    /// Clients attached that have not sent `Exit`.
    pub fn live_clients(&self) -> usize {
        self.clients.values().filter(|c| !c.exited).count()
    }

    /// A teardown was requested and nobody is left: from then on the namespace takes no new
    /// client. Deciding and closing under the one namespace lock is what keeps a client from
    /// attaching, unseen, to a server that has just decided to stop.
    pub fn teardown_due(&mut self) -> bool {
        if self.teardown && self.live_clients() == 0 {
            self.closing = true;
        }
        self.closing
    }

    /// Take no new client (the server is stopping for another reason: a signal, `Shutdown`).
    pub fn refuse_new_clients(&mut self) {
        self.closing = true;
    }

    /// Stop serving: report every file that is not safely on disk, abort the ones still being
    /// produced so no reader waits on a server that is gone, and remove the hidden data files of
    /// `storage: fs` files that will not persist.
    pub fn shut_down(&mut self) -> Vec<Lost> {
        let mut lost = Vec::new();
        for (path, node) in &mut self.files {
            if node.state == SlotState::Committed && node.persisted {
                continue;
            }
            let s = self.table.slot(node.slot).expect("slot inside the table");
            lost.push(Lost {
                path: path.clone(),
                size: s.len.load(SeqCst),
                apps: node.apps.iter().cloned().collect(),
                state: node.state,
            });
            if node.state == SlotState::Open {
                node.state = SlotState::Aborted;
                s.set_state(SlotState::Aborted);
            }
            if node.backing == Backing::Hidden {
                if let Err(e) = backing::remove_hidden(&node.data) {
                    warning!("cannot remove the data file of {}: {e}", path.display());
                }
                node.backing = Backing::Anonymous;
            }
        }
        // Unlinked files are nobody's output; only their readers need releasing.
        for node in self.unlinked.values_mut() {
            if node.state == SlotState::Open {
                node.state = SlotState::Aborted;
                self.table
                    .slot(node.slot)
                    .expect("slot inside the table")
                    .set_state(SlotState::Aborted);
            }
        }
        self.table.namespace().bump();
        lost.sort_by(|a, b| a.path.cmp(&b.path));
        lost
    }

    /// Made directories whose rule never committed them.
    pub fn uncommitted_dirs(&self) -> Vec<PathBuf> {
        self.open_dirs.iter().cloned().collect()
    }

    /// At shutdown, after `shut_down`: remove from disk the directories made during the run that
    /// are not to persist (by their CAPIO-CL rule) and hold nothing on disk, deepest first, so a
    /// run leaves no empty scaffolding of its in-memory files. Returns the ones removed.
    pub fn remove_transient_dirs(&mut self) -> Vec<PathBuf> {
        let mut transient: Vec<(PathBuf, PathBuf)> = self
            .dirs
            .iter()
            .filter_map(|(path, d)| {
                let made = d.made.as_ref()?;
                (!made.adopted && !made.rule.permanent).then(|| (path.clone(), made.root.clone()))
            })
            .collect();
        // Children before their parents: a longer path is never an ancestor of a shorter one.
        transient.sort_by_key(|(path, _)| std::cmp::Reverse(path.as_os_str().len()));
        let mut removed = Vec::new();
        for (path, root) in transient {
            let Ok(Some(entry)) = disk::entry(&root, &path) else {
                continue;
            };
            if entry.kind == DiskKind::Dir && disk::rmdir(&entry).is_ok() {
                removed.push(path);
            }
        }
        removed.sort();
        removed
    }
}

mod commit;
mod memory;
mod names;
mod report;

#[cfg(test)]
mod tests;
