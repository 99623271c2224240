//! Recycled memory: the memory objects of files that are gone, kept with their pages still
//! allocated, so that new files write into memory the kernel does not have to find and zero again
//! (what a write into fresh shared memory mostly costs, DESIGN §4).
//!
//! Clients, persistence and other nodes all use one open file description of a file's memfd, made
//! by reopening it (see [`fresh`]; the description `memfd_create` returns is not counted by the
//! kernel and is closed at once). When the file is gone, the server opens a new description from
//! that one and drops the old: the kernel grants a write lease on the new one only when no other
//! description of the memfd is open anywhere. One fd per memory object, in use or pooled. An fd some process kept (a `dup`, a forked child,
//! a `fileno()` handed on) or a mapping (a `view()`) keeps the old description alive, and the
//! memory is not recycled but given back to the system when they let go. So no reader of a gone
//! file ever sees a later file's bytes. Unused pages stay pooled for a while only (`Pool::idle`).

use capio_proto::sys;
use std::collections::VecDeque;
use std::fs::{self, File};
use std::io;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

/// How long pooled memory may stay unused before it goes back to the system, by default.
pub const IDLE: Duration = Duration::from_secs(30);
/// At most this many memory objects are pooled (each is an open fd of the server).
const MAX_OBJECTS: usize = 1024;

/// What a new memory-backed file's memory object comes with.
pub struct Memory {
    /// Below this end it may still hold a previous file's bytes (see `Slot::prepare_write`).
    pub stale: u64,
    /// Bytes of memory it holds already.
    pub held: u64,
}

/// The pool's default size: a quarter of the memory this server may use — the machine's, or its
/// control group's limit when it has one (a job's or a container's), so that memory kept for
/// reuse never pushes the job over its limit.
pub fn default_limit() -> u64 {
    let physical = sys::physical_memory();
    let cgroup = fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|text| cgroup_limit(&text, |p| fs::read_to_string(p).ok()));
    cgroup.map_or(physical, |c| c.min(physical)) / 4
}

/// The memory limit of the control group `/proc/self/cgroup` names (v2, else v1), read through
/// `read`; `None` without one.
fn cgroup_limit(proc_cgroup: &str, read: impl Fn(&str) -> Option<String>) -> Option<u64> {
    let files = proc_cgroup.lines().filter_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        match controllers {
            "" => Some(format!("/sys/fs/cgroup{path}/memory.max")),
            c if c.split(',').any(|c| c == "memory") => {
                Some(format!("/sys/fs/cgroup/memory{path}/memory.limit_in_bytes"))
            }
            _ => None,
        }
    });
    // "max" (v2) and the v1 "no limit" value (near 2^63) parse as no limit.
    files
        .filter_map(|f| read(&f)?.trim().parse::<u64>().ok())
        .filter(|limit| *limit < 1 << 60)
        .min()
}

/// A fresh memory object and the open file description everyone uses (clients receive
/// duplicates of it); `name` shows in `/proc/<pid>/fd` links, for debugging.
pub fn fresh(name: &str) -> io::Result<(File, Memory)> {
    let memfd = File::from(sys::memfd(name)?);
    let file = File::from(sys::reopen(memfd.as_fd())?);
    Ok((file, Memory { stale: 0, held: 0 }))
}

struct Pooled {
    file: File,
    size: u64,
    held: u64,
    since: Instant,
}

/// Memory objects of gone files, newest last.
pub struct Pool {
    objects: VecDeque<Pooled>,
    bytes: u64,
    /// Memory of gone files that something outside the server still held when they went (a
    /// `view()`, a kept fd): still memory in use, looked at again until it is let go.
    elsewhere: Vec<(File, u64)>,
    elsewhere_bytes: u64,
    /// How long memory may stay pooled unused.
    pub idle: Duration,
}

