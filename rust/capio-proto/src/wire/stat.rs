//! What a stat reports: the typed [`NodeStat`] both ends hold, its wire form [`StatReply`], and
//! the rules both ends apply when they build one from an inode (times in nanoseconds, the
//! identity of a file in memory).

use super::enums::NodeKind;
use super::frame::WireError;
use bytemuck::{Pod, Zeroable};
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;

/// A path's attributes as pycapio reports them. A CAPIO file's mode, owner and times are those
/// of its data object, which the kernel keeps as for any file (writes move `mtime`, attribute
/// changes `ctime`); what CAPIO adds is the kind and the commit state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeStat {
    pub kind: NodeKind,
    pub size: u64,
    pub mtime_ns: i64,
    /// Permission bits (no file-type bits).
    pub mode: u32,
    pub committed: bool,
    pub atime_ns: i64,
    pub ctime_ns: i64,
    pub uid: u32,
    pub gid: u32,
    /// The `S_IFMT` bits of `st_mode`.
    pub file_type: u32,
    pub nlink: u32,
    /// The node's identity: its disk inode and device, or as [`reported_identity`] says for a
    /// file in memory.
    pub ino: u64,
    pub dev: u64,
}

impl NodeStat {
    pub fn is_dir(&self) -> bool {
        self.kind == NodeKind::Dir
    }

    /// The attributes of the inode `meta` describes, reported as a `kind`.
    pub fn of_meta(kind: NodeKind, meta: &Metadata, committed: bool) -> NodeStat {
        NodeStat::of_inode(kind, &Inode::from(meta), committed)
    }

    /// The attributes of `inode`, reported as a `kind`.
    pub fn of_inode(kind: NodeKind, inode: &Inode, committed: bool) -> NodeStat {
        NodeStat {
            kind,
            size: inode.size,
            mtime_ns: inode.mtime_ns,
            mode: inode.mode & 0o7777,
            committed,
            atime_ns: inode.atime_ns,
            ctime_ns: inode.ctime_ns,
            uid: inode.uid,
            gid: inode.gid,
            file_type: inode.mode & libc::S_IFMT,
            // A CAPIO file's data object has no name (a memfd), yet the file has one.
            nlink: u32::try_from(inode.nlink).unwrap_or(u32::MAX).max(1),
            ino: inode.ino,
            dev: inode.dev,
        }
    }
}

/// What a stat of an inode says, from `std`'s metadata or a raw `stat` (`sys::stat_at`).
#[derive(Clone, Copy, Debug)]
pub struct Inode {
    pub size: u64,
    /// Type and permission bits.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u64,
    pub ino: u64,
    pub dev: u64,
    pub atime_ns: i64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

impl From<&Metadata> for Inode {
    fn from(meta: &Metadata) -> Inode {
        Inode {
            size: meta.len(),
            mode: meta.mode(),
            uid: meta.uid(),
            gid: meta.gid(),
            nlink: meta.nlink(),
            ino: meta.ino(),
            dev: meta.dev(),
            atime_ns: nanos(meta.atime(), meta.atime_nsec()),
            mtime_ns: nanos(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: nanos(meta.ctime(), meta.ctime_nsec()),
        }
    }
}

impl From<&libc::stat> for Inode {
    fn from(st: &libc::stat) -> Inode {
        Inode {
            size: u64::try_from(st.st_size).unwrap_or(0),
            mode: st.st_mode,
            uid: st.st_uid,
            gid: st.st_gid,
            nlink: st.st_nlink,
            ino: st.st_ino,
            dev: st.st_dev,
            atime_ns: nanos(st.st_atime, st.st_atime_nsec),
            mtime_ns: nanos(st.st_mtime, st.st_mtime_nsec),
            ctime_ns: nanos(st.st_ctime, st.st_ctime_nsec),
        }
    }
}

/// A time of `secs` seconds and `nsec` nanoseconds as nanoseconds since the epoch, saturating.
pub fn nanos(secs: i64, nsec: i64) -> i64 {
    secs.saturating_mul(1_000_000_000).saturating_add(nsec)
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct StatReply {
    pub status: i32,
    /// A [`NodeKind`].
    pub kind: u32,
    pub size: u64,
    pub mtime_ns: i64,
    /// Permission bits (no file-type bits).
    pub mode: u32,
    pub committed: u32,
    pub atime_ns: i64,
    pub ctime_ns: i64,
    pub uid: u32,
    pub gid: u32,
    /// The `S_IFMT` bits of `st_mode` (`S_IFREG`, `S_IFDIR`, `S_IFLNK`, `S_IFIFO`, ...).
    pub file_type: u32,
    pub nlink: u32,
    /// `st_ino` and `st_dev` as pycapio reports them (see [`reported_identity`]).
    pub ino: u64,
    pub dev: u64,
}

impl StatReply {
    pub fn node_kind(&self) -> Result<NodeKind, WireError> {
        NodeKind::try_from(self.kind)
    }

    /// A successful reply reporting `st`.
    pub fn of(st: &NodeStat) -> StatReply {
        StatReply {
            status: 0,
            kind: st.kind.into(),
            size: st.size,
            mtime_ns: st.mtime_ns,
            mode: st.mode,
            committed: u32::from(st.committed),
            atime_ns: st.atime_ns,
            ctime_ns: st.ctime_ns,
            uid: st.uid,
            gid: st.gid,
            file_type: st.file_type,
            nlink: st.nlink,
            ino: st.ino,
            dev: st.dev,
        }
    }

    /// What a successful reply reports (its kind checked).
    pub fn stat(&self) -> Result<NodeStat, WireError> {
        Ok(NodeStat {
            kind: self.node_kind()?,
            size: self.size,
            mtime_ns: self.mtime_ns,
            mode: self.mode,
            committed: self.committed != 0,
            atime_ns: self.atime_ns,
            ctime_ns: self.ctime_ns,
            uid: self.uid,
            gid: self.gid,
            file_type: self.file_type,
            nlink: self.nlink,
            ino: self.ino,
            dev: self.dev,
        })
    }
}

/// High bit of the inode number reported for a CAPIO file's memory data object.
const MEMORY_INO: u64 = 1 << 62;

/// The (`st_dev`, `st_ino`) reported for a CAPIO file whose data object has `dev` and `ino`, in a
/// CAPIO directory on device `root_dev`. Server (`stat`) and client (`fstat`) both report this,
/// so two names of one file, and every fd on it, agree (`os.path.samefile`, `shutil`'s
/// `SameFileError`). A memfd lives on the kernel's internal shmem mount: that device would make a
/// CAPIO file look like a mount point (`os.path.ismount`), so it is reported on the directory's
/// device, with a high bit no inode number on that device reaches.
pub fn reported_identity(dev: u64, ino: u64, root_dev: u64) -> (u64, u64) {
    if dev == root_dev {
        (dev, ino)
    } else {
        (root_dev, ino | MEMORY_INO)
    }
}
