//! A server whose starter gave up waiting (closed its end of the ready pipe) stops by itself
//! instead of running forever with no client.

mod support;

use capio_proto::sys;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};
use support::Scratch;

#[test]
fn a_server_nobody_waits_for_stops_by_itself() {
    let s = Scratch::new("ready");
    let (r, w) = sys::pipe().unwrap();
    drop(r); // the starter is gone before the server is ready
    let log = s.dir.join("server.log");
    let mut cmd = support::server_command(&s, w.as_raw_fd(), &log);
    let mut child = cmd.spawn().unwrap();
    drop(w);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server kept running with nobody to serve");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(text.contains("gave up waiting"), "{text}");
}
