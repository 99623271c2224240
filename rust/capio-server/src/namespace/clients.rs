//! The client registry: attached clients, and the one place that keeps the relation between
//! clients and files (who produces a file, who holds it open how often) in both directions, so a
//! client's files and a file's clients can never disagree.

use crate::error::FsError;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub type ClientId = u64;

pub(super) struct Client {
    pub(super) pid: i32,
    /// Its parent, grandparent, ... at attach time: the processes of its own step, which it is
    /// waited on by (a child read by its parent step) and which it never waits on.
    pub(super) ancestors: Vec<i32>,
    pub(super) app: String,
    /// Canonical CAPIO directory; every path the client names must lie inside it.
    pub(super) root: PathBuf,
    /// Its device: what a CAPIO file's identity is reported on (`reported_identity`).
    pub(super) root_dev: u64,
    /// Sent `Exit`: its later EOF is not a crash and it no longer counts as attached.
    pub(super) exited: bool,
}

/// A file's side of the relation, by slot.
#[derive(Default)]
struct FileLinks {
    producers: BTreeSet<ClientId>,
    /// Open count per client, so a crashed client's opens can be released.
    opens: HashMap<ClientId, u32>,
}

/// A client's side of the relation: the index of `FileLinks`, never written on its own.
#[derive(Default)]
struct ClientLinks {
    produces: HashSet<u32>,
    opened: HashSet<u32>,
}

/// What a client held when it left: the slots it produced and the ones it had open.
pub(super) struct Left {
    pub(super) client: Client,
    pub(super) produced: Vec<u32>,
    pub(super) opened: Vec<u32>,
}

static NOBODY: BTreeSet<ClientId> = BTreeSet::new();

pub(super) struct Clients {
    clients: HashMap<ClientId, Client>,
    next: ClientId,
    /// Every app that ever attached: an app seen before and without live clients now has
    /// terminated, which is how a reader learns that a declared producer will never create a file.
    apps_seen: HashSet<String>,
    by_file: HashMap<u32, FileLinks>,
    by_client: HashMap<ClientId, ClientLinks>,
}

impl Default for Clients {
    fn default() -> Clients {
        Clients {
            clients: HashMap::new(),
            next: 1,
            apps_seen: HashSet::new(),
            by_file: HashMap::new(),
            by_client: HashMap::new(),
        }
    }
}

impl Clients {
    /// Register a client. Its root must be an existing directory, given canonically (the client
    /// resolves it; a non-canonical spelling would split one directory into two namespaces).
    pub(super) fn attach(&mut self, pid: i32, app: &str, root: &Path) -> Result<ClientId, FsError> {
        if !root.is_absolute() {
            return Err(FsError::BadPath);
        }
        let real = fs::canonicalize(root).map_err(|_| FsError::NotFound)?;
        let meta = fs::metadata(&real).map_err(|_| FsError::NotFound)?;
        if !meta.is_dir() {
            return Err(FsError::NotFound);
        }
        if real != root {
            return Err(FsError::BadPath);
        }
        Ok(self.insert(Client {
            pid,
            ancestors: ancestors_of(pid),
            app: app.to_owned(),
            root: real,
            root_dev: meta.dev(),
            exited: false,
        }))
    }

    pub(super) fn insert(&mut self, client: Client) -> ClientId {
        let id = self.next;
        self.next += 1;
        self.apps_seen.insert(client.app.clone());
        self.clients.insert(id, client);
        id
    }

    pub(super) fn get(&self, cid: ClientId) -> Option<&Client> {
        self.clients.get(&cid)
    }

    /// A client that has not sent `Exit`.
    pub(super) fn live(&self, cid: ClientId) -> Option<&Client> {
        self.clients.get(&cid).filter(|c| !c.exited)
    }

    pub(super) fn app_of(&self, cid: ClientId) -> &str {
        self.clients.get(&cid).map_or("", |c| c.app.as_str())
    }

    /// Clients attached that have not sent `Exit`.
    pub(super) fn live_count(&self) -> usize {
        self.clients.values().filter(|c| !c.exited).count()
    }

    /// Clients by id, in id order.
    pub(super) fn sorted(&self) -> Vec<(ClientId, &Client)> {
        let mut all: Vec<(ClientId, &Client)> = self.clients.iter().map(|(&i, c)| (i, c)).collect();
        all.sort_by_key(|(id, _)| *id);
        all
    }

