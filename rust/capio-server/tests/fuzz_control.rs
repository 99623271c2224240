//! A seeded, deterministic fuzzer of the control protocol against a real server: thousands of
//! random and mutated frames (every kind and some that do not exist, lying lengths, flipped
//! bytes, paths with `..`, `.`, empty and over-long components, absolute paths outside the CAPIO
//! directory and in a sibling `capio2`, symlinks inside that lead out), plus scribbles on the
//! shared state table and the data objects. After every frame the server must still answer (or
//! have dropped just that connection); at the end it must shut down cleanly, and nothing outside
//! the CAPIO directory may have changed. `CAPIO_FUZZ_FRAMES` and `CAPIO_FUZZ_SEED` tune it.

mod support;

use capio_proto::*;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, symlink};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};
use support::*;

/// xorshift64*: small, seedable, good enough to pick cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Everything under `root` except `skip`: path → (kind, mode, size, mtime, content or link).
fn snapshot(root: &Path, skip: &[&Path]) -> BTreeMap<PathBuf, (u32, u32, u64, i64, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if skip.iter().any(|s| path.starts_with(s)) {
                continue;
            }
            let meta = fs::symlink_metadata(&path).unwrap();
            let content = if meta.file_type().is_symlink() {
                fs::read_link(&path)
                    .unwrap()
                    .as_os_str()
                    .as_bytes()
                    .to_vec()
            } else if meta.is_file() {
                fs::read(&path).unwrap()
            } else {
                if meta.is_dir() {
                    todo.push(path.clone());
                }
                Vec::new()
            };
            out.insert(
                path,
                (
                    meta.mode() & 0o170000,
                    meta.mode() & 0o7777,
                    meta.len(),
                    meta.mtime_nsec() + meta.mtime() * 1_000_000_000,
                    content,
                ),
            );
        }
    }
    out
}

struct Fuzz {
    rng: Rng,
    capio: PathBuf,
    outside: PathBuf,
    sibling: PathBuf,
}

impl Fuzz {
    fn path(&mut self) -> Vec<u8> {
        let names: [&[u8]; 16] = [
            b"a",
            b"b.txt",
            b"d",
            b"in.txt",
            b"link_out",
            b"link_file",
            b"link_up",
            b"..",
            b".",
            b"",
            b"x\n y",
            b"\xff\xfe",
            b"d/link_rel",
            b"new",
            b"secret.txt",
            b"fifo",
        ];
        let base: Vec<u8> = match self.rng.below(10) {
            0 => self.outside.as_os_str().as_bytes().to_vec(),
            1 => self.sibling.as_os_str().as_bytes().to_vec(),
            2 => b"relative".to_vec(),
            3 => b"/".to_vec(),
            _ => self.capio.as_os_str().as_bytes().to_vec(),
        };
        let mut p = base;
        for _ in 0..self.rng.below(4) {
            p.extend_from_slice(b"/");
            if self.rng.chance(3) {
                p.extend(std::iter::repeat_n(
                    b'x',
                    256 + self.rng.below(300) as usize,
                ));
            } else {
                let name = names[self.rng.below(names.len() as u64) as usize];
                p.extend_from_slice(name);
            }
        }
        let trailing: &[u8] = match self.rng.below(100) {
            0..=2 => b"/",
            3..=4 => b"\0",
            _ => b"",
        };
        p.extend_from_slice(trailing);
        p
    }

    fn flags(&mut self) -> u32 {
        let common = [
            RD,
            WR | CREAT,
            RW | CREAT | TRUNC,
            WR | CREAT | libc::O_EXCL as u32,
            WR | libc::O_APPEND as u32,
            RD | TRUNC,
            WR | CREAT | libc::O_DIRECTORY as u32,
        ];
        if self.rng.chance(20) {
            self.rng.next() as u32
        } else {
            *self.rng.pick(&common)
        }
    }

