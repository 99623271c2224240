//! The raw syscalls CAPIO needs that `std` does not wrap: memfd, mmap, futex, fd passing,
//! peer credentials, flock, signal waiting and detaching the server. Every `unsafe` block of the
//! control plane lives here, each behind a safe function.

use std::ffi::CString;
use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::ptr::NonNull;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// An anonymous shared-memory file (`memfd_create`), close-on-exec.
pub fn memfd(name: &str) -> io::Result<OwnedFd> {
    let name = CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `name` is a valid NUL-terminated string that outlives the call.
    let fd = cvt(unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) })?;
    // SAFETY: the kernel just returned this fd and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Map `len` bytes of `fd` shared and read-write.
pub fn mmap_shared(fd: BorrowedFd<'_>, len: usize) -> io::Result<NonNull<u8>> {
    // SAFETY: a fresh mapping at a kernel-chosen address; it aliases no Rust object.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    NonNull::new(p.cast()).ok_or_else(|| io::Error::from_raw_os_error(libc::ENOMEM))
}

/// Unmap a region returned by [`mmap_shared`].
///
/// # Safety
/// `ptr`/`len` must come from one `mmap_shared` call and no reference into it may outlive this call.
pub unsafe fn munmap(ptr: NonNull<u8>, len: usize) {
    // SAFETY: guaranteed by the caller.
    unsafe { libc::munmap(ptr.as_ptr().cast(), len) };
}

/// Outcome of a futex wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Woken, or the word no longer held the expected value.
    Changed,
    TimedOut,
    /// A signal arrived: the caller should check for pending signal handlers.
    Interrupted,
}

/// Sleep while `*word == expected` (a process-shared futex: the word lives in shared memory).
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> Wake {
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a live, aligned u32; the kernel only reads it; `ts_ptr` is null or valid.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            ts_ptr,
            0usize,
            0u32,
        )
    };
    if r == 0 {
        return Wake::Changed;
    }
    match io::Error::last_os_error().raw_os_error() {
        Some(libc::ETIMEDOUT) => Wake::TimedOut,
        Some(libc::EINTR) => Wake::Interrupted,
        _ => Wake::Changed, // EAGAIN: the value had already changed
    }
}

/// Wake every waiter sleeping on `word`, in any process.
pub fn futex_wake_all(word: &AtomicU32) {
    // SAFETY: `word` is a live, aligned u32; FUTEX_WAKE does not access its memory.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            i32::MAX,
            0usize,
            0usize,
            0u32,
        );
    }
}

/// Send `bytes` in one message, with `fd` attached as `SCM_RIGHTS` when given.
pub fn send_with_fd(sock: &UnixStream, bytes: &[u8], fd: Option<BorrowedFd<'_>>) -> io::Result<()> {
    let mut sent = 0;
    let mut fd = fd;
    while sent < bytes.len() {
        let iov = [IoSlice::new(&bytes[sent..])];
        let mut cmsg_buf = [0u64; 4]; // CMSG_SPACE(sizeof(int)) == 24 on Linux; u64 for alignment
        // SAFETY: msghdr is a plain C struct; all-zero is a valid "no name, no control" value.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
        msg.msg_iovlen = 1;
        if let Some(f) = fd {
            // SAFETY: CMSG_SPACE is a pure size computation.
            let space = unsafe { libc::CMSG_SPACE(size_of::<RawFd>() as u32) } as usize;
            msg.msg_control = cmsg_buf.as_mut_ptr().cast();
            msg.msg_controllen = space;
            // SAFETY: msg_control points at `space` writable bytes, enough for one cmsg header + int.
            unsafe {
                let cmsg = libc::CMSG_FIRSTHDR(&msg);
                (*cmsg).cmsg_level = libc::SOL_SOCKET;
                (*cmsg).cmsg_type = libc::SCM_RIGHTS;
                (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<RawFd>() as u32) as usize;
                std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), f.as_raw_fd());
            }
        }
        // SAFETY: `msg` points at live iovec/control buffers for the duration of the call.
        let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        sent += n as usize;
        fd = None; // the fd travels with the first chunk only
    }
    Ok(())
}

