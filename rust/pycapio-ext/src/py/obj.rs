//! Owned and borrowed references to Python objects.

use pyo3_ffi as ffi;
use std::ptr::NonNull;

/// A strong reference; `Drop` releases it.
pub struct Owned(NonNull<ffi::PyObject>);

impl Owned {
    /// Take ownership of a new reference; NULL (a failed C-API call) becomes the pending exception.
    pub fn from_new(p: *mut ffi::PyObject) -> Result<Owned, super::err::PyErrSet> {
        NonNull::new(p).map(Owned).ok_or(super::err::PyErrSet)
    }

    /// Take a new strong reference to a borrowed object.
    pub fn from_borrowed(b: Borrowed) -> Owned {
        // SAFETY: `b` is a live object (borrowed references are only made from live ones).
        unsafe { ffi::Py_IncRef(b.as_ptr()) };
        Owned(b.0)
    }

    pub fn none() -> Owned {
        // SAFETY: Py_None is the immortal None singleton.
        Owned::from_borrowed(Borrowed(unsafe { NonNull::new_unchecked(ffi::Py_None()) }))
    }

    pub fn as_ptr(&self) -> *mut ffi::PyObject {
        self.0.as_ptr()
    }

    pub fn borrow(&self) -> Borrowed {
        Borrowed(self.0)
    }

    /// Hand the reference to the caller (e.g. as a function's return value).
    pub fn into_raw(self) -> *mut ffi::PyObject {
        let p = self.0.as_ptr();
        std::mem::forget(self);
        p
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        // SAFETY: we own one strong reference and the GIL is held whenever an `Owned` is dropped.
        unsafe { ffi::Py_DecRef(self.0.as_ptr()) };
    }
}

/// A reference we do not own, valid for as long as its source (an argument tuple, a module).
#[derive(Clone, Copy)]
pub struct Borrowed(NonNull<ffi::PyObject>);

impl Borrowed {
    /// # Safety
    /// `p` must be NULL or point to an object that stays alive while the result is used.
    pub unsafe fn from_ptr(p: *mut ffi::PyObject) -> Option<Borrowed> {
        NonNull::new(p).map(Borrowed)
    }

    pub fn as_ptr(&self) -> *mut ffi::PyObject {
        self.0.as_ptr()
    }

    pub fn is_none(&self) -> bool {
        // SAFETY: comparing against the None singleton's address only.
        self.as_ptr() == unsafe { ffi::Py_None() }
    }
}
