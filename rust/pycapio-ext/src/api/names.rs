//! The namespace: where a path is, stat, listings, attributes, mkdir, unlink, rename, rmdir.

use super::{client, fd_arg};
use crate::py::convert;
use crate::py::err::{Error, PyResult};
use crate::py::gil::allow_threads;
use crate::py::module::{CallArgs, ModuleRef};
use crate::py::obj::{Borrowed, Owned};
use crate::state;
use capio_client::{ClientError, FileStat};
use capio_proto::NodeKind;
use std::os::unix::ffi::{OsStrExt, OsStringExt};

/// An `os.stat_result`, as `os.stat` builds it: the file type decoded here, once, into `st_mode`
/// (as `entries_list` decodes a listing's: no Python code sees CAPIO's node kinds); `st_blocks`
/// counts 512-byte units of a regular file.
fn stat_result(m: ModuleRef, st: FileStat) -> PyResult<Owned> {
    let st_mode = st_mode(&st);
    let blocks = if st_mode & libc::S_IFMT == libc::S_IFREG {
        st.size.div_ceil(512)
    } else {
        0
    };
    let secs = |ns: i64| ns.div_euclid(1_000_000_000);
    let float = |ns: i64| convert::float(ns as f64 / 1e9);
    let int = |v: i64| convert::int(v);
    let big = |v: u64| convert::int(i64::try_from(v).unwrap_or(i64::MAX));
    let fields = vec![
        int(i64::from(st_mode))?,
        big(st.ino)?,
        big(st.dev)?,
        int(i64::from(st.nlink))?,
        int(i64::from(st.uid))?,
        int(i64::from(st.gid))?,
        big(st.size)?,
        int(secs(st.atime_ns))?,
        int(secs(st.mtime_ns))?,
        int(secs(st.ctime_ns))?,
        float(st.atime_ns)?,
        float(st.mtime_ns)?,
        float(st.ctime_ns)?,
        int(st.atime_ns)?,
        int(st.mtime_ns)?,
        int(st.ctime_ns)?,
        int(4096)?,
        big(blocks)?,
        int(0)?,
    ];
    m.stat_result(fields)
}

/// `st_mode`: the file type decoded from CAPIO's node kind, and the permission bits.
fn st_mode(st: &FileStat) -> u32 {
    let ftype = match st.file_type {
        0 if st.is_dir() => libc::S_IFDIR,
        0 => libc::S_IFREG,
        t => t,
    };
    ftype | st.mode
}

/// A stat of `path` as the proxies ask it, in one call: `None` when the path is not CAPIO's
/// (the OS answers: outside the CAPIO directory, excluded, not a name the OS takes, or pycapio not
/// initialised), else what CAPIO says of it (errors naming the path as given).
fn stat_if_capio(a: &CallArgs) -> PyResult<Option<Result<FileStat, ClientError>>> {
    let v = a.bind(&["path", "follow_symlinks"], 1)?;
    let follow = v[1].map_or(Ok(true), convert::truthy)?;
    let (Ok(path), Ok(c)) = (
        convert::path(v[0].expect("required"), "path"),
        state::current(),
    ) else {
        return Ok(None);
    };
    match c.stat_at(&path, follow) {
        Err(ClientError::OutsideCapioDir { .. }) => Ok(None),
        answer => Ok(Some(answer)),
    }
}

/// `st_mode` of a path as the `os.path` predicates ask it: the mode of a CAPIO path, None where
/// a stat of it would fail (no exception built only to be discarded), -1 when it is not CAPIO's.
pub fn path_mode(a: &CallArgs, _m: ModuleRef) -> PyResult<Owned> {
    match stat_if_capio(a)? {
        None => Ok(convert::int(-1)?),
        Some(Ok(st)) => Ok(convert::int(i64::from(st_mode(&st)))?),
        Some(Err(_)) => Ok(Owned::none()),
    }
}

/// `os.stat`/`os.lstat` of any path: its `os.stat_result`, or None when it is not CAPIO's.
pub fn stat_path(a: &CallArgs, m: ModuleRef) -> PyResult<Owned> {
    match stat_if_capio(a)? {
        None => Ok(Owned::none()),
        Some(answer) => stat_result(m, answer?),
    }
}

pub fn stat(a: &CallArgs, m: ModuleRef) -> PyResult<Owned> {
    let v = a.bind(&["path", "follow_symlinks"], 1)?;
    let path = convert::path(v[0].expect("required"), "path")?;
    let follow = v[1].map_or(Ok(true), convert::truthy)?;
    stat_result(m, client()?.stat_at(&path, follow)?)
}

