//! Where committed files go when memory is full: anonymous files (`O_TMPFILE`) in a spill
//! directory (`--spill-dir`, default the node's temp directory), so nothing is left on disk
//! however the server ends. A file system without `O_TMPFILE` gets named files removed at once;
//! the next server removes what a killed one left in that instant.

use crate::persist;
use capio_proto::sys;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The stem of a named spill file: `.capio-spill-<pid>-<n>`.
const NAMED: &str = ".capio-spill-";

pub struct SpillDir {
    dir: PathBuf,
    next: AtomicU64,
}

impl SpillDir {
    /// `pycapio-spill-<uid>` under `parent`, made 0700 (an existing one must be this user's and
    /// private); named spill files of servers that are gone are removed.
    pub fn open(parent: &Path) -> io::Result<SpillDir> {
        let uid = sys::getuid();
        let dir = parent.join(format!("pycapio-spill-{uid}"));
        match DirBuilder::new().mode(0o700).create(&dir) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
        let meta = fs::symlink_metadata(&dir)?;
        if !meta.is_dir() || meta.uid() != uid {
            return Err(io::Error::other(format!(
                "{} is not a directory of this user",
                dir.display()
            )));
        }
        if meta.permissions().mode() & 0o077 != 0 {
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
        }
        remove_orphans(&dir);
        Ok(SpillDir {
            dir,
            next: AtomicU64::new(0),
        })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// A new anonymous file here holding the first `len` bytes of `src`, with its mode and times.
    pub fn copy(&self, src: &File, len: u64) -> io::Result<File> {
        let out = self.anonymous()?;
        let copied = sys::copy_from_start(src.as_fd(), out.as_fd(), len)?;
        if copied != len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("a file shrank to {copied} of {len} bytes while being spilled"),
            ));
        }
        persist::apply_metadata(&out, &src.metadata()?, &self.dir)?;
        Ok(out)
    }

    fn anonymous(&self) -> io::Result<File> {
        let tmpfile = OpenOptions::new()
            .read(true)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_TMPFILE)
            .open(&self.dir);
        match tmpfile {
            Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EISDIR)) => {
                let n = self.next.fetch_add(1, Relaxed);
                let path = self.dir.join(format!("{NAMED}{}-{n}", std::process::id()));
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)?;
                fs::remove_file(&path)?;
                Ok(file)
            }
            other => other,
        }
    }
}

/// Remove named spill files whose server is not running.
fn remove_orphans(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(NAMED)) else {
            continue;
        };
        let pid = rest.split('-').next().and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| !sys::process_alive(p)) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdir::TestDir;
    use std::os::unix::fs::FileExt;

    #[test]
    fn a_spilled_copy_has_the_bytes_and_no_name() {
        let t = TestDir::new();
        let spill = SpillDir::open(t.path()).unwrap();
        let mode = fs::metadata(spill.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let src = File::from(sys::memfd("capio-test").unwrap());
        src.write_all_at(b"0123456789", 0).unwrap();
        src.set_permissions(fs::Permissions::from_mode(0o640))
            .unwrap();
        let copy = spill.copy(&src, 7).unwrap();
        let mut buf = vec![0; 7];
        copy.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(buf, b"0123456");
        assert_eq!(copy.metadata().unwrap().len(), 7);
        assert_eq!(copy.metadata().unwrap().permissions().mode() & 0o777, 0o640);
        assert_eq!(fs::read_dir(spill.path()).unwrap().count(), 0);
    }

    #[test]
    fn named_files_of_gone_servers_are_removed() {
        let t = TestDir::new();
        let dir = SpillDir::open(t.path()).unwrap().path().to_path_buf();
        let mine = dir.join(format!("{NAMED}{}-0", std::process::id()));
        let gone = dir.join(format!("{NAMED}4194305-0"));
        fs::write(&mine, b"x").unwrap();
        fs::write(&gone, b"x").unwrap();
        SpillDir::open(t.path()).unwrap();
        assert!(mine.exists() && !gone.exists());
    }
}
