//! `Open`: look a path up (or create it) and hand back its memory file, disk file, or a wait.

use crate::connection::Reply;
use crate::error::FsError;
use crate::log::debug;
use crate::namespace::{ClientId, Done, Opened};
use crate::paths;
use crate::persist;
use crate::shared::Shared;
use capio_proto::{OpenKind, OpenReply, OpenReq, WireError};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Open `path`; an exclusive create across many nodes first claims the name from its arbiter,
/// so that of two nodes creating it at once exactly one succeeds (the other gets `EEXIST`).
fn open_path(
    server: &Shared,
    client: ClientId,
    path: &Path,
    flags: u32,
    mode: u32,
) -> Done<Opened> {
    const EXCLUSIVE: u32 = (libc::O_CREAT | libc::O_EXCL) as u32;
    let Some(cluster) = server
        .cluster
        .as_ref()
        .filter(|_| flags & EXCLUSIVE == EXCLUSIVE)
    else {
        return open_making_room(server, client, path, flags, mode);
    };
    // The name as the namespace keys it (symbolic links in its parents resolved); taken here
    // already, or by another node's file this node knows: no claim needed.
    let key = match server.ns().claim_key(client, path) {
        Ok(Some(key)) => key,
        Ok(None) => return Done::refused(FsError::Exists),
        Err(e) => return Done::refused(e),
    };
    match cluster.claim(&key) {
        Ok(true) => {}
        Ok(false) => return Done::refused(FsError::Exists),
        Err(e) => return Done::refused(e),
    }
    let done = server.ns().open(client, path, flags, mode);
    // Given back unless a file holds the name here now (another step of this node may have won
    // it, under the same grant).
    if done.result.is_err() && matches!(server.ns().claim_key(client, path), Ok(Some(_))) {
        cluster.release(&key);
    }
    done
}

/// Open; an input copied into memory that does not fit makes room first, as a write does
/// (committed files nobody holds leave memory).
fn open_making_room(
    server: &Shared,
    client: ClientId,
    path: &Path,
    flags: u32,
    mode: u32,
) -> Done<Opened> {
    loop {
        let mut ns = server.ns();
        let done = ns.open(client, path, flags, mode);
        if !matches!(done.result, Err(FsError::NoSpace { .. })) || !done.caused.is_empty() {
            return done;
        }
        if super::reserve::evict_one(server, ns).is_some() {
            return done;
        }
    }
}

pub fn open(
    server: &Shared,
    client: ClientId,
    (req, tail): (OpenReq, &[u8]),
) -> Result<Reply, WireError> {
    let work = server.begin_work();
    // Creating a file may commit its directory (`on_n_files`), and files depending on that.
    let Done { result, caused } = paths::parse(tail).map_or_else(Done::refused, |path| {
        open_path(server, client, &path, req.flags, req.mode)
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
            progress,
            direct_write,
        }) => {
            reply.kind = OpenKind::Memory.into();
            reply.direct_write = u32::from(direct_write);
            reply.progress = progress;
            reply.slot = slot;
            reply.producer = u32::from(producer);
            reply.fire = fire.into();
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