/// Receive into `buf` (at least one byte, at most `buf.len()`), taking an `SCM_RIGHTS` fd if one came.
pub fn recv_with_fd(sock: &UnixStream, buf: &mut [u8]) -> io::Result<(usize, Option<OwnedFd>)> {
    loop {
        let mut iov = [IoSliceMut::new(buf)];
        let mut cmsg_buf = [0u64; 8];
        // SAFETY: as in `send_with_fd`, all-zero is a valid empty msghdr.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = iov.as_mut_ptr().cast();
        msg.msg_iovlen = 1;
        msg.msg_control = cmsg_buf.as_mut_ptr().cast();
        msg.msg_controllen = size_of_val(&cmsg_buf);
        // SAFETY: `msg` points at live, writable iovec/control buffers for the duration of the call.
        let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let mut fd = None;
        // SAFETY: the kernel filled `msg_control`; the CMSG_* macros walk it within msg_controllen.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                    let raw = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>());
                    fd = Some(OwnedFd::from_raw_fd(raw));
                }
                cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
            }
        }
        return Ok((n as usize, fd));
    }
}

/// The uid and pid of the process at the other end of a Unix socket.
pub fn peer_cred(sock: &UnixStream) -> io::Result<(u32, i32)> {
    // SAFETY: ucred is a plain C struct; zero is valid.
    let mut cred: libc::ucred = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred`/`len` are valid out-parameters of the right size.
    cvt(unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    })?;
    Ok((cred.uid, cred.pid))
}

pub fn getuid() -> u32 {
    // SAFETY: getuid cannot fail and touches no memory.
    unsafe { libc::getuid() }
}

/// The process's file-mode creation mask, read without changing it (`umask(2)` can only be read
/// by setting it, which would race with other threads creating files). Reading it costs a
/// `/proc` read (a few µs per create), so while the Python layer tracks it (its `os.umask` proxy
/// reports every change, see [`track_umask`]) the tracked value is used instead.
pub fn current_umask() -> u32 {
    use std::sync::atomic::Ordering::{AcqRel, Acquire};
    match TRACKED_UMASK.load(Acquire) {
        UNTRACKED => read_umask(),
        UNREAD => {
            // The first create since tracking began reads it; an `os.umask` that reports a new
            // mask meanwhile wins (the exchange only replaces UNREAD).
            let mask = read_umask();
            match TRACKED_UMASK.compare_exchange(UNREAD, mask, AcqRel, Acquire) {
                Ok(_) => mask,
                Err(newer) if newer != UNTRACKED => newer,
                Err(_) => mask,
            }
        }
        mask => mask,
    }
}

const UNTRACKED: u32 = u32::MAX;
const UNREAD: u32 = u32::MAX - 1;
static TRACKED_UMASK: AtomicU32 = AtomicU32::new(UNTRACKED);

/// How creates learn the umask: [`Tracking::Off`] reads it every time; [`Tracking::Start`] reads it
/// once, at the next create (starting costs nothing, so entering a context does not pay for it);
/// [`Tracking::Changed`] is told a new mask.
pub enum Tracking {
    Off,
    Start,
    Changed(u32),
}

pub fn track_umask(how: Tracking) {
    let value = match how {
        Tracking::Off => UNTRACKED,
        Tracking::Start => UNREAD,
        Tracking::Changed(mask) => mask & 0o777,
    };
    TRACKED_UMASK.store(value, std::sync::atomic::Ordering::Release);
}

/// The umask as the kernel has it now.
pub fn read_umask() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Umask:"))
        .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        .unwrap_or(0o022)
}

/// Attribute changes for [`set_attrs_fd`] / [`set_attrs_path`]: what `chmod`, `chown` and
/// `utimensat` would set. Times are nanoseconds since the epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Attrs {
    pub mode: Option<u32>,
    /// `(uid, gid)`, `u32::MAX` meaning unchanged.
    pub owner: Option<(u32, u32)>,
    pub atime: TimeSet,
    pub mtime: TimeSet,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TimeSet {
    #[default]
    Omit,
    Now,
    At(i64),
}

fn timespec(t: TimeSet) -> libc::timespec {
    match t {
        TimeSet::Omit => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        TimeSet::Now => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_NOW,
        },
        TimeSet::At(ns) => libc::timespec {
            tv_sec: ns.div_euclid(1_000_000_000),
            tv_nsec: ns.rem_euclid(1_000_000_000),
        },
    }
}

/// Apply `attrs` to an open file, in the order `chown`, `chmod`, times (a chown by non-root
/// clears set-id bits, so a mode set with it must come after).
pub fn set_attrs_fd(fd: BorrowedFd<'_>, attrs: &Attrs) -> io::Result<()> {
    let fd = fd.as_raw_fd();
    if let Some((uid, gid)) = attrs.owner {
        // SAFETY: plain syscall on a live fd.
        cvt(unsafe { libc::fchown(fd, uid, gid) })?;
    }
    if let Some(mode) = attrs.mode {
        // SAFETY: plain syscall on a live fd.
        cvt(unsafe { libc::fchmod(fd, mode & 0o7777) })?;
    }
    if attrs.atime != TimeSet::Omit || attrs.mtime != TimeSet::Omit {
        let times = [timespec(attrs.atime), timespec(attrs.mtime)];
        // SAFETY: `times` is a valid array of two timespecs.
        cvt(unsafe { libc::futimens(fd, times.as_ptr()) })?;
    }
    Ok(())
}

/// Apply `attrs` to the file at `path`; with `nofollow`, a final symbolic link itself (its mode
/// cannot be changed: `EOPNOTSUPP`, as Linux answers).
pub fn set_attrs_path(path: &std::path::Path, attrs: &Attrs, nofollow: bool) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let flag = if nofollow {
        libc::AT_SYMLINK_NOFOLLOW
    } else {
        0
    };
    if let Some((uid, gid)) = attrs.owner {
        // SAFETY: `c` is a NUL-terminated path that outlives the call.
        cvt(unsafe { libc::fchownat(libc::AT_FDCWD, c.as_ptr(), uid, gid, flag) })?;
    }
    if let Some(mode) = attrs.mode {
        if nofollow {
            return Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP));
        }
        // SAFETY: `c` is a NUL-terminated path that outlives the call.
        cvt(unsafe { libc::fchmodat(libc::AT_FDCWD, c.as_ptr(), mode & 0o7777, 0) })?;
    }
    if attrs.atime != TimeSet::Omit || attrs.mtime != TimeSet::Omit {
        let times = [timespec(attrs.atime), timespec(attrs.mtime)];
        // SAFETY: `c` and `times` are valid for the call.
        cvt(unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), flag) })?;
    }
    Ok(())
}

/// Copy `len` bytes of `src` from offset 0 into `dst` at its position, without moving `src`'s
/// file offset (which other processes sharing the open file description rely on) and without
/// reopening it (which a mode without read permission would refuse).
pub fn copy_from_start(src: BorrowedFd<'_>, dst: BorrowedFd<'_>, len: u64) -> io::Result<u64> {
    let mut off: libc::off_t = 0;
    let mut done = 0u64;
    while done < len {
        let chunk = usize::try_from((len - done).min(1 << 30)).unwrap_or(1 << 30);
        // SAFETY: both fds are live; `off` is a valid offset pointer updated by the kernel.
        let n = unsafe { libc::sendfile(dst.as_raw_fd(), src.as_raw_fd(), &mut off, chunk) };
        match n {
            0 => break,
            n if n > 0 => done += n as u64,
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
    Ok(done)
}

/// `flock(LOCK_EX)`; with `wait == false` returns `Ok(false)` when another holder has it.
pub fn flock_exclusive(fd: BorrowedFd<'_>, wait: bool) -> io::Result<bool> {
    let op = if wait {
        libc::LOCK_EX
    } else {
        libc::LOCK_EX | libc::LOCK_NB
    };
    loop {
        // SAFETY: flock on a valid fd touches no memory.
        let r = unsafe { libc::flock(fd.as_raw_fd(), op) };
        if r == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) => return Ok(false),
            Some(libc::EINTR) => continue,
            _ => return Err(e),
        }
    }
}

/// Block `SIGTERM`, `SIGINT` and `SIGHUP` in the calling thread (and threads it spawns later), so
/// that [`wait_termination_signal`] can take them synchronously.
pub fn block_termination_signals() -> io::Result<()> {
    let set = termination_set();
    // SAFETY: `set` is an initialised sigset; the old mask is not requested.
    let r = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if r != 0 {
        Err(io::Error::from_raw_os_error(r))
    } else {
        Ok(())
    }
}

/// Wait for one of the signals blocked by [`block_termination_signals`]; returns its number.
pub fn wait_termination_signal() -> i32 {
    let set = termination_set();
    let mut sig = 0;
    loop {
        // SAFETY: `set` is initialised and `sig` is a valid out-parameter.
        if unsafe { libc::sigwait(&set, &mut sig) } == 0 {
            return sig;
        }
    }
}

fn termination_set() -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set before sigaddset reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGHUP);
        set
    }
}

/// Make a command start in its own session, so the terminal's Ctrl-C and the parent's process
/// group never reach the server it runs.
pub fn detach_on_spawn(cmd: &mut Command) {
    // SAFETY: the hook runs between fork and exec and only calls async-signal-safe `setsid`.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
}

/// Whether a process with this pid exists and has not exited: a zombie (killed, not reaped yet,
/// as happens to a daemon whose reaper is a container's init that never reaps) counts as dead.
pub fn process_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 performs only the permission and existence check.
    let r = unsafe { libc::kill(pid, 0) };
    let exists = r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    exists && !is_zombie(pid)
}

fn is_zombie(pid: i32) -> bool {
    let Ok(stat) = std::fs::read(format!("/proc/{pid}/stat")) else {
        return false; // no procfs: trust kill(2)
    };
    // The state follows the parenthesised command name, which may itself hold ')'.
    let Some(close) = stat.iter().rposition(|&b| b == b')') else {
        return false;
    };
    matches!(stat.get(close + 2), Some(b'Z' | b'X'))
}

/// Send `sig` to `pid`.
pub fn send_signal(pid: i32, sig: i32) -> io::Result<()> {
    // SAFETY: kill touches no memory of ours.
    cvt(unsafe { libc::kill(pid, sig) }).map(|_| ())
}

/// Poll whether a connected socket's peer has hung up, without blocking or consuming data.
pub fn peer_hung_up(sock: &UnixStream) -> bool {
    let mut p = libc::pollfd {
        fd: sock.as_raw_fd(),
        events: libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    let r = unsafe { libc::poll(&mut p, 1, 0) };
    r > 0 && (p.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR)) != 0
}

/// Wake a thread blocked in `accept` on this listening socket (Linux: shutdown fails the accept).
pub fn shutdown_socket(fd: BorrowedFd<'_>) {
    // SAFETY: shutdown on a valid fd touches no memory.
    unsafe { libc::shutdown(fd.as_raw_fd(), libc::SHUT_RDWR) };
}

/// A close-on-exec pipe: (read end, write end).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` is a valid two-int out-parameter.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: both fds were just created by the kernel and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Let `fd` (normally close-on-exec) survive into the program `cmd` executes, at the same number.
pub fn inherit_fd_on_spawn(cmd: &mut Command, fd: RawFd) {
    // SAFETY: the hook runs between fork and exec and only calls async-signal-safe `fcntl`.
    unsafe {
        cmd.pre_exec(move || {
            if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Wait up to `timeout` for `fd` to become readable (or hung up). `Ok(false)` on timeout.
pub fn poll_readable(fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<bool> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let ms = left.as_millis().min(i32::MAX as u128) as i32;
        let mut p = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut p, 1, ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        return Ok(r > 0);
    }
}

/// Fork into the background: the parent exits at once (so whoever spawned us can reap it and no
/// zombie is left), the child continues in a new session. Call before any thread is started.
pub fn daemonize() -> io::Result<()> {
    // SAFETY: called while the process is single-threaded, so the child's state is consistent.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid > 0 {
        // SAFETY: `_exit` skips atexit handlers and destructors, which belong to the child now.
        unsafe { libc::_exit(0) };
    }
    // SAFETY: setsid touches no memory.
    unsafe { libc::setsid() };
    Ok(())
}

/// Reap a child without blocking; true if it has exited.
pub fn try_reap(pid: i32) -> bool {
    let mut status = 0;
    // SAFETY: `status` is a valid out-parameter.
    unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) == pid }
}

/// Wait for a child to exit; returns its raw wait status.
pub fn reap(pid: i32) -> io::Result<i32> {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid out-parameter.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            return Ok(status);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Take ownership of a descriptor inherited across `exec` and named on the command line (the
/// server's `--ready-fd`): checked to be open, then made close-on-exec. Call it once per number at
/// start-up, before anything else in the process could have come to own that descriptor.
pub fn claim_inherited_fd(fd: RawFd) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    // SAFETY: F_GETFD only reads the descriptor flags; it fails with EBADF if `fd` is not open.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFD) })?;
    // SAFETY: F_SETFD only changes the descriptor flags of an fd just shown to be open.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) })?;
    // SAFETY: `fd` is open, and by this function's contract nothing else in the process owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Raise the soft limit on open files to the hard limit; returns the new soft limit. The server
/// keeps one fd per live CAPIO file, so the common 1024 default would cap a workflow at ~1000 files.
pub fn raise_open_file_limit() -> io::Result<libc::rlim_t> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid out-parameter.
    cvt(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) })?;
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: `lim` is a valid, initialised rlimit.
        cvt(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) })?;
    }
    Ok(lim.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zombie_is_not_alive() {
        assert!(process_alive(std::process::id() as i32));
        assert!(!process_alive(0) && !process_alive(-1));
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        // Not reaped yet: a zombie once it has exited.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !is_zombie(pid) {
            assert!(
                std::time::Instant::now() < deadline,
                "never became a zombie"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!process_alive(pid));
        child.wait().unwrap();
        assert!(!process_alive(pid));
    }
}
