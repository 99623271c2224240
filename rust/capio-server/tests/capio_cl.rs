//! End-to-end CAPIO-CL enforcement: the real `capio_server` started with `-c FILE`, driven over its
//! socket as a client library would.

mod support;

use capio_proto::*;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;
use support::*;

/// Write a CAPIO-CL file of the scratch's workflow: `body` holds the keys after `name`.
fn config(s: &Scratch, body: &str) -> PathBuf {
    let path = s.dir.join("workflow.json");
    let text = format!(r#"{{"name": "{}", {body}}}"#, s.workflow());
    fs::write(&path, text).unwrap();
    path
}

#[test]
fn on_close_2_commits_after_two_producer_closes_while_the_producer_runs() {
    let s = Scratch::new("cl-close");
    let cfg = config(
        &s,
        r#""IO_Graph": [{"name": "writer", "input_stream": [], "output_stream": ["out.dat"],
            "streaming": [{"name": ["out.dat"], "committed": "on_close:2"}]}],
          "permanent": ["out.dat"]"#,
    );
    let _server = ServerProc::start_with_config(&s, &cfg);
    let w = Client::hello(&s, "writer");
    let r = Client::hello(&s, "reader");
    let out = s.capio.join("out.dat");

    let (first, fd) = w.open(&out, WR | CREAT);
    assert_eq!((first.status, first.producer), (0, 1));
    fd.unwrap().write_all_at(b"part 1,", 0).unwrap();
    w.slot(first.slot).publish(7);
    w.close(first.slot, true);
    let (seen, _) = r.open(&out, RD);
    assert_eq!((seen.slot, seen.producer), (first.slot, 0));
    r.close(seen.slot, false);
    // Requests on one connection run in order: this reply comes after the close was counted.
    assert_eq!(w.stat(&out).committed, 0, "one close by the producer");
    assert_eq!(r.stat(&out).committed, 0, "a reader's close does not count");

    let (second, fd) = w.open(&out, WR);
    fd.unwrap().write_all_at(b" part 2", 7).unwrap();
    w.slot(second.slot).publish(14);
    w.close(second.slot, true);
    // Committed and persisted before the writer's next request is even read.
    assert_eq!(w.stat(&out).committed, 1);
    assert_eq!(r.slot(first.slot).state(), SlotState::Committed);
    assert_eq!(fs::read(&out).unwrap(), b"part 1, part 2");
}

#[test]
fn an_on_n_files_directory_is_listed_while_it_fills_and_commits_at_n() {
    let s = Scratch::new("cl-nfiles");
    let cfg = config(
        &s,
        r#""IO_Graph": [{"name": "writer", "input_stream": [], "output_stream": ["parts/*"],
            "streaming": [{"dirname": ["parts"], "committed": "on_n_files", "n_files": 2,
                           "mode": "no_update"}]}],
          "permanent": ["parts", "parts/*"]"#,
    );
    let _server = ServerProc::start_with_config(&s, &cfg);
    let w = Client::hello(&s, "writer");
    let r = Client::hello(&s, "reader");
    let parts = s.capio.join("parts");
    assert_eq!(w.mkdir(&parts), 0);
    assert!(parts.is_dir(), "on disk at once, before its commit");

    let (empty, entries) = r.list_reply(&parts);
    assert_eq!(
        (empty.status, empty.committed, empty.fire, empty.producer),
        (0, 0, Fire::NoUpdate as u32, 0)
    );
    assert!(entries.is_empty());
    assert_eq!(w.list_reply(&parts).0.producer, 1);

    assert_eq!(w.open(&parts.join("p0"), WR | CREAT).0.status, 0);
    assert_ne!(
        r.table.namespace().seq.load(SeqCst),
        empty.generation,
        "a streaming lister is woken by the new entry"
    );
    let (one, entries) = r.list_reply(&parts);
    assert_eq!(one.committed, 0);
    assert_eq!(entries, vec![(NodeKind::File as u32, "p0".to_string())]);

    assert_eq!(w.open(&parts.join("p1"), WR | CREAT).0.status, 0);
    let (two, entries) = r.list_reply(&parts);
    assert_eq!((two.committed, entries.len()), (1, 2));
    assert!(parts.is_dir(), "still on disk after its commit");
    assert_eq!(r.stat(&parts).committed, 1);
}

