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

/// Largest headroom granted beyond the asked end: big enough that streaming writers rarely ask,
/// small enough that idle files do not hoard the budget.
pub const MAX_HEADROOM: u64 = 16 << 20;
/// Headroom is at most this fraction of what is left, so one writer never takes it all.
const HEADROOM_SHARE: u64 = 8;
/// What a grant means when the budget does not count the file.
pub const UNLIMITED: u64 = u64::MAX;

#[derive(Debug, Default)]
pub(super) struct Budget {
    pub(super) limit: Option<u64>,
    pub(super) used: u64,
}

impl Budget {
    /// Whether `extra` more bytes fit.
    pub(super) fn check(&self, extra: u64) -> Result<(), FsError> {
        match self.limit {
            Some(limit) if self.used.saturating_add(extra) > limit => {
                Err(FsError::NoSpace { limit })
            }
            _ => Ok(()),
        }
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

    /// A committed file keeps only its published bytes charged.
    pub(super) fn release_headroom(&mut self, slot: u32) {
        if let Some((node, budget)) = self.node_and_budget(slot) {
            let len = node.len();
            if node.charged > len {
                budget.set_charge(node, len);
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
        if end <= node.charged {
            return Ok(node.charged);
        }
        let need = end - node.charged;
        let left = limit.saturating_sub(budget.used);
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
        let headroom = ((left - need) / HEADROOM_SHARE).min(MAX_HEADROOM);
        let granted = end + headroom;
        budget.set_charge(node, granted);
        Ok(granted)
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

    /// `cid` wants to write `slot`'s data up to `end`: grant at least that much, or `NoSpace`.
    /// Returns the end up to which writes need not ask again.
    pub fn reserve(&mut self, cid: ClientId, slot: u32, end: u64) -> Result<u64, FsError> {
        if !self.clients.has_open(cid, slot) {
            return Err(FsError::NotOpen);
        }
        self.files.reserve(slot, end)
    }
}
