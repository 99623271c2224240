//! `Reserve`: room in the memory budget for a write.

use crate::connection::Reply;
use crate::log::debug;
use crate::namespace::ClientId;
use crate::server::Server;
use capio_proto::{ReserveReply, ReserveReq, WireError};

/// `Reserve`: room in the memory budget for a write up to `end`.
pub fn reserve(
    server: &Server,
    client: ClientId,
    (req, _): (ReserveReq, &[u8]),
) -> Result<Reply, WireError> {
    let reply = match server.ns().reserve(client, req.slot, req.end) {
        Ok(granted) => ReserveReply {
            status: 0,
            _pad: 0,
            granted,
        },
        Err(e) => {
            debug!(
                "client {client}: reserve slot {} to {}: {e}",
                req.slot, req.end
            );
            ReserveReply {
                status: -e.errno(),
                ..ReserveReply::default()
            }
        }
    };
    Reply::new::<ReserveReq>(&reply, &[])
}
