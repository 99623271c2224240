//! `Open`: look a path up (or create it) and hand back its memory file, disk file, or a wait.

use crate::connection::Reply;
use crate::log::debug;
use crate::namespace::{ClientId, Done, Opened};
use crate::paths;
use crate::persist;
use crate::server::Server;
use capio_proto::{OpenKind, OpenReply, OpenReq, WireError};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

pub fn open(
    server: &Server,
    client: ClientId,
    (req, tail): (OpenReq, &[u8]),
) -> Result<Reply, WireError> {
    let work = server.begin_work();
    // Creating a file may commit its directory (`on_n_files`), and files depending on that.
    let Done { result, caused } = paths::parse(tail).map_or_else(Done::refused, |path| {
        server.ns().open(client, &path, req.flags, req.mode)
    });
    persist::all(server, caused, work.as_ref());
    let mut reply = OpenReply::default();
    let fd = match result {
        Ok(Opened::Memory {
            slot,
            producer,
            fire,
            size,
            data,
        }) => {
            reply.kind = OpenKind::Memory.into();
            reply.slot = slot;
            reply.producer = u32::from(producer);
            reply.fire = fire;
            reply.size = size;
            Some(data)
        }
        Ok(Opened::Disk { size, file }) => {
            reply.kind = OpenKind::Disk.into();
            reply.slot = u32::MAX;
            reply.size = size;
            Some(file.into())
        }
        Ok(Opened::Wait { generation }) => {
            reply.kind = OpenKind::Wait.into();
            reply.generation = generation;
            None
        }
        Ok(Opened::Pass) => {
            reply.kind = OpenKind::Pass.into();
            None
        }
        Err(e) => {
            debug!(
                "client {client}: open {:?} (flags {:#o}): {e}",
                OsStr::from_bytes(tail),
                req.flags
            );
            reply.status = -e.errno();
            None
        }
    };
    let out = Reply::new::<OpenReq>(&reply, &[])?.holding(work);
    Ok(match fd {
        Some(fd) => out.with_fd(fd),
        None => out,
    })
}
