//! `Close`: one-way; releases a client's handle on a slot.

use super::commits::{persist_all, with_commits};
use crate::namespace::ClientId;
use crate::server::Server;
use capio_proto::{CloseReq, WireError, decode};

/// `Close` is one-way: nothing to reply. A close may commit the file (`on_close:N`), so its
/// persistence runs here, before this client's next request is read.
pub fn close(server: &Server, client: ClientId, body: &[u8]) -> Result<(), WireError> {
    let (req, _): (CloseReq, _) = decode(body)?;
    let work = server.begin_work();
    let ((), commits) = with_commits(server, |ns| {
        ns.close(client, req.slot, req.writable != 0);
    });
    persist_all(server, commits, work.as_ref());
    Ok(())
}
