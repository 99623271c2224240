//! `Status`: the server's state as JSON, for `pycapio server status`.

use crate::connection::Reply;
use crate::shared::Shared;
use capio_proto::{StatusReply, StatusReq, WireError};

/// `Status`: the server's state as JSON (see `status`).
pub fn status_report(server: &Shared, _: (StatusReq, &[u8])) -> Result<Reply, WireError> {
    Reply::new::<StatusReq>(
        &StatusReply { status: 0, _pad: 0 },
        &crate::status::build(server),
    )
}
