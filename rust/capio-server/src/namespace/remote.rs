//! One namespace over many nodes (`cluster`): what this node tells the others about the files it
//! writes, what it learns of theirs, and the local replicas that serve another node's file to this
//! node's readers.
//!
//! Every node keeps an index of every file in the workflow: a file created here is announced to
//! every other node once (`Notice::Created`), and so are its state changes, removal and renames.
//! Finding a file's home therefore costs no message at all; `stat`, `exists` and listings are
//! answered here, and a reader waiting for a file another node creates is woken by its
//! announcement. A file known from another node is a *replica* in the local file table: a slot and
//! a memfd like any file, empty until a local reader opens it, then filled by one fetch from its
//! home, which streams the bytes as they are written and seals the replica at the commit. Local
//! readers wait on the replica's slot exactly as on a local file's.
//!
//! Where a file is kept follows CAPIO-CL's `home_node_policies`: by default (`create`) on the node
//! that writes it; under `hashing` on the node its path hashes to, under `manual` on the node named
//! for it. A file kept elsewhere than where it is written is fetched by its home as soon as it is
//! created, and streams there as it is written; other nodes fetch it from its home. Whatever the
//! policy, the writer persists a permanent file, once: it holds the whole file from the start, so
//! no hand-over between nodes can lose it at a stop. A file is written on one node only: a write
//! open of a replica is `EROFS` (and a rename of one is `EXDEV`), so one file never has two
//! writers on two nodes.

use super::{Caused, Namespace};
use crate::backing;
use crate::error::FsError;
use crate::log::{info, warning};
use capio_proto::SlotState;
use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};

/// A file across the nodes: the node that writes it and its number there. Unlike its path, it
/// survives renames, and names the very file an fd has open after an unlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId {
    pub writer: usize,
    pub serial: u64,
}

/// What this node's namespace tells the others, handed to the cluster's outbox in the order it
/// happened (the cluster keeps that order per destination).
#[derive(Debug)]
pub enum Notice {
    /// A file was created here.
    Created(Created),
    /// A file written here changed state; `len` is its size then, `round` how many times it was
    /// written anew.
    State {
        path: PathBuf,
        state: SlotState,
        len: u64,
        round: u32,
    },
    /// A file written here was unlinked (or replaced).
    Removed { path: PathBuf },
    /// A file written here was renamed.
    Renamed { from: PathBuf, to: PathBuf },
    /// The apps with live clients here, and those that attached here and have all terminated.
    Apps {
        live: Vec<String>,
        ended: Vec<String>,
    },
    /// Fetch round `round` (or a later one) of file `file` (at `path`, for logs) from node
    /// `from` into `sink` (fetch number `id`), from `sink.from` on.
    Fetch {
        from: usize,
        file: FileId,
        round: u32,
        path: PathBuf,
        id: u64,
        sink: Sink,
    },
    /// A client here unlinked a file written on node `writer`.
    Unlink { writer: usize, path: PathBuf },
}

/// A file created on a node: number `serial` there, with permission bits `mode`, by a step of
/// app `app`, to be kept on node `home`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub path: PathBuf,
    pub mode: u32,
    pub home: usize,
    pub serial: u64,
    pub app: String,
}

/// Where a fetch writes: the replica's data object and slot. The slot stays pinned until the
/// fetch ends, so it is never reused for another file while bytes still arrive; `live` goes false
/// when the fetch is called off (the file was written again), and its late bytes are dropped.
#[derive(Debug)]
pub struct Sink {
    pub file: File,
    pub slot: u32,
    pub from: u64,
    pub live: Arc<AtomicBool>,
}

/// What changes whenever the bytes of a file start over here (a new round at its writer, a copy
/// emptied to be fetched again): a pusher that sees it change stops, and its fetch starts over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark(u32);

/// What `lend` found for a fetch.
#[derive(Debug)]
pub enum Lent {
    /// Lent: its slot and data, the round it serves, and its `Mark` now.
    Ready {
        slot: u32,
        data: File,
        round: u32,
        mark: Mark,
    },
    /// Not known here (any more).
    Gone,
    /// Known here only in an older round than asked for.
    NotYet,
    /// Known here in a newer round than the asker holds bytes of.
    Newer(u32),
}

