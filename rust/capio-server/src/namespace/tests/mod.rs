//! Namespace decisions, driven directly (no sockets): a real memfd table and a scratch root.

use super::clients::ancestors_of;
use super::*;
use crate::persist;
use crate::testdir::TestDir;
use capio_cl::{CommitRule, Rules};
use capio_proto::table::NAMESPACE_SLOT;
use capio_proto::{EntryKind, Fire, NodeKind, SlotState, StateTable, sys};

/// Plain (not a link) list entries, as the namespace reports them.
const FILE_ENTRY: EntryKind = EntryKind::plain(NodeKind::File);
const DIR_ENTRY: EntryKind = EntryKind::plain(NodeKind::Dir);
use std::fs;
use std::io;
use std::io::Write;
use std::ops::{Deref, DerefMut};
use std::os::unix::fs::FileExt;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::Ordering::SeqCst;

const RD: u32 = libc::O_RDONLY as u32;
const WR: u32 = libc::O_WRONLY as u32;
const RW: u32 = libc::O_RDWR as u32;
const CREAT: u32 = libc::O_CREAT as u32;
const EXCL: u32 = libc::O_EXCL as u32;
const TRUNC: u32 = libc::O_TRUNC as u32;

struct Fx {
    _dir: TestDir,
    root: PathBuf,
    table: Arc<StateTable>,
    ns: TestNs,
}

/// The namespace as the tests drive it: the operations that return what they caused keep the
/// signatures they had when commits were queued inside the namespace, and queue them here, so
/// `exit` and `take_commits` hand back everything committed since the last take, as before.
struct TestNs {
    ns: Namespace,
    queued: Vec<Commit>,
}

impl Deref for TestNs {
    type Target = Namespace;
    fn deref(&self) -> &Namespace {
        &self.ns
    }
}

impl DerefMut for TestNs {
    fn deref_mut(&mut self) -> &mut Namespace {
        &mut self.ns
    }
}

impl TestNs {
    fn hello(&mut self, pid: i32, app: &str, root: &Path) -> Result<ClientId, FsError> {
        self.ns.hello(pid, app, root)
    }

    fn unlink(&mut self, c: ClientId, path: &Path) -> Result<(), FsError> {
        self.ns.unlink(c, path)
    }

    fn set_attrs(
        &mut self,
        c: ClientId,
        path: &Path,
        attrs: &sys::Attrs,
        nofollow: bool,
    ) -> Result<(), FsError> {
        self.ns.set_attrs(c, path, attrs, nofollow)
    }

    fn queue<T>(&mut self, done: Done<T>) -> Result<T, FsError> {
        self.queued.extend(done.caused.commits());
        done.result
    }

    fn open(&mut self, c: ClientId, path: &Path, flags: u32, mode: u32) -> Result<Opened, FsError> {
        let done = self.ns.open(c, path, flags, mode);
        self.queue(done)
    }

    fn close(&mut self, c: ClientId, slot: u32, writable: bool) {
        self.close_tracked(c, slot, writable, 0);
    }

    /// A close that retires the handle's progress cell.
    fn close_tracked(&mut self, c: ClientId, slot: u32, writable: bool, progress: u32) {
        let caused = self.ns.close(c, slot, writable, progress);
        self.queued.extend(caused.commits());
    }

    fn mkdir(&mut self, c: ClientId, path: &Path, mode: u32) -> Result<(), FsError> {
        let done = self.ns.mkdir(c, path, mode);
        self.queue(done)
    }

    fn list(&mut self, c: ClientId, path: &Path) -> Result<Listing, FsError> {
        let done = self.ns.list(c, path);
        self.queue(done)
    }

    fn rename(&mut self, c: ClientId, src: &Path, dst: &Path) -> Result<(), FsError> {
        let done = self.ns.rename(c, src, dst);
        self.queue(done)
    }

    fn exit(&mut self, c: ClientId, teardown: bool) -> Result<Vec<Commit>, FsError> {
        let caused = self.ns.exit(c, teardown)?;
        self.queued.extend(caused.commits());
        Ok(self.take_commits())
    }

    fn detach(&mut self, c: ClientId) -> Departure {
        let mut gone = self.ns.detach(c);
        self.queued
            .extend(std::mem::take(&mut gone.caused).commits());
        gone
    }

    /// Everything committed (and permanent) since the last take, in path order.
    fn take_commits(&mut self) -> Vec<Commit> {
        let mut out = std::mem::take(&mut self.queued);
        out.sort();
        out
    }
}

impl Fx {
    fn new() -> Fx {
        Fx::with_rules(|_| Rules::default_no_config())
    }

