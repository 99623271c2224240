//! The file table: every CAPIO file by path and by slot, the files unlinked while an fd still
//! holds them, and the slots of the shared state table. A file node owns its slot: every state
//! change is one of its transition methods, which change the node and the shared slot together,
//! so the slot clients read can never disagree with the node.

use super::Lost;
use super::memory::Budget;
use super::published::Published;
use crate::backing::{self, Backing};
use crate::disk;
use crate::error::FsError;
use crate::log::warning;
use crate::pool::Memory;
use capio_cl::{CommitRule, Rule};
use capio_proto::table::NAMESPACE_SLOT;
use capio_proto::{Slot, SlotState, StateTable, sys};
use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;

pub(super) struct FileNode {
    slot: u32,
    table: Arc<StateTable>,
    /// The slot's state as the server set it (the slot is shared memory anyone could scribble
    /// on); written only by the transitions below, together with the slot.
    state: SlotState,
    /// The namespace-wide number of its last commit, so a persist of an older commit never lands
    /// after a newer one, even when the slot and path are reused by another file meanwhile.
    generation: u64,
    /// The memfd or hidden file holding the bytes; clients receive duplicates (sharing its offset).
    pub(super) data: File,
    pub(super) backing: Backing,
    /// Its data is a memory object of its own, recycled when the file goes (see `pool`).
    recyclable: bool,
    /// Canonical root of the creator: persistence never writes outside it.
    pub(super) root: PathBuf,
    /// The CAPIO-CL rule of its current path (a rename looks it up again).
    rule: Rule,
    /// Writable closes by producers since it was (re)opened for writing: what `on_close:N` counts.
    pub(super) closes_by_producers: u64,
    /// Apps that opened it, for the shutdown report.
    pub(super) apps: BTreeSet<String>,
    pub(super) persisted: bool,
    /// Its disk copy as persisted: a persisted file whose real path no longer shows this was
    /// removed or replaced by another program, and is not served from memory any more.
    pub(super) disk_id: Option<disk::Identity>,
    /// Bytes of the memory budget this file holds (see `memory`).
    pub(super) charged: u64,
    /// Bytes below this offset were released (see `release`).
    pub(super) released: u64,
    /// A `Reserve` was refused: logged once per file.
    pub(super) refused: bool,
    /// Another node writes it: this is a replica of it (see `remote`).
    pub(super) remote: Option<super::remote::Replica>,
    /// Written here, kept for the other nodes' readers by that node (`home_node_policies`).
    pub(super) kept_on: Option<usize>,
    /// Its number across the nodes (`remote::FileId`), in a workflow of many nodes.
    pub(super) cluster_id: Option<super::remote::FileId>,
    /// How many times it was written anew (reopened after a commit, restarted after an abort,
    /// truncated): other nodes tell a copy of an older round from the current one by it.
    pub(super) round: u32,
    /// Clients may be given its memory object directly (no memory limit: the server must see
    /// every holder of memory it budgets).
    direct_allowed: bool,
    /// Clients were told its memory object at some point: some may hold it without the server
    /// knowing, so its bytes are never released early and a truncation really cuts the object.
    pub(super) direct_granted: std::cell::Cell<bool>,
    /// Its writers write its (fresh) memory object through descriptions of their own, as a plain
    /// file is written, and publish nothing: its length is the object's size, which the server
    /// reads when it needs it and publishes at its commit (and after it, at each writer's close).
    direct_write: bool,
}

impl FileNode {
    /// A new file being produced in `slot`, holding `len` bytes; recycled memory may hold a
    /// previous file's bytes below `stale`.
    fn create(
        table: Arc<StateTable>,
        slot: u32,
        new: NewFile,
        direct_allowed: bool,
    ) -> (FileNode, u64) {
        let NewFile {
            data,
            backing,
            memory,
            root,
            rule,
            len,
            direct_write,
        } = new;
        let (recyclable, stale, held) = match memory {
            Some(m) => (true, m.stale, m.held),
            None => (false, 0, 0),
        };
        let mut node = FileNode {
            slot,
            table,
            state: SlotState::Free,
            generation: 0,
            data,
            backing,
            recyclable,
            root,
            rule,
            closes_by_producers: 0,
            apps: BTreeSet::new(),
            persisted: false,
            disk_id: None,
            charged: 0,
            released: 0,
            refused: false,
            remote: None,
            kept_on: None,
            cluster_id: None,
            round: 0,
            direct_allowed,
            direct_granted: std::cell::Cell::new(false),
            direct_write,
        };
        node.shared().start_file(len, stale);
        node.set(SlotState::Open);
        (node, held.max(len))
    }