/// The cluster's end of the namespace: takes notices without blocking.
pub trait Outbox: Send {
    fn send(&self, notice: Notice);
}

/// A replica's view of its file on the node that writes it.
#[derive(Debug, Clone)]
pub(super) struct Replica {
    /// The node its producers write it on: it tells the file's state, and takes its unlinks.
    pub(super) writer: usize,
    /// The node that keeps it for the other nodes' readers (`home_node_policies`): they fetch it
    /// there.
    pub(super) home: usize,
    /// This node is its home.
    pub(super) keeper: bool,
    /// The writer's state of the file (the local slot's state follows the local data).
    pub(super) state: SlotState,
    /// The writer's size of the file, as last told.
    pub(super) len: u64,
    /// The writer's round of the file, as last told (or as a home told, if it heard first): the
    /// round of the bytes held here too, since a newer one starts them over.
    pub(super) round: u32,
    /// The round in which an abort from its source was already tried again.
    pub(super) retried: Option<u32>,
    /// The app whose step created it (a directory it is in waits for that app).
    pub(super) app: String,
    /// The fetch filling it now, if any: its number, and the flag that calls it off.
    pub(super) fetch: Option<(u64, Arc<AtomicBool>)>,
}

/// The apps of another node, as it last told them.
#[derive(Default)]
struct NodeApps {
    live: BTreeSet<String>,
    ended: BTreeSet<String>,
}

/// This namespace's place among the nodes.
pub(super) struct Remote {
    me: usize,
    /// Every node's host name, by rank (`manual` home policies name them).
    hosts: Vec<String>,
    outbox: Box<dyn Outbox>,
    /// The CAPIO directory: the root replicas are created under (they never persist).
    root: PathBuf,
    apps: HashMap<usize, NodeApps>,
    /// What this node last announced of its apps.
    announced: (Vec<String>, Vec<String>),
    /// Fetches in flight, by number: the replica slot each fills.
    fetches: HashMap<u64, u32>,
    next_fetch: u64,
    /// Slots that must not be reused yet: a fetch fills them, or one lends them to another node.
    pinned: HashMap<u32, u32>,
    /// Files by their cluster-wide number: those written here and the replicas, until their
    /// slot is released.
    by_id: HashMap<FileId, u32>,
    next_serial: u64,
}

impl Remote {
    /// The node that keeps `path` when this node creates it.
    fn home_of(&self, rules: &capio_cl::Rules, path: &Path) -> usize {
        match rules.home_for(path) {
            capio_cl::Home::Create => self.me,
            capio_cl::Home::Hashing => hashed_home(path, self.hosts.len()),
            capio_cl::Home::Manual(host) => self
                .hosts
                .iter()
                .position(|h| *h == host)
                .unwrap_or(self.me),
        }
    }

    pub(super) fn is_pinned(&self, slot: u32) -> bool {
        self.pinned.contains_key(&slot)
    }

    fn pin(&mut self, slot: u32) {
        *self.pinned.entry(slot).or_default() += 1;
    }

    /// True when the last pin went.
    fn unpin(&mut self, slot: u32) -> bool {
        match self.pinned.get_mut(&slot) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => {
                self.pinned.remove(&slot);
                true
            }
            None => false,
        }
    }
}

impl Namespace {
    /// Take part in a workflow spread over many nodes as node `me` of `hosts` (host names by
    /// rank), telling the others through `outbox`. `root` is the CAPIO directory.
    pub fn join_cluster(
        &mut self,
        me: usize,
        hosts: Vec<String>,
        root: PathBuf,
        outbox: Box<dyn Outbox>,
    ) {
        // Other nodes' files are not in this node's index: clients ask the server.
        self.published.turn_off();
        self.files.never_direct();
        self.remote = Some(Remote {
            me,
            hosts,
            outbox,
            root,
            apps: HashMap::new(),
            announced: (Vec::new(), Vec::new()),
            fetches: HashMap::new(),
            next_fetch: 1,
            pinned: HashMap::new(),
            by_id: HashMap::new(),
            next_serial: 1,
        });
    }

