//! `Mkdir`: create a directory (which may commit its parent's `on_n_files` rule).

use super::reply::reply_status;
use crate::connection::Reply;
use crate::namespace::{ClientId, Done};
use crate::paths;
use crate::persist;
use crate::server::Server;
use capio_proto::{MkdirReq, WireError};

pub fn mkdir(
    server: &Server,
    client: ClientId,
    (req, tail): (MkdirReq, &[u8]),
) -> Result<Reply, WireError> {
    let work = server.begin_work();
    let Done { result, caused } =
        paths::parse(tail).map_or_else(Done::refused, |p| server.ns().mkdir(client, &p, req.mode));
    persist::all(server, caused, work.as_ref());
    Ok(reply_status::<MkdirReq>(client, tail, result)?.holding(work))
}
