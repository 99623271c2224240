//! Opening a CAPIO path (waiting for a missing one, handing non-CAPIO nodes to the OS) into a
//! handle in the fd table, and closing it.

use crate::error::{ClientError, Result};
use capio_proto::{CloseReq, Fire, OpenKind, OpenReq, sys};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use super::wait::TO_BE_CREATED;
use super::{Client, Handle};

/// The server hands every open of a file the same open file description (one offset, read-write).
/// A reader gets its own, read-only one, so `os.read`/`subprocess` through its `fileno()` never
/// move another reader's offset and can never write into the producer's data. (A writer of a
/// file written directly gets one of its own from the server, made as `open(2)` makes it.)
fn private_read_only(shared: &File, path: &Path) -> Result<File> {
    sys::reopen_as(shared.as_fd(), libc::O_RDONLY)
        .map(File::from)
        .map_err(|e| ClientError::from_io(e, path.to_path_buf()))
}

/// What an open gave: a CAPIO fd, or (for [`Client::open_plain_writer`]) a plain fd of a file
/// written directly and the CAPIO fd that stands for it, closed once the plain one is.
pub enum Opened {
    Capio(RawFd),
    Plain { fd: OwnedFd, closes_with: RawFd },
}

impl Client {
    /// Open `path` with Linux `open(2)` flags; returns a real fd. A read-only open of a path that
    /// does not exist yet waits until a producer creates it.
    pub fn open(
        &self,
        path: &Path,
        flags: i32,
        mode: u32,
        interrupt: &mut dyn FnMut() -> bool,
    ) -> Result<RawFd> {
        Ok(match self.open_as(path, flags, mode, false, interrupt)? {
            Opened::Capio(fd) => fd,
            // Never given unasked; were it, the CAPIO fd alone writes the same file.
            Opened::Plain { closes_with, .. } => closes_with,
        })
    }

    /// `open`, for a writer that writes with the OS's own calls (a text file under the stdlib's
    /// exact `FileIO`, whose every line CPython writes without a Python-level check): a file this
    /// open creates, whose readers wait for its commit (or one such a create made, opened for
    /// writing again), comes as a plain fd of its memory object.
    /// The caller closes that fd, then [`Client::close`]s `closes_with`, which commits it.
    pub fn open_plain_writer(
        &self,
        path: &Path,
        flags: i32,
        mode: u32,
        interrupt: &mut dyn FnMut() -> bool,
    ) -> Result<Opened> {
        self.open_as(path, flags, mode, true, interrupt)
    }

    fn open_as(
        &self,
        path: &Path,
        flags: i32,
        mode: u32,
        plain_write: bool,
        interrupt: &mut dyn FnMut() -> bool,
    ) -> Result<Opened> {
        let abs = self.require_capio_path(path)?;
        // A plain read-only open of a committed file in memory needs no server.
        if flags & !(libc::O_CLOEXEC | libc::O_LARGEFILE) == libc::O_RDONLY
            && let Some((file, _, offered)) = self.open_committed(&abs)
        {
            return Ok(Opened::Capio(self.add_handle(Handle {
                file,
                path: path.to_path_buf(),
                slot: None,
                offered: Some(offered),
                namespace_file: true,
                producer: false,
                fire: Fire::Update,
                readable: true,
                writable: false,
                append: false,
                pos: AtomicU64::new(0),
                reserved: AtomicU64::new(0),
                progress: None,
                map: std::sync::OnceLock::new(),
                direct_write: false,
            })));
        }
        // A file it creates gets `mode` less the process's umask, as from `open(2)`.
        let mode = if flags & libc::O_CREAT != 0 {
            mode & !sys::current_umask()
        } else {
            mode
        };
        let writable = matches!(flags & libc::O_ACCMODE, libc::O_WRONLY | libc::O_RDWR);
        let wish = if plain_write && writable {
            OpenReq::PLAIN_WRITE
        } else {
            0
        };
        let req = OpenReq {
            flags: flags as u32 | wish,
            mode,
        };
        let waiter = self.waiter();
        loop {
            let reply = self
                .conn()
                .call(&req, abs.as_os_str().as_bytes())?
                .check(path)?;
            let r = reply.fixed;
            match r.open_kind() {
                Ok(OpenKind::Wait) => {
                    let ns = self.table.namespace();
                    waiter.sleep_on(ns, r.generation, path, TO_BE_CREATED, interrupt)?;
                    continue;
                }
                Ok(OpenKind::Pass) => {
                    // Not CAPIO's (a FIFO, a device): the OS opens it, blocking as it would, and
                    // the fd is an ordinary one that no CAPIO call claims.
                    use std::os::fd::IntoRawFd;
                    use std::os::unix::fs::OpenOptionsExt;
                    // What the server saw must still be what opens: no create or truncate (the
                    // node exists), no final link followed, and nothing but a FIFO, socket or
                    // device accepted, so a swap made meanwhile cannot reach a regular file.
                    let acc = flags & libc::O_ACCMODE;
                    let file = std::fs::OpenOptions::new()
                        .read(acc == libc::O_RDONLY || acc == libc::O_RDWR)
                        .write(acc == libc::O_WRONLY || acc == libc::O_RDWR)
                        .custom_flags(
                            (flags
                                & !(libc::O_ACCMODE
                                    | libc::O_CREAT
                                    | libc::O_EXCL
                                    | libc::O_TRUNC))
                                | libc::O_NOFOLLOW,
                        )
                        .mode(mode)
                        .open(&abs)
                        .map_err(|e| ClientError::from_io(e, path.to_path_buf()))?;
                    let kind = file
                        .metadata()
                        .map_err(|e| ClientError::from_io(e, path.to_path_buf()))?
                        .file_type();
                    if kind.is_file() || kind.is_dir() || kind.is_symlink() {
                        return Err(ClientError::os(libc::ENXIO, path.to_path_buf()));
                    }
                    return Ok(Opened::Capio(file.into_raw_fd()));
                }
                Ok(kind @ (OpenKind::Memory | OpenKind::Disk)) => {
                    let adopted = self.adopt(path, flags, kind, &r, reply.fd, plain_write);
                    if adopted.is_err() && kind == OpenKind::Memory {
                        // Past the server's yes it counted this open (and maybe a producer): it
                        // is told the close, never as a writer's, which could commit the file.
                        self.abandon(r.slot, r.progress);
                    }
                    return adopted;
                }
                Err(_) => return Err(ClientError::os(libc::EIO, path.to_path_buf())),
            }
        }
    }

