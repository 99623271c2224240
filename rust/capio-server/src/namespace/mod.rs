//! The server's model of the CAPIO directories it serves, built from owned parts: the file table
//! (`files`: files, their shared slots, unlinked files), the directory table (`dirs`), the client
//! registry (`clients`: clients and the client ↔ file relation) and the CAPIO-CL commit logic
//! (`commit`). This module is the facade the handlers call; the operations live by kind in
//! `lookup`, `open`, `attrs`, `listing`, `names`, `handoff`, `memory` and `report`. Callers keep it
//! behind one mutex; its only I/O is data-object management and confined disk access, so it is
//! tested without sockets. Every mutating operation returns what it caused (`Caused`: the commits
//! to persist), which the caller hands to `persist`.

use crate::backing;
use crate::disk::{self, Kind as DiskKind};
use crate::error::FsError;
use capio_cl::Rules;
use capio_proto::{EntryKind, Fire, SlotState, StateTable};
use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

mod attrs;
mod clients;
mod commit;
mod dirs;
mod evict;
mod files;
mod handoff;
mod listing;
mod lookup;
mod memory;
mod names;
mod open;
mod published;
mod release;
mod remote;
mod report;

pub use clients::ClientId;
pub use evict::{Evict, Eviction};
pub use remote::{Created, FileId, Lent, Mark, Notice, Outbox, Sink, hashed_home};

/// The outcome of an `Open`.
#[derive(Debug)]
pub enum Opened {
    Memory {
        slot: u32,
        producer: bool,
        fire: Fire,
        size: u64,
        data: OwnedFd,
        /// The reader's progress cell (`release`), or 0.
        progress: u32,
        /// Its writers write its memory object directly (`FileNode::direct_write`).
        direct_write: bool,
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

/// A directory's entries and what a reader may conclude from them.
#[derive(Debug, PartialEq, Eq)]
pub struct Listing {
    /// CAPIO entries in creation order, then disk entries not listed yet.
    pub entries: Vec<(EntryKind, OsString)>,
    /// No entry will be added any more under its rule (always, for disk directories without a
    /// `dirname` rule).
    pub committed: bool,
    pub fire: Fire,
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
    pub caused: Caused,
}

/// A committed file to persist: its path and the generation of the commit.
pub type Commit = (PathBuf, u64);

/// What a mutating operation caused beyond its answer: the permanent files it committed (or, for
/// a rename, must persist again under a new path), which the caller hands to `persist::all` (the
/// one consumer) in the same request.
#[must_use = "committed files reach the disk only through persist::all"]
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Caused {
    commits: Vec<Commit>,
    /// Something committed or an entry was added: `on_file` and directory rules may follow
    /// (`Namespace::settle`). Never set once the operation has returned.
    unsettled: bool,
}

impl IntoIterator for Caused {
    type Item = Commit;
    type IntoIter = std::vec::IntoIter<Commit>;

    /// The commits to persist, in path order.
    fn into_iter(self) -> Self::IntoIter {
        self.commits().into_iter()
    }
}

impl Caused {
    /// The commits to persist, in path order.
    pub fn commits(self) -> Vec<Commit> {
        let mut out = self.commits;
        out.sort();
        out
    }

    pub fn is_empty(&self) -> bool {
        self.commits.is_empty()
    }

    fn committed(&mut self, commit: Commit) {
        self.commits.push(commit);
        self.unsettled = true;
    }

    /// A committed file renamed before its persist landed: persisted again, under its new path.
    /// Not a new commit, so no rule needs settling.
    fn persist_again(&mut self, commit: Commit) {
        self.commits.push(commit);
    }
}

/// An operation's answer and what it caused, which is there even when the answer is an error
/// (a listing may adopt a directory, commit it and still fail).
#[must_use]
#[derive(Debug)]
pub struct Done<T> {
    pub result: Result<T, FsError>,
    pub caused: Caused,
}

impl<T> Done<T> {
    /// Refused before it reached the namespace (a bad path or flag): it caused nothing.
    pub fn refused(e: FsError) -> Done<T> {
        Done {
            result: Err(e),
            caused: Caused::default(),
        }
    }
}

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
    files: files::FileTable,
    dirs: dirs::DirTable,
    clients: clients::Clients,
    teardown: bool,
    /// Set once the server decided to stop: no new client is taken.
    closing: bool,
    /// Read-only opens answered `WAIT`, by client and path: (first, latest) time asked. A waiting
    /// client asks again at least every 250 ms, so a fresh `latest` means it still waits.
    waiting: HashMap<(ClientId, PathBuf), (Instant, Instant)>,
    started: Instant,
    /// The other nodes of a multi-node workflow (`join_cluster`).
    remote: Option<remote::Remote>,
    /// How far the readers of releasable files got (`release`).
    consumption: release::Consumption,
    /// Where committed files go when memory is full (`evict`); `None`: nowhere.
    spill: Option<Arc<crate::spill::SpillDir>>,
    /// Slots of files being copied out of memory now.
    evicting: std::collections::HashSet<u32>,
    /// Files (slot, commit) whose copy to the spill directory failed.
    unspillable: std::collections::HashSet<(u32, u64)>,
    /// What clients may look up without asking (the tables publish their own changes).
    published: published::Published,
}

impl Namespace {
    pub fn new(table: Arc<StateTable>, rules: Rules) -> Namespace {
        let published = published::Published::new(table.clone());
        Namespace {
            files: files::FileTable::new(table.clone(), published.clone()),
            table,
            rules,
            dirs: dirs::DirTable::new(published.clone()),
            published,
            clients: clients::Clients::default(),
            teardown: false,
            closing: false,
            waiting: HashMap::new(),
            started: Instant::now(),
            remote: None,
            consumption: release::Consumption::default(),
            spill: None,
            evicting: std::collections::HashSet::new(),
            unspillable: std::collections::HashSet::new(),
        }
    }

