//! The C API: one static, immutable function table (`capio_capi::CapiTable`, the layout of
//! `capsule/pycapio_capi.h`) behind the capsule `pycapio._pycapio.C_API`. Its functions run
//! without the GIL from any thread, on the same per-process client as the Python layer, and
//! return `-errno`; a panic becomes `-EIO` (no unwinding into C).

use crate::py::err::PyErrSet;
use crate::py::obj::Owned;
use crate::state;
use capio_capi::{CAPSULE_NAME, CapiTable, Header, KIND_DIR, KIND_FILE, Stat};
use capio_client::{Client, ClientError, FileStat};
use pyo3_ffi as ffi;
use std::ffi::{CStr, OsStr, c_char, c_int, c_uint, c_void};
use std::os::unix::ffi::OsStrExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Arc;

/// Created once; the capsule hands out a pointer to it and nobody ever writes to it.
static TABLE: CapiTable = CapiTable {
    header: Header::CURRENT,
    is_initialized,
    get_capio_dir,
    open,
    close,
    read,
    write,
    pread,
    pwrite,
    lseek,
    fstat,
    stat,
    mkdir,
    unlink,
    rename,
    listdir,
    ftruncate,
    rmdir,
};

/// The capsule `C_API` (added to the module at exec).
pub fn capsule() -> Result<Owned, PyErrSet> {
    let table = (&raw const TABLE).cast_mut().cast::<c_void>();
    // SAFETY: the pointer is to a static (never freed, never written through: consumers get a
    // `const` table); the name is a static C string; no destructor is needed.
    Owned::from_new(unsafe { ffi::PyCapsule_New(table, CAPSULE_NAME.as_ptr(), None) })
}

/// An errno (positive) for a failed call.
type Errno = c_int;
type CResult<T> = Result<T, Errno>;

/// Run a table function's body: errors become `-errno`, a panic `-EIO`.
fn guard<T: Into<i64>>(f: impl FnOnce() -> CResult<T>) -> i64 {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => v.into(),
        Ok(Err(errno)) => -i64::from(errno),
        Err(_) => -i64::from(libc::EIO),
    }
}

/// `guard` for functions that return a C `int`.
fn guard_int(f: impl FnOnce() -> CResult<c_int>) -> c_int {
    c_int::try_from(guard(f)).unwrap_or(-libc::EIO)
}

fn client() -> CResult<Arc<Client>> {
    state::current().map_err(|e| e.errno())
}

fn ok<T>(r: Result<T, ClientError>) -> CResult<T> {
    r.map_err(|e| e.errno())
}

/// A C caller never interrupts a wait: it ends on data, on a timeout or on a death.
fn never() -> bool {
    true
}

/// # Safety
/// `p` is NULL or a NUL-terminated string that outlives `'a`.
unsafe fn path_arg<'a>(p: *const c_char) -> CResult<&'a Path> {
    if p.is_null() {
        return Err(libc::EFAULT);
    }
    // SAFETY: non-NULL and NUL-terminated (caller's contract).
    let bytes = unsafe { CStr::from_ptr(p) }.to_bytes();
    if bytes.is_empty() {
        return Err(libc::ENOENT);
    }
    Ok(Path::new(OsStr::from_bytes(bytes)))
}

/// # Safety
/// `buf` is NULL or writable for `len` bytes, and not aliased for `'a`.
unsafe fn out_buf<'a>(buf: *mut c_void, len: usize) -> CResult<&'a mut [u8]> {
    if len == 0 {
        return Ok(&mut []);
    }
    if buf.is_null() {
        return Err(libc::EFAULT);
    }
    // SAFETY: non-NULL and writable for `len` bytes (caller's contract).
    Ok(unsafe { std::slice::from_raw_parts_mut(buf.cast::<u8>(), len) })
}

/// # Safety
/// `buf` is NULL or readable for `len` bytes for `'a`.
unsafe fn in_buf<'a>(buf: *const c_void, len: usize) -> CResult<&'a [u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    if buf.is_null() {
        return Err(libc::EFAULT);
    }
    // SAFETY: non-NULL and readable for `len` bytes (caller's contract).
    Ok(unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), len) })
}

fn offset_arg(off: i64) -> CResult<u64> {
    u64::try_from(off).map_err(|_| libc::EINVAL)
}

fn count(n: usize) -> CResult<i64> {
    i64::try_from(n).map_err(|_| libc::EOVERFLOW)
}

fn fill_stat(st: *mut Stat, s: FileStat) -> CResult<c_int> {
    if st.is_null() {
        return Err(libc::EFAULT);
    }
    let out = Stat {
        size: s.size,
        mtime_ns: s.mtime_ns,
        mode: s.mode & 0o7777,
        kind: if s.is_dir() { KIND_DIR } else { KIND_FILE },
        committed: u32::from(s.committed),
        reserved: [0; 3],
    };
    // SAFETY: non-NULL; the C caller passes a writable `struct pycapio_stat`.
    unsafe { st.write(out) };
    Ok(0)
}

// Every function below is a table entry: `unsafe extern "C"` with the header's contract on its
// pointers, and its whole body under `guard` so that no panic unwinds into C.

/// Whether the table's other functions can work now: in a forked child (multiprocessing) this
/// attaches again first, as any other call would, so it never reports 0 for a usable process.
unsafe extern "C" fn is_initialized() -> c_int {
    guard_int(|| Ok(c_int::from(state::current().is_ok())))
}

