//! `Open`: look a path up (or create it) and hand back its memory file, disk file, or a wait.

use super::commits::{persist_all, with_commits};
use crate::connection::Reply;
use crate::log::debug;
use crate::namespace::{ClientId, Opened};
use crate::paths;
use crate::server::Server;
use capio_proto::{Kind, OpenReply, OpenReq, WireError, decode, open_kind};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

pub fn open(server: &Server, client: ClientId, body: &[u8]) -> Result<Reply, WireError> {
    let (req, tail): (OpenReq, _) = decode(body)?;
    let work = server.begin_work();
    // Creating a file may commit its directory (`on_n_files`), and files depending on that.
    let (result, commits) = with_commits(server, |ns| {
        paths::parse(tail).and_then(|path| ns.open(client, &path, req.flags, req.mode))
    });
    persist_all(server, commits, work.as_ref());
    let mut reply = OpenReply::default();
    let fd = match result {
        Ok(Opened::Memory {
            slot,
            producer,
            fire,
            size,
            data,
        }) => {
            reply.kind = open_kind::MEMORY;
            reply.slot = slot;
            reply.producer = u32::from(producer);
            reply.fire = fire;
            reply.size = size;
            Some(data)
        }
        Ok(Opened::Disk { size, file }) => {
            reply.kind = open_kind::DISK;
            reply.slot = u32::MAX;
            reply.size = size;
            Some(file.into())
        }
        Ok(Opened::Wait { generation }) => {
            reply.kind = open_kind::WAIT;
            reply.generation = generation;
            None
        }
        Ok(Opened::Pass) => {
            reply.kind = open_kind::PASS;
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
    let out = Reply::new(Kind::Open, &reply, &[])?.holding(work);
    Ok(match fd {
        Some(fd) => out.with_fd(fd),
        None => out,
    })
}
