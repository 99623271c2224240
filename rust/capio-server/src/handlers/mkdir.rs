//! `Mkdir`: create a directory (which may commit its parent's `on_n_files` rule).

use super::commits::{persist_all, with_commits};
use super::reply::reply_status;
use crate::connection::Reply;
use crate::namespace::ClientId;
use crate::paths;
use crate::server::Server;
use capio_proto::{MkdirReq, WireError};

pub fn mkdir(
    server: &Server,
    client: ClientId,
    (req, tail): (MkdirReq, &[u8]),
) -> Result<Reply, WireError> {
    let work = server.begin_work();
    let (result, commits) = with_commits(server, |ns| {
        paths::parse(tail).and_then(|p| ns.mkdir(client, &p, req.mode))
    });
    persist_all(server, commits, work.as_ref());
    Ok(reply_status::<MkdirReq>(client, tail, result)?.holding(work))
}
