//! `Rmdir`: remove an empty directory.

use super::reply::reply_status;
use crate::connection::Reply;
use crate::namespace::ClientId;
use crate::paths;
use crate::server::Server;
use capio_proto::{RmdirReq, WireError};

pub fn rmdir(
    server: &Server,
    client: ClientId,
    (_, tail): (RmdirReq, &[u8]),
) -> Result<Reply, WireError> {
    let result = paths::parse(tail).and_then(|p| server.ns().rmdir(client, &p));
    reply_status::<RmdirReq>(client, tail, result)
}
