//! Status-only replies, shared by the handlers whose reply is just `-errno` or 0.

use crate::connection::Reply;
use crate::error::FsError;
use crate::log::debug;
use crate::namespace::ClientId;
use capio_proto::{Request, StatusReply, WireError};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

/// The reply of a request answered by a status alone.
pub(super) fn status<R: Request<Reply = StatusReply>>(code: i32) -> Result<Reply, WireError> {
    Reply::new::<R>(
        &StatusReply {
            status: code,
            _pad: 0,
        },
        &[],
    )
}

pub(super) fn reply_status<R: Request<Reply = StatusReply>>(
    client: ClientId,
    path: &[u8],
    result: Result<(), FsError>,
) -> Result<Reply, WireError> {
    match result {
        Ok(()) => status::<R>(0),
        Err(e) => {
            debug!(
                "client {client}: {:?} {:?}: {e}",
                R::KIND,
                OsStr::from_bytes(path)
            );
            status::<R>(-e.errno())
        }
    }
}
