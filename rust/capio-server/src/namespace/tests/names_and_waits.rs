//! Directories on disk from their `Mkdir`, directories on disk before the run under `dirname`
//! rules, the one rule for waiting on a missing path, opens of directories, renames that commit,
//! and persisted files changed on disk behind the server's back.

use super::*;
use std::os::unix::fs::PermissionsExt;

fn cfg(json: &str) -> Fx {
    Fx::with_config(&format!(r#"{{"name": "wf", {json}}}"#))
}

fn listing(fx: &mut Fx, c: ClientId, rel: &str) -> Listing {
    let path = fx.p(rel);
    fx.ns.list(c, &path).unwrap()
}

fn is_wait(o: Result<Opened, FsError>) -> bool {
    matches!(o, Ok(Opened::Wait { .. }))
}

#[test]
fn opens_of_an_existing_directory_fail_as_the_kernel_says() {
    let mut fx = Fx::new();
    let a = fx.client("a");
    fx.ns.mkdir(a, &fx.p("made"), 0o755).unwrap();
    fs::create_dir(fx.p("disk")).unwrap();
    for dir in ["made", "disk"] {
        // `O_CREAT | O_EXCL` on anything that exists is EEXIST (mkstemp retries on it).
        assert_eq!(fx.errno(a, dir, RW | CREAT | EXCL), libc::EEXIST, "{dir}");
        assert_eq!(fx.errno(a, dir, RD | CREAT | EXCL), libc::EEXIST, "{dir}");
        assert_eq!(fx.errno(a, dir, RW | CREAT), libc::EISDIR, "{dir}");
        assert_eq!(fx.errno(a, dir, WR | CREAT | TRUNC), libc::EISDIR, "{dir}");
        assert_eq!(fx.errno(a, dir, WR), libc::EISDIR, "{dir}");
    }
    let root = fx.root.clone();
    assert_eq!(
        fx.ns
            .open(a, &root, RW | CREAT | EXCL, 0)
            .unwrap_err()
            .errno(),
        libc::EEXIST
    );
}

#[test]
fn a_rename_applies_the_new_names_rule_to_the_closes_already_made() {
    let mut fx = cfg(
        r#""IO_Graph": [{"name": "w", "input_stream": [], "output_stream": [],
        "streaming": [{"name": ["final"], "committed": "on_close"},
                      {"name": ["twice"], "committed": "on_close:2"}]}],
        "permanent": ["final", "twice"]"#,
    );
    let w = fx.client("w");
    let tmp = mem(fx.open(w, "tmp", WR | CREAT).unwrap());
    write(&fx, &tmp, 0, b"done");
    fx.ns.close(w, tmp.slot, true);
    assert_eq!(
        fx.state(tmp.slot),
        SlotState::Open,
        "no rule for the temp name"
    );
    fx.rename(w, "tmp", "final").unwrap();
    assert_eq!(fx.state(tmp.slot), SlotState::Committed, "closed once");
    assert_eq!(
        fx.ns.take_commits().len(),
        1,
        "persisted under its new name"
    );

    let two = mem(fx.open(w, "tmp2", WR | CREAT).unwrap());
    fx.ns.close(w, two.slot, true);
    fx.rename(w, "tmp2", "twice").unwrap();
    assert_eq!(fx.state(two.slot), SlotState::Open, "one close of two");
    mem(fx.open(w, "twice", WR).unwrap());
    fx.ns.close(w, two.slot, true);
    assert_eq!(fx.state(two.slot), SlotState::Committed);
}