    pub(super) fn slot(&self) -> u32 {
        self.slot
    }

    /// Its slot in the shared table.
    pub(super) fn shared(&self) -> &Slot {
        self.table
            .slot(self.slot)
            .expect("slots are only handed out inside the table")
    }

    pub(super) fn state(&self) -> SlotState {
        self.state
    }

    pub(super) fn is_committed(&self) -> bool {
        self.state == SlotState::Committed
    }

    /// Committed where it is written: here, or at its home for a replica.
    pub(super) fn committed_at_home(&self) -> bool {
        match &self.remote {
            Some(replica) => replica.state == SlotState::Committed,
            None => self.is_committed(),
        }
    }

    pub(super) fn generation(&self) -> u64 {
        self.generation
    }

    pub(super) fn rule(&self) -> &Rule {
        &self.rule
    }

    /// Bytes published by its producers; of a file written directly and not committed yet, its
    /// object's size (once committed, what its commit and its writers' closes published, as
    /// everyone sees it).
    pub(super) fn len(&self) -> u64 {
        let published = self.shared().len.load(SeqCst);
        if !self.direct_write || self.state != SlotState::Open {
            return published;
        }
        self.data.metadata().map_or(published, |m| m.len())
    }

    /// Whether its writers write its memory object directly (see `direct_write`).
    pub(super) fn direct_write(&self) -> bool {
        self.direct_write
    }

    /// Of a file written directly: publish what its writers wrote so far.
    pub(super) fn publish_direct_writes(&self) {
        if self.direct_write
            && let Ok(meta) = self.data.metadata()
        {
            self.shared().publish_exact(meta.len());
        }
    }

    fn set(&mut self, state: SlotState) {
        self.state = state;
        self.shared().set_state(state);
    }

    /// Open → Committed, as commit number `generation`. False if it was not open.
    fn commit(&mut self, generation: u64) -> bool {
        if self.state != SlotState::Open {
            return false;
        }
        // Readers woken by the commit find its length published.
        self.publish_direct_writes();
        self.set(SlotState::Committed);
        self.generation = generation;
        self.set_persisted(false, None);
        true
    }

    /// The identity of its persisted copy, as clients check it.
    fn persisted_copy(&self) -> Option<capio_proto::index::DiskId> {
        self.disk_id
            .filter(|_| self.persisted)
            .map(|d| d.published())
    }

    /// Whether its current commit is on disk (as `disk_id` there).
    pub(super) fn set_persisted(&mut self, persisted: bool, disk_id: Option<disk::Identity>) {
        self.persisted = persisted;
        if persisted {
            self.disk_id = disk_id;
        }
        self.publish_direct();
    }

    /// Tell clients whether they may reach its memory object themselves (open a committed file,
    /// `stat` it) and by which of the server's fds: only a memory file of its own whose bytes are
    /// never released early (readers it does not see would read freed memory). Of a persisted
    /// one the index also tells the disk copy (`FileTable::publish_disk`), which clients check
    /// first as the server does.
    pub(super) fn publish_direct(&self) {
        // A file written directly is as long as its object, which its slot tells only once
        // committed: until then every `stat` of it is the server's.
        let direct = self.direct_allowed
            && !(self.direct_write && self.state != SlotState::Committed)
            && self.released == 0
            && self.recyclable
            && self.backing == Backing::Anonymous
            && !super::release::releasable(self, false);
        // Read before the object: a client's change made meanwhile is never covered up.
        let seen = self.table.attrs(self.slot).map_or(0, |a| a.changes());
        let inode = direct
            .then(|| self.data.metadata().ok())
            .flatten()
            .map(|meta| capio_proto::Inode::from(&meta));
        let committed = self.state == SlotState::Committed;
        // Clients hold the object only once they open it, which they do of a committed file.
        if inode.is_some() && committed {
            self.direct_granted.set(true);
        }
        // Of a committed file, the attributes `stat` reports too: only the server changes them
        // from then on (reads leave the access time alone), and it publishes again when it does.
        let object = inode.as_ref().map(|i| (self.data.as_raw_fd(), i));
        self.table
            .publish_direct(self.slot, object, committed, seen);
    }