unsafe extern "C" fn get_capio_dir(buf: *mut c_char, len: usize) -> i64 {
    guard(|| {
        let c = client()?;
        let dir = c.capio_dir().as_os_str().as_bytes();
        if len < dir.len() + 1 {
            return Err(libc::ERANGE);
        }
        // SAFETY: the caller's buffer is writable for `len` bytes (header contract).
        let out = unsafe { out_buf(buf.cast(), len) }?;
        out[..dir.len()].copy_from_slice(dir);
        out[dir.len()] = 0;
        count(dir.len())
    })
}

unsafe extern "C" fn open(path: *const c_char, flags: c_int, mode: c_uint) -> c_int {
    guard_int(|| {
        // SAFETY: a NUL-terminated path (header contract).
        let path = unsafe { path_arg(path) }?;
        let c = client()?;
        ok(c.open(path, flags, mode & 0o7777, &mut never))
    })
}

unsafe extern "C" fn close(fd: c_int) -> c_int {
    guard_int(|| {
        ok(client()?.close(fd))?;
        Ok(0)
    })
}

fn read_impl(fd: c_int, buf: *mut c_void, len: usize, off: Option<u64>) -> CResult<i64> {
    // SAFETY: writable for `len` bytes (header contract).
    let out = unsafe { out_buf(buf, len) }?;
    let c = client()?;
    count(ok(c.read(fd, out, off, &mut never))?)
}

fn write_impl(fd: c_int, buf: *const c_void, len: usize, off: Option<u64>) -> CResult<i64> {
    // SAFETY: readable for `len` bytes (header contract).
    let data = unsafe { in_buf(buf, len) }?;
    let c = client()?;
    count(ok(c.write(fd, data, off))?)
}

unsafe extern "C" fn read(fd: c_int, buf: *mut c_void, len: usize) -> i64 {
    guard(|| read_impl(fd, buf, len, None))
}

unsafe extern "C" fn write(fd: c_int, buf: *const c_void, len: usize) -> i64 {
    guard(|| write_impl(fd, buf, len, None))
}

unsafe extern "C" fn pread(fd: c_int, buf: *mut c_void, len: usize, offset: i64) -> i64 {
    guard(|| read_impl(fd, buf, len, Some(offset_arg(offset)?)))
}

unsafe extern "C" fn pwrite(fd: c_int, buf: *const c_void, len: usize, offset: i64) -> i64 {
    guard(|| write_impl(fd, buf, len, Some(offset_arg(offset)?)))
}

unsafe extern "C" fn lseek(fd: c_int, offset: i64, whence: c_int) -> i64 {
    guard(|| {
        let pos = ok(client()?.seek(fd, offset, whence))?;
        i64::try_from(pos).map_err(|_| libc::EOVERFLOW)
    })
}

unsafe extern "C" fn ftruncate(fd: c_int, size: i64) -> c_int {
    guard_int(|| {
        ok(client()?.truncate(fd, offset_arg(size)?))?;
        Ok(0)
    })
}

unsafe extern "C" fn fstat(fd: c_int, st: *mut Stat) -> c_int {
    guard_int(|| fill_stat(st, ok(client()?.fstat(fd))?))
}

unsafe extern "C" fn stat(path: *const c_char, st: *mut Stat) -> c_int {
    guard_int(|| {
        // SAFETY: a NUL-terminated path (header contract).
        let path = unsafe { path_arg(path) }?;
        fill_stat(st, ok(client()?.stat(path))?)
    })
}

unsafe extern "C" fn mkdir(path: *const c_char, mode: c_uint) -> c_int {
    guard_int(|| {
        // SAFETY: a NUL-terminated path (header contract).
        let path = unsafe { path_arg(path) }?;
        ok(client()?.mkdir(path, mode & 0o7777))?;
        Ok(0)
    })
}

unsafe extern "C" fn unlink(path: *const c_char) -> c_int {
    guard_int(|| {
        // SAFETY: a NUL-terminated path (header contract).
        let path = unsafe { path_arg(path) }?;
        ok(client()?.unlink(path))?;
        Ok(0)
    })
}

unsafe extern "C" fn rmdir(path: *const c_char) -> c_int {
    guard_int(|| {
        // SAFETY: a NUL-terminated path (header contract).
        let path = unsafe { path_arg(path) }?;
        ok(client()?.rmdir(path))?;
        Ok(0)
    })
}

unsafe extern "C" fn rename(src: *const c_char, dst: *const c_char) -> c_int {
    guard_int(|| {
        // SAFETY: two NUL-terminated paths (header contract).
        let (src, dst) = unsafe { (path_arg(src)?, path_arg(dst)?) };
        ok(client()?.rename(src, dst))?;
        Ok(0)
    })
}

/// Entries as `name\0`, directories as `name/\0`; returns the bytes the listing needs and copies
/// it only when it fits.
unsafe extern "C" fn listdir(path: *const c_char, buf: *mut c_char, len: usize) -> i64 {
    guard(|| {
        // SAFETY: a NUL-terminated path (header contract).
        let path = unsafe { path_arg(path) }?;
        let entries: Vec<(Vec<u8>, bool)> = ok(client()?.listdir(path, &mut never))?
            .into_iter()
            .map(|(name, kind)| (name, kind.is_dir()))
            .collect();
        let need: usize = entries
            .iter()
            .map(|(name, is_dir)| name.len() + usize::from(*is_dir) + 1)
            .sum();
        if need <= len {
            // SAFETY: writable for `len` bytes (header contract).
            let out = unsafe { out_buf(buf.cast(), len) }?;
            let mut at = 0;
            for (name, is_dir) in &entries {
                out[at..at + name.len()].copy_from_slice(name);
                at += name.len();
                if *is_dir {
                    out[at] = b'/';
                    at += 1;
                }
                out[at] = 0;
                at += 1;
            }
        }
        count(need)
    })
}
