//! Control-plane messages: a fixed 16-byte header followed by a POD body and, for most requests,
//! a trailing path. Encoding and decoding are pure; the socket I/O lives in the server and client.

use bytemuck::{Pod, Zeroable};
use std::io::{self, Read, Write};

pub const MAGIC: u32 = u32::from_le_bytes(*b"CPIO");
/// Bumped whenever a message layout changes; exchanged in `Hello`.
pub const PROTOCOL_VERSION: u16 = 3;
/// Hard cap on a frame body, checked before anything is allocated.
pub const MAX_BODY: u32 = 16 << 20;
/// Replies carry the request kind with this bit set.
pub const REPLY_BIT: u16 = 0x8000;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct Header {
    pub magic: u32,
    pub version: u16,
    pub kind: u16,
    pub len: u32,
    pub reserved: u32,
}

pub const HEADER_LEN: usize = size_of::<Header>();

/// Request kinds. A reply uses `kind | REPLY_BIT`.
#[repr(u16)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Hello = 1,
    Open = 2,
    /// One-way: the server sends no reply, so `close` costs no round trip.
    Close = 3,
    Stat = 4,
    Mkdir = 5,
    List = 6,
    /// Clean termination of a client: commits its `on_termination` files; replied once persisted.
    Exit = 7,
    /// Ask the server to stop (after persisting what must persist).
    Shutdown = 8,
    /// Remove a file (tail: the path); replied with a `StatusReply`.
    Unlink = 9,
    /// Move a file or directory like `rename(2)`; body `RenameReq`, replied with a `StatusReply`.
    Rename = 10,
    /// Remove an empty directory (tail: the path); replied with a `StatusReply`.
    Rmdir = 11,
    /// Observability: the server's state as JSON (see [`status_json`]); allowed to observers.
    Status = 12,
    /// Ask for memory budget before writing past a file's reserved end; body `ReserveReq`.
    Reserve = 13,
    /// Change a path's attributes (mode, owner, times) like `chmod`/`chown`/`utimensat`; body
    /// `SetAttrReq`, tail the path; replied with a `StatusReply`.
    SetAttr = 14,
    /// Like `Stat`, but a final symbolic link is reported itself, as `lstat(2)` does.
    Lstat = 15,
}

