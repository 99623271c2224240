//! Message bodies: the fixed `#[repr(C)]` part of every request and reply, their flag sets, and
//! the helpers that build and split their tails.

use super::enums::{EntryKind, Fire, OpenKind};
use super::frame::WireError;
use bytemuck::{Pod, Zeroable};

/// `Hello` body; the tail is `app_name` bytes, a NUL, then the client's CAPIO directory (absolute, real).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct HelloReq {
    pub pid: u32,
    /// [`hello_flags`].
    pub flags: u32,
}

pub mod hello_flags {
    /// An observer (`pycapio server status|stop`): not a workflow client. It may send only
    /// `Status` and `Shutdown`, gets no state table, never keeps the server alive and its
    /// departure never triggers a teardown. Its tail may be empty.
    pub const OBSERVER: u32 = 1;
    /// Every flag this protocol version defines; a `Hello` with others is refused (`EINVAL`).
    pub const ALL: u32 = OBSERVER;
}

/// Flags of a `HelloReply`.
pub mod server_flags {
    /// The server enforces a memory budget: writes past a file's reserved end must `Reserve`.
    pub const MEMORY_LIMIT: u32 = 1;
}

/// Reply to `Hello`; carries the state-table memfd as ancillary data. Its tail is the absolute path
/// of the server's CAPIO-CL file (empty without one), so every client applies the same `exclude`
/// rules when deciding which paths are CAPIO's.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct HelloReply {
    pub status: i32,
    pub server_pid: u32,
    pub client_id: u64,
    pub table_slots: u32,
    /// [`server_flags`] (0 from servers that predate them).
    pub flags: u32,
}

/// `Open` body; the tail is the absolute, lexically normalised path.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct OpenReq {
    /// Linux `open(2)` flags: access mode plus `O_CREAT`, `O_EXCL`, `O_TRUNC`, `O_APPEND`; and
    /// [`OpenReq::PLAIN_WRITE`].
    pub flags: u32,
    pub mode: u32,
}

impl OpenReq {
    /// Not an `open(2)` flag (no Linux flag uses the top bit): the client would write a file
    /// this open creates through a description of its own, by plain `write(2)`, and tell only
    /// its close. The server grants it in `OpenReply::direct_write`.
    pub const PLAIN_WRITE: u32 = 1 << 31;
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct OpenReply {
    pub status: i32,
    /// An [`OpenKind`].
    pub kind: u32,
    pub slot: u32,
    pub generation: u32,
    /// Non-zero when the caller counts as a producer of the file (never waits on it).
    pub producer: u32,
    /// A [`Fire`] rule.
    pub fire: u32,
    pub size: u64,
    /// The slot serving as this reader's progress cell (see `Slot::note_read`), or 0: the file's
    /// consumed bytes are never released early.
    pub progress: u32,
    /// Non-zero while the file's writers write its memory object directly (see
    /// `OpenReq::PLAIN_WRITE`): its published length means nothing until the commit, and a
    /// writer needs a description of its own (offset, `O_APPEND`), as on a plain file.
    pub direct_write: u32,
}

impl OpenReply {
    pub fn open_kind(&self) -> Result<OpenKind, WireError> {
        OpenKind::try_from(self.kind)
    }

