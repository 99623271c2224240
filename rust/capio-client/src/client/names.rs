//! Namespace operations asked of the server: mkdir, listing (waiting for a directory to be
//! complete), unlink, rmdir and rename.

use crate::error::{ClientError, Result};
use crate::paths::rename_ends;
use capio_proto::{
    EntryKind, Fire, ListReply, ListReq, MkdirReq, Request, RmdirReq, StatusReply, UnlinkReq,
    rename_tail, sys,
};
use std::collections::HashSet;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

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

    /// Move `src` to `dst` like `rename(2)` / `os.replace`, replacing an existing file at `dst`.
    pub fn rename(&self, src: &Path, dst: &Path) -> Result<()> {
        let cwd = std::env::current_dir().map_err(|e| ClientError::from_io(e, None::<PathBuf>))?;
        let (from, to) = rename_ends(&self.scope, &cwd, src, dst)?;
        let (req, tail) = rename_tail(from.as_os_str().as_bytes(), to.as_os_str().as_bytes())?;
        self.conn().call(&req, &tail)?.check(src)?;
        Ok(())
    }
}
