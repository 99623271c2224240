//! The `Status` reply: the server's identity and settings plus the namespace's report, as one
//! JSON object (the format `pycapio server status` reads; documented in `capio_proto::wire`).
//!
//! Top-level keys: `version`, `server` {pid, workflow, capio_dir, config, log, protocol_version,
//! mpi (the MPI library it was built with, null: none), cluster (null on one node; {rank, nodes:
//! [host name by rank], bytes_sent, bytes_received} for a rank of an MPI job), stopping, managed,
//! observers, client_requests (requests clients made: what clients answer themselves from the
//! shared index never counts)}, then the
//! namespace's: `uptime_seconds`, `memory_limit` (null: none), `memory_used` (bytes memory-backed
//! files hold, with or without a limit), `memory_pooled` (bytes of gone files' memory kept for new
//! files), `memory_held_elsewhere` (gone files' memory a reader still holds, e.g. a view),
//! `pool_limit`, `memory_released` (bytes of streams freed once every declared consumer had
//! read them), `memory_spilled` (bytes of files moved to the spill directory), `spill_dir` (null:
//! none), `live_clients`, `teardown_requested`, `clients` [{id,
//! pid, app, capio_dir, exited, producing, open_files}], `files_total`, `files` [{path, size, state
//! (open|committed|aborted), commit, fire, storage, permanent, persisted, producers, readers,
//! blocked_readers, sleeping, memory_charged, released (bytes below this offset are freed), spilled, kept_on (null, or the node that keeps this node's
//! file for the others' readers), home (null: written here; {node, writer, kept_here, state, size}
//! of another node's file, whose `size` here is what is cached)}], `unlinked_open_files`,
//! `uncommitted_dirs` [{path, commit, entries, producers}], `waiting_opens` [{path, client, seconds,
//! declared_producers}]. A client reference is {id, pid, app}.

use crate::json::Json;
use crate::shared::Shared;
use capio_proto::{MAX_BODY, PROTOCOL_VERSION, STATUS_FORMAT_VERSION, StatusReply};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::Ordering;

/// The JSON text of the server's state.
pub fn build(server: &Shared) -> Vec<u8> {
    let id = &server.identity;
    let mut fields = vec![
        ("version", Json::int(STATUS_FORMAT_VERSION)),
        (
            "server",
            Json::Obj(vec![
                ("pid", Json::int(std::process::id())),
                ("workflow", Json::str(&id.workflow)),
                ("capio_dir", Json::str(id.capio_dir.as_os_str().as_bytes())),
                (
                    "config",
                    Json::opt(server.config.as_ref(), |c| {
                        Json::str(c.as_os_str().as_bytes())
                    }),
                ),
                (
                    "log",
                    Json::opt(id.log.as_ref(), |l| Json::str(l.as_os_str().as_bytes())),
                ),
                ("protocol_version", Json::int(PROTOCOL_VERSION)),
                (
                    "mpi",
                    Json::opt(crate::cluster::mpi_library().as_ref(), Json::str),
                ),
                (
                    "cluster",
                    Json::opt(server.cluster.as_ref(), |c| {
                        Json::Obj(vec![
                            ("rank", Json::int(c.members.rank as u64)),
                            (
                                "nodes",
                                Json::Arr(c.members.hosts.iter().map(Json::str).collect()),
                            ),
                            // File bytes this node sent to and received from the others.
                            (
                                "bytes_sent",
                                Json::int(c.moved.sent.load(Ordering::Relaxed)),
                            ),
                            (
                                "bytes_received",
                                Json::int(c.moved.received.load(Ordering::Relaxed)),
                            ),
                        ])
                    }),
                ),
                ("stopping", Json::Bool(server.stopping())),
                ("managed", Json::Bool(id.managed)),
                (
                    "observers",
                    Json::int(server.observers.load(Ordering::SeqCst) as u64),
                ),
                (
                    "client_requests",
                    Json::int(server.client_requests.load(Ordering::Relaxed)),
                ),
            ]),
        ),
    ];
    fields.extend(server.ns().report());
    let text = Json::Obj(fields).to_bytes();
    let room = MAX_BODY as usize - size_of::<StatusReply>();
    if text.len() <= room {
        return text;
    }
    Json::Obj(vec![
        ("version", Json::int(STATUS_FORMAT_VERSION)),
        (
            "error",
            Json::str(format!(
                "the status ({} bytes) exceeds the reply limit",
                text.len()
            )),
        ),
    ])
    .to_bytes()
}
