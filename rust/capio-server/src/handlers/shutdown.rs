//! `Shutdown`: acknowledged here; the session starts the shutdown once the reply is out.

use super::reply::status;
use crate::connection::Reply;
use crate::log::info;
use crate::server::Server;
use capio_proto::{Kind, WireError};

pub fn shutdown(_server: &Server, who: &str, _body: &[u8]) -> Result<Reply, WireError> {
    info!("{who} asked the server to shut down");
    status(Kind::Shutdown, 0)
}
