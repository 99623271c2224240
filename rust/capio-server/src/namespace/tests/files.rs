//! Files: create, share, commit at the last producer's exit, crash and restart, reopen, inputs
//! on disk, open and close counts, and what a shutdown leaves.

use super::*;

#[test]
fn create_share_commit_on_exit_and_persist() {
    let mut fx = Fx::new();
    let (a, b) = (fx.client("writer"), fx.client("reader"));
    let w = mem(fx.open(a, "out.txt", WR | CREAT | TRUNC).unwrap());
    assert!(w.producer);
    assert_eq!(w.fire, Fire::Update);
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
        (NodeKind::File, 5, false, 0o666)
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
    assert_eq!(names, vec![(FILE_ENTRY, OsString::from("shared"))]);
    assert!(!fx.p("partial").exists());

    let again = mem(fx.open(b, "partial", WR | CREAT).unwrap());
    assert_eq!((again.slot, again.producer, again.size), (w.slot, true, 0));
    assert_eq!(fx.state(w.slot), SlotState::Open);
    // Written anew from nothing: what the crashed producer wrote is stale, never shown.
    let slot = fx.table.slot(again.slot).unwrap();
    assert_eq!((slot.len.load(SeqCst), slot.clean.load(SeqCst)), (0, 0));
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
        let n = fx.ns.files.get(&fx.p("f")).unwrap();
        (fx.ns.clients.open_count(n.slot()), n.closes_by_producers)
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
    let root = fx.ns.clients.sorted()[0].1.root.clone();
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
fn a_process_s_ancestors_are_read_from_proc() {
    let me = std::process::id() as i32;
    let parent = std::os::unix::process::parent_id() as i32;
    let ancestors = super::ancestors_of(me);
    assert_eq!(ancestors.first(), (parent > 1).then_some(parent).as_ref());
    assert!(!ancestors.contains(&me));
    assert!(super::ancestors_of(-5).is_empty());
}
