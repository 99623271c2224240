//! CAPIO-CL enforcement in the namespace: commit rules of files and directories, fire rules,
//! declared producers, permanent, exclude and storage.

use super::super::commit::{dir_due, dir_due_at_termination, file_due};
use super::*;
use capio_proto::Fire;
use std::os::unix::fs::MetadataExt;

const NO_UPDATE: Fire = Fire::NoUpdate;

/// A CAPIO-CL file of workflow `wf` with these steps and further top-level keys (`, "k": v`).
fn config(steps: &str, extra: &str) -> String {
    format!(r#"{{"name": "wf", "IO_Graph": [{steps}]{extra}}}"#)
}

/// One step named `app` with these streaming rules and nothing declared.
fn step(app: &str, streaming: &str) -> String {
    format!(
        r#"{{"name": "{app}", "input_stream": [], "output_stream": [], "streaming": [{streaming}]}}"#
    )
}

impl Fx {
    /// Persist what the namespace queued, the way the handlers do (a rename for `storage: fs`).
    fn persist_queued(&mut self) -> Vec<PathBuf> {
        let mut done = Vec::new();
        for (path, generation) in self.ns.take_commits() {
            let job = self.ns.persist_job(&path, generation).unwrap().unwrap();
            if !(job.in_place && self.ns.install_in_place(&job).unwrap()) {
                let temp = persist::write_temp(&job).unwrap();
                assert!(self.ns.install(&job, temp).unwrap());
            }
            done.push(path);
        }
        done
    }

    fn listing(&mut self, c: ClientId, rel: &str) -> Listing {
        self.ns.list(c, &self.p(rel)).unwrap()
    }

    fn dir_committed(&self, c: ClientId, rel: &str) -> bool {
        self.ns.stat(c, &self.p(rel)).unwrap().committed
    }

    fn hidden_files(&self, rel: &str) -> Vec<PathBuf> {
        let dir = if rel.is_empty() {
            self.root.clone()
        } else {
            self.p(rel)
        };
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| persist::is_data_name(p.file_name().unwrap()))
            .collect()
    }
}

#[test]
fn the_rule_functions_decide_as_documented() {
    let none = |_: &[PathBuf]| false;
    let all = |_: &[PathBuf]| true;
    assert!(file_due(&CommitRule::OnClose(0), 1, none));
    assert!(file_due(&CommitRule::OnClose(1), 1, none));
    assert!(!file_due(&CommitRule::OnClose(3), 2, none));
    assert!(file_due(&CommitRule::OnClose(3), 3, none));
    assert!(!file_due(&CommitRule::OnFile(vec!["/a".into()]), 9, none));
    assert!(file_due(&CommitRule::OnFile(vec!["/a".into()]), 0, all));
    assert!(!file_due(&CommitRule::OnTermination, 9, all));
    assert!(!file_due(&CommitRule::OnNFiles(0), 9, all));

    assert!(dir_due(&CommitRule::OnNFiles(2), |n| n <= 2, none));
    assert!(!dir_due(&CommitRule::OnNFiles(3), |n| n <= 2, all));
    assert!(dir_due(&CommitRule::OnFile(vec![]), |_| false, all));
    assert!(!dir_due(&CommitRule::OnTermination, |_| true, all));
    assert!(!dir_due(&CommitRule::OnClose(1), |_| true, all));

    assert!(dir_due_at_termination(&CommitRule::OnTermination, false));
    assert!(dir_due_at_termination(&CommitRule::OnClose(2), false));
    assert!(!dir_due_at_termination(&CommitRule::OnNFiles(2), false));
    assert!(dir_due_at_termination(&CommitRule::OnNFiles(2), true));
    assert!(!dir_due_at_termination(&CommitRule::OnFile(vec![]), false));
}