    /// Make what the server handed over for an open of `path` (a file in memory or on disk) this
    /// process's: a CAPIO fd, or for a writer asking for one, a plain fd and its CAPIO fd.
    fn adopt(
        &self,
        path: &Path,
        flags: i32,
        kind: OpenKind,
        r: &capio_proto::OpenReply,
        fd: Option<OwnedFd>,
        plain_write: bool,
    ) -> Result<Opened> {
        let fd = fd.ok_or_else(|| ClientError::os(libc::EIO, path.to_path_buf()))?;
        let acc = flags & libc::O_ACCMODE;
        let writable = acc == libc::O_WRONLY || acc == libc::O_RDWR;
        let append = flags & libc::O_APPEND != 0;
        let memory = kind == OpenKind::Memory;
        let slot = memory.then_some(r.slot);
        let direct_write = memory && r.direct_write != 0;
        let mut file = File::from(fd);
        let mut plain = None;
        if memory && acc == libc::O_RDONLY {
            file = private_read_only(&file, path)?;
        } else if direct_write && writable && plain_write {
            // The server made this writer's description (offset, `O_APPEND`); the plain fd is
            // it, and the CAPIO fd standing for it a duplicate.
            let dup = file
                .try_clone()
                .map_err(|e| ClientError::from_io(e, path.to_path_buf()))?;
            if let Ok(meta) = file.metadata() {
                super::local::note_plain_object(&meta, r.slot);
            }
            plain = Some(OwnedFd::from(std::mem::replace(&mut file, dup)));
        }
        let handle = Handle {
            file,
            path: path.to_path_buf(),
            slot,
            offered: None,
            namespace_file: slot.is_some(),
            producer: r.producer != 0,
            fire: r.fire_rule()?,
            readable: acc == libc::O_RDONLY || acc == libc::O_RDWR,
            writable,
            append,
            pos: AtomicU64::new(if append { r.size } else { 0 }),
            reserved: AtomicU64::new(if self.memory_limited { 0 } else { u64::MAX }),
            progress: (r.progress != 0).then_some(r.progress),
            map: std::sync::OnceLock::new(),
            direct_write,
        };
        let capio = self.add_handle(handle);
        Ok(match plain {
            Some(fd) => Opened::Plain {
                fd,
                closes_with: capio,
            },
            None => Opened::Capio(capio),
        })
    }

    /// Make `handle` a CAPIO fd: its file's number.
    fn add_handle(&self, handle: Handle) -> RawFd {
        let raw = handle.file.as_raw_fd();
        self.handles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(raw, Arc::new(handle));
        raw
    }

    /// Close a CAPIO fd. The server is told without waiting for an answer.
    pub fn close(&self, fd: RawFd) -> Result<()> {
        self.close_told(fd, true)
    }

    /// Undo the open of CAPIO fd `fd` whose caller could not take it (nothing was written
    /// through it): closed, and told as [`Client::abandon`] tells it.
    pub fn abandon_fd(&self, fd: RawFd) {
        let _ = self.close_told(fd, false);
    }

    /// Close `fd`, telling the server a writer's close only if `written` and it was writable.
    fn close_told(&self, fd: RawFd, written: bool) -> Result<()> {
        let h = self
            .handles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&fd)
            .ok_or_else(|| ClientError::os(libc::EBADF, None))?;
        let (slot, writable, progress) = (h.slot, h.writable && written, h.progress);
        // Its fd goes first: on the last close of a removed file, the server checks that nothing
        // holds the memory before recycling it.
        drop(h);
        if let Some(slot) = slot {
            // The fd is closed locally either way. A reader loses nothing when the server is
            // gone, but what a writer wrote will never be committed or persisted: say so.
            let sent = self.tell_closed(slot, writable, progress.unwrap_or(0));
            if writable {
                sent?;
            }
        }
        Ok(())
    }

    /// Tell the server an open it answered is closed before it became a CAPIO fd: not as a
    /// writer's close (it wrote nothing, and `on_close` must not count it).
    fn abandon(&self, slot: u32, progress: u32) {
        let _ = self.tell_closed(slot, false, progress);
    }

    fn tell_closed(&self, slot: u32, writable: bool, progress: u32) -> Result<()> {
        let req = CloseReq {
            slot,
            writable: u32::from(writable),
            progress,
            _pad: 0,
        };
        self.conn().send(&req, &[])
    }
}
