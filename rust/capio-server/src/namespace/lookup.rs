//! Where a path leads: the client's root and exclusions, symbolic links in the parents and at the
//! end, namespace first and then the disk; and forgetting what another program removed from disk
//! since the namespace learnt it.

use super::{ClientId, Namespace, Where};
use crate::disk::{self, Kind as DiskKind};
use crate::error::FsError;
use crate::log::{info, warning};
use crate::paths::confine;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Symbolic links followed in one lookup before `ELOOP`, as Linux allows.
const MAX_LINKS: usize = 40;

impl Namespace {
    /// The root of a live client, once `path` is known to lie inside it and to be CAPIO's: an
    /// excluded path is `EXDEV` like one outside the root. Clients send neither; this is defence
    /// in depth.
    pub(super) fn root_for(&self, cid: ClientId, path: &Path) -> Result<PathBuf, FsError> {
        let client = self.clients.live(cid).ok_or(FsError::Exited)?;
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
    pub(super) fn real_path(&self, root: &Path, path: &Path) -> PathBuf {
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return path.to_path_buf();
        };
        if path == root
            || parent == root
            || self.dirs.contains(parent)
            || self.files.contains(path)
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

    /// The name an exclusive create of `path` by `cid` claims across nodes (its real path), or
    /// `None` when something is there already (the create fails with `EEXIST` anyway).
    pub fn claim_key(&self, cid: ClientId, path: &Path) -> Result<Option<PathBuf>, FsError> {
        let root = self.root_for(cid, path)?;
        let real = self.real_path(&root, path);
        let taken = self.files.contains(&real)
            || !matches!(self.locate(&root, &real), Ok(Where::Missing) | Err(_));
        Ok((!taken).then_some(real))
    }

    pub(super) fn excluded(&self, path: &Path) -> bool {
        self.rules.is_excluded(path)
    }

    /// `File` or `Dir` when the namespace has `path`, `None` when only the disk can tell.
    pub(super) fn locate_ns(&self, root: &Path, path: &Path) -> Result<Option<Where>, FsError> {
        if self.files.visible(path).is_some() {
            return Ok(Some(Where::File));
        }
        if self.dirs.is_made(path) {
            return Ok(Some(Where::Dir));
        }
        let mut ancestors = path.ancestors().skip(1).take_while(|a| a.starts_with(root));
        if ancestors.any(|a| self.files.visible(a).is_some()) {
            return Err(FsError::NotDir);
        }
        Ok(None)
    }

    pub(super) fn locate(&self, root: &Path, path: &Path) -> Result<Where, FsError> {
        if let Some(found) = self.locate_ns(root, path)? {
            return Ok(found);
        }
        Ok(match disk::lookup(root, path)? {
            Some(node) => Where::Disk(Box::new(node)),
            None => Where::Missing,
        })
    }

    /// The parent of `path` (which is strictly inside `root`) must be a directory.
    pub(super) fn check_parent(&self, root: &Path, path: &Path) -> Result<(), FsError> {
        let parent = path.parent().ok_or(FsError::Exists)?;
        match self.locate(root, parent)? {
            Where::Dir => Ok(()),
            Where::Disk(node) if node.kind == DiskKind::Dir => Ok(()),
            Where::File | Where::Disk(_) => Err(FsError::NotDir),
            Where::Missing => Err(FsError::NotFound),
        }
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
    pub(super) fn drop_stale_dir(&mut self, path: &Path) -> bool {
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
            .any(|c| self.files.visible(c).is_some() || self.dirs.is_made(c));
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
        self.dirs.forget(path);
        self.dirs.remove_entry(path);
        self.bump();
        true
    }

    pub(super) fn drop_stale(&mut self, path: &Path) -> bool {
        let Some(node) = self.files.get(path) else {
            return false;
        };
        if !(node.persisted && node.is_committed()) {
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
        self.bump();
        true
    }

    /// Where a lookup of `path` really goes when its last component is a symbolic link on disk
    /// whose target (lexically resolved, as many times as links follow links) stays inside
    /// `root`: a link to a CAPIO file then reaches that file. A target outside `root` is left to
    /// the confined disk lookup, which refuses it.
    pub(super) fn through_links(&self, root: &Path, path: &Path) -> Result<PathBuf, FsError> {
        Ok(self.resolve_links(root, path, true)?.0)
    }

    /// [`Self::through_links`], also returning what the disk has at the final path when the
    /// namespace does not know it (`None` when it does). With `follow` false a final link is not
    /// followed (the probe then says `Link`).
    pub(super) fn resolve_links(
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
            let parent_made = cur.parent().is_some_and(|p| self.dirs.is_made(p));
            let probe = disk::probe(root, &cur, parent_made)?;
            let disk::Probe::Link(target) = &probe else {
                return Ok((cur, Some(probe)));
            };
            // Lexically, as the kernel resolves it (`..` above `/` stays at `/`).
            let next = cur.parent().map(|p| capio_cl::paths::normalize(target, p));
            let Some(next) = next
                .filter(|n| follow && n != root && confine(n, root).is_ok() && !self.excluded(n))
            else {
                return Ok((cur, Some(probe)));
            };
            cur = next;
        }
        Err(FsError::Io(io::Error::from_raw_os_error(libc::ELOOP)))
    }
}
