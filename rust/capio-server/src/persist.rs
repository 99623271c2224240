//! Atomic persistence of committed files: copy the published bytes into a temp file beside the real
//! path, then rename it over the real path, which therefore only ever shows complete content.
//! This is the only place the server copies file data, and the one consumer of the commits a
//! namespace operation returns (`all`).

use crate::disk;
use crate::error::FsError;
use crate::log::{debug, error};
use crate::namespace::Commit;
use crate::shared::{Shared, WorkGuard};
use capio_proto::{runtime, sys};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

const TEMP_MARK: &[u8] = b".capio-tmp-";
/// Marks the hidden data file of a file with CAPIO-CL `storage: fs` (see `backing`).
const DATA_MARK: &[u8] = b".capio-data-";
/// Keeps hidden names under `NAME_MAX` however long the real name is.
const STEM_MAX: usize = 200;

/// Persist `commits` (what a namespace operation caused) while `work` keeps shutdown waiting;
/// without it the server is draining and the shutdown report names what is left. The thread
/// whose request committed a file is the one that persists it, before it replies. Returns the
/// first error as `-errno`, or 0.
pub fn all(
    server: &Shared,
    commits: impl IntoIterator<Item = Commit>,
    work: Option<&WorkGuard>,
) -> i32 {
    let mut first_error = 0;
    for (path, generation) in commits.into_iter().filter(|_| work.is_some()) {
        if let Err(e) = one(server, &path, generation) {
            error!("cannot persist {}: {e}", path.display());
            if first_error == 0 {
                first_error = -e.errno();
            }
        }
    }
    first_error
}

fn one(server: &Shared, path: &Path, generation: u64) -> Result<(), FsError> {
    // The copy runs outside the namespace lock; only the superseded-check and rename hold it.
    let Some(job) = server.ns().persist_job(path, generation)? else {
        return Ok(());
    };
    if job.in_place {
        match server.ns().install_in_place(&job) {
            Ok(true) => {
                debug!("persisted {} in place ({} bytes)", path.display(), job.len);
                return Ok(());
            }
            Ok(false) => {}
            // Say, a mount point between the data file and its real path: copy instead.
            Err(e) => debug!("cannot rename {} into place ({e}); copying", path.display()),
        }
    }
    let temp = write_temp(&job)?;
    if server.ns().install(&job, temp)? {
        debug!("persisted {} ({} bytes)", path.display(), job.len);
    }
    Ok(())
}

/// One committed file to write out; built under the namespace lock, run outside it.
#[derive(Debug)]
pub struct Job {
    pub path: PathBuf,
    /// Canonical CAPIO directory of the file's creator: nothing is written outside it.
    pub root: PathBuf,
    pub slot: u32,
    /// The file's commit generation when the job was made; a later commit supersedes it.
    pub generation: u64,
    /// A duplicate of the file's memfd.
    pub data: File,
    pub len: u64,
    /// The data is a hidden file on disk (`storage: fs`): persisting it is a rename, not a copy.
    pub in_place: bool,
}

/// A fully written temp file; removed on drop unless installed.
#[derive(Debug)]
pub struct Temp {
    path: PathBuf,
    dest: PathBuf,
    installed: bool,
}

