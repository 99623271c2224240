//! Harness for end-to-end tests: scratch directories, a real `capio_server` process started with
//! the `--ready-fd` handshake, and a minimal protocol client.
#![allow(dead_code)] // each test binary uses a different subset

use bytemuck::Pod;
use capio_proto::runtime::{RUNTIME_DIR_ENV, WorkflowPaths};
use capio_proto::*;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::{Duration, Instant};

pub const RD: u32 = libc::O_RDONLY as u32;
pub const WR: u32 = libc::O_WRONLY as u32;
pub const RW: u32 = libc::O_RDWR as u32;
pub const CREAT: u32 = libc::O_CREAT as u32;
pub const TRUNC: u32 = libc::O_TRUNC as u32;

/// A unique scratch directory (runtime dir, CAPIO dir, logs), removed on drop.
pub struct Scratch {
    pub dir: PathBuf,
    pub runtime: PathBuf,
    pub capio: PathBuf,
}

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "capio-server-it-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, SeqCst)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("runtime")).unwrap();
        fs::create_dir_all(dir.join("capio")).unwrap();
        let dir = fs::canonicalize(dir).unwrap();
        Scratch {
            runtime: dir.join("runtime"),
            capio: dir.join("capio"),
            dir,
        }
    }

    pub fn workflow(&self) -> String {
        format!("it-{}", self.dir.file_name().unwrap().to_string_lossy())
    }

    pub fn paths(&self) -> WorkflowPaths {
        WorkflowPaths::new(&self.runtime, &self.workflow())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The command line of a test server for `s`, announcing readiness on `ready_fd` (inherited).
pub fn server_command(s: &Scratch, ready_fd: i32, log: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_capio_server"));
    cmd.arg("--capio-dir")
        .arg(&s.capio)
        .arg("--workflow-name")
        .arg(s.workflow())
        .arg("--ready-fd")
        .arg(ready_fd.to_string())
        .arg("--log-file")
        .arg(log)
        .env(RUNTIME_DIR_ENV, &s.runtime)
        .env("CAPIO_LOG_LEVEL", "debug")
        .env_remove("CAPIO_DIR")
        .stdin(Stdio::null());
    sys::inherit_fd_on_spawn(&mut cmd, ready_fd);
    cmd
}

/// A `capio_server` child; killed (by its pid) if a test ends while it still runs.
pub struct ServerProc {
    pub child: Child,
    pub log: PathBuf,
}

impl ServerProc {
    /// Spawn a server and return it with the line it wrote on its ready fd.
    pub fn spawn(s: &Scratch, log_name: &str) -> (ServerProc, String) {
        ServerProc::spawn_with(s, log_name, &[])
    }

    /// Like `spawn`, with further command-line arguments.
    pub fn spawn_with(s: &Scratch, log_name: &str, args: &[&OsStr]) -> (ServerProc, String) {
        let (r, w) = sys::pipe().unwrap();
        let log = s.dir.join(log_name);
        let mut cmd = server_command(s, w.as_raw_fd(), &log);
        cmd.args(args);
        let child = cmd.spawn().unwrap();
        drop(w);
        let line = read_line(File::from(r), Duration::from_secs(30));
        (ServerProc { child, log }, line)
    }

    /// Spawn and require `OK <pid>`.
    pub fn start(s: &Scratch) -> ServerProc {
        let (server, line) = ServerProc::spawn(s, "server.log");
        assert_eq!(line, format!("OK {}", server.pid()), "ready line");
        server
    }

    /// Spawn with `-c config` and require `OK <pid>`.
    pub fn start_with_config(s: &Scratch, config: &Path) -> ServerProc {
        let args = [OsStr::new("-c"), config.as_os_str()];
        let (server, line) = ServerProc::spawn_with(s, "server.log", &args);
        assert_eq!(line, format!("OK {}", server.pid()), "ready line");
        server
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "server {} did not exit",
                self.pid()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn read_line(mut f: File, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    let mut line = Vec::new();
    while !line.contains(&b'\n') {
        let left = deadline.saturating_duration_since(Instant::now());
        if !sys::poll_readable(f.as_fd(), left).unwrap() {
            panic!("no ready line within {timeout:?}");
        }
        let mut buf = [0u8; 256];
        match f.read(&mut buf).unwrap() {
            0 => break,
            n => line.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8(line).unwrap().trim_end().to_owned()
}

/// A reply: its fixed part and tail, and the fd that came with it.
pub struct Frame {
    pub header: Header,
    pub body: Vec<u8>,
    pub fd: Option<OwnedFd>,
}

impl Frame {
    pub fn fixed<T: Pod>(&self) -> T {
        decode::<T>(&self.body).unwrap().0
    }

    pub fn tail<T: Pod>(&self) -> &[u8] {
        decode::<T>(&self.body).unwrap().1
    }
}

/// A protocol client with the state table mapped.
pub struct Client {
    pub sock: UnixStream,
    pub table: StateTable,
    pub id: u64,
    /// The `Hello` reply's tail: the server's CAPIO-CL file, or empty.
    pub config: Vec<u8>,
}

pub fn connect(s: &Scratch) -> UnixStream {
    UnixStream::connect(s.paths().socket).unwrap()
}

pub fn send<T: Pod>(sock: &UnixStream, kind: Kind, fixed: &T, tail: &[u8]) {
    let bytes = encode(kind as u16, fixed, tail).unwrap();
    sys::send_with_fd(sock, &bytes, None).unwrap();
}

/// Receive one frame; `None` if the server closed the connection (EOF or reset) instead. A
/// reply cut short, or any other error, fails the test: it is not a close.
pub fn recv(sock: &UnixStream) -> Option<Frame> {
    match recv_frame(sock) {
        Ok((header, body, fd)) => Some(Frame { header, body, fd }),
        Err(WireError::Eof) => None,
        Err(e) => panic!("bad reply frame: {e}"),
    }
}

pub fn call<T: Pod>(sock: &UnixStream, kind: Kind, fixed: &T, tail: &[u8]) -> Frame {
    send(sock, kind, fixed, tail);
    let frame = recv(sock).expect("the server closed the connection");
    assert_eq!(frame.header.kind, kind as u16 | REPLY_BIT);
    frame
}

pub fn hello_tail(app: &str, root: &Path) -> Vec<u8> {
    let mut tail = app.as_bytes().to_vec();
    tail.push(0);
    tail.extend_from_slice(root.as_os_str().as_bytes());
    tail
}

/// An observer connection (`pycapio server status`): its socket and the `Hello` reply.
pub fn observer(s: &Scratch) -> (UnixStream, HelloReply, Option<OwnedFd>) {
    let sock = connect(s);
    let req = HelloReq {
        pid: std::process::id(),
        flags: hello_flags::OBSERVER,
    };
    let reply = call(&sock, Kind::Hello, &req, &[]);
    let hr = reply.fixed::<HelloReply>();
    (sock, hr, reply.fd)
}

/// The `Status` JSON, asked on `sock`.
pub fn status_text(sock: &UnixStream) -> String {
    let f = call(sock, Kind::Status, &Empty {}, &[]);
    assert_eq!(f.fixed::<StatusReply>().status, 0);
    String::from_utf8(f.tail::<StatusReply>().to_vec()).unwrap()
}

fn b(path: &Path) -> &[u8] {
    path.as_os_str().as_bytes()
}

impl Client {
    pub fn hello(s: &Scratch, app: &str) -> Client {
        let sock = connect(s);
        let req = HelloReq {
            pid: std::process::id(),
            flags: 0,
        };
        let reply = call(&sock, Kind::Hello, &req, &hello_tail(app, &s.capio));
        let hr: HelloReply = reply.fixed();
        assert_eq!(hr.status, 0);
        let config = reply.tail::<HelloReply>().to_vec();
        let table = StateTable::map(reply.fd.expect("table fd"), hr.table_slots).unwrap();
        Client {
            sock,
            table,
            id: hr.client_id,
            config,
        }
    }

    pub fn open(&self, path: &Path, flags: u32) -> (OpenReply, Option<File>) {
        let req = OpenReq { flags, mode: 0o666 };
        let f = call(&self.sock, Kind::Open, &req, b(path));
        (f.fixed(), f.fd.map(File::from))
    }

    pub fn close(&self, slot: u32, writable: bool) {
        let req = CloseReq {
            slot,
            writable: u32::from(writable),
            ..CloseReq::default()
        };
        send(&self.sock, Kind::Close, &req, &[]);
    }

    pub fn stat(&self, path: &Path) -> StatReply {
        call(&self.sock, Kind::Stat, &Empty {}, b(path)).fixed()
    }

    pub fn mkdir(&self, path: &Path) -> i32 {
        let req = MkdirReq {
            mode: 0o777,
            _pad: 0,
        };
        call(&self.sock, Kind::Mkdir, &req, b(path))
            .fixed::<StatusReply>()
            .status
    }

    pub fn list(&self, path: &Path) -> (i32, Vec<(u32, String)>) {
        let (reply, entries) = self.list_reply(path);
        (reply.status, entries)
    }

    /// A `List` with its whole fixed part (commit state, fire rule, producer, generation).
    pub fn list_reply(&self, path: &Path) -> (ListReply, Vec<(u32, String)>) {
        let f = call(&self.sock, Kind::List, &Empty {}, b(path));
        let entries = parse_entries(f.tail::<ListReply>())
            .unwrap()
            .into_iter()
            .map(|(k, n)| (u32::from(k), String::from_utf8_lossy(n).into_owned()))
            .collect();
        (f.fixed::<ListReply>(), entries)
    }

    pub fn unlink(&self, path: &Path) -> i32 {
        call(&self.sock, Kind::Unlink, &Empty {}, b(path))
            .fixed::<StatusReply>()
            .status
    }

    pub fn rmdir(&self, path: &Path) -> i32 {
        call(&self.sock, Kind::Rmdir, &Empty {}, b(path))
            .fixed::<StatusReply>()
            .status
    }

    pub fn rename(&self, src: &Path, dst: &Path) -> i32 {
        let (req, tail) = rename_tail(b(src), b(dst)).unwrap();
        call(&self.sock, Kind::Rename, &req, &tail)
            .fixed::<StatusReply>()
            .status
    }

    pub fn exit(&self, teardown: bool) -> i32 {
        let req = ExitReq {
            teardown: u32::from(teardown),
            _pad: 0,
        };
        call(&self.sock, Kind::Exit, &req, &[])
            .fixed::<StatusReply>()
            .status
    }

    /// `Reserve` room for a write of `slot` up to `end`: (status, granted).
    pub fn reserve(&self, slot: u32, end: u64) -> (i32, u64) {
        let req = ReserveReq { slot, _pad: 0, end };
        let r: ReserveReply = call(&self.sock, Kind::Reserve, &req, &[]).fixed();
        (r.status, r.granted)
    }

    pub fn slot(&self, index: u32) -> &Slot {
        self.table.slot(index).unwrap()
    }

    /// Wait (on the slot's futex, bounded) until the slot reaches `state`.
    pub fn wait_state(&self, index: u32, state: SlotState) {
        let slot = self.slot(index);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let seen = slot.seq.load(SeqCst);
            if slot.state() == state {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "slot {index} never became {state:?}");
            slot.wait(seen, Some(left));
        }
    }
}