#[test]
fn a_missing_path_waits_only_while_a_producer_may_appear() {
    let mut fx = Fx::new();
    let lone = fx.client("lone");
    assert_eq!(fx.errno(lone, "probe", RD), libc::ENOENT, "nobody else");
    let dir = fx.p("nodir");
    assert_eq!(fx.ns.list(lone, &dir).unwrap_err().errno(), libc::ENOENT);
    let other = fx.client("other");
    assert!(
        is_wait(fx.open(lone, "probe", RD)),
        "another step may create it"
    );
    let listing = fx.ns.list(lone, &dir).unwrap();
    assert!(listing.missing && !listing.committed && listing.entries.is_empty());
    fx.ns.exit(other, false).unwrap();
    assert_eq!(fx.errno(lone, "probe", RD), libc::ENOENT, "it left");

    // Declared producers decide, attached or not, whoever else is attached.
    let mut fx = cfg(r#""IO_Graph": [
        {"name": "w", "input_stream": [], "output_stream": ["out"]},
        {"name": "r", "input_stream": ["out"], "output_stream": []}]"#);
    let r = fx.client("r");
    assert!(is_wait(fx.open(r, "out", RD)), "w has not run yet");
    assert_eq!(fx.errno(r, "other", RD), libc::ENOENT, "undeclared, alone");
    let w = fx.client("w");
    assert_eq!(fx.errno(w, "out", RD), libc::ENOENT, "its own output");
    assert!(is_wait(fx.open(r, "out", RD)));
    fx.ns.exit(w, false).unwrap();
    let _other = fx.client("x");
    assert_eq!(fx.errno(r, "out", RD), libc::ENOENT, "w ran without it");
}

#[test]
fn mkdir_is_on_disk_at_once_with_its_mode_and_the_disk_sees_through_it() {
    let mut fx = Fx::new();
    let (a, b) = (fx.client("a"), fx.client("b"));
    fx.ns.mkdir(a, &fx.p("d"), 0o700).unwrap();
    fx.ns.mkdir(a, &fx.p("d/e"), 0o750).unwrap();
    let mode = |rel: &str| fs::metadata(fx.p(rel)).unwrap().permissions().mode() & 0o777;
    assert_eq!((mode("d"), mode("d/e")), (0o700, 0o750));
    assert!(!fx.ns.stat(b, &fx.p("d")).unwrap().committed);

    // Another program writes into it: CAPIO serves that file from disk and lists it.
    fs::write(fx.p("d/by_os"), b"os").unwrap();
    mem(fx.open(a, "d/capio", WR | CREAT).unwrap());
    assert!(matches!(
        fx.open(b, "d/by_os", RD).unwrap(),
        Opened::Disk { size: 2, .. }
    ));
    assert_eq!(fx.names(b, "d"), ["e", "capio", "by_os"]);

    fx.unlink(a, "d/by_os").unwrap();
    fx.rmdir(a, "d/e").unwrap();
    assert!(!fx.p("d/e").exists(), "rmdir removes it from disk");
    // With no CAPIO-CL file everything persists: nothing is removed at shutdown.
    fx.ns.shut_down();
    assert!(fx.ns.remove_transient_dirs().is_empty());
    assert!(fx.p("d").is_dir());
}

