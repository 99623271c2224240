//! I/O on CAPIO fds: open, read, write, seek, truncate, close.
//!
//! Each read waits once, per the file's CAPIO-CL rule, for what it is about to copy (`Client::wait_readable`, then
//! `Client::read_ready`, which does not wait again).

use super::{client, fd_arg, offset_arg};
use crate::py::buffer::{Buffer, NewBytes};
use crate::py::convert;
use crate::py::err::{Error, PyResult};
use crate::py::gil::allow_threads;
use crate::py::module::{CallArgs, ModuleRef};
use crate::py::obj::{Borrowed, Owned};
use crate::state;
use capio_client::{ClientError, Opened, Readable};
use std::os::fd::{AsRawFd, IntoRawFd};

/// Writes at least this large copy without the GIL.
const RELEASE_GIL_WRITE: usize = 64 * 1024;

pub fn pycapio_open(a: &CallArgs, _m: ModuleRef) -> PyResult<Owned> {
    let v = a.bind(&["path", "flags", "mode"], 2)?;
    let path = convert::path(v[0].expect("required"), "path")?;
    let flags = convert::i64(v[1].expect("required"), "flags")?;
    let mode = v[2]
        .map(|o| convert::i64(o, "mode"))
        .transpose()?
        .unwrap_or(0o666);
    let flags = i32::try_from(flags).map_err(|_| Error::Overflow("flags out of range".into()))?;
    let flags = seed_access(flags);
    let c = client()?;
    let fd = allow_threads(|intr| c.open(&path, flags, (mode & 0o7777) as u32, intr))?;
    Ok(convert::int(i64::from(fd))?)
}

/// The seed API's access rule: an fd opened with `O_CREAT` and no access flag (O_RDONLY is 0, so
/// `pycapio_open(path, FILE_MODES["O_CREAT"])`, as the C++ binding's users write it) is opened to
/// be written, and the C++ binding accepts writes on it: it is read-write here too. Everything
/// else keeps open(2)'s meaning. `_open_path` applies it too, so the `os.open` proxy opens as it
/// always has (`open()`'s modes never pair `O_CREAT` with `O_RDONLY`).
fn seed_access(flags: i32) -> i32 {
    if flags & libc::O_CREAT != 0 && flags & libc::O_ACCMODE == libc::O_RDONLY {
        (flags & !libc::O_ACCMODE) | libc::O_RDWR
    } else {
        flags
    }
}

/// `open` for the Python layer: the one call that decides whether a path is CAPIO's and opens
/// it. `None` when the path is not CAPIO's (outside the CAPIO directory, excluded, or not
/// initialised), so the caller hands it to the OS; a CAPIO fd; or `~fd` (negative) for an fd the
/// OS opened because CAPIO does not serve the node (a FIFO, a device in the CAPIO directory) or,
/// with `plain`, a committed file opened read-only from its memory object, which the OS's own
/// calls read as CAPIO would. With `plain`, a file opened for writing may come as a pair
/// `(plain fd, CAPIO fd)` (see `Client::open_plain_writer`): the caller writes and closes the
/// plain fd, then `_close`s the CAPIO fd. Errors of a CAPIO path raise as `pycapio_open`'s do.
pub fn open_path(a: &CallArgs, _m: ModuleRef) -> PyResult<Owned> {
    let v = a.bind(&["path", "flags", "mode", "plain"], 2)?;
    let path = convert::path(v[0].expect("required"), "path")?;
    let flags = convert::i64(v[1].expect("required"), "flags")?;
    let flags = i32::try_from(flags).map_err(|_| Error::Overflow("flags out of range".into()))?;
    let mode = v[2]
        .map(|o| convert::i64(o, "mode"))
        .transpose()?
        .unwrap_or(0o666);
    let plain = v[3].map_or(Ok(false), convert::truthy)?;
    let flags = seed_access(flags);
    let Ok(c) = state::current() else {
        return Ok(Owned::none());
    };
    let writer = flags & libc::O_ACCMODE != libc::O_RDONLY;
    if plain && writer {
        let mode = (mode & 0o7777) as u32;
        return match allow_threads(|intr| c.open_plain_writer(&path, flags, mode, intr)) {
            Ok(Opened::Plain { fd, closes_with }) => {
                let pair = convert::int(i64::from(fd.as_raw_fd())).and_then(|plain| {
                    convert::tuple(vec![plain, convert::int(i64::from(closes_with))?])
                });
                match pair {
                    Ok(pair) => {
                        // The caller owns the plain fd from here on.
                        let _ = fd.into_raw_fd();
                        Ok(pair)
                    }
                    Err(e) => {
                        drop(fd);
                        c.abandon_fd(closes_with);
                        Err(e.into())
                    }
                }
            }
            Ok(Opened::Capio(fd)) if c.is_capio_fd(fd) => Ok(convert::int(i64::from(fd))?),
            Ok(Opened::Capio(fd)) => Ok(convert::int(i64::from(!fd))?),
            Err(ClientError::OutsideCapioDir { .. }) => Ok(Owned::none()),
            Err(e) => Err(e.into()),
        };
    }
    let plain = plain && flags & !libc::O_CLOEXEC == libc::O_RDONLY;
    if plain {
        match allow_threads(|_| c.open_plain(&path)) {
            Ok(Some(fd)) => return Ok(convert::int(i64::from(!fd))?),
            Ok(None) => {}
            Err(ClientError::OutsideCapioDir { .. }) => return Ok(Owned::none()),
            Err(e) => return Err(e.into()),
        }
    }
    match allow_threads(|intr| c.open(&path, flags, (mode & 0o7777) as u32, intr)) {
        Ok(fd) if c.is_capio_fd(fd) => {
            // The server answers after what this process told it before (a close that
            // committed the file): committed now, the file may be read plainly after all.
            if plain && let Ok(Some(direct)) = allow_threads(|_| c.open_plain(&path)) {
                let _ = c.close(fd);
                return Ok(convert::int(i64::from(!direct))?);
            }
            Ok(convert::int(i64::from(fd))?)
        }
        Ok(fd) => Ok(convert::int(i64::from(!fd))?),
        Err(ClientError::OutsideCapioDir { .. }) => Ok(Owned::none()),
        Err(e) => Err(e.into()),
    }
}

