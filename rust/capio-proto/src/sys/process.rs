//! Processes: termination signals, detaching and daemonizing the server, liveness and reaping,
//! descriptors inherited across `exec`, the open-file limit.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

use super::cvt;

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

/// Ignore `SIGIO`: an open of a file while this process holds a lease on it (for the instant
/// [`super::sole_opener`] holds one) signals the holder, and the default action would end it.
pub fn ignore_lease_breaks() -> io::Result<()> {
    // SAFETY: installs the SIG_IGN disposition; no handler code runs.
    if unsafe { libc::signal(libc::SIGIO, libc::SIG_IGN) } == libc::SIG_ERR {
        return Err(io::Error::last_os_error());
    }
    Ok(())
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
    use std::time::Duration;

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
