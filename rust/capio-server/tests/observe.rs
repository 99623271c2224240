//! End-to-end: observers and `Status`, the memory budget over the wire, and what the next server
//! does after one was killed.

mod support;

use capio_proto::runtime::WorkflowPaths;
use capio_proto::*;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::FileExt;
use std::time::Duration;
use support::*;

const EXIT_WAIT: Duration = Duration::from_secs(10);

#[test]
fn an_observer_sees_clients_files_readers_and_waits_without_being_a_client() {
    let s = Scratch::new("status");
    let mut server = ServerProc::start(&s);
    let a = Client::hello(&s, "producer");
    let b = Client::hello(&s, "consumer");
    let out = s.capio.join("out file\n.bin");
    let (w, fd) = a.open(&out, WR | CREAT);
    fd.unwrap().write_all_at(b"12345678", 0).unwrap();
    a.slot(w.slot).publish(8);
    let (r, _fd) = b.open(&out, RD);
    assert_eq!(r.slot, w.slot);
    let later = s.capio.join("later.txt");
    assert_eq!(b.open(&later, RD).0.kind, OpenKind::Wait as u32);

    let (obs, hr, fd) = observer(&s);
    assert_eq!(hr.status, 0);
    assert!(fd.is_none(), "observers get no state table");
    assert_eq!(hr.server_pid as i32, server.pid());
    let text = status_text(&obs);
    for needle in [
        format!(r#""pid":{}"#, server.pid()),
        format!(r#""workflow":"{}""#, s.workflow()),
        r#""app":"producer""#.to_owned(),
        r#""app":"consumer""#.to_owned(),
        r#"out file\n.bin","size":8,"state":"open""#.to_owned(),
        r#""readers":[{"id":"#.to_owned(),
        r#""blocked_readers":1"#.to_owned(),
        r#""waiting_opens":[{"path":"#.to_owned(),
        r#""live_clients":2"#.to_owned(),
        r#""observers":1"#.to_owned(),
    ] {
        assert!(text.contains(&needle), "{needle} not in {text}");
    }
    // A client may ask too.
    assert!(status_text(&a.sock).contains(r#""files_total":1"#));

    // Observers may not do file operations: the connection is dropped.
    let (obs2, _, _) = observer(&s);
    send(&obs2, Kind::Open, &OpenReq::default(), b"/x");
    assert!(recv(&obs2).is_none());

    // The observer keeps nothing alive: once both clients leave with teardown, the server stops.
    a.close(w.slot, true);
    assert_eq!(a.exit(true), 0);
    assert_eq!(b.exit(true), 0);
    drop((a, b));
    assert!(server.wait_exit(EXIT_WAIT).success());
    assert!(recv(&obs).is_none());
    assert_eq!(fs::read(&out).unwrap(), b"12345678");
}

#[test]
fn unknown_hello_flags_are_refused() {
    let s = Scratch::new("flags");
    let _server = ServerProc::start(&s);
    let sock = connect(&s);
    let req = HelloReq {
        pid: std::process::id(),
        flags: 0x80,
    };
    let reply = call(&sock, Kind::Hello, &req, &hello_tail("x", &s.capio));
    assert_eq!(reply.fixed::<HelloReply>().status, -libc::EINVAL);
    assert!(reply.fd.is_none());
    assert!(recv(&sock).is_none(), "a refused Hello ends the connection");
}

#[test]
fn an_observer_can_stop_the_server_which_persists_first() {
    let s = Scratch::new("stop");
    let mut server = ServerProc::start(&s);
    let a = Client::hello(&s, "w");
    let out = s.capio.join("done.txt");
    let (w, fd) = a.open(&out, WR | CREAT);
    fd.unwrap().write_all_at(b"done", 0).unwrap();
    a.slot(w.slot).publish(4);
    a.close(w.slot, true);
    assert_eq!(a.exit(false), 0);
    let (obs, _, _) = observer(&s);
    let f = call(&obs, Kind::Shutdown, &Empty {}, &[]);
    assert_eq!(f.fixed::<StatusReply>().status, 0);
    assert!(server.wait_exit(EXIT_WAIT).success());
    assert_eq!(fs::read(&out).unwrap(), b"done");
    let paths = s.paths();
    assert!(!paths.socket.exists() && !paths.info.exists() && !paths.hidden.exists());
}

#[test]
fn the_memory_budget_over_the_wire() {
    let s = Scratch::new("budget");
    let args = [OsStr::new("--memory-limit"), OsStr::new("1M")];
    let (mut server, line) = ServerProc::spawn_with(&s, "server.log", &args);
    assert_eq!(line, format!("OK {}", server.pid()));
    let a = Client::hello(&s, "w");
    let (obs, hr, _) = observer(&s);
    assert_eq!(
        hr.flags & server_flags::MEMORY_LIMIT,
        server_flags::MEMORY_LIMIT
    );
    let (w, _fd) = a.open(&s.capio.join("a"), WR | CREAT);
    let (st, granted) = a.reserve(w.slot, 512 << 10);
    assert_eq!(st, 0);
    assert!((512 << 10..=1 << 20).contains(&granted), "{granted}");
    assert_eq!(a.reserve(w.slot, 2 << 20).0, -libc::ENOSPC);
    assert_eq!(a.reserve(w.slot + 1, 1).0, -libc::EBADF);
    let text = status_text(&obs);
    assert!(text.contains(r#""memory_limit":1048576"#), "{text}");
    assert!(
        text.contains(&format!(r#""memory_used":{granted}"#)),
        "{text}"
    );
    assert_eq!(a.exit(true), 0);
    drop(a);
    assert!(server.wait_exit(EXIT_WAIT).success());
    let log = server.log_text();
    assert!(log.contains("memory limit: 1048576 bytes"), "{log}");
    assert!(log.contains("refused to grow"), "{log}");

    // Without a limit the flag is clear and every reservation is unlimited.
    let s = Scratch::new("nobudget");
    let _server = ServerProc::start(&s);
    let a = Client::hello(&s, "w");
    let (_, hr, _) = observer(&s);
    assert_eq!(hr.flags & server_flags::MEMORY_LIMIT, 0);
    let (w, _fd) = a.open(&s.capio.join("a"), WR | CREAT);
    assert_eq!(a.reserve(w.slot, 1 << 40), (0, u64::MAX));
}

#[test]
fn a_bad_memory_limit_fails_the_start_up() {
    let s = Scratch::new("badlimit");
    let args = [OsStr::new("--memory-limit"), OsStr::new("lots")];
    let (mut server, line) = ServerProc::spawn_with(&s, "server.log", &args);
    assert!(
        line.starts_with("ERR invalid memory limit 'lots'"),
        "{line}"
    );
    assert_eq!(server.wait_exit(EXIT_WAIT).code(), Some(1));
}

#[test]
fn after_a_sigkill_the_next_server_starts_and_removes_what_the_dead_one_left() {
    let s = Scratch::new("killed");
    let config = s.dir.join("cl.json");
    fs::write(
        &config,
        format!(
            r#"{{"name": "{}", "IO_Graph": [{{"name": "w", "input_stream": [],
                "output_stream": ["big.bin"]}}], "storage": {{"fs": ["big.bin"]}}}}"#,
            s.workflow()
        ),
    )
    .unwrap();
    let mut server = ServerProc::start_with_config(&s, &config);
    let a = Client::hello(&s, "w");
    let (w, fd) = a.open(&s.capio.join("big.bin"), WR | CREAT);
    assert_eq!(w.status, 0);
    fd.unwrap().write_all_at(b"half", 0).unwrap();
    let hidden = |dir: &std::path::Path| -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".capio-"))
            .collect()
    };
    assert_eq!(hidden(&s.capio).len(), 1, "the storage-fs data file");
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let paths: WorkflowPaths = s.paths();
    assert!(paths.socket.exists() && paths.info.exists() && paths.hidden.exists());
    assert_eq!(hidden(&s.capio).len(), 1, "a SIGKILL leaves it behind");
    // The client notices the server is gone.
    assert!(capio_proto::sys::peer_hung_up(&a.sock));

    let mut next = ServerProc::start_with_config(&s, &config);
    assert!(hidden(&s.capio).is_empty(), "{:?}", hidden(&s.capio));
    let info = fs::read_to_string(&paths.info).unwrap();
    assert_eq!(info.lines().next(), Some(next.pid().to_string().as_str()));
    let b = Client::hello(&s, "w");
    assert_eq!(b.stat(&s.capio.join("big.bin")).status, -libc::ENOENT);
    assert_eq!(b.exit(true), 0);
    drop(b);
    assert!(next.wait_exit(EXIT_WAIT).success());
    assert!(next.log_text().contains("removed 1 hidden file(s)"));
}