#[test]
fn only_empty_non_permanent_made_directories_are_removed_at_shutdown() {
    let mut fx = cfg(r#""IO_Graph": [], "permanent": ["keep", "full/f"]"#);
    fs::create_dir(fx.p("before")).unwrap();
    let a = fx.client("a");
    for d in ["keep", "tmp", "tmp/deep", "full", "holds_os_file"] {
        fx.ns.mkdir(a, &fx.p(d), 0o755).unwrap();
    }
    mem(fx.open(a, "tmp/deep/scratch", WR | CREAT).unwrap());
    mem(fx.open(a, "full/f", WR | CREAT).unwrap());
    fs::write(fx.p("holds_os_file/x"), b"").unwrap();
    let commits = fx.ns.exit(a, false).unwrap();
    for (path, generation) in commits {
        fx.persist(&path, generation);
    }
    fx.ns.shut_down();
    assert_eq!(
        fx.ns.remove_transient_dirs(),
        vec![fx.p("tmp"), fx.p("tmp/deep")]
    );
    assert!(fx.p("keep").is_dir() && fx.p("full/f").is_file() && fx.p("before").is_dir());
    assert!(fx.p("holds_os_file/x").exists());
}

#[test]
fn a_directory_on_disk_before_the_run_follows_its_dirname_rule() {
    let mut fx = cfg(
        r#""IO_Graph": [{"name": "w", "input_stream": [], "output_stream": [],
        "streaming": [{"dirname": ["tiles"], "committed": "on_n_files", "n_files": 3,
                       "mode": "no_update"}]}]"#,
    );
    fs::create_dir(fx.p("tiles")).unwrap();
    fs::write(fx.p("tiles/old"), b"").unwrap();
    let (w, r) = (fx.client("w"), fx.client("r"));
    let first = listing(&mut fx, r, "tiles");
    assert_eq!(
        (first.committed, first.fire, first.entries.len()),
        (false, Fire::NoUpdate, 1),
        "what was there is listed, and counts toward n_files"
    );
    mem(fx.open(w, "tiles/a", WR | CREAT).unwrap());
    assert!(!listing(&mut fx, r, "tiles").committed);
    assert!(listing(&mut fx, w, "tiles").producer);
    mem(fx.open(w, "tiles/b", WR | CREAT).unwrap());
    let done = listing(&mut fx, r, "tiles");
    assert_eq!((done.committed, done.entries.len()), (true, 3));
    assert!(fx.ns.stat(r, &fx.p("tiles")).unwrap().committed);
    fx.ns.shut_down();
    assert!(fx.ns.remove_transient_dirs().is_empty(), "never removed");
    assert!(fx.p("tiles/old").exists());
}

#[test]
fn the_capio_directory_itself_follows_its_dirname_rule() {
    let mut fx = Fx::with_rules(|root| {
        let json = format!(
            r#"{{"name": "wf", "IO_Graph": [{{"name": "w", "input_stream": [],
                "output_stream": [], "streaming": [{{"dirname": ["{}"],
                "committed": "on_n_files", "n_files": 1}}]}}]}}"#,
            root.display()
        );
        Rules::new(
            &capio_cl::Config::parse(&json, Path::new("t.json")).unwrap(),
            root,
        )
    });
    let (w, r) = (fx.client("w"), fx.client("r"));
    let root = fx.root.clone();
    assert!(
        !fx.ns.list(r, &root).unwrap().committed,
        "waits for its entry"
    );
    mem(fx.open(w, "x", WR | CREAT).unwrap());
    assert!(fx.ns.list(r, &root).unwrap().committed);
}

#[test]
fn an_adopted_directory_nobody_produces_is_complete_for_a_lone_lister() {
    let mut fx = cfg(
        r#""IO_Graph": [{"name": "w", "input_stream": [], "output_stream": [],
        "streaming": [{"dirname": ["d"], "committed": "on_n_files", "n_files": 5}]}]"#,
    );
    fs::create_dir(fx.p("d")).unwrap();
    let (r, other) = (fx.client("r"), fx.client("other"));
    assert!(
        !listing(&mut fx, r, "d").committed,
        "another step may still fill it"
    );
    fx.ns.exit(other, false).unwrap();
    assert!(
        !fx.ns.stat(r, &fx.p("d")).unwrap().committed,
        "not committed..."
    );
    assert!(
        listing(&mut fx, r, "d").committed,
        "...but nobody can add to it now"
    );
}

