//! `List`: a directory's entries, its commit state and the generation they were read at.

use crate::connection::Reply;
use crate::namespace::{ClientId, Done};
use crate::paths;
use crate::persist;
use crate::server::Server;
use capio_proto::{EntryKind, ListReply, ListReq, MAX_BODY, WireError, push_entry};
use std::os::unix::ffi::OsStrExt;

pub fn list(
    server: &Server,
    client: ClientId,
    (_, tail): (ListReq, &[u8]),
) -> Result<Reply, WireError> {
    let generation = server
        .table
        .namespace()
        .seq
        .load(std::sync::atomic::Ordering::SeqCst);
    // Adopting a directory on disk under its `dirname` rule may commit it, and what depends on it.
    let Done { result, caused } =
        paths::parse(tail).map_or_else(Done::refused, |p| server.ns().list(client, &p));
    if !caused.is_empty() {
        let work = server.begin_work();
        persist::all(server, caused, work.as_ref());
    }
    let listing = match result {
        Ok(listing) => listing,
        Err(e) => {
            let reply = ListReply {
                status: -e.errno(),
                ..ListReply::default()
            };
            return Reply::new::<ListReq>(&reply, &[]);
        }
    };
    let mut out = Vec::new();
    for (kind, name) in &listing.entries {
        push_entry(&mut out, EntryKind::try_from(*kind)?, name.as_bytes());
    }
    if out.len() + size_of::<ListReply>() > MAX_BODY as usize {
        let reply = ListReply {
            status: -libc::EOVERFLOW,
            ..ListReply::default()
        };
        return Reply::new::<ListReq>(&reply, &[]);
    }
    let reply = ListReply {
        status: 0,
        committed: u32::from(listing.committed),
        generation,
        fire: listing.fire,
        producer: u32::from(listing.producer),
        missing: u32::from(listing.missing),
    };
    Reply::new::<ListReq>(&reply, &out)
}
