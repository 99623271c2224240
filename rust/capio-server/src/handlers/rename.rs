//! `Rename`: move a file or directory within the CAPIO directory.

use super::commits::{persist_all, with_commits};
use super::reply::{reply_status, status};
use crate::connection::Reply;
use crate::error::FsError;
use crate::namespace::ClientId;
use crate::paths;
use crate::server::Server;
use capio_proto::{Kind, RenameReq, WireError, decode, split_rename_tail};

/// `Rename`: a committed file whose persist had not landed yet is persisted under its new path
/// before the reply, as `Exit` would have done under the old one. A failed persist does not undo
/// the rename, so the reply still reports success; the error is logged, and the file is named at
/// shutdown as not persisted.
pub fn rename(server: &Server, client: ClientId, body: &[u8]) -> Result<Reply, WireError> {
    let (req, tail): (RenameReq, _) = decode(body)?;
    let (src, dst) = split_rename_tail(&req, tail).ok_or(WireError::Truncated {
        need: req.src_len as usize,
        got: tail.len(),
    })?;
    let work = server.begin_work();
    let (result, commits) = with_commits(server, |ns| {
        if req.flags != 0 {
            return Err(FsError::BadFlags(req.flags));
        }
        paths::parse(src).and_then(|s| ns.rename(client, &s, &paths::parse(dst)?))
    });
    persist_all(server, commits, work.as_ref());
    let pending = match result {
        Ok(pending) => pending,
        Err(e) => return reply_status(Kind::Rename, client, src, Err(e)),
    };
    persist_all(server, pending, work.as_ref());
    Ok(status(Kind::Rename, 0)?.holding(work))
}
