//! End-to-end: an append that needs the memory budget's `Reserve` while another client truncates
//! the same file on open. The server truncates under its namespace lock and waits there for the
//! file's append lock; a client that held that lock while awaiting its `Reserve` reply (which needs
//! the namespace) deadlocked both, and every client of the workflow after them.

mod support;

use capio_client::{Client as CapioClient, Settings};
use capio_proto::runtime::{WorkflowPaths, runtime_dir};
use std::ffi::OsStr;
use std::fs;
use std::path::PathBuf;
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Duration;
use support::*;

/// Long enough for a request to reach the server and block there; the test passes whatever the
/// timing, a short pause only makes the old deadlock less likely to show.
const SETTLE: Duration = Duration::from_millis(150);
const DEADLOCK: Duration = Duration::from_secs(20);

/// Removes the server's files from the shared runtime directory if the test ends with a kill.
struct RuntimeFiles(WorkflowPaths);

impl Drop for RuntimeFiles {
    fn drop(&mut self) {
        let p = &self.0;
        for f in [&p.socket, &p.server_lock, &p.start_lock, &p.info, &p.hidden] {
            let _ = fs::remove_file(f);
        }
    }
}

#[test]
fn an_append_awaiting_its_reservation_never_blocks_a_truncating_open() {
    // The real client finds servers in the default runtime directory, by workflow name.
    let mut s = Scratch::new("append-reserve");
    s.runtime = runtime_dir().unwrap();
    let _files = RuntimeFiles(s.paths());
    let args = [OsStr::new("--memory-limit"), OsStr::new("64M")];
    let (mut server, line) = ServerProc::spawn_with(&s, "server.log", &args);
    assert_eq!(line, format!("OK {}", server.pid()), "ready line");

    let client = Arc::new(
        CapioClient::connect(Settings {
            capio_dir: s.capio.clone(),
            app: "appender".into(),
            workflow: s.workflow(),
            server_exe: PathBuf::from(env!("CARGO_BIN_EXE_capio_server")),
            config_file: None,
            ready_timeout: Duration::from_secs(30),
            wait_timeout: None,
        })
        .unwrap(),
    );
    let (x, y) = (s.capio.join("x"), s.capio.join("y"));
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND;
    // A fresh handle has nothing reserved: its first append asks the server.
    let appender = client.open(&y, flags, 0o644, &mut || false).unwrap();
    let holder = Client::hello(&s, "holder");
    let (held, _x_fd) = holder.open(&x, WR | CREAT);
    let (busy, truncater) = (Client::hello(&s, "busy"), Client::hello(&s, "truncater"));

    // Keep the namespace lock busy: an open truncating `x` waits there for `x`'s append lock.
    let x_lock = holder.slot(held.slot).lock_appends();
    let (done, results) = mpsc::channel();
    let spawn = |what: &'static str, job: Box<dyn FnOnce() + Send>| {
        let done = done.clone();
        thread::spawn(move || {
            job();
            let _ = done.send(what);
        });
        thread::sleep(SETTLE);
    };
    let xt = x.clone();
    spawn(
        "truncate x",
        Box::new(move || drop(busy.open(&xt, WR | TRUNC))),
    );
    // Queued first on the namespace lock: once it is free, this open truncates `y`.
    let yt = y.clone();
    spawn(
        "truncate y",
        Box::new(move || assert_eq!(truncater.open(&yt, WR | TRUNC).0.status, 0)),
    );
    let c = Arc::clone(&client);
    spawn(
        "append y",
        Box::new(move || assert_eq!(c.write(appender, b"record", None).unwrap(), 6)),
    );
    drop(x_lock);

    for _ in 0..3 {
        match results.recv_timeout(DEADLOCK) {
            Ok(_) => {}
            // The server is killed on the way out, which frees the stuck threads.
            Err(_) => panic!("deadlock: the append and the truncating open never finished"),
        }
    }
    drop(holder);
    client.exit(true).unwrap();
    server.wait_exit(Duration::from_secs(10));
}