impl Default for Pool {
    fn default() -> Pool {
        Pool {
            objects: VecDeque::new(),
            bytes: 0,
            elsewhere: Vec::new(),
            elsewhere_bytes: 0,
            idle: IDLE,
        }
    }
}

impl Pool {
    /// Bytes of memory pooled.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Bytes of memory of gone files still held outside the server.
    pub fn held_elsewhere(&self) -> u64 {
        self.elsewhere_bytes
    }

    /// The memory object pooled last (its pages are the likeliest still cached), and a new
    /// description of it.
    pub fn take(&mut self) -> Option<(File, Memory)> {
        let p = self.objects.pop_back()?;
        self.bytes -= p.held;
        // A new file's owner is the server's and its times start now, as a created file's do.
        let now = sys::Attrs {
            owner: Some((sys::getuid(), sys::getgid())),
            atime: sys::TimeSet::Now,
            mtime: sys::TimeSet::Now,
            ..sys::Attrs::default()
        };
        if sys::set_attrs_fd(p.file.as_fd(), &now).is_err() {
            return None;
        }
        let memory = Memory {
            stale: p.size,
            held: p.held,
        };
        Some((p.file, memory))
    }

    /// The description `data` of a memory object whose file is gone (the server's last use of
    /// it): a new description replaces it, kept if nothing outside the server holds the object
    /// any more and its memory fits in `room` bytes of pool (older objects make way). Memory
    /// still held elsewhere is counted and looked at again. Returns the bytes pooled.
    pub fn recycle(&mut self, data: File, room: u64) -> Option<u64> {
        let file = File::from(sys::reopen(data.as_fd()).ok()?);
        drop(data);
        if !sys::sole_opener(file.as_fd()) {
            self.held_outside(file);
            return None;
        }
        self.keep(file, room)
    }

    /// Note memory something outside the server holds, to count it and look at it again.
    fn held_outside(&mut self, file: File) {
        let bytes = file.metadata().map_or(0, |m| sys::allocated_bytes(&m));
        if bytes > 0 && self.elsewhere.len() < MAX_OBJECTS {
            self.elsewhere_bytes += bytes;
            self.elsewhere.push((file, bytes));
        }
    }

    /// Memory held outside the server when its file went, and let go since: pooled within `room`
    /// bytes, or given back to the system.
    pub fn recheck_elsewhere(&mut self, room: u64) {
        let held = std::mem::take(&mut self.elsewhere);
        self.elsewhere_bytes = 0;
        for (file, _) in held {
            if sys::sole_opener(file.as_fd()) {
                let room = room.saturating_sub(self.elsewhere_bytes);
                self.keep(file, room);
            } else {
                self.held_outside(file);
            }
        }
    }

    /// Pool the memory object behind `file` (a description nobody else has) if it fits in `room`.
    fn keep(&mut self, file: File, room: u64) -> Option<u64> {
        let meta = file.metadata().ok()?;
        let held = sys::allocated_bytes(&meta);
        if held == 0 || held > room {
            return None;
        }
        self.shrink_to(room - held);
        if self.objects.len() == MAX_OBJECTS {
            self.drop_oldest();
        }
        self.bytes += held;
        self.objects.push_back(Pooled {
            file,
            size: meta.len(),
            held,
            since: Instant::now(),
        });
        Some(held)
    }

    /// Give memory back to the system, oldest first, until at most `bytes` stay pooled.
    pub fn shrink_to(&mut self, bytes: u64) {
        while self.bytes > bytes && self.drop_oldest() {}
    }

    /// Give back what was pooled longer than `idle` ago; returns the bytes given back.
    pub fn drop_idle(&mut self, now: Instant) -> u64 {
        let before = self.bytes;
        while self
            .objects
            .front()
            .is_some_and(|p| now.duration_since(p.since) >= self.idle)
        {
            self.drop_oldest();
        }
        before - self.bytes
    }

