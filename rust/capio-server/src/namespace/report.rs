//! What `pycapio server status` shows of the namespace: clients, files (size, commit state, who
//! produces, who reads, who sleeps on them), directories not committed yet, and readers waiting
//! for files nobody has created.

use super::files::FileNode;
use super::{ClientId, Namespace};
use crate::backing::Backing;
use crate::json::Json;
use capio_proto::SlotState;
use std::collections::{BTreeSet, HashMap};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

/// A waiting opener asks again at least every 250 ms; one not heard from for this long gave up.
pub const WAIT_FRESH: Duration = Duration::from_millis(1500);
/// At most this many files are listed (the reply must stay far below the frame cap).
pub const MAX_FILES: usize = 20_000;

type WaitKey = (ClientId, PathBuf);

/// The files in memory each live client holds a description of, whether the server opened it or
/// the client opened the memory object itself (a committed file read without a round trip, see
/// `capio_proto::index`): read from each client's `/proc/<pid>/fd` when a report is made, so it
/// is exact at that moment and nothing has to be told. A client this process may not look into
/// shows only what the server opened for it.
#[derive(Default)]
struct Held {
    by_slot: HashMap<u32, BTreeSet<ClientId>>,
    by_client: HashMap<ClientId, BTreeSet<u32>>,
}

impl Held {
    fn scan(ns: &Namespace) -> Held {
        let objects: HashMap<(u64, u64), u32> = ns
            .files
            .iter()
            .map(|(_, node)| node)
            .chain(ns.files.unlinked().map(|(_, node)| node))
            .filter(|node| node.has_memory())
            .filter_map(|node| {
                let meta = node.data.metadata().ok()?;
                Some(((meta.dev(), meta.ino()), node.slot()))
            })
            .collect();
        let mut held = Held::default();
        if objects.is_empty() {
            return held;
        }
        for (cid, client) in ns.clients.sorted() {
            if client.exited {
                continue;
            }
            let Ok(fds) = std::fs::read_dir(format!("/proc/{}/fd", client.pid)) else {
                continue;
            };
            for fd in fds.flatten() {
                // Only memory objects are stat-ed: a file on a network or FUSE mount could block
                // the report, which runs under the namespace lock.
                let is_memfd = std::fs::read_link(fd.path())
                    .is_ok_and(|t| t.as_os_str().as_bytes().starts_with(b"/memfd:"));
                let Some(meta) = is_memfd
                    .then(|| std::fs::metadata(fd.path()).ok())
                    .flatten()
                else {
                    continue;
                };
                if let Some(&slot) = objects.get(&(meta.dev(), meta.ino())) {
                    held.by_slot.entry(slot).or_default().insert(cid);
                    held.by_client.entry(cid).or_default().insert(slot);
                }
            }
        }
        held
    }
}

fn path_json(p: &Path) -> Json {
    Json::str(p.as_os_str().as_bytes())
}

fn state_name(state: SlotState) -> &'static str {
    match state {
        SlotState::Free => "free",
        SlotState::Open => "open",
        SlotState::Committed => "committed",
        SlotState::Aborted => "aborted",
    }
}

impl Namespace {
    /// A read-only open of `path` was told to wait.
    pub(super) fn note_waiting(&mut self, cid: ClientId, path: &Path) {
        let now = Instant::now();
        // Amortised clean-up of openers that gave up (timed out, interrupted).
        if self.waiting.len() > 64 && self.waiting.len().is_power_of_two() {
            self.waiting.retain(|_, (_, last)| now - *last < WAIT_FRESH);
        }
        self.waiting
            .entry((cid, path.to_path_buf()))
            .and_modify(|(_, last)| *last = now)
            .or_insert((now, now));
    }

    pub(super) fn done_waiting(&mut self, cid: ClientId, path: &Path) {
        if !self.waiting.is_empty() {
            self.waiting.remove(&(cid, path.to_path_buf()));
        }
    }

    pub(super) fn forget_waits_of(&mut self, cid: ClientId) {
        self.waiting.retain(|(c, _), _| *c != cid);
    }

    fn client_ref(&self, cid: ClientId) -> Json {
        match self.clients.get(cid) {
            Some(c) => Json::Obj(vec![
                ("id", Json::int(cid)),
                ("pid", Json::int(c.pid)),
                ("app", Json::str(&c.app)),
            ]),
            None => Json::Obj(vec![("id", Json::int(cid))]),
        }
    }