    /// One request frame, well-formed or not. Never `Shutdown` nor a teardown (they end the run
    /// by design).
    fn frame(&mut self, slots: u32) -> (Vec<u8>, bool) {
        let kinds = [2u16, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 1, 0, 14, 999];
        let kind = *self.rng.pick(&kinds);
        let path = self.path();
        let slot = self.rng.below(u64::from(slots) + 2) as u32;
        let mut frame = match kind {
            2 => {
                let req = OpenReq {
                    flags: self.flags(),
                    mode: self.rng.next() as u32 & 0o7777,
                };
                encode(kind, &req, &path)
            }
            3 => encode(
                kind,
                &CloseReq {
                    slot,
                    writable: self.rng.below(2) as u32,
                    progress: self.rng.below(4) as u32,
                    _pad: 0,
                },
                &[],
            ),
            5 => encode(
                kind,
                &MkdirReq {
                    mode: self.rng.next() as u32,
                    _pad: 0,
                },
                &path,
            ),
            7 => encode(
                kind,
                &ExitReq {
                    teardown: 0,
                    _pad: self.rng.next() as u32,
                },
                &[],
            ),
            10 => {
                let dst = self.path();
                let (mut req, tail) = rename_tail(&path, &dst).unwrap();
                if self.rng.chance(10) {
                    req.src_len = self.rng.next() as u32;
                }
                if self.rng.chance(5) {
                    req.flags = 1;
                }
                encode(kind, &req, &tail)
            }
            13 => {
                let end = if self.rng.chance(10) {
                    u64::MAX - self.rng.below(3)
                } else {
                    self.rng.below(1 << 30)
                };
                encode(kind, &ReserveReq { slot, _pad: 0, end }, &[])
            }
            1 => encode(
                kind,
                &HelloReq {
                    pid: 1,
                    flags: self.rng.next() as u32,
                },
                &hello_tail("again", &self.capio),
            ),
            _ => {
                let n = self.rng.below(64) as usize;
                let body = self.rng.bytes(n);
                encode(
                    kind,
                    &Empty {},
                    &[body.as_slice(), path.as_slice()].concat(),
                )
            }
        }
        .unwrap();
        let mut mutated = false;
        if self.rng.chance(12) {
            for _ in 0..=self.rng.below(4) {
                let at = self.rng.below(frame.len() as u64) as usize;
                frame[at] ^= 1 << self.rng.below(8);
            }
            mutated = true;
        }
        if self.rng.chance(4) && frame.len() > 1 {
            frame.truncate(self.rng.below(frame.len() as u64) as usize);
            mutated = true;
        }
        // Keep the server up: no Shutdown, and no Exit asking for a teardown, even by flips.
        if mutated && frame.len() >= 8 {
            let k = u16::from_le_bytes([frame[6], frame[7]]);
            if k == Kind::Shutdown as u16 || k == Kind::Exit as u16 {
                frame[6] ^= 0x40;
            }
        }
        (frame, mutated)
    }
}

struct Conn {
    sock: UnixStream,
    table: Option<StateTable>,
}