    /// The node that writes the visible file at `path`, if this node knows one.
    pub fn writer_of(&self, path: &Path) -> Option<usize> {
        let remote = self.remote.as_ref()?;
        let node = self.files.visible(path)?;
        Some(node.remote.as_ref().map_or(remote.me, |r| r.writer))
    }

    /// A file this node just created at `path` in `slot`, by `cid`: numbered across the nodes,
    /// placed on its home (`home_node_policies`) and announced to every other node.
    pub(super) fn announce_new_file(
        &mut self,
        cid: super::ClientId,
        path: &Path,
        slot: u32,
        mode: u32,
    ) {
        let Some(remote) = self.remote.as_mut() else {
            return;
        };
        let home = remote.home_of(&self.rules, path);
        let serial = remote.next_serial;
        remote.next_serial += 1;
        let id = FileId {
            writer: remote.me,
            serial,
        };
        remote.by_id.insert(id, slot);
        let me = remote.me;
        if let Some(node) = self.files.node_mut(slot) {
            node.cluster_id = Some(id);
            node.kept_on = Some(home).filter(|&h| h != me);
        }
        let app = self.clients.app_of(cid).to_owned();
        self.tell(|| {
            Notice::Created(Created {
                path: path.to_path_buf(),
                mode,
                home,
                serial,
                app,
            })
        });
    }

    /// Tell the other nodes the state of the file in `slot`, written here (once it has a path).
    pub(super) fn tell_state(&self, slot: u32) {
        if let (Some(path), Some(node)) = (self.files.path_of(slot), self.files.node(slot)) {
            self.tell(|| Notice::State {
                path: path.clone(),
                state: node.state(),
                len: node.len(),
                round: node.round,
            });
        }
    }

    pub(super) fn tell(&self, notice: impl FnOnce() -> Notice) {
        if let Some(remote) = &self.remote {
            remote.outbox.send(notice());
        }
    }

    /// Tell the others which apps live and which ended here, when that changed.
    pub(super) fn announce_apps(&mut self) {
        let Some(remote) = &mut self.remote else {
            return;
        };
        let now = self.clients.apps();
        if now != remote.announced {
            remote.announced = now.clone();
            remote.outbox.send(Notice::Apps {
                live: now.0,
                ended: now.1,
            });
        }
    }

    /// Some client on another node may still create files.
    pub(super) fn remote_may_create(&self) -> bool {
        self.remote
            .as_ref()
            .is_some_and(|r| r.apps.values().any(|a| !a.live.is_empty()))
    }

    /// Whether a directory's producers on other nodes may still add entries to it: an app that
    /// created entries in it from another node still has steps live there, or apps declared to
    /// produce it have not all terminated on every node.
    pub(super) fn produced_elsewhere(&self, dir: &Path) -> bool {
        let Some(remote) = &self.remote else {
            return false;
        };
        let writers_live = self.dirs.get(dir).is_some_and(|d| {
            d.remote_writers
                .iter()
                .any(|(n, app)| remote.apps.get(n).is_some_and(|a| a.live.contains(app)))
        });
        let declared = self.rules.declared_producers(dir);
        writers_live || !declared.iter().all(|app| self.app_terminated(app))
    }

    /// `app` attached somewhere and no client of it lives on any node.
    pub(super) fn app_terminated(&self, app: &str) -> bool {
        let (seen_here, live_here) = self.clients.app_state(app);
        let nodes = self.remote.iter().flat_map(|r| r.apps.values());
        let mut seen = seen_here;
        for node in nodes {
            if node.live.contains(app) {
                return false;
            }
            seen |= node.ended.contains(app);
        }
        seen && !live_here
    }

    /// Node `from` says which of its apps live and which ended: waiting openers look again, and
    /// directories waiting for declared producers may commit.
    pub fn remote_apps(&mut self, from: usize, live: Vec<String>, ended: Vec<String>) -> Caused {
        let Some(remote) = &mut self.remote else {
            return Caused::default();
        };
        remote.apps.insert(
            from,
            NodeApps {
                live: live.into_iter().collect(),
                ended: ended.into_iter().collect(),
            },
        );
        let mut caused = Caused::default();
        self.commit_orphaned_dirs(&mut caused);
        self.bump();
        self.settle(&mut caused);
        caused
    }

