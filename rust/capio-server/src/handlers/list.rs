//! `List`: a directory's entries, its commit state and the generation they were read at.

use super::commits::{persist_all, with_commits};
use crate::connection::Reply;
use crate::namespace::ClientId;
use crate::paths;
use crate::server::Server;
use capio_proto::{Empty, Kind, ListReply, MAX_BODY, WireError, decode, push_entry};
use std::os::unix::ffi::OsStrExt;

pub fn list(server: &Server, client: ClientId, body: &[u8]) -> Result<Reply, WireError> {
    let (_, tail): (Empty, _) = decode(body)?;
    let generation = server
        .table
        .namespace()
        .seq
        .load(std::sync::atomic::Ordering::SeqCst);
    // Adopting a directory on disk under its `dirname` rule may commit it, and what depends on it.
    let (listing, commits) = with_commits(server, |ns| {
        paths::parse(tail).and_then(|p| ns.list(client, &p))
    });
    if !commits.is_empty() {
        let work = server.begin_work();
        persist_all(server, commits, work.as_ref());
    }
    let listing = match listing {
        Ok(listing) => listing,
        Err(e) => {
            let reply = ListReply {
                status: -e.errno(),
                ..ListReply::default()
            };
            return Reply::new(Kind::List, &reply, &[]);
        }
    };
    let mut out = Vec::new();
    for (kind, name) in &listing.entries {
        push_entry(&mut out, *kind, name.as_bytes());
    }
    if out.len() + size_of::<ListReply>() > MAX_BODY as usize {
        let reply = ListReply {
            status: -libc::EOVERFLOW,
            ..ListReply::default()
        };
        return Reply::new(Kind::List, &reply, &[]);
    }
    let reply = ListReply {
        status: 0,
        committed: u32::from(listing.committed),
        generation,
        fire: listing.fire,
        producer: u32::from(listing.producer),
        missing: u32::from(listing.missing),
    };
    Reply::new(Kind::List, &reply, &out)
}
