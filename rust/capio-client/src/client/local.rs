//! Answers without a round trip, from the namespace index the server publishes in the shared table
//! (`capio_proto::index`): the `stat` of a file in memory (of a committed one, from the
//! attributes the server published with it: no syscall), a path that does not exist, and the
//! open of a committed file for reading. Of a persisted file, its copy on disk is checked first,
//! as the server does (one `lstat`). Each answer is taken only if neither the index nor the
//! file's direct access changed while it was made, so it is one the server could have given at
//! that moment; anything the index cannot settle is asked of the server as before.
//!
//! A file's memory object is reached through the server's own fd of it, by number, in
//! `/proc/<server>/fd`: opening or `stat`ing that entry reaches the object itself, with the
//! kernel's permission checks. The object opened is checked to be the one the slot names (its
//! inode), and the slot's access word to be unchanged, so a number the server reused meanwhile is
//! never taken for the file.

use crate::error::{ClientError, Result};
use capio_proto::index::{DiskId, Entry, Lookup};
use capio_proto::{Inode, NodeKind, NodeStat, Slot, SlotState, sys};
use std::ffi::CStr;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::Ordering::SeqCst;

use super::{Client, FileStat, Handle};

/// The memory objects (dev, ino) handed out as plain fds in this process: what `fstat` of any fd
/// of theirs reports as the CAPIO file. Kept across re-attaches and forks (a child's inherited
/// fds are its parent's objects); an object recycled for another file is still a CAPIO file's.
/// Each with the slot its file had when handed out (a change through the fd is told there).
static PLAIN_OBJECTS: std::sync::Mutex<std::collections::BTreeMap<(u64, u64), u32>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// The memory object `meta` describes, the file in `slot`, is handed out as a plain fd in this
/// process.
pub(super) fn note_plain_object(meta: &std::fs::Metadata, slot: u32) {
    use std::os::unix::fs::MetadataExt;
    PLAIN_OBJECTS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert((meta.dev(), meta.ino()), slot);
}

/// The slot of the file whose memory object `fd` holds, if [`Client::open_plain`] or a plain
/// writer handed it out in this process (or a parent it forked from), with its metadata.
fn plain_object(fd: std::os::fd::RawFd) -> Option<(u32, std::fs::Metadata)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(format!("/proc/self/fd/{fd}")).ok()?;
    let slot = *PLAIN_OBJECTS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&(meta.dev(), meta.ino()))?;
    Some((slot, meta))
}

/// An fd number as a name in `/proc/<pid>/fd`, NUL-terminated, without allocating.
struct FdName([u8; 12]);

impl FdName {
    fn new(fd: i32) -> FdName {
        let mut digits = [0u8; 10];
        let (mut n, mut len) = (fd.unsigned_abs(), 0);
        loop {
            digits[len] = b'0' + (n % 10) as u8;
            len += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let mut buf = [0u8; 12];
        for (at, d) in digits[..len].iter().rev().enumerate() {
            buf[at] = *d;
        }
        FdName(buf)
    }

    fn as_cstr(&self) -> &CStr {
        CStr::from_bytes_until_nul(&self.0).unwrap_or(c"")
    }
}

/// What a look-up found of a file the index names, checked against its slot.
struct Direct<'a> {
    slot: &'a Slot,
    state: SlotState,
    fd: FdName,
    ino: u64,
    access: u32,
}

/// Whether the disk still shows a persisted file's copy as the server recorded it (`None`: no
/// copy to check). The server stops serving the file from memory otherwise; that is its to do.
fn disk_shows(abs: &Path, disk: Option<DiskId>) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(want) = disk else {
        return true;
    };
    std::fs::symlink_metadata(abs).is_ok_and(|m| {
        m.is_file()
            && DiskId {
                dev: m.dev(),
                ino: m.ino(),
                size: m.size(),
                mtime_ns: capio_proto::nanos(m.mtime(), m.mtime_nsec()),
            } == want
    })
}

