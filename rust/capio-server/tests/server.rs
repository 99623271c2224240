//! End-to-end: the real `capio_server` binary, driven over its socket as a client library would.

mod support;

use capio_proto::*;
use std::fs;
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;
use support::*;

const EXIT_WAIT: Duration = Duration::from_secs(10);

#[test]
fn create_stream_share_commit_and_persist() {
    let s = Scratch::new("commit");
    let _server = ServerProc::start(&s);
    let a = Client::hello(&s, "producer");
    let b = Client::hello(&s, "consumer");
    assert_ne!(a.id, b.id);
    let out = s.capio.join("out.txt");

    let (w, fd) = a.open(&out, WR | CREAT | TRUNC);
    assert_eq!(
        (w.status, w.kind, w.producer, w.fire),
        (0, OpenKind::Memory as u32, 1, Fire::Update as u32)
    );
    assert_ne!(w.slot, 0);
    let data = fd.expect("memfd");
    data.write_all_at(b"streamed bytes", 0).unwrap();
    a.slot(w.slot).publish(14);

    let (r, fd) = b.open(&out, RD);
    assert_eq!(
        (r.status, r.kind, r.slot, r.producer, r.size),
        (0, OpenKind::Memory as u32, w.slot, 0, 14)
    );
    let mut buf = [0u8; 14];
    fd.expect("memfd").read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(&buf, b"streamed bytes");
    let st = b.stat(&out);
    assert_eq!(
        (st.status, st.kind, st.size, st.committed),
        (0, NodeKind::File as u32, 14, 0)
    );
    assert!(!out.exists(), "nothing reaches disk before the commit");

    a.close(w.slot, true);
    assert_eq!(a.exit(false), 0);
    // Persisted before the Exit reply: exact bytes, no temp file left beside it.
    assert_eq!(fs::read(&out).unwrap(), b"streamed bytes");
    assert_eq!(fs::read_dir(&s.capio).unwrap().count(), 1);
    assert_eq!(b.slot(w.slot).state(), SlotState::Committed);
    assert_eq!(b.stat(&out).committed, 1);
}

#[test]
fn a_client_that_dies_without_exit_aborts_its_open_file() {
    let s = Scratch::new("crash");
    let server = ServerProc::start(&s);
    let watcher = Client::hello(&s, "watcher");
    let path = s.capio.join("partial.dat");
    let slot = {
        let crashy = Client::hello(&s, "crashy");
        let (w, fd) = crashy.open(&path, WR | CREAT);
        assert_eq!(w.status, 0);
        fd.unwrap().write_all_at(b"half", 0).unwrap();
        crashy.slot(w.slot).publish(4);
        let (r, _) = watcher.open(&path, RD);
        assert_eq!((r.slot, r.producer), (w.slot, 0));
        w.slot
        // dropped here: the socket closes without Exit, as when the process is killed
    };
    watcher.wait_state(slot, SlotState::Aborted);
    assert_eq!(watcher.stat(&path).status, -libc::ENOENT);
    assert_eq!(watcher.open(&path, RD).0.status, -libc::EIO);
    assert!(!path.exists(), "an aborted file is never persisted");
    assert!(
        server.log_text().contains("partial.dat"),
        "the abort is logged"
    );
}