impl Temp {
    /// Rename over the real path.
    pub fn install(mut self) -> io::Result<()> {
        fs::rename(&self.path, &self.dest)?;
        self.installed = true;
        // The rename itself must survive a crash of the node too; the data was synced before.
        if let Some(dir) = self.dest.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        if !self.installed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Copy the job's bytes into a temp file in the real parent directory (created if missing, never
/// through a symlink that leaves the root).
pub fn write_temp(job: &Job) -> Result<Temp, FsError> {
    let (Some(parent), Some(name)) = (job.path.parent(), job.path.file_name()) else {
        return Err(FsError::IsDir);
    };
    let real_parent = disk::ensure_dir(&job.root, parent)?;
    crate::leftovers::note(&real_parent);
    let temp = Temp {
        path: real_parent.join(temp_name(name)),
        dest: real_parent.join(name),
        installed: false,
    };
    // Mode, owner and times as the file has them now (before the copy reads it and moves its
    // access time); applied once the bytes are in.
    let meta = job.data.metadata()?;
    let out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp.path)?;
    // Read through a fresh open file description with `O_NOATIME`, so persisting is not an access
    // a later `stat` shows; where the mode forbids reading (a reopen checks it), through the data
    // object itself, without moving the offset every client holding it shares.
    let fresh = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOATIME)
        .open(format!("/proc/self/fd/{}", job.data.as_raw_fd()));
    let src = match &fresh {
        Ok(file) => file.as_fd(),
        Err(_) => job.data.as_fd(),
    };
    let copied = sys::copy_from_start(src, out.as_fd(), job.len)?;
    if copied != job.len {
        return Err(FsError::Io(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "{} shrank to {copied} of {} bytes while being persisted",
                job.path.display(),
                job.len
            ),
        )));
    }
    apply_metadata(&out, &meta, &job.path)?;
    // Durable before it is renamed into place: after a crash of the node the real path shows the
    // complete file or the old one, never an empty or partial one.
    out.sync_all()?;
    Ok(temp)
}

/// Give the disk copy the file's mode and times, and its owner where this process may (as root;
/// a non-root server keeps the owner and any group it is not a member of, as `cp -p` does).
/// The times go last: nothing after them writes the copy, and `rename` keeps them.
pub fn apply_metadata(out: &File, meta: &fs::Metadata, path: &Path) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let mine = out.metadata()?;
    if (meta.uid(), meta.gid()) != (mine.uid(), mine.gid()) {
        let owner = sys::Attrs {
            owner: Some((meta.uid(), meta.gid())),
            ..sys::Attrs::default()
        };
        if let Err(e) = sys::set_attrs_fd(out.as_fd(), &owner) {
            crate::log::debug!("{}: owner not kept on disk: {e}", path.display());
        }
    }
    sys::set_attrs_fd(
        out.as_fd(),
        &sys::Attrs {
            mode: Some(meta.mode() & 0o7777),
            ..disk::same_times(meta)
        },
    )
}

/// `.<name>.capio-tmp-<pid>-<n>`: hidden, unique per server and write, and recognisable by
/// [`is_temp_name`] so listings never show it.
pub fn temp_name(name: &OsStr) -> OsString {
    marked_name(name, TEMP_MARK)
}

pub fn is_temp_name(name: &OsStr) -> bool {
    has_mark(name, TEMP_MARK)
}

/// `.<name>.capio-data-<pid>-<n>`: the hidden data file of a `storage: fs` file.
pub fn data_name(name: &OsStr) -> OsString {
    marked_name(name, DATA_MARK)
}

pub fn is_data_name(name: &OsStr) -> bool {
    has_mark(name, DATA_MARK)
}

/// A name the server made for its own use (a persistence temp, a hidden data file, a multi-node
/// workflow's marker): never listed, and it does not keep a directory from counting as empty.
pub fn is_internal_name(name: &OsStr) -> bool {
    is_temp_name(name) || is_data_name(name) || runtime::is_cluster_marker_name(name.as_bytes())
}

fn marked_name(name: &OsStr, mark: &[u8]) -> OsString {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let stem = &name.as_bytes()[..name.len().min(STEM_MAX)];
    let mut out = Vec::with_capacity(stem.len() + 40);
    out.push(b'.');
    out.extend_from_slice(stem);
    out.extend_from_slice(mark);
    out.extend_from_slice(format!("{}-{n}", std::process::id()).as_bytes());
    OsString::from_vec(out)
}