#[test]
fn open_replies_carry_no_update_and_declared_producers_and_exclusions_are_enforced() {
    let s = Scratch::new("cl-fire");
    let cfg = config(
        &s,
        r#""IO_Graph": [
            {"name": "writer", "input_stream": [], "output_stream": ["stream.dat", "never.dat"],
             "streaming": [{"name": ["stream.dat"], "mode": "no_update"}]},
            {"name": "reader", "input_stream": ["stream.dat", "never.dat"], "output_stream": []}],
          "exclude": ["skip*"]"#,
    );
    let _server = ServerProc::start_with_config(&s, &cfg);
    let w = Client::hello(&s, "writer");
    let r = Client::hello(&s, "reader");
    let stream = s.capio.join("stream.dat");
    let (wo, _) = w.open(&stream, WR | CREAT);
    assert_eq!((wo.fire, wo.producer), (Fire::NoUpdate as u32, 1));
    let (ro, _) = r.open(&stream, RD);
    assert_eq!((ro.fire, ro.producer), (Fire::NoUpdate as u32, 0));
    assert_eq!(
        w.open(&s.capio.join("other"), WR | CREAT).0.fire,
        Fire::Update as u32
    );

    let never = s.capio.join("never.dat");
    assert_eq!(
        w.open(&never, RD).0.status,
        -libc::ENOENT,
        "its producer never waits"
    );
    let (wait, _) = r.open(&never, RD);
    assert_eq!((wait.status, wait.kind), (0, OpenKind::Wait as u32));
    assert_eq!(w.exit(false), 0);
    assert_ne!(r.table.namespace().seq.load(SeqCst), wait.generation);
    assert_eq!(
        r.open(&never, RD).0.status,
        -libc::ENOENT,
        "its producer is gone"
    );

    let skip = s.capio.join("skip.txt");
    assert_eq!(r.open(&skip, WR | CREAT).0.status, -libc::EXDEV);
    assert_eq!(r.stat(&skip).status, -libc::EXDEV);
    assert_eq!(r.mkdir(&s.capio.join("skipdir")), -libc::EXDEV);
}

#[test]
fn hello_tells_the_config_path_and_nothing_without_one() {
    let s = Scratch::new("cl-hello");
    let cfg = config(&s, r#""IO_Graph": []"#);
    let server = ServerProc::start_with_config(&s, &cfg);
    let c = Client::hello(&s, "any");
    assert_eq!(
        c.config,
        fs::canonicalize(&cfg).unwrap().as_os_str().as_bytes()
    );
    assert!(server.log_text().contains("CAPIO-CL rules"));
    drop(server);

    let plain = Scratch::new("cl-hello-none");
    let _server = ServerProc::start(&plain);
    assert!(Client::hello(&plain, "any").config.is_empty());
}

#[test]
fn a_config_naming_another_workflow_is_used_with_a_warning() {
    let s = Scratch::new("cl-name");
    let cfg = s.dir.join("other.json");
    fs::write(&cfg, r#"{"name": "someone-else", "IO_Graph": []}"#).unwrap();
    let server = ServerProc::start_with_config(&s, &cfg);
    Client::hello(&s, "any");
    let log = server.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.contains("someone-else") && l.contains(&s.workflow())),
        "{log}"
    );
}

#[test]
fn an_invalid_config_fails_fast_with_the_json_path_and_starts_nothing() {
    let s = Scratch::new("cl-invalid");
    let cfg = config(
        &s,
        r#""IO_Graph": [{"name": "w", "input_stream": [], "output_stream": [],
            "streaming": [{"name": ["x"], "committed": "whenever"}]}]"#,
    );
    let args = [std::ffi::OsStr::new("-c"), cfg.as_os_str()];
    let (mut server, line) = ServerProc::spawn_with(&s, "server.log", &args);
    assert!(line.starts_with("ERR "), "{line}");
    assert!(
        line.contains("$.IO_Graph[0].streaming[0].committed"),
        "{line}"
    );
    assert!(line.contains(&cfg.display().to_string()), "{line}");
    assert_eq!(server.wait_exit(Duration::from_secs(10)).code(), Some(1));
    assert!(!s.paths().socket.exists(), "no socket");
    assert!(!s.paths().info.exists(), "no info file");

    let missing = s.dir.join("missing.json");
    let args = [std::ffi::OsStr::new("--config"), missing.as_os_str()];
    let (mut server, line) = ServerProc::spawn_with(&s, "server2.log", &args);
    assert!(line.starts_with("ERR cannot read CAPIO-CL file"), "{line}");
    assert_eq!(server.wait_exit(Duration::from_secs(10)).code(), Some(1));
}