    /// Clients may no longer reach its memory object.
    fn withdraw_direct(&self) {
        self.table.publish_direct(self.slot, None, false, 0);
    }

    /// Open → Aborted: its producers are gone before the commit, and readers get an error.
    /// False if it was not open.
    pub(super) fn abort(&mut self) -> bool {
        if self.state != SlotState::Open {
            return false;
        }
        self.set(SlotState::Aborted);
        true
    }

    /// Committed → Open: a new round of writing, whose `on_close:N` counts afresh. False if it
    /// was not committed.
    pub(super) fn reopen(&mut self) -> bool {
        if self.state != SlotState::Committed {
            return false;
        }
        self.begin_round();
        true
    }

    /// Aborted → Open: a new producer writes the file again from scratch. False (and nothing
    /// changed) if it was not aborted.
    pub(super) fn restart(&mut self, budget: &mut Budget) -> io::Result<bool> {
        if self.state != SlotState::Aborted {
            return Ok(false);
        }
        self.truncate(budget)?;
        self.begin_round();
        Ok(true)
    }

    /// Committed or aborted → Open: a replica whose file is being written anew at its writer.
    pub(super) fn start_over(&mut self) {
        self.begin_round();
    }

    fn begin_round(&mut self) {
        self.round = self.round.saturating_add(1);
        self.closes_by_producers = 0;
        self.set_persisted(false, None);
        self.set(SlotState::Open);
        self.publish_direct();
    }

    /// Cut its data to nothing. Under the append lock: an append in flight elsewhere must not
    /// land past the new end. Waiting for it with the namespace held is safe only because no
    /// client holds that lock across a round trip (`tests/append_reserve.rs`). Memory keeps its
    /// pages for the bytes written next: they are stale bytes until written again.
    pub(super) fn truncate(&mut self, budget: &mut Budget) -> io::Result<()> {
        // Its own handle on the table: the slot stays borrowed while the budget changes the node.
        let table = Arc::clone(&self.table);
        let slot = table.slot(self.slot).expect("slot inside the table");
        let _append_lock = slot.lock_appends();
        // A reader that opened the object itself reads up to the object's size, not the slot's:
        // for it the cut must be real, as on a plain file (the pages go).
        let held = if self.recyclable && !self.direct_granted.get() && !self.direct_write {
            let meta = self.data.metadata()?;
            slot.start_file(0, meta.len());
            sys::allocated_bytes(&meta)
        } else {
            self.data.set_len(0)?;
            slot.start_file(0, 0);
            0
        };
        budget.set_charge(self, held);
        self.released = 0;
        // What other nodes hold of it is of another round now.
        self.round = self.round.saturating_add(1);
        Ok(())
    }

    /// Nobody can reach its hidden data file by name any more: it goes as a memfd would.
    fn drop_hidden(&mut self, path: &dyn std::fmt::Display) {
        if self.backing == Backing::Hidden {
            if let Err(e) = backing::remove_hidden(&self.data) {
                warning!("cannot remove the data file of {path}: {e}");
            }
            self.backing = Backing::Anonymous;
        }
    }

    /// Whether its bytes are in a memory object of its own (which the pool may recycle).
    pub(super) fn has_memory(&self) -> bool {
        self.recyclable
    }

    /// Serve it from `data` (on disk) from now on; returns the memory object it leaves, if any.
    pub(super) fn replace_data(&mut self, data: File, backing: Backing) -> Option<File> {
        // Clients stop reaching the old object before the server lets it go.
        self.withdraw_direct();
        let old = std::mem::replace(&mut self.data, data);
        self.backing = backing;
        // A file on disk never holds another file's bytes.
        self.shared().stale.store(0, SeqCst);
        std::mem::take(&mut self.recyclable).then_some(old)
    }