    /// File `id` (released from its slot) names nothing any more.
    pub(super) fn forget_number(&mut self, id: Option<FileId>) {
        if let (Some(remote), Some(id)) = (self.remote.as_mut(), id) {
            remote.by_id.remove(&id);
        }
    }

    /// Node `from` created file number `serial` at `path`, to be kept on node `home`: a replica of
    /// it appears here, listed in its parent, empty until read — or, on its home, fetched at once.
    /// It replaces an older replica, or a file of this node whose producer crashed; a live file of
    /// the same path made here meanwhile keeps it (logged).
    pub fn remote_created(&mut self, from: usize, created: Created) -> Caused {
        let Created {
            ref path,
            mode,
            home,
            serial,
            app,
        } = created;
        let mut caused = Caused::default();
        let Some((root, me)) = self.remote.as_ref().map(|r| (r.root.clone(), r.me)) else {
            return caused;
        };
        if let Some(node) = self.files.get(path) {
            if node.remote.is_none() && node.state() != SlotState::Aborted {
                warning!(
                    "node {from} created {}, which this node created too: each node keeps its \
                     own (create a path on one node only)",
                    path.display()
                );
                return caused;
            }
            self.forget_file(path);
        }
        let replica = Replica {
            writer: from,
            home,
            keeper: home == me,
            state: SlotState::Open,
            len: 0,
            round: 0,
            retried: None,
            app: app.clone(),
            fetch: None,
        };
        match self.new_replica(&root, path, replica, mode) {
            Ok(slot) => {
                let id = FileId {
                    writer: from,
                    serial,
                };
                if let Some(remote) = self.remote.as_mut() {
                    remote.by_id.insert(id, slot);
                }
                if let Some(node) = self.files.node_mut(slot) {
                    node.cluster_id = Some(id);
                }
                if home == me {
                    self.fetch_if_needed(slot);
                }
            }
            Err(e) => {
                warning!(
                    "cannot make a replica of {} (created on node {from}): {e}",
                    path.display()
                );
                return caused;
            }
        }
        if let Some(parent) = path.parent() {
            if !self.dirs.contains(parent) {
                self.adopt(&root, parent, &mut caused);
            }
            if self.dirs.add_name(path, (from, app)) {
                caused.unsettled = true;
            }
        }
        self.bump();
        self.settle(&mut caused);
        caused
    }

    fn new_replica(
        &mut self,
        root: &Path,
        path: &Path,
        replica: Replica,
        mode: u32,
    ) -> Result<u32, FsError> {
        let rule = self.replica_rule(path);
        let new = super::new_data(
            root.to_path_buf(),
            path,
            rule,
            None,
            Some(&mut self.files.budget.pool),
        )?;
        if let Err(e) = new
            .data
            .set_permissions(fs::Permissions::from_mode(mode & 0o7777))
        {
            backing::discard(&new.data, new.backing);
            return Err(e.into());
        }
        let slot = self.files.create(path, new)?;
        if let Some(node) = self.files.node_mut(slot) {
            node.remote = Some(replica);
        }
        Ok(slot)
    }

    /// A replica's rule: its path's, held in memory, and never persisted (its writer does that).
    pub(super) fn replica_rule(&self, path: &Path) -> capio_cl::Rule {
        let mut rule = self.rules.rule_for(path);
        rule.permanent = false;
        rule.storage = capio_cl::Storage::Memory;
        rule
    }

    /// The replica of `path` that node `from` writes.
    fn replica_slot(&self, from: usize, path: &Path) -> Option<u32> {
        self.files
            .get(path)
            .filter(|n| n.remote.as_ref().is_some_and(|r| r.writer == from))
            .map(|n| n.slot())
    }

