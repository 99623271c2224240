//! One function per request kind: decode the body, run it against the namespace, build the reply.
//! Errors of the request itself become `status = -errno`; a body that does not decode is a
//! protocol error (`Err`), and the caller drops the connection.

use crate::connection::Reply;
use crate::error::FsError;
use crate::log::{debug, error, info};
use crate::namespace::{ClientId, Opened};
use crate::paths;
use crate::persist;
use crate::server::Server;
use capio_proto::{
    CloseReq, Empty, ExitReq, HelloReply, HelloReq, Kind, ListReply, MAX_BODY, MkdirReq, OpenReply,
    OpenReq, RenameReq, StatReply, StatusReply, WireError, decode, fire, open_kind, push_entry,
    split_hello_tail, split_rename_tail,
};
use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn status(kind: Kind, code: i32) -> Result<Reply, WireError> {
    Reply::new(
        kind,
        &StatusReply {
            status: code,
            _pad: 0,
        },
        &[],
    )
}

/// `Hello`: register the client and hand it the state table. Returns the new client's id, or
/// `None` when the reply carries an error.
pub fn hello(
    server: &Server,
    peer_pid: i32,
    body: &[u8],
) -> Result<(Reply, Option<ClientId>), WireError> {
    let (_req, tail): (HelloReq, _) = decode(body)?;
    let (app, root) = split_hello_tail(tail);
    let app = String::from_utf8_lossy(app);
    let root = Path::new(OsStr::from_bytes(root));
    let registered = server.ns().hello(peer_pid, &app, root);
    let mut reply = HelloReply {
        server_pid: std::process::id(),
        table_slots: server.table.slots(),
        ..HelloReply::default()
    };
    match registered {
        Ok(id) => {
            info!(
                "client {id}: app '{app}' (pid {peer_pid}) attached with CAPIO dir {}",
                root.display()
            );
            reply.client_id = id;
            let fd = server.table.fd().try_clone_to_owned()?;
            Ok((Reply::new(Kind::Hello, &reply, &[])?.with_fd(fd), Some(id)))
        }
        Err(e) => {
            info!(
                "refused app '{app}' (pid {peer_pid}) with CAPIO dir {}: {e}",
                root.display()
            );
            reply.status = -e.errno();
            Ok((Reply::new(Kind::Hello, &reply, &[])?, None))
        }
    }
}

pub fn open(server: &Server, client: ClientId, body: &[u8]) -> Result<Reply, WireError> {
    let (req, tail): (OpenReq, _) = decode(body)?;
    let result =
        paths::parse(tail).and_then(|path| server.ns().open(client, &path, req.flags, req.mode));
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
    let out = Reply::new(Kind::Open, &reply, &[])?;
    Ok(match fd {
        Some(fd) => out.with_fd(fd),
        None => out,
    })
}

/// `Close` is one-way: nothing to reply.
pub fn close(server: &Server, client: ClientId, body: &[u8]) -> Result<(), WireError> {
    let (req, _): (CloseReq, _) = decode(body)?;
    server.ns().close(client, req.slot, req.writable != 0);
    Ok(())
}

pub fn stat(server: &Server, client: ClientId, body: &[u8]) -> Result<Reply, WireError> {
    let (_, tail): (Empty, _) = decode(body)?;
    let reply = match paths::parse(tail).and_then(|p| server.ns().stat(client, &p)) {
        Ok(st) => StatReply {
            status: 0,
            kind: st.kind,
            size: st.size,
            mtime_ns: st.mtime_ns,
            mode: st.mode,
            committed: u32::from(st.committed),
        },
        Err(e) => StatReply {
            status: -e.errno(),
            ..StatReply::default()
        },
    };
    Reply::new(Kind::Stat, &reply, &[])
}

pub fn mkdir(server: &Server, client: ClientId, body: &[u8]) -> Result<Reply, WireError> {
    let (req, tail): (MkdirReq, _) = decode(body)?;
    match paths::parse(tail).and_then(|p| server.ns().mkdir(client, &p, req.mode)) {
        Ok(()) => status(Kind::Mkdir, 0),
        Err(e) => status(Kind::Mkdir, -e.errno()),
    }
}

pub fn list(server: &Server, client: ClientId, body: &[u8]) -> Result<Reply, WireError> {
    let (_, tail): (Empty, _) = decode(body)?;
    let generation = server
        .table
        .namespace()
        .seq
        .load(std::sync::atomic::Ordering::SeqCst);
    let entries = match paths::parse(tail).and_then(|p| server.ns().list(client, &p)) {
        Ok(entries) => entries,
        Err(e) => {
            let reply = ListReply {
                status: -e.errno(),
                ..ListReply::default()
            };
            return Reply::new(Kind::List, &reply, &[]);
        }
    };
    let mut out = Vec::new();
    for (kind, name) in &entries {
        push_entry(&mut out, *kind, name.as_bytes());
    }
    if out.len() + size_of::<ListReply>() > MAX_BODY as usize {
        let reply = ListReply {
            status: -libc::EOVERFLOW,
            ..ListReply::default()
        };
        return Reply::new(Kind::List, &reply, &[]);
    }
    // Directory commit and fire rules come with CAPIO-CL enforcement; until then every
    // directory is complete as listed.
    let reply = ListReply {
        status: 0,
        committed: 1,
        generation,
        fire: fire::UPDATE,
        producer: 0,
        _pad: 0,
    };
    Reply::new(Kind::List, &reply, &out)
}

