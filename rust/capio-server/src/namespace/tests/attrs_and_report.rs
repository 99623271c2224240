//! Attributes (`stat`, `set_attrs`, symbolic links on disk) and the status report.

use super::*;

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
fn a_symlink_on_disk_leads_to_the_capio_file_it_names_but_never_out_of_the_root() {
    let mut fx = Fx::new();
    let (a, b) = (fx.client("a"), fx.client("b"));
    let w = mem(fx.open(a, "data.bin", WR | CREAT).unwrap());
    write(&fx, &w, 0, b"12345");
    std::os::unix::fs::symlink("data.bin", fx.p("link")).unwrap();
    std::os::unix::fs::symlink("link", fx.p("link2")).unwrap();
    let st = fx.ns.stat(b, &fx.p("link2")).unwrap();
    assert_eq!((st.kind, st.size), (NodeKind::File, 5));
    let l = fx.ns.lstat(b, &fx.p("link")).unwrap();
    assert_eq!(
        (l.kind, l.file_type, l.size),
        (NodeKind::Other, libc::S_IFLNK, 8)
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
fn a_link_target_climbing_above_slash_stays_at_slash_as_in_the_kernel() {
    let mut fx = Fx::new();
    let (a, b) = (fx.client("a"), fx.client("b"));
    let w = mem(fx.open(a, "data.bin", WR | CREAT).unwrap());
    write(&fx, &w, 0, b"12345");
    // More `..` than the root is deep, then the root's absolute path: the kernel resolves this
    // to the root (`/..` is `/`), so the link reaches the CAPIO file, which is only in memory.
    let depth = fx.root.components().count();
    let climb = "../".repeat(depth + 3);
    let inside = fx.root.strip_prefix("/").unwrap().join("data.bin");
    let target = format!("{climb}{}", inside.display());
    std::os::unix::fs::symlink(&target, fx.p("up")).unwrap();
    assert!(!fx.p("up").exists(), "data.bin must not be on disk");
    let st = fx.ns.stat(b, &fx.p("up")).unwrap();
    assert_eq!((st.kind, st.size), (NodeKind::File, 5));
    assert_eq!(mem(fx.open(b, "up", RD).unwrap()).slot, w.slot);
    // Clamped at `/` and outside the root: refused, never followed.
    std::os::unix::fs::symlink(format!("{climb}etc/passwd"), fx.p("out")).unwrap();
    assert_eq!(
        fx.ns.stat(b, &fx.p("out")).unwrap_err().errno(),
        libc::EXDEV
    );
}