    /// Node `from` says the file at `path` is now in `state`, `len` bytes long, in round
    /// `round`. An abort reaches local readers at once; a commit reaches them when the replica
    /// holds every byte of that round (its fetch seals it), or at once when it holds them
    /// already; a new round (written anew after a commit or an abort) starts over here, and is
    /// fetched again if someone here reads it. News of a round older than the bytes held (a
    /// home told them first) changes nothing.
    pub fn remote_state(
        &mut self,
        from: usize,
        path: &Path,
        (state, len, round): (SlotState, u64, u32),
    ) -> Caused {
        let mut caused = Caused::default();
        let Some(slot) = self.replica_slot(from, path) else {
            return caused;
        };
        let Some(replica) = self.files.node_mut(slot).and_then(|n| n.remote.as_mut()) else {
            return caused;
        };
        if round < replica.round {
            return caused;
        }
        let newer = round > replica.round;
        (replica.state, replica.len, replica.round) = (state, len, round);
        if newer {
            self.start_over(slot);
        }
        let held = self.files.node(slot).map_or(0, |n| n.len());
        match state {
            SlotState::Aborted => {
                self.cancel_fetch(slot);
                if let Some(node) = self.files.node_mut(slot) {
                    node.abort();
                }
            }
            // Aborted here though its writer completed it (a fetch was refused): again.
            SlotState::Committed if self.state_here(slot) == Some(SlotState::Aborted) => {
                self.start_over(slot);
            }
            SlotState::Committed if !self.fetching(slot) && held == len => {
                let _ = self.files.commit(slot);
            }
            SlotState::Committed => self.fetch_if_read(slot),
            _ => {}
        }
        self.bump();
        caused.unsettled = true;
        self.settle(&mut caused);
        caused
    }

    fn state_here(&self, slot: u32) -> Option<SlotState> {
        self.files.node(slot).map(|n| n.state())
    }

    fn fetching(&self, slot: u32) -> bool {
        self.files
            .node(slot)
            .and_then(|n| n.remote.as_ref())
            .is_some_and(|r| r.fetch.is_some())
    }

    /// The replica in `slot` is being written anew at its writer: drop what it holds (and a fetch
    /// of the old content), reopen it, and fetch again if it is read here.
    fn start_over(&mut self, slot: u32) {
        self.cancel_fetch(slot);
        self.empty(slot);
        if let Some(node) = self.files.node_mut(slot) {
            node.start_over();
        }
        self.fetch_if_read(slot);
    }

    /// Drop what the replica in `slot` holds (it stays open, with no fetch).
    fn empty(&mut self, slot: u32) {
        if let Some((node, budget)) = self.files.node_and_budget(slot)
            && let Err(e) = node.truncate(budget)
        {
            warning!("cannot empty a replica to fetch it again: {e}");
        }
    }

    /// Fetch the replica in `slot` if a reader here has it open (or this node keeps it).
    fn fetch_if_read(&mut self, slot: u32) {
        let keeper = self
            .files
            .node(slot)
            .and_then(|n| n.remote.as_ref())
            .is_some_and(|r| r.keeper);
        if keeper || self.clients.is_open(slot) {
            self.fetch_if_needed(slot);
        }
    }

    /// Node `from` removed `path`.
    pub fn remote_removed(&mut self, from: usize, path: &Path) {
        if self.replica_slot(from, path).is_some() {
            self.forget_file(path);
            self.bump();
        }
    }

    /// Node `from` renamed `src` to `dst`.
    pub fn remote_renamed(&mut self, from: usize, src: &Path, dst: &Path) -> Caused {
        let mut caused = Caused::default();
        if self.replica_slot(from, src).is_none() {
            return caused;
        }
        if self.files.get(dst).is_some_and(|n| n.remote.is_some()) {
            self.forget_file(dst);
        }
        if self.files.contains(dst) {
            warning!(
                "node {from} renamed {} over {}, which this node created too: each node keeps its own",
                src.display(),
                dst.display()
            );
            self.forget_file(src);
        } else {
            self.dirs.remove_entry(src);
            let app = self
                .files
                .rekey(src, dst)
                .and_then(|n| n.remote.as_ref())
                .map(|r| r.app.clone());
            self.files.set_rule(dst, self.replica_rule(dst));
            if self.dirs.add_name(dst, (from, app.unwrap_or_default())) {
                caused.unsettled = true;
            }
        }
        self.bump();
        self.settle(&mut caused);
        caused
    }

