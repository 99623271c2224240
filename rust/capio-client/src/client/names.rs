//! Namespace operations asked of the server: mkdir, listing (waiting for a directory to be
//! complete), unlink, rmdir, rename, and whether a hard link may be made.

use crate::error::{ClientError, Result};
use crate::paths::rename_ends;
use capio_proto::{
    EntryKind, Fire, ListReply, ListReq, MkdirReq, Request, RmdirReq, StatusReply, UnlinkReq,
    rename_tail, sys,
};
use std::collections::HashSet;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::Client;
use super::wait::TO_BE_CREATED;

/// A directory entry: its name and its kind (`EntryKind::is_dir` tells a directory, following a
/// symbolic link).
pub type DirEntry = (Vec<u8>, EntryKind);

impl Client {
    pub fn mkdir(&self, path: &Path, mode: u32) -> Result<()> {
        let abs = self.require_capio_path(path)?;
        let mode = mode & !sys::current_umask();
        let req = MkdirReq { mode, _pad: 0 };
        self.conn()
            .call(&req, abs.as_os_str().as_bytes())?
            .check(path)?;
        Ok(())
    }

    fn list_once(&self, path: &Path) -> Result<(ListReply, Vec<DirEntry>)> {
        let abs = self.require_capio_path(path)?;
        let reply = self
            .conn()
            .call(&ListReq {}, abs.as_os_str().as_bytes())?
            .check(path)?;
        let entries = capio_proto::parse_entries(reply.tail())?
            .into_iter()
            .map(|(k, n)| (n.to_vec(), k))
            .collect();
        Ok((reply.fixed, entries))
    }

    /// The entries of a directory inside the CAPIO directory, once it is complete: a reader that
    /// does not produce it waits for its commit (both fire rules: a list cannot grow later).
    pub fn listdir(
        &self,
        path: &Path,
        interrupt: &mut dyn FnMut() -> bool,
    ) -> Result<Vec<DirEntry>> {
        let (entries, _) = self.list_new(path, &HashSet::new(), false, interrupt)?;
        Ok(entries)
    }

    /// The entries not in `seen`, and whether the directory is complete. With `stream` and a
    /// `no_update` directory this returns as soon as there is a new entry; otherwise it waits for
    /// the directory's commit (a producer of the directory never waits).
    pub fn list_new(
        &self,
        path: &Path,
        seen: &HashSet<Vec<u8>>,
        stream: bool,
        interrupt: &mut dyn FnMut() -> bool,
    ) -> Result<(Vec<DirEntry>, bool)> {
        let waiter = self.waiter();
        loop {
            let (r, entries) = self.list_once(path)?;
            let fresh: Vec<DirEntry> = entries
                .into_iter()
                .filter(|(n, _)| !seen.contains(n))
                .collect();
            let complete = r.committed != 0 || r.producer != 0;
            let fire = r.fire_rule()?;
            if complete || (stream && fire == Fire::NoUpdate && !fresh.is_empty()) {
                return Ok((fresh, complete));
            }
            let what = if r.missing != 0 {
                TO_BE_CREATED
            } else if fire == Fire::NoUpdate {
                "to have new entries"
            } else {
                "to be committed"
            };
            waiter.sleep_on(self.table.namespace(), r.generation, path, what, interrupt)?;
        }
    }

    /// Remove a file (`unlink(2)`); fds already open on it keep working.
    pub fn unlink(&self, path: &Path) -> Result<()> {
        self.path_request(&UnlinkReq {}, path)
    }

    /// Remove an empty directory (`rmdir(2)`).
    pub fn rmdir(&self, path: &Path) -> Result<()> {
        self.path_request(&RmdirReq {}, path)
    }

    /// A request whose body is only the path and whose reply is only a status.
    fn path_request<R: Request<Reply = StatusReply>>(&self, req: &R, path: &Path) -> Result<()> {
        let abs = self.require_capio_path(path)?;
        self.conn()
            .call(req, abs.as_os_str().as_bytes())?
            .check(path)?;
        Ok(())
    }

