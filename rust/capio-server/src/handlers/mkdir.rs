//! `Mkdir`: create a directory (which may commit its parent's `on_n_files` rule).

use super::commits::{persist_all, with_commits};
use super::reply::reply_status;
use crate::connection::Reply;
use crate::namespace::ClientId;
use crate::paths;
use crate::server::Server;
use capio_proto::{Kind, MkdirReq, WireError, decode};

pub fn mkdir(server: &Server, client: ClientId, body: &[u8]) -> Result<Reply, WireError> {
    let (req, tail): (MkdirReq, _) = decode(body)?;
    let work = server.begin_work();
    let (result, commits) = with_commits(server, |ns| {
        paths::parse(tail).and_then(|p| ns.mkdir(client, &p, req.mode))
    });
    persist_all(server, commits, work.as_ref());
    Ok(reply_status(Kind::Mkdir, client, tail, result)?.holding(work))
}