/// The pid of the server that made an internal name (the `<pid>` of `…capio-tmp-<pid>-<n>`).
pub fn owner_pid(name: &OsStr) -> Option<u32> {
    if !is_internal_name(name) {
        return None;
    }
    let b = name.as_bytes();
    let dash = b.iter().rposition(|&c| c == b'-')?;
    let start = b[..dash].iter().rposition(|&c| c == b'-')? + 1;
    std::str::from_utf8(&b[start..dash]).ok()?.parse().ok()
}

fn has_mark(name: &OsStr, mark: &[u8]) -> bool {
    let b = name.as_bytes();
    if b.first() != Some(&b'.') {
        return false;
    }
    let Some(at) = b.windows(mark.len()).rposition(|w| w == mark) else {
        return false;
    };
    let tail = &b[at + mark.len()..];
    let mut parts = tail.split(|&c| c == b'-');
    let digits =
        |p: Option<&[u8]>| p.is_some_and(|p| !p.is_empty() && p.iter().all(u8::is_ascii_digit));
    digits(parts.next()) && digits(parts.next()) && parts.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdir::TestDir;
    use std::io::Write;

    fn job(root: &Path, path: PathBuf, bytes: &[u8], len: u64) -> Job {
        let mut data = File::from(capio_proto::sys::memfd("test").unwrap());
        data.write_all(bytes).unwrap();
        Job {
            path,
            root: root.to_path_buf(),
            slot: 1,
            generation: 1,
            data,
            len,
            in_place: false,
        }
    }

    #[test]
    fn temp_names_are_recognised() {
        let n = temp_name(OsStr::new("out.txt"));
        assert!(is_temp_name(&n), "{n:?}");
        assert!(is_temp_name(&temp_name(OsStr::from_bytes(&[b'x'; 255]))));
        assert!(temp_name(OsStr::from_bytes(&[b'x'; 255])).len() < 255);
        let d = data_name(OsStr::new("out.txt"));
        assert!(
            is_data_name(&d) && !is_temp_name(&d) && is_internal_name(&d),
            "{d:?}"
        );
        assert!(!is_data_name(&n) && is_internal_name(&n));
        let me = Some(std::process::id());
        assert_eq!((owner_pid(&n), owner_pid(&d)), (me, me));
        assert_eq!(owner_pid(OsStr::new(".a-b.capio-tmp-77-3")), Some(77));
        assert_eq!(owner_pid(OsStr::new("a-1-2")), None);
        for plain in [
            ".capio-tmp-",
            "out.txt",
            ".x.capio-tmp-1",
            ".x.capio-tmp-1-a",
            "x.capio-tmp-1-2",
        ] {
            assert!(!is_temp_name(OsStr::new(plain)), "{plain}");
        }
    }

    #[test]
    fn persists_exactly_the_published_bytes_atomically() {
        let t = TestDir::new();
        let root = t.path().to_path_buf();
        let dest = root.join("sub/dir/out.bin");
        let j = job(&root, dest.clone(), b"hello world, unpublished tail", 11);
        let temp = write_temp(&j).unwrap();
        assert!(
            !dest.exists(),
            "the real path shows nothing before the rename"
        );
        assert!(is_temp_name(temp.path().file_name().unwrap()));
        temp.install().unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"hello world");
        assert_eq!(fs::read_dir(root.join("sub/dir")).unwrap().count(), 1);
    }

    #[test]
    fn a_dropped_temp_leaves_nothing_and_escapes_are_refused() {
        let t = TestDir::new();
        let root = t.path().join("root");
        fs::create_dir(&root).unwrap();
        drop(write_temp(&job(&root, root.join("a"), b"abc", 3)).unwrap());
        assert_eq!(fs::read_dir(&root).unwrap().count(), 0);
        std::os::unix::fs::symlink(t.path(), root.join("up")).unwrap();
        assert!(matches!(
            write_temp(&job(&root, root.join("up/a"), b"abc", 3)),
            Err(FsError::OutsideRoot)
        ));
        let short = job(&root, root.join("b"), b"ab", 3);
        assert!(write_temp(&short).is_err());
        assert_eq!(fs::read_dir(&root).unwrap().count(), 1);
    }
}