#[test]
fn missing_reads_wait_and_peers_see_mkdir_list_stat() {
    let s = Scratch::new("ns");
    let _server = ServerProc::start(&s);
    let a = Client::hello(&s, "a");
    let b = Client::hello(&s, "b");
    let later = s.capio.join("later.txt");

    let (wait, fd) = b.open(&later, RD);
    assert_eq!((wait.status, wait.kind), (0, OpenKind::Wait as u32));
    assert!(fd.is_none());
    assert_eq!(b.stat(&later).status, -libc::ENOENT, "stat never waits");
    assert_eq!(a.open(&later, WR | CREAT).0.status, 0);
    assert_ne!(b.table.namespace().seq.load(SeqCst), wait.generation);
    assert_eq!(b.open(&later, RD).0.kind, OpenKind::Memory as u32);

    let sub = s.capio.join("sub");
    assert_eq!(a.mkdir(&sub), 0);
    assert!(
        sub.is_dir(),
        "a directory is on disk from the moment it is made"
    );
    assert_eq!(b.mkdir(&sub), -libc::EEXIST);
    assert_eq!(b.mkdir(&s.capio.join("nope/x")), -libc::ENOENT);
    assert_eq!(b.mkdir(&later.join("x")), -libc::ENOTDIR);
    let st = b.stat(&sub);
    assert_eq!(
        (st.status, st.kind, st.committed),
        (0, NodeKind::Dir as u32, 0)
    );
    assert_eq!(b.open(&sub, RD).0.status, -libc::EISDIR);
    assert_eq!(b.open(&sub.join("f"), RW | CREAT).0.status, 0);
    fs::write(s.capio.join("z_input"), b"on disk").unwrap();

    let (status, root) = b.list(&s.capio);
    assert_eq!(status, 0);
    let file = NodeKind::File as u32;
    assert_eq!(
        root,
        vec![
            (file, "later.txt".into()),
            (NodeKind::Dir as u32, "sub".into()),
            (file, "z_input".into())
        ]
    );
    assert_eq!(a.list(&sub), (0, vec![(file, "f".into())]));
    assert_eq!(a.list(&later).0, -libc::ENOTDIR);

    let (input, fd) = a.open(&s.capio.join("z_input"), RD);
    assert_eq!(
        (input.kind, input.slot, input.size),
        (OpenKind::Disk as u32, u32::MAX, 7)
    );
    assert_eq!(std::io::read_to_string(fd.unwrap()).unwrap(), "on disk");

    assert_eq!(
        a.stat(std::path::Path::new("/etc/passwd")).status,
        -libc::EXDEV
    );
    let sibling = s.capio.with_file_name("capio2").join("x");
    assert_eq!(a.stat(&sibling).status, -libc::EXDEV);
    let mut dotted = s.capio.as_os_str().to_owned();
    dotted.push("/sub/../later.txt");
    assert_eq!(a.stat(dotted.as_ref()).status, -libc::EINVAL);

    // `sub` commits (and reaches the disk) once everyone who created something in it is done.
    let c = Client::hello(&s, "c");
    assert_eq!(a.exit(false), 0);
    assert_eq!(
        c.stat(&sub).committed,
        0,
        "b created sub/f and is still running"
    );
    assert_eq!(b.exit(false), 0);
    assert_eq!(c.stat(&sub).committed, 1);
    assert!(sub.join("f").is_file());
}

#[test]
fn hello_comes_first_and_checks_the_capio_dir() {
    let s = Scratch::new("hello");
    let _server = ServerProc::start(&s);
    let sock = connect(&s);
    send(
        &sock,
        Kind::Stat,
        &Empty {},
        s.capio.as_os_str().as_encoded_bytes(),
    );
    assert!(
        recv(&sock).is_none(),
        "a request before Hello drops the connection"
    );

    let sock = connect(&s);
    let missing = s.dir.join("missing");
    let reply = call(
        &sock,
        Kind::Hello,
        &HelloReq::default(),
        &hello_tail("x", &missing),
    );
    assert_eq!(reply.fixed::<HelloReply>().status, -libc::ENOENT);
    assert!(reply.fd.is_none());

    let sock = connect(&s);
    sys::send_with_fd(&sock, b"definitely not a frame", None).unwrap();
    assert!(
        recv(&sock).is_none(),
        "a malformed frame drops the connection"
    );
    // The server survives all of that.
    Client::hello(&s, "fine");
}

#[test]
fn teardown_stops_the_server_when_the_last_client_exits() {
    let s = Scratch::new("teardown");
    let mut server = ServerProc::start(&s);
    let a = Client::hello(&s, "a");
    let b = Client::hello(&s, "b");
    let out = s.capio.join("result");
    let (w, fd) = b.open(&out, WR | CREAT);
    fd.unwrap().write_all_at(b"42", 0).unwrap();
    b.slot(w.slot).publish(2);

    assert_eq!(a.exit(true), 0);
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "b is still attached"
    );
    assert_eq!(b.exit(false), 0);
    assert!(server.wait_exit(EXIT_WAIT).success());
    assert!(!s.paths().socket.exists());
    assert!(!s.paths().info.exists());
    assert_eq!(fs::read(&out).unwrap(), b"42");
}