pub fn fstat(a: &CallArgs, m: ModuleRef) -> PyResult<Owned> {
    let v = a.bind(&["fd"], 1)?;
    let fd = fd_arg(v[0])?;
    stat_result(m, client()?.fstat(fd)?)
}

/// `os.stat_result` of a plain fd `_open_path(..., plain=True)` gave, as the server reports its
/// file; None for any other fd.
pub fn plain_fstat(a: &CallArgs, m: ModuleRef) -> PyResult<Owned> {
    let v = a.bind(&["fd"], 1)?;
    let fd = fd_arg(v[0])?;
    // Never attaches (a forked child that only asks about an inherited fd stays unattached).
    let Some(c) = state::peek() else {
        return Ok(Owned::none());
    };
    match c.plain_fstat(fd) {
        Some(st) => stat_result(m, st),
        None => Ok(Owned::none()),
    }
}

/// After the OS changed a file through a plain fd `_open_path(..., plain=True)` gave (its mode,
/// times, size): `stat` by path reads the file again. Nothing for any other fd.
pub fn plain_changed(a: &CallArgs, _m: ModuleRef) -> PyResult<Owned> {
    let v = a.bind(&["fd"], 1)?;
    let fd = fd_arg(v[0])?;
    if let Some(c) = state::peek() {
        c.plain_changed(fd);
    }
    Ok(Owned::none())
}

pub fn pycapio_mkdir(a: &CallArgs, _m: ModuleRef) -> PyResult<Owned> {
    let v = a.bind(&["path", "flags"], 1)?;
    let path = convert::path(v[0].expect("required"), "path")?;
    let mode = v[1]
        .map(|o| convert::i64(o, "flags"))
        .transpose()?
        .unwrap_or(0o777);
    let c = client()?;
    allow_threads(|_| c.mkdir(&path, (mode & 0o7777) as u32))?;
    Ok(convert::int(0)?)
}

pub fn capio_path(a: &CallArgs, _m: ModuleRef) -> PyResult<Owned> {
    let v = a.bind(&["path"], 1)?;
    let path = convert::path(v[0].expect("required"), "path")?;
    let Ok(c) = state::current() else {
        return Ok(Owned::none());
    };
    match c.capio_path(&path) {
        Some(p) => Ok(convert::fs_str(p.as_os_str().as_bytes())?),
        None => Ok(Owned::none()),
    }
}

/// An owner id: -1 (unchanged) becomes `u32::MAX`, as `chown(2)` reads it.
fn id_arg(o: Borrowed, what: &str) -> PyResult<u32> {
    match convert::i64(o, what)? {
        -1 => Ok(u32::MAX),
        v => u32::try_from(v)
            .ok()
            .filter(|&id| id != u32::MAX)
            .ok_or_else(|| Error::Overflow(format!("{what} is out of range"))),
    }
}

pub fn set_attrs(a: &CallArgs, _m: ModuleRef) -> PyResult<Owned> {
    use capio_proto::sys::{Attrs, TimeSet};
    let names = [
        "path",
        "mode",
        "uid",
        "gid",
        "atime_ns",
        "mtime_ns",
        "now",
        "follow_symlinks",
    ];
    let v = a.bind(&names, 1)?;
    let target = v[0].expect("required");
    let time = |o: Option<Borrowed>, what: &str| -> PyResult<TimeSet> {
        Ok(match o {
            Some(o) => TimeSet::At(convert::i64(o, what)?),
            None => TimeSet::Omit,
        })
    };
    let mut attrs = Attrs {
        mode: v[1]
            .map(|o| convert::i64(o, "mode").map(|m| (m & 0o7777) as u32))
            .transpose()?,
        owner: None,
        atime: time(v[4], "atime_ns")?,
        mtime: time(v[5], "mtime_ns")?,
    };
    if v[2].is_some() || v[3].is_some() {
        let uid = v[2].map_or(Ok(u32::MAX), |o| id_arg(o, "uid"))?;
        let gid = v[3].map_or(Ok(u32::MAX), |o| id_arg(o, "gid"))?;
        attrs.owner = Some((uid, gid));
    }
    if v[6].map_or(Ok(false), convert::truthy)? {
        (attrs.atime, attrs.mtime) = (TimeSet::Now, TimeSet::Now);
    }
    let follow = v[7].map_or(Ok(true), convert::truthy)?;
    let c = client()?;
    if convert::is_int(target) {
        c.set_fd_attrs(fd_arg(Some(target))?, &attrs)?;
    } else {
        let path = convert::path(target, "path")?;
        c.set_attrs(&path, &attrs, follow)?;
    }
    Ok(Owned::none())
}