    /// Done growing: memory past its end, which a recycled memory object may still hold, goes
    /// back, so its size is its length for anyone who maps or `fstat`s the object.
    /// Under the append lock, and never below what a producer still writing may have claimed.
    fn trim(&mut self) -> io::Result<()> {
        // Fresh memory holds nothing past its end; and a file written directly may still be
        // written by a writer the server cannot hold back (its size is its length).
        if !self.recyclable || self.direct_write {
            return Ok(());
        }
        let slot = self.shared();
        let _append_lock = slot.lock_appends();
        let keep = self.len().max(slot.clean_end());
        if self.data.metadata()?.len() > keep {
            self.data.set_len(keep)?;
        }
        slot.stale.fetch_min(keep, SeqCst);
        Ok(())
    }

    /// Gone for good: its charge goes back, its memory to the pool if nothing else holds it,
    /// and its slot is free for the next file.
    fn release(mut self, budget: &mut Budget) -> u32 {
        budget.set_charge(&mut self, 0);
        self.withdraw_direct();
        let s = self.shared();
        s.start_file(0, 0);
        s.set_state(SlotState::Free);
        let slot = self.slot;
        if self.recyclable {
            let room = budget.pool_room();
            budget.pool.recycle(self.data, room);
        }
        slot
    }

    /// Bytes it holds in memory: its charge, or — where the budget does not count it (no
    /// limit: writers never ask) — at least its published data not released.
    pub(super) fn memory_held(&self) -> u64 {
        if self.backing != Backing::Anonymous {
            return 0;
        }
        self.charged.max(self.len() - self.released.min(self.len()))
    }
}

/// A file about to be created: its data object and what it is created with.
pub(super) struct NewFile {
    pub(super) data: File,
    pub(super) backing: Backing,
    pub(super) memory: Option<Memory>,
    pub(super) root: PathBuf,
    pub(super) rule: Rule,
    pub(super) len: u64,
    /// Written by its writers directly (`FileNode::direct_write`); only ever of fresh memory.
    pub(super) direct_write: bool,
}

/// What a commit made of a file: its number, and whether its rule wants it on disk.
pub(super) struct Committed {
    pub(super) generation: u64,
    pub(super) permanent: bool,
}

pub(super) struct FileTable {
    table: Arc<StateTable>,
    files: HashMap<PathBuf, FileNode>,
    by_slot: HashMap<u32, PathBuf>,
    /// Files unlinked (or replaced by a rename) while some fd still had them open, by slot: they
    /// keep working for those fds, as unlinked files do, and free their slot at the last close.
    unlinked: HashMap<u32, FileNode>,
    next_slot: u32,
    /// Slots of removed files that no fd refers to any more.
    free_slots: Vec<u32>,
    /// Generation of the latest commit of any file.
    last_generation: u64,
    /// Slots of the files whose rule is `on_file`: the candidates when something commits.
    on_file: BTreeSet<u32>,
    pub(super) budget: Budget,
    /// Every file's path and slot, for clients to look up (see `published`).
    published: Published,
    /// Clients may be given files' memory objects (not in a workflow over many nodes, whose
    /// replicas the server must see every reader of).
    direct_allowed: bool,
}

impl FileTable {
    pub(super) fn new(table: Arc<StateTable>, published: Published) -> FileTable {
        FileTable {
            table,
            published,
            direct_allowed: true,
            files: HashMap::new(),
            by_slot: HashMap::new(),
            unlinked: HashMap::new(),
            next_slot: NAMESPACE_SLOT + 1,
            free_slots: Vec::new(),
            last_generation: 0,
            on_file: BTreeSet::new(),
            budget: Budget::default(),
        }
    }

    pub(super) fn get(&self, path: &Path) -> Option<&FileNode> {
        self.files.get(path)
    }

    pub(super) fn get_mut(&mut self, path: &Path) -> Option<&mut FileNode> {
        self.files.get_mut(path)
    }

    pub(super) fn contains(&self, path: &Path) -> bool {
        self.files.contains_key(path)
    }

    /// Aborted files are invisible to lookups; only `open` sees them (to report or restart them).
    pub(super) fn visible(&self, path: &Path) -> Option<&FileNode> {
        self.files
            .get(path)
            .filter(|f| f.state != SlotState::Aborted)
    }

    /// The node behind a slot: a file in the namespace, or an unlinked one an fd still holds.
    pub(super) fn node(&self, slot: u32) -> Option<&FileNode> {
        match self.by_slot.get(&slot) {
            Some(path) => self.files.get(path),
            None => self.unlinked.get(&slot),
        }
    }

