//! The FFI layer: importing the capsule through `pyo3_ffi`, and safe calls through the table's
//! function pointers (slices and `Path`s in, `io::Result` out). The only `unsafe` of the crate.

use crate::abi::{self, CapiTable, ImportError, Stat};
use pyo3_ffi as ffi;
use std::ffi::{CString, OsString, c_char, c_int};
use std::io;
use std::os::fd::RawFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::ptr::null_mut;

/// A checked handle on pycapio's function table. Cheap to copy, `Send` and `Sync`: the table is
/// immutable and lives as long as the process (pycapio's extension is never unloaded).
#[derive(Clone, Copy)]
pub struct Api(&'static CapiTable);

/// One entry of [`Api::listdir`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    pub name: OsString,
    pub is_dir: bool,
}

fn check(ret: i64) -> io::Result<i64> {
    if ret < 0 {
        let errno = i32::try_from(-ret).unwrap_or(libc::EIO);
        Err(io::Error::from_raw_os_error(errno))
    } else {
        Ok(ret)
    }
}

fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// A file offset as the C API takes it; one past `i64::MAX` is `EINVAL`, as for `lseek(2)`.
pub(crate) fn offset(off: u64) -> io::Result<i64> {
    i64::try_from(off).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// Decode a `listdir` buffer: NUL-terminated names, directories with a trailing '/'.
fn parse_listing(bytes: &[u8]) -> Vec<DirEntry> {
    bytes
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .map(|n| match n.strip_suffix(b"/") {
            Some(dir) => DirEntry {
                name: OsString::from_vec(dir.to_vec()),
                is_dir: true,
            },
            None => DirEntry {
                name: OsString::from_vec(n.to_vec()),
                is_dir: false,
            },
        })
        .collect()
}

impl Api {
    /// Import `pycapio._pycapio` and check its `C_API` capsule, like `pycapio_import_capi()` in
    /// the C header. On failure a Python `ImportError` is set (or the import's own exception is
    /// left set, for [`ImportError::Python`]) and returned as a Rust error too.
    ///
    /// # Safety
    /// The calling thread must hold the GIL.
    pub unsafe fn import() -> Result<Api, ImportError> {
        // SAFETY: the GIL is held (caller's contract); static C strings; NULL is checked.
        let module = unsafe { ffi::PyImport_ImportModule(abi::MODULE.as_ptr()) };
        if module.is_null() {
            return Err(ImportError::Python);
        }
        // SAFETY: `module` is a new reference we release right after the lookup.
        let capsule = unsafe {
            let c = ffi::PyObject_GetAttrString(module, abi::ATTR.as_ptr());
            ffi::Py_DecRef(module);
            c
        };
        if capsule.is_null() {
            // SAFETY: an exception is set; replace an AttributeError by a clear ImportError.
            unsafe {
                if ffi::PyErr_ExceptionMatches(ffi::PyExc_AttributeError) != 0 {
                    ffi::PyErr_Clear();
                    ffi::PyErr_SetString(
                        ffi::PyExc_ImportError,
                        c"pycapio C API: pycapio._pycapio has no C_API (this pycapio predates the C API: upgrade it)"
                            .as_ptr(),
                    );
                }
            }
            return Err(ImportError::Python);
        }
        // SAFETY: GIL held; `capsule` is a live new reference, released after the check (the
        // table it points to is static in pycapio's extension).
        let r = unsafe { Api::from_capsule(capsule) };
        // SAFETY: as above.
        unsafe { ffi::Py_DecRef(capsule) };
        r
    }

    /// Check a capsule object (its name, then the table's header) and return its table.
    /// On failure a Python `ImportError` is set.
    ///
    /// # Safety
    /// The GIL must be held and `capsule` must be a live object. A capsule that carries pycapio's
    /// name must point to a function table that lives for the rest of the process.
    pub unsafe fn from_capsule(capsule: *mut ffi::PyObject) -> Result<Api, ImportError> {
        // SAFETY: IsValid accepts any object (and NULL) and never fails.
        if unsafe { ffi::PyCapsule_IsValid(capsule, abi::CAPSULE_NAME.as_ptr()) } == 0 {
            return Err(raise(ImportError::NotACapsule));
        }
        // SAFETY: the capsule is valid with this name, so GetPointer succeeds (non-NULL).
        let p = unsafe { ffi::PyCapsule_GetPointer(capsule, abi::CAPSULE_NAME.as_ptr()) };
        // SAFETY: the pointer is a pycapio table per the caller's contract; checked below.
        unsafe { Api::from_table(p.cast::<CapiTable>()) }.map_err(raise)
    }

    /// Check a table's header; no Python involved.
    ///
    /// # Safety
    /// `table` must point to a readable [`abi::Header`] and, when the header checks out, to a
    /// table of `struct_size` bytes that stays valid and unchanged for the rest of the process.
    pub unsafe fn from_table(table: *const CapiTable) -> Result<Api, ImportError> {
        if table.is_null() {
            return Err(ImportError::NotACapsule);
        }
        // SAFETY: the header is readable (caller's contract); it is the table's first field.
        let header = unsafe { (*table).header };
        abi::check_header(&header)?;
        // SAFETY: magic, major version and size checked: every field this build knows is there.
        Ok(Api(unsafe { &*table }))
    }

    /// The raw table, for calls this wrapper does not cover.
    pub fn table(&self) -> &'static CapiTable {
        self.0
    }

    /// The provider's ABI `(major, minor)`.
    pub fn version(&self) -> (u16, u16) {
        (self.0.header.abi_major, self.0.header.abi_minor)
    }

    pub fn is_initialized(&self) -> bool {
        // SAFETY: a table function; no arguments.
        unsafe { (self.0.is_initialized)() != 0 }
    }

    /// The CAPIO directory (its real path).
    pub fn capio_dir(&self) -> io::Result<PathBuf> {
        let mut buf = vec![0u8; 256];
        loop {
            // SAFETY: `buf` is writable for `buf.len()` bytes.
            let r = unsafe { (self.0.get_capio_dir)(buf.as_mut_ptr().cast(), buf.len()) };
            match check(r) {
                Ok(n) => {
                    buf.truncate(n as usize);
                    return Ok(PathBuf::from(OsString::from_vec(buf)));
                }
                Err(e) if e.raw_os_error() == Some(libc::ERANGE) => buf.resize(buf.len() * 2, 0),
                Err(e) => return Err(e),
            }
        }
    }

    /// `open(2)` of a CAPIO path; returns the raw fd (see [`crate::CapioFile`] for an owning type).
    pub fn open(&self, path: &Path, flags: i32, mode: u32) -> io::Result<RawFd> {
        let p = cpath(path)?;
        // SAFETY: a NUL-terminated path that outlives the call.
        let r = unsafe { (self.0.open)(p.as_ptr(), flags, mode) };
        check(i64::from(r)).map(|fd| fd as RawFd)
    }

    pub fn close(&self, fd: RawFd) -> io::Result<()> {
        // SAFETY: any fd is accepted (-EBADF for others).
        check(i64::from(unsafe { (self.0.close)(fd) })).map(drop)
    }

    pub fn read(&self, fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: `buf` is writable for its length.
        let r = unsafe { (self.0.read)(fd, buf.as_mut_ptr().cast(), buf.len()) };
        check(r).map(|n| n as usize)
    }

    pub fn pread(&self, fd: RawFd, buf: &mut [u8], off: u64) -> io::Result<usize> {
        let off = offset(off)?;
        // SAFETY: `buf` is writable for its length.
        let r = unsafe { (self.0.pread)(fd, buf.as_mut_ptr().cast(), buf.len(), off) };
        check(r).map(|n| n as usize)
    }

    pub fn write(&self, fd: RawFd, data: &[u8]) -> io::Result<usize> {
        // SAFETY: `data` is readable for its length.
        let r = unsafe { (self.0.write)(fd, data.as_ptr().cast(), data.len()) };
        check(r).map(|n| n as usize)
    }

    pub fn pwrite(&self, fd: RawFd, data: &[u8], off: u64) -> io::Result<usize> {
        let off = offset(off)?;
        // SAFETY: `data` is readable for its length.
        let r = unsafe { (self.0.pwrite)(fd, data.as_ptr().cast(), data.len(), off) };
        check(r).map(|n| n as usize)
    }

    pub fn lseek(&self, fd: RawFd, off: i64, whence: i32) -> io::Result<u64> {
        // SAFETY: plain integers.
        check(unsafe { (self.0.lseek)(fd, off, whence) }).map(|p| p as u64)
    }

    pub fn ftruncate(&self, fd: RawFd, size: u64) -> io::Result<()> {
        let size = offset(size)?;
        // SAFETY: plain integers.
        check(i64::from(unsafe { (self.0.ftruncate)(fd, size) })).map(drop)
    }

    pub fn fstat(&self, fd: RawFd) -> io::Result<Stat> {
        let mut st = Stat::default();
        // SAFETY: `st` is a writable `struct pycapio_stat`.
        check(i64::from(unsafe { (self.0.fstat)(fd, &mut st) }))?;
        Ok(st)
    }

    /// Never waits: a path not created yet is `NotFound`.
    pub fn stat(&self, path: &Path) -> io::Result<Stat> {
        let p = cpath(path)?;
        let mut st = Stat::default();
        // SAFETY: a NUL-terminated path and a writable `struct pycapio_stat`.
        check(i64::from(unsafe { (self.0.stat)(p.as_ptr(), &mut st) }))?;
        Ok(st)
    }

    pub fn mkdir(&self, path: &Path, mode: u32) -> io::Result<()> {
        let p = cpath(path)?;
        // SAFETY: a NUL-terminated path.
        check(i64::from(unsafe { (self.0.mkdir)(p.as_ptr(), mode) })).map(drop)
    }

    pub fn unlink(&self, path: &Path) -> io::Result<()> {
        self.path_call(self.0.unlink, path)
    }

    pub fn rmdir(&self, path: &Path) -> io::Result<()> {
        self.path_call(self.0.rmdir, path)
    }

    fn path_call(
        &self,
        f: unsafe extern "C" fn(*const c_char) -> c_int,
        path: &Path,
    ) -> io::Result<()> {
        let p = cpath(path)?;
        // SAFETY: a table function taking one NUL-terminated path.
        check(i64::from(unsafe { f(p.as_ptr()) })).map(drop)
    }

    pub fn rename(&self, src: &Path, dst: &Path) -> io::Result<()> {
        let (s, d) = (cpath(src)?, cpath(dst)?);
        // SAFETY: two NUL-terminated paths.
        check(i64::from(unsafe {
            (self.0.rename)(s.as_ptr(), d.as_ptr())
        }))
        .map(drop)
    }

    /// The entries of a CAPIO directory once it is complete (waits per CAPIO-CL).
    pub fn listdir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        let p = cpath(path)?;
        // SAFETY: sizing call: a NULL buffer of length 0 is never written.
        let mut need = check(unsafe { (self.0.listdir)(p.as_ptr(), null_mut(), 0) })?;
        loop {
            let mut buf = vec![0u8; need as usize];
            // SAFETY: `buf` is writable for its length.
            let r =
                check(unsafe { (self.0.listdir)(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) })?;
            if r <= need {
                buf.truncate(r as usize);
                return Ok(parse_listing(&buf));
            }
            need = r; // it grew in between
        }
    }
}

/// Set the Python `ImportError` for a check that failed (the GIL is held by our callers).
fn raise(e: ImportError) -> ImportError {
    let msg = CString::new(e.to_string()).unwrap_or_default();
    // SAFETY: GIL held (callers' contract); static exception type; `msg` is copied.
    unsafe { ffi::PyErr_SetString(ffi::PyExc_ImportError, msg.as_ptr()) };
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_decode_names_and_directories() {
        let got = parse_listing(b"a.dat\0sub/\0with space\0");
        let names: Vec<_> = got
            .iter()
            .map(|e| (e.name.to_str().unwrap(), e.is_dir))
            .collect();
        assert_eq!(
            names,
            [("a.dat", false), ("sub", true), ("with space", false)]
        );
        assert!(parse_listing(b"").is_empty());
    }

    #[test]
    fn a_null_table_is_refused() {
        // SAFETY: NULL is checked before any read.
        assert!(unsafe { Api::from_table(std::ptr::null()) }.is_err());
    }
}