fn hello(s: &Scratch, rng: &mut Rng) -> Conn {
    let sock = UnixStream::connect(s.paths().socket).unwrap_or_else(|e| {
        let log = fs::read_to_string(s.dir.join("server.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        panic!(
            "cannot connect ({e}); the server log ends with:\n{}",
            tail.join("\n")
        );
    });
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let app = *rng.pick(&["w", "r", "other"]);
    let req = HelloReq {
        pid: std::process::id(),
        flags: 0,
    };
    let reply = call(&sock, Kind::Hello, &req, &hello_tail(app, &s.capio));
    let hr = reply.fixed::<HelloReply>();
    assert_eq!(hr.status, 0);
    let table = StateTable::map(reply.fd.unwrap(), hr.table_slots).ok();
    Conn { sock, table }
}

/// Read frames until the reply to our `Stat` probe (true), or EOF (false: the server dropped
/// this connection). A timeout is a hang: the test fails.
fn drain_until_probe(c: &Conn, started: Instant, what: &str) -> bool {
    loop {
        match recv_or_timeout(&c.sock) {
            Ok(Some((kind, fds))) => {
                drop(fds);
                if kind == Kind::Stat as u16 | REPLY_BIT {
                    return true;
                }
            }
            Ok(None) => return false,
            Err(()) => panic!("no answer {:?} after {what}", started.elapsed()),
        }
    }
}

/// One frame: `Ok(None)` at EOF, `Err` on a timeout.
fn recv_or_timeout(sock: &UnixStream) -> Result<Option<(u16, Option<std::os::fd::OwnedFd>)>, ()> {
    let mut raw = [0u8; HEADER_LEN];
    let mut got = 0;
    let mut fd = None;
    while got < HEADER_LEN {
        match sys::recv_with_fd(sock, &mut raw[got..]) {
            Ok((0, _)) => return Ok(None),
            Ok((n, f)) => {
                got += n;
                fd = fd.or(f);
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return Err(());
            }
            Err(_) => return Ok(None),
        }
    }
    let header: Header = bytemuck::pod_read_unaligned(&raw);
    header.check().expect("the server sends well-formed frames");
    let mut body = vec![0u8; header.len as usize];
    std::io::Read::read_exact(&mut &*sock, &mut body).map_err(|_| ())?;
    Ok(Some((header.kind, fd)))
}

#[test]
fn random_and_mutated_frames_never_hang_crash_or_escape_the_capio_dir() {
    let frames = env_u64("CAPIO_FUZZ_FRAMES", 12_000);
    let seed = env_u64("CAPIO_FUZZ_SEED", 0x5eed_c0de_2024);
    let s = Scratch::new("fuzz");
    let outside = s.dir.join("outside");
    let sibling = s.dir.join("capio2");
    fs::create_dir_all(outside.join("sub")).unwrap();
    fs::create_dir_all(&sibling).unwrap();
    fs::write(outside.join("secret.txt"), b"do not touch").unwrap();
    fs::write(outside.join("sub/deep.txt"), b"nor this").unwrap();
    fs::write(sibling.join("a"), b"sibling prefix").unwrap();
    fs::write(s.capio.join("in.txt"), b"an input").unwrap();
    fs::create_dir(s.capio.join("d")).unwrap();
    symlink(&outside, s.capio.join("link_out")).unwrap();
    symlink(outside.join("secret.txt"), s.capio.join("link_file")).unwrap();
    symlink(&s.dir, s.capio.join("link_up")).unwrap();
    symlink("../../outside", s.capio.join("d/link_rel")).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(s.capio.join("fifo"))
        .status()
        .unwrap();
    assert!(status.success());

    let skip = [
        s.capio.as_path(),
        s.runtime.as_path(),
        &s.dir.join("server.log"),
    ];
    let before = snapshot(&s.dir, &skip);
    assert!(before.len() >= 5);
    let mut server = ServerProc::start(&s);
    let mut fz = Fuzz {
        rng: Rng(seed | 1),
        capio: s.capio.clone(),
        outside: outside.clone(),
        sibling: sibling.clone(),
    };
    let mut conns: Vec<Conn> = (0..3).map(|_| hello(&s, &mut fz.rng)).collect();
    let probe = encode(Kind::Stat as u16, &Empty {}, s.capio.as_os_str().as_bytes()).unwrap();
    let mut dropped = 0u64;
    let started = Instant::now();
    for i in 0..frames {
        let which = fz.rng.below(conns.len() as u64) as usize;
        let slots = 64;
        let (frame, mutated) = fz.frame(slots);
        let c = &conns[which];
        let _ = sys::send_with_fd(&c.sock, &frame, None);
        let alive = if mutated {
            // A frame whose length lies may swallow the probe: end our side, expect EOF.
            let _ = sys::send_with_fd(&c.sock, &probe, None);
            let _ = c.sock.shutdown(std::net::Shutdown::Write);
            drain_until_probe(c, Instant::now(), &format!("mutated frame {i}"));
            false
        } else {
            let _ = sys::send_with_fd(&c.sock, &probe, None);
            drain_until_probe(
                c,
                Instant::now(),
                &format!("frame {i} kind {:?}", &frame.get(6..8)),
            )
        };
        // Scribble on shared state and data objects, as a malicious client could.
        if let Some(t) = &conns[which].table
            && fz.rng.chance(5)
        {
            let slot = t.slot(1 + fz.rng.below(u64::from(slots)) as u32).unwrap();
            match fz.rng.below(3) {
                0 => slot.len.store(fz.rng.below(1 << 20), SeqCst),
                1 => slot.state.store(fz.rng.below(5) as u32, SeqCst),
                _ => slot.publish(fz.rng.below(4096)),
            }
        }
        if !alive {
            dropped += 1;
            conns[which] = hello(&s, &mut fz.rng);
        }
    }
    eprintln!(
        "{frames} frames in {:?}, {dropped} connections dropped by the server",
        started.elapsed()
    );
    assert!(
        dropped > 0,
        "the fuzzer never produced a frame the server refuses"
    );

    // Still serving a fresh client, then a clean shutdown.
    let fresh = hello(&s, &mut fz.rng);
    assert!(drain_until_probe(
        &{
            let _ = sys::send_with_fd(&fresh.sock, &probe, None);
            fresh
        },
        Instant::now(),
        "the final probe"
    ));
    drop(conns);
    // The graceful shutdown persists what the fuzzed clients committed: still only inside.
    sys::send_signal(server.pid(), libc::SIGTERM).unwrap();
    assert!(server.wait_exit(Duration::from_secs(60)).success());
    let after = snapshot(&s.dir, &skip);
    assert_eq!(
        before, after,
        "something outside the CAPIO directory changed"
    );
    // And the valid requests did real work inside it (files created, committed and persisted).
    let inside = snapshot(&s.capio, &[]);
    assert!(
        inside.len() > 8,
        "only {} entries in the CAPIO directory",
        inside.len()
    );
    assert!(
        !server.log_text().contains("panicked"),
        "a connection thread panicked"
    );
}