    /// An app that attached before and has no live client now (all exited or gone).
    #[cfg(test)]
    pub(super) fn app_terminated(&self, app: &str) -> bool {
        let (seen, live) = self.app_state(app);
        seen && !live
    }

    /// Whether `app` ever attached here, and whether a client of it lives here now.
    pub(super) fn app_state(&self, app: &str) -> (bool, bool) {
        let live = self.clients.values().any(|c| c.app == app && !c.exited);
        (self.apps_seen.contains(app), live)
    }

    /// The apps with live clients, and the apps seen whose clients have all terminated, sorted.
    pub(super) fn apps(&self) -> (Vec<String>, Vec<String>) {
        let live: BTreeSet<&String> = self
            .clients
            .values()
            .filter(|c| !c.exited)
            .map(|c| &c.app)
            .collect();
        let ended = self.apps_seen.iter().filter(|a| !live.contains(a));
        let mut ended: Vec<String> = ended.cloned().collect();
        ended.sort();
        (live.into_iter().cloned().collect(), ended)
    }

    /// Some live client other than `cid` and its ancestors: one that may still create a file.
    /// The caller's ancestors do not count: the step that started it is waiting for it, not
    /// making files for it.
    pub(super) fn another_may_create(&self, cid: ClientId) -> bool {
        let ancestors = self.clients.get(&cid).map_or(&[][..], |c| &c.ancestors);
        self.clients
            .iter()
            .any(|(id, c)| *id != cid && !c.exited && !ancestors.contains(&c.pid))
    }

    /// One of `producers` is an ancestor of `cid` (the step that started it, e.g. with
    /// `subprocess`): the child reads that step's files as the step itself would, without waiting
    /// for a commit that only the step's end brings — and the step is waiting for the child.
    /// Siblings (two ranks of one app) are not kin: each waits for the other's commits.
    pub(super) fn made_by_ancestor(&self, cid: ClientId, producers: &BTreeSet<ClientId>) -> bool {
        let Some(me) = self.clients.get(&cid) else {
            return false;
        };
        producers.iter().any(|id| {
            self.clients
                .get(id)
                .is_some_and(|p| me.ancestors.contains(&p.pid))
        })
    }

    /// `Exit`: the client stops producing. `Err` if it is unknown, `Ok(None)` if it had exited
    /// already, else the slots it produced (it produces none from now on).
    pub(super) fn exit(&mut self, cid: ClientId) -> Result<Option<Vec<u32>>, FsError> {
        let client = self.clients.get_mut(&cid).ok_or(FsError::Exited)?;
        if std::mem::replace(&mut client.exited, true) {
            return Ok(None);
        }
        let links = self.by_client.entry(cid).or_default();
        let produced: Vec<u32> = links.produces.drain().collect();
        for slot in &produced {
            if let Some(file) = self.by_file.get_mut(slot) {
                file.producers.remove(&cid);
            }
        }
        Ok(Some(produced))
    }

    /// The client's connection ended: it is gone, with every link to a file.
    pub(super) fn detach(&mut self, cid: ClientId) -> Option<Left> {
        let client = self.clients.remove(&cid)?;
        let links = self.by_client.remove(&cid).unwrap_or_default();
        for slot in &links.produces {
            if let Some(file) = self.by_file.get_mut(slot) {
                file.producers.remove(&cid);
            }
        }
        for slot in &links.opened {
            if let Some(file) = self.by_file.get_mut(slot) {
                file.opens.remove(&cid);
            }
        }
        Some(Left {
            client,
            produced: links.produces.into_iter().collect(),
            opened: links.opened.into_iter().collect(),
        })
    }

    pub(super) fn producers(&self, slot: u32) -> &BTreeSet<ClientId> {
        self.by_file.get(&slot).map_or(&NOBODY, |f| &f.producers)
    }

    pub(super) fn produces(&self, cid: ClientId, slot: u32) -> bool {
        self.producers(slot).contains(&cid)
    }

    pub(super) fn add_producer(&mut self, cid: ClientId, slot: u32) {
        self.by_file.entry(slot).or_default().producers.insert(cid);
        self.by_client.entry(cid).or_default().produces.insert(slot);
    }

    /// `cid` alone produces the file in `slot` from now on (a restart from scratch).
    pub(super) fn only_producer(&mut self, cid: ClientId, slot: u32) {
        let former = std::mem::take(&mut self.by_file.entry(slot).or_default().producers);
        for other in former {
            if let Some(links) = self.by_client.get_mut(&other) {
                links.produces.remove(&slot);
            }
        }
        self.add_producer(cid, slot);
    }

