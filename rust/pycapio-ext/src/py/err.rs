//! Errors at the Python edge: one enum for everything an entry point can fail with, and the one
//! function that turns it into a raised Python exception (all user-visible texts come from the
//! `Display` of `ClientError` or from here).

use super::obj::Owned;
use capio_client::ClientError;
use pyo3_ffi as ffi;
use std::ffi::CString;

/// Marker: a Python exception is already set (a C-API call failed).
#[derive(Debug)]
pub struct PyErrSet;

pub enum Error {
    Set,
    Client(ClientError),
    Type(String),
    Value(String),
    Overflow(String),
    /// A bug in pycapio itself (a panic caught at the edge).
    System(String),
}

impl From<PyErrSet> for Error {
    fn from(_: PyErrSet) -> Error {
        Error::Set
    }
}

impl From<ClientError> for Error {
    fn from(e: ClientError) -> Error {
        match e {
            ClientError::Interrupted => Error::Set,
            e => Error::Client(e),
        }
    }
}

pub type PyResult<T> = Result<T, Error>;

fn set_string(exc: *mut ffi::PyObject, msg: &str) {
    let msg = CString::new(msg.replace('\0', "\\0")).unwrap_or_default();
    // SAFETY: `exc` is an exception type; `msg` is a valid C string for the call.
    unsafe { ffi::PyErr_SetString(exc, msg.as_ptr()) };
}

/// Raise `err`. `capio_exc` is the module's `PyCAPIOException` type.
pub fn raise(err: Error, capio_exc: *mut ffi::PyObject) {
    match err {
        Error::Set => {}
        // SAFETY: reading the static exception type objects.
        Error::Type(m) => set_string(unsafe { ffi::PyExc_TypeError }, &m),
        // SAFETY: as above.
        Error::Value(m) => set_string(unsafe { ffi::PyExc_ValueError }, &m),
        // SAFETY: as above.
        Error::Overflow(m) => set_string(unsafe { ffi::PyExc_OverflowError }, &m),
        // SAFETY: as above.
        Error::System(m) => set_string(unsafe { ffi::PyExc_SystemError }, &m),
        Error::Client(e) if e.is_os_level() => raise_os_error(e.errno(), &e),
        Error::Client(e) => raise_runtime_error(capio_exc, &e),
    }
}

/// `PyCAPIOException(message)` whose `errno` is the one the C API returns for the same error; the
/// message stays the whole text (an `OSError` built from two arguments would prefix `[Errno N]`).
fn raise_runtime_error(capio_exc: *mut ffi::PyObject, e: &ClientError) {
    set_string(capio_exc, &e.to_string());
    let Ok(code) = super::convert::int(i64::from(e.errno())) else {
        return;
    };
    let (mut kind, mut value, mut tb) = (
        std::ptr::null_mut(),
        std::ptr::null_mut(),
        std::ptr::null_mut(),
    );
    // SAFETY: an exception was just set; Fetch/Normalize/Restore hand its references over and back.
    unsafe {
        ffi::PyErr_Fetch(&mut kind, &mut value, &mut tb);
        ffi::PyErr_NormalizeException(&mut kind, &mut value, &mut tb);
        if !value.is_null() {
            // A failure here leaves `errno` None, which is no worse than before: ignore it.
            if ffi::PyObject_SetAttrString(value, c"errno".as_ptr(), code.as_ptr()) != 0 {
                ffi::PyErr_Clear();
            }
        }
        ffi::PyErr_Restore(kind, value, tb);
    }
}

/// `OSError(errno, strerror, filename)`: CPython picks the subclass (FileNotFoundError, ...).
fn raise_os_error(errno: i32, e: &ClientError) {
    let strerror = match e {
        ClientError::Os { .. } => std::io::Error::from_raw_os_error(errno)
            .to_string()
            .split(" (os error")
            .next()
            .unwrap_or_default()
            .to_owned(),
        other => other.to_string(),
    };
    let args = (|| -> Result<Owned, PyErrSet> {
        let code = super::convert::int(i64::from(errno))?;
        let text = super::convert::str(&strerror)?;
        let items = match e.path() {
            Some(p) => vec![code, text, super::convert::path_str(p)?],
            None => vec![code, text],
        };
        super::convert::tuple(items)
    })();
    let Ok(args) = args else { return };
    // SAFETY: PyExc_OSError is a static type; `args` is a live tuple.
    let exc =
        unsafe { ffi::PyObject_Call(ffi::PyExc_OSError, args.as_ptr(), std::ptr::null_mut()) };
    let Ok(exc) = Owned::from_new(exc) else {
        return;
    };
    // SAFETY: `exc` is a live exception instance; SetObject takes its own references.
    unsafe { ffi::PyErr_SetObject(ffi::Py_TYPE(exc.as_ptr()).cast(), exc.as_ptr()) };
}