    pub fn fire_rule(&self) -> Result<Fire, WireError> {
        Fire::try_from(self.fire)
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct CloseReq {
    pub slot: u32,
    pub writable: u32,
    /// The handle's progress cell (`OpenReply::progress`), or 0.
    pub progress: u32,
    pub _pad: u32,
}

/// An empty fixed part, for raw frames (the fuzzer, tests); typed requests whose body is just a
/// path have their own empty types (`StatReq`, `ListReq`, ...).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct Empty {}

/// `SetAttr` body; the tail is the path. What changes is chosen by [`attr_flags`]; a time is
/// nanoseconds since the epoch.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct SetAttrReq {
    pub flags: u32,
    /// Permission bits (`0o7777`), with `attr_flags::MODE`.
    pub mode: u32,
    /// With `attr_flags::OWNER`; `u32::MAX` leaves it unchanged, as `-1` does for `chown(2)`.
    pub uid: u32,
    pub gid: u32,
    pub atime_ns: i64,
    pub mtime_ns: i64,
}

pub mod attr_flags {
    pub const MODE: u32 = 1;
    pub const OWNER: u32 = 2;
    /// Set the access time to `atime_ns`.
    pub const ATIME: u32 = 4;
    pub const MTIME: u32 = 8;
    /// Set the access time to the current time.
    pub const ATIME_NOW: u32 = 16;
    pub const MTIME_NOW: u32 = 32;
    /// A final symbolic link is changed itself (`lchown`, `utime(follow_symlinks=False)`).
    pub const NOFOLLOW: u32 = 64;
    pub const ALL: u32 = 127;
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct MkdirReq {
    pub mode: u32,
    pub _pad: u32,
}

impl SetAttrReq {
    pub fn new(attrs: &crate::sys::Attrs, nofollow: bool) -> SetAttrReq {
        use crate::sys::TimeSet;
        let mut req = SetAttrReq::default();
        if let Some(mode) = attrs.mode {
            req.flags |= attr_flags::MODE;
            req.mode = mode;
        }
        if let Some((uid, gid)) = attrs.owner {
            req.flags |= attr_flags::OWNER;
            (req.uid, req.gid) = (uid, gid);
        }
        for (t, at, now, field) in [
            (
                attrs.atime,
                attr_flags::ATIME,
                attr_flags::ATIME_NOW,
                &mut req.atime_ns,
            ),
            (
                attrs.mtime,
                attr_flags::MTIME,
                attr_flags::MTIME_NOW,
                &mut req.mtime_ns,
            ),
        ] {
            match t {
                TimeSet::Omit => {}
                TimeSet::Now => req.flags |= now,
                TimeSet::At(ns) => {
                    req.flags |= at;
                    *field = ns;
                }
            }
        }
        if nofollow {
            req.flags |= attr_flags::NOFOLLOW;
        }
        req
    }

    /// The changes asked for; `None` for flags this version does not define.
    pub fn attrs(&self) -> Option<crate::sys::Attrs> {
        use crate::sys::TimeSet;
        if self.flags & !attr_flags::ALL != 0 {
            return None;
        }
        let time = |at: u32, now: u32, ns: i64| match (self.flags & at != 0, self.flags & now != 0)
        {
            (true, _) => TimeSet::At(ns),
            (false, true) => TimeSet::Now,
            (false, false) => TimeSet::Omit,
        };
        Some(crate::sys::Attrs {
            mode: (self.flags & attr_flags::MODE != 0).then_some(self.mode & 0o7777),
            owner: (self.flags & attr_flags::OWNER != 0).then_some((self.uid, self.gid)),
            atime: time(attr_flags::ATIME, attr_flags::ATIME_NOW, self.atime_ns),
            mtime: time(attr_flags::MTIME, attr_flags::MTIME_NOW, self.mtime_ns),
        })
    }
}

/// The reply of requests that return only a status (`Mkdir`, `Exit`, `Shutdown`, `Unlink`,
/// `Rename`, `Rmdir`, `SetAttr`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct StatusReply {
    pub status: i32,
    pub _pad: u32,
}

/// The fixed part of a `List` reply. Its tail is a sequence of entries: one kind byte (an
/// [`EntryKind`]), the name bytes, a NUL; CAPIO entries in creation order.
/// A directory that is not committed may still gain entries: a reader that is not its producer
/// waits (on the namespace slot, from `generation`) for its commit under `Fire::Update`, or for
/// new entries under `Fire::NoUpdate`, and lists again.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct ListReply {
    pub status: i32,
    pub committed: u32,
    /// The namespace slot's `seq`, read before the listing was taken.
    pub generation: u32,
    /// A [`Fire`] rule.
    pub fire: u32,
    /// Non-zero when the caller produces this directory (it never waits on it).
    pub producer: u32,
    /// Non-zero when the directory does not exist yet but a producer may still make it: the
    /// caller waits as for an open of a missing file (with `committed` 0 and no entries).
    pub missing: u32,
}

impl ListReply {
    pub fn fire_rule(&self) -> Result<Fire, WireError> {
        Fire::try_from(self.fire)
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct ExitReq {
    /// Non-zero: stop the server once no client is left.
    pub teardown: u32,
    pub _pad: u32,
}

/// `Rename` body; the tail is the source path (`src_len` bytes) followed by the destination path.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct RenameReq {
    pub src_len: u32,
    /// Reserved for `renameat2` flags; must be 0.
    pub flags: u32,
}

/// `Reserve` body: the client wants to write `slot`'s data object up to `end` bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct ReserveReq {
    pub slot: u32,
    pub _pad: u32,
    pub end: u64,
}

/// Reply to `Reserve`: `status` is 0 or `-ENOSPC` (the budget cannot hold `end`); on success
/// writes up to `granted` (at least the asked `end`; `u64::MAX` for a file the budget does not
/// count) need no further request.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct ReserveReply {
    pub status: i32,
    pub _pad: u32,
    pub granted: u64,
}

