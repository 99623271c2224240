//! `Close`: one-way; releases a client's handle on a slot.

use crate::namespace::ClientId;
use crate::persist;
use crate::shared::Shared;
use capio_proto::{CloseReq, WireError};

/// `Close` is one-way: nothing to reply. A close may commit the file (`on_close:N`), so its
/// persistence runs here, before this client's next request is read.
pub fn close(
    server: &Shared,
    client: ClientId,
    (req, _): (CloseReq, &[u8]),
) -> Result<(), WireError> {
    let work = server.begin_work();
    let caused = server
        .ns()
        .close(client, req.slot, req.writable != 0, req.progress);
    persist::all(server, caused, work.as_ref());
    Ok(())
}