#[test]
fn without_teardown_the_server_outlives_its_clients_until_shutdown() {
    let s = Scratch::new("shutdown");
    let mut server = ServerProc::start(&s);
    let a = Client::hello(&s, "a");
    assert_eq!(a.exit(false), 0);
    drop(a);
    let b = Client::hello(&s, "b");
    let reply = call(&b.sock, Kind::Shutdown, &Empty {}, &[]);
    assert_eq!(reply.fixed::<StatusReply>().status, 0);
    assert!(server.wait_exit(EXIT_WAIT).success());
    assert!(!s.paths().socket.exists());
}

#[test]
fn sigterm_shuts_down_gracefully_and_reports_unpersisted_files() {
    let s = Scratch::new("sigterm");
    let mut server = ServerProc::start(&s);
    let info = fs::read_to_string(s.paths().info).unwrap();
    assert_eq!(
        info,
        format!(
            "{}\n{}\n{}\n",
            server.pid(),
            s.workflow(),
            s.capio.display()
        )
    );
    let a = Client::hello(&s, "writer");
    let (w, _) = a.open(&s.capio.join("unfinished"), WR | CREAT);

    sys::send_signal(server.pid(), libc::SIGTERM).unwrap();
    assert!(server.wait_exit(EXIT_WAIT).success());
    assert!(!s.paths().socket.exists());
    assert!(!s.paths().info.exists());
    // Readers of a file that will never be finished are released, not left hanging.
    assert_eq!(a.slot(w.slot).state(), SlotState::Aborted);
    let log = server.log_text();
    assert!(
        log.lines().any(|l| l.contains("WARN")
            && l.contains("not persisted")
            && l.contains("unfinished")
            && l.contains("writer")),
        "{log}"
    );
    assert!(!s.capio.join("unfinished").exists());
}

#[test]
fn a_second_server_for_the_workflow_refuses_to_start() {
    let s = Scratch::new("single");
    let first = ServerProc::start(&s);
    let (mut second, line) = ServerProc::spawn(&s, "second.log");
    assert_eq!(
        line,
        format!(
            "ERR a capio_server for workflow '{}' is already running (pid {})",
            s.workflow(),
            first.pid()
        )
    );
    assert_eq!(second.wait_exit(EXIT_WAIT).code(), Some(1));
    Client::hello(&s, "still-served");
}

#[test]
fn a_new_server_waits_for_the_previous_one_to_finish_shutting_down() {
    let s = Scratch::new("handover");
    let mut first = ServerProc::start(&s);
    let handover = std::thread::scope(|scope| {
        let waiting = scope.spawn(|| ServerProc::spawn(&s, "second.log"));
        // Let the newcomer find the lock held before the first server goes.
        let log = s.dir.join("second.log");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("holds the lock")
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the newcomer never waited"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        sys::send_signal(first.pid(), libc::SIGTERM).unwrap();
        waiting.join().unwrap()
    });
    assert!(first.wait_exit(EXIT_WAIT).success());
    let (second, line) = handover;
    assert_eq!(line, format!("OK {}", second.pid()));
    Client::hello(&s, "after-handover");
}

#[test]
fn usage_and_startup_errors_have_their_exit_codes() {
    let exe = env!("CARGO_BIN_EXE_capio_server");
    let help = std::process::Command::new(exe)
        .arg("--help")
        .output()
        .unwrap();
    assert!(help.status.success());
    let text = String::from_utf8(help.stdout).unwrap();
    for opt in [
        "--capio-dir",
        "--workflow-name",
        "--no-config",
        "--config",
        "--ready-fd",
        "--daemonize",
        "--log-file",
        "--backend",
        "--mem-only",
        "--version",
    ] {
        assert!(text.contains(opt), "--help lacks {opt}");
    }
    assert!(!text.contains("not enforced"), "{text}");
    let bad = std::process::Command::new(exe)
        .arg("--bogus")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("Usage:"));

    let s = Scratch::new("usage");
    let with_backend = |name: &str| {
        std::process::Command::new(exe)
            .args(["--backend", name, "--capio-dir"])
            .arg(&s.capio)
            .env(runtime::RUNTIME_DIR_ENV, &s.runtime)
            .output()
            .unwrap()
    };
    let tcp = with_backend("tcp");
    assert_eq!(tcp.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&tcp.stderr).trim(),
        "ERR backend 'tcp' is not supported by this build"
    );
    if !cfg!(feature = "mpi") {
        // A default build says how to get one that can.
        let mpi = with_backend("mpi");
        assert_eq!(mpi.status.code(), Some(1));
        assert_eq!(
            String::from_utf8_lossy(&mpi.stderr).trim(),
            "ERR backend 'mpi' needs a server built with MPI support (PYCAPIO_MPI=1 pip install .); \
             this one was built without"
        );
    }
}