/// How much a read waits for: any byte (what `read(2)` returns), or with `fill` all `len` bytes
/// (what `pread` of a MemFile returns), either way less when the file's end is final first.
fn want(len: u64, fill: bool) -> u64 {
    if fill { len } else { len.min(1) }
}

/// The bytes a wait found readable.
fn ready_len(r: &Readable) -> u64 {
    r.end().saturating_sub(r.offset())
}

fn fill_arg(o: Option<Borrowed>) -> PyResult<bool> {
    o.map_or(Ok(false), convert::truthy)
}

pub fn read(a: &CallArgs, _m: ModuleRef) -> PyResult<Owned> {
    let v = a.bind(&["fd", "buffer", "offset", "fill"], 2)?;
    let fd = fd_arg(v[0])?;
    let mut buf = Buffer::get(v[1].expect("required"), true)?;
    let offset = offset_arg(v[2])?;
    let fill = fill_arg(v[3])?;
    let c = client()?;
    let slice = buf.as_mut_slice();
    let n = allow_threads(|intr| {
        if fill {
            let ready = c.wait_readable(fd, offset, Some(slice.len() as u64), intr)?;
            c.read_ready(&ready, slice)
        } else {
            c.read(fd, slice, offset, intr) // one wait, for any byte
        }
    })?;
    Ok(convert::int(n as i64)?)
}

/// `size` argument: negative (or absent) means "to the end of the file".
fn size_arg(o: Option<Borrowed>) -> PyResult<Option<u64>> {
    match o {
        None => Ok(None),
        Some(o) if o.is_none() => Ok(None),
        Some(o) => Ok(u64::try_from(convert::i64(o, "size")?).ok()),
    }
}

