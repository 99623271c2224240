//! Shared memory and its wake-ups: memfd, mmap, hole punching, the test that nobody else holds a
//! memory object, and the process-shared futex.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::ptr::NonNull;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use super::cvt;

/// An anonymous shared-memory file (`memfd_create`), close-on-exec.
pub fn memfd(name: &str) -> io::Result<OwnedFd> {
    let name = CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `name` is a valid NUL-terminated string that outlives the call.
    let fd = cvt(unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) })?;
    // SAFETY: the kernel just returned this fd and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A new open file description of the file behind `fd` (through `/proc/self/fd`), read-write.
/// Unlike a `dup`, it has its own offset and counts as an opener of its own, which is what
/// [`sole_opener`] checks.
pub fn reopen(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    reopen_as(fd, libc::O_RDWR)
}

/// A new open file description of the file behind `fd` with `open(2)`'s access mode and
/// `O_APPEND` from `flags`, as the kernel checks them; its reads leave the file's access time
/// alone where the caller owns the file (see `open_at_noatime`).
pub fn reopen_as(fd: BorrowedFd<'_>, flags: i32) -> io::Result<OwnedFd> {
    let acc = flags & libc::O_ACCMODE;
    let open = |extra: i32| {
        std::fs::OpenOptions::new()
            .read(acc != libc::O_WRONLY)
            .write(acc != libc::O_RDONLY)
            .custom_flags(libc::O_CLOEXEC | flags & libc::O_APPEND | extra)
            .open(format!("/proc/self/fd/{}", fd.as_raw_fd()))
    };
    super::files::noatime_if_allowed(open).map(OwnedFd::from)
}

/// Whether `fd`'s open file description is the only one of its file anywhere: no other process or
/// fd has the file open through another description, and no mapping of it is left (a mapping
/// holds its description). The kernel decides, by granting a write lease (released at once).
/// Descriptions made by `memfd_create` itself are not counted by the kernel: reopen first. An
/// open racing with the lease signals this process: it must ignore `SIGIO`
/// ([`super::ignore_lease_breaks`]).
pub fn sole_opener(fd: BorrowedFd<'_>) -> bool {
    // SAFETY: F_SETLEASE takes an integer argument and touches no memory of ours.
    let granted = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETLEASE, libc::F_WRLCK) } == 0;
    if granted {
        // SAFETY: as above.
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETLEASE, libc::F_UNLCK) };
    }
    granted
}

/// Give back the memory of `len` bytes at `offset` of a memory object: they read as zeros after,
/// and its size stays.
pub fn punch_hole(fd: BorrowedFd<'_>, offset: u64, len: u64) -> io::Result<()> {
    if len == 0 {
        return Ok(());
    }
    let (Ok(offset), Ok(len)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len)) else {
        return Err(io::Error::from_raw_os_error(libc::EFBIG));
    };
    // SAFETY: fallocate takes integers only.
    cvt(unsafe {
        libc::fallocate(
            fd.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            offset,
            len,
        )
    })?;
    Ok(())
}

/// Bytes of memory (or disk) a file holds: its allocated blocks, holes not counted.
pub fn allocated_bytes(meta: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    meta.blocks().saturating_mul(512)
}

/// Bytes of physical memory of this machine (0 if the kernel does not say).
pub fn physical_memory() -> u64 {
    // SAFETY: sysconf takes an integer and touches no memory.
    let (pages, size) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    u64::try_from(pages)
        .unwrap_or(0)
        .saturating_mul(u64::try_from(size).unwrap_or(0))
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
