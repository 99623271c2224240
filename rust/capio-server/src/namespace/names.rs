//! Unlink, rename and rmdir: operations on names, applied to the namespace and to the disk alike,
//! so that what a workflow leaves on disk matches a plain run.

use super::dirs::rebase;
use super::{Caused, ClientId, Done, Namespace, Notice, Where};
use crate::disk::{self, Kind as DiskKind};
use crate::error::FsError;
use crate::paths::confine;
use capio_proto::SlotState;
use std::path::{Path, PathBuf};

/// What a name operation finds at a path. Unlike a lookup for `open`, a final symlink on disk is
/// the entry itself: unlink and rename act on links, never on their targets.
enum Entry {
    /// A visible namespace file (it may also have a copy on disk).
    File,
    /// A namespace directory (made by `Mkdir`; it may also exist on disk).
    Dir,
    Disk(disk::Entry),
    Missing,
}

impl Entry {
    fn is_dir(&self) -> bool {
        match self {
            Entry::Dir => true,
            Entry::Disk(e) => e.kind == DiskKind::Dir,
            Entry::File | Entry::Missing => false,
        }
    }
}

impl Namespace {
    fn entry(&self, root: &Path, path: &Path) -> Result<Entry, FsError> {
        Ok(match self.locate_ns(root, path)? {
            Some(Where::File) => Entry::File,
            Some(_) => Entry::Dir,
            None => disk::entry(root, path)?.map_or(Entry::Missing, Entry::Disk),
        })
    }

    /// Whether the namespace holds a visible file or a made directory directly inside `dir`.
    fn has_children(&self, dir: &Path) -> bool {
        self.dirs.get(dir).is_some_and(|d| {
            d.names().any(|name| {
                let child = dir.join(name);
                self.files.visible(&child).is_some() || self.dirs.is_made(&child)
            })
        })
    }

    /// Empty in the namespace and on disk (persistence temp files do not count).
    fn dir_is_empty(&self, root: &Path, dir: &Path) -> Result<bool, FsError> {
        if self.has_children(dir) {
            return Ok(false);
        }
        match disk_dir(root, dir)? {
            Some(e) => Ok(disk::is_empty_dir(&e.real)?),
            None => Ok(true),
        }
    }

    /// Forget the aborted files directly inside `dir`: invisible, they must not outlive it.
    fn drop_tombstones(&mut self, dir: &Path) {
        let Some(d) = self.dirs.get(dir) else {
            return;
        };
        let dead: Vec<PathBuf> = d
            .names()
            .map(|name| dir.join(name))
            .filter(|p| self.files.contains(p))
            .collect();
        for path in dead {
            self.forget_file(&path);
        }
    }

    /// `unlink(2)`: remove a file from the namespace and its copy (persisted or input) from disk.
    /// Open fds keep working; a pending commit still releases readers but never persists it.
    pub fn unlink(&mut self, cid: ClientId, path: &Path) -> Result<(), FsError> {
        let root = self.root_for(cid, path)?;
        let path: &Path = &self.real_path(&root, path);
        if let Some(writer) = self.written_elsewhere(path) {
            // The node that writes it unlinks it (and its copy on disk) and tells every node.
            self.tell(|| Notice::Unlink {
                writer,
                path: path.to_path_buf(),
            });
            self.forget_file(path);
            self.bump();
            return Ok(());
        }
        self.unlink_at(&root, path)
    }

    /// The node that writes a visible file of another node.
    fn written_elsewhere(&self, path: &Path) -> Option<usize> {
        self.files
            .visible(path)
            .and_then(|n| n.remote.as_ref())
            .map(|r| r.writer)
    }

    /// [`Self::unlink`] of `path`, resolved inside `root`.
    pub(super) fn unlink_at(&mut self, root: &Path, path: &Path) -> Result<(), FsError> {
        if self
            .files
            .get(path)
            .is_some_and(|n| n.state() == SlotState::Aborted)
        {
            // Invisible already; unlinking clears what the crash left, then acts on the disk.
            self.forget_file(path);
            self.bump();
        }
        let on_disk = match self.entry(root, path)? {
            Entry::Missing => return Err(FsError::NotFound),
            e if e.is_dir() => return Err(FsError::IsDir),
            Entry::Disk(e) => Some(e),
            Entry::File | Entry::Dir => disk_file(root, path)?,
        };
        if let Some(e) = on_disk {
            disk::remove_file(&e)?;
        }
        self.forget_file(path);
        self.bump();
        Ok(())
    }

