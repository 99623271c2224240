//! `Exit`: a client's orderly end.

use super::reply::status;
use crate::connection::Reply;
use crate::log::debug;
use crate::namespace::ClientId;
use crate::persist;
use crate::server::Server;
use capio_proto::{ExitReq, WireError};

/// `Exit`: commit what the client leaves behind and persist it before replying, so the client's
/// outputs are on disk by the time its process is gone.
pub fn exit(
    server: &Server,
    client: ClientId,
    (req, _): (ExitReq, &[u8]),
) -> Result<Reply, WireError> {
    let Some(work) = server.begin_work() else {
        return status::<ExitReq>(-libc::ESHUTDOWN);
    };
    // A managed server outlives its clients: only `pycapio server stop` ends it.
    let teardown = req.teardown != 0 && !server.identity.managed;
    let caused = match server.ns().exit(client, teardown) {
        Ok(caused) => caused,
        Err(e) => return status::<ExitReq>(-e.errno()),
    };
    let first_error = persist::all(server, caused, Some(&work));
    debug!("client {client}: exited (teardown {})", req.teardown != 0);
    Ok(status::<ExitReq>(first_error)?.holding(Some(work)))
}
