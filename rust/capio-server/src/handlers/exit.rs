//! `Exit`: a client's orderly end.

use super::commits::persist_all;
use super::reply::status;
use crate::connection::Reply;
use crate::log::debug;
use crate::namespace::ClientId;
use crate::server::Server;
use capio_proto::{ExitReq, Kind, WireError, decode};

/// `Exit`: commit what the client leaves behind and persist it before replying, so the client's
/// outputs are on disk by the time its process is gone.
pub fn exit(server: &Server, client: ClientId, body: &[u8]) -> Result<Reply, WireError> {
    let (req, _): (ExitReq, _) = decode(body)?;
    let Some(work) = server.begin_work() else {
        return status(Kind::Exit, -libc::ESHUTDOWN);
    };
    // A managed server outlives its clients: only `pycapio server stop` ends it.
    let teardown = req.teardown != 0 && !server.identity.managed;
    let commits = match server.ns().exit(client, teardown) {
        Ok(commits) => commits,
        Err(e) => return status(Kind::Exit, -e.errno()),
    };
    let first_error = persist_all(server, commits, Some(&work));
    debug!("client {client}: exited (teardown {})", req.teardown != 0);
    Ok(status(Kind::Exit, first_error)?.holding(Some(work)))
}
