//! Built-in function objects that stand in for built-in functions (`os.unlink`, `open`, ...).
//!
//! A Python function stored as a class attribute binds as a method (`A().unlink(p)` passes the
//! instance); a built-in function does not. So each proxy is a real `builtin_function_or_method`
//! with the original's name, `__self__` (its module), `__module__`, docstring and text signature,
//! whose C function forwards the call unchanged (vectorcall) to the Python implementation.
//!
//! A C function receives only `self` (the original's module), so which implementation to call
//! is told apart by the C function itself: one monomorphised trampoline per slot, each reading
//! its own slot. Slots, method definitions and strings live for the whole process (CPython keeps
//! pointers to a `PyMethodDef` in every function object made from it).

use super::err::{Error, PyResult};
use super::obj::{Borrowed, Owned};
use pyo3_ffi as ffi;
use std::ffi::CString;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

/// More than the proxies pycapio installs (about fifty), with room to spare.
const SLOTS: usize = 96;

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: AtomicPtr<ffi::PyObject> = AtomicPtr::new(null_mut());
/// The Python implementation each trampoline forwards to (one strong reference, never released).
static IMPLS: [AtomicPtr<ffi::PyObject>; SLOTS] = [EMPTY; SLOTS];
static USED: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" {
    // Exported by CPython from 3.11 on (part of the stable ABI from 3.12); pyo3-ffi declares it
    // only for non-abi3 or 3.12 builds.
    fn PyObject_Vectorcall(
        callable: *mut ffi::PyObject,
        args: *const *mut ffi::PyObject,
        nargsf: usize,
        kwnames: *mut ffi::PyObject,
    ) -> *mut ffi::PyObject;
}

/// `METH_FASTCALL | METH_KEYWORDS` entry of slot `I`: the arguments go on as they came. Nothing
/// here can panic (a const index into a fixed array, an atomic load and a C call).
unsafe extern "C" fn forward<const I: usize>(
    _module: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let imp = IMPLS[I].load(Ordering::Acquire);
    // SAFETY: the slot was filled (with a live, never released object) before the function
    // object that leads here was created; args/nargs/kwnames are CPython's vectorcall arguments.
    unsafe { PyObject_Vectorcall(imp, args, nargs as usize, kwnames) }
}

macro_rules! trampolines {
    ($($i:literal)*) => {
        [$(forward::<$i> as ffi::PyCFunctionFastWithKeywords),*]
    };
}

static TRAMPOLINES: [ffi::PyCFunctionFastWithKeywords; SLOTS] = trampolines!(
    0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31
    32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63
    64 65 66 67 68 69 70 71 72 73 74 75 76 77 78 79 80 81 82 83 84 85 86 87 88 89 90 91 92 93 94 95
);

fn leak_cstring(s: &str, what: &str) -> PyResult<*const std::ffi::c_char> {
    let c =
        CString::new(s).map_err(|_| Error::Value(format!("{what} contains a NUL character")))?;
    Ok(Box::leak(c.into_boxed_c_str()).as_ptr())
}

/// A built-in function named `name` (docstring `doc`, which may start with CPython's
/// `name(signature)\n--\n\n` header), bound to `module_self`, reporting `module` as its
/// `__module__`, that calls `imp` with its arguments.
pub fn make(
    imp: Borrowed,
    name: &str,
    doc: Option<&str>,
    module_self: Borrowed,
    module: Borrowed,
) -> PyResult<Owned> {
    let slot = USED
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < SLOTS).then_some(n + 1)
        })
        .map_err(|_| Error::Value(format!("no proxy slot left ({SLOTS} in use)")))?;
    let ml_name = leak_cstring(name, "name")?;
    let ml_doc = match doc {
        Some(d) => leak_cstring(d, "doc")?,
        None => std::ptr::null(),
    };
    let def = Box::leak(Box::new(ffi::PyMethodDef {
        ml_name,
        ml_meth: ffi::PyMethodDefPointer {
            PyCFunctionFastWithKeywords: TRAMPOLINES[slot],
        },
        ml_flags: ffi::METH_FASTCALL | ffi::METH_KEYWORDS,
        ml_doc,
    }));
    // The slot keeps its reference for the life of the process, as the function objects may.
    IMPLS[slot].store(Owned::from_borrowed(imp).into_raw(), Ordering::Release);
    let self_ptr = if module_self.is_none() {
        null_mut()
    } else {
        module_self.as_ptr()
    };
    // SAFETY: `def` is leaked (outlives every function object); self and module are live objects
    // (NewEx takes its own references); a NULL result is the pending exception.
    Ok(Owned::from_new(unsafe {
        ffi::PyCFunction_NewEx(def, self_ptr, module.as_ptr())
    })?)
}
