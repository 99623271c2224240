//! Conversions between Python objects and Rust values.

use super::err::{Error, PyErrSet, PyResult};
use super::obj::{Borrowed, Owned};
use pyo3_ffi as ffi;
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

pub fn int(v: i64) -> Result<Owned, PyErrSet> {
    // SAFETY: plain constructor.
    Owned::from_new(unsafe { ffi::PyLong_FromLongLong(v) })
}

pub fn float(v: f64) -> Result<Owned, PyErrSet> {
    // SAFETY: plain constructor.
    Owned::from_new(unsafe { ffi::PyFloat_FromDouble(v) })
}

pub fn bool(v: bool) -> Result<Owned, PyErrSet> {
    // SAFETY: plain constructor.
    Owned::from_new(unsafe { ffi::PyBool_FromLong(i64::from(v) as _) })
}

pub fn str(s: &str) -> Result<Owned, PyErrSet> {
    // SAFETY: pointer and length describe the live UTF-8 bytes of `s`.
    Owned::from_new(unsafe {
        ffi::PyUnicode_FromStringAndSize(s.as_ptr().cast(), s.len() as ffi::Py_ssize_t)
    })
}

/// Decode file-system bytes as `os.fsdecode` does (surrogateescape).
pub fn fs_str(bytes: &[u8]) -> Result<Owned, PyErrSet> {
    // SAFETY: pointer and length describe the live bytes.
    Owned::from_new(unsafe {
        ffi::PyUnicode_DecodeFSDefaultAndSize(bytes.as_ptr().cast(), bytes.len() as ffi::Py_ssize_t)
    })
}

pub fn path_str(p: &Path) -> Result<Owned, PyErrSet> {
    fs_str(p.as_os_str().as_bytes())
}

/// Build a tuple, consuming the items.
pub fn tuple(items: Vec<Owned>) -> Result<Owned, PyErrSet> {
    // SAFETY: a new tuple of the right size; SetItem steals each reference into a fresh slot.
    unsafe {
        let t = Owned::from_new(ffi::PyTuple_New(items.len() as ffi::Py_ssize_t))?;
        for (i, item) in items.into_iter().enumerate() {
            ffi::PyTuple_SetItem(t.as_ptr(), i as ffi::Py_ssize_t, item.into_raw());
        }
        Ok(t)
    }
}

/// Build a list, consuming the items.
pub fn list(items: Vec<Owned>) -> Result<Owned, PyErrSet> {
    // SAFETY: a new list of the right size; SetItem steals each reference into a fresh slot.
    unsafe {
        let l = Owned::from_new(ffi::PyList_New(items.len() as ffi::Py_ssize_t))?;
        for (i, item) in items.into_iter().enumerate() {
            ffi::PyList_SetItem(l.as_ptr(), i as ffi::Py_ssize_t, item.into_raw());
        }
        Ok(l)
    }
}

/// The bytes of a `bytes` object (which must be one).
fn bytes_of(b: &Owned) -> Vec<u8> {
    // SAFETY: `b` is a live bytes object; AsString/Size read its immutable buffer.
    unsafe {
        let p = ffi::PyBytes_AsString(b.as_ptr());
        let n = ffi::PyBytes_Size(b.as_ptr());
        std::slice::from_raw_parts(p.cast::<u8>(), n as usize).to_vec()
    }
}

/// `str`, `bytes` or `os.PathLike` → path, as `os.fspath` + `os.fsencode` would.
pub fn path(o: Borrowed, what: &str) -> PyResult<PathBuf> {
    // SAFETY: `o` is live; FSPath returns a new reference or NULL with TypeError set.
    let fs = Owned::from_new(unsafe { ffi::PyOS_FSPath(o.as_ptr()) }).map_err(|_| {
        // SAFETY: replacing the pending TypeError with one naming the argument.
        unsafe { ffi::PyErr_Clear() };
        Error::Type(format!(
            "{what}: expected str, bytes or os.PathLike object, not {}",
            type_name(o)
        ))
    })?;
    // SAFETY: `fs` is a live str or bytes object.
    let bytes = if unsafe { ffi::PyUnicode_Check(fs.as_ptr()) } != 0 {
        // SAFETY: `fs` is a str.
        let b = Owned::from_new(unsafe { ffi::PyUnicode_EncodeFSDefault(fs.as_ptr()) })?;
        bytes_of(&b)
    } else {
        bytes_of(&fs)
    };
    if bytes.contains(&0) {
        return Err(Error::Value("embedded null byte".into()));
    }
    Ok(PathBuf::from(OsString::from_vec(bytes)))
}

