//! `Rename`: move a file or directory within the CAPIO directory.

use super::reply::reply_status;
use crate::connection::Reply;
use crate::error::FsError;
use crate::namespace::{ClientId, Done};
use crate::paths;
use crate::persist;
use crate::shared::Shared;
use capio_proto::{RenameReq, WireError, split_rename_tail};

/// `Rename`: a committed file whose persist had not landed yet is persisted under its new path
/// before the reply, as `Exit` would have done under the old one. A failed persist does not undo
/// the rename, so the reply still reports success; the error is logged, and the file is named at
/// shutdown as not persisted.
pub fn rename(
    server: &Shared,
    client: ClientId,
    (req, tail): (RenameReq, &[u8]),
) -> Result<Reply, WireError> {
    let (src, dst) = split_rename_tail(&req, tail).ok_or(WireError::Truncated {
        need: req.src_len as usize,
        got: tail.len(),
    })?;
    let work = server.begin_work();
    let names = match req.flags {
        0 => paths::parse(src).and_then(|s| Ok((s, paths::parse(dst)?))),
        flags => Err(FsError::BadFlags(flags)),
    };
    let Done { result, caused } =
        names.map_or_else(Done::refused, |(s, d)| server.ns().rename(client, &s, &d));
    persist::all(server, caused, work.as_ref());
    Ok(reply_status::<RenameReq>(client, src, result)?.holding(work))
}
