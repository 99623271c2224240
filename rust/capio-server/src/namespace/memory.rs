//! The memory budget (`--memory-limit`): how many bytes memory-backed files may hold in total.
//!
//! Checking it must cost nothing on the write path, so clients ask for room in increments: a
//! `Reserve` when a write crosses the end the server last granted that handle. The server charges
//! each file the largest end granted for it (readers and writers of one file share one charge),
//! adds headroom so the next increments need no round trip, and takes the headroom back when the
//! file commits, is truncated, or is gone. Writes through a grant obtained before such a take-back
//! may still land: the budget holds to within one increment per open writable handle.

use super::files::{FileNode, FileTable};
use super::{ClientId, Namespace};
use crate::backing::Backing;
use crate::error::FsError;
use crate::log::warning;
use crate::pool::Pool;

/// Largest headroom granted beyond the asked end: big enough that streaming writers rarely ask,
/// small enough that idle files do not hoard the budget.
pub const MAX_HEADROOM: u64 = 16 << 20;
/// Headroom is at most this fraction of what is left, so one writer never takes it all.
const HEADROOM_SHARE: u64 = 8;
/// What a grant means when the budget does not count the file.
pub const UNLIMITED: u64 = u64::MAX;

#[derive(Default)]
pub(super) struct Budget {
    pub(super) limit: Option<u64>,
    /// Bytes charged to files.
    pub(super) used: u64,
    /// Memory of gone files, for new ones: it counts against the limit too, but makes way for
    /// any file that needs room.
    pub(super) pool: Pool,
    /// The most the pool holds (`--pool-limit`).
    pub(super) pool_limit: u64,
}

impl Budget {
    /// Whether `extra` more bytes fit; pooled memory makes way for them.
    pub(super) fn check(&mut self, extra: u64) -> Result<(), FsError> {
        let Some(limit) = self.limit else {
            return Ok(());
        };
        let wanted = self.in_use().saturating_add(extra);
        if wanted > limit {
            return Err(FsError::NoSpace { limit });
        }
        self.pool.shrink_to(limit - wanted);
        Ok(())
    }

    /// How many bytes the pool may hold now.
    pub(super) fn pool_room(&self) -> u64 {
        let left = self
            .limit
            .map_or(u64::MAX, |l| l.saturating_sub(self.in_use()));
        self.pool_limit.min(left)
    }

    /// Bytes in use: charged to files, and held outside the server by gone files' readers (not
    /// pooled memory, which gives way).
    fn in_use(&self) -> u64 {
        self.used.saturating_add(self.pool.held_elsewhere())
    }

    /// Set `node`'s charge to `new` bytes.
    pub(super) fn set_charge(&mut self, node: &mut FileNode, new: u64) {
        self.used = self.used - node.charged + new;
        node.charged = new;
    }
}

impl FileTable {
    /// Charge a new file its initial content.
    pub(super) fn charge(&mut self, slot: u32, len: u64) {
        if let Some((node, budget)) = self.node_and_budget(slot) {
            budget.set_charge(node, len);
        }
    }

    /// A committed file keeps only its published bytes (not released) charged.
    pub(super) fn release_headroom(&mut self, slot: u32) {
        if let Some((node, budget)) = self.node_and_budget(slot) {
            let held = node.len().saturating_sub(node.released);
            if node.charged > held {
                budget.set_charge(node, held);
            }
        }
    }

    /// Bytes held by memory-backed files, files unlinked but still open included; counted with
    /// or without a limit, so `pycapio server status` shows what the server holds.
    pub(super) fn memory_in_use(&self) -> u64 {
        let live = self
            .iter()
            .map(|(_, n)| n)
            .chain(self.unlinked().map(|(_, n)| n));
        live.map(FileNode::memory_held).sum()
    }