    /// Count an open of `slot` by `cid`.
    pub(super) fn opened(&mut self, cid: ClientId, slot: u32) {
        *self
            .by_file
            .entry(slot)
            .or_default()
            .opens
            .entry(cid)
            .or_default() += 1;
        self.by_client.entry(cid).or_default().opened.insert(slot);
    }

    /// Count a close: `None` when `cid` has no open of `slot` (a stale or duplicate close),
    /// else whether it was its last.
    pub(super) fn closed(&mut self, cid: ClientId, slot: u32) -> Option<bool> {
        let file = self.by_file.get_mut(&slot)?;
        let count = file.opens.get_mut(&cid)?;
        *count -= 1;
        if *count > 0 {
            return Some(false);
        }
        file.opens.remove(&cid);
        if let Some(links) = self.by_client.get_mut(&cid) {
            links.opened.remove(&slot);
        }
        Some(true)
    }

    pub(super) fn has_open(&self, cid: ClientId, slot: u32) -> bool {
        self.by_file
            .get(&slot)
            .is_some_and(|f| f.opens.contains_key(&cid))
    }

    /// Whether any client holds `slot` open.
    pub(super) fn is_open(&self, slot: u32) -> bool {
        self.by_file.get(&slot).is_some_and(|f| !f.opens.is_empty())
    }

    /// Opens of `slot`, over all clients.
    #[cfg(test)]
    pub(super) fn open_count(&self, slot: u32) -> u32 {
        self.by_file
            .get(&slot)
            .map_or(0, |f| f.opens.values().sum())
    }

    /// Clients holding `slot` open, in id order.
    pub(super) fn openers(&self, slot: u32) -> Vec<ClientId> {
        let mut out: Vec<ClientId> = self
            .by_file
            .get(&slot)
            .map(|f| f.opens.keys().copied().collect())
            .unwrap_or_default();
        out.sort_unstable();
        out
    }

    /// Slots `cid` has open through the server.
    pub(super) fn open_slots(&self, cid: ClientId) -> impl Iterator<Item = u32> + '_ {
        self.by_client
            .get(&cid)
            .into_iter()
            .flat_map(|l| l.opened.iter().copied())
    }

    /// Slots `cid` produces and has open: what the status report counts.
    pub(super) fn counts(&self, cid: ClientId) -> (usize, usize) {
        self.by_client
            .get(&cid)
            .map_or((0, 0), |l| (l.produces.len(), l.opened.len()))
    }

    /// The file in `slot` is gone: a stale slot number left with a client would name the slot's
    /// next file.
    pub(super) fn forget_file(&mut self, slot: u32) {
        let Some(file) = self.by_file.remove(&slot) else {
            return;
        };
        for cid in file.producers.iter().chain(file.opens.keys()) {
            if let Some(links) = self.by_client.get_mut(cid) {
                links.produces.remove(&slot);
                links.opened.remove(&slot);
            }
        }
    }

    /// Every link seen from both sides: `(by file, by client)` as sorted `(client, slot)`
    /// pairs for producing and for holding open. Equal when the index is consistent.
    #[cfg(test)]
    pub(super) fn both_sides(&self) -> [Vec<(ClientId, u32)>; 4] {
        let sorted = |mut v: Vec<(ClientId, u32)>| {
            v.sort_unstable();
            v
        };
        let file_prod = self
            .by_file
            .iter()
            .flat_map(|(&s, f)| f.producers.iter().map(move |&c| (c, s)));
        let file_open = self
            .by_file
            .iter()
            .flat_map(|(&s, f)| f.opens.keys().map(move |&c| (c, s)));
        let client_prod = self
            .by_client
            .iter()
            .flat_map(|(&c, l)| l.produces.iter().map(move |&s| (c, s)));
        let client_open = self
            .by_client
            .iter()
            .flat_map(|(&c, l)| l.opened.iter().map(move |&s| (c, s)));
        [
            sorted(file_prod.collect()),
            sorted(client_prod.collect()),
            sorted(file_open.collect()),
            sorted(client_open.collect()),
        ]
    }
}

