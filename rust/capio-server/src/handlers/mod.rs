//! One module per request kind: decode the body, run it against the namespace, build the reply.
//! Errors of the request itself become `status = -errno`; a body that does not decode is a
//! protocol error (`Err`), and the caller drops the connection. This module routes.

mod close;
mod commits;
mod exit;
mod hello;
mod list;
mod mkdir;
mod open;
mod rename;
mod reply;
mod reserve;
mod rmdir;
mod set_attr;
mod shutdown;
mod stat;
mod status;
mod unlink;

pub use commits::persist_all;
pub use hello::{Greeted, hello};

use crate::connection::Reply;
use crate::namespace::ClientId;
use crate::server::Server;
use capio_proto::{Kind, WireError};
use std::io;

/// Route an observer's request: only `Status` and `Shutdown`; `None` for anything else (the
/// caller drops the connection).
pub fn dispatch_observer(
    server: &Server,
    peer_pid: i32,
    kind: Kind,
    body: &[u8],
) -> Option<Result<Reply, WireError>> {
    match kind {
        Kind::Status => Some(status::status_report(server, body)),
        Kind::Shutdown => Some(shutdown::shutdown(
            server,
            &format!("observer pid {peer_pid}"),
            body,
        )),
        _ => None,
    }
}

/// Route a request after `Hello`. `Ok(None)` for one-way requests.
pub fn dispatch(
    server: &Server,
    client: ClientId,
    kind: Kind,
    body: &[u8],
) -> Result<Option<Reply>, WireError> {
    Ok(Some(match kind {
        Kind::Open => open::open(server, client, body)?,
        Kind::Close => {
            close::close(server, client, body)?;
            return Ok(None);
        }
        Kind::Stat | Kind::Lstat => stat::stat(server, client, kind, body)?,
        Kind::SetAttr => set_attr::set_attrs(server, client, body)?,
        Kind::Mkdir => mkdir::mkdir(server, client, body)?,
        Kind::List => list::list(server, client, body)?,
        Kind::Unlink => unlink::unlink(server, client, body)?,
        Kind::Rename => rename::rename(server, client, body)?,
        Kind::Rmdir => rmdir::rmdir(server, client, body)?,
        Kind::Exit => exit::exit(server, client, body)?,
        Kind::Shutdown => shutdown::shutdown(server, &format!("client {client}"), body)?,
        Kind::Status => status::status_report(server, body)?,
        Kind::Reserve => reserve::reserve(server, client, body)?,
        Kind::Hello => {
            return Err(WireError::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                "Hello sent twice",
            )));
        }
    }))
}
