//! Namespace decisions, driven directly (no sockets): a real memfd table and a scratch root.

use super::*;
use crate::testdir::TestDir;
use std::io::Write;
use std::os::unix::fs::FileExt;

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
    ns: Namespace,
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
        let ns = Namespace::new(table.clone(), rules(&root));
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
    fire: u32,
    size: u64,
    data: File,
}

fn mem(o: Opened) -> Mem {
    match o {
        Opened::Memory {
            slot,
            producer,
            size,
            data,
            fire,
        } => Mem {
            slot,
            producer,
            fire,
            size,
            data: File::from(data),
        },
        other => panic!("expected a memory open, got {other:?}"),
    }
}

fn write(fx: &Fx, m: &Mem, at: u64, bytes: &[u8]) {
    m.data.write_all_at(bytes, at).unwrap();
    fx.table
        .slot(m.slot)
        .unwrap()
        .publish(at + bytes.len() as u64);
}

#[test]
fn create_share_commit_on_exit_and_persist() {
    let mut fx = Fx::new();
    let (a, b) = (fx.client("writer"), fx.client("reader"));
    let w = mem(fx.open(a, "out.txt", WR | CREAT | TRUNC).unwrap());
    assert!(w.producer);
    assert_eq!(w.fire, capio_proto::fire::UPDATE);
    assert_ne!(w.slot, NAMESPACE_SLOT);
    assert_eq!(fx.state(w.slot), SlotState::Open);
    write(&fx, &w, 0, b"hello");

    let r = mem(fx.open(b, "out.txt", RD).unwrap());
    assert_eq!((r.slot, r.producer, r.size), (w.slot, false, 5));
    let mut buf = [0u8; 5];
    r.data.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(&buf, b"hello");
    let st = fx.ns.stat(b, &fx.p("out.txt")).unwrap();
    // The mode as asked: the client has applied its umask already, as `open(2)` would.
    assert_eq!(
        (st.kind, st.size, st.committed, st.mode),
        (node_kind::FILE, 5, false, 0o666)
    );

    assert_eq!(fx.exit_and_persist(a), vec![fx.p("out.txt")]);
    assert_eq!(fx.state(w.slot), SlotState::Committed);
    assert_eq!(fs::read(fx.p("out.txt")).unwrap(), b"hello");
    assert!(fx.ns.stat(b, &fx.p("out.txt")).unwrap().committed);
    assert!(matches!(
        fx.ns.stat(a, &fx.p("out.txt")),
        Err(FsError::Exited)
    ));
}

#[test]
fn hello_wants_an_existing_canonical_root_and_paths_inside_it() {
    let mut fx = Fx::new();
    assert!(matches!(
        fx.ns.hello(1, "x", &fx.p("missing")),
        Err(FsError::NotFound)
    ));
    let dotted = fx.root.join("../root");
    assert!(matches!(
        fx.ns.hello(1, "x", &dotted),
        Err(FsError::BadPath)
    ));
    let a = fx.client("a");
    let outside = fx.root.with_file_name("root2").join("f");
    assert_eq!(
        fx.ns.open(a, &outside, WR | CREAT, 0).unwrap_err().errno(),
        libc::EXDEV
    );
    fs::write(fx.root.parent().unwrap().join("secret"), b"s").unwrap();
    std::os::unix::fs::symlink("../secret", fx.p("link")).unwrap();
    assert_eq!(fx.errno(a, "link", RD), libc::EXDEV);
}

#[test]
fn posix_errors_for_bad_opens_and_mkdirs() {
    let mut fx = Fx::new();
    let a = fx.client("a");
    mem(fx.open(a, "f", WR | CREAT).unwrap());
    fs::create_dir(fx.p("diskdir")).unwrap();
    fx.ns.mkdir(a, &fx.p("d"), 0o777).unwrap();

    assert_eq!(fx.errno(a, "f", WR | CREAT | EXCL), libc::EEXIST);
    assert_eq!(fx.errno(a, "d", RD), libc::EISDIR);
    assert_eq!(fx.errno(a, "diskdir", RD), libc::EISDIR);
    let root = fx.root.clone();
    assert_eq!(
        fx.ns.open(a, &root, RD, 0).unwrap_err().errno(),
        libc::EISDIR
    );
    assert_eq!(fx.errno(a, "nodir/x", WR | CREAT), libc::ENOENT);
    assert_eq!(fx.errno(a, "f/x", WR | CREAT), libc::ENOTDIR);
    assert_eq!(fx.errno(a, "f/x", RD), libc::ENOTDIR);
    assert_eq!(fx.errno(a, "missing", WR), libc::ENOENT);
    assert_eq!(fx.errno(a, "missing", RW), libc::ENOENT);

    let mk = |fx: &mut Fx, rel: &str| {
        let p = fx.p(rel);
        fx.ns.mkdir(a, &p, 0o755).unwrap_err().errno()
    };
    assert_eq!(mk(&mut fx, "d"), libc::EEXIST);
    assert_eq!(mk(&mut fx, "f"), libc::EEXIST);
    assert_eq!(mk(&mut fx, "diskdir"), libc::EEXIST);
    assert_eq!(mk(&mut fx, "nodir/x"), libc::ENOENT);
    assert_eq!(mk(&mut fx, "f/x"), libc::ENOTDIR);

    assert!(matches!(
        fx.ns.stat(a, &fx.p("missing")),
        Err(FsError::NotFound)
    ));
    assert!(matches!(fx.ns.stat(a, &fx.p("f/x")), Err(FsError::NotDir)));
    assert!(matches!(fx.ns.list(a, &fx.p("f")), Err(FsError::NotDir)));
    assert!(matches!(
        fx.ns.list(a, &fx.p("nope")),
        Err(FsError::NotFound)
    ));
}