    pub(super) fn node_mut(&mut self, slot: u32) -> Option<&mut FileNode> {
        match self.by_slot.get(&slot) {
            Some(path) => self.files.get_mut(path),
            None => self.unlinked.get_mut(&slot),
        }
    }

    /// The node behind a slot, and the budget it is charged to.
    pub(super) fn node_and_budget(&mut self, slot: u32) -> Option<(&mut FileNode, &mut Budget)> {
        let node = match self.by_slot.get(&slot) {
            Some(path) => self.files.get_mut(path),
            None => self.unlinked.get_mut(&slot),
        }?;
        Some((node, &mut self.budget))
    }

    pub(super) fn path_of(&self, slot: u32) -> Option<&PathBuf> {
        self.by_slot.get(&slot)
    }

    /// A file's path for logs.
    pub(super) fn name_of(&self, slot: u32) -> String {
        self.by_slot.get(&slot).map_or_else(
            || format!("unlinked file in slot {slot}"),
            |p| p.display().to_string(),
        )
    }

    /// Files in the namespace (not the unlinked ones).
    pub(super) fn iter(&self) -> impl Iterator<Item = (&PathBuf, &FileNode)> {
        self.files.iter()
    }

    /// Unlinked files some fd still holds, by slot.
    pub(super) fn unlinked(&self) -> impl Iterator<Item = (&u32, &FileNode)> {
        self.unlinked.iter()
    }

    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Paths of the files at or below `dir`.
    pub(super) fn paths_under(&self, dir: &Path) -> Vec<PathBuf> {
        self.files
            .keys()
            .filter(|p| p.starts_with(dir))
            .cloned()
            .collect()
    }

    /// Slots of the open files whose rule is `on_file`.
    pub(super) fn on_file(&self) -> impl Iterator<Item = u32> + '_ {
        self.on_file.iter().copied()
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

    /// A slot to serve a reader as its progress cell (see `release`).
    pub(super) fn alloc_cell(&mut self) -> Result<u32, FsError> {
        let cell = self.alloc_slot()?;
        let s = self.table.slot(cell).expect("slot inside the table");
        s.start_file(0, 0);
        s.set_state(SlotState::Free);
        Ok(cell)
    }

    /// A progress cell is no longer used.
    pub(super) fn free_cell(&mut self, cell: u32) {
        if let Some(s) = self.table.slot(cell) {
            s.start_file(0, 0);
            s.set_state(SlotState::Free);
            self.free_slots.push(cell);
        }
    }

    /// Add the file at `path`, open for its producer; its slot shows it at once. Without a free
    /// slot its data object is discarded.
    pub(super) fn create(&mut self, path: &Path, new: NewFile) -> Result<u32, FsError> {
        let slot = match self.alloc_slot() {
            Ok(slot) => slot,
            Err(e) => {
                backing::discard(&new.data, new.backing);
                return Err(e);
            }
        };
        let anonymous = new.backing == Backing::Anonymous;
        let direct_allowed = self.offers_objects();
        let (node, held) = FileNode::create(self.table.clone(), slot, new, direct_allowed);
        if matches!(node.rule.commit, CommitRule::OnFile(_)) {
            self.on_file.insert(slot);
        }
        node.publish_direct();
        self.files.insert(path.to_path_buf(), node);
        self.by_slot.insert(slot, path.to_path_buf());
        self.published.file(path, slot);
        if anonymous {
            // Charged the memory it holds from the start: its content, or what it was recycled with.
            self.charge(slot, held);
        }
        Ok(slot)
    }

    /// Commit the file in `slot`, numbering the commit. `None` if it was not open.
    pub(super) fn commit(&mut self, slot: u32) -> Option<Committed> {
        let generation = self.last_generation + 1;
        let node = self.node_mut(slot)?;
        if node.state() != SlotState::Open {
            return None;
        }
        // Trimmed first: the cut moves the object's size and times, which the commit publishes.
        if let Err(e) = node.trim() {
            warning!("cannot give back the unused memory of a committed file: {e}");
        }
        if !node.commit(generation) {
            return None;
        }
        let permanent = node.rule.permanent;
        self.last_generation = generation;
        // Done growing: the budget's headroom held for it goes back to the others.
        self.release_headroom(slot);
        Some(Committed {
            generation,
            permanent,
        })
    }