/// `read(size)` into a new `bytes`: the wait comes first, so the result is allocated at its final
/// size and filled in place — one copy, out of shared memory. `size < 0` reads to the end (waits
/// for the commit per the fire rule); otherwise it returns what is readable, like `_read` (with
/// `fill`, waiting for all `size` bytes or the final end).
pub fn read_bytes(a: &CallArgs, _m: ModuleRef) -> PyResult<Owned> {
    let v = a.bind(&["fd", "size", "offset", "fill"], 1)?;
    let fd = fd_arg(v[0])?;
    let size = size_arg(v[1])?;
    let offset = offset_arg(v[2])?;
    let fill = fill_arg(v[3])?;
    let c = client()?;
    let ready = match size {
        // The fd checks only: nothing to wait for.
        Some(0) => c.wait_readable(fd, offset, Some(0), &mut || true)?,
        Some(s) => allow_threads(|intr| c.wait_readable(fd, offset, Some(want(s, fill)), intr))?,
        None => allow_threads(|intr| c.wait_readable(fd, offset, None, intr))?,
    };
    let n = size.map_or(ready_len(&ready), |s| ready_len(&ready).min(s));
    let n = usize::try_from(n).map_err(|_| Error::Overflow("read length is too large".into()))?;
    let mut out = NewBytes::new(n)?;
    let slice = out.as_mut_slice();
    let got = if n == 0 {
        0
    } else {
        allow_threads(|_| c.read_ready(&ready, slice))?
    };
    Ok(out.finish(got)?)
}

/// Wait until `size` bytes from `offset` are readable (all of the file when `size < 0`) or the
/// file ends first; returns the end of the readable bytes. For zero-copy views of a range.
pub fn wait_readable(a: &CallArgs, _m: ModuleRef) -> PyResult<Owned> {
    let v = a.bind(&["fd", "offset", "size"], 1)?;
    let fd = fd_arg(v[0])?;
    let offset = offset_arg(v[1])?;
    let size = size_arg(v[2])?;
    let c = client()?;
    let ready = allow_threads(|intr| c.wait_readable(fd, offset, size, intr))?;
    Ok(convert::int(ready.end() as i64)?)
}

pub fn write(a: &CallArgs, _m: ModuleRef) -> PyResult<Owned> {
    let v = a.bind(&["fd", "data", "offset"], 2)?;
    let fd = fd_arg(v[0])?;
    let buf = Buffer::get(v[1].expect("required"), false)?;
    let offset = offset_arg(v[2])?;
    let c = client()?;
    let data = buf.as_slice();
    let n = if data.len() >= RELEASE_GIL_WRITE {
        allow_threads(|_| c.write(fd, data, offset))?
    } else {
        c.write(fd, data, offset)?
    };
    Ok(convert::int(n as i64)?)
}

pub fn seek(a: &CallArgs, _m: ModuleRef) -> PyResult<Owned> {
    let v = a.bind(&["fd", "offset", "whence"], 2)?;
    let fd = fd_arg(v[0])?;
    let offset = convert::i64(v[1].expect("required"), "offset")?;
    let whence = v[2]
        .map(|o| convert::i64(o, "whence"))
        .transpose()?
        .unwrap_or(0);
    let pos = client()?.seek(fd, offset, whence as i32)?;
    Ok(convert::int(pos as i64)?)
}

pub fn truncate(a: &CallArgs, _m: ModuleRef) -> PyResult<Owned> {
    let v = a.bind(&["fd", "size"], 2)?;
    let fd = fd_arg(v[0])?;
    let size = convert::i64(v[1].expect("required"), "size")?;
    let size = u64::try_from(size).map_err(|_| ClientError::os(libc::EINVAL, None))?;
    client()?.truncate(fd, size)?;
    Ok(convert::int(size as i64)?)
}

pub fn close(a: &CallArgs, _m: ModuleRef) -> PyResult<Owned> {
    let v = a.bind(&["fd"], 1)?;
    let fd = fd_arg(v[0])?;
    client()?.close(fd)?;
    Ok(Owned::none())
}

/// Undo an open whose file object could not be made (nothing was written): never a writer's
/// close, which could commit the file.
pub fn abandon(a: &CallArgs, _m: ModuleRef) -> PyResult<Owned> {
    let v = a.bind(&["fd"], 1)?;
    let fd = fd_arg(v[0])?;
    client()?.abandon_fd(fd);
    Ok(Owned::none())
}

pub fn pin(a: &CallArgs, _m: ModuleRef) -> PyResult<Owned> {
    let v = a.bind(&["fd", "offset"], 2)?;
    let fd = fd_arg(v[0])?;
    let offset = offset_arg(v[1])?.unwrap_or(0);
    client()?.pin(fd, offset)?;
    Ok(Owned::none())
}

pub fn is_capio_fd(a: &CallArgs, _m: ModuleRef) -> PyResult<Owned> {
    let v = a.bind(&["fd"], 1)?;
    let fd = fd_arg(v[0])?;
    Ok(convert::bool(
        state::peek().is_some_and(|c| c.is_capio_fd(fd)),
    )?)
}