    /// A namespace under the rules of a CAPIO-CL file, whose relative paths name files in the root.
    fn with_config(json: &str) -> Fx {
        Fx::with_rules(|root| {
            let config = capio_cl::Config::parse(json, Path::new("test.json")).unwrap();
            Rules::new(&config, root)
        })
    }

    fn with_rules(rules: impl FnOnce(&Path) -> Rules) -> Fx {
        let dir = TestDir::new();
        let root = dir.path().join("root");
        fs::create_dir(&root).unwrap();
        let table = Arc::new(StateTable::create(64).unwrap());
        let ns = TestNs {
            ns: Namespace::new(table.clone(), rules(&root)),
            queued: Vec::new(),
        };
        Fx {
            _dir: dir,
            root,
            table,
            ns,
        }
    }

    fn client(&mut self, app: &str) -> ClientId {
        let root = self.root.clone();
        self.ns.hello(42, app, &root).unwrap()
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    fn open(&mut self, c: ClientId, rel: &str, flags: u32) -> Result<Opened, FsError> {
        let path = self.p(rel);
        self.ns.open(c, &path, flags, 0o666)
    }

    fn errno(&mut self, c: ClientId, rel: &str, flags: u32) -> i32 {
        self.open(c, rel, flags).unwrap_err().errno()
    }

    fn state(&self, slot: u32) -> SlotState {
        self.table.slot(slot).unwrap().state()
    }

    /// Commit through `Exit` and persist like the handler does.
    fn exit_and_persist(&mut self, c: ClientId) -> Vec<PathBuf> {
        let mut done = Vec::new();
        for (path, generation) in self.ns.exit(c, false).unwrap() {
            let job = self.ns.persist_job(&path, generation).unwrap().unwrap();
            let temp = persist::write_temp(&job).unwrap();
            assert!(self.ns.install(&job, temp).unwrap());
            done.push(path);
        }
        done
    }
}

struct Mem {
    slot: u32,
    producer: bool,
    fire: Fire,
    size: u64,
    data: File,
    progress: u32,
    direct_write: bool,
}

fn mem(o: Opened) -> Mem {
    match o {
        Opened::Memory {
            slot,
            producer,
            size,
            data,
            fire,
            progress,
            direct_write,
        } => Mem {
            slot,
            producer,
            fire,
            size,
            data: File::from(data),
            progress,
            direct_write,
        },
        other => panic!("expected a memory open, got {other:?}"),
    }
}

/// Write and publish as a client does (recycled memory shows nothing of its previous file).
fn write(fx: &Fx, m: &Mem, at: u64, bytes: &[u8]) {
    use std::os::fd::AsFd;
    let slot = fx.table.slot(m.slot).unwrap();
    let end = at + bytes.len() as u64;
    slot.prepare_write(m.data.as_fd(), at, end, false).unwrap();
    m.data.write_all_at(bytes, at).unwrap();
    slot.publish(end);
}

impl Fx {
    fn unlink(&mut self, c: ClientId, rel: &str) -> Result<(), FsError> {
        let path = self.p(rel);
        self.ns.unlink(c, &path)
    }

    fn rmdir(&mut self, c: ClientId, rel: &str) -> Result<(), FsError> {
        let path = self.p(rel);
        self.ns.rmdir(c, &path)
    }

    fn rename(&mut self, c: ClientId, src: &str, dst: &str) -> Result<(), FsError> {
        let (src, dst) = (self.p(src), self.p(dst));
        self.ns.rename(c, &src, &dst)
    }

    fn seq(&self) -> u32 {
        self.table.namespace().seq.load(SeqCst)
    }

    fn names(&mut self, c: ClientId, rel: &str) -> Vec<String> {
        let dir = if rel.is_empty() {
            self.root.clone()
        } else {
            self.p(rel)
        };
        let listing = self.ns.list(c, &dir).unwrap();
        listing
            .entries
            .into_iter()
            .map(|(_, n)| n.to_string_lossy().into_owned())
            .collect()
    }

    fn persist(&mut self, path: &Path, generation: u64) {
        let job = self.ns.persist_job(path, generation).unwrap().unwrap();
        let temp = persist::write_temp(&job).unwrap();
        assert!(self.ns.install(&job, temp).unwrap());
    }
}

fn read_all(m: &Mem, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    m.data.read_exact_at(&mut buf, 0).unwrap();
    buf
}

mod attrs_and_report;
mod capio_cl_rules;
mod direct_write;
mod dirs;
mod file_table;
mod files;
mod memory;
mod names_and_waits;
mod release;
mod remote;
mod unlink_rename;