#[test]
fn a_persisted_file_removed_or_replaced_on_disk_is_not_served_from_memory() {
    let mut fx = Fx::new();
    let w = fx.client("w");
    let f = mem(fx.open(w, "data.bin", WR | CREAT).unwrap());
    write(&fx, &f, 0, b"run one");
    mem(fx.open(w, "kept.bin", WR | CREAT).unwrap());
    fx.exit_and_persist(w);
    let (r, other) = (fx.client("r"), fx.client("other"));
    let served = mem(fx.open(r, "data.bin", RD).unwrap());
    assert_eq!(read_all(&served, 7), b"run one");
    assert!(matches!(
        fx.open(r, "kept.bin", RD),
        Ok(Opened::Memory { .. })
    ));

    fs::remove_file(fx.p("data.bin")).unwrap();
    assert!(
        is_wait(fx.open(r, "data.bin", RD)),
        "missing now, and another step may create it"
    );
    assert_eq!(
        read_all(&served, 7),
        b"run one",
        "an open fd keeps its copy"
    );
    assert_eq!(
        fx.ns.stat(r, &fx.p("data.bin")).unwrap_err().errno(),
        libc::ENOENT
    );

    // Replaced by another program: the disk's version is the one served.
    mem(fx.open(other, "again.bin", WR | CREAT).unwrap());
    fx.exit_and_persist(other);
    fs::write(fx.p("again.bin.new"), b"replaced").unwrap();
    fs::rename(fx.p("again.bin.new"), fx.p("again.bin")).unwrap();
    match fx.open(r, "again.bin", RD).unwrap() {
        Opened::Disk { size, .. } => assert_eq!(size, 8),
        other => panic!("{other:?}"),
    }

    // A listing drops what vanished.
    fs::remove_file(fx.p("kept.bin")).unwrap();
    assert_eq!(fx.names(r, ""), ["again.bin"]);
    assert_eq!(fx.errno(r, "kept.bin", RD), libc::ENOENT, "r is alone now");
}

#[test]
fn a_made_directory_removed_on_disk_by_another_program_can_be_made_again() {
    let mut fx = Fx::new();
    let a = fx.client("a");
    fx.ns.mkdir(a, &fx.p("out"), 0o755).unwrap();
    fx.ns.mkdir(a, &fx.p("out/sub"), 0o755).unwrap();
    mem(fx.open(a, "out/sub/f", WR | CREAT).unwrap());
    fx.exit_and_persist(a);
    fs::remove_dir_all(fx.p("out")).unwrap();
    let b = fx.client("b");
    let out = fx.p("out");
    assert!(
        matches!(fx.ns.stat(b, &out), Err(FsError::NotFound)),
        "a made directory's attributes are the disk's"
    );
    fx.ns.mkdir(b, &out, 0o755).unwrap();
    assert!(fx.p("out").is_dir());
    assert!(
        fx.names(b, "out").is_empty(),
        "nothing of the old tree is left"
    );

    // Not while something in it lives only in memory.
    mem(fx.open(b, "out/mem", WR | CREAT).unwrap());
    fs::remove_dir_all(fx.p("out")).unwrap();
    assert_eq!(
        fx.ns.mkdir(b, &out, 0o755).unwrap_err().errno(),
        libc::EEXIST
    );
}

#[test]
fn a_rename_applies_the_new_directory_rule_to_producers_already_gone() {
    let mut fx = cfg(r#""IO_Graph": [
        {"name": "w", "input_stream": [], "output_stream": [],
         "streaming": [{"dirname": ["waiting"], "committed": "on_n_files", "n_files": 9}]},
        {"name": "never", "input_stream": [], "output_stream": ["waiting"]}]"#);
    let (w, r) = (fx.client("w"), fx.client("r"));
    fx.ns.mkdir(w, &fx.p("waiting"), 0o755).unwrap();
    fx.ns.exit(w, false).unwrap();
    assert!(
        !fx.ns.stat(r, &fx.p("waiting")).unwrap().committed,
        "its declared producer has not run"
    );
    fx.rename(r, "waiting", "plain").unwrap();
    assert!(
        fx.ns.stat(r, &fx.p("plain")).unwrap().committed,
        "no rule: committed, its producer is gone"
    );
}

#[test]
fn a_directory_a_previous_run_completed_is_committed_when_adopted() {
    let mut fx = cfg(
        r#""IO_Graph": [{"name": "w", "input_stream": [], "output_stream": ["tiles"],
        "streaming": [{"dirname": ["tiles"], "committed": "on_n_files", "n_files": 2,
                       "mode": "no_update"}]}]"#,
    );
    fs::create_dir(fx.p("tiles")).unwrap();
    fs::write(fx.p("tiles/t0"), b"").unwrap();
    fs::write(fx.p("tiles/t1"), b"").unwrap();
    let r = fx.client("r");
    let listed = listing(&mut fx, r, "tiles");
    assert_eq!((listed.committed, listed.entries.len()), (true, 2));
}