    /// Move `src` to `dst` like `rename(2)` / `os.replace`, replacing an existing file at `dst`;
    /// `EXDEV` whenever exactly one end is outside the CAPIO directory (the C API's contract).
    pub fn rename(&self, src: &Path, dst: &Path) -> Result<()> {
        let (from, to) = rename_ends(
            self.capio_path(src),
            self.capio_path(dst),
            src,
            &self.scope.real,
        )?;
        self.rename_inside(&from, &to, src)
    }

    /// `os.rename`'s answer: as `rename`, but in rename(2)'s order, so a missing source is
    /// `ENOENT` before a crossing of the boundary is `EXDEV`. `dst` None: a name outside the CAPIO
    /// directory that only a dir_fd locates.
    pub fn rename_as_os(&self, src: &Path, dst: Option<&Path>) -> Result<()> {
        let to = dst.and_then(|d| self.capio_path(d));
        match rename_ends(self.capio_path(src), to, src, &self.scope.real) {
            Ok((from, to)) => self.rename_inside(&from, &to, src),
            Err(e) if e.errno() == libc::EXDEV && !self.lexists(src) => {
                Err(ClientError::os(libc::ENOENT, src.to_path_buf()))
            }
            Err(e) => Err(e),
        }
    }

    fn rename_inside(&self, from: &Path, to: &Path, src: &Path) -> Result<()> {
        let (req, tail) = rename_tail(from.as_os_str().as_bytes(), to.as_os_str().as_bytes())?;
        self.conn().call(&req, &tail)?.check(src)?;
        Ok(())
    }

    /// Whether `path` names anything (a final symbolic link itself): CAPIO answers for its paths,
    /// the OS for the others.
    pub fn lexists(&self, path: &Path) -> bool {
        if self.capio_path(path).is_some() {
            self.stat_at(path, false).is_ok()
        } else {
            std::fs::symlink_metadata(path).is_ok()
        }
    }

    /// Whether `link(2)` from `src` to `dst` may go to the OS, as it may for a file on disk (in the
    /// CAPIO directory or not) to a name CAPIO does not hold. A file CAPIO holds in memory cannot
    /// get a second name: the error, in link(2)'s order, is the source's own, `EEXIST` for a taken
    /// name, `ENOENT` for a new name ending in "/", then `EPERM` inside the CAPIO directory (a
    /// file system without hard links) or `EXDEV` outside it. `src`/`dst` None: a name outside
    /// the CAPIO directory that only a dir_fd locates.
    pub fn link_check(&self, src: Option<&Path>, dst: Option<&Path>, follow: bool) -> Result<()> {
        let from = src.filter(|p| self.capio_path(p).is_some());
        let to = dst.filter(|p| self.capio_path(p).is_some());
        let taken = || {
            let src = src.map(Path::to_path_buf);
            Err(ClientError::os(libc::EEXIST, src))
        };
        let Some(from) = from.filter(|f| std::fs::symlink_metadata(f).is_err()) else {
            return if to.is_some_and(|t| self.lexists(t)) {
                taken()
            } else {
                Ok(())
            };
        };
        self.stat_at(from, follow)?;
        if to.is_some_and(|t| self.lexists(t)) {
            return taken();
        }
        let slashed = dst.is_some_and(|d| d.as_os_str().as_bytes().ends_with(b"/"));
        if slashed && (to.is_some() || dst.is_some_and(|d| std::fs::symlink_metadata(d).is_err())) {
            return Err(ClientError::os(libc::ENOENT, from.to_path_buf()));
        }
        let errno = if to.is_some() {
            libc::EPERM
        } else {
            libc::EXDEV
        };
        Err(ClientError::os(errno, from.to_path_buf()))
    }
}
