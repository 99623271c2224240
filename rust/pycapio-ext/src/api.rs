//! The module's functions. Each converts its arguments, calls the client, converts the result;
//! blocking calls run with the GIL released.

use crate::py::buffer::{Buffer, NewBytes};
use crate::py::convert;
use crate::py::err::{Error, PyResult};
use crate::py::gil::allow_threads;
use crate::py::module::{CallArgs, ModuleRef, value_error};
use crate::py::obj::{Borrowed, Owned};
use crate::state;
use capio_client::{Client, ClientError, FileStat, Settings};
use capio_proto::sys::Tracking;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub const DEFAULT_APP_NAME: &str = "default_app";
pub const DEFAULT_WORKFLOW_NAME: &str = "CAPIO";
const SERVER_EXE: &str = "capio_server";
/// Environment variable bounding every CAPIO wait, in seconds.
const WAIT_TIMEOUT_ENV: &str = "PYCAPIO_WAIT_TIMEOUT";
/// Writes at least this large copy without the GIL.
const RELEASE_GIL_WRITE: usize = 64 * 1024;

fn client() -> PyResult<Arc<Client>> {
    Ok(state::current()?)
}

fn fd_arg(o: Option<Borrowed>) -> PyResult<i32> {
    let v = convert::i64(o.expect("required"), "fd")?;
    i32::try_from(v).map_err(|_| Error::Overflow("fd is out of range".into()))
}

fn offset_arg(o: Option<Borrowed>) -> PyResult<Option<u64>> {
    match o {
        None => Ok(None),
        Some(o) if o.is_none() => Ok(None),
        Some(o) => match convert::i64(o, "offset")? {
            // -1 is the documented "at the position"; any other negative offset is EINVAL, as
            // for os.pread/os.pwrite, never silently the position.
            -1 => Ok(None),
            v => u64::try_from(v)
                .map(Some)
                .map_err(|_| ClientError::os(libc::EINVAL, None).into()),
        },
    }
}

fn stat_tuple(st: FileStat) -> PyResult<Owned> {
    Ok(convert::tuple(vec![
        convert::int(if st.is_dir { 2 } else { 1 })?,
        convert::int(st.size as i64)?,
        convert::int(st.mtime_ns)?,
        convert::int(i64::from(st.mode))?,
        convert::bool(st.committed)?,
    ])?)
}

/// `(st_mode, size, uid, gid, atime_ns, mtime_ns, ctime_ns, committed, nlink, ino, dev)`: what
/// `os.stat_result` needs.
fn stat_ex_tuple(st: FileStat) -> PyResult<Owned> {
    let ftype = match st.file_type {
        0 if st.is_dir => libc::S_IFDIR,
        0 => libc::S_IFREG,
        t => t,
    };
    Ok(convert::tuple(vec![
        convert::int(i64::from(ftype | st.mode))?,
        convert::int(st.size as i64)?,
        convert::int(i64::from(st.uid))?,
        convert::int(i64::from(st.gid))?,
        convert::int(st.atime_ns)?,
        convert::int(st.mtime_ns)?,
        convert::int(st.ctime_ns)?,
        convert::bool(st.committed)?,
        convert::int(i64::from(st.nlink))?,
        convert::int(i64::try_from(st.ino).unwrap_or(i64::MAX))?,
        convert::int(i64::try_from(st.dev).unwrap_or(i64::MAX))?,
    ])?)
}

/// `capio_server` → beside this module, then `$PATH`; a path with `/` is used as given.
pub(crate) fn locate_server(given: &str, module: ModuleRef) -> PyResult<PathBuf> {
    if given.contains('/') {
        return Ok(PathBuf::from(given));
    }
    let mut candidates = Vec::new();
    if given == SERVER_EXE
        && let Some(dir) = module.file().as_deref().and_then(Path::parent)
    {
        candidates.push(dir.join(SERVER_EXE));
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join(given)));
    }
    candidates.into_iter().find(|c| c.is_file()).ok_or_else(|| {
        Error::Client(ClientError::Start(format!(
            "could not locate the '{given}' executable (looked beside pycapio and in PATH)"
        )))
    })
}

fn wait_timeout_from_env() -> PyResult<Option<Duration>> {
    let Some(v) = std::env::var_os(WAIT_TIMEOUT_ENV) else {
        return Ok(None);
    };
    let s = v.to_string_lossy();
    match s.trim().parse::<f64>() {
        Ok(x) if x > 0.0 && x.is_finite() => Ok(Some(Duration::from_secs_f64(x))),
        Ok(_) => Ok(None),
        Err(_) => value_error(format!(
            "{WAIT_TIMEOUT_ENV} must be a number of seconds, not '{s}'"
        )),
    }
}

