//! Stat and attribute changes, of an fd (from its data object and slot) and of a path (asked of
//! the server).

use crate::error::{ClientError, Result};
use capio_proto::{LstatReq, NodeKind, SetAttrReq, SlotState, StatReq, sys};
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::SeqCst;

use super::Client;

#[derive(Clone, Copy, Debug)]
pub struct FileStat {
    pub is_dir: bool,
    pub size: u64,
    pub mtime_ns: i64,
    /// Permission bits.
    pub mode: u32,
    pub committed: bool,
    pub atime_ns: i64,
    pub ctime_ns: i64,
    pub uid: u32,
    pub gid: u32,
    /// The `S_IFMT` bits of `st_mode`.
    pub file_type: u32,
    pub nlink: u32,
    /// `st_ino`/`st_dev` of the file's data object or disk node (see `reported_identity`).
    pub ino: u64,
    pub dev: u64,
}

fn ns(s: i64, n: i64) -> i64 {
    s.saturating_mul(1_000_000_000).saturating_add(n)
}

impl Client {
    pub fn fstat(&self, fd: RawFd) -> Result<FileStat> {
        use std::os::unix::fs::MetadataExt;
        let h = self.handle(fd)?;
        let meta = h
            .file
            .metadata()
            .map_err(|e| ClientError::from_io(e, h.path.clone()))?;
        let (size, committed) = match h.slot {
            Some(i) => {
                let s = self.slot(i)?;
                (s.len.load(SeqCst), s.state() == SlotState::Committed)
            }
            None => (meta.len(), true),
        };
        // As the server's `stat` of the file: a memory data object on the directory's device.
        let (dev, ino) = match h.slot {
            Some(_) => capio_proto::reported_identity(meta.dev(), meta.ino(), self.root_dev()),
            None => (meta.dev(), meta.ino()),
        };
        // The data object's inode carries the file's mode, owner and times (see the server).
        Ok(FileStat {
            is_dir: false,
            size,
            mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
            mode: meta.mode() & 0o7777,
            committed,
            atime_ns: ns(meta.atime(), meta.atime_nsec()),
            ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
            uid: meta.uid(),
            gid: meta.gid(),
            file_type: libc::S_IFREG,
            // A memfd has no name; a committed input on disk has its own links.
            nlink: if h.slot.is_some() {
                1
            } else {
                u32::try_from(meta.nlink()).unwrap_or(u32::MAX)
            },
            ino,
            dev,
        })
    }

    /// Stat a path inside the CAPIO directory; never waits. With `follow == false`, a final
    /// symbolic link (on disk) is reported itself, as `lstat` does.
    pub fn stat_at(&self, path: &Path, follow: bool) -> Result<FileStat> {
        let abs = self.require_capio_path(path)?;
        let tail = abs.as_os_str().as_bytes();
        let r = if follow {
            self.conn().call(&StatReq {}, tail)
        } else {
            self.conn().call(&LstatReq {}, tail)
        }?
        .check(path)?
        .fixed;
        Ok(FileStat {
            is_dir: r.node_kind().ok() == Some(NodeKind::Dir),
            size: r.size,
            mtime_ns: r.mtime_ns,
            mode: r.mode,
            committed: r.committed != 0,
            atime_ns: r.atime_ns,
            ctime_ns: r.ctime_ns,
            uid: r.uid,
            gid: r.gid,
            file_type: r.file_type,
            nlink: r.nlink,
            ino: r.ino,
            dev: r.dev,
        })
    }

    /// Stat a path inside the CAPIO directory; never waits.
    pub fn stat(&self, path: &Path) -> Result<FileStat> {
        self.stat_at(path, true)
    }

    /// Change a path's mode, owner or times (`chmod`, `chown`, `utimensat`); with `follow ==
    /// false` a final symbolic link itself.
    pub fn set_attrs(&self, path: &Path, attrs: &sys::Attrs, follow: bool) -> Result<()> {
        let abs = self.require_capio_path(path)?;
        let req = SetAttrReq::new(attrs, !follow);
        self.conn()
            .call(&req, abs.as_os_str().as_bytes())?
            .check(path)?;
        Ok(())
    }

    /// `fchmod`, `fchown`, `futimens` of a CAPIO fd: applied to the file it holds (the kernel
    /// keeps them there, and checks the caller's permissions as for any file).
    pub fn set_fd_attrs(&self, fd: RawFd, attrs: &sys::Attrs) -> Result<()> {
        use std::os::fd::AsFd;
        let h = self.handle(fd)?;
        sys::set_attrs_fd(h.file.as_fd(), attrs)
            .map_err(|e| ClientError::from_io(e, None::<PathBuf>))
    }
}