    /// A client on node `from` unlinked `path`, written here: as if a client here did.
    pub fn remote_unlink(&mut self, from: usize, path: &Path) {
        let Some(root) = self.remote.as_ref().map(|r| r.root.clone()) else {
            return;
        };
        if self.files.get(path).is_none_or(|n| n.remote.is_some()) {
            return;
        }
        if let Err(e) = self.unlink_at(&root, path) {
            info!("node {from} unlinked {}: {e}", path.display());
        }
    }

    /// Start filling a replica from its home (its writer, on the home itself), unless it is full
    /// or filling already.
    pub(super) fn fetch_if_needed(&mut self, slot: u32) {
        let Some(remote) = self.remote.as_mut() else {
            return;
        };
        let Some(node) = self
            .files
            .node(slot)
            .filter(|n| n.state() == SlotState::Open && n.remote.is_some())
        else {
            return;
        };
        let Some(file_id) = node.cluster_id else {
            return;
        };
        // For logs only: an unlinked replica an fd still holds is fetched all the same.
        let path = self.files.path_of(slot).cloned().unwrap_or_default();
        let Some(node) = self.files.node_mut(slot) else {
            return;
        };
        let from = node.len();
        let Ok(file) = node.data.try_clone() else {
            return;
        };
        let Some(replica) = node.remote.as_mut().filter(|r| r.fetch.is_none()) else {
            return;
        };
        let id = remote.next_fetch;
        remote.next_fetch += 1;
        let live = Arc::new(AtomicBool::new(true));
        replica.fetch = Some((id, live.clone()));
        let source = if replica.keeper {
            replica.writer
        } else {
            replica.home
        };
        remote.fetches.insert(id, slot);
        remote.pin(slot);
        let round = replica.round;
        remote.outbox.send(Notice::Fetch {
            from: source,
            file: file_id,
            round,
            path,
            id,
            sink: Sink {
                file,
                slot,
                from,
                live,
            },
        });
    }

    /// Call off the fetch filling `slot`, if any: its late bytes and seal are dropped.
    fn cancel_fetch(&mut self, slot: u32) {
        let Some(remote) = self.remote.as_mut() else {
            return;
        };
        let Some((id, live)) = self
            .files
            .node_mut(slot)
            .and_then(|n| n.remote.as_mut())
            .and_then(|r| r.fetch.take())
        else {
            return;
        };
        live.store(false, SeqCst);
        remote.fetches.remove(&id);
        if remote.unpin(slot) {
            self.release_unlinked(slot);
        }
    }

    /// Fetch `id` ended: the file is `state` at its source, in round `round` (committed: every
    /// byte of that round, `len` of them, is here now; open: it was written anew meanwhile, start
    /// over; aborted: it never will be). A source may know a newer round than this node does (a
    /// home heard of it first): its word counts.
    pub fn fetch_sealed(&mut self, id: u64, (state, len, round): (SlotState, u64, u32)) -> Caused {
        let mut caused = Caused::default();
        let Some(remote) = self.remote.as_mut() else {
            return caused;
        };
        let Some(slot) = remote.fetches.remove(&id) else {
            return caused; // called off
        };
        let last_pin = remote.unpin(slot);
        let held = self.files.node(slot).map_or(0, |n| n.len());
        if let Some(replica) = self.files.node_mut(slot).and_then(|n| n.remote.as_mut()) {
            replica.fetch = None;
            if round > replica.round || state == SlotState::Committed {
                (replica.state, replica.len, replica.round) =
                    (state, len, round.max(replica.round));
            }
        }
        // An abort from the source of a file its writer said it committed (a refused fetch, or
        // a home's copy that failed) is tried once more in that round; then it stands.
        let retry = self
            .files
            .node_mut(slot)
            .and_then(|n| n.remote.as_mut())
            .filter(|r| r.state == SlotState::Committed && r.retried != Some(r.round))
            .map(|r| r.retried = Some(r.round))
            .is_some();
        match state {
            SlotState::Committed if held >= len => {
                let _ = self.files.commit(slot);
            }
            SlotState::Open | SlotState::Committed => self.start_over(slot),
            _ if retry => self.start_over(slot),
            _ => {
                if let Some(node) = self.files.node_mut(slot) {
                    node.abort();
                }
            }
        }
        if last_pin {
            self.release_unlinked(slot);
        }
        self.bump();
        caused.unsettled = true;
        self.settle(&mut caused);
        caused
    }

