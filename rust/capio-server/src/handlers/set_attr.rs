//! `SetAttr`: change a path's mode, owner or times.

use super::reply::reply_status;
use crate::connection::Reply;
use crate::error::FsError;
use crate::namespace::ClientId;
use crate::paths;
use crate::server::Server;
use capio_proto::{SetAttrReq, WireError, attr_flags};

/// `SetAttr`: `chmod`, `chown`, `utimensat` of a path.
pub fn set_attrs(
    server: &Server,
    client: ClientId,
    (req, tail): (SetAttrReq, &[u8]),
) -> Result<Reply, WireError> {
    let result = match req.attrs() {
        None => Err(FsError::BadFlags(req.flags)),
        Some(attrs) => paths::parse(tail).and_then(|p| {
            server
                .ns()
                .set_attrs(client, &p, &attrs, req.flags & attr_flags::NOFOLLOW != 0)
        }),
    };
    reply_status::<SetAttrReq>(client, tail, result)
}
