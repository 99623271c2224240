//! `Unlink`: remove a file.

use super::reply::reply_status;
use crate::connection::Reply;
use crate::namespace::ClientId;
use crate::paths;
use crate::server::Server;
use capio_proto::{UnlinkReq, WireError};

pub fn unlink(
    server: &Server,
    client: ClientId,
    (_, tail): (UnlinkReq, &[u8]),
) -> Result<Reply, WireError> {
    let result = paths::parse(tail).and_then(|p| server.ns().unlink(client, &p));
    reply_status::<UnlinkReq>(client, tail, result)
}
