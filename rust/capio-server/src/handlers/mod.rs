//! One module per request kind: decode the body, run it against the namespace, build the reply.
//! Errors of the request itself become `status = -errno`; a body that does not decode is a
//! protocol error (`Err`), and the caller drops the connection. This module routes.

mod close;
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

pub use hello::Greeted;

use crate::connection::Reply;
use crate::namespace::ClientId;
use crate::server::Server;
use capio_proto::{Kind, LstatReq, StatReq, WireError, decode};
use std::io;

/// `Hello`: the first request of every connection (see `hello::hello`).
pub fn hello(server: &Server, peer_pid: i32, body: &[u8]) -> Result<(Reply, Greeted), WireError> {
    hello::hello(server, peer_pid, decode(body)?)
}

/// Route an observer's request: only `Status` and `Shutdown`; `None` for anything else (the
/// caller drops the connection).
pub fn dispatch_observer(
    server: &Server,
    peer_pid: i32,
    kind: Kind,
    body: &[u8],
) -> Option<Result<Reply, WireError>> {
    let who = || format!("observer pid {peer_pid}");
    match kind {
        Kind::Status => Some(decode(body).and_then(|req| status::status_report(server, req))),
        Kind::Shutdown => {
            Some(decode(body).and_then(|req| shutdown::shutdown(server, &who(), req)))
        }
        _ => None,
    }
}

/// Route a request after `Hello`: decode its body as the request type its kind names, and hand
/// it to that kind's handler. `Ok(None)` for one-way requests.
pub fn dispatch(
    server: &Server,
    client: ClientId,
    kind: Kind,
    body: &[u8],
) -> Result<Option<Reply>, WireError> {
    Ok(Some(match kind {
        Kind::Open => open::open(server, client, decode(body)?)?,
        Kind::Close => {
            close::close(server, client, decode(body)?)?;
            return Ok(None);
        }
        Kind::Stat => stat::stat::<StatReq>(server, client, decode(body)?)?,
        Kind::Lstat => stat::stat::<LstatReq>(server, client, decode(body)?)?,
        Kind::SetAttr => set_attr::set_attrs(server, client, decode(body)?)?,
        Kind::Mkdir => mkdir::mkdir(server, client, decode(body)?)?,
        Kind::List => list::list(server, client, decode(body)?)?,
        Kind::Unlink => unlink::unlink(server, client, decode(body)?)?,
        Kind::Rename => rename::rename(server, client, decode(body)?)?,
        Kind::Rmdir => rmdir::rmdir(server, client, decode(body)?)?,
        Kind::Exit => exit::exit(server, client, decode(body)?)?,
        Kind::Shutdown => shutdown::shutdown(server, &format!("client {client}"), decode(body)?)?,
        Kind::Status => status::status_report(server, decode(body)?)?,
        Kind::Reserve => reserve::reserve(server, client, decode(body)?)?,
        Kind::Hello => {
            return Err(WireError::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                "Hello sent twice",
            )));
        }
    }))
}