    /// Lend file `file` to another node's fetch of round `round` from `from` on: its slot
    /// (pinned until `give_back`), a handle on its data and its round here. Files written here
    /// are lent, and replicas this node keeps (their bytes flow on as they arrive) — also after
    /// an unlink, while an fd still holds them. A kept replica of an older round than asked for is
    /// not lent yet (`Lent::NotYet`: this node has not heard of that round); a newer round than
    /// the asker's, of which it holds bytes already, makes it start over (`Lent::Newer`).
    pub fn lend(&mut self, file: FileId, round: u32, from: u64) -> Lent {
        let Some(remote) = self.remote.as_mut() else {
            return Lent::Gone;
        };
        let Some(&slot) = remote.by_id.get(&file) else {
            return Lent::Gone;
        };
        let Some(node) = self
            .files
            .node(slot)
            .filter(|n| n.remote.as_ref().is_none_or(|r| r.keeper))
        else {
            return Lent::Gone;
        };
        let here = served_round(node);
        // A kept copy aborted here (its own fetch refused) though its writer did not abort it
        // will be fetched again: the asker waits for that rather than getting an abort.
        let recovering = node
            .remote
            .as_ref()
            .is_some_and(|r| r.state != SlotState::Aborted)
            && node.state() == SlotState::Aborted;
        if here < round || recovering {
            return Lent::NotYet;
        }
        if here > round && from > 0 {
            return Lent::Newer(here);
        }
        let Ok(data) = node.data.try_clone() else {
            return Lent::Gone;
        };
        let mark = Mark(node.round);
        remote.pin(slot);
        Lent::Ready {
            slot,
            data,
            round: here,
            mark,
        }
    }

    /// The round of the file in `slot` as this node serves it (written here, or kept here), and
    /// its mark.
    pub fn round_of(&self, slot: u32) -> (u32, Mark) {
        self.files
            .node(slot)
            .map_or((0, Mark(0)), |n| (served_round(n), Mark(n.round)))
    }

    /// A fetch served from `slot` ended.
    pub fn give_back(&mut self, slot: u32) {
        if self.remote.as_mut().is_some_and(|r| r.unpin(slot)) {
            self.release_unlinked(slot);
        }
    }
}

/// The round a node serves of a file: its own round where it is written, its writer's (as last
/// told) for a copy it keeps.
fn served_round(node: &super::files::FileNode) -> u32 {
    node.remote.as_ref().map_or(node.round, |r| r.round)
}

/// The node a `hashing` home policy keeps `path` on (and the one that arbitrates its exclusive
/// creates): FNV-1a of its bytes, the same on every node.
pub fn hashed_home(path: &Path, nodes: usize) -> usize {
    use std::os::unix::ffi::OsStrExt;
    let hash = path
        .as_os_str()
        .as_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    (hash % nodes.max(1) as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::hashed_home;
    use std::path::Path;

    #[test]
    fn a_hashed_home_is_the_same_everywhere_and_spreads_paths() {
        let homes: Vec<usize> = (0..64)
            .map(|i| hashed_home(Path::new(&format!("/capio/out/part-{i}.dat")), 4))
            .collect();
        assert!(homes.iter().all(|&h| h < 4));
        for node in 0..4 {
            assert!(homes.contains(&node), "every node keeps some of 64 paths");
        }
        // Fixed by the algorithm, not by this process: every node computes the same.
        assert_eq!(
            hashed_home(Path::new("/capio/a"), 3),
            hashed_home(Path::new("/capio/a"), 3)
        );
        assert_eq!(hashed_home(Path::new("/x"), 1), 0);
    }
}