    /// Give the file at `path` the rule of its (new) path.
    pub(super) fn set_rule(&mut self, path: &Path, rule: Rule) {
        let Some(node) = self.files.get_mut(path) else {
            return;
        };
        if matches!(rule.commit, CommitRule::OnFile(_)) {
            self.on_file.insert(node.slot);
        } else {
            self.on_file.remove(&node.slot);
        }
        node.rule = rule;
        node.publish_direct();
    }

    /// Whether clients may be given files' memory objects (see `FileNode::direct_allowed`).
    fn offers_objects(&self) -> bool {
        self.direct_allowed && self.budget.limit.is_none()
    }

    /// Whether a new file under `rule` may be written by its writers directly (see
    /// `FileNode::direct_write`): its readers wait for its commit, and the server needs to see
    /// no write before then (no memory budget, no other node to stream to).
    pub(super) fn plain_write_allowed(&self, rule: &Rule) -> bool {
        self.offers_objects()
            && rule.storage == capio_cl::Storage::Memory
            && rule.fire == capio_cl::FireRule::Update
    }

    /// From now on no file's memory object is offered to clients (see `direct_allowed`).
    pub(super) fn never_direct(&mut self) {
        self.direct_allowed = false;
        for node in self.files.values_mut().chain(self.unlinked.values_mut()) {
            node.direct_allowed = false;
            node.publish_direct();
        }
    }

    /// Tell clients the disk copy of the persisted file at `path` (see `publish_direct`).
    pub(super) fn publish_disk(&self, path: &Path) {
        if let Some(node) = self.files.get(path) {
            self.published.disk(path, node.persisted_copy());
        }
    }

    /// Move the file at `src` to `dst` (nothing must be at `dst`); its slot stays.
    pub(super) fn rekey(&mut self, src: &Path, dst: &Path) -> Option<&mut FileNode> {
        let node = self.files.remove(src)?;
        self.published.file_gone(src, node.slot);
        self.published.file(dst, node.slot);
        self.published.disk(dst, node.persisted_copy());
        self.by_slot.insert(node.slot, dst.to_path_buf());
        Some(
            self.files
                .entry(dst.to_path_buf())
                .insert_entry(node)
                .into_mut(),
        )
    }

    /// Take the file at `path` (if any) out of the namespace, into the unlinked files: its memfd
    /// lives on for the fds already open on it. Returns its slot, which the caller releases once
    /// no fd can refer to it (`release`).
    pub(super) fn unlink(&mut self, path: &Path) -> Option<u32> {
        let mut node = self.files.remove(path)?;
        self.published.file_gone(path, node.slot);
        node.drop_hidden(&path.display());
        self.by_slot.remove(&node.slot);
        let slot = node.slot;
        self.unlinked.insert(slot, node);
        Some(slot)
    }

    /// Free an unlinked file's slot (no fd refers to it any more). False if `slot` is not an
    /// unlinked file's.
    pub(super) fn release(&mut self, slot: u32) -> bool {
        let Some(node) = self.unlinked.remove(&slot) else {
            return false;
        };
        self.on_file.remove(&slot);
        self.free_slots.push(node.release(&mut self.budget));
        true
    }

    /// The server stops: report every file that is not safely on disk, abort the ones still
    /// being produced so no reader waits on a server that is gone, and remove the hidden data
    /// files of `storage: fs` files that will not persist.
    pub(super) fn shut_down(&mut self) -> Vec<Lost> {
        let mut lost = Vec::new();
        for (path, node) in &mut self.files {
            // A replica is its writer's to persist; its readers here are released.
            if node.is_committed() && node.persisted || node.remote.is_some() {
                node.abort();
                continue;
            }
            lost.push(Lost {
                path: path.clone(),
                size: node.len(),
                apps: node.apps.iter().cloned().collect(),
                state: node.state,
            });
            node.abort();
            node.drop_hidden(&path.display());
        }
        // Unlinked files are nobody's output; only their readers need releasing.
        for node in self.unlinked.values_mut() {
            node.abort();
        }
        lost.sort_by(|a, b| a.path.cmp(&b.path));
        lost
    }
}