#[test]
fn on_close_n_counts_only_closes_by_producers_and_counts_afresh_after_a_reopen() {
    let rules = step(
        "w",
        r#"{"name": ["two"], "committed": "on_close:2"}, {"name": ["one"], "committed": "on_close"}"#,
    );
    let mut fx = Fx::with_config(&config(&rules, r#", "permanent": ["two", "one"]"#));
    let (w, r) = (fx.client("w"), fx.client("r"));
    let f = mem(fx.open(w, "two", WR | CREAT).unwrap());
    write(&fx, &f, 0, b"ab");
    for _ in 0..3 {
        let seen = mem(fx.open(r, "two", RD).unwrap());
        fx.ns.close(r, seen.slot, false);
    }
    assert_eq!(
        fx.state(f.slot),
        SlotState::Open,
        "readers' closes count for nothing"
    );
    fx.ns.close(w, f.slot, true);
    assert_eq!(fx.state(f.slot), SlotState::Open);
    mem(fx.open(w, "two", WR).unwrap());
    fx.ns.close(w, f.slot, true);
    assert_eq!(fx.state(f.slot), SlotState::Committed, "the second close");
    assert_eq!(fx.persist_queued(), vec![fx.p("two")]);
    assert_eq!(fs::read(fx.p("two")).unwrap(), b"ab");

    // Plain `on_close`: the first close by a producer.
    let one = mem(fx.open(w, "one", WR | CREAT).unwrap());
    fx.ns.close(w, one.slot, true);
    assert_eq!(fx.state(one.slot), SlotState::Committed);

    // Writing again starts a new count.
    let again = mem(fx.open(w, "two", WR).unwrap());
    assert_eq!(fx.state(again.slot), SlotState::Open);
    fx.ns.close(w, again.slot, true);
    assert_eq!(fx.state(again.slot), SlotState::Open);
}

#[test]
fn on_file_commits_with_its_dependencies_in_cascade_and_disk_inputs_count_as_committed() {
    let rules = step(
        "w",
        r#"{"name": ["b"], "committed": "on_file", "file_deps": ["a"]},
           {"name": ["c"], "committed": "on_file", "file_deps": ["b", "input"]},
           {"name": ["late"], "committed": "on_file", "file_deps": ["input"]}"#,
    );
    let mut fx = Fx::with_config(&config(&rules, r#", "permanent": ["a", "b", "c"]"#));
    fs::write(fx.p("input"), b"on disk").unwrap();
    let (w1, w2) = (fx.client("w1"), fx.client("w2"));
    let a = mem(fx.open(w1, "a", WR | CREAT).unwrap());
    let b = mem(fx.open(w2, "b", WR | CREAT).unwrap());
    let c = mem(fx.open(w2, "c", WR | CREAT).unwrap());
    fx.ns.close(w2, b.slot, true);
    assert_eq!(fx.state(b.slot), SlotState::Open, "a is not committed yet");

    // a commits when w1 terminates; b and c follow though w2 is still running.
    let mut commits: Vec<PathBuf> = fx
        .ns
        .exit(w1, false)
        .unwrap()
        .into_iter()
        .map(|c| c.0)
        .collect();
    commits.sort();
    assert_eq!(commits, vec![fx.p("a"), fx.p("b"), fx.p("c")]);
    for slot in [a.slot, b.slot, c.slot] {
        assert_eq!(fx.state(slot), SlotState::Committed);
    }

    // Created after its dependency committed: its producer's first close commits it.
    let late = mem(fx.open(w2, "late", WR | CREAT).unwrap());
    assert_eq!(fx.state(late.slot), SlotState::Open);
    fx.ns.close(w2, late.slot, true);
    assert_eq!(fx.state(late.slot), SlotState::Committed);
    assert!(fx.ns.take_commits().is_empty(), "late is not permanent");
}

#[test]
fn the_last_producer_terminating_commits_a_file_whatever_its_rule() {
    let rules = step(
        "w",
        r#"{"name": ["five"], "committed": "on_close:5"},
           {"name": ["dep"], "committed": "on_file", "file_deps": ["never"]}"#,
    );
    let mut fx = Fx::with_config(&config(&rules, r#", "permanent": ["five", "dep"]"#));
    let (w, v) = (fx.client("w"), fx.client("v"));
    let five = mem(fx.open(w, "five", WR | CREAT).unwrap());
    fx.ns.close(w, five.slot, true);
    let dep = mem(fx.open(w, "dep", WR | CREAT).unwrap());
    mem(fx.open(v, "dep", RW).unwrap());
    assert!(fx.ns.exit(w, false).unwrap().contains(&(fx.p("five"), 1)));
    assert_eq!(fx.state(five.slot), SlotState::Committed);
    assert_eq!(fx.state(dep.slot), SlotState::Open, "v still produces it");
    assert_eq!(fx.ns.exit(v, false).unwrap(), vec![(fx.p("dep"), 2)]);
    assert_eq!(fx.state(dep.slot), SlotState::Committed);
}

#[test]
fn open_replies_carry_the_fire_rule_of_the_path() {
    let rules = step("w", r#"{"name": ["stream*"], "mode": "no_update"}"#);
    let mut fx = Fx::with_config(&config(&rules, ""));
    let (w, r) = (fx.client("w"), fx.client("r"));
    assert_eq!(
        mem(fx.open(w, "stream.dat", WR | CREAT).unwrap()).fire,
        NO_UPDATE
    );
    assert_eq!(mem(fx.open(r, "stream.dat", RD).unwrap()).fire, NO_UPDATE);
    assert_eq!(
        mem(fx.open(w, "other", WR | CREAT).unwrap()).fire,
        Fire::Update
    );
}

#[test]
fn declared_producers_never_wait_and_readers_are_told_once_every_declared_app_is_gone() {
    let steps = r#"{"name": "producer", "input_stream": [], "output_stream": ["out", "late"]},
        {"name": "crashy", "input_stream": [], "output_stream": ["boom"]},
        {"name": "ghost", "input_stream": [], "output_stream": ["never"]},
        {"name": "consumer", "input_stream": ["out", "late", "boom", "never"], "output_stream": []}"#;
    let mut fx = Fx::with_config(&config(steps, ""));
    let (p, c) = (fx.client("producer"), fx.client("consumer"));
    assert_eq!(
        fx.errno(p, "out", RD),
        libc::ENOENT,
        "a declared producer never waits"
    );
    assert!(matches!(
        fx.open(c, "out", RD).unwrap(),
        Opened::Wait { .. }
    ));
    let w = mem(fx.open(p, "out", WR | CREAT).unwrap());
    assert!(!mem(fx.open(c, "out", RD).unwrap()).producer);
    let p2 = fx.client("producer");
    let seen = mem(fx.open(p2, "out", RD).unwrap());
    assert!(
        seen.producer,
        "declared: reads its file without waiting, even read-only"
    );
    assert_eq!(seen.slot, w.slot);

    // `late` is never created: once every client of its producer app is gone, readers learn it.
    assert!(matches!(
        fx.open(c, "late", RD).unwrap(),
        Opened::Wait { .. }
    ));
    fx.ns.exit(p, false).unwrap();
    assert!(matches!(
        fx.open(c, "late", RD).unwrap(),
        Opened::Wait { .. }
    ));
    let before = fx.seq();
    fx.ns.exit(p2, false).unwrap();
    assert_ne!(fx.seq(), before, "waiting openers are woken to re-check");
    assert_eq!(fx.errno(c, "late", RD), libc::ENOENT);

    // A crash counts as termination; an app that never attached has not terminated.
    let crashy = fx.client("crashy");
    assert!(matches!(
        fx.open(c, "boom", RD).unwrap(),
        Opened::Wait { .. }
    ));
    let before = fx.seq();
    fx.ns.detach(crashy);
    assert_ne!(fx.seq(), before);
    assert_eq!(fx.errno(c, "boom", RD), libc::ENOENT);
    assert!(matches!(
        fx.open(c, "never", RD).unwrap(),
        Opened::Wait { .. }
    ));
}

#[test]
fn only_permanent_files_are_persisted_and_the_others_are_reported_at_shutdown() {
    let mut fx = Fx::with_config(&config(&step("w", ""), r#", "permanent": ["kept"]"#));
    let w = fx.client("w");
    let kept = mem(fx.open(w, "kept", WR | CREAT).unwrap());
    let scratch = mem(fx.open(w, "scratch", WR | CREAT).unwrap());
    write(&fx, &scratch, 0, b"temp");
    assert_eq!(fx.exit_and_persist(w), vec![fx.p("kept")]);
    assert_eq!(fx.state(kept.slot), SlotState::Committed);
    assert_eq!(fx.state(scratch.slot), SlotState::Committed);
    assert!(fx.p("kept").is_file() && !fx.p("scratch").exists());
    let r = fx.client("r");
    assert_eq!(
        read_all(&mem(fx.open(r, "scratch", RD).unwrap()), 4),
        b"temp"
    );
    let lost = fx.ns.shut_down();
    assert_eq!(lost.len(), 1);
    assert_eq!(
        (&lost[0].path, lost[0].size, lost[0].state),
        (&fx.p("scratch"), 4, SlotState::Committed)
    );
    assert_eq!(lost[0].apps, vec!["r".to_string(), "w".to_string()]);
}

#[test]
fn excluded_paths_are_exdev_for_every_request() {
    let mut fx = Fx::with_config(&config(&step("w", ""), r#", "exclude": ["ex", "exdir*"]"#));
    let w = fx.client("w");
    mem(fx.open(w, "fine", WR | CREAT).unwrap());
    for flags in [RD, WR | CREAT] {
        assert_eq!(fx.errno(w, "ex", flags), libc::EXDEV);
        assert_eq!(fx.errno(w, "exdir/f", flags), libc::EXDEV);
    }
    let (ex, exdir) = (fx.p("ex"), fx.p("exdir"));
    let xdev = |r: Result<(), FsError>| r.unwrap_err().errno();
    assert_eq!(xdev(fx.ns.stat(w, &ex).map(drop)), libc::EXDEV);
    assert_eq!(xdev(fx.ns.list(w, &exdir).map(drop)), libc::EXDEV);
    assert_eq!(xdev(fx.ns.mkdir(w, &exdir, 0o755)), libc::EXDEV);
    assert_eq!(xdev(fx.ns.unlink(w, &ex)), libc::EXDEV);
    assert_eq!(xdev(fx.ns.rmdir(w, &exdir)), libc::EXDEV);
    assert_eq!(xdev(fx.rename(w, "fine", "ex").map(drop)), libc::EXDEV);
    assert_eq!(xdev(fx.rename(w, "ex", "fine").map(drop)), libc::EXDEV);
    assert!(!fx.p("exdir").exists() && !fx.p("ex").exists());
    assert_eq!(fx.names(w, ""), vec!["fine"]);
}

#[test]
fn storage_fs_files_live_in_a_hidden_file_that_persisting_renames_into_place() {
    let extra = r#", "permanent": ["big"], "storage": {"fs": ["big", "tmp", "gone"]}"#;
    let mut fx = Fx::with_config(&config(&step("w", ""), extra));
    let w = fx.client("w");
    let big = mem(fx.open(w, "big", WR | CREAT).unwrap());
    let tmp = mem(fx.open(w, "tmp", WR | CREAT).unwrap());
    write(&fx, &big, 0, b"on disk all along");
    write(&fx, &tmp, 0, b"scratch");
    assert_eq!(
        fx.hidden_files("").len(),
        2,
        "one data file each, beside them"
    );
    assert_eq!(
        fx.names(w, ""),
        vec!["big", "tmp"],
        "listed by their names only"
    );
    assert!(
        !fx.p("big").exists(),
        "nothing at the real path before the commit"
    );

    // Unlinking one removes its data file at once.
    let gone = mem(fx.open(w, "gone", WR | CREAT).unwrap());
    assert_eq!(fx.hidden_files("").len(), 3);
    fx.unlink(w, "gone").unwrap();
    assert_eq!(fx.hidden_files("").len(), 2);
    write(&fx, &gone, 0, b"still writable through its fd");

    let commits = fx.ns.exit(w, false).unwrap();
    assert_eq!(commits.len(), 1, "{commits:?}");
    // Persist the permanent one as the handler would.
    let job = fx
        .ns
        .persist_job(&commits[0].0, commits[0].1)
        .unwrap()
        .unwrap();
    assert!(job.in_place);
    assert!(fx.ns.install_in_place(&job).unwrap());
    assert_eq!(fs::read(fx.p("big")).unwrap(), b"on disk all along");
    let (real, data) = (
        fs::metadata(fx.p("big")).unwrap(),
        big.data.metadata().unwrap(),
    );
    assert_eq!(real.ino(), data.ino(), "renamed, not copied");
    assert_eq!(
        fx.hidden_files("").len(),
        1,
        "only tmp's, which is not permanent"
    );

    assert_eq!(fx.ns.shut_down().len(), 1, "tmp is reported...");
    assert!(
        fx.hidden_files("").is_empty(),
        "...and its data file removed"
    );
    assert_eq!(fs::read(fx.p("big")).unwrap(), b"on disk all along");
}

#[test]
fn storage_fs_data_of_a_file_in_an_uncommitted_directory_is_hidden_in_it() {
    let extra = r#", "storage": {"fs": ["d/*"]}, "permanent": ["d", "d/*"]"#;
    let mut fx = Fx::with_config(&config(&step("w", ""), extra));
    let w = fx.client("w");
    fx.ns.mkdir(w, &fx.p("d"), 0o755).unwrap();
    let f = mem(fx.open(w, "d/f", WR | CREAT).unwrap());
    write(&fx, &f, 0, b"x");
    assert!(fx.p("d").is_dir(), "on disk before its commit");
    assert_eq!(
        fx.hidden_files("d").len(),
        1,
        "the data waits in its directory, hidden"
    );
    assert!(fx.names(w, "d") == ["f"], "listed once, by its own name");
    fx.ns.exit(w, false).unwrap();
    let job = fx.ns.persist_job(&fx.p("d/f"), 1).unwrap().unwrap();
    assert!(fx.ns.install_in_place(&job).unwrap());
    assert_eq!(fs::read(fx.p("d/f")).unwrap(), b"x");
    assert!(fx.hidden_files("").is_empty() && fx.hidden_files("d").is_empty());
}

#[test]
fn an_on_n_files_directory_streams_its_entries_and_commits_at_n() {
    let rules = step(
        "w",
        r#"{"dirname": ["out"], "committed": "on_n_files", "n_files": 2, "mode": "no_update"},
           {"dirname": ["out2"], "committed": "on_n_files", "n_files": 2}"#,
    );
    let mut fx = Fx::with_config(&config(&rules, r#", "permanent": ["out"]"#));
    let (w, r) = (fx.client("w"), fx.client("r"));
    fx.ns.mkdir(w, &fx.p("out"), 0o755).unwrap();
    let empty = fx.listing(r, "out");
    assert_eq!(
        (
            empty.committed,
            empty.fire,
            empty.producer,
            empty.entries.len()
        ),
        (false, NO_UPDATE, false, 0)
    );
    assert!(fx.listing(w, "out").producer);
    mem(fx.open(w, "out/a", WR | CREAT).unwrap());
    let one = fx.listing(r, "out");
    assert_eq!((one.committed, one.entries.len()), (false, 1));
    assert!(fx.p("out").is_dir(), "on disk before its commit");
    let before = fx.seq();
    fx.ns.mkdir(w, &fx.p("out/sub"), 0o755).unwrap();
    assert_ne!(fx.seq(), before);
    let two = fx.listing(r, "out");
    assert_eq!(
        (two.committed, two.entries.len()),
        (true, 2),
        "subdirectories count"
    );
    assert!(fx.p("out").is_dir(), "permanent: stays on disk");
    let a = mem(fx.open(r, "out/a", RD).unwrap());
    assert_eq!(
        fx.state(a.slot),
        SlotState::Open,
        "its files keep their own rules"
    );

    // Aborted entries do not count; a later live one does.
    fx.ns.mkdir(w, &fx.p("out2"), 0o755).unwrap();
    let crashy = fx.client("crashy");
    mem(fx.open(crashy, "out2/x", WR | CREAT).unwrap());
    fx.ns.detach(crashy);
    assert!(!fx.dir_committed(r, "out2"));
    mem(fx.open(w, "out2/y", WR | CREAT).unwrap());
    assert!(!fx.dir_committed(r, "out2"), "x was aborted: one entry");
    mem(fx.open(w, "out2/z", WR | CREAT).unwrap());
    assert!(fx.dir_committed(r, "out2"));
    fx.ns.shut_down();
    fx.ns.remove_transient_dirs();
    assert!(
        !fx.p("out2").exists() && fx.p("out").is_dir(),
        "committed but not permanent: removed from disk at shutdown, once empty there"
    );
}

#[test]
fn an_on_n_files_directory_short_of_entries_commits_once_its_producers_are_gone() {
    let steps = r#"{"name": "maker", "input_stream": [], "output_stream": [],
          "streaming": [{"dirname": ["nf", "solo"], "committed": "on_n_files", "n_files": 5}]},
        {"name": "writer", "input_stream": [], "output_stream": ["nf"]}"#;
    let mut fx = Fx::with_config(&config(steps, ""));
    let (maker, r) = (fx.client("maker"), fx.client("r"));
    fx.ns.mkdir(maker, &fx.p("nf"), 0o755).unwrap();
    fx.ns.mkdir(maker, &fx.p("solo"), 0o755).unwrap();
    fx.ns.exit(maker, false).unwrap();
    assert!(
        fx.dir_committed(r, "solo"),
        "nobody declared: its producers are all gone"
    );
    assert!(
        !fx.dir_committed(r, "nf"),
        "its declared writer has not run yet"
    );
    let writer = fx.client("writer");
    mem(fx.open(writer, "nf/1", WR | CREAT).unwrap());
    fx.ns.exit(writer, false).unwrap();
    assert!(fx.dir_committed(r, "nf"));
    assert_eq!(fx.names(r, "nf"), vec!["1"]);
    assert!(fx.ns.uncommitted_dirs().is_empty());
}

#[test]
fn an_on_file_directory_commits_with_its_dependency() {
    let rules = step(
        "w",
        r#"{"dirname": ["gate"], "committed": "on_file", "file_deps": ["flag"]}"#,
    );
    let mut fx = Fx::with_config(&config(&rules, r#", "permanent": ["gate"]"#));
    let (w, f) = (fx.client("w"), fx.client("f"));
    fx.ns.mkdir(w, &fx.p("gate"), 0o750).unwrap();
    mem(fx.open(f, "flag", WR | CREAT).unwrap());
    assert!(!fx.dir_committed(w, "gate"));
    fx.ns.exit(f, false).unwrap();
    assert!(fx.dir_committed(w, "gate"));
    assert_eq!(fs::metadata(fx.p("gate")).unwrap().mode() & 0o777, 0o750);
}

#[test]
fn a_directory_without_a_rule_commits_when_its_producers_terminate_and_renames_keep_state() {
    let mut fx = Fx::with_config(&config(&step("w", ""), ""));
    let (w, r) = (fx.client("w"), fx.client("r"));
    fx.ns.mkdir(w, &fx.p("d"), 0o755).unwrap();
    fx.ns.mkdir(r, &fx.p("d/mine"), 0o755).unwrap();
    fx.ns.exit(w, false).unwrap();
    assert!(
        !fx.dir_committed(r, "d"),
        "r created an entry in it and still runs"
    );
    let q = fx.client("q");
    fx.rename(r, "d", "e").unwrap();
    assert!(!fx.dir_committed(q, "e"));
    fx.ns.detach(r);
    assert!(fx.dir_committed(q, "e"), "a crash releases its readers too");
    assert!(fx.dir_committed(q, "e/mine"));
    assert!(fx.p("e/mine").is_dir(), "on disk while the server runs");
    fx.ns.shut_down();
    assert_eq!(
        fx.ns.remove_transient_dirs(),
        vec![fx.p("e"), fx.p("e/mine")],
        "with a config, a directory is not permanent by default: gone at shutdown when empty"
    );
    assert!(!fx.p("e").exists());
}
