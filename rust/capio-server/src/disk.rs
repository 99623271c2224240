//! Confined access to the real file system under a client's CAPIO directory: every lookup resolves
//! symlinks and refuses (`EXDEV`) anything that would lead outside the directory.
//!
//! `root` is always canonical here (checked at `Hello`), so "inside" is a component-wise prefix test
//! on canonical paths.

use crate::error::FsError;
use crate::paths::confine;
use crate::persist;
use capio_proto::{EntryKind, NodeKind, nanos};
use std::ffi::OsString;
use std::fs::{self, DirBuilder, File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    /// FIFO, socket, device: visible, never opened. For an [`Entry`], also a symlink.
    Other,
}

/// Something that exists on disk, with its symlink-free location.
#[derive(Debug)]
pub struct Node {
    pub kind: Kind,
    pub meta: Metadata,
    pub real: PathBuf,
}

impl Node {
    pub fn wire_kind(&self) -> NodeKind {
        if self.kind == Kind::Dir {
            NodeKind::Dir
        } else {
            NodeKind::File
        }
    }
}

fn kind_of(meta: &Metadata) -> Kind {
    if meta.is_file() {
        Kind::File
    } else if meta.is_dir() {
        Kind::Dir
    } else {
        Kind::Other
    }
}

/// What tells one version of a file on disk from another without reading it: a file removed,
/// replaced or rewritten by another program no longer matches what was persisted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i64,
}

impl Identity {
    /// As clients read it from the namespace index.
    pub fn published(&self) -> capio_proto::index::DiskId {
        capio_proto::index::DiskId {
            dev: self.dev,
            ino: self.ino,
            size: self.size,
            mtime_ns: self.mtime_ns,
        }
    }

    pub fn of(meta: &Metadata) -> Identity {
        use std::os::unix::fs::MetadataExt;
        Identity {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.len(),
            mtime_ns: nanos(meta.mtime(), meta.mtime_nsec()),
        }
    }
}

/// Attributes that give a file the access and modification times `meta` has (and change
/// nothing else): how a copy or an import keeps its source's times.
pub fn same_times(meta: &Metadata) -> capio_proto::sys::Attrs {
    use capio_proto::sys::{Attrs, TimeSet};
    use std::os::unix::fs::MetadataExt;
    Attrs {
        atime: TimeSet::At(nanos(meta.atime(), meta.atime_nsec())),
        mtime: TimeSet::At(nanos(meta.mtime(), meta.mtime_nsec())),
        ..Attrs::default()
    }
}

/// The identity of the regular file at `path` (not following a final symlink); `None` when
/// there is none. One `lstat`, and nothing is opened, so no confinement is needed.
pub fn identity(path: &Path) -> Option<Identity> {
    fs::symlink_metadata(path)
        .ok()
        .filter(Metadata::is_file)
        .map(|m| Identity::of(&m))
}

/// Look `path` (inside `root`) up on disk. `Ok(None)` when it does not exist (including a dangling
/// final symlink); `NotDir` when an ancestor is not a directory.
pub fn lookup(root: &Path, path: &Path) -> Result<Option<Node>, FsError> {
    confine(path, root)?;
    let Some(full) = real_location(root, path)? else {
        return Ok(None);
    };
    let meta = match fs::symlink_metadata(&full) {
        Ok(m) => m,
        Err(e) => return missing_or(e),
    };
    let (real, meta) = if meta.file_type().is_symlink() {
        let real = match fs::canonicalize(&full) {
            Ok(r) => r,
            Err(e) => return missing_or(e),
        };
        confine(&real, root)?;
        let meta = fs::metadata(&real)?;
        (real, meta)
    } else {
        (full, meta)
    };
    Ok(Some(Node {
        kind: kind_of(&meta),
        meta,
        real,
    }))
}

/// Where `path` (inside `root`) really is: its parent with symlinks resolved (and confined), then
/// its own name, not followed. `Ok(None)` when the parent does not exist.
fn real_location(root: &Path, path: &Path) -> Result<Option<PathBuf>, FsError> {
    let (parent, name) = match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) if path != root => (parent, name),
        _ => return Ok(Some(root.to_path_buf())),
    };
    if parent == root {
        // `root` is canonical (checked at `Hello`): nothing to resolve.
        return Ok(Some(path.to_path_buf()));
    }
    let real_parent = match fs::canonicalize(parent) {
        Ok(p) => p,
        Err(e) => return missing_or(e),
    };
    confine(&real_parent, root)?;
    Ok(Some(real_parent.join(name)))
}

fn missing_or<T>(e: io::Error) -> Result<Option<T>, FsError> {
    match FsError::from_lookup(e) {
        FsError::NotFound => Ok(None),
        other => Err(other),
    }
}

