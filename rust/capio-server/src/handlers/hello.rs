//! `Hello`: the handshake that makes a connection a client, an observer, or nothing.

use crate::connection::Reply;
use crate::log::{debug, info};
use crate::namespace::ClientId;
use crate::server::Server;
use capio_proto::{HelloReply, HelloReq, WireError, hello_flags, server_flags, split_hello_tail};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Who greeted the server.
pub enum Greeted {
    Client(ClientId),
    /// `pycapio server status|stop`: may only ask for `Status` and `Shutdown`.
    Observer,
    Refused,
}

/// `Hello`: register the client and hand it the state table and the CAPIO-CL file's path; or
/// accept an observer (no table, not a client).
pub fn hello(
    server: &Server,
    peer_pid: i32,
    (req, tail): (HelloReq, &[u8]),
) -> Result<(Reply, Greeted), WireError> {
    let mut reply = HelloReply {
        server_pid: std::process::id(),
        table_slots: server.table.slots(),
        ..HelloReply::default()
    };
    if server.ns().memory_limit().is_some() {
        reply.flags |= server_flags::MEMORY_LIMIT;
    }
    if req.flags & !hello_flags::ALL != 0 {
        info!(
            "refused pid {peer_pid}: unknown Hello flags {:#x}",
            req.flags
        );
        reply.status = -libc::EINVAL;
        return Ok((Reply::new::<HelloReq>(&reply, &[])?, Greeted::Refused));
    }
    if req.flags & hello_flags::OBSERVER != 0 {
        debug!("pid {peer_pid} attached as an observer");
        return Ok((Reply::new::<HelloReq>(&reply, &[])?, Greeted::Observer));
    }
    let (app, root) = split_hello_tail(tail);
    let app = String::from_utf8_lossy(app);
    let root = Path::new(OsStr::from_bytes(root));
    let registered = server.ns().hello(peer_pid, &app, root);
    match registered {
        Ok(id) => {
            info!(
                "client {id}: app '{app}' (pid {peer_pid}) attached with CAPIO dir {}",
                root.display()
            );
            reply.client_id = id;
            let fd = server.table.fd().try_clone_to_owned()?;
            let config = server
                .config
                .as_ref()
                .map_or(&[][..], |c| c.as_os_str().as_bytes());
            Ok((
                Reply::new::<HelloReq>(&reply, config)?.with_fd(fd),
                Greeted::Client(id),
            ))
        }
        Err(e) => {
            info!(
                "refused app '{app}' (pid {peer_pid}) with CAPIO dir {}: {e}",
                root.display()
            );
            reply.status = -e.errno();
            Ok((Reply::new::<HelloReq>(&reply, &[])?, Greeted::Refused))
        }
    }
}