#[test]
fn mkdir_makes_a_dir_on_disk_at_once_that_commits_when_its_creator_terminates() {
    let mut fx = Fx::new();
    let (a, b) = (fx.client("a"), fx.client("b"));
    let before = fx.table.namespace().seq.load(SeqCst);
    fx.ns.mkdir(a, &fx.p("d"), 0o777).unwrap();
    assert_ne!(fx.table.namespace().seq.load(SeqCst), before);
    assert!(fx.p("d").is_dir(), "on disk at once, before its commit");
    let mode = fs::metadata(fx.p("d")).unwrap().mode() & 0o777;
    assert_eq!(
        mode, 0o777,
        "exactly the mode asked for: the client applied its umask"
    );
    let st = fx.ns.stat(b, &fx.p("d")).unwrap();
    assert_eq!(
        (st.kind, st.mode, st.committed),
        (node_kind::DIR, 0o777, false)
    );
    mem(fx.open(a, "d/inner", WR | CREAT).unwrap());
    fx.ns.mkdir(a, &fx.p("d/sub"), 0o700).unwrap();
    let listing = fx.ns.list(b, &fx.p("d")).unwrap();
    assert_eq!(
        listing,
        Listing {
            entries: vec![
                (node_kind::FILE, OsString::from("inner")),
                (node_kind::DIR, OsString::from("sub"))
            ],
            committed: false,
            fire: capio_proto::fire::UPDATE,
            producer: false,
            missing: false,
        }
    );
    assert!(fx.ns.list(a, &fx.p("d")).unwrap().producer);
    assert!(fx.p("d/sub").is_dir() && !fx.p("d/inner").exists());

    assert_eq!(fx.exit_and_persist(a), vec![fx.p("d/inner")]);
    assert!(fx.ns.list(b, &fx.p("d")).unwrap().committed);
    assert!(fx.ns.stat(b, &fx.p("d/sub")).unwrap().committed);
    assert!(fx.p("d/sub").is_dir() && fx.p("d/inner").is_file());
    let mode = fs::metadata(fx.p("d/sub")).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o700);
    let root = fx.ns.list(b, &fx.root).unwrap();
    assert!(root.committed, "the CAPIO directory is always complete");
}

#[test]
fn listing_is_creation_order_then_disk_without_temp_files() {
    let mut fx = Fx::new();
    fs::write(fx.p("z_disk"), b"").unwrap();
    fs::write(fx.p(".a.capio-tmp-1-2"), b"").unwrap();
    let a = fx.client("a");
    mem(fx.open(a, "b", WR | CREAT).unwrap());
    fx.ns.mkdir(a, &fx.p("a"), 0o755).unwrap();
    mem(fx.open(a, "c", WR | CREAT).unwrap());
    let names = fx.ns.list(a, &fx.root).unwrap().entries;
    assert_eq!(
        names,
        vec![
            (node_kind::FILE, OsString::from("b")),
            (node_kind::DIR, OsString::from("a")),
            (node_kind::FILE, OsString::from("c")),
            (node_kind::FILE, OsString::from("z_disk")),
        ]
    );
}

#[test]
fn a_missing_read_waits_on_the_namespace_generation() {
    let mut fx = Fx::new();
    let (a, b) = (fx.client("a"), fx.client("b"));
    let generation = match fx.open(b, "later", RD).unwrap() {
        Opened::Wait { generation } => generation,
        other => panic!("{other:?}"),
    };
    assert_eq!(generation, fx.table.namespace().seq.load(SeqCst));
    mem(fx.open(a, "later", WR | CREAT).unwrap());
    assert_ne!(fx.table.namespace().seq.load(SeqCst), generation);
    assert!(!mem(fx.open(b, "later", RD).unwrap()).producer);
}

#[test]
fn a_crash_aborts_what_only_it_produced_and_a_writer_can_restart_it() {
    let mut fx = Fx::new();
    let (a, b) = (fx.client("crashy"), fx.client("b"));
    let w = mem(fx.open(a, "partial", WR | CREAT).unwrap());
    write(&fx, &w, 0, b"half");
    let shared = mem(fx.open(a, "shared", WR | CREAT).unwrap());
    mem(fx.open(b, "shared", WR).unwrap());

    let gone = fx.ns.detach(a);
    assert!(gone.crashed);
    assert_eq!(gone.label, "app 'crashy' (pid 42)");
    assert_eq!(gone.aborted.len(), 1);
    assert_eq!(gone.aborted[0].path, fx.p("partial"));
    assert_eq!(gone.aborted[0].size, 4);
    assert_eq!(fx.state(w.slot), SlotState::Aborted);
    assert_eq!(
        fx.state(shared.slot),
        SlotState::Open,
        "b still produces it"
    );
    assert!(matches!(
        fx.ns.stat(b, &fx.p("partial")),
        Err(FsError::NotFound)
    ));
    assert_eq!(fx.errno(b, "partial", RD), libc::EIO);
    assert_eq!(fx.errno(b, "partial", WR), libc::EIO);
    let names: Vec<_> = fx.ns.list(b, &fx.root).unwrap().entries;
    assert_eq!(names, vec![(node_kind::FILE, OsString::from("shared"))]);
    assert!(!fx.p("partial").exists());

    let again = mem(fx.open(b, "partial", WR | CREAT).unwrap());
    assert_eq!((again.slot, again.producer, again.size), (w.slot, true, 0));
    assert_eq!(fx.state(w.slot), SlotState::Open);
    assert_eq!(again.data.metadata().unwrap().len(), 0);
    assert_eq!(fx.exit_and_persist(b).len(), 2);
}

#[test]
fn commit_waits_for_the_last_producer() {
    let mut fx = Fx::new();
    let (a, b) = (fx.client("a"), fx.client("b"));
    let w = mem(fx.open(a, "f", WR | CREAT).unwrap());
    assert!(mem(fx.open(b, "f", RW).unwrap()).producer);
    assert!(fx.exit_and_persist(a).is_empty());
    assert_eq!(fx.state(w.slot), SlotState::Open);
    assert_eq!(fx.exit_and_persist(b), vec![fx.p("f")]);
    assert_eq!(fx.state(w.slot), SlotState::Committed);
}

