//! Making room under a memory limit: committed files that no client holds open leave memory,
//! the oldest commit first. A persisted file is served from its real path from then on (nothing
//! is copied); any other is copied into an anonymous file of the spill directory, outside the
//! namespace lock ([`Eviction`]). Served from disk a file keeps its bytes, state and waits; its
//! memory goes to the pool (or back to the system) once nothing holds it.

use super::Namespace;
use super::files::FileNode;
use crate::backing::Backing;
use crate::disk;
use crate::error::FsError;
use crate::log::{info, warning};
use crate::spill::SpillDir;
use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::Arc;

/// A file being copied out of memory: taken by [`Namespace::evict_one`], finished by
/// [`Namespace::finish_eviction`].
pub struct Eviction {
    slot: u32,
    generation: u64,
    data: File,
    len: u64,
    spill: Arc<SpillDir>,
}

impl Eviction {
    /// Copy the file into the spill directory (no lock held).
    pub fn copy(&self) -> io::Result<File> {
        self.spill.copy(&self.data, self.len)
    }
}

/// What [`Namespace::evict_one`] did.
pub enum Evict {
    /// A file left memory: try again.
    Done,
    /// Copy this one out, then finish.
    Copy(Eviction),
    /// Nothing can leave memory now.
    Nothing,
}

/// Whether `node` may leave memory now (a stream partly released stays: little of it is left).
fn evictable(node: &FileNode) -> bool {
    node.released == 0
        && node.is_committed()
        && node.backing == Backing::Anonymous
        && node.has_memory()
        && node.remote.is_none()
        && node.kept_on.is_none()
}

impl Namespace {
    pub fn set_spill_dir(&mut self, dir: SpillDir) {
        self.spill = Some(Arc::new(dir));
    }

    /// Where spilled files go (`None`: nothing is spilled).
    pub fn spill_dir(&self) -> Option<&Path> {
        self.spill.as_deref().map(SpillDir::path)
    }

    /// Move the oldest committed file nobody holds out of memory, or say which to copy out.
    pub fn evict_one(&mut self) -> Evict {
        // Without a spill directory nothing leaves memory: a persisted file served from disk
        // could not be written again.
        if self.spill.is_none() {
            return Evict::Nothing;
        }
        let candidate = self
            .files
            .iter()
            .filter(|(_, n)| evictable(n) && !self.clients.is_open(n.slot()))
            .filter(|(_, n)| !self.evicting.contains(&n.slot()))
            .filter(|(_, n)| !self.unspillable.contains(&(n.slot(), n.generation())))
            .filter(|(_, n)| !self.remote.as_ref().is_some_and(|r| r.is_pinned(n.slot())))
            .min_by_key(|(_, n)| n.generation())
            .map(|(p, n)| (p.clone(), n.slot()));
        let Some((path, slot)) = candidate else {
            return Evict::Nothing;
        };
        if let Some(file) = self.persisted_copy(&path) {
            self.leave_memory(slot, file, Backing::InPlace);
            info!(
                "{}: served from its persisted copy to make room in memory",
                path.display()
            );
            return Evict::Done;
        }
        let Some(spill) = self.spill.clone() else {
            return Evict::Nothing;
        };
        let Some(node) = self.files.node(slot) else {
            return Evict::Nothing;
        };
        let Ok(data) = node.data.try_clone() else {
            return Evict::Nothing;
        };
        self.evicting.insert(slot);
        Evict::Copy(Eviction {
            slot,
            generation: node.generation(),
            data,
            len: node.len(),
            spill,
        })
    }

    /// Serve the copied file from its spill file, if nothing changed it meanwhile.
    pub fn finish_eviction(&mut self, e: Eviction, copy: io::Result<File>) -> bool {
        self.evicting.remove(&e.slot);
        let copy = match copy {
            Ok(copy) => copy,
            Err(err) => {
                warning!("cannot spill a file to {}: {err}", e.spill.path().display());
                // Not offered again until it is written anew: a full spill disk must end in
                // ENOSPC for the writer, not in copying the same file over and over.
                self.unspillable.insert((e.slot, e.generation));
                return false;
            }
        };
        let slot = e.slot;
        // The copy's description goes first: the memory is recycled only if nothing holds it.
        drop(e.data);
        let same = self.files.node(slot).is_some_and(|n| {
            evictable(n) && n.generation() == e.generation && !self.clients.is_open(slot)
        });
        if !same {
            return false;
        }
        self.leave_memory(slot, copy, Backing::Spilled);
        true
    }

    /// `path`'s persisted disk copy, opened, when it is still what was persisted.
    fn persisted_copy(&self, path: &Path) -> Option<File> {
        let node = self.files.get(path)?;
        let id = node.disk_id.filter(|_| node.persisted)?;
        let on_disk = disk::lookup(&node.root, path).ok()??;
        let file = disk::open_read(&on_disk).ok()?;
        let meta = file.metadata().ok()?;
        (disk::Identity::of(&meta) == id && meta.len() == node.len()).then_some(file)
    }

    fn leave_memory(&mut self, slot: u32, data: File, backing: Backing) {
        let Some((node, budget)) = self.files.node_and_budget(slot) else {
            return;
        };
        let memory = node.replace_data(data, backing);
        budget.set_charge(node, 0);
        if let Some(memory) = memory {
            let room = budget.pool_room();
            budget.pool.recycle(memory, room);
        }
    }

    /// A file served from disk after it left memory is opened for writing: from its persisted
    /// copy, it is copied into the spill directory first, so writing it never touches the
    /// persisted file before the next commit.
    pub(super) fn writable_again(&mut self, slot: u32) -> Result<(), FsError> {
        let Some(node) = self.files.node(slot) else {
            return Ok(());
        };
        if node.backing != Backing::InPlace || node.rule().storage != capio_cl::Storage::Memory {
            return Ok(());
        }
        let spill = self.spill.clone().ok_or(FsError::NoSpace { limit: 0 })?;
        let copy = spill.copy(&node.data, node.len())?;
        if let Some(node) = self.files.node_mut(slot) {
            node.replace_data(copy, Backing::Spilled);
        }
        Ok(())
    }

    /// Bytes of files served from the spill directory.
    pub fn memory_spilled(&self) -> u64 {
        self.files
            .iter()
            .map(|(_, n)| n)
            .chain(self.files.unlinked().map(|(_, n)| n))
            .filter(|n| n.backing == Backing::Spilled)
            .map(FileNode::len)
            .sum()
    }
}