/// The metadata of `path` (inside `root`) itself when it is a symbolic link on disk; `None` for
/// anything else (which `lookup` describes) and when it does not exist.
pub fn link_metadata(root: &Path, path: &Path) -> Result<Option<Metadata>, FsError> {
    confine(path, root)?;
    let Some(real) = real_location(root, path)? else {
        return Ok(None);
    };
    match fs::symlink_metadata(&real) {
        Ok(m) if m.file_type().is_symlink() => Ok(Some(m)),
        Ok(_) => Ok(None),
        Err(e) => missing_or(e),
    }
}

/// What is on disk at `path` (inside `root`) itself, a final symbolic link not followed.
#[derive(Debug)]
pub enum Probe {
    Nothing,
    /// A symbolic link, with its target text.
    Link(PathBuf),
    /// Anything else: [`lookup`] describes it.
    Present,
}

/// One look at `path`'s own entry (its parent resolved once): what a create, or a look-up that
/// may go through a link to a CAPIO file, needs to know first. `parent_made`: the parent is a
/// directory the server made where its parent resolved to, so its path is taken as real without
/// resolving it again (a create costs one `lstat`). Nothing is read or written through that path:
/// whatever the probe finds there, a disk look-up that follows resolves and confines it again.
pub fn probe(root: &Path, path: &Path, parent_made: bool) -> Result<Probe, FsError> {
    confine(path, root)?;
    let real = if parent_made {
        path.to_path_buf()
    } else {
        match real_location(root, path)? {
            Some(real) => real,
            None => return Ok(Probe::Nothing),
        }
    };
    let meta = match fs::symlink_metadata(&real) {
        Ok(m) => m,
        Err(e) => return Ok(missing_or(e)?.unwrap_or(Probe::Nothing)),
    };
    if !meta.file_type().is_symlink() {
        return Ok(Probe::Present);
    }
    match fs::read_link(&real) {
        Ok(target) => Ok(Probe::Link(target)),
        Err(e) => Ok(missing_or(e)?.unwrap_or(Probe::Nothing)),
    }
}

/// A directory entry itself, as `unlink`, `rename` and `rmdir` act on it: a final symlink is the
/// entry (kind `Other`), never its target, so removing or moving it cannot reach outside the root.
#[derive(Debug)]
pub struct Entry {
    pub kind: Kind,
    /// The entry's location with every parent symlink resolved.
    pub real: PathBuf,
}

/// Find the entry `path` (inside `root`) names on disk; `Ok(None)` when there is none.
pub fn entry(root: &Path, path: &Path) -> Result<Option<Entry>, FsError> {
    confine(path, root)?;
    let Some(real) = real_location(root, path)? else {
        return Ok(None);
    };
    let meta = match fs::symlink_metadata(&real) {
        Ok(m) => m,
        Err(e) => return missing_or(e),
    };
    let kind = if meta.file_type().is_symlink() {
        Kind::Other
    } else {
        kind_of(&meta)
    };
    Ok(Some(Entry { kind, real }))
}

/// Remove a non-directory entry found by [`entry`].
pub fn remove_file(entry: &Entry) -> Result<(), FsError> {
    fs::remove_file(&entry.real).map_err(FsError::from_lookup)
}

/// Move an entry found by [`entry`] to `to` (inside `root`), replacing what is there as
/// `rename(2)` does. `to`'s parent is created on disk when only the namespace had it.
pub fn rename(root: &Path, from: &Entry, to: &Path) -> Result<(), FsError> {
    let (Some(parent), Some(name)) = (to.parent(), to.file_name()) else {
        return Err(FsError::Busy);
    };
    let real_parent = ensure_dir(root, parent)?;
    fs::rename(&from.real, real_parent.join(name)).map_err(FsError::from_lookup)
}