#[test]
fn an_unlinked_open_file_stays_readable_and_is_never_persisted() {
    let s = Scratch::new("unlink");
    let _server = ServerProc::start(&s);
    let a = Client::hello(&s, "producer");
    let b = Client::hello(&s, "consumer");
    let path = s.capio.join("scratch.bin");
    let (w, wfd) = a.open(&path, RW | CREAT);
    let wfd = wfd.unwrap();
    wfd.write_all_at(b"before", 0).unwrap();
    a.slot(w.slot).publish(6);
    let (r, rfd) = b.open(&path, RD);
    assert_eq!(r.slot, w.slot);

    assert_eq!(b.unlink(&path), 0);
    assert_eq!(b.stat(&path).status, -libc::ENOENT);
    assert_eq!(b.list(&s.capio), (0, vec![]));
    assert_eq!(b.unlink(&path), -libc::ENOENT);
    wfd.write_all_at(b"+after", 6).unwrap();
    a.slot(w.slot).publish(12);
    let mut buf = [0u8; 12];
    rfd.unwrap().read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(&buf, b"before+after");

    assert_eq!(a.exit(false), 0);
    assert_eq!(
        b.slot(w.slot).state(),
        SlotState::Committed,
        "readers are released"
    );
    assert!(!path.exists(), "an unlinked file is not persisted");

    fs::write(s.capio.join("input"), b"x").unwrap();
    assert_eq!(b.unlink(&s.capio.join("input")), 0);
    assert!(!s.capio.join("input").exists());
    assert_eq!(b.mkdir(&s.capio.join("d")), 0);
    assert_eq!(b.unlink(&s.capio.join("d")), -libc::EISDIR);
}

#[test]
fn rename_publishes_a_temp_file_to_a_waiting_opener() {
    let s = Scratch::new("rename-wait");
    let _server = ServerProc::start(&s);
    let a = Client::hello(&s, "producer");
    let b = Client::hello(&s, "consumer");
    let (tmp, dst) = (s.capio.join("out.tmp"), s.capio.join("out"));

    let (wait, _) = b.open(&dst, RD);
    assert_eq!((wait.status, wait.kind), (0, OpenKind::Wait as u32));
    let (w, fd) = a.open(&tmp, WR | CREAT);
    fd.unwrap().write_all_at(b"whole", 0).unwrap();
    a.slot(w.slot).publish(5);
    // Creating the temp file wakes the waiter too; its retry still has to wait.
    assert_eq!(b.open(&dst, RD).0.kind, OpenKind::Wait as u32);
    let seen = b.table.namespace().seq.load(SeqCst);

    assert_eq!(a.rename(&tmp, &dst), 0);
    assert_ne!(b.table.namespace().seq.load(SeqCst), seen);
    let (r, fd) = b.open(&dst, RD);
    assert_eq!(
        (r.status, r.kind, r.slot, r.producer, r.size),
        (0, OpenKind::Memory as u32, w.slot, 0, 5)
    );
    assert_eq!(
        b.slot(r.slot).state(),
        SlotState::Open,
        "commit state is kept"
    );
    assert_eq!(b.stat(&tmp).status, -libc::ENOENT);

    a.close(w.slot, true);
    assert_eq!(a.exit(false), 0);
    assert_eq!(b.slot(r.slot).state(), SlotState::Committed);
    assert_eq!(fs::read(&dst).unwrap(), b"whole");
    assert!(!tmp.exists());
    let mut buf = [0u8; 5];
    fd.unwrap().read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(&buf, b"whole");
}

