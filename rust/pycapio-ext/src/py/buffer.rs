//! The buffer protocol: a `Py_buffer` that is released on drop.

use super::err::{PyErrSet, PyResult};
use super::obj::Borrowed;
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
