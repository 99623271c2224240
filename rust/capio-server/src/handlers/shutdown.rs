//! `Shutdown`: acknowledged here; the session starts the shutdown once the reply is out.

use super::reply::status;
use crate::connection::Reply;
use crate::log::info;
use crate::server::Server;
use capio_proto::{ShutdownReq, WireError};

pub fn shutdown(_server: &Server, who: &str, _: (ShutdownReq, &[u8])) -> Result<Reply, WireError> {
    info!("{who} asked the server to shut down");
    status::<ShutdownReq>(0)
}
