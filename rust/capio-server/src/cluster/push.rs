//! The home side of a fetch: a thread that follows one file as its producers write it and hands
//! its new bytes to the MPI thread, then the seal. It waits on the file's slot like any local
//! reader (the futex its writers wake), so bytes leave as soon as they are published, and a file
//! still being written streams to the other node.

use crate::log::warning;
use crate::namespace::Mark;
use crate::shared::Shared;
use capio_proto::{SlotState, StateTable};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread;
use std::time::Duration;

/// Bytes per data message: what the MPI transport's own benchmark moves per message too.
pub const CHUNK: u64 = 1 << 20;
/// Bytes handed to the MPI thread and not yet sent, over every fetch: past it, pushers wait, so
/// a slow network never makes a copy of a whole file in memory.
const IN_FLIGHT: u64 = 64 << 20;
/// How often a pusher with nothing to send looks whether the server is stopping.
const IDLE_LOOK: Duration = Duration::from_millis(200);

/// What a pusher hands the MPI thread, in order.
pub enum Chunk {
    Data {
        to: usize,
        id: u64,
        offset: u64,
        bytes: Vec<u8>,
    },
    Seal {
        to: usize,
        id: u64,
        state: SlotState,
        len: u64,
        round: u32,
    },
}

/// Bytes on their way out, bounded by `IN_FLIGHT`.
#[derive(Default)]
pub struct Credit {
    in_flight: Mutex<u64>,
    room: Condvar,
}

impl Credit {
    fn take(&self, n: u64) {
        let mut used = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        while *used > 0 && *used + n > IN_FLIGHT {
            used = self.room.wait(used).unwrap_or_else(|e| e.into_inner());
        }
        *used += n;
    }

    /// `n` bytes are on their way, sent by a thread that must not wait (the MPI thread).
    pub fn charge(&self, n: u64) {
        *self.in_flight.lock().unwrap_or_else(|e| e.into_inner()) += n;
    }

    /// `n` bytes have left.
    pub fn give(&self, n: u64) {
        let mut used = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        *used = used.saturating_sub(n);
        self.room.notify_all();
    }
}

/// One fetch being served: file `slot` (pinned by `Namespace::lend`) read through `file`, in
/// round `round`, as it was when its `mark` was taken.
pub struct Fetch {
    pub to: usize,
    pub id: u64,
    pub from: u64,
    pub slot: u32,
    pub file: File,
    pub round: u32,
    pub mark: Mark,
}

/// The rest of a committed file from `from` on, and its length, when it fits one message:
/// served without a thread of its own.
pub fn committed_rest(
    table: &StateTable,
    slot: u32,
    file: &File,
    from: u64,
) -> Option<(Vec<u8>, u64)> {
    let shared = table.slot(slot)?;
    if shared.state() != SlotState::Committed {
        return None;
    }
    let len = shared.len.load(SeqCst);
    let rest = len.checked_sub(from).filter(|&n| n <= CHUNK)?;
    let mut bytes = vec![0; rest as usize];
    file.read_exact_at(&mut bytes, from).ok()?;
    Some((bytes, len))
}

/// Serve `fetch` on its own thread; `send` hands chunks to the MPI thread (false once it is
/// gone). `Err` if the thread cannot start: the caller seals the fetch and gives the slot back.
pub fn spawn(
    server: Weak<Shared>,
    table: Arc<StateTable>,
    credit: Arc<Credit>,
    fetch: Fetch,
    send: impl Fn(Chunk) -> bool + Send + 'static,
) -> std::io::Result<()> {
    let slot = fetch.slot;
    let id = fetch.id;
    thread::Builder::new()
        .name(format!("push-{id}"))
        .spawn(move || {
            follow(&server, &table, &credit, &fetch, &send);
            if let Some(server) = server.upgrade() {
                server.ns().give_back(slot);
            }
        })
        .map(drop)
}

fn follow(
    server: &Weak<Shared>,
    table: &StateTable,
    credit: &Credit,
    fetch: &Fetch,
    send: &impl Fn(Chunk) -> bool,
) {
    let seal = |state, len, round| {
        send(Chunk::Seal {
            to: fetch.to,
            id: fetch.id,
            state,
            len,
            round,
        });
    };
    // The bytes sent so far belong to the round lent, as long as the mark has not moved: if it
    // has (written anew, or a copy emptied to start over), the other node starts over too.
    let now = || {
        server
            .upgrade()
            .map_or((fetch.round, fetch.mark), |s| s.ns().round_of(fetch.slot))
    };
    let moved = || {
        let (round, mark) = now();
        (mark != fetch.mark).then_some(round)
    };
    let Some(slot) = table.slot(fetch.slot) else {
        return seal(SlotState::Aborted, 0, fetch.round);
    };
    let stopping = || server.upgrade().is_none_or(|s| s.stopping());
    let mut sent = fetch.from;
    loop {
        let seen = slot.seq.load(SeqCst);
        // The state before the length: a commit seen here means the length read next is final.
        let state = slot.state();
        let len = slot.len.load(SeqCst);
        if let Some(round) = moved() {
            return seal(SlotState::Open, 0, round);
        }
        if len < sent {
            // Cut short by a step's own truncation (it does not go through the server): what the
            // other node holds is not the file any more; it starts over.
            return seal(SlotState::Open, 0, now().0);
        }
        while sent < len {
            if stopping() {
                return seal(SlotState::Aborted, sent, fetch.round);
            }
            let n = (len - sent).min(CHUNK);
            let mut bytes = vec![0; n as usize];
            if let Err(e) = fetch.file.read_exact_at(&mut bytes, sent) {
                // Cut short under us (written anew, or truncated by a step): it starts over.
                if moved().is_some() || e.kind() == std::io::ErrorKind::UnexpectedEof {
                    return seal(SlotState::Open, 0, now().0);
                }
                warning!("cannot read bytes for node {}: {e}", fetch.to);
                return seal(SlotState::Aborted, sent, fetch.round);
            }
            if let Some(round) = moved() {
                return seal(SlotState::Open, 0, round);
            }
            credit.take(n);
            let chunk = Chunk::Data {
                to: fetch.to,
                id: fetch.id,
                offset: sent,
                bytes,
            };
            if !send(chunk) {
                credit.give(n);
                return;
            }
            sent += n;
        }
        match state {
            SlotState::Committed => {
                return match moved() {
                    Some(round) => seal(SlotState::Open, 0, round),
                    None => seal(SlotState::Committed, len, fetch.round),
                };
            }
            SlotState::Aborted | SlotState::Free => {
                return seal(SlotState::Aborted, sent, fetch.round);
            }
            SlotState::Open => {}
        }
        if stopping() {
            return seal(SlotState::Aborted, sent, fetch.round);
        }
        slot.wait(seen, Some(IDLE_LOOK));
    }
}
