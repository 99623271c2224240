//! `Status`: the server's state as JSON, for `pycapio server status`.

use crate::connection::Reply;
use crate::server::Server;
use capio_proto::{StatusReply, StatusReq, WireError};

/// `Status`: the server's state as JSON (see `status`).
pub fn status_report(server: &Server, _: (StatusReq, &[u8])) -> Result<Reply, WireError> {
    Reply::new::<StatusReq>(
        &StatusReply { status: 0, _pad: 0 },
        &crate::status::build(server),
    )
}