/// `Exit`: commit what the client leaves behind and persist it before replying, so the client's
/// outputs are on disk by the time its process is gone.
pub fn exit(server: &Server, client: ClientId, body: &[u8]) -> Result<Reply, WireError> {
    let (req, _): (ExitReq, _) = decode(body)?;
    let Some(work) = server.begin_work() else {
        return status(Kind::Exit, -libc::ESHUTDOWN);
    };
    let commits = match server.ns().exit(client, req.teardown != 0) {
        Ok(commits) => commits,
        Err(e) => return status(Kind::Exit, -e.errno()),
    };
    let mut first_error = 0;
    for (path, generation) in commits {
        if let Err(e) = persist_one(server, &path, generation) {
            error!("cannot persist {}: {e}", path.display());
            if first_error == 0 {
                first_error = -e.errno();
            }
        }
    }
    debug!("client {client}: exited (teardown {})", req.teardown != 0);
    Ok(status(Kind::Exit, first_error)?.holding(Some(work)))
}

pub fn unlink(server: &Server, client: ClientId, body: &[u8]) -> Result<Reply, WireError> {
    let (_, tail): (Empty, _) = decode(body)?;
    let result = paths::parse(tail).and_then(|p| server.ns().unlink(client, &p));
    reply_status(Kind::Unlink, client, tail, result)
}

pub fn rmdir(server: &Server, client: ClientId, body: &[u8]) -> Result<Reply, WireError> {
    let (_, tail): (Empty, _) = decode(body)?;
    let result = paths::parse(tail).and_then(|p| server.ns().rmdir(client, &p));
    reply_status(Kind::Rmdir, client, tail, result)
}

/// `Rename`: a committed file whose persist had not landed yet is persisted under its new path
/// before the reply, as `Exit` would have done under the old one. A failed persist does not undo
/// the rename, so the reply still reports success; the error is logged, and the file is named at
/// shutdown as not persisted.
pub fn rename(server: &Server, client: ClientId, body: &[u8]) -> Result<Reply, WireError> {
    let (req, tail): (RenameReq, _) = decode(body)?;
    let (src, dst) = split_rename_tail(&req, tail).ok_or(WireError::Truncated {
        need: req.src_len as usize,
        got: tail.len(),
    })?;
    let work = server.begin_work();
    let result = if req.flags != 0 {
        Err(FsError::BadFlags(req.flags))
    } else {
        paths::parse(src).and_then(|s| server.ns().rename(client, &s, &paths::parse(dst)?))
    };
    let pending = match result {
        Ok(pending) => pending,
        Err(e) => return reply_status(Kind::Rename, client, src, Err(e)),
    };
    // Without a work slot the server is draining: the shutdown report names what is left.
    for (path, generation) in pending.into_iter().filter(|_| work.is_some()) {
        if let Err(e) = persist_one(server, &path, generation) {
            error!("cannot persist {} after a rename: {e}", path.display());
        }
    }
    Ok(status(Kind::Rename, 0)?.holding(work))
}

fn reply_status(
    kind: Kind,
    client: ClientId,
    path: &[u8],
    result: Result<(), FsError>,
) -> Result<Reply, WireError> {
    match result {
        Ok(()) => status(kind, 0),
        Err(e) => {
            debug!(
                "client {client}: {kind:?} {:?}: {e}",
                OsStr::from_bytes(path)
            );
            status(kind, -e.errno())
        }
    }
}

fn persist_one(server: &Server, path: &Path, generation: u64) -> Result<(), FsError> {
    // The copy runs outside the namespace lock; only the superseded-check and rename hold it.
    let Some(job) = server.ns().persist_job(path, generation)? else {
        return Ok(());
    };
    let temp = persist::write_temp(&job)?;
    if server.ns().install(&job, temp)? {
        debug!("persisted {} ({} bytes)", path.display(), job.len);
    }
    Ok(())
}

pub fn shutdown(_server: &Server, client: ClientId, _body: &[u8]) -> Result<Reply, WireError> {
    info!("client {client} asked the server to shut down");
    status(Kind::Shutdown, 0)
}

/// Route a request after `Hello`. `Ok(None)` for one-way requests.
pub fn dispatch(
    server: &Server,
    client: ClientId,
    kind: Kind,
    body: &[u8],
) -> Result<Option<Reply>, WireError> {
    Ok(Some(match kind {
        Kind::Open => open(server, client, body)?,
        Kind::Close => {
            close(server, client, body)?;
            return Ok(None);
        }
        Kind::Stat => stat(server, client, body)?,
        Kind::Mkdir => mkdir(server, client, body)?,
        Kind::List => list(server, client, body)?,
        Kind::Unlink => unlink(server, client, body)?,
        Kind::Rename => rename(server, client, body)?,
        Kind::Rmdir => rmdir(server, client, body)?,
        Kind::Exit => exit(server, client, body)?,
        Kind::Shutdown => shutdown(server, client, body)?,
        Kind::Hello => {
            return Err(WireError::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                "Hello sent twice",
            )));
        }
    }))
}