/// The `Status` reply is a `StatusReply` whose tail is one JSON object (UTF-8; bytes of a path
/// that are not UTF-8 appear as `\udcXX` escapes, Python's `surrogateescape`):
/// `{"server": {...}, "clients": [...], "files": [...], "dirs": [...], "waiting_opens": [...]}`.
/// The keys are documented where the server builds it (`capio_server::status`); readers must
/// ignore keys they do not know.
pub const STATUS_FORMAT_VERSION: u32 = 1;

/// Build a `Rename` tail.
pub fn rename_tail(src: &[u8], dst: &[u8]) -> Result<(RenameReq, Vec<u8>), WireError> {
    let src_len = u32::try_from(src.len()).map_err(|_| WireError::TooLarge(u32::MAX))?;
    let mut tail = Vec::with_capacity(src.len() + dst.len());
    tail.extend_from_slice(src);
    tail.extend_from_slice(dst);
    Ok((RenameReq { src_len, flags: 0 }, tail))
}

/// Split a `Rename` tail into (source, destination); `None` when `src_len` overruns it.
pub fn split_rename_tail<'a>(req: &RenameReq, tail: &'a [u8]) -> Option<(&'a [u8], &'a [u8])> {
    let at = usize::try_from(req.src_len).ok()?;
    (at <= tail.len()).then(|| tail.split_at(at))
}

/// Append one directory entry to a `List` reply tail.
pub fn push_entry(out: &mut Vec<u8>, kind: EntryKind, name: &[u8]) {
    // Every entry kind fits the byte: node kinds and the link bit are below 0x20.
    out.push(u32::from(kind) as u8);
    out.extend_from_slice(name);
    out.push(0);
}

/// Parse a `List` reply tail into `(kind, name)` pairs; an unknown kind byte is an error.
pub fn parse_entries(mut tail: &[u8]) -> Result<Vec<(EntryKind, &[u8])>, WireError> {
    let mut out = Vec::new();
    while let Some((&kind, rest)) = tail.split_first() {
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        out.push((EntryKind::try_from(u32::from(kind))?, &rest[..end]));
        tail = rest.get(end + 1..).unwrap_or(&[]);
    }
    Ok(out)
}

/// Split a `Hello` tail into (app name, CAPIO directory).
pub fn split_hello_tail(tail: &[u8]) -> (&[u8], &[u8]) {
    match tail.iter().position(|&b| b == 0) {
        Some(i) => (&tail[..i], &tail[i + 1..]),
        None => (tail, &[]),
    }
}