/// Whether a real directory holds nothing but the server's own hidden files.
pub fn is_empty_dir(real_dir: &Path) -> io::Result<bool> {
    for entry in fs::read_dir(real_dir)? {
        if !persist::is_internal_name(&entry?.file_name()) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Delete the server's hidden files in a real directory the namespace holds nothing in: temps of
/// files removed while being persisted (their install is discarded), and data files of files
/// that are gone. They would otherwise keep the directory from going away.
pub fn clear_temps(real_dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(real_dir)? {
        let entry = entry?;
        if persist::is_internal_name(&entry.file_name()) {
            match fs::remove_file(entry.path()) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
    }
    Ok(())
}

/// Remove an empty real directory (temp files aside) found by [`entry`].
pub fn rmdir(dir: &Entry) -> Result<(), FsError> {
    if !is_empty_dir(&dir.real)? {
        return Err(FsError::NotEmpty);
    }
    clear_temps(&dir.real)?;
    fs::remove_dir(&dir.real).map_err(FsError::from_lookup)
}

/// Open a regular file found by [`lookup`] read-only. `O_NOFOLLOW`/`O_NONBLOCK` make a swap of the
/// path for a symlink or a FIFO since the lookup fail instead of escaping or hanging.
pub fn open_read(node: &Node) -> Result<File, FsError> {
    if node.kind != Kind::File {
        return Err(FsError::Unsupported);
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(&node.real)
        .map_err(FsError::from_lookup)?;
    if !file.metadata()?.is_file() {
        return Err(FsError::Unsupported);
    }
    Ok(file)
}

fn entry_kind(ft: fs::FileType) -> NodeKind {
    if ft.is_dir() {
        NodeKind::Dir
    } else if ft.is_file() {
        NodeKind::File
    } else {
        NodeKind::Other
    }
}

/// The entries of a real directory, minus the server's hidden files, as `(kind, name)`.
pub fn list(real_dir: &Path) -> io::Result<Vec<(EntryKind, OsString)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(real_dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if persist::is_internal_name(&name) {
            continue;
        }
        let ft = entry.file_type()?;
        // A symlink is listed as one, with the kind of what it points at; only that kind leaks,
        // never its content.
        let kind = if ft.is_symlink() {
            let target = fs::metadata(entry.path()).ok();
            EntryKind {
                node: target
                    .as_ref()
                    .map_or(NodeKind::Other, |m| entry_kind(m.file_type())),
                link: true,
            }
        } else {
            entry_kind(ft).into()
        };
        out.push((kind, name));
    }
    Ok(out)
}

/// Make sure the directory `dir` (inside `root`) exists on disk, creating missing components with
/// mode 0o755, and return its canonical path. Existing symlinked components are followed only while
/// they stay inside `root`.
pub fn ensure_dir(root: &Path, dir: &Path) -> Result<PathBuf, FsError> {
    confine(dir, root)?;
    let rel = dir.strip_prefix(root).map_err(|_| FsError::OutsideRoot)?;
    let mut cur = root.to_path_buf();
    for comp in rel.components() {
        cur.push(comp);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => {
                let real = fs::canonicalize(&cur).map_err(FsError::from_lookup)?;
                confine(&real, root)?;
                if !real.is_dir() {
                    return Err(FsError::NotDir);
                }
                cur = real;
            }
            Ok(_) => return Err(FsError::NotDir),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                match DirBuilder::new().mode(0o755).create(&cur) {
                    Ok(()) => {}
                    // Raced with another creator: fine if what is there now is a directory.
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists && cur.is_dir() => {}
                    Err(e) => return Err(FsError::from_lookup(e)),
                }
            }
            Err(e) => return Err(FsError::from_lookup(e)),
        }
    }
    Ok(cur)
}

/// Create the directory `path` on disk with `mode` (missing parents with 0o755), as a directory
/// commits. One that is already there (a persisted file made it) is fine.
pub fn mkdir(root: &Path, path: &Path, mode: u32) -> Result<(), FsError> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Ok(());
    };
    let real = ensure_dir(root, parent)?.join(name);
    match DirBuilder::new().mode(mode).create(&real) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && real.is_dir() => Ok(()),
        // Exactly the mode the client asked for (its umask applied): not the server's umask.
        Ok(()) => fs::set_permissions(&real, fs::Permissions::from_mode(mode))
            .map_err(FsError::from_lookup),
        Err(e) => Err(FsError::from_lookup(e)),
    }
}

/// Create the directory `path` (inside `root`, whose parent exists) with exactly `mode`, whatever
/// the server's umask: what `stat` through CAPIO reports is what is on disk.
pub fn mkdir_exact(root: &Path, path: &Path, mode: u32) -> Result<(), FsError> {
    use std::os::unix::fs::PermissionsExt;
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(FsError::Exists);
    };
    let real = ensure_dir(root, parent)?.join(name);
    DirBuilder::new()
        .mode(mode)
        .create(&real)
        .map_err(FsError::from_lookup)?;
    fs::set_permissions(&real, fs::Permissions::from_mode(mode)).map_err(FsError::from_lookup)
}

