//! Process-level calls the Python layer cannot make itself: `signal.signal` works only in the main
//! thread, and a multiprocessing worker's SIGTERM is handled by a helper thread (see `_context`).

/// Restore `signum`'s default action and send it to this process, from any thread: the process
/// ends as if the signal had never been caught. `_exit(128 + signum)` if it still runs (the
/// signal blocked in every thread), as a shell reports such an end.
pub fn die_by_signal(signum: i32) -> ! {
    // SAFETY: plain syscalls on our own process with no memory arguments; SIG_DFL is always a
    // valid disposition and `signum` was checked to be a signal number by the caller.
    unsafe {
        libc::signal(signum, libc::SIG_DFL);
        libc::kill(libc::getpid(), signum);
        libc::_exit(128 + signum)
    }
}
