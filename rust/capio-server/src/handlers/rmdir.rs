//! `Rmdir`: remove an empty directory.

use super::reply::reply_status;
use crate::connection::Reply;
use crate::namespace::ClientId;
use crate::paths;
use crate::server::Server;
use capio_proto::{Empty, Kind, WireError, decode};

pub fn rmdir(server: &Server, client: ClientId, body: &[u8]) -> Result<Reply, WireError> {
    let (_, tail): (Empty, _) = decode(body)?;
    let result = paths::parse(tail).and_then(|p| server.ns().rmdir(client, &p));
    reply_status(Kind::Rmdir, client, tail, result)
}