/// The nearest directory on disk at or above `dir` (inside `root`), canonical: where the hidden
/// data file of a file in `dir` goes (`dir` itself, unless another program removed it).
pub fn nearest_dir(root: &Path, dir: &Path) -> PathBuf {
    dir.ancestors()
        .take_while(|a| a.starts_with(root))
        .find_map(|a| {
            lookup(root, a)
                .ok()
                .flatten()
                .filter(|n| n.kind == Kind::Dir)
        })
        .map_or_else(|| root.to_path_buf(), |n| n.real)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdir::TestDir;
    use std::os::unix::fs::symlink;

    #[test]
    fn lookup_follows_symlinks_only_inside_the_root() {
        let t = TestDir::new();
        let root = t.path().join("root");
        fs::create_dir(&root).unwrap();
        fs::write(root.join("in.txt"), b"in").unwrap();
        fs::write(t.path().join("secret"), b"s").unwrap();
        symlink(root.join("in.txt"), root.join("good")).unwrap();
        symlink(t.path().join("secret"), root.join("bad")).unwrap();
        symlink(t.path(), root.join("up")).unwrap();
        symlink(root.join("nowhere"), root.join("dangling")).unwrap();

        let good = lookup(&root, &root.join("good")).unwrap().unwrap();
        assert_eq!(good.kind, Kind::File);
        assert_eq!(good.real, root.join("in.txt"));
        assert_eq!(open_read(&good).unwrap().metadata().unwrap().len(), 2);
        assert!(matches!(
            lookup(&root, &root.join("bad")),
            Err(FsError::OutsideRoot)
        ));
        assert!(matches!(
            lookup(&root, &root.join("up/secret")),
            Err(FsError::OutsideRoot)
        ));
        assert!(lookup(&root, &root.join("dangling")).unwrap().is_none());
        assert!(lookup(&root, &root.join("missing/x")).unwrap().is_none());
        assert!(matches!(
            lookup(&root, &root.join("in.txt/x")),
            Err(FsError::NotDir)
        ));
        assert_eq!(lookup(&root, &root).unwrap().unwrap().kind, Kind::Dir);
    }

    #[test]
    fn ensure_dir_creates_inside_and_refuses_escapes() {
        let t = TestDir::new();
        let root = t.path().join("root");
        fs::create_dir(&root).unwrap();
        symlink(t.path(), root.join("up")).unwrap();
        assert_eq!(
            ensure_dir(&root, &root.join("a/b")).unwrap(),
            root.join("a/b")
        );
        assert!(root.join("a/b").is_dir());
        assert!(matches!(
            ensure_dir(&root, &root.join("up/x")),
            Err(FsError::OutsideRoot)
        ));
        assert!(!t.path().join("x").exists());
        mkdir(&root, &root.join("a/c"), 0o700).unwrap();
        mkdir(&root, &root.join("a/c"), 0o700).unwrap();
        fs::write(root.join("a/f"), b"").unwrap();
        assert!(matches!(
            mkdir(&root, &root.join("a/f"), 0o700),
            Err(FsError::Exists)
        ));
        mkdir(&root, &root.join("new/deep/er"), 0o700).unwrap();
        assert!(root.join("new/deep/er").is_dir());
        assert_eq!(nearest_dir(&root, &root.join("a/x/y")), root.join("a"));
        assert_eq!(nearest_dir(&root, &root.join("up/x")), root);
    }

    #[test]
    fn entries_are_the_links_themselves_and_rmdir_ignores_only_temp_files() {
        let t = TestDir::new();
        let root = t.path().join("root");
        fs::create_dir_all(root.join("d")).unwrap();
        symlink(root.join("d"), root.join("dlink")).unwrap();
        symlink(t.path(), root.join("up")).unwrap();
        assert_eq!(
            entry(&root, &root.join("dlink")).unwrap().unwrap().kind,
            Kind::Other
        );
        assert_eq!(
            entry(&root, &root.join("d")).unwrap().unwrap().kind,
            Kind::Dir
        );
        assert!(entry(&root, &root.join("nope/x")).unwrap().is_none());
        assert!(matches!(
            entry(&root, &root.join("up/x")),
            Err(FsError::OutsideRoot)
        ));

        let moved = entry(&root, &root.join("dlink")).unwrap().unwrap();
        rename(&root, &moved, &root.join("new/parent/link")).unwrap();
        assert!(root.join("new/parent/link").is_dir(), "still a link to d");

        fs::write(root.join("d/.f.capio-tmp-1-1"), b"").unwrap();
        fs::write(root.join("d/real"), b"").unwrap();
        let d = entry(&root, &root.join("d")).unwrap().unwrap();
        assert!(matches!(rmdir(&d), Err(FsError::NotEmpty)));
        assert!(
            root.join("d/.f.capio-tmp-1-1").exists(),
            "nothing removed on failure"
        );
        fs::remove_file(root.join("d/real")).unwrap();
        rmdir(&d).unwrap();
        assert!(!root.join("d").exists());
    }
}
