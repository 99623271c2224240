//! Where a CAPIO file's bytes live: a memfd (CAPIO-CL `storage: memory`, the default), or a hidden
//! file on disk next to its real path (`storage: fs`), which persisting renames into place.
//!
//! A hidden data file is found again through its open descriptor (`/proc/self/fd`), never through
//! a remembered path: renames of the directories around it move it along, and the kernel keeps
//! track.

use crate::disk;
use crate::error::FsError;
use crate::persist;
use crate::pool::{self, Memory, Pool};
use capio_cl::Storage;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The name of every memory object (in `/proc/<pid>/fd` links): one serves file after file.
const MEMFD_NAME: &str = "capio-data";

/// How a file's data object relates to the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backing {
    /// No name on disk: a memfd, or a hidden file already removed.
    Anonymous,
    /// A hidden `.<name>.capio-data-…` file somewhere inside the root.
    Hidden,
    /// The data file is the real file at the node's path (a persisted `storage: fs` file, or a
    /// persisted file whose memory was given back).
    InPlace,
    /// A committed file moved out of memory into an anonymous file of the spill directory.
    Spilled,
}

/// A new data object for the file at `path` (inside `root`): memory comes from `pool` first (the
/// `Memory` says what of a previous file it may still hold), then from the system.
pub fn create(
    root: &Path,
    path: &Path,
    storage: Storage,
    pool: Option<&mut Pool>,
) -> Result<(File, Backing, Option<Memory>), FsError> {
    match storage {
        Storage::Memory => {
            let (file, memory) = match pool.and_then(Pool::take) {
                Some(recycled) => recycled,
                None => pool::fresh(MEMFD_NAME)?,
            };
            Ok((file, Backing::Anonymous, Some(memory)))
        }
        Storage::Fs => Ok((hidden(root, path)?, Backing::Hidden, None)),
    }
}

/// A hidden data file in the file's directory, or — while that directory exists only in the
/// namespace (not committed yet) — in its nearest ancestor on disk, so an uncommitted directory
/// never shows up on disk because of its files.
fn hidden(root: &Path, path: &Path) -> Result<File, FsError> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(FsError::IsDir);
    };
    let dir = disk::nearest_dir(root, parent);
    crate::leftovers::note(&dir);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(dir.join(persist::data_name(name)))
        .map_err(FsError::from_lookup)?;
    Ok(file)
}

/// Where the hidden data file behind `data` is now, if it still has its hidden name there.
pub fn hidden_location(data: &File) -> Option<PathBuf> {
    let path = fs::read_link(format!("/proc/self/fd/{}", data.as_raw_fd())).ok()?;
    if !path.file_name().is_some_and(persist::is_data_name) {
        return None;
    }
    // The link text of a removed file ends in " (deleted)"; whatever is at that path now is
    // not ours unless it is the very same inode.
    let (here, ours) = (fs::symlink_metadata(&path).ok()?, data.metadata().ok()?);
    (here.dev() == ours.dev() && here.ino() == ours.ino()).then_some(path)
}

/// Remove the hidden data file's name (open descriptors keep working, as for any unlinked file).
pub fn remove_hidden(data: &File) -> io::Result<()> {
    match hidden_location(data) {
        Some(path) => match fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        },
        None => Ok(()),
    }
}

/// Drop a data object that never became a file: its hidden name, if any, goes with it.
pub fn discard(data: &File, backing: Backing) {
    if backing == Backing::Hidden {
        // Best effort: a leftover hidden name is skipped by listings and cleared with its directory.
        let _ = remove_hidden(data);
    }
}

/// Persist a hidden data file by renaming it to `dest` (inside `root`), cut to the published
/// `len` as a copy would be. `Ok(false)` when it has no hidden name any more: the caller copies.
pub fn rename_into_place(root: &Path, data: &File, dest: &Path, len: u64) -> Result<bool, FsError> {
    let (Some(parent), Some(name)) = (dest.parent(), dest.file_name()) else {
        return Err(FsError::IsDir);
    };
    let Some(from) = hidden_location(data) else {
        return Ok(false);
    };
    if data.metadata()?.len() > len {
        data.set_len(len)?;
    }
    let real_parent = disk::ensure_dir(root, parent)?;
    fs::rename(&from, real_parent.join(name)).map_err(FsError::from_lookup)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdir::TestDir;
    use std::os::unix::fs::FileExt;

    #[test]
    fn memory_files_have_no_name_on_disk() {
        let t = TestDir::new();
        let (f, backing, memory) = create(
            t.path(),
            &t.path().join("x"),
            Storage::Memory,
            Some(&mut Pool::default()),
        )
        .unwrap();
        assert_eq!(memory.map(|m| m.stale), Some(0));
        assert_eq!(backing, Backing::Anonymous);
        assert!(hidden_location(&f).is_none());
        assert_eq!(fs::read_dir(t.path()).unwrap().count(), 0);
    }

    #[test]
    fn fs_files_are_hidden_beside_their_path_and_renamed_into_place() {
        let t = TestDir::new();
        let root = t.path();
        fs::create_dir(root.join("d")).unwrap();
        let dest = root.join("d/out.bin");
        let (f, backing, _) = create(root, &dest, Storage::Fs, Some(&mut Pool::default())).unwrap();
        assert_eq!(backing, Backing::Hidden);
        let at = hidden_location(&f).unwrap();
        assert_eq!(at.parent(), Some(root.join("d").as_path()));
        assert!(
            disk::list(&root.join("d")).unwrap().is_empty(),
            "not listed"
        );
        f.write_all_at(b"payload+unpublished", 0).unwrap();

        // The directory moves; the data file is still found through its descriptor.
        fs::rename(root.join("d"), root.join("e")).unwrap();
        let dest = root.join("e/out.bin");
        assert!(rename_into_place(root, &f, &dest, 7).unwrap());
        assert_eq!(fs::read(&dest).unwrap(), b"payload");
        assert_eq!(fs::read_dir(root.join("e")).unwrap().count(), 1);
        assert!(hidden_location(&f).is_none(), "now it is the real file");
        assert!(!rename_into_place(root, &f, &dest, 7).unwrap());
    }

    #[test]
    fn a_file_in_a_directory_not_on_disk_is_hidden_in_the_nearest_one_and_removable() {
        let t = TestDir::new();
        let root = t.path();
        let pool = &mut Pool::default();
        let (f, _, _) = create(root, &root.join("ns-only/sub/f"), Storage::Fs, Some(pool)).unwrap();
        assert_eq!(hidden_location(&f).unwrap().parent(), Some(root));
        remove_hidden(&f).unwrap();
        assert_eq!(fs::read_dir(root).unwrap().count(), 0);
        f.write_all_at(b"still usable", 0).unwrap();
        remove_hidden(&f).unwrap();
    }
}
