//! Positional-or-keyword argument binding for `METH_VARARGS | METH_KEYWORDS` functions, with the
//! built-ins' `TypeError` wording.

use super::convert;
use super::err::{Error, PyResult};
use super::obj::Borrowed;
use pyo3_ffi as ffi;

/// Bind `args`/`kwargs` to `names` (the first `required` of them mandatory). The result holds one
/// entry per name; `None` where the caller gave nothing (the default applies).
///
/// `args` and `kwargs` must be the (live) tuple and dict CPython passed to the entry point.
pub fn bind(
    func: &str,
    names: &[&str],
    required: usize,
    args: *mut ffi::PyObject,
    kwargs: *mut ffi::PyObject,
) -> PyResult<Vec<Option<Borrowed>>> {
    let mut out: Vec<Option<Borrowed>> = vec![None; names.len()];
    let npos = if args.is_null() {
        0
    } else {
        // SAFETY: `args` is the live argument tuple of the current call.
        (unsafe { ffi::PyTuple_Size(args) }) as usize
    };
    if npos > names.len() {
        return Err(Error::Type(format!(
            "{func}() takes at most {} argument{} ({npos} given)",
            names.len(),
            if names.len() == 1 { "" } else { "s" }
        )));
    }
    for (i, slot) in out.iter_mut().enumerate().take(npos) {
        // SAFETY: `i < npos`; the tuple keeps the item alive for the whole call.
        *slot = unsafe { Borrowed::from_ptr(ffi::PyTuple_GetItem(args, i as ffi::Py_ssize_t)) };
    }
    if !kwargs.is_null() {
        let mut pos: ffi::Py_ssize_t = 0;
        let mut key = std::ptr::null_mut();
        let mut value = std::ptr::null_mut();
        // SAFETY: iterating the live kwargs dict with valid out-parameters; items are borrowed
        // from the dict, which lives for the whole call.
        while unsafe { ffi::PyDict_Next(kwargs, &mut pos, &mut key, &mut value) } != 0 {
            // SAFETY: dict keys and values are live while the dict is.
            let (k, v) = unsafe { (Borrowed::from_ptr(key), Borrowed::from_ptr(value)) };
            let (Some(k), Some(v)) = (k, v) else { continue };
            let name = convert::string(k, "keywords")?;
            let Some(i) = names.iter().position(|n| *n == name) else {
                return Err(Error::Type(format!(
                    "{func}() got an unexpected keyword argument '{name}'"
                )));
            };
            if out[i].is_some() {
                return Err(Error::Type(format!(
                    "argument for {func}() given by name ('{name}') and position ({})",
                    i + 1
                )));
            }
            out[i] = Some(v);
        }
    }
    for (i, name) in names.iter().enumerate().take(required) {
        if out[i].is_none() {
            return Err(Error::Type(format!(
                "{func}() missing required argument '{name}' (pos {})",
                i + 1
            )));
        }
    }
    Ok(out)
}
