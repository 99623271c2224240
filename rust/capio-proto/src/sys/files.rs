//! File attributes and locks: the umask, chmod/chown/utimens, a copy that leaves the source's
//! offset alone, `flock`.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::AtomicU32;

use super::cvt;

pub fn getuid() -> u32 {
    // SAFETY: getuid cannot fail and touches no memory.
    unsafe { libc::getuid() }
}

/// Whether `path` lies on a file system held in memory (tmpfs, ramfs).
pub fn in_memory_fs(path: &std::path::Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    const RAMFS_MAGIC: i64 = 0x8584_58f6;
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    let mut st = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: `c` is a valid C string and `st` a buffer of the right type for the kernel to fill.
    if unsafe { libc::statfs(c.as_ptr(), st.as_mut_ptr()) } != 0 {
        return false;
    }
    // `f_type` is an i64 here, narrower elsewhere.
    #[allow(clippy::unnecessary_cast)]
    // SAFETY: statfs succeeded, so it filled `st`.
    let kind = unsafe { st.assume_init() }.f_type as i64;
    kind == TMPFS_MAGIC || kind == RAMFS_MAGIC
}

pub fn getgid() -> u32 {
    // SAFETY: getgid cannot fail and touches no memory.
    unsafe { libc::getgid() }
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

/// `fstatat(dir, name)`, following a final link (the magic links of `/proc/<pid>/fd` lead to the
/// open file itself).
pub fn stat_at(dir: BorrowedFd<'_>, name: &std::ffi::CStr) -> io::Result<libc::stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `name` is NUL-terminated and `st` is a writable stat buffer the call fills.
    cvt(unsafe { libc::fstatat(dir.as_raw_fd(), name.as_ptr(), st.as_mut_ptr(), 0) })?;
    // SAFETY: fstatat succeeded, so it filled `st`.
    Ok(unsafe { st.assume_init() })
}

/// `openat(dir, name, flags | O_CLOEXEC)`.
pub fn open_at(
    dir: BorrowedFd<'_>,
    name: &std::ffi::CStr,
    flags: i32,
) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: `name` is NUL-terminated; the returned fd is new and owned by nobody else.
    let fd = cvt(unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags | libc::O_CLOEXEC) })?;
    // SAFETY: `fd` was just returned by openat and is owned by nobody else.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// A read-only description of `name` in `dir` whose reads leave the file's access time alone,
/// as on a `noatime` mount (a memory object's mount updates it on every read otherwise, which
/// costs each small read); a plain one where the caller does not own the file.
pub fn open_at_noatime(
    dir: BorrowedFd<'_>,
    name: &std::ffi::CStr,
) -> io::Result<std::os::fd::OwnedFd> {
    noatime_if_allowed(|noatime| open_at(dir, name, libc::O_RDONLY | noatime))
}

/// `open(O_NOATIME)` where the kernel allows it (the caller owns the file), a plain open
/// otherwise: `open` is called with the flag to add.
pub(super) fn noatime_if_allowed<T>(open: impl Fn(i32) -> io::Result<T>) -> io::Result<T> {
    match open(libc::O_NOATIME) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => open(0),
        opened => opened,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn a_tmpfs_is_told_from_a_disk() {
        let shm = Path::new("/dev/shm");
        if fs_type_known(shm) {
            assert!(in_memory_fs(shm));
        }
        assert!(!in_memory_fs(Path::new("/proc")));
        assert!(!in_memory_fs(Path::new("/no/such/dir")));
    }

    /// /dev/shm is a tmpfs wherever it exists as a mount of its own.
    fn fs_type_known(p: &Path) -> bool {
        std::fs::read_to_string("/proc/self/mounts")
            .is_ok_and(|m| m.lines().any(|l| l.split(' ').nth(1) == p.to_str()))
    }
}