#[test]
fn rename_of_a_persisted_file_moves_it_on_disk_atomically() {
    let s = Scratch::new("rename-disk");
    let _server = ServerProc::start(&s);
    let (src, dst) = (s.capio.join("result"), s.capio.join("final"));
    fs::write(&dst, b"previous").unwrap();
    {
        let a = Client::hello(&s, "producer");
        let (w, fd) = a.open(&src, WR | CREAT);
        fd.unwrap().write_all_at(b"complete", 0).unwrap();
        a.slot(w.slot).publish(8);
        assert_eq!(a.exit(false), 0);
    }
    assert_eq!(fs::read(&src).unwrap(), b"complete");
    let b = Client::hello(&s, "mover");
    // The real destination shows one whole file or the other at every moment.
    let watcher = std::thread::spawn({
        let dst = dst.clone();
        move || {
            for _ in 0..2000 {
                let seen = fs::read(&dst).unwrap();
                assert!(seen == b"previous" || seen == b"complete", "{seen:?}");
                if seen == b"complete" {
                    return;
                }
            }
        }
    });
    assert_eq!(b.rename(&src, &dst), 0);
    watcher.join().unwrap();
    assert!(!src.exists());
    assert_eq!(fs::read(&dst).unwrap(), b"complete");
    let st = b.stat(&dst);
    assert_eq!((st.status, st.size, st.committed), (0, 8, 1));
    assert_eq!(b.stat(&src).status, -libc::ENOENT);
    assert_eq!(b.rename(&src, &dst), -libc::ENOENT);
    let outside = s.dir.join("outside");
    assert_eq!(b.rename(&dst, &outside), -libc::EXDEV);
    assert_eq!(b.rename(&dst, &s.capio.join("no/such")), -libc::ENOENT);
    assert_eq!(
        fs::read_dir(&s.capio).unwrap().count(),
        1,
        "no temp files left"
    );
}

#[test]
fn rmdir_removes_empty_directories_from_the_namespace_and_the_disk() {
    let s = Scratch::new("rmdir");
    let _server = ServerProc::start(&s);
    let a = Client::hello(&s, "a");
    let d = s.capio.join("d");
    assert_eq!(a.mkdir(&d), 0);
    let (w, _) = a.open(&d.join("f"), WR | CREAT);
    assert_eq!(a.rmdir(&d), -libc::ENOTEMPTY);
    assert_eq!(a.rmdir(&d.join("f")), -libc::ENOTDIR);
    assert_eq!(a.rmdir(&s.capio.join("missing")), -libc::ENOENT);
    assert_eq!(a.rmdir(&s.capio), -libc::EBUSY);
    a.close(w.slot, true);
    assert_eq!(a.unlink(&d.join("f")), 0);
    assert_eq!(a.rmdir(&d), 0);
    assert!(!d.exists());
    assert_eq!(a.stat(&d).status, -libc::ENOENT);

    let disk = s.capio.join("disk");
    fs::create_dir(&disk).unwrap();
    fs::write(disk.join("x"), b"").unwrap();
    assert_eq!(a.rmdir(&disk), -libc::ENOTEMPTY);
    fs::remove_file(disk.join("x")).unwrap();
    assert_eq!(a.rmdir(&disk), 0);
    assert!(!disk.exists());
}

#[test]
fn a_rename_with_unknown_flags_or_an_overrunning_source_length_is_refused() {
    let s = Scratch::new("rename-bad");
    let _server = ServerProc::start(&s);
    let a = Client::hello(&s, "a");
    let (src, dst) = (s.capio.join("a"), s.capio.join("b"));
    assert_eq!(a.open(&src, WR | CREAT).0.status, 0);
    let (mut req, tail) = rename_tail(
        src.as_os_str().as_encoded_bytes(),
        dst.as_os_str().as_encoded_bytes(),
    )
    .unwrap();
    req.flags = 1;
    let reply = call(&a.sock, Kind::Rename, &req, &tail);
    assert_eq!(reply.fixed::<StatusReply>().status, -libc::EINVAL);
    req.flags = 0;
    req.src_len = tail.len() as u32 + 1;
    send(&a.sock, Kind::Rename, &req, &tail);
    assert!(
        recv(&a.sock).is_none(),
        "a malformed body drops the connection"
    );
}
