//! Status-only replies, shared by the handlers whose reply is just `-errno` or 0.

use crate::connection::Reply;
use crate::error::FsError;
use crate::log::debug;
use crate::namespace::ClientId;
use capio_proto::{Kind, StatusReply, WireError};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

pub(super) fn status(kind: Kind, code: i32) -> Result<Reply, WireError> {
    Reply::new(
        kind,
        &StatusReply {
            status: code,
            _pad: 0,
        },
        &[],
    )
}

pub(super) fn reply_status(
    kind: Kind,
    client: ClientId,
    path: &[u8],
    result: Result<(), FsError>,
) -> Result<Reply, WireError> {
    match result {
        Ok(()) => status(kind, 0),
        Err(e) => {
            debug!(
                "client {client}: {kind:?} {:?}: {e}",
                OsStr::from_bytes(path)
            );
            status(kind, -e.errno())
        }
    }
}
