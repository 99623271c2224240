//! Releasing what every consumer has read, while the file is still being written: a stream then
//! costs a window of memory, not the whole stream.
//!
//! Only a file whose rule declares its consumers (CAPIO-CL `input_stream`), that is not
//! `permanent` (nothing will read it back for persisting), held in memory and on this node alone
//! is released early. Every readable open of it gets a progress cell (a slot of the shared table)
//! where the reader's client notes the furthest byte it has read, without a round trip. Bytes
//! below an offset are released once
//! - every declared consumer app has read past it (through a handle open now or closed since),
//! - every handle open on the file, of any app, has read past it (it may still read what it has
//!   not), and
//! - nobody mapped the file (a `view()`, or a raw fd taken with `fileno()`): a mapping would see
//!   released bytes as zeros;
//! - without a memory limit, what was read last stays, up to [`KEEP_READ`] and what the memory
//!   pool may hold (`--pool-limit`): memory is not short then, a reader may go back, and the
//!   memory is recycled whole when the file goes; a longer stream costs a window, not itself.
//!
//! The release point only grows, in steps of [`GRAIN`]; it is published in the file's slot before
//! the memory is freed, so a reader that finds it moved under its copy fails instead of returning
//! zeros. A file written anew (truncated) starts over with nothing released.

use super::Namespace;
use super::clients::ClientId;
use super::files::FileNode;
use crate::backing::Backing;
use crate::log::warning;
use capio_proto::sys;
use std::collections::{BTreeSet, HashMap};
use std::os::fd::AsFd;

/// Memory is released in steps of this many bytes: fewer, larger frees.
pub const GRAIN: u64 = 1 << 20;
/// Without a memory limit, a stream keeps at most this much of what was read (and no more than
/// the pool may hold). Not more: memory a long stream releases is handed out again by the kernel
/// at once, while memory never touched yet costs much more to fault in (measured on this
/// project's VM: an 8 GiB stream kept whole ran at 0.5 GiB/s, released as read at 2.2 GiB/s).
pub const KEEP_READ: u64 = 1 << 30;

/// A reader's progress cell.
struct Reader {
    client: ClientId,
    app: String,
    file: u32,
}

/// What the readers of one file have done.
#[derive(Default)]
struct Readers {
    /// The furthest byte each app's closed handles had read.
    read_by: HashMap<String, u64>,
    /// A reader mapped it: nothing is released any more.
    mapped: bool,
    /// The cells of its open handles.
    cells: BTreeSet<u32>,
}

#[derive(Default)]
pub(super) struct Consumption {
    cells: HashMap<u32, Reader>,
    /// By file slot.
    files: HashMap<u32, Readers>,
    /// Bytes released so far, for the status report.
    pub(super) released_total: u64,
    /// The thread that releases periodically (`Namespace::set_memory_keeper`).
    keeper: Option<std::thread::Thread>,
    /// Cells of closed handles, by client: another thread of the client may still note a read
    /// in one (a read blocked while the file was closed), so a cell is reused only once its
    /// client is gone.
    retired: HashMap<ClientId, Vec<u32>>,
}

impl Consumption {
    /// Whether some file is being read, so more of it may be released any moment: the keeper
    /// then looks often.
    pub(super) fn is_active(&self) -> bool {
        self.files.values().any(|r| !r.cells.is_empty())
    }
}

/// Whether `node`'s consumed bytes may be released early.
pub(super) fn releasable(node: &FileNode, cluster: bool) -> bool {
    let rule = node.rule();
    !cluster
        && !rule.permanent
        && !rule.consumers.is_empty()
        && node.backing == Backing::Anonymous
        && node.remote.is_none()
        // Readers the server does not see may hold it (see `FileNode::publish_direct`).
        && !node.direct_granted.get()
}

impl Namespace {
    /// A readable open of `slot` by `cid`: its progress cell, or 0 when the file is never
    /// released early.
    pub(super) fn track_reader(&mut self, cid: ClientId, slot: u32) -> u32 {
        let cluster = self.remote.is_some();
        if !self
            .files
            .node(slot)
            .is_some_and(|n| releasable(n, cluster))
        {
            return 0;
        }
        let Some(app) = self.clients.get(cid).map(|c| c.app.clone()) else {
            return 0;
        };
        let Ok(cell) = self.files.alloc_cell() else {
            // Without a cell the reader is not seen: nothing of the file may go.
            self.consumption.files.entry(slot).or_default().mapped = true;
            return 0;
        };
        let readers = self.consumption.files.entry(slot).or_default();
        readers.cells.insert(cell);
        // The keeper may be asleep for seconds: it looks often from now on.
        if let Some(keeper) = &self.consumption.keeper {
            keeper.unpark();
        }
        self.consumption.cells.insert(
            cell,
            Reader {
                client: cid,
                app,
                file: slot,
            },
        );
        cell
    }

    /// A reader's handle closed (or its client left): what it read counts for its app.
    pub(super) fn untrack_reader(&mut self, cid: ClientId, cell: u32) {
        if self
            .consumption
            .cells
            .get(&cell)
            .is_none_or(|r| r.client != cid)
        {
            return;
        }
        let Some(reader) = self.consumption.cells.remove(&cell) else {
            return;
        };
        let (read, mapped) = self
            .table
            .slot(cell)
            .map_or((0, true), |c| c.reader_progress());
        self.consumption.retired.entry(cid).or_default().push(cell);
        if let Some(readers) = self.consumption.files.get_mut(&reader.file) {
            readers.cells.remove(&cell);
            readers.mapped |= mapped;
            let was = readers.read_by.entry(reader.app).or_default();
            *was = (*was).max(read);
        }
        // Its last reader gone, the keeper stops looking at the file: release what it can now.
        let released = self.release_in(reader.file);
        self.consumption.released_total += released;
    }