#[test]
fn reopening_a_committed_file_for_writing_reopens_it() {
    let mut fx = Fx::new();
    let (a, b) = (fx.client("a"), fx.client("b"));
    let w = mem(fx.open(a, "f", WR | CREAT).unwrap());
    write(&fx, &w, 0, b"first");
    let commits = fx.ns.exit(a, false).unwrap();
    assert_eq!(commits, vec![(fx.p("f"), 1)]);

    let w2 = mem(fx.open(b, "f", WR | TRUNC).unwrap());
    assert_eq!((w2.slot, w2.producer, w2.size), (w.slot, true, 0));
    assert_eq!(fx.state(w.slot), SlotState::Open);
    // The first commit's persistence is superseded and never lands.
    assert!(fx.ns.persist_job(&fx.p("f"), 1).unwrap().is_none());
    write(&fx, &w2, 0, b"2nd");
    assert_eq!(fx.exit_and_persist(b), vec![fx.p("f")]);
    assert_eq!(fs::read(fx.p("f")).unwrap(), b"2nd");
}

#[test]
fn disk_files_are_committed_inputs_and_import_on_write() {
    let mut fx = Fx::new();
    fs::write(fx.p("in.txt"), b"input data").unwrap();
    let a = fx.client("a");
    match fx.open(a, "in.txt", RD).unwrap() {
        Opened::Disk { size, file } => {
            assert_eq!(size, 10);
            assert_eq!(io::read_to_string(file).unwrap(), "input data");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fx.errno(a, "in.txt", RD | CREAT | EXCL), libc::EEXIST);
    assert!(fx.ns.stat(a, &fx.p("in.txt")).unwrap().committed);

    let m = mem(fx.open(a, "in.txt", RW).unwrap());
    assert_eq!((m.size, m.producer), (10, true));
    let mut buf = [0u8; 10];
    m.data.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(&buf, b"input data");
    let mut shared = &m.data;
    shared.write_all(b"IN").unwrap(); // the handed-over offset starts at 0
    assert_eq!(
        fs::read(fx.p("in.txt")).unwrap(),
        b"input data",
        "disk untouched"
    );
    fx.exit_and_persist(a);
    assert_eq!(fs::read(fx.p("in.txt")).unwrap(), b"INput data");

    fs::write(fx.p("t.txt"), b"old").unwrap();
    let b = fx.client("b");
    assert_eq!(mem(fx.open(b, "t.txt", WR | TRUNC).unwrap()).size, 0);
}

#[test]
fn closes_are_counted_per_client_and_released_at_detach() {
    let mut fx = Fx::new();
    let (a, b) = (fx.client("a"), fx.client("b"));
    let w = mem(fx.open(a, "f", WR | CREAT).unwrap());
    mem(fx.open(a, "f", WR).unwrap());
    mem(fx.open(b, "f", RD).unwrap());
    let node = |fx: &Fx| {
        let n = &fx.ns.files[&fx.p("f")];
        (n.opens.values().sum::<u32>(), n.closes_by_producers)
    };
    assert_eq!(node(&fx), (3, 0));
    fx.ns.close(a, w.slot, true);
    fx.ns.close(b, w.slot, false);
    fx.ns.close(b, w.slot, false); // one too many: ignored
    fx.ns.close(a, u32::MAX, false);
    assert_eq!(node(&fx), (1, 1));
    fx.ns.detach(a);
    assert_eq!(node(&fx), (0, 1));
}

#[test]
fn teardown_is_due_when_the_last_live_client_exits() {
    let mut fx = Fx::new();
    let (a, b) = (fx.client("a"), fx.client("b"));
    assert!(!fx.ns.teardown_due());
    fx.ns.exit(a, true).unwrap();
    assert!(!fx.ns.teardown_due(), "b is still attached");
    assert!(!fx.ns.detach(a).crashed);
    fx.ns.exit(b, false).unwrap();
    assert!(fx.ns.teardown_due());
    assert_eq!(fx.ns.live_clients(), 0);
    // Decided: a late client is refused (it attaches to a fresh server), never taken on by one
    // that is about to stop.
    let root = fx.ns.clients.values().next().unwrap().root.clone();
    let late = fx.ns.hello(4242, "late", &root);
    assert!(matches!(late, Err(FsError::Closing)), "{late:?}");
    assert_eq!(FsError::Closing.errno(), libc::ESHUTDOWN);
}

#[test]
fn shutdown_reports_unpersisted_files_and_aborts_open_ones() {
    let mut fx = Fx::new();
    let (a, b) = (fx.client("a"), fx.client("b"));
    let open = mem(fx.open(a, "open", WR | CREAT).unwrap());
    write(&fx, &open, 0, b"xyz");
    mem(fx.open(b, "done", WR | CREAT).unwrap());
    fx.exit_and_persist(b);
    let lost = fx.ns.shut_down();
    assert_eq!(
        lost,
        vec![Lost {
            path: fx.p("open"),
            size: 3,
            apps: vec!["a".into()],
            state: SlotState::Open
        }]
    );
    assert_eq!(fx.state(open.slot), SlotState::Aborted);
}

#[test]
fn two_roots_never_see_each_other() {
    let mut fx = Fx::new();
    let other = fx.root.with_file_name("other");
    fs::create_dir(&other).unwrap();
    let a = fx.client("a");
    let b = fx.ns.hello(7, "b", &other).unwrap();
    mem(fx.open(a, "f", WR | CREAT).unwrap());
    assert!(matches!(
        fx.ns.stat(b, &other.join("f")),
        Err(FsError::NotFound)
    ));
    assert_eq!(fx.ns.stat(b, &fx.p("f")).unwrap_err().errno(), libc::EXDEV);
}

// ---- unlink, rename, rmdir ------------------------------------------------------------------

impl Fx {
    fn unlink(&mut self, c: ClientId, rel: &str) -> Result<(), FsError> {
        let path = self.p(rel);
        self.ns.unlink(c, &path)
    }

    fn rmdir(&mut self, c: ClientId, rel: &str) -> Result<(), FsError> {
        let path = self.p(rel);
        self.ns.rmdir(c, &path)
    }

    fn rename(
        &mut self,
        c: ClientId,
        src: &str,
        dst: &str,
    ) -> Result<Vec<(PathBuf, u64)>, FsError> {
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

#[test]
fn unlink_keeps_open_fds_working_and_frees_the_slot_at_the_last_close() {
    let mut fx = Fx::new();
    let (a, b) = (fx.client("a"), fx.client("b"));
    let w = mem(fx.open(a, "f", WR | CREAT).unwrap());
    write(&fx, &w, 0, b"data");
    let r = mem(fx.open(b, "f", RD).unwrap());
    let before = fx.seq();
    fx.unlink(a, "f").unwrap();
    assert_ne!(fx.seq(), before);
    assert!(matches!(fx.ns.stat(b, &fx.p("f")), Err(FsError::NotFound)));
    assert!(fx.names(b, "").is_empty());
    assert!(matches!(fx.open(b, "f", RD).unwrap(), Opened::Wait { .. }));

    // Both fds still work, and the producer's commit still releases the reader...
    write(&fx, &w, 4, b"+more");
    assert_eq!(read_all(&r, 9), b"data+more");
    assert!(
        fx.exit_and_persist(a).is_empty(),
        "...but never persists it"
    );
    assert_eq!(fx.state(w.slot), SlotState::Committed);
    assert!(!fx.p("f").exists());

    fx.ns.close(a, w.slot, true);
    assert_eq!(
        fx.state(w.slot),
        SlotState::Committed,
        "b still has it open"
    );
    fx.ns.close(b, r.slot, false);
    assert_eq!(fx.state(w.slot), SlotState::Free);
    assert!(!fx.ns.clients[&b].opened.contains(&w.slot));
    let again = mem(fx.open(b, "g", WR | CREAT).unwrap());
    assert_eq!((again.slot, again.size), (w.slot, 0), "the slot is reused");
    assert_eq!(fx.state(again.slot), SlotState::Open);
}

#[test]
fn an_unlinked_file_nobody_has_open_is_freed_at_once_and_forgotten_by_its_producer() {
    let mut fx = Fx::new();
    let (a, b) = (fx.client("a"), fx.client("b"));
    let w = mem(fx.open(a, "f", WR | CREAT).unwrap());
    fx.ns.close(a, w.slot, true);
    fx.unlink(b, "f").unwrap();
    assert_eq!(fx.state(w.slot), SlotState::Free);
    assert!(!fx.ns.clients[&a].produces.contains(&w.slot));
    // The reused slot belongs to b's file: a's crash must not abort it.
    let g = mem(fx.open(b, "g", WR | CREAT).unwrap());
    assert_eq!(g.slot, w.slot);
    assert!(fx.ns.detach(a).aborted.is_empty());
    assert_eq!(fx.state(g.slot), SlotState::Open);
}

#[test]
fn unlink_removes_disk_copies_and_disk_files_but_never_a_symlink_target() {
    let mut fx = Fx::new();
    let a = fx.client("a");
    mem(fx.open(a, "kept", WR | CREAT).unwrap());
    fx.exit_and_persist(a);
    let a = fx.client("a2");
    assert!(fx.p("kept").exists());
    fx.unlink(a, "kept").unwrap();
    assert!(!fx.p("kept").exists(), "the persisted copy goes too");

    fs::write(fx.p("input"), b"in").unwrap();
    fx.unlink(a, "input").unwrap();
    assert!(!fx.p("input").exists());

    let outside = fx.root.with_file_name("target");
    fs::write(&outside, b"t").unwrap();
    std::os::unix::fs::symlink(&outside, fx.p("link")).unwrap();
    fx.unlink(a, "link").unwrap();
    assert!(fs::symlink_metadata(fx.p("link")).is_err());
    assert!(outside.exists(), "the link goes, not its target");

    std::os::unix::fs::symlink(fx.root.parent().unwrap(), fx.p("up")).unwrap();
    assert_eq!(fx.unlink(a, "up/target").unwrap_err().errno(), libc::EXDEV);
    assert!(outside.exists());
}

#[test]
fn unlink_errors_are_posix() {
    let mut fx = Fx::new();
    let a = fx.client("a");
    mem(fx.open(a, "f", WR | CREAT).unwrap());
    fx.ns.mkdir(a, &fx.p("d"), 0o755).unwrap();
    fs::create_dir(fx.p("diskdir")).unwrap();
    let root = fx.root.clone();
    let errno = |fx: &mut Fx, rel: &str| fx.unlink(a, rel).unwrap_err().errno();
    assert_eq!(errno(&mut fx, "d"), libc::EISDIR);
    assert_eq!(errno(&mut fx, "diskdir"), libc::EISDIR);
    assert_eq!(fx.ns.unlink(a, &root).unwrap_err().errno(), libc::EISDIR);
    assert_eq!(errno(&mut fx, "missing"), libc::ENOENT);
    assert_eq!(errno(&mut fx, "nodir/x"), libc::ENOENT);
    assert_eq!(errno(&mut fx, "f/x"), libc::ENOTDIR);
    let outside = fx.root.with_file_name("elsewhere");
    assert_eq!(fx.ns.unlink(a, &outside).unwrap_err().errno(), libc::EXDEV);
}

#[test]
fn unlinking_an_aborted_file_clears_it_and_a_persist_in_flight_is_discarded() {
    let mut fx = Fx::new();
    let (a, b) = (fx.client("crashy"), fx.client("b"));
    mem(fx.open(a, "partial", WR | CREAT).unwrap());
    fx.ns.detach(a);
    // Someone else attached who may still create it: a reader waits rather than failing.
    let _other = fx.client("other");
    assert_eq!(fx.unlink(b, "partial").unwrap_err().errno(), libc::ENOENT);
    assert!(matches!(
        fx.open(b, "partial", RD).unwrap(),
        Opened::Wait { .. }
    ));

    mem(fx.open(b, "out", WR | CREAT).unwrap());
    let commits = fx.ns.exit(b, false).unwrap();
    let job = fx
        .ns
        .persist_job(&commits[0].0, commits[0].1)
        .unwrap()
        .unwrap();
    let temp = persist::write_temp(&job).unwrap();
    let c = fx.client("c");
    fx.unlink(c, "out").unwrap();
    assert!(!fx.ns.install(&job, temp).unwrap());
    assert_eq!(
        fs::read_dir(&fx.root).unwrap().count(),
        0,
        "no file, no temp"
    );
}

#[test]
fn rename_publishes_a_file_to_a_waiting_reader_and_persists_it_under_the_new_name() {
    let mut fx = Fx::new();
    let (a, b) = (fx.client("producer"), fx.client("consumer"));
    let generation = match fx.open(b, "final", RD).unwrap() {
        Opened::Wait { generation } => generation,
        other => panic!("{other:?}"),
    };
    let w = mem(fx.open(a, "final.tmp", WR | CREAT).unwrap());
    write(&fx, &w, 0, b"payload");
    assert!(fx.rename(a, "final.tmp", "final").unwrap().is_empty());
    assert_ne!(fx.seq(), generation);

    let r = mem(fx.open(b, "final", RD).unwrap());
    assert_eq!((r.slot, r.producer, r.size), (w.slot, false, 7));
    assert_eq!(fx.state(w.slot), SlotState::Open, "still being produced");
    assert!(matches!(
        fx.ns.stat(b, &fx.p("final.tmp")),
        Err(FsError::NotFound)
    ));
    assert_eq!(fx.names(b, ""), vec!["final"]);
    assert_eq!(fx.exit_and_persist(a), vec![fx.p("final")]);
    assert_eq!(fs::read(fx.p("final")).unwrap(), b"payload");
    assert!(!fx.p("final.tmp").exists());
}

#[test]
fn rename_replaces_the_destination_whose_open_fds_keep_the_old_file() {
    let mut fx = Fx::new();
    let (a, b) = (fx.client("a"), fx.client("b"));
    let old = mem(fx.open(a, "dst", WR | CREAT).unwrap());
    write(&fx, &old, 0, b"old");
    let reader = mem(fx.open(b, "dst", RD).unwrap());
    let new = mem(fx.open(a, "src", WR | CREAT).unwrap());
    write(&fx, &new, 0, b"new!");
    fx.rename(a, "src", "dst").unwrap();

    assert_eq!(read_all(&reader, 3), b"old");
    assert_eq!(fx.ns.stat(b, &fx.p("dst")).unwrap().size, 4);
    assert_eq!(mem(fx.open(b, "dst", RD).unwrap()).slot, new.slot);
    assert_eq!(fx.exit_and_persist(a), vec![fx.p("dst")]);
    assert_eq!(fs::read(fx.p("dst")).unwrap(), b"new!");
    fx.ns.close(b, reader.slot, false);
    assert_eq!(
        fx.state(old.slot),
        SlotState::Committed,
        "its writer's fd is still open"
    );
    fx.ns.detach(a);
    assert_eq!(fx.state(old.slot), SlotState::Free);
}

#[test]
fn rename_of_a_persisted_file_moves_it_on_disk_and_an_unpersisted_one_is_persisted_anew() {
    let mut fx = Fx::new();
    let a = fx.client("a");
    let w = mem(fx.open(a, "done", WR | CREAT).unwrap());
    write(&fx, &w, 0, b"complete");
    mem(fx.open(a, "pending", WR | CREAT).unwrap());
    fs::write(fx.p("moved"), b"stale").unwrap();
    let commits = fx.ns.exit(a, false).unwrap();
    let done_generation = commits[0].1;
    fx.persist(&fx.p("done"), done_generation);

    let b = fx.client("b");
    assert!(fx.rename(b, "done", "moved").unwrap().is_empty());
    assert!(!fx.p("done").exists());
    assert_eq!(fs::read(fx.p("moved")).unwrap(), b"complete");
    assert!(fx.ns.files[&fx.p("moved")].persisted);

    let pending_generation = commits[1].1;
    let again = fx.rename(b, "pending", "later").unwrap();
    assert_eq!(again, vec![(fx.p("later"), pending_generation)]);
    assert!(
        fx.ns
            .persist_job(&fx.p("pending"), pending_generation)
            .unwrap()
            .is_none(),
        "the persist under the old name is superseded"
    );
    fx.persist(&fx.p("later"), pending_generation);
    assert!(fx.p("later").exists());
}

#[test]
fn rename_errors_are_posix() {
    let mut fx = Fx::new();
    let a = fx.client("a");
    mem(fx.open(a, "f", WR | CREAT).unwrap());
    fx.ns.mkdir(a, &fx.p("d"), 0o755).unwrap();
    fs::create_dir(fx.p("diskdir")).unwrap();
    let errno = |fx: &mut Fx, src: &str, dst: &str| fx.rename(a, src, dst).unwrap_err().errno();
    assert_eq!(errno(&mut fx, "missing", "x"), libc::ENOENT);
    assert_eq!(errno(&mut fx, "f", "nodir/x"), libc::ENOENT);
    assert_eq!(errno(&mut fx, "f", "f/x"), libc::ENOTDIR);
    assert_eq!(errno(&mut fx, "f", "d"), libc::EISDIR);
    assert_eq!(errno(&mut fx, "f", "diskdir"), libc::EISDIR);
    assert_eq!(errno(&mut fx, "d", "d/inside"), libc::EINVAL);
    assert_eq!(errno(&mut fx, "d", "f"), libc::ENOTDIR);
    let (root, f) = (fx.root.clone(), fx.p("f"));
    assert_eq!(
        fx.ns.rename(a, &root, &fx.p("r")).unwrap_err().errno(),
        libc::EBUSY
    );
    assert_eq!(fx.ns.rename(a, &f, &root).unwrap_err().errno(), libc::EBUSY);
    let outside = fx.root.with_file_name("elsewhere");
    assert_eq!(
        fx.ns.rename(a, &f, &outside).unwrap_err().errno(),
        libc::EXDEV
    );
    assert_eq!(
        fx.ns.rename(a, &outside, &f).unwrap_err().errno(),
        libc::EXDEV
    );
    assert!(fx.rename(a, "f", "f").unwrap().is_empty());
    assert!(fx.ns.stat(a, &f).is_ok());
}

#[test]
fn rename_moves_a_directory_tree_in_the_namespace_and_on_disk() {
    let mut fx = Fx::new();
    // Directories reach the disk when their creator terminates.
    let maker = fx.client("maker");
    for dir in ["d", "d/sub", "empty", "full"] {
        fx.ns.mkdir(maker, &fx.p(dir), 0o755).unwrap();
    }
    fx.ns.exit(maker, false).unwrap();
    let a = fx.client("a");
    let open = mem(fx.open(a, "d/sub/open", WR | CREAT).unwrap());
    mem(fx.open(a, "d/first", WR | CREAT).unwrap());
    fs::write(fx.p("full/x"), b"").unwrap();

    assert_eq!(
        fx.rename(a, "d", "full").unwrap_err().errno(),
        libc::ENOTEMPTY
    );
    fx.rename(a, "d", "empty").unwrap();
    assert!(!fx.p("d").exists() && fx.p("empty/sub").is_dir());
    assert!(matches!(fx.ns.stat(a, &fx.p("d")), Err(FsError::NotFound)));
    assert_eq!(fx.names(a, "empty"), vec!["sub", "first"]);
    assert_eq!(fx.names(a, "empty/sub"), vec!["open"]);
    let moved = mem(fx.open(a, "empty/sub/open", RD).unwrap());
    assert_eq!(moved.slot, open.slot);
    let mut persisted = fx.exit_and_persist(a);
    persisted.sort();
    assert_eq!(persisted, vec![fx.p("empty/first"), fx.p("empty/sub/open")]);
    assert!(fx.p("empty/sub/open").is_file());
}

#[test]
fn rename_of_disk_entries_moves_links_and_namespace_files_inside_disk_dirs() {
    let mut fx = Fx::new();
    let a = fx.client("a");
    fs::write(fx.p("input"), b"in").unwrap();
    fx.rename(a, "input", "renamed").unwrap();
    assert_eq!(fs::read(fx.p("renamed")).unwrap(), b"in");

    let outside = fx.root.with_file_name("target");
    fs::write(&outside, b"t").unwrap();
    std::os::unix::fs::symlink(&outside, fx.p("link")).unwrap();
    fx.rename(a, "link", "link2").unwrap();
    assert_eq!(fs::read_link(fx.p("link2")).unwrap(), outside);

    fs::create_dir(fx.p("in")).unwrap();
    let w = mem(fx.open(a, "in/made", WR | CREAT).unwrap());
    fx.rename(a, "in", "out").unwrap();
    assert!(fx.p("out").is_dir());
    assert_eq!(fx.ns.by_slot[&w.slot], fx.p("out/made"));
    assert_eq!(fx.exit_and_persist(a), vec![fx.p("out/made")]);
    assert!(!fx.p("in").exists());
}

#[test]
fn rmdir_removes_empty_directories_only() {
    let mut fx = Fx::new();
    let a = fx.client("a");
    fx.ns.mkdir(a, &fx.p("d"), 0o755).unwrap();
    mem(fx.open(a, "d/f", WR | CREAT).unwrap());
    fx.ns.mkdir(a, &fx.p("e"), 0o755).unwrap();
    fs::create_dir(fx.p("disk")).unwrap();
    fs::write(fx.p("disk/x"), b"").unwrap();
    fs::create_dir(fx.p("temps")).unwrap();
    fs::write(fx.p("temps/.x.capio-tmp-1-2"), b"").unwrap();
    std::os::unix::fs::symlink(fx.p("e"), fx.p("elink")).unwrap();
    let root = fx.root.clone();

    let errno = |fx: &mut Fx, rel: &str| fx.rmdir(a, rel).unwrap_err().errno();
    assert_eq!(errno(&mut fx, "d"), libc::ENOTEMPTY);
    assert_eq!(errno(&mut fx, "disk"), libc::ENOTEMPTY);
    assert_eq!(errno(&mut fx, "d/f"), libc::ENOTDIR);
    assert_eq!(errno(&mut fx, "elink"), libc::ENOTDIR);
    assert_eq!(errno(&mut fx, "missing"), libc::ENOENT);
    assert_eq!(fx.ns.rmdir(a, &root).unwrap_err().errno(), libc::EBUSY);

    let before = fx.seq();
    fx.rmdir(a, "e").unwrap();
    assert_ne!(fx.seq(), before);
    assert!(!fx.p("e").exists());
    assert!(matches!(fx.ns.stat(a, &fx.p("e")), Err(FsError::NotFound)));
    fx.rmdir(a, "temps").unwrap();
    assert!(!fx.p("temps").exists(), "leftover temp files do not count");
    fx.unlink(a, "d/f").unwrap();
    fx.rmdir(a, "d").unwrap();
    let mut left = fx.names(a, "");
    left.sort();
    assert_eq!(left, vec!["disk", "elink"]);
}

#[test]
fn rmdir_forgets_aborted_files_inside() {
    let mut fx = Fx::new();
    let (a, b) = (fx.client("crashy"), fx.client("b"));
    fx.ns.mkdir(b, &fx.p("d"), 0o755).unwrap();
    mem(fx.open(a, "d/partial", WR | CREAT).unwrap());
    fx.ns.detach(a);
    fx.rmdir(b, "d").unwrap();
    assert!(fx.ns.files.is_empty());
    assert!(matches!(
        fx.ns.stat(b, &fx.p("d/partial")),
        Err(FsError::NotFound)
    ));
}

#[test]
fn child_lists_keep_creation_order_across_removals_and_compaction() {
    let mut dir = DirNode::default();
    for i in 0..100 {
        dir.add(OsStr::new(&format!("n{i}")));
    }
    for i in (0..100).filter(|i| i % 10 != 0) {
        dir.remove(OsStr::new(&format!("n{i}")));
    }
    dir.add(OsStr::new("n0"));
    dir.add(OsStr::new("n5"));
    dir.remove(OsStr::new("n20"));
    let names: Vec<_> = dir
        .names()
        .map(|n| n.to_string_lossy().into_owned())
        .collect();
    let want = [
        "n0", "n10", "n30", "n40", "n50", "n60", "n70", "n80", "n90", "n5",
    ];
    assert_eq!(names, want);
    assert!(dir.children.len() < 30, "holes were compacted");
    assert_eq!(dir.index.len(), want.len());
}

mod capio_cl_rules;
mod names_and_waits;

#[test]
fn the_memory_budget_grants_in_increments_refuses_past_the_limit_and_frees_on_removal() {
    let mut fx = Fx::new();
    let limit = 1 << 20;
    fx.ns.set_memory_limit(Some(limit));
    let (a, b) = (fx.client("writer"), fx.client("reader"));
    let w = mem(fx.open(a, "a.bin", WR | CREAT).unwrap());
    let granted = fx.ns.reserve(a, w.slot, 1000).unwrap();
    assert!(granted >= 1000 && granted <= limit, "{granted}");
    assert!(
        granted > 1000,
        "headroom so the next writes need no request"
    );
    assert_eq!(fx.ns.memory_used(), granted);
    // Inside the grant: the same answer, nothing charged twice.
    assert_eq!(fx.ns.reserve(a, w.slot, 10).unwrap(), granted);
    // A reader of the file cannot reserve for it only by being someone else...
    assert_eq!(
        fx.ns.reserve(b, w.slot, 10).unwrap_err().errno(),
        libc::EBADF
    );
    // ...and an unknown slot is not open.
    assert_eq!(fx.ns.reserve(a, 60, 10).unwrap_err().errno(), libc::EBADF);
    // Past the limit: ENOSPC, and the charge is unchanged.
    let e = fx.ns.reserve(a, w.slot, limit + 1).unwrap_err();
    assert_eq!(e.errno(), libc::ENOSPC);
    assert_eq!(fx.ns.memory_used(), granted);
    // Exactly the limit still fits (no headroom left to add).
    assert_eq!(fx.ns.reserve(a, w.slot, limit).unwrap(), limit);
    let v = mem(fx.open(a, "b.bin", WR | CREAT).unwrap());
    assert_eq!(
        fx.ns.reserve(a, v.slot, 1).unwrap_err().errno(),
        libc::ENOSPC
    );
    // The commit gives back what was granted but not written.
    write(&fx, &w, 0, &[7u8; 4096]);
    fx.exit_and_persist(a);
    assert_eq!(fx.ns.memory_used(), 4096);
    // Unlinked and closed by everyone: nothing is charged any more.
    let c = fx.client("cleaner");
    fx.ns.close(a, w.slot, true);
    fx.ns.close(a, v.slot, true);
    fx.ns.unlink(c, &fx.p("a.bin")).unwrap();
    assert_eq!(fx.ns.memory_used(), 0);
}

#[test]
fn truncation_restart_and_imports_are_charged_and_fs_files_are_not() {
    let mut fx = Fx::with_config(
        r#"{"name": "wf", "IO_Graph": [{"name": "w", "input_stream": [],
            "output_stream": ["disk.bin"]}], "storage": {"fs": ["disk.bin"]}}"#,
    );
    fx.ns.set_memory_limit(Some(64 << 10));
    let a = fx.client("w");
    let w = mem(fx.open(a, "m.bin", WR | CREAT).unwrap());
    let g = fx.ns.reserve(a, w.slot, 32 << 10).unwrap();
    assert_eq!(fx.ns.memory_used(), g);
    // O_TRUNC empties the data object, and its charge.
    let w2 = mem(fx.open(a, "m.bin", WR | TRUNC).unwrap());
    assert_eq!((w2.slot, fx.ns.memory_used()), (w.slot, 0));
    // `storage: fs` bytes live on disk: unlimited.
    let d = mem(fx.open(a, "disk.bin", WR | CREAT).unwrap());
    assert_eq!(fx.ns.reserve(a, d.slot, 1 << 30).unwrap(), u64::MAX);
    assert_eq!(fx.ns.memory_used(), 0);
    // An input on disk opened for writing is copied into memory: it must fit first.
    fs::write(fx.p("big.in"), vec![1u8; 100 << 10]).unwrap();
    fs::write(fx.p("small.in"), vec![1u8; 10 << 10]).unwrap();
    assert_eq!(fx.errno(a, "big.in", RW), libc::ENOSPC);
    assert!(!fx.ns.files.contains_key(&fx.p("big.in")));
    mem(fx.open(a, "small.in", RW).unwrap());
    assert_eq!(fx.ns.memory_used(), 10 << 10);
}