pub fn pycapio_init(a: &CallArgs, m: ModuleRef) -> PyResult<Owned> {
    let names = [
        "CAPIO_DIR",
        "CAPIO_APP_NAME",
        "CAPIO_WORKFLOW_NAME",
        "capio_server_exec_path",
        "capio_cl_configuration_file",
        "await_server_timeout_seconds",
    ];
    let v = a.bind(&names, 0)?;
    let capio_dir = v[0]
        .map(|o| convert::path(o, "CAPIO_DIR"))
        .transpose()?
        .unwrap_or_else(|| ".".into());
    let app = v[1]
        .map(|o| convert::string(o, "CAPIO_APP_NAME"))
        .transpose()?
        .unwrap_or_else(|| DEFAULT_APP_NAME.into());
    let workflow = v[2]
        .map(|o| convert::string(o, "CAPIO_WORKFLOW_NAME"))
        .transpose()?
        .unwrap_or_else(|| DEFAULT_WORKFLOW_NAME.into());
    let exe = v[3]
        .map(|o| convert::string(o, "capio_server_exec_path"))
        .transpose()?
        .unwrap_or_else(|| SERVER_EXE.into());
    let config = v[4]
        .map(|o| convert::path(o, "capio_cl_configuration_file"))
        .transpose()?
        .unwrap_or_default();
    let await_secs = v[5]
        .map(|o| convert::f64(o, "await_server_timeout_seconds"))
        .transpose()?
        .unwrap_or(2.0);
    if app.is_empty() || app.contains('\0') {
        return value_error("CAPIO_APP_NAME must be a non-empty string without NUL characters");
    }
    if workflow.is_empty() || workflow.contains('\0') {
        return value_error(
            "CAPIO_WORKFLOW_NAME must be a non-empty string without NUL characters",
        );
    }
    if !(await_secs > 0.0 && await_secs.is_finite()) {
        return value_error("await_server_timeout_seconds must be a positive number");
    }
    let cwd = std::env::current_dir().map_err(|e| ClientError::from_io(e, None::<PathBuf>))?;
    let config_file = if config.as_os_str().is_empty() {
        None
    } else {
        let abs = capio_client::paths::normalize(&config, &cwd);
        if !abs.is_file() {
            return Err(ClientError::os(libc::ENOENT, config).into());
        }
        Some(abs)
    };
    let settings = Settings {
        capio_dir: capio_client::paths::normalize(&capio_dir, &cwd),
        app,
        workflow,
        server_exe: locate_server(&exe, m)?,
        config_file,
        ready_timeout: Duration::from_secs_f64(await_secs),
        wait_timeout: wait_timeout_from_env()?,
    };
    if let Some(c) = state::peek() {
        if *c.settings() == settings {
            return Ok(convert::int(state::init_result())?);
        }
        let s = c.settings();
        return Err(ClientError::AlreadyInitialized(format!(
            "CAPIO_DIR='{}', app '{}', workflow '{}'",
            s.capio_dir.display(),
            s.app,
            s.workflow
        ))
        .into());
    }
    let client = allow_threads(|_| Client::connect(settings))?;
    let result = client.started_server_pid().map_or(-1, i64::from);
    state::install(Arc::new(client), result);
    Ok(convert::int(result)?)
}

pub fn pycapio_teardown(a: &CallArgs, _m: ModuleRef) -> PyResult<Owned> {
    let v = a.bind(&["teardown_server"], 0)?;
    let teardown = v[0].map(convert::truthy).transpose()?.unwrap_or(false);
    if let Some(c) = state::take() {
        allow_threads(|_| c.exit(teardown))?;
    }
    Ok(Owned::none())
}

pub fn pycapio_get_capio_dir(a: &CallArgs, _m: ModuleRef) -> PyResult<Owned> {
    a.bind(&[], 0)?;
    convert::pathlib_path(client()?.capio_dir())
}

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
/// else keeps open(2)'s meaning (the `os.open` proxy keeps the kernel's rule in every case).
fn seed_access(flags: i32) -> i32 {
    if flags & libc::O_CREAT != 0 && flags & libc::O_ACCMODE == libc::O_RDONLY {
        (flags & !libc::O_ACCMODE) | libc::O_RDWR
    } else {
        flags
    }
}