/// `(name, is_file, is_dir, is_symlink)` per entry, as `os.DirEntry` answers with
/// `follow_symlinks=True` (a link's target; a dangling link is neither): the wire's kind bits are
/// decoded here, so Python never sees them.
fn entries_list(entries: Vec<capio_client::DirEntry>) -> PyResult<Owned> {
    let mut items = Vec::with_capacity(entries.len());
    for (name, kind) in entries {
        items.push(convert::tuple(vec![
            convert::fs_str(&name)?,
            convert::bool(kind.node == NodeKind::File)?,
            convert::bool(kind.is_dir())?,
            convert::bool(kind.link)?,
        ])?);
    }
    Ok(convert::list(items)?)
}

pub fn listdir(a: &CallArgs, _m: ModuleRef) -> PyResult<Owned> {
    let v = a.bind(&["path"], 1)?;
    let path = convert::path(v[0].expect("required"), "path")?;
    let c = client()?;
    let entries = allow_threads(|intr| c.listdir(&path, intr))?;
    entries_list(entries)
}

pub fn list_new(a: &CallArgs, _m: ModuleRef) -> PyResult<Owned> {
    let v = a.bind(&["path", "seen"], 2)?;
    let path = convert::path(v[0].expect("required"), "path")?;
    let mut seen = std::collections::HashSet::new();
    for name in convert::iterate(v[1].expect("required"))? {
        seen.insert(
            convert::path(name.borrow(), "seen")?
                .into_os_string()
                .into_vec(),
        );
    }
    let c = client()?;
    let (entries, complete) = allow_threads(|intr| c.list_new(&path, &seen, true, intr))?;
    Ok(convert::tuple(vec![
        entries_list(entries)?,
        convert::bool(complete)?,
    ])?)
}

pub fn unlink(a: &CallArgs, _m: ModuleRef) -> PyResult<Owned> {
    let v = a.bind(&["path"], 1)?;
    let path = convert::path(v[0].expect("required"), "path")?;
    let c = client()?;
    allow_threads(|_| c.unlink(&path))?;
    Ok(Owned::none())
}

/// A path argument that may be None: a name outside the CAPIO directory only a dir_fd locates.
fn maybe_path(o: Option<Borrowed>, what: &str) -> PyResult<Option<std::path::PathBuf>> {
    o.filter(|o| !o.is_none())
        .map(|o| convert::path(o, what))
        .transpose()
}

/// `os.rename` of names at least one of which is CAPIO's: errors in rename(2)'s order (see
/// `Client::rename_as_os`).
pub fn rename(a: &CallArgs, _m: ModuleRef) -> PyResult<Owned> {
    let v = a.bind(&["src", "dst"], 2)?;
    let src = convert::path(v[0].expect("required"), "src")?;
    let dst = maybe_path(v[1], "dst")?;
    let c = client()?;
    // Persisting a committed file under its new name may copy it: no GIL meanwhile.
    allow_threads(|_| c.rename_as_os(&src, dst.as_deref()))?;
    Ok(Owned::none())
}

/// Whether `os.link` may go to the OS; raises what link(2) would say otherwise (see
/// `Client::link_check`).
pub fn link_check(a: &CallArgs, _m: ModuleRef) -> PyResult<Owned> {
    let v = a.bind(&["src", "dst", "follow_symlinks"], 2)?;
    let src = maybe_path(v[0], "src")?;
    let dst = maybe_path(v[1], "dst")?;
    let follow = v[2].map_or(Ok(true), convert::truthy)?;
    let c = client()?;
    allow_threads(|_| c.link_check(src.as_deref(), dst.as_deref(), follow))?;
    Ok(Owned::none())
}

pub fn rmdir(a: &CallArgs, _m: ModuleRef) -> PyResult<Owned> {
    let v = a.bind(&["path"], 1)?;
    let path = convert::path(v[0].expect("required"), "path")?;
    let c = client()?;
    allow_threads(|_| c.rmdir(&path))?;
    Ok(Owned::none())
}