/// The parent, grandparent, ... of `pid`, from `/proc` (empty when it cannot be read).
pub(super) fn ancestors_of(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let mut cur = pid;
    while out.len() < 64 {
        let Ok(stat) = fs::read_to_string(format!("/proc/{cur}/stat")) else {
            break;
        };
        // `pid (comm) state ppid ...`: comm may hold spaces and parentheses, so split after the
        // last ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|v| v.parse::<i32>().ok());
        match ppid {
            Some(p) if p > 1 => {
                out.push(p);
                cur = p;
            }
            _ => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(app: &str, pid: i32, ancestors: Vec<i32>) -> Client {
        Client {
            pid,
            ancestors,
            app: app.to_owned(),
            root: PathBuf::from("/r"),
            root_dev: 0,
            exited: false,
        }
    }

    /// The index agrees with the relation, and the relation is `produced` and `open`.
    fn links(c: &Clients, produced: &[(ClientId, u32)], open: &[(ClientId, u32)]) {
        let [file_prod, client_prod, file_open, client_open] = c.both_sides();
        assert_eq!(file_prod, client_prod, "producers seen from both sides");
        assert_eq!(file_open, client_open, "opens seen from both sides");
        assert_eq!(file_prod, produced);
        assert_eq!(file_open, open);
    }

    #[test]
    fn the_client_file_index_stays_consistent_through_every_change() {
        let mut c = Clients::default();
        let (a, b) = (
            c.insert(client("w", 10, vec![])),
            c.insert(client("r", 11, vec![])),
        );
        c.add_producer(a, 1);
        c.opened(a, 1);
        c.opened(a, 1);
        c.opened(b, 1);
        c.add_producer(b, 2);
        c.opened(b, 2);
        links(&c, &[(a, 1), (b, 2)], &[(a, 1), (b, 1), (b, 2)]);
        assert_eq!(c.open_count(1), 3);
        assert_eq!(c.openers(1), [a, b]);
        assert_eq!(c.counts(b), (1, 2));

        assert_eq!(c.closed(a, 1), Some(false), "a has another open");
        assert_eq!(c.closed(a, 1), Some(true));
        assert_eq!(c.closed(a, 1), None, "one close too many");
        assert_eq!(c.closed(a, 9), None, "an unknown slot");
        links(&c, &[(a, 1), (b, 2)], &[(b, 1), (b, 2)]);

        // A restart: the former producer is no producer in either direction.
        c.only_producer(b, 1);
        links(&c, &[(b, 1), (b, 2)], &[(b, 1), (b, 2)]);
        assert!(c.produces(b, 1) && !c.produces(a, 1));

        assert_eq!(
            c.exit(b).unwrap().map(|mut s| {
                s.sort();
                s
            }),
            Some(vec![1, 2])
        );
        assert_eq!(c.exit(b).unwrap(), None, "exits once");
        assert!(matches!(c.exit(99), Err(FsError::Exited)));
        links(&c, &[], &[(b, 1), (b, 2)]);
        assert!(c.is_open(1) && c.live(b).is_none() && c.get(b).is_some());

        c.add_producer(a, 3);
        c.forget_file(2);
        links(&c, &[(a, 3)], &[(b, 1)]);
        let left = c.detach(b).unwrap();
        assert_eq!((left.produced, left.opened), (vec![], vec![1]));
        assert!(c.detach(b).is_none(), "detaches once");
        links(&c, &[(a, 3)], &[]);
        assert!(!c.is_open(1));
    }

    #[test]
    fn apps_terminate_and_ancestors_are_kin_but_never_creators() {
        let mut c = Clients::default();
        let parent = c.insert(client("step", 100, vec![1]));
        let child = c.insert(client("child", 200, vec![100, 1]));
        let sibling = c.insert(client("step", 101, vec![1]));
        assert_eq!(c.live_count(), 3);
        assert!(c.made_by_ancestor(child, &BTreeSet::from([parent])));
        assert!(
            !c.made_by_ancestor(sibling, &BTreeSet::from([parent])),
            "siblings wait"
        );
        assert!(!c.made_by_ancestor(parent, &BTreeSet::from([child])));
        // The child's only other client is its parent... and a sibling of the parent.
        assert!(c.another_may_create(child));
        c.exit(sibling).unwrap();
        assert!(!c.another_may_create(child), "a parent waits for its child");
        assert!(c.another_may_create(parent));
        assert!(!c.app_terminated("step"), "one client of 'step' is live");
        c.exit(parent).unwrap();
        assert!(c.app_terminated("step"));
        assert!(!c.app_terminated("never-seen"));
        assert_eq!(c.app_of(child), "child");
        assert_eq!(c.live_count(), 1);
        let ids: Vec<ClientId> = c.sorted().into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids, [parent, child, sibling]);
    }
}
