//! `Status`: the server's state as JSON, for `pycapio server status`.

use crate::connection::Reply;
use crate::server::Server;
use capio_proto::{Kind, StatusReply, WireError};

/// `Status`: the server's state as JSON (see `status`).
pub fn status_report(server: &Server, _body: &[u8]) -> Result<Reply, WireError> {
    Reply::new(
        Kind::Status,
        &StatusReply { status: 0, _pad: 0 },
        &crate::status::build(server),
    )
}