impl Kind {
    pub fn from_u16(v: u16) -> Option<Kind> {
        Some(match v {
            1 => Kind::Hello,
            2 => Kind::Open,
            3 => Kind::Close,
            4 => Kind::Stat,
            5 => Kind::Mkdir,
            6 => Kind::List,
            7 => Kind::Exit,
            8 => Kind::Shutdown,
            9 => Kind::Unlink,
            10 => Kind::Rename,
            11 => Kind::Rmdir,
            12 => Kind::Status,
            13 => Kind::Reserve,
            14 => Kind::SetAttr,
            15 => Kind::Lstat,
            _ => return None,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("bad frame magic {0:#x}")]
    BadMagic(u32),
    #[error("protocol version {0} is not supported (expected {PROTOCOL_VERSION})")]
    BadVersion(u16),
    #[error("unknown message kind {0}")]
    UnknownKind(u16),
    #[error("frame body of {0} bytes exceeds the {MAX_BODY}-byte limit")]
    TooLarge(u32),
    #[error("message body of {got} bytes is shorter than its {need}-byte fixed part")]
    Truncated { need: usize, got: usize },
    #[error("peer closed the connection")]
    Eof,
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl Header {
    pub fn new(kind: u16, len: usize) -> Result<Header, WireError> {
        let len = u32::try_from(len).map_err(|_| WireError::TooLarge(u32::MAX))?;
        if len > MAX_BODY {
            return Err(WireError::TooLarge(len));
        }
        Ok(Header {
            magic: MAGIC,
            version: PROTOCOL_VERSION,
            kind,
            len,
            reserved: 0,
        })
    }

    /// Validate a received header before its body is read or allocated.
    pub fn check(&self) -> Result<(), WireError> {
        if self.magic != MAGIC {
            return Err(WireError::BadMagic(self.magic));
        }
        if self.version != PROTOCOL_VERSION {
            return Err(WireError::BadVersion(self.version));
        }
        if self.len > MAX_BODY {
            return Err(WireError::TooLarge(self.len));
        }
        Ok(())
    }
}

/// Serialise one frame: header, fixed body, trailing bytes.
pub fn encode<T: Pod>(kind: u16, fixed: &T, tail: &[u8]) -> Result<Vec<u8>, WireError> {
    let fixed = bytemuck::bytes_of(fixed);
    let header = Header::new(kind, fixed.len() + tail.len())?;
    let mut out = Vec::with_capacity(HEADER_LEN + fixed.len() + tail.len());
    out.extend_from_slice(bytemuck::bytes_of(&header));
    out.extend_from_slice(fixed);
    out.extend_from_slice(tail);
    Ok(out)
}

/// Split a body into its fixed POD part and the trailing bytes.
pub fn decode<T: Pod>(body: &[u8]) -> Result<(T, &[u8]), WireError> {
    let need = size_of::<T>();
    if body.len() < need {
        return Err(WireError::Truncated {
            need,
            got: body.len(),
        });
    }
    let (fixed, tail) = body.split_at(need);
    Ok((bytemuck::pod_read_unaligned(fixed), tail))
}

/// Read one whole frame (header checked before the body is allocated).
pub fn read_frame(r: &mut impl Read) -> Result<(Header, Vec<u8>), WireError> {
    let mut raw = [0u8; HEADER_LEN];
    read_exact_or_eof(r, &mut raw)?;
    let header: Header = bytemuck::pod_read_unaligned(&raw);
    header.check()?;
    let mut body = vec![0u8; header.len as usize];
    r.read_exact(&mut body)?;
    Ok((header, body))
}

/// Like `read_exact`, but a clean EOF before the first byte is `WireError::Eof`.
pub fn read_exact_or_eof(r: &mut impl Read, buf: &mut [u8]) -> Result<(), WireError> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) if got == 0 => return Err(WireError::Eof),
            Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

pub fn write_frame<T: Pod>(
    w: &mut impl Write,
    kind: u16,
    fixed: &T,
    tail: &[u8],
) -> Result<(), WireError> {
    w.write_all(&encode(kind, fixed, tail)?)?;
    Ok(())
}

// ---- bodies -------------------------------------------------------------------------------

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
    /// Linux `open(2)` flags: access mode plus `O_CREAT`, `O_EXCL`, `O_TRUNC`, `O_APPEND`.
    pub flags: u32,
    pub mode: u32,
}

/// What an `Open` reply tells the client to do.
pub mod open_kind {
    /// A CAPIO file: the fd is its shared-memory data object, `slot` its state.
    pub const MEMORY: u32 = 1;
    /// A committed input that lives on disk: the fd is the real file, opened read-only.
    pub const DISK: u32 = 2;
    /// The path does not exist yet: wait on the namespace word until it changes from `generation`, then retry.
    pub const WAIT: u32 = 3;
    /// Something on disk CAPIO does not serve (a FIFO, a socket, a device): no fd; the client
    /// opens the path itself, exactly as without CAPIO.
    pub const PASS: u32 = 4;
}

/// Fire rules (CAPIO-CL `mode`).
pub mod fire {
    /// Readers wait for the commit.
    pub const UPDATE: u32 = 0;
    /// Readers see data as it is published, block at the current end, EOF only at commit.
    pub const NO_UPDATE: u32 = 1;
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct OpenReply {
    pub status: i32,
    pub kind: u32,
    pub slot: u32,
    pub generation: u32,
    /// Non-zero when the caller counts as a producer of the file (never waits on it).
    pub producer: u32,
    pub fire: u32,
    pub size: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct CloseReq {
    pub slot: u32,
    pub writable: u32,
}

/// `Stat`, `Lstat`, `List`, `Unlink`, `Rmdir` bodies are just the path (an empty fixed part).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct Empty {}

pub mod node_kind {
    pub const FILE: u32 = 1;
    pub const DIR: u32 = 2;
    /// A symbolic link (only from an `Lstat`), a FIFO, socket or device
    /// on disk: `StatReply::file_type` says which.
    pub const OTHER: u32 = 3;
    /// In a `List` entry: the entry is a symbolic link on disk, and the kind is its target's
    /// (`OTHER` when it dangles).
    pub const LINK: u32 = 0x10;
    /// The kind bits of a `List` entry (without `LINK`).
    pub const MASK: u32 = 0x0f;

    /// A `List` entry kind is a directory, following a symbolic link.
    pub fn is_dir(kind: u32) -> bool {
        kind & MASK == DIR
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct StatReply {
    pub status: i32,
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

/// The fixed part of a `List` reply. Its tail is a sequence of entries: one kind byte
/// (`node_kind::FILE as u8` or `DIR`), the name bytes, a NUL; CAPIO entries in creation order.
/// A directory that is not committed may still gain entries: a reader that is not its producer
/// waits (on the namespace slot, from `generation`) for its commit under `fire::UPDATE`, or for
/// new entries under `fire::NO_UPDATE`, and lists again.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct ListReply {
    pub status: i32,
    pub committed: u32,
    /// The namespace slot's `seq`, read before the listing was taken.
    pub generation: u32,
    pub fire: u32,
    /// Non-zero when the caller produces this directory (it never waits on it).
    pub producer: u32,
    /// Non-zero when the directory does not exist yet but a producer may still make it: the
    /// caller waits as for an open of a missing file (with `committed` 0 and no entries).
    pub missing: u32,
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
pub fn push_entry(out: &mut Vec<u8>, kind: u32, name: &[u8]) {
    out.push(kind as u8);
    out.extend_from_slice(name);
    out.push(0);
}

/// Parse a `List` reply tail into `(kind, name)` pairs.
pub fn parse_entries(mut tail: &[u8]) -> Vec<(u32, &[u8])> {
    let mut out = Vec::new();
    while let Some((&kind, rest)) = tail.split_first() {
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        out.push((u32::from(kind), &rest[..end]));
        tail = rest.get(end + 1..).unwrap_or(&[]);
    }
    out
}

/// Split a `Hello` tail into (app name, CAPIO directory).
pub fn split_hello_tail(tail: &[u8]) -> (&[u8], &[u8]) {
    match tail.iter().position(|&b| b == 0) {
        Some(i) => (&tail[..i], &tail[i + 1..]),
        None => (tail, &[]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_frame() {
        let req = OpenReq {
            flags: 0o101,
            mode: 0o644,
        };
        let bytes = encode(Kind::Open as u16, &req, b"/tmp/x").unwrap();
        let (h, body) = read_frame(&mut &bytes[..]).unwrap();
        assert_eq!(h.kind, Kind::Open as u16);
        let (got, tail): (OpenReq, _) = decode(&body).unwrap();
        assert_eq!(got.flags, 0o101);
        assert_eq!(tail, b"/tmp/x");
    }

    #[test]
    fn back_to_back_frames() {
        let mut bytes = encode(Kind::Stat as u16, &Empty {}, b"/a").unwrap();
        bytes.extend(encode(Kind::Stat as u16, &Empty {}, b"/bb").unwrap());
        let mut r = &bytes[..];
        assert_eq!(read_frame(&mut r).unwrap().1, b"/a");
        assert_eq!(read_frame(&mut r).unwrap().1, b"/bb");
        assert!(matches!(read_frame(&mut r), Err(WireError::Eof)));
    }

    #[test]
    fn oversize_rejected_before_allocation() {
        let h = Header {
            magic: MAGIC,
            version: PROTOCOL_VERSION,
            kind: 2,
            len: MAX_BODY + 1,
            reserved: 0,
        };
        let bytes = bytemuck::bytes_of(&h).to_vec();
        assert!(matches!(
            read_frame(&mut &bytes[..]),
            Err(WireError::TooLarge(_))
        ));
    }

    #[test]
    fn truncated_and_bad_magic() {
        let bytes = encode(Kind::Open as u16, &OpenReq::default(), b"").unwrap();
        let short = &bytes[..bytes.len() - 2];
        assert!(matches!(read_frame(&mut &short[..]), Err(WireError::Io(_))));
        let (_, body) = read_frame(&mut &bytes[..]).unwrap();
        assert!(matches!(
            decode::<OpenReply>(&body),
            Err(WireError::Truncated { .. })
        ));
        let mut bad = bytes.clone();
        bad[0] ^= 0xff;
        assert!(matches!(
            read_frame(&mut &bad[..]),
            Err(WireError::BadMagic(_))
        ));
    }

    #[test]
    fn every_kind_round_trips_through_u16() {
        let all = [
            Kind::Hello,
            Kind::Open,
            Kind::Close,
            Kind::Stat,
            Kind::Mkdir,
            Kind::List,
            Kind::Exit,
            Kind::Shutdown,
            Kind::Unlink,
            Kind::Rename,
            Kind::Rmdir,
            Kind::Status,
            Kind::Reserve,
            Kind::SetAttr,
            Kind::Lstat,
        ];
        for kind in all {
            assert_eq!(Kind::from_u16(kind as u16), Some(kind));
        }
        assert_eq!(
            (Kind::Unlink as u16, Kind::Rename as u16, Kind::Rmdir as u16),
            (9, 10, 11)
        );
        assert_eq!(Kind::from_u16(0), None);
        assert_eq!((Kind::Status as u16, Kind::Reserve as u16), (12, 13));
        assert_eq!(Kind::from_u16(14), Some(Kind::SetAttr));
        assert_eq!(Kind::from_u16(15), Some(Kind::Lstat));
        assert_eq!(Kind::from_u16(16), None);
        assert_eq!(Kind::from_u16(2 | REPLY_BIT), None);
    }

    #[test]
    fn rename_tail_round_trips_and_overruns_are_refused() {
        let (req, tail) = rename_tail(b"/a/src", b"/a/dst").unwrap();
        let bytes = encode(Kind::Rename as u16, &req, &tail).unwrap();
        let (_, body) = read_frame(&mut &bytes[..]).unwrap();
        let (got, tail): (RenameReq, _) = decode(&body).unwrap();
        assert_eq!(got.flags, 0);
        assert_eq!(
            split_rename_tail(&got, tail),
            Some((&b"/a/src"[..], &b"/a/dst"[..]))
        );
        let bad = RenameReq {
            src_len: 99,
            flags: 0,
        };
        assert_eq!(split_rename_tail(&bad, b"/short"), None);
    }

    #[test]
    fn set_attr_requests_round_trip() {
        use crate::sys::{Attrs, TimeSet};
        let attrs = Attrs {
            mode: Some(0o4755),
            owner: Some((u32::MAX, 100)),
            atime: TimeSet::Now,
            mtime: TimeSet::At(-1_500_000_000),
        };
        let req = SetAttrReq::new(&attrs, true);
        assert_ne!(req.flags & attr_flags::NOFOLLOW, 0);
        assert_eq!(req.attrs(), Some(attrs));
        assert_eq!(
            SetAttrReq::new(&Attrs::default(), false).attrs(),
            Some(Attrs::default())
        );
        let bad = SetAttrReq {
            flags: 1 << 20,
            ..SetAttrReq::default()
        };
        assert_eq!(bad.attrs(), None);
    }

    #[test]
    fn entries_round_trip() {
        let mut tail = Vec::new();
        push_entry(&mut tail, node_kind::FILE, b"a.txt");
        push_entry(&mut tail, node_kind::DIR, b"sub dir");
        assert_eq!(
            parse_entries(&tail),
            vec![
                (node_kind::FILE, &b"a.txt"[..]),
                (node_kind::DIR, &b"sub dir"[..])
            ]
        );
    }
}
