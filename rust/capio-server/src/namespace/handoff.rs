//! The namespace's side of persistence: a commit becomes a `persist::Job` under the lock, and the
//! written copy is installed under the lock again only if that commit is still the file's latest,
//! so a persist never lands after a newer reopen or commit.

use super::Namespace;
use super::files::FileNode;
use crate::backing::{self, Backing};
use crate::disk;
use crate::error::FsError;
use crate::persist;
use std::fs;
use std::io;
use std::path::Path;

impl Namespace {
    /// The work to persist one commit, or `None` when a later reopen or commit superseded it.
    pub fn persist_job(
        &self,
        path: &Path,
        generation: u64,
    ) -> Result<Option<persist::Job>, FsError> {
        let Some(node) = self.current_commit(path, generation) else {
            return Ok(None);
        };
        if node.released > 0 {
            // Zeros where its consumers' bytes were must never reach the disk.
            return Err(FsError::Released);
        }
        Ok(Some(persist::Job {
            path: path.to_path_buf(),
            root: node.root.clone(),
            slot: node.slot(),
            generation,
            data: node.data.try_clone()?,
            len: node.len(),
            in_place: node.backing == Backing::Hidden,
        }))
    }

    /// The file at `path` if `generation` is still its current commit.
    fn current_commit(&self, path: &Path, generation: u64) -> Option<&FileNode> {
        self.files
            .get(path)
            .filter(|n| n.generation() == generation && n.is_committed())
    }

    /// Rename a written temp file over the real path, unless its commit was superseded meanwhile
    /// (then the temp is discarded). Runs under the lock, so the check and the rename are atomic
    /// with respect to reopens.
    pub fn install(&mut self, job: &persist::Job, temp: persist::Temp) -> io::Result<bool> {
        let Some(node) = self.files.get_mut(&job.path).filter(|n| {
            n.slot() == job.slot && n.generation() == job.generation && n.is_committed()
        }) else {
            return Ok(false);
        };
        // The temp file is the persisted copy: renaming keeps its identity.
        let id = fs::symlink_metadata(temp.path()).map(|m| disk::Identity::of(&m));
        temp.install()?;
        node.set_persisted(true, id.ok());
        self.files.publish_disk(&job.path);
        Ok(true)
    }

    /// Persist a `storage: fs` file by renaming its hidden data file over the real path (under
    /// the lock, like `install`). `Ok(false)` when there is nothing to do, because the commit was
    /// superseded or the data file lost its hidden name; the caller then copies as for memory.
    pub fn install_in_place(&mut self, job: &persist::Job) -> Result<bool, FsError> {
        let Some(node) = self.files.get_mut(&job.path).filter(|n| {
            n.slot() == job.slot
                && n.generation() == job.generation
                && n.is_committed()
                && n.backing == Backing::Hidden
        }) else {
            return Ok(false);
        };
        if !backing::rename_into_place(&node.root, &node.data, &job.path, job.len)? {
            return Ok(false);
        }
        node.backing = Backing::InPlace;
        let id = node.data.metadata().ok().map(|m| disk::Identity::of(&m));
        node.set_persisted(true, id);
        self.files.publish_disk(&job.path);
        Ok(true)
    }
}
