//! Made directories: on disk at once, committed when their creator terminates, listed in
//! creation order, with their own attributes.

use super::*;

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