    fn file_json(&self, path: Option<&Path>, node: &FileNode, held: &Held) -> Json {
        let slot = node.shared();
        let producers = self.clients.producers(node.slot());
        let mut openers: BTreeSet<ClientId> =
            self.clients.openers(node.slot()).into_iter().collect();
        openers.extend(held.by_slot.get(&node.slot()).into_iter().flatten());
        let readers: Vec<Json> = openers
            .into_iter()
            .filter(|c| !producers.contains(c))
            .map(|c| self.client_ref(c))
            .collect();
        let waiting_readers = if node.state() == SlotState::Open {
            readers.len()
        } else {
            0
        };
        Json::Obj(vec![
            ("path", path.map_or(Json::Null, path_json)),
            ("size", Json::int(node.len())),
            ("state", Json::str(state_name(node.state()))),
            ("commit", Json::str(node.rule().commit.to_string())),
            ("fire", Json::str(node.rule().fire.to_string())),
            ("storage", Json::str(node.rule().storage.to_string())),
            ("permanent", Json::Bool(node.rule().permanent)),
            (
                "persisted",
                Json::Bool(node.persisted || node.backing == Backing::InPlace),
            ),
            (
                "producers",
                Json::Arr(producers.iter().map(|&c| self.client_ref(c)).collect()),
            ),
            ("readers", Json::Arr(readers)),
            // Readers of a file still being produced are the ones that may block on it.
            ("blocked_readers", Json::int(waiting_readers as u64)),
            // Threads sleeping on the file's futex right now, in any process.
            ("sleeping", Json::int(slot.waiters.load(SeqCst))),
            ("memory_charged", Json::int(node.memory_held())),
            ("released", Json::int(node.released)),
            ("spilled", Json::Bool(node.backing == Backing::Spilled)),
            // Written (and persisted) here, kept for the other nodes' readers by another node.
            ("kept_on", Json::opt(node.kept_on, |n| Json::int(n as u64))),
            // Another node's file: the node that keeps it, the one that writes it, and its state
            // and size there ("size" is what is cached here).
            (
                "home",
                Json::opt(node.remote.as_ref(), |r| {
                    Json::Obj(vec![
                        ("node", Json::int(r.home as u64)),
                        ("writer", Json::int(r.writer as u64)),
                        ("kept_here", Json::Bool(r.keeper)),
                        ("state", Json::str(state_name(r.state))),
                        ("size", Json::int(r.len)),
                    ])
                }),
            ),
        ])
    }

    /// The namespace's part of the `Status` reply: `(key, value)` pairs for its top-level object.
    pub fn report(&self) -> Vec<(&'static str, Json)> {
        let now = Instant::now();
        let held = Held::scan(self);
        let clients = self
            .clients
            .sorted()
            .into_iter()
            .map(|(id, c)| {
                let (producing, _) = self.clients.counts(id);
                let mut open: BTreeSet<u32> = self.clients.open_slots(id).collect();
                open.extend(held.by_client.get(&id).into_iter().flatten());
                let open_files = open.len();
                Json::Obj(vec![
                    ("id", Json::int(id)),
                    ("pid", Json::int(c.pid)),
                    ("app", Json::str(&c.app)),
                    ("capio_dir", path_json(&c.root)),
                    ("exited", Json::Bool(c.exited)),
                    ("producing", Json::int(producing as u64)),
                    ("open_files", Json::int(open_files as u64)),
                ])
            })
            .collect();
        let mut paths: Vec<(&PathBuf, &FileNode)> = self.files.iter().collect();
        paths.sort_by_key(|(p, _)| *p);
        let files_total = paths.len();
        let files = paths
            .into_iter()
            .take(MAX_FILES)
            .map(|(p, node)| self.file_json(Some(p), node, &held))
            .collect();
        let mut unlinked: Vec<(&u32, &FileNode)> = self.files.unlinked().collect();
        unlinked.sort_by_key(|(slot, _)| **slot);
        let unlinked = unlinked
            .into_iter()
            .map(|(_, node)| self.file_json(None, node, &held))
            .collect();
        let dirs = self
            .dirs
            .open()
            .filter_map(|p| {
                let dir = self.dirs.get(p)?;
                let made = dir.made.as_ref()?;
                Some(Json::Obj(vec![
                    ("path", path_json(p)),
                    ("commit", Json::str(made.rule.commit.to_string())),
                    ("entries", Json::int(dir.len() as u64)),
                    (
                        "producers",
                        Json::Arr(made.producers.iter().map(|&c| self.client_ref(c)).collect()),
                    ),
                ]))
            })
            .collect();
        let mut waits: Vec<(&WaitKey, &(Instant, Instant))> = self
            .waiting
            .iter()
            .filter(|(_, (_, last))| now - *last < WAIT_FRESH)
            .collect();
        waits.sort_by(|a, b| a.0.1.cmp(&b.0.1).then(a.0.0.cmp(&b.0.0)));
        let waits = waits
            .into_iter()
            .map(|((cid, path), (since, _))| {
                Json::Obj(vec![
                    ("path", path_json(path)),
                    ("client", self.client_ref(*cid)),
                    ("seconds", Json::Float((now - *since).as_secs_f64())),
                    (
                        "declared_producers",
                        Json::Arr(
                            self.rules
                                .declared_producers(path)
                                .iter()
                                .map(Json::str)
                                .collect(),
                        ),
                    ),
                ])
            })
            .collect();
        vec![
            (
                "uptime_seconds",
                Json::Float((now - self.started).as_secs_f64()),
            ),
            ("memory_limit", Json::opt(self.memory_limit(), Json::int)),
            ("memory_used", Json::int(self.memory_in_use())),
            ("memory_pooled", Json::int(self.memory_pooled())),
            (
                "memory_held_elsewhere",
                Json::int(self.memory_held_elsewhere()),
            ),
            ("memory_released", Json::int(self.memory_released())),
            ("memory_spilled", Json::int(self.memory_spilled())),
            (
                "spill_dir",
                Json::opt(self.spill_dir(), |d| Json::str(d.as_os_str().as_bytes())),
            ),
            ("pool_limit", Json::int(self.pool_limit())),
            ("live_clients", Json::int(self.live_clients() as u64)),
            ("teardown_requested", Json::Bool(self.teardown)),
            ("clients", Json::Arr(clients)),
            ("files_total", Json::int(files_total as u64)),
            ("files", Json::Arr(files)),
            ("unlinked_open_files", Json::Arr(unlinked)),
            ("uncommitted_dirs", Json::Arr(dirs)),
            ("waiting_opens", Json::Arr(waits)),
        ]
    }
}
