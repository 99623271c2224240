//! One function per request kind: decode the body, run it against the namespace, build the reply.
//! Errors of the request itself become `status = -errno`; a body that does not decode is a
//! protocol error (`Err`), and the caller drops the connection.

use crate::connection::Reply;
use crate::error::FsError;
use crate::log::{debug, info};
use crate::namespace::{Caused, ClientId, Opened};
use crate::paths;
use crate::persist;
use crate::server::Server;
use capio_proto::{
    CloseReq, Empty, ExitReq, HelloReply, HelloReq, Kind, ListReply, MAX_BODY, MkdirReq, OpenReply,
    OpenReq, RenameReq, ReserveReply, ReserveReq, SetAttrReq, StatReply, StatusReply, WireError,
    attr_flags, decode, hello_flags, open_kind, push_entry, server_flags, split_hello_tail,
    split_rename_tail,
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

/// Who greeted the server.
pub enum Greeted {
    Client(ClientId),
    /// `pycapio server status|stop`: may only ask for `Status` and `Shutdown`.
    Observer,
    Refused,
}

/// `Hello`: register the client and hand it the state table and the CAPIO-CL file's path; or
/// accept an observer (no table, not a client).
pub fn hello(server: &Server, peer_pid: i32, body: &[u8]) -> Result<(Reply, Greeted), WireError> {
    let (req, tail): (HelloReq, _) = decode(body)?;
    let mut reply = HelloReply {
        server_pid: std::process::id(),
        table_slots: server.table.slots(),
        ..HelloReply::default()
    };
    if server.ns().memory_limit().is_some() {
        reply.flags |= server_flags::MEMORY_LIMIT;
    }
    if req.flags & !hello_flags::ALL != 0 {
        info!(
            "refused pid {peer_pid}: unknown Hello flags {:#x}",
            req.flags
        );
        reply.status = -libc::EINVAL;
        return Ok((Reply::new(Kind::Hello, &reply, &[])?, Greeted::Refused));
    }
    if req.flags & hello_flags::OBSERVER != 0 {
        debug!("pid {peer_pid} attached as an observer");
        return Ok((Reply::new(Kind::Hello, &reply, &[])?, Greeted::Observer));
    }
    let (app, root) = split_hello_tail(tail);
    let app = String::from_utf8_lossy(app);
    let root = Path::new(OsStr::from_bytes(root));
    let registered = server.ns().hello(peer_pid, &app, root);
    match registered {
        Ok(id) => {
            info!(
                "client {id}: app '{app}' (pid {peer_pid}) attached with CAPIO dir {}",
                root.display()
            );
            reply.client_id = id;
            let fd = server.table.fd().try_clone_to_owned()?;
            let config = server
                .config
                .as_ref()
                .map_or(&[][..], |c| c.as_os_str().as_bytes());
            Ok((
                Reply::new(Kind::Hello, &reply, config)?.with_fd(fd),
                Greeted::Client(id),
            ))
        }
        Err(e) => {
            info!(
                "refused app '{app}' (pid {peer_pid}) with CAPIO dir {}: {e}",
                root.display()
            );
            reply.status = -e.errno();
            Ok((Reply::new(Kind::Hello, &reply, &[])?, Greeted::Refused))
        }
    }
}

pub fn open(server: &Server, client: ClientId, body: &[u8]) -> Result<Reply, WireError> {
    let (req, tail): (OpenReq, _) = decode(body)?;
    let work = server.begin_work();
    // Creating a file may commit its directory (`on_n_files`), and files depending on that.
    let (result, caused) = match paths::parse(tail) {
        Ok(path) => {
            let done = server.ns().open(client, &path, req.flags, req.mode);
            (done.result, Some(done.caused))
        }
        Err(e) => (Err(e), None),
    };
    persist::all(server, caused.into_iter().flatten(), work.as_ref());
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

/// `Close` is one-way: nothing to reply. A close may commit the file (`on_close:N`), so its
/// persistence runs here, before this client's next request is read.
pub fn close(server: &Server, client: ClientId, body: &[u8]) -> Result<(), WireError> {
    let (req, _): (CloseReq, _) = decode(body)?;
    let work = server.begin_work();
    let caused = server.ns().close(client, req.slot, req.writable != 0);
    persist::all(server, caused, work.as_ref());
    Ok(())
}

/// `Stat`, and `Lstat` (a final symbolic link reported itself).
pub fn stat(
    server: &Server,
    client: ClientId,
    kind: Kind,
    body: &[u8],
) -> Result<Reply, WireError> {
    let (_, tail): (Empty, _) = decode(body)?;
    let stat = |p: std::path::PathBuf| {
        let mut ns = server.ns();
        ns.forget_if_stale(client, &p)?;
        match kind {
            Kind::Lstat => ns.lstat(client, &p),
            _ => ns.stat(client, &p),
        }
    };
    let reply = match paths::parse(tail).and_then(stat) {
        Ok(st) => StatReply {
            status: 0,
            kind: st.kind,
            size: st.size,
            mtime_ns: st.mtime_ns,
            mode: st.mode,
            committed: u32::from(st.committed),
            atime_ns: st.atime_ns,
            ctime_ns: st.ctime_ns,
            uid: st.uid,
            gid: st.gid,
            file_type: st.file_type,
            nlink: st.nlink,
            ino: st.ino,
            dev: st.dev,
        },
        Err(e) => StatReply {
            status: -e.errno(),
            ..StatReply::default()
        },
    };
    Reply::new(kind, &reply, &[])
}

/// `SetAttr`: `chmod`, `chown`, `utimensat` of a path.
pub fn set_attrs(server: &Server, client: ClientId, body: &[u8]) -> Result<Reply, WireError> {
    let (req, tail): (SetAttrReq, _) = decode(body)?;
    let result = match req.attrs() {
        None => Err(FsError::BadFlags(req.flags)),
        Some(attrs) => paths::parse(tail).and_then(|p| {
            server
                .ns()
                .set_attrs(client, &p, &attrs, req.flags & attr_flags::NOFOLLOW != 0)
        }),
    };
    reply_status(Kind::SetAttr, client, tail, result)
}

pub fn mkdir(server: &Server, client: ClientId, body: &[u8]) -> Result<Reply, WireError> {
    let (req, tail): (MkdirReq, _) = decode(body)?;
    let work = server.begin_work();
    let (result, caused) = match paths::parse(tail) {
        Ok(p) => {
            let done = server.ns().mkdir(client, &p, req.mode);
            (done.result, Some(done.caused))
        }
        Err(e) => (Err(e), None),
    };
    persist::all(server, caused.into_iter().flatten(), work.as_ref());
    Ok(reply_status(Kind::Mkdir, client, tail, result)?.holding(work))
}

pub fn list(server: &Server, client: ClientId, body: &[u8]) -> Result<Reply, WireError> {
    let (_, tail): (Empty, _) = decode(body)?;
    let generation = server
        .table
        .namespace()
        .seq
        .load(std::sync::atomic::Ordering::SeqCst);
    // Adopting a directory on disk under its `dirname` rule may commit it, and what depends on it.
    let (listing, caused) = match paths::parse(tail) {
        Ok(p) => {
            let done = server.ns().list(client, &p);
            (done.result, done.caused)
        }
        Err(e) => (Err(e), Caused::default()),
    };
    if !caused.is_empty() {
        let work = server.begin_work();
        persist::all(server, caused, work.as_ref());
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

/// `Exit`: commit what the client leaves behind and persist it before replying, so the client's
/// outputs are on disk by the time its process is gone.
pub fn exit(server: &Server, client: ClientId, body: &[u8]) -> Result<Reply, WireError> {
    let (req, _): (ExitReq, _) = decode(body)?;
    let Some(work) = server.begin_work() else {
        return status(Kind::Exit, -libc::ESHUTDOWN);
    };
    // A managed server outlives its clients: only `pycapio server stop` ends it.
    let teardown = req.teardown != 0 && !server.identity.managed;
    let caused = match server.ns().exit(client, teardown) {
        Ok(caused) => caused,
        Err(e) => return status(Kind::Exit, -e.errno()),
    };
    let first_error = persist::all(server, caused, Some(&work));
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
    let parsed = if req.flags != 0 {
        Err(FsError::BadFlags(req.flags))
    } else {
        paths::parse(src).and_then(|s| Ok((s, paths::parse(dst)?)))
    };
    let (result, caused) = match parsed {
        Ok((s, d)) => {
            let done = server.ns().rename(client, &s, &d);
            (done.result, done.caused)
        }
        Err(e) => (Err(e), Caused::default()),
    };
    persist::all(server, caused, work.as_ref());
    let pending = match result {
        Ok(pending) => pending,
        Err(e) => return reply_status(Kind::Rename, client, src, Err(e)),
    };
    persist::all(server, pending, work.as_ref());
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

pub fn shutdown(_server: &Server, who: &str, _body: &[u8]) -> Result<Reply, WireError> {
    info!("{who} asked the server to shut down");
    status(Kind::Shutdown, 0)
}

/// `Status`: the server's state as JSON (see `status`).
pub fn status_report(server: &Server, _body: &[u8]) -> Result<Reply, WireError> {
    Reply::new(
        Kind::Status,
        &StatusReply { status: 0, _pad: 0 },
        &crate::status::build(server),
    )
}

/// `Reserve`: room in the memory budget for a write up to `end`.
pub fn reserve(server: &Server, client: ClientId, body: &[u8]) -> Result<Reply, WireError> {
    let (req, _): (ReserveReq, _) = decode(body)?;
    let reply = match server.ns().reserve(client, req.slot, req.end) {
        Ok(granted) => ReserveReply {
            status: 0,
            _pad: 0,
            granted,
        },
        Err(e) => {
            debug!(
                "client {client}: reserve slot {} to {}: {e}",
                req.slot, req.end
            );
            ReserveReply {
                status: -e.errno(),
                ..ReserveReply::default()
            }
        }
    };
    Reply::new(Kind::Reserve, &reply, &[])
}

/// Route an observer's request: only `Status` and `Shutdown`; `None` for anything else (the
/// caller drops the connection).
pub fn dispatch_observer(
    server: &Server,
    peer_pid: i32,
    kind: Kind,
    body: &[u8],
) -> Option<Result<Reply, WireError>> {
    match kind {
        Kind::Status => Some(status_report(server, body)),
        Kind::Shutdown => Some(shutdown(server, &format!("observer pid {peer_pid}"), body)),
        _ => None,
    }
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
        Kind::Stat | Kind::Lstat => stat(server, client, kind, body)?,
        Kind::SetAttr => set_attrs(server, client, body)?,
        Kind::Mkdir => mkdir(server, client, body)?,
        Kind::List => list(server, client, body)?,
        Kind::Unlink => unlink(server, client, body)?,
        Kind::Rename => rename(server, client, body)?,
        Kind::Rmdir => rmdir(server, client, body)?,
        Kind::Exit => exit(server, client, body)?,
        Kind::Shutdown => shutdown(server, &format!("client {client}"), body)?,
        Kind::Status => status_report(server, body)?,
        Kind::Reserve => reserve(server, client, body)?,
        Kind::Hello => {
            return Err(WireError::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                "Hello sent twice",
            )));
        }
    }))
}