/// `open` for the Python layer's common case: resolve and open in one call. `None` when the
/// path is not CAPIO's (outside the CAPIO directory, excluded, or not initialised), so the caller
/// hands it to the OS; errors of a CAPIO path raise as `pycapio_open`'s do.
pub fn open_path(a: &CallArgs, _m: ModuleRef) -> PyResult<Owned> {
    let v = a.bind(&["path", "flags"], 2)?;
    let path = convert::path(v[0].expect("required"), "path")?;
    let flags = convert::i64(v[1].expect("required"), "flags")?;
    let flags = i32::try_from(flags).map_err(|_| Error::Overflow("flags out of range".into()))?;
    let Ok(c) = state::current() else {
        return Ok(Owned::none());
    };
    match allow_threads(|intr| c.open(&path, flags, 0o666, intr)) {
        Ok(fd) => Ok(convert::int(i64::from(fd))?),
        Err(ClientError::OutsideCapioDir { .. }) => Ok(Owned::none()),
        Err(e) => Err(e.into()),
    }
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

pub fn is_initialized(a: &CallArgs, _m: ModuleRef) -> PyResult<Owned> {
    a.bind(&[], 0)?;
    Ok(convert::bool(state::peek().is_some())?)
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

pub fn read(a: &CallArgs, _m: ModuleRef) -> PyResult<Owned> {
    let v = a.bind(&["fd", "buffer", "offset"], 2)?;
    let fd = fd_arg(v[0])?;
    let mut buf = Buffer::get(v[1].expect("required"), true)?;
    let offset = offset_arg(v[2])?;
    let c = client()?;
    let slice = buf.as_mut_slice();
    let n = allow_threads(|intr| c.read(fd, slice, offset, intr))?;
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
/// for the commit per the fire rule); otherwise it returns what is readable, like `_read`.
pub fn read_bytes(a: &CallArgs, _m: ModuleRef) -> PyResult<Owned> {
    let v = a.bind(&["fd", "size", "offset"], 1)?;
    let fd = fd_arg(v[0])?;
    let size = size_arg(v[1])?;
    let offset = offset_arg(v[2])?;
    let c = client()?;
    if size == Some(0) {
        c.readable(fd, offset, Some(0), &mut || true)?; // the fd checks only: no wait
        return Ok(NewBytes::new(0)?.finish(0)?);
    }
    let want = if size.is_some() { Some(1) } else { None };
    let (off, end) = allow_threads(|intr| c.readable(fd, offset, want, intr))?;
    let mut n = end.saturating_sub(off);
    if let Some(s) = size {
        n = n.min(s);
    }
    let n = usize::try_from(n).map_err(|_| Error::Overflow("read length is too large".into()))?;
    let mut out = NewBytes::new(n)?;
    let slice = out.as_mut_slice();
    let got = if n == 0 {
        0
    } else {
        allow_threads(|intr| c.read(fd, slice, offset, intr))?
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
    let (_, end) = allow_threads(|intr| c.readable(fd, offset, size, intr))?;
    Ok(convert::int(end as i64)?)
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

pub fn is_capio_fd(a: &CallArgs, _m: ModuleRef) -> PyResult<Owned> {
    let v = a.bind(&["fd"], 1)?;
    let fd = fd_arg(v[0])?;
    Ok(convert::bool(
        state::peek().is_some_and(|c| c.is_capio_fd(fd)),
    )?)
}

pub fn fstat(a: &CallArgs, _m: ModuleRef) -> PyResult<Owned> {
    let v = a.bind(&["fd"], 1)?;
    let fd = fd_arg(v[0])?;
    stat_tuple(client()?.fstat(fd)?)
}

pub fn fstat_ex(a: &CallArgs, _m: ModuleRef) -> PyResult<Owned> {
    let v = a.bind(&["fd"], 1)?;
    let fd = fd_arg(v[0])?;
    stat_ex_tuple(client()?.fstat(fd)?)
}

pub fn stat_ex(a: &CallArgs, _m: ModuleRef) -> PyResult<Owned> {
    let v = a.bind(&["path", "follow_symlinks"], 1)?;
    let path = convert::path(v[0].expect("required"), "path")?;
    let follow = v[1].map_or(Ok(true), convert::truthy)?;
    stat_ex_tuple(client()?.stat_at(&path, follow)?)
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

pub fn fd_path(a: &CallArgs, _m: ModuleRef) -> PyResult<Owned> {
    let v = a.bind(&["fd"], 1)?;
    let fd = fd_arg(v[0])?;
    Ok(convert::path_str(&client()?.fd_path(fd)?)?)
}

pub fn stat(a: &CallArgs, _m: ModuleRef) -> PyResult<Owned> {
    let v = a.bind(&["path"], 1)?;
    let path = convert::path(v[0].expect("required"), "path")?;
    stat_tuple(client()?.stat(&path)?)
}

fn entries_list(entries: Vec<capio_client::DirEntry>) -> PyResult<Owned> {
    let mut items = Vec::with_capacity(entries.len());
    for (name, kind) in entries {
        items.push(convert::tuple(vec![
            convert::fs_str(&name)?,
            convert::int(i64::from(u32::from(kind)))?,
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

pub fn rename(a: &CallArgs, _m: ModuleRef) -> PyResult<Owned> {
    let v = a.bind(&["src", "dst"], 2)?;
    let src = convert::path(v[0].expect("required"), "src")?;
    let dst = convert::path(v[1].expect("required"), "dst")?;
    let c = client()?;
    // Persisting a committed file under its new name may copy it: no GIL meanwhile.
    allow_threads(|_| c.rename(&src, &dst))?;
    Ok(Owned::none())
}

pub fn rmdir(a: &CallArgs, _m: ModuleRef) -> PyResult<Owned> {
    let v = a.bind(&["path"], 1)?;
    let path = convert::path(v[0].expect("required"), "path")?;
    let c = client()?;
    allow_threads(|_| c.rmdir(&path))?;
    Ok(Owned::none())
}

/// End the process by `signum` with its default action (from any thread); never returns.
pub fn die_by_signal(a: &CallArgs, _m: ModuleRef) -> PyResult<Owned> {
    let v = a.bind(&["signum"], 1)?;
    let signum = convert::i64(v[0].expect("required"), "signum")?;
    match i32::try_from(signum) {
        Ok(s) if (1..=64).contains(&s) && s != libc::SIGKILL && s != libc::SIGSTOP => {
            crate::py::process::die_by_signal(s)
        }
        _ => value_error(format!("signal number out of range: {signum}")),
    }
}

/// Start (reading the umask at the next create) or stop tracking the umask for creates; see
/// `capio_proto::sys::current_umask`.
pub fn track_umask(a: &CallArgs, _m: ModuleRef) -> PyResult<Owned> {
    let v = a.bind(&["on"], 1)?;
    let on = convert::truthy(v[0].expect("required"))?;
    capio_proto::sys::track_umask(if on { Tracking::Start } else { Tracking::Off });
    Ok(Owned::none())
}

/// The umask was just set to `mask` (by the `os.umask` proxy, while tracked).
pub fn umask_changed(a: &CallArgs, _m: ModuleRef) -> PyResult<Owned> {
    let v = a.bind(&["mask"], 1)?;
    let mask = convert::i64(v[0].expect("required"), "mask")?;
    let mask =
        u32::try_from(mask).map_err(|_| Error::Value(format!("mask out of range: {mask}")))?;
    capio_proto::sys::track_umask(Tracking::Changed(mask));
    Ok(Owned::none())
}

pub fn after_fork_in_child(a: &CallArgs, _m: ModuleRef) -> PyResult<Owned> {
    a.bind(&[], 0)?;
    state::after_fork_in_child();
    Ok(Owned::none())
}

/// Check a CAPIO-CL file and describe the rule each path gets: `pycapio validate`.
pub fn validate_config(a: &CallArgs, _m: ModuleRef) -> PyResult<Owned> {
    let v = a.bind(&["file", "capio_dir", "paths"], 1)?;
    let file = convert::path(v[0].expect("required"), "file")?;
    let cwd = std::env::current_dir().map_err(|e| ClientError::from_io(e, None::<PathBuf>))?;
    let dir = v[1]
        .map(|o| convert::path(o, "capio_dir"))
        .transpose()?
        .unwrap_or_else(|| ".".into());
    let dir = capio_client::paths::normalize(&dir, &cwd);
    let rules = capio_cl::load(&file, &dir).map_err(|e| Error::Value(e.to_string()))?;
    let mut out = format!(
        "{}: valid CAPIO-CL for workflow '{}'\n",
        file.display(),
        rules.workflow_name()
    );
    for warning in rules.warnings() {
        out.push_str(&format!("warning: {warning}\n"));
    }
    if let Some(paths) = v[2] {
        for p in convert::iterate(paths)? {
            // Relative paths name files in the CAPIO directory, as they do in the file itself.
            let p = capio_client::paths::normalize(&convert::path(p.borrow(), "paths")?, &dir);
            out.push('\n');
            out.push_str(rules.describe(&p).trim_end());
            out.push('\n');
        }
    }
    Ok(convert::str(&out)?)
}

/// `_builtin_proxy(impl, name, doc, self, module)`: see `py::proxy::make`.
pub fn builtin_proxy(a: &CallArgs, _m: ModuleRef) -> PyResult<Owned> {
    let v = a.bind(&["impl", "name", "doc", "self", "module"], 5)?;
    let (Some(imp), Some(name), Some(doc), Some(module_self), Some(module)) =
        (v[0], v[1], v[2], v[3], v[4])
    else {
        return value_error("_builtin_proxy() needs all of its arguments");
    };
    let name = convert::string(name, "name")?;
    let doc = if doc.is_none() {
        None
    } else {
        Some(convert::string(doc, "doc")?)
    };
    crate::py::proxy::make(imp, &name, doc.as_deref(), module_self, module)
}
