//! Positional-or-keyword argument binding for `METH_FASTCALL | METH_KEYWORDS` functions, with the
//! built-ins' `TypeError` wording. Nothing is allocated for a call that passes no keywords beyond
//! the result vector.

use super::convert;
use super::err::{Error, PyResult};
use super::obj::Borrowed;
use pyo3_ffi as ffi;

/// Bind a vectorcall's arguments to `names` (the first `required` of them mandatory). The result
/// holds one entry per name; `None` where the caller gave nothing (the default applies).
///
/// `args` holds `nargs` positional values followed by one value per name in `kwnames` (a tuple,
/// or NULL for none), exactly as CPython passes them to the entry point.
pub fn bind(
    func: &str,
    names: &[&str],
    required: usize,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> PyResult<Vec<Option<Borrowed>>> {
    let mut out: Vec<Option<Borrowed>> = vec![None; names.len()];
    let npos = usize::try_from(nargs).unwrap_or(0);
    if npos > names.len() {
        return Err(Error::Type(format!(
            "{func}() takes at most {} argument{} ({npos} given)",
            names.len(),
            if names.len() == 1 { "" } else { "s" }
        )));
    }
    // SAFETY: CPython passes `nargs` live positional values at `args` (plus the keyword values
    // after them), valid for the whole call.
    let value = |i: usize| unsafe { Borrowed::from_ptr(*args.add(i)) };
    for (i, slot) in out.iter_mut().enumerate().take(npos) {
        *slot = value(i);
    }
    if !kwnames.is_null() {
        // SAFETY: `kwnames` is the live tuple of keyword names of this call.
        let nkw = unsafe { ffi::PyTuple_Size(kwnames) };
        for k in 0..usize::try_from(nkw).unwrap_or(0) {
            // SAFETY: `k < nkw`; the tuple keeps its items alive for the whole call.
            let key =
                unsafe { Borrowed::from_ptr(ffi::PyTuple_GetItem(kwnames, k as ffi::Py_ssize_t)) };
            let Some(key) = key else { continue };
            let name = convert::string(key, "keywords")?;
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
            out[i] = value(npos + k);
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
