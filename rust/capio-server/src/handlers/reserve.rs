//! `Reserve`: room in the memory budget for a write.

use crate::connection::Reply;
use crate::error::FsError;
use crate::log::debug;
use crate::namespace::{ClientId, Evict, Namespace};
use crate::shared::Shared;
use capio_proto::{ReserveReply, ReserveReq, WireError};
use std::sync::MutexGuard;
use std::time::{Duration, Instant};

/// How long a writer waits for room while the readers of its file free nothing.
const STALL: Duration = Duration::from_secs(5);
/// The longest a writer waits for room in all.
const MAX_WAIT: Duration = Duration::from_secs(600);
/// How often a waiting writer looks again.
const RETRY: Duration = Duration::from_millis(1);

/// Move one committed file nobody holds out of memory, copying it outside the namespace lock.
/// Returns the lock back when nothing could leave (`None`: one did, or was tried: ask again).
pub fn evict_one<'a>(
    server: &'a Shared,
    mut ns: MutexGuard<'a, Namespace>,
) -> Option<MutexGuard<'a, Namespace>> {
    match ns.evict_one() {
        Evict::Done => None,
        Evict::Copy(eviction) => {
            drop(ns);
            let copy = eviction.copy();
            server.ns().finish_eviction(eviction, copy);
            None
        }
        Evict::Nothing => Some(ns),
    }
}

/// `Reserve`: room in the memory budget for a write up to `end`. When there is none, committed
/// files nobody holds open leave memory (`evict`); then, while the file's readers are reading
/// (what they read is released), the writer waits for them, as a pipe's writer does; if what they
/// read frees nothing for [`STALL`] (or it waited [`MAX_WAIT`] in all), it gets `ENOSPC`.
pub fn reserve(
    server: &Shared,
    client: ClientId,
    (req, _): (ReserveReq, &[u8]),
) -> Result<Reply, WireError> {
    let mut seen: Option<(u64, Instant)> = None;
    let began = Instant::now();
    let result = loop {
        let mut ns = server.ns();
        match ns.reserve(client, req.slot, req.end) {
            Err(e @ FsError::NoSpace { .. }) => {
                // Committed files nobody holds leave memory first (copied out unlocked).
                let Some(ns) = evict_one(server, ns) else {
                    continue;
                };
                let Some(progress) = ns.readers_progress(req.slot) else {
                    break Err(e);
                };
                drop(ns);
                if server.stopping() || began.elapsed() >= MAX_WAIT {
                    break Err(e);
                }
                match seen {
                    Some((before, since)) if before == progress => {
                        if since.elapsed() >= STALL {
                            break Err(e);
                        }
                    }
                    _ => seen = Some((progress, Instant::now())),
                }
                std::thread::sleep(RETRY);
            }
            other => break other,
        }
    };
    let reply = match result {
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
    Reply::new::<ReserveReq>(&reply, &[])
}