    /// Run `op`, collecting what it caused, and settle the rules it may have set off.
    fn doing<T>(
        &mut self,
        op: impl FnOnce(&mut Self, &mut Caused) -> Result<T, FsError>,
    ) -> Done<T> {
        let mut caused = Caused::default();
        let result = op(self, &mut caused);
        self.settle(&mut caused);
        Done { result, caused }
    }

    /// Everyone waiting on the namespace (openers of missing paths, listings) looks again.
    fn bump(&self) {
        self.table.namespace().bump();
    }

    /// Register a client. Its root must be an existing directory, given canonically (the client
    /// resolves it; a non-canonical spelling would split one directory into two namespaces).
    pub fn hello(&mut self, pid: i32, app: &str, root: &Path) -> Result<ClientId, FsError> {
        if self.closing {
            return Err(FsError::Closing);
        }
        let cid = self.clients.attach(pid, app, root)?;
        self.announce_apps();
        Ok(cid)
    }

    /// Clean termination: the client stops producing; files and directories left without
    /// producers commit.
    pub fn exit(&mut self, cid: ClientId, teardown: bool) -> Result<Caused, FsError> {
        let Some(produced) = self.clients.exit(cid)? else {
            return Ok(Caused::default());
        };
        self.teardown |= teardown;
        let mut caused = Caused::default();
        for slot in produced {
            self.stop_producing(slot, &mut caused);
        }
        self.dirs_lose_producer(cid, &mut caused);
        self.announce_apps();
        // Waiting openers re-check: a declared producer app may have just terminated.
        self.bump();
        self.settle(&mut caused);
        Ok(caused)
    }

