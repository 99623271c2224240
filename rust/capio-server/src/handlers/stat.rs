//! `Stat` and `Lstat`: a path's attributes.

use crate::connection::Reply;
use crate::namespace::ClientId;
use crate::paths;
use crate::server::Server;
use capio_proto::{Kind, Request, StatReply, WireError};

/// `Stat`, and `Lstat` (a final symbolic link reported itself): `R` is `StatReq` or `LstatReq`.
pub fn stat<R: Request<Reply = StatReply>>(
    server: &Server,
    client: ClientId,
    (_, tail): (R, &[u8]),
) -> Result<Reply, WireError> {
    let stat = |p: std::path::PathBuf| {
        let mut ns = server.ns();
        ns.forget_if_stale(client, &p)?;
        match R::KIND {
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
    Reply::new::<R>(&reply, &[])
}
