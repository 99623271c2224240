//! Stat and attribute changes, of an fd (from its data object and slot) and of a path (asked of
//! the server).

use crate::error::{ClientError, Result};
use capio_proto::{LstatReq, NodeKind, NodeStat, SetAttrReq, SlotState, StatReq, sys};
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::Client;

/// What the client reports for a stat: the protocol's one stat type, whether the server or an fd's
/// own data object answered.
pub type FileStat = NodeStat;

impl Client {
    pub fn fstat(&self, fd: RawFd) -> Result<FileStat> {
        use std::os::unix::fs::MetadataExt;
        let h = self.handle(fd)?;
        let meta = h
            .file
            .metadata()
            .map_err(|e| ClientError::from_io(e, h.path.clone()))?;
        let (size, state) = match h.slot {
            Some(i) => {
                let s = self.slot(i)?;
                (h.live_len(s)?, s.state())
            }
            None => (meta.len(), SlotState::Committed),
        };
        // The data object's inode carries the file's mode, owner and times (see the server).
        if h.namespace_file {
            return Ok(self.memory_stat(&(&meta).into(), size, state));
        }
        // A committed input on disk: its own identity and links.
        Ok(NodeStat {
            size,
            file_type: libc::S_IFREG,
            nlink: u32::try_from(meta.nlink()).unwrap_or(u32::MAX),
            ..NodeStat::of_meta(NodeKind::File, &meta, true)
        })
    }

    /// Stat a path inside the CAPIO directory; never waits. With `follow == false`, a final
    /// symbolic link (on disk) is reported itself, as `lstat` does.
    pub fn stat_at(&self, path: &Path, follow: bool) -> Result<FileStat> {
        let abs = self.require_capio_path(path)?;
        if let Some(answer) = self.stat_local(&abs, path) {
            return answer;
        }
        let tail = abs.as_os_str().as_bytes();
        let r = if follow {
            self.conn().call(&StatReq {}, tail)
        } else {
            self.conn().call(&LstatReq {}, tail)
        }?
        .check(path)?
        .fixed;
        Ok(r.stat()?)
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
        let applied = sys::set_attrs_fd(h.file.as_fd(), attrs);
        // What the server published of the file's attributes holds no more (see `SlotAttrs`).
        if let Some(slot) = h.slot.or(h.offered.map(|(slot, _)| slot)) {
            self.attrs_changed(slot);
        }
        applied.map_err(|e| ClientError::from_io(e, None::<PathBuf>))
    }
}