    /// Write `slot`'s data up to `end` (its writer holds it open): grant at least that much, or
    /// `NoSpace`. Returns the end up to which writes need not ask again.
    pub(super) fn reserve(&mut self, slot: u32, end: u64) -> Result<u64, FsError> {
        let name = self.path_of(slot).cloned();
        let (node, budget) = self.node_and_budget(slot).ok_or(FsError::NotOpen)?;
        let Some(limit) = budget.limit.filter(|_| node.backing == Backing::Anonymous) else {
            return Ok(UNLIMITED);
        };
        // Bytes below the release point hold no memory: charges count from there, grants are
        // offsets.
        let base = node.released;
        let held_to = end.saturating_sub(base);
        if held_to <= node.charged {
            return Ok(node.charged + base);
        }
        let need = held_to - node.charged;
        let left = limit.saturating_sub(budget.in_use());
        if need <= left {
            // Pooled memory makes way first.
            budget.pool.shrink_to(left - need);
        }
        if need > left {
            if !std::mem::replace(&mut node.refused, true) {
                warning!(
                    "memory limit: refused to grow {} to {end} bytes ({} of {limit} bytes in \
                     use); its writer gets ENOSPC (raise --memory-limit / PYCAPIO_MEMORY_LIMIT, \
                     or give such files 'storage: fs' in CAPIO-CL)",
                    name.as_deref()
                        .map_or("an unlinked file".into(), |p| p.display().to_string()),
                    budget.used
                );
            }
            return Err(FsError::NoSpace { limit });
        }
        // Headroom comes out of what neither files nor the pool hold.
        let free = left - need - budget.pool.bytes();
        let headroom = (free / HEADROOM_SHARE).min(MAX_HEADROOM);
        let granted = held_to + headroom;
        budget.set_charge(node, granted);
        Ok(granted + base)
    }
}

impl Namespace {
    pub fn set_memory_limit(&mut self, limit: Option<u64>) {
        self.files.budget.limit = limit;
    }

    pub fn memory_limit(&self) -> Option<u64> {
        self.files.budget.limit
    }

    /// Bytes charged to memory-backed files (published data plus granted headroom).
    pub fn memory_used(&self) -> u64 {
        self.files.budget.used
    }

    /// Bytes held by memory-backed files, files unlinked but still open included.
    pub fn memory_in_use(&self) -> u64 {
        self.files.memory_in_use()
    }

    /// The most memory of gone files kept for new ones (0: none is kept).
    pub fn set_pool_limit(&mut self, bytes: u64) {
        let budget = &mut self.files.budget;
        budget.pool_limit = bytes;
        budget.pool.shrink_to(bytes);
    }

    pub fn pool_limit(&self) -> u64 {
        self.files.budget.pool_limit
    }

    /// Bytes of memory of gone files that something outside the server still holds (a `view()`
    /// kept after the file was removed), counted as in use until it is let go.
    pub fn memory_held_elsewhere(&self) -> u64 {
        self.files.budget.pool.held_elsewhere()
    }

    /// Look again at memory of gone files held outside the server: what was let go is pooled or
    /// given back.
    pub fn recheck_memory_held_elsewhere(&mut self) {
        let budget = &mut self.files.budget;
        let room = budget.pool_limit.min(
            budget
                .limit
                .map_or(u64::MAX, |l| l.saturating_sub(budget.used)),
        );
        budget.pool.recheck_elsewhere(room);
    }

    /// Bytes of memory of gone files kept for new ones.
    pub fn memory_pooled(&self) -> u64 {
        self.files.budget.pool.bytes()
    }

    /// How long pooled memory may stay unused before it goes back to the system.
    pub fn set_pool_idle(&mut self, idle: std::time::Duration) {
        self.files.budget.pool.idle = idle;
    }

    pub fn pool_idle(&self) -> std::time::Duration {
        self.files.budget.pool.idle
    }

    /// Give back to the system the pooled memory no file took for its idle time; returns the
    /// bytes given back.
    pub fn give_back_idle_memory(&mut self, now: std::time::Instant) -> u64 {
        self.files.budget.pool.drop_idle(now)
    }

    /// `cid` wants to write `slot`'s data up to `end`: grant at least that much, or `NoSpace`.
    /// Returns the end up to which writes need not ask again.
    pub fn reserve(&mut self, cid: ClientId, slot: u32, end: u64) -> Result<u64, FsError> {
        if !self.clients.has_open(cid, slot) {
            return Err(FsError::NotOpen);
        }
        match self.files.reserve(slot, end) {
            // What consumers have read makes room before anything is refused.
            Err(FsError::NoSpace { .. }) if self.release_consumed() > 0 => {
                self.files.reserve(slot, end)
            }
            other => other,
        }
    }
}