    fn drop_oldest(&mut self) -> bool {
        match self.objects.pop_front() {
            Some(p) => {
                self.bytes -= p.held;
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    /// A file's description holding `len` bytes, as a gone file leaves it.
    fn written(len: usize) -> File {
        let (file, _) = fresh("capio-test").unwrap();
        file.write_all_at(&vec![9; len], 0).unwrap();
        file
    }

    #[test]
    fn the_default_limit_heeds_a_control_groups_memory_limit() {
        let files = |v2: &'static str, v1: &'static str| {
            move |path: &str| match path {
                "/sys/fs/cgroup/job/memory.max" => Some(v2.to_owned()),
                "/sys/fs/cgroup/memory/job/memory.limit_in_bytes" => Some(v1.to_owned()),
                _ => None,
            }
        };
        let v2 = "0::/job\n";
        let v1 = "4:memory:/job\n3:cpuset:/\n";
        assert_eq!(cgroup_limit(v2, files("1073741824\n", "")), Some(1 << 30));
        assert_eq!(cgroup_limit(v2, files("max\n", "")), None);
        assert_eq!(cgroup_limit(v1, files("", "2147483648")), Some(2 << 30));
        assert_eq!(cgroup_limit(v1, files("", "9223372036854771712")), None);
        assert_eq!(cgroup_limit("1:cpu:/\n", files("1", "1")), None);
        assert!(default_limit() > 0);
    }

    #[test]
    fn the_memory_of_a_file_nobody_holds_is_reused_with_its_pages() {
        let mut pool = Pool::default();
        assert_eq!(pool.recycle(written(64 << 10), u64::MAX), Some(64 << 10));
        assert_eq!(pool.bytes(), 64 << 10);
        let (file, again) = pool.take().unwrap();
        assert_eq!(
            (again.stale, again.held, pool.bytes()),
            (64 << 10, 64 << 10, 0)
        );
        let mut buf = [0; 4];
        file.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(
            buf, [9; 4],
            "the same pages: stale bytes the slot must hide"
        );
    }

    #[test]
    #[allow(unsafe_code)] // a mapping, as a `view()` holds one
    fn memory_some_fd_or_mapping_still_holds_is_not_reused() {
        let mut pool = Pool::default();
        // A process kept an fd (a dup shares the description)...
        let file = written(4096);
        let kept = file.try_clone().unwrap();
        assert_eq!(pool.recycle(file, u64::MAX), None);
        drop(kept);
        // ...or maps it after closing its fd.
        let file = written(4096);
        let map = sys::mmap_shared(file.as_fd(), 4096).unwrap();
        assert_eq!(pool.recycle(file, u64::MAX), None);
        assert_eq!(pool.bytes(), 0);
        // Both are still memory in use; looked at again, what was let go is pooled.
        assert_eq!(pool.held_elsewhere(), 8192);
        // The kept fd was closed since; the mapping is still there.
        pool.recheck_elsewhere(u64::MAX);
        assert_eq!((pool.held_elsewhere(), pool.bytes()), (4096, 4096));
        // SAFETY: the mapping was made above with this length and is not used after.
        unsafe { sys::munmap(map, 4096) };
        pool.recheck_elsewhere(u64::MAX);
        assert_eq!((pool.held_elsewhere(), pool.bytes()), (0, 8192));
    }

    #[test]
    fn the_pool_keeps_to_its_room_and_gives_back_idle_memory() {
        let mut pool = Pool::default();
        for _ in 0..3 {
            assert!(pool.recycle(written(8192), 16384).is_some());
        }
        assert_eq!(pool.bytes(), 16384, "the oldest made way");
        assert_eq!(
            pool.recycle(written(32768), 16384),
            None,
            "bigger than the room"
        );
        assert_eq!(pool.recycle(written(0), u64::MAX), None, "nothing to reuse");
        assert_eq!(pool.drop_idle(Instant::now()), 0);
        assert_eq!(pool.drop_idle(Instant::now() + IDLE), 16384);
        assert!(pool.take().is_none());
    }
}