pub fn string(o: Borrowed, what: &str) -> PyResult<String> {
    // SAFETY: type check on a live object.
    if unsafe { ffi::PyUnicode_Check(o.as_ptr()) } == 0 {
        return Err(Error::Type(format!(
            "{what} must be str, not {}",
            type_name(o)
        )));
    }
    let mut n: ffi::Py_ssize_t = 0;
    // SAFETY: `o` is a str; the UTF-8 buffer lives as long as `o`, and we copy it at once.
    let p = unsafe { ffi::PyUnicode_AsUTF8AndSize(o.as_ptr(), &mut n) };
    if p.is_null() {
        return Err(Error::Set);
    }
    // SAFETY: `p` points at `n` valid UTF-8 bytes.
    let bytes = unsafe { std::slice::from_raw_parts(p.cast::<u8>(), n as usize) };
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

pub fn is_int(o: Borrowed) -> bool {
    // SAFETY: type check on a live object.
    unsafe { ffi::PyLong_Check(o.as_ptr()) != 0 }
}

pub fn i64(o: Borrowed, what: &str) -> PyResult<i64> {
    // SAFETY: type check on a live object.
    if unsafe { ffi::PyLong_Check(o.as_ptr()) } == 0 {
        return Err(Error::Type(format!(
            "{what} must be an integer, not {}",
            type_name(o)
        )));
    }
    // SAFETY: `o` is an int.
    let v = unsafe { ffi::PyLong_AsLongLong(o.as_ptr()) };
    // SAFETY: checking for the overflow error AsLongLong may have set.
    if v == -1 && !unsafe { ffi::PyErr_Occurred() }.is_null() {
        return Err(Error::Set);
    }
    Ok(v)
}

pub fn f64(o: Borrowed, what: &str) -> PyResult<f64> {
    // SAFETY: `o` is live; AsDouble accepts int and float and sets TypeError otherwise.
    let v = unsafe { ffi::PyFloat_AsDouble(o.as_ptr()) };
    // SAFETY: checking for the error AsDouble may have set.
    if v == -1.0 && !unsafe { ffi::PyErr_Occurred() }.is_null() {
        // SAFETY: replace with a message naming the argument.
        unsafe { ffi::PyErr_Clear() };
        return Err(Error::Type(format!(
            "{what} must be a number, not {}",
            type_name(o)
        )));
    }
    Ok(v)
}

pub fn truthy(o: Borrowed) -> PyResult<bool> {
    // SAFETY: `o` is live.
    match unsafe { ffi::PyObject_IsTrue(o.as_ptr()) } {
        -1 => Err(Error::Set),
        v => Ok(v != 0),
    }
}

pub fn type_name(o: Borrowed) -> String {
    // SAFETY: `o` is live; the type's name is a new reference we own.
    let name = unsafe { ffi::PyType_GetName(ffi::Py_TYPE(o.as_ptr())) };
    match Owned::from_new(name) {
        Ok(n) => string(n.borrow(), "").unwrap_or_else(|_| "object".into()),
        Err(_) => {
            // SAFETY: drop the error GetName set.
            unsafe { ffi::PyErr_Clear() };
            "object".into()
        }
    }
}

/// `pathlib.Path(p)`.
pub fn pathlib_path(p: &Path) -> PyResult<Owned> {
    // SAFETY: importing a stdlib module; the name is a valid C string.
    let module = Owned::from_new(unsafe { ffi::PyImport_ImportModule(c"pathlib".as_ptr()) })?;
    // SAFETY: `module` is live; the attribute name is a valid C string.
    let class =
        Owned::from_new(unsafe { ffi::PyObject_GetAttrString(module.as_ptr(), c"Path".as_ptr()) })?;
    let arg = path_str(p)?;
    let args = tuple(vec![arg])?;
    // SAFETY: `class` is callable; `args` a live tuple.
    Ok(Owned::from_new(unsafe {
        ffi::PyObject_Call(class.as_ptr(), args.as_ptr(), std::ptr::null_mut())
    })?)
}

/// Collect the items of any iterable.
pub fn iterate(o: Borrowed) -> PyResult<Vec<Owned>> {
    // SAFETY: `o` is live; GetIter returns a new reference or NULL with TypeError set.
    let it = Owned::from_new(unsafe { ffi::PyObject_GetIter(o.as_ptr()) })?;
    let mut out = Vec::new();
    loop {
        // SAFETY: `it` is a live iterator; NULL means exhausted or an error.
        let item = unsafe { ffi::PyIter_Next(it.as_ptr()) };
        match Owned::from_new(item) {
            Ok(item) => out.push(item),
            // SAFETY: distinguishing exhaustion from an error raised by the iterator.
            Err(_) if unsafe { ffi::PyErr_Occurred() }.is_null() => return Ok(out),
            Err(e) => return Err(e.into()),
        }
    }
}