    /// `rmdir(2)`: remove an empty directory from the namespace and the disk.
    pub fn rmdir(&mut self, cid: ClientId, path: &Path) -> Result<(), FsError> {
        let root = self.root_for(cid, path)?;
        let path: &Path = &self.real_path(&root, path);
        if path == root {
            return Err(FsError::Busy);
        }
        match self.entry(&root, path)? {
            Entry::Missing => return Err(FsError::NotFound),
            e if !e.is_dir() => return Err(FsError::NotDir),
            _ => {}
        }
        if !self.dir_is_empty(&root, path)? {
            return Err(FsError::NotEmpty);
        }
        if let Some(e) = disk_dir(&root, path)? {
            disk::rmdir(&e)?;
        }
        self.drop_tombstones(path);
        self.dirs.forget(path);
        self.dirs.remove_entry(path);
        self.bump();
        Ok(())
    }

    /// `rename(2)` inside one client's CAPIO directory: an existing destination file is replaced
    /// atomically, a directory moves with everything below it. Readers waiting for `dst` to appear
    /// find the moved file as it is (same commit state, same producers). Committed files whose
    /// persist had not landed are persisted again under their new paths (in `Caused`).
    pub fn rename(&mut self, cid: ClientId, src: &Path, dst: &Path) -> Done<()> {
        self.doing(|ns, caused| ns.rename_in(cid, src, dst, caused))
    }

    fn rename_in(
        &mut self,
        cid: ClientId,
        src: &Path,
        dst: &Path,
        caused: &mut Caused,
    ) -> Result<(), FsError> {
        let root = self.root_for(cid, src)?;
        confine(dst, &root)?;
        if self.excluded(dst) {
            return Err(FsError::Excluded);
        }
        let (src, dst): (&Path, &Path) = (&self.real_path(&root, src), &self.real_path(&root, dst));
        if src == root || dst == root {
            return Err(FsError::Busy);
        }
        let from = self.entry(&root, src)?;
        if matches!(from, Entry::Missing) {
            return Err(FsError::NotFound);
        }
        if let Some(node) = self
            .written_elsewhere(src)
            .or_else(|| self.written_elsewhere(dst))
        {
            return Err(FsError::MovedElsewhere { node });
        }
        self.check_parent(&root, dst)?;
        if src == dst {
            return Ok(());
        }
        let to = self.entry(&root, dst)?;
        // Clients looking `dst` up meanwhile must never find it missing: they ask the server.
        let _one_change = self.published.batch();
        if from.is_dir() {
            self.rename_dir(cid, &root, src, dst, &to, caused)?
        } else {
            if to.is_dir() {
                return Err(FsError::IsDir);
            }
            self.rename_file(cid, &root, src, dst, from, caused)?;
        }
        self.bump();
        // The new place may have other rules: `on_n_files` of the new parent, an `on_file`
        // dependency that now exists, or a directory rule its gone producers already satisfy.
        self.commit_orphaned_dirs(caused);
        caused.unsettled = true;
        Ok(())
    }

    fn rename_file(
        &mut self,
        cid: ClientId,
        root: &Path,
        src: &Path,
        dst: &Path,
        from: Entry,
        caused: &mut Caused,
    ) -> Result<(), FsError> {
        let in_namespace = matches!(from, Entry::File);
        // The disk first: if it refuses, the namespace is untouched.
        let src_disk = match from {
            Entry::Disk(e) => Some(e),
            _ => disk_file(root, src)?,
        };
        match &src_disk {
            Some(e) => disk::rename(root, e, dst)?,
            // Nothing to move on disk, but the file `src` replaces must not linger there.
            None => {
                if let Some(old) = disk_file(root, dst)? {
                    disk::remove_file(&old)?;
                }
            }
        }
        self.forget_file(dst);
        if !in_namespace {
            return Ok(());
        }
        self.dirs.remove_entry(src);
        self.rekey_file(root, src, dst, src_disk.is_some(), caused);
        self.add_child(cid, dst, caused);
        Ok(())
    }