#[test]
fn without_a_limit_every_reservation_is_unlimited() {
    let mut fx = Fx::new();
    let a = fx.client("w");
    let w = mem(fx.open(a, "x", WR | CREAT).unwrap());
    assert_eq!(fx.ns.reserve(a, w.slot, 1 << 40).unwrap(), u64::MAX);
    assert_eq!(fx.ns.memory_used(), 0);
}

#[test]
fn the_report_names_clients_files_readers_and_waiting_openers() {
    let mut fx = Fx::new();
    let (a, b) = (fx.client("producer"), fx.client("consumer"));
    let w = mem(fx.open(a, "x", WR | CREAT).unwrap());
    write(&fx, &w, 0, b"12345");
    mem(fx.open(b, "x", RD).unwrap());
    assert!(matches!(fx.open(b, "later", RD), Ok(Opened::Wait { .. })));
    let text = String::from_utf8(crate::json::Json::Obj(fx.ns.report()).to_bytes()).unwrap();
    for needle in [
        r#""app":"producer""#,
        r#""app":"consumer""#,
        r#""size":5,"state":"open""#,
        r#""blocked_readers":1"#,
        r#""waiting_opens":[{"path":"#,
        "later",
        r#""live_clients":2"#,
        r#""memory_limit":null"#,
    ] {
        assert!(text.contains(needle), "{needle} not in {text}");
    }
    // The opener got its file: it no longer waits.
    let made = mem(fx.open(a, "later", WR | CREAT).unwrap());
    mem(fx.open(b, "later", RD).unwrap());
    let text = String::from_utf8(crate::json::Json::Obj(fx.ns.report()).to_bytes()).unwrap();
    assert!(text.contains(r#""waiting_opens":[]"#), "{text}");
    // A departed client's waits go with it.
    assert!(matches!(fx.open(b, "never", RD), Ok(Opened::Wait { .. })));
    fx.ns.detach(b);
    let text = String::from_utf8(crate::json::Json::Obj(fx.ns.report()).to_bytes()).unwrap();
    assert!(text.contains(r#""waiting_opens":[]"#), "{text}");
    drop(made);
}

#[test]
fn o_directory_is_never_a_file_and_never_waits() {
    let mut fx = Fx::new();
    let a = fx.client("w");
    mem(fx.open(a, "f", WR | CREAT).unwrap());
    fs::write(fx.p("disk.txt"), b"x").unwrap();
    let dir = libc::O_DIRECTORY as u32;
    assert_eq!(fx.errno(a, "f", RD | dir), libc::ENOTDIR);
    assert_eq!(fx.errno(a, "disk.txt", RD | dir), libc::ENOTDIR);
    assert_eq!(fx.errno(a, "missing", RD | dir), libc::ENOENT);
    assert_eq!(fx.errno(a, "missing", WR | CREAT | dir), libc::EINVAL);
    assert_eq!(fx.errno(a, "", RD | dir), libc::EISDIR);
    assert!(!fx.p("missing").exists());
}

#[test]
fn attributes_live_with_the_file_and_reach_its_disk_copy() {
    let mut fx = Fx::new();
    let (a, b) = (fx.client("a"), fx.client("b"));
    let path = fx.p("tool");
    let w = mem(fx.ns.open(a, &path, WR | CREAT, 0o600).unwrap());
    write(&fx, &w, 0, b"#!/bin/sh\n");
    assert_eq!(fx.ns.stat(b, &path).unwrap().mode, 0o600);
    let set = sys::Attrs {
        mode: Some(0o751),
        atime: sys::TimeSet::At(1_000_000_007),
        mtime: sys::TimeSet::At(-2_500_000_000),
        ..sys::Attrs::default()
    };
    let before = fx.ns.stat(b, &path).unwrap();
    fx.ns.set_attrs(b, &path, &set, false).unwrap();
    let st = fx.ns.stat(b, &path).unwrap();
    assert_eq!(
        (st.mode, st.atime_ns, st.mtime_ns, st.file_type),
        (0o751, 1_000_000_007, -2_500_000_000, libc::S_IFREG)
    );
    assert!(st.ctime_ns >= before.ctime_ns);
    // A write moves mtime, as on a file system.
    write(&fx, &w, 10, b"exit 0\n");
    assert!(fx.ns.stat(b, &path).unwrap().mtime_ns > 0);

    assert_eq!(fx.exit_and_persist(a), vec![path.clone()]);
    let meta = fs::metadata(&path).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o751);
    let later = fx.ns.stat(b, &path).unwrap();
    assert_eq!(
        (meta.mtime(), meta.mtime_nsec()),
        (
            later.mtime_ns.div_euclid(1_000_000_000),
            later.mtime_ns.rem_euclid(1_000_000_000)
        )
    );
    // After the persist, a change reaches the disk copy at once.
    let again = sys::Attrs {
        mode: Some(0o444),
        mtime: sys::TimeSet::At(7_000_000_000),
        ..sys::Attrs::default()
    };
    fx.ns.set_attrs(b, &path, &again, false).unwrap();
    let meta = fs::metadata(&path).unwrap();
    assert_eq!((meta.mode() & 0o7777, meta.mtime()), (0o444, 7));
    assert!(matches!(
        fx.ns.set_attrs(b, &fx.p("missing"), &again, false),
        Err(FsError::NotFound)
    ));
}

#[test]
fn a_made_directory_keeps_its_attributes() {
    let mut fx = Fx::new();
    let a = fx.client("a");
    let d = fx.p("d");
    fx.ns.mkdir(a, &d, 0o3777).unwrap();
    assert_eq!(
        fx.ns.stat(a, &d).unwrap().mode,
        0o1777,
        "mkdir(2) drops set-gid"
    );
    let set = sys::Attrs {
        mode: Some(0o700),
        atime: sys::TimeSet::At(5),
        mtime: sys::TimeSet::At(6),
        ..sys::Attrs::default()
    };
    fx.ns.set_attrs(a, &d, &set, false).unwrap();
    let st = fx.ns.stat(a, &d).unwrap();
    assert_eq!(
        (st.mode, st.atime_ns, st.mtime_ns, st.file_type),
        (0o700, 5, 6, libc::S_IFDIR)
    );
}

#[test]
fn a_symlink_on_disk_leads_to_the_capio_file_it_names_but_never_out_of_the_root() {
    let mut fx = Fx::new();
    let (a, b) = (fx.client("a"), fx.client("b"));
    let w = mem(fx.open(a, "data.bin", WR | CREAT).unwrap());
    write(&fx, &w, 0, b"12345");
    std::os::unix::fs::symlink("data.bin", fx.p("link")).unwrap();
    std::os::unix::fs::symlink("link", fx.p("link2")).unwrap();
    let st = fx.ns.stat(b, &fx.p("link2")).unwrap();
    assert_eq!((st.kind, st.size), (node_kind::FILE, 5));
    let l = fx.ns.lstat(b, &fx.p("link")).unwrap();
    assert_eq!(
        (l.kind, l.file_type, l.size),
        (node_kind::OTHER, libc::S_IFLNK, 8)
    );
    // lstat of a CAPIO file is its stat.
    assert_eq!(fx.ns.lstat(b, &fx.p("data.bin")).unwrap().size, 5);
    let r = mem(fx.open(b, "link", RD).unwrap());
    assert_eq!(r.slot, w.slot);
    // Outside the root: refused as before, never followed.
    std::os::unix::fs::symlink("/etc/passwd", fx.p("out")).unwrap();
    assert_eq!(
        fx.ns.stat(b, &fx.p("out")).unwrap_err().errno(),
        libc::EXDEV
    );
    std::os::unix::fs::symlink("loop", fx.p("loop")).unwrap();
    assert_eq!(
        fx.ns.stat(b, &fx.p("loop")).unwrap_err().errno(),
        libc::ELOOP
    );
}

#[test]
fn memory_is_counted_without_a_limit() {
    let mut fx = Fx::new();
    let a = fx.client("a");
    let w = mem(fx.open(a, "big", WR | CREAT).unwrap());
    write(&fx, &w, 0, &[7u8; 4096]);
    assert_eq!(fx.ns.memory_limit(), None);
    assert_eq!(fx.ns.memory_in_use(), 4096);
    fx.ns.unlink(a, &fx.p("big")).unwrap();
    assert_eq!(fx.ns.memory_in_use(), 4096, "still held by its open fd");
    fx.ns.close(a, w.slot, true);
    assert_eq!(fx.ns.memory_in_use(), 0);
}

#[test]
fn a_process_s_ancestors_are_read_from_proc() {
    let me = std::process::id() as i32;
    let parent = std::os::unix::process::parent_id() as i32;
    let ancestors = super::ancestors_of(me);
    assert_eq!(ancestors.first(), (parent > 1).then_some(parent).as_ref());
    assert!(!ancestors.contains(&me));
    assert!(super::ancestors_of(-5).is_empty());
}
