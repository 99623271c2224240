//! `Unlink`: remove a file.

use super::reply::reply_status;
use crate::connection::Reply;
use crate::namespace::ClientId;
use crate::paths;
use crate::server::Server;
use capio_proto::{Empty, Kind, WireError, decode};

pub fn unlink(server: &Server, client: ClientId, body: &[u8]) -> Result<Reply, WireError> {
    let (_, tail): (Empty, _) = decode(body)?;
    let result = paths::parse(tail).and_then(|p| server.ns().unlink(client, &p));
    reply_status(Kind::Unlink, client, tail, result)
}