    /// The client's connection ended. Without a prior `Exit` it crashed: every file it alone was
    /// producing aborts (readers get an error instead of waiting forever). Directories it was the
    /// last producer of commit either way, so their readers are released too.
    pub fn detach(&mut self, cid: ClientId) -> Departure {
        let Some(left) = self.clients.detach(cid) else {
            return Departure {
                label: format!("client {cid}"),
                crashed: false,
                aborted: Vec::new(),
                caused: Caused::default(),
            };
        };
        let client = left.client;
        let label = format!("app '{}' (pid {})", client.app, client.pid);
        let mut aborted = Vec::new();
        for slot in left.produced {
            if !self.clients.producers(slot).is_empty() {
                continue;
            }
            let path = self.files.path_of(slot).cloned();
            let Some(node) = self.files.node_mut(slot) else {
                continue;
            };
            if !node.abort() {
                continue;
            }
            self.tell_state(slot);
            let Some(node) = self.files.node_mut(slot) else {
                continue;
            };
            // An unlinked file's readers are released too, but nobody expected it on disk.
            if let Some(path) = path {
                aborted.push(Lost {
                    path,
                    size: node.len(),
                    apps: node.apps.iter().cloned().collect(),
                    state: SlotState::Open,
                });
            }
        }
        self.untrack_client(cid);
        for slot in left.opened {
            self.release_unlinked(slot);
        }
        let mut caused = Caused::default();
        self.dirs_lose_producer(cid, &mut caused);
        self.announce_apps();
        self.forget_waits_of(cid);
        // Always: waiting openers re-check whether a declared producer app is gone now.
        self.bump();
        self.settle(&mut caused);
        aborted.sort_by(|a, b| a.path.cmp(&b.path));
        Departure {
            label,
            crashed: !client.exited,
            aborted,
            caused,
        }
    }

    /// Clients attached that have not sent `Exit`.
    pub fn live_clients(&self) -> usize {
        self.clients.live_count()
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
        let lost = self.files.shut_down();
        self.bump();
        lost
    }

    /// Made directories whose rule never committed them.
    pub fn uncommitted_dirs(&self) -> Vec<PathBuf> {
        self.dirs.open().cloned().collect()
    }

    /// At shutdown, after `shut_down`: remove from disk the directories made during the run that
    /// are not to persist (by their CAPIO-CL rule) and hold nothing on disk, deepest first, so a
    /// run leaves no empty scaffolding of its in-memory files. Returns the ones removed.
    pub fn remove_transient_dirs(&mut self) -> Vec<PathBuf> {
        let mut removed = Vec::new();
        for (path, root) in self.dirs.transient() {
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

    /// Take the file at `path` (if any) out of the namespace. Its memfd lives on for the fds
    /// already open on it; the slot is reused only once the last of them is closed.
    fn forget_file(&mut self, path: &Path) {
        let written_here = self.files.get(path).is_some_and(|n| n.remote.is_none());
        let Some(slot) = self.files.unlink(path) else {
            return;
        };
        if written_here {
            self.tell(|| Notice::Removed {
                path: path.to_path_buf(),
            });
        }
        self.dirs.remove_entry(path);
        self.release_unlinked(slot);
    }

    /// Free an unlinked file's slot once no fd can refer to it any more.
    fn release_unlinked(&mut self, slot: u32) {
        // A fetch still fills it, or another node's fetch still reads it.
        if self.remote.as_ref().is_some_and(|r| r.is_pinned(slot)) {
            return;
        }
        let id = self.files.node(slot).and_then(|n| n.cluster_id);
        if !self.clients.is_open(slot) && self.files.release(slot) {
            self.forget_readers(slot);
            self.clients.forget_file(slot);
            self.forget_number(id);
        }
    }
}

/// A new file's data object at `path`, backed as `rule` says (memory from `pool` first, fresh
/// memory without one), holding `seed`'s content and positioned at its start (clients share its
/// file offset).
fn new_data(
    root: PathBuf,
    path: &Path,
    rule: capio_cl::Rule,
    seed: Option<File>,
    pool: Option<&mut crate::pool::Pool>,
) -> Result<files::NewFile, FsError> {
    use std::io::Seek;
    let (mut data, backing, memory) = backing::create(&root, path, rule.storage, pool)?;
    let seeded = match seed {
        None => Ok(0),
        Some(mut src) => {
            std::io::copy(&mut src, &mut data).and_then(|len| data.rewind().map(|()| len))
        }
    };
    match seeded {
        Ok(len) => Ok(files::NewFile {
            data,
            backing,
            memory,
            root,
            rule,
            len,
            direct_write: false,
        }),
        Err(e) => {
            backing::discard(&data, backing);
            Err(e.into())
        }
    }
}

#[cfg(test)]
mod tests;