    /// Every progress cell of a client that left.
    pub(super) fn untrack_client(&mut self, cid: ClientId) {
        let cells: Vec<u32> = self
            .consumption
            .cells
            .iter()
            .filter(|(_, r)| r.client == cid)
            .map(|(c, _)| *c)
            .collect();
        for cell in cells {
            self.untrack_reader(cid, cell);
        }
        for cell in self.consumption.retired.remove(&cid).unwrap_or_default() {
            self.files.free_cell(cell);
        }
    }

    /// The file in `slot` is gone, or starts over: what its readers read no longer applies.
    pub(super) fn forget_readers(&mut self, slot: u32) {
        let Some(readers) = self.consumption.files.get_mut(&slot) else {
            return;
        };
        readers.read_by.clear();
        for cell in &readers.cells {
            if let Some(c) = self.table.slot(*cell) {
                c.len.store(0, std::sync::atomic::Ordering::SeqCst);
            }
        }
        if readers.cells.is_empty() {
            self.consumption.files.remove(&slot);
        }
    }

    /// Release, in every releasable file, what every consumer has read; returns the bytes
    /// released.
    pub fn release_consumed(&mut self) -> u64 {
        let slots: Vec<u32> = self.consumption.files.keys().copied().collect();
        let mut total = 0;
        for slot in slots {
            total += self.release_in(slot);
        }
        self.consumption.released_total += total;
        total
    }

    /// Whether a reader of `slot` has mapped it.
    fn mapped_now(&self, slot: u32) -> bool {
        self.consumption.files.get(&slot).is_some_and(|r| {
            r.mapped
                || r.cells
                    .iter()
                    .any(|c| self.table.slot(*c).is_some_and(|s| s.reader_progress().1))
        })
    }

    /// The offset below which every consumer of `slot` has read, per the module's rules.
    fn consumed_end(&self, slot: u32, node: &FileNode) -> u64 {
        let Some(readers) = self.consumption.files.get(&slot) else {
            return 0;
        };
        if self.mapped_now(slot) {
            return 0;
        }
        let read = |cell: &u32| self.table.slot(*cell).map_or(0, |c| c.reader_progress().0);
        let open_min = readers.cells.iter().map(read).min();
        let app_read = |app: &str| {
            let open = readers
                .cells
                .iter()
                .filter(|c| self.consumption.cells.get(c).is_some_and(|r| r.app == app))
                .map(read)
                .max();
            readers.read_by.get(app).copied().max(open).unwrap_or(0)
        };
        let every_app = node.rule().consumers.iter().map(|a| app_read(a)).min();
        every_app
            .unwrap_or(0)
            .min(open_min.unwrap_or(u64::MAX))
            .min(node.len())
    }

    fn release_in(&mut self, slot: u32) -> u64 {
        let cluster = self.remote.is_some();
        let Some(node) = self.files.node(slot).filter(|n| releasable(n, cluster)) else {
            return 0;
        };
        let budget = &self.files.budget;
        let keep = if budget.limit.is_some() {
            0
        } else {
            budget.pool_limit.min(KEEP_READ)
        };
        let end = self.consumed_end(slot, node).saturating_sub(keep) / GRAIN * GRAIN;
        let Some(node) = self.files.node_mut(slot) else {
            return 0;
        };
        let from = node.released;
        if end <= from {
            return 0;
        }
        // Published first: a reader copying these bytes now finds out after its copy, and one
        // mapping the file from now on is refused them.
        node.shared()
            .released
            .store(end, std::sync::atomic::Ordering::SeqCst);
        node.released = end;
        if self.mapped_now(slot) {
            // It mapped the file meanwhile: the bytes stay, though reads of them fail.
            return 0;
        }
        let Some((node, budget)) = self.files.node_and_budget(slot) else {
            return 0;
        };
        if let Err(e) = sys::punch_hole(node.data.as_fd(), from, end - from) {
            warning!("cannot free the consumed bytes of a file: {e}");
            return 0;
        }
        let charged = node.charged.saturating_sub(end - from);
        budget.set_charge(node, charged);
        end - from
    }

    /// While `slot`'s readers can make room by reading (it is released early and someone has it
    /// open to read): the point its memory could be released up to, which grows as they read.
    /// `None` otherwise.
    pub fn readers_progress(&self, slot: u32) -> Option<u64> {
        let cluster = self.remote.is_some();
        let node = self.files.node(slot).filter(|n| releasable(n, cluster))?;
        let readers = self.consumption.files.get(&slot)?;
        if readers.cells.is_empty() || self.mapped_now(slot) {
            return None;
        }
        Some(self.consumed_end(slot, node))
    }

    /// The thread that calls [`Self::release_consumed`] periodically: woken when a file starts
    /// being read.
    pub fn set_memory_keeper(&mut self, keeper: std::thread::Thread) {
        self.consumption.keeper = Some(keeper);
    }

    /// Bytes released so far.
    pub fn memory_released(&self) -> u64 {
        self.consumption.released_total
    }

    /// Whether some file is being released: the keeper looks often then.
    pub fn releasing(&self) -> bool {
        self.consumption.is_active()
    }
}