impl Client {
    /// The server's `/proc/<pid>/fd` directory, opened once; `None` where this process may not
    /// look into the server (another user, a hardened kernel): then everything is asked.
    fn server_fds(&self) -> Option<BorrowedFd<'_>> {
        self.server_fds
            .get_or_init(|| {
                let dir = format!("/proc/{}/fd", self.server_pid);
                File::open(dir).ok().map(OwnedFd::from)
            })
            .as_ref()
            .map(AsFd::as_fd)
    }

    /// The file in slot `index` with its direct access, if the server allows it now.
    fn direct(&self, index: u32) -> Option<Direct<'_>> {
        let slot = self.table.slot(index)?;
        let state = slot.state();
        let (fd, ino, access) = slot.direct()?;
        Some(Direct {
            slot,
            state,
            fd: FdName::new(fd),
            ino,
            access,
        })
    }

    /// `stat` of `abs` (`shown`: the caller's name for it) from the index: a file in memory from
    /// its memory object, a missing path in a directory the server knows from the disk's word
    /// that nothing is there either. `None`: ask the server.
    pub(super) fn stat_local(&self, abs: &Path, shown: &Path) -> Option<Result<FileStat>> {
        let index = self.table.index();
        let changes = index.changes();
        match index.lookup_with_disk(abs.as_os_str().as_bytes()) {
            (Lookup::Found(Entry::File(slot)), disk) => {
                let d = self.direct(slot)?;
                if !matches!(d.state, SlotState::Open | SlotState::Committed)
                    || !disk_shows(abs, disk)
                {
                    return None;
                }
                // A committed file's attributes as the server published them; the object's own
                // (through the server's `/proc/<pid>/fd`) while it may still change.
                let inode = match self.table.attrs(slot).and_then(|a| a.load()) {
                    Some(inode) if d.state == SlotState::Committed => inode,
                    _ => Inode::from(&sys::stat_at(self.server_fds()?, d.fd.as_cstr()).ok()?),
                };
                let size = d.slot.len.load(SeqCst);
                let same = inode.ino == d.ino
                    && d.slot.direct_unchanged(d.access)
                    && d.slot.state() == d.state
                    && index.unchanged_since(changes);
                same.then(|| Ok(self.memory_stat(&inode, size, d.state)))
            }
            (Lookup::Missing, _) => {
                let parent = abs.parent()?;
                let known_dir = parent == self.capio_dir()
                    || index.lookup(parent.as_os_str().as_bytes()) == Lookup::Found(Entry::Dir);
                if !known_dir {
                    return None;
                }
                // The server would look on disk next: so does this, and takes only "nothing".
                let missing = std::fs::symlink_metadata(abs)
                    .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
                    && index.unchanged_since(changes);
                missing.then(|| Err(ClientError::os(libc::ENOENT, shown.to_path_buf())))
            }
            _ => None,
        }
    }

    /// What the server reports of a file in memory whose object's inode is `inode`.
    pub(super) fn memory_stat(&self, inode: &Inode, size: u64, state: SlotState) -> FileStat {
        let (dev, ino) = capio_proto::reported_identity(inode.dev, inode.ino, self.root_dev());
        NodeStat {
            size,
            nlink: 1,
            ino,
            dev,
            ..NodeStat::of_inode(NodeKind::File, inode, state == SlotState::Committed)
        }
    }

    /// A read-only description of the committed file at `abs`, opened from its memory object
    /// without asking the server, its inode, and the slot and access word it was offered under
    /// (see [`Client::offered_end`]). `None`: ask the server.
    pub(super) fn open_committed(
        &self,
        abs: &Path,
    ) -> Option<(File, std::fs::Metadata, (u32, u32))> {
        let index = self.table.index();
        let changes = index.changes();
        let (Lookup::Found(Entry::File(slot)), disk) =
            index.lookup_with_disk(abs.as_os_str().as_bytes())
        else {
            return None;
        };
        let d = self.direct(slot)?;
        if d.state != SlotState::Committed || !disk_shows(abs, disk) {
            return None;
        }
        let file = File::from(sys::open_at_noatime(self.server_fds()?, d.fd.as_cstr()).ok()?);
        let meta = file.metadata().ok()?;
        // A committed file's object is trimmed to its length: a reader needs no slot to stop.
        let size = d.slot.len.load(SeqCst);
        let same = std::os::unix::fs::MetadataExt::ino(&meta) == d.ino
            && meta.len() == size
            && d.slot.direct_unchanged(d.access)
            && d.slot.state() == SlotState::Committed
            && index.unchanged_since(changes);
        same.then_some((file, meta, (slot, d.access)))
    }

    /// The end of a committed file `h` opened from its memory object, from its slot while the
    /// server still offers the object as it did at the open (no `fstat` per read); `None` once
    /// anything changed (written again, moved out of memory, removed): then the object says.
    pub(super) fn offered_end(&self, h: &Handle) -> Option<u64> {
        let (index, access) = h.offered?;
        let slot = self.table.slot(index)?;
        let len = slot.len.load(SeqCst);
        (slot.state() == SlotState::Committed && slot.direct_unchanged(access)).then_some(len)
    }

    /// A plain OS fd of the committed file at `path`, opened from its memory object, for a caller
    /// that reads it with the OS's own calls (a text file under the stdlib's exact `FileIO`, whose
    /// every line CPython reads without a Python-level check). `None`: not possible now; open it
    /// as a CAPIO fd. Its `fstat` is reported as the server reports the file ([`Client::plain_fstat`]).
    pub fn open_plain(&self, path: &Path) -> Result<Option<std::os::fd::RawFd>> {
        use std::os::fd::IntoRawFd;
        let abs = self.require_capio_path(path)?;
        let Some((file, meta, (slot, _))) = self.open_committed(&abs) else {
            return Ok(None);
        };
        note_plain_object(&meta, slot);
        Ok(Some(file.into_raw_fd()))
    }

    /// `fstat` of `fd` as the server reports the file, if `fd` holds a memory object
    /// [`Client::open_plain`] handed out in this process (or a parent it forked from): through any
    /// fd of it, `dup`s included.
    pub fn plain_fstat(&self, fd: std::os::fd::RawFd) -> Option<FileStat> {
        let (_, meta) = plain_object(fd)?;
        Some(self.memory_stat(&(&meta).into(), meta.len(), SlotState::Committed))
    }

    /// `fd`, if a plain fd of a file's memory object, changed the object itself (its mode,
    /// times, size): what the server published of the file for `stat` holds no more.
    pub fn plain_changed(&self, fd: std::os::fd::RawFd) {
        if let Some((slot, _)) = plain_object(fd) {
            self.attrs_changed(slot);
        }
    }

    /// The file in `slot` was changed by a client itself: what the server published of it for
    /// `stat` (`SlotAttrs`) holds no more.
    pub(super) fn attrs_changed(&self, slot: u32) {
        if let Some(attrs) = self.table.attrs(slot) {
            attrs.mark_stale();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::FdName;

    #[test]
    fn fd_numbers_are_named_as_in_proc() {
        for fd in [0, 7, 10, 65535, i32::MAX] {
            assert_eq!(FdName::new(fd).as_cstr().to_str().unwrap(), fd.to_string());
        }
    }
}
