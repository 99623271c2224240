//! Unlink, rename and rmdir: open fds keep unlinked files, slots are freed at the last close,
//! and what is on disk follows the namespace.

use super::*;

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
    assert!(!fx.ns.clients.has_open(b, w.slot));
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
    assert!(!fx.ns.clients.produces(a, w.slot));
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
    fx.rename(a, "final.tmp", "final").unwrap();
    assert!(fx.ns.take_commits().is_empty());
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
    fx.rename(b, "done", "moved").unwrap();
    assert!(fx.ns.take_commits().is_empty());
    assert!(!fx.p("done").exists());
    assert_eq!(fs::read(fx.p("moved")).unwrap(), b"complete");
    assert!(fx.ns.files.get(&fx.p("moved")).unwrap().persisted);

    let pending_generation = commits[1].1;
    fx.rename(b, "pending", "later").unwrap();
    let again = fx.ns.take_commits();
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
    fx.rename(a, "f", "f").unwrap();
    assert!(fx.ns.take_commits().is_empty());
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
    assert_eq!(fx.ns.files.path_of(w.slot), Some(&fx.p("out/made")));
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
