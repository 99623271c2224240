//! The buffer protocol: a `Py_buffer` that is released on drop.

use super::err::{PyErrSet, PyResult};
use super::obj::{Borrowed, Owned};
use pyo3_ffi as ffi;

pub struct Buffer {
    view: Box<ffi::Py_buffer>,
}

impl Buffer {
    /// A contiguous view of `o`; `writable` asks for a buffer we may fill.
    pub fn get(o: Borrowed, writable: bool) -> PyResult<Buffer> {
        let mut view = Box::new(ffi::Py_buffer::new());
        let flags = if writable {
            ffi::PyBUF_WRITABLE
        } else {
            ffi::PyBUF_SIMPLE
        };
        // SAFETY: `o` is live; `view` is a valid out-parameter that stays at a fixed address.
        if unsafe { ffi::PyObject_GetBuffer(o.as_ptr(), &mut *view, flags) } != 0 {
            return Err(PyErrSet.into());
        }
        Ok(Buffer { view })
    }

    pub fn len(&self) -> usize {
        self.view.len as usize
    }

    /// The bytes. The exporter keeps them alive and unmoved until the view is released, so they
    /// may be used with the GIL released.
    pub fn as_slice(&self) -> &[u8] {
        if self.len() == 0 {
            return &[];
        }
        // SAFETY: a SIMPLE/WRITABLE view is one contiguous block of `len` bytes at `buf`.
        unsafe { std::slice::from_raw_parts(self.view.buf.cast::<u8>(), self.len()) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        if self.len() == 0 {
            return &mut [];
        }
        // SAFETY: as in `as_slice`; the view was requested writable and we hold it exclusively.
        unsafe { std::slice::from_raw_parts_mut(self.view.buf.cast::<u8>(), self.len()) }
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        // SAFETY: the view was filled by a successful GetBuffer; the GIL is held when dropped.
        unsafe { ffi::PyBuffer_Release(&mut *self.view) };
    }
}

/// A new `bytes` object that is filled in place before anyone else sees it: a read straight into
/// the result, with no intermediate buffer to copy out of.
pub struct NewBytes {
    obj: Owned,
    len: usize,
}

impl NewBytes {
    /// A `bytes` of `len` zero bytes, to be filled.
    pub fn new(len: usize) -> Result<NewBytes, PyErrSet> {
        let n = ffi::Py_ssize_t::try_from(len).map_err(|_| {
            // SAFETY: setting a MemoryError, as CPython does for an impossible size.
            unsafe { ffi::PyErr_NoMemory() };
            PyErrSet
        })?;
        // SAFETY: a NULL source asks CPython for an uninitialised buffer of `n` bytes.
        let obj = Owned::from_new(unsafe { ffi::PyBytes_FromStringAndSize(std::ptr::null(), n) })?;
        if len > 0 {
            // SAFETY: the fresh object's buffer holds `len` bytes; zeroing them makes every later
            // slice over it initialised, as `from_raw_parts_mut` requires.
            unsafe { std::ptr::write_bytes(ffi::PyBytes_AsString(obj.as_ptr()), 0, len) };
        }
        Ok(NewBytes { obj, len })
    }

    /// The buffer to fill; usable without the GIL (the object is not shared yet and CPython never
    /// moves an object's storage).
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        if self.len == 0 {
            return &mut [];
        }
        // SAFETY: a fresh, zeroed bytes object of `len` bytes that only we reference; writing
        // into it before it escapes is how CPython itself builds bytes.
        unsafe {
            let p = ffi::PyBytes_AsString(self.obj.as_ptr());
            std::slice::from_raw_parts_mut(p.cast::<u8>(), self.len)
        }
    }

    /// The object holding the first `filled` bytes: itself when it was filled completely, else a
    /// copy of the prefix (a file that shrank while it was read).
    pub fn finish(mut self, filled: usize) -> Result<Owned, PyErrSet> {
        if filled >= self.len {
            return Ok(self.obj);
        }
        let prefix = &self.as_mut_slice()[..filled];
        // SAFETY: pointer and length describe the live prefix; CPython copies it.
        Owned::from_new(unsafe {
            ffi::PyBytes_FromStringAndSize(prefix.as_ptr().cast(), filled as ffi::Py_ssize_t)
        })
    }
}