    fn rename_dir(
        &mut self,
        cid: ClientId,
        root: &Path,
        src: &Path,
        dst: &Path,
        to: &Entry,
        caused: &mut Caused,
    ) -> Result<(), FsError> {
        if dst.starts_with(src) {
            return Err(FsError::IntoItself);
        }
        // Files of other nodes inside keep their paths there: the directory moves only on the
        // node that writes them.
        if let Some(node) = self
            .files
            .paths_under(src)
            .iter()
            .find_map(|p| self.written_elsewhere(p))
        {
            return Err(FsError::MovedElsewhere { node });
        }
        match to {
            Entry::Missing => {}
            e if !e.is_dir() => return Err(FsError::NotDir),
            _ if !self.dir_is_empty(root, dst)? => return Err(FsError::NotEmpty),
            _ => {}
        }
        let src_disk = disk_dir(root, src)?;
        if let Some(e) = &src_disk {
            if let Some(old) = disk_dir(root, dst)? {
                disk::clear_temps(&old.real)?;
            }
            disk::rename(root, e, dst)?;
        }
        self.drop_tombstones(dst);
        self.dirs.forget(dst);
        self.dirs.remove_entry(src);
        self.rekey_tree(root, src, dst, src_disk.is_some(), caused);
        self.add_child(cid, dst, caused);
        Ok(())
    }

    /// Re-key every namespace directory and file at or below `src` to the same place below `dst`.
    /// Directories keep their child lists (names are relative), so no list needs touching; they
    /// keep their commit state too, but take the rules of their new paths.
    fn rekey_tree(
        &mut self,
        root: &Path,
        src: &Path,
        dst: &Path,
        on_disk: bool,
        caused: &mut Caused,
    ) {
        let rules = &self.rules;
        self.dirs.rekey_tree(src, dst, |p| rules.dir_rule_for(p));
        for old in self.files.paths_under(src) {
            self.rekey_file(root, &old, &rebase(&old, src, dst), on_disk, caused);
        }
    }

    /// Give the namespace file at `src` the path `dst`; slot, producers, opens and commit state
    /// stay, the rule is `dst`'s. `on_disk`: its disk copy moved along, so a persisted copy is
    /// still in place. A committed file whose persist had not landed is persisted again under
    /// `dst`; one in flight under `src` is discarded at install, its path no longer matching.
    fn rekey_file(
        &mut self,
        root: &Path,
        src: &Path,
        dst: &Path,
        on_disk: bool,
        caused: &mut Caused,
    ) {
        let Some(node) = self.files.rekey(src, dst) else {
            return;
        };
        if node.remote.is_none() {
            self.tell(|| Notice::Renamed {
                from: src.to_path_buf(),
                to: dst.to_path_buf(),
            });
        }
        let Some(node) = self.files.get_mut(dst) else {
            return;
        };
        node.persisted &= on_disk;
        if !dst.starts_with(&node.root) {
            // Moved out of its creator's root by a client with a wider one: persist inside that.
            node.root = root.to_path_buf();
        }
        let slot = node.slot();
        self.files.set_rule(dst, self.rules.rule_for(dst));
        if let Some(node) = self.files.get(dst)
            && node.is_committed()
            && !node.persisted
            && node.rule().permanent
        {
            caused.persist_again((dst.to_path_buf(), node.generation()));
        }
        // The new name's rule applies to what already happened under the old one: a temp file
        // closed and then renamed over an `on_close` name is complete now, not at its
        // producer's exit.
        if self.file_rule_met(slot) {
            self.commit_file(slot, caused);
        }
    }
}

/// The non-directory entry at `path` on disk, if any.
fn disk_file(root: &Path, path: &Path) -> Result<Option<disk::Entry>, FsError> {
    Ok(disk::entry(root, path)?.filter(|e| e.kind != DiskKind::Dir))
}

/// The directory at `path` on disk, if any (a symlink to one is not it).
fn disk_dir(root: &Path, path: &Path) -> Result<Option<disk::Entry>, FsError> {
    Ok(disk::entry(root, path)?.filter(|e| e.kind == DiskKind::Dir))
}
