//! The module object: multi-phase initialisation, module state (the `PyCAPIOException` type), the
//! method table and the wrapper every entry point runs in (no panic crosses into CPython).

use super::convert;
use super::err::{self, Error, PyErrSet, PyResult};
use super::obj::Owned;
use pyo3_ffi as ffi;
use std::ffi::{CStr, c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::null_mut;

/// What the module keeps per instance (never in a static): strong references, each released by
/// `clear`.
#[repr(C)]
struct State {
    capio_exc: *mut ffi::PyObject,
    /// `os.stat_result`, which the stat functions return.
    stat_result: *mut ffi::PyObject,
    /// Its number of fields, when it is a struct sequence this module may fill in place (as
    /// `os.stat` does); 0 otherwise (it is then called with a tuple).
    stat_fields: usize,
}

impl State {
    fn refs(&mut self) -> [&mut *mut ffi::PyObject; 2] {
        [&mut self.capio_exc, &mut self.stat_result]
    }
}

/// The field count of `cls` if it is a struct sequence type (a tuple subclass with `n_fields`),
/// else 0.
fn struct_sequence_fields(cls: &Owned) -> usize {
    // SAFETY: `cls` is a live object; the checks only read it.
    unsafe {
        if ffi::PyType_Check(cls.as_ptr()) == 0
            || ffi::PyType_IsSubtype(
                cls.as_ptr().cast(),
                std::ptr::addr_of_mut!(ffi::PyTuple_Type),
            ) == 0
        {
            return 0;
        }
        let Ok(n) = Owned::from_new(ffi::PyObject_GetAttrString(
            cls.as_ptr(),
            c"n_fields".as_ptr(),
        )) else {
            ffi::PyErr_Clear();
            return 0;
        };
        usize::try_from(ffi::PyLong_AsSsize_t(n.as_ptr())).unwrap_or_else(|_| {
            ffi::PyErr_Clear();
            0
        })
    }
}

/// The arguments of one `METH_FASTCALL | METH_KEYWORDS` call, and the name of the function called
/// (from the method table, for error messages).
pub struct CallArgs {
    name: &'static CStr,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
}

impl CallArgs {
    /// Bind the arguments to parameter `names`, the first `required` of them mandatory.
    pub fn bind(
        &self,
        names: &[&str],
        required: usize,
    ) -> PyResult<Vec<Option<super::obj::Borrowed>>> {
        let func = self.name.to_str().unwrap_or("function");
        super::args::bind(func, names, required, self.args, self.nargs, self.kwnames)
    }
}

pub type Impl = fn(&CallArgs, ModuleRef) -> PyResult<Owned>;

/// The module an entry point was called on.
#[derive(Clone, Copy)]
pub struct ModuleRef(*mut ffi::PyObject);

impl ModuleRef {
    fn state(&self) -> *mut State {
        // SAFETY: `self.0` is our module (CPython passes it as `self`), whose state is a `State`.
        unsafe { ffi::PyModule_GetState(self.0).cast::<State>() }
    }

    fn capio_exc(&self) -> *mut ffi::PyObject {
        let st = self.state();
        if st.is_null() {
            // SAFETY: static exception type.
            return unsafe { ffi::PyExc_OSError };
        }
        // SAFETY: the state was initialised by `exec`.
        unsafe { (*st).capio_exc }
    }

    /// `os.stat_result(fields)`.
    pub fn stat_result(&self, fields: Vec<Owned>) -> PyResult<Owned> {
        let st = self.state();
        let (cls, n) = if st.is_null() {
            (null_mut(), 0)
        } else {
            // SAFETY: the state was initialised by `exec` (the type is set before any call runs).
            unsafe { ((*st).stat_result, (*st).stat_fields) }
        };
        if cls.is_null() {
            return Err(Error::System("pycapio: module state is gone".into()));
        }
        if n == fields.len() {
            // SAFETY: `cls` is a struct sequence type of `n` fields (checked at `exec`); each
            // SetItem steals one new reference into a fresh field.
            unsafe {
                let obj = Owned::from_new(ffi::PyStructSequence_New(cls.cast()))?;
                for (i, item) in fields.into_iter().enumerate() {
                    ffi::PyStructSequence_SetItem(
                        obj.as_ptr(),
                        i as ffi::Py_ssize_t,
                        item.into_raw(),
                    );
                }
                return Ok(obj);
            }
        }
        let args = convert::tuple(vec![convert::tuple(fields)?])?;
        // SAFETY: `cls` is a live type; `args` a live tuple.
        Ok(Owned::from_new(unsafe {
            ffi::PyObject_Call(cls, args.as_ptr(), null_mut())
        })?)
    }

    /// The module's `__file__`, used to find the server shipped beside it.
    pub fn file(&self) -> Option<std::path::PathBuf> {
        // SAFETY: `self.0` is a live module; a NULL result means no `__file__` (error cleared).
        let f = unsafe { ffi::PyModule_GetFilenameObject(self.0) };
        match Owned::from_new(f) {
            Ok(f) => convert::path(f.borrow(), "__file__").ok(),
            Err(_) => {
                // SAFETY: discard the error: no `__file__` just means "not found here".
                unsafe { ffi::PyErr_Clear() };
                None
            }
        }
    }
}

/// Run an entry point's body: map its error to a raised exception; turn a panic into a
/// `SystemError` that carries the panic's message.
pub fn run(
    module: *mut ffi::PyObject,
    name: &'static CStr,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
    f: Impl,
) -> *mut ffi::PyObject {
    let m = ModuleRef(module);
    let call = CallArgs {
        name,
        args,
        nargs,
        kwnames,
    };
    match catch_unwind(AssertUnwindSafe(|| f(&call, m))) {
        Ok(Ok(obj)) => obj.into_raw(),
        Ok(Err(e)) => {
            err::raise(e, m.capio_exc());
            null_mut()
        }
        Err(panic) => {
            err::raise(Error::System(panic_text(name, &*panic)), m.capio_exc());
            null_mut()
        }
    }
}

/// The `SystemError` text for a panic in `name`: what the panic said, so a bug report has it.
fn panic_text(name: &CStr, payload: &(dyn std::any::Any + Send)) -> String {
    let what = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("no message");
    let func = name.to_str().unwrap_or("?");
    format!("pycapio: internal error in {func}() (Rust panic: {what})")
}

/// The module's functions, from one table: `name => implementation, doc;` defines each
/// `extern "C"` entry point (running the implementation under [`run`]) and its method entry, so a
/// name is written once.
#[macro_export]
macro_rules! methods {
    ($($name:literal => $imp:path, $doc:literal;)*) => {
        [$({
            unsafe extern "C" fn entry(
                module: *mut pyo3_ffi::PyObject,
                args: *const *mut pyo3_ffi::PyObject,
                nargs: pyo3_ffi::Py_ssize_t,
                kwnames: *mut pyo3_ffi::PyObject,
            ) -> *mut pyo3_ffi::PyObject {
                $crate::py::module::run(module, $name, args, nargs, kwnames, $imp)
            }
            $crate::py::module::Method {
                name: $name,
                func: entry,
                doc: $doc,
            }
        }),*]
    };
}

pub struct Method {
    pub name: &'static CStr,
    pub func: ffi::PyCFunctionFastWithKeywords,
    pub doc: &'static CStr,
}

/// Build the `PyModuleDef` (leaked once: CPython requires it to outlive the interpreter).
pub fn module_def(
    name: &'static CStr,
    doc: &'static CStr,
    methods: &[Method],
) -> *mut ffi::PyModuleDef {
    let mut table: Vec<ffi::PyMethodDef> = methods
        .iter()
        .map(|m| ffi::PyMethodDef {
            ml_name: m.name.as_ptr(),
            ml_meth: ffi::PyMethodDefPointer {
                PyCFunctionFastWithKeywords: m.func,
            },
            ml_flags: ffi::METH_FASTCALL | ffi::METH_KEYWORDS,
            ml_doc: m.doc.as_ptr(),
        })
        .collect();
    table.push(ffi::PyMethodDef::zeroed());
    let slots = vec![
        ffi::PyModuleDef_Slot {
            slot: ffi::Py_mod_exec,
            value: exec as *mut c_void,
        },
        ffi::PyModuleDef_Slot {
            slot: 0,
            value: null_mut(),
        },
    ];
    Box::leak(Box::new(ffi::PyModuleDef {
        m_base: ffi::PyModuleDef_HEAD_INIT,
        m_name: name.as_ptr(),
        m_doc: doc.as_ptr(),
        m_size: size_of::<State>() as ffi::Py_ssize_t,
        m_methods: Box::leak(table.into_boxed_slice()).as_mut_ptr(),
        m_slots: Box::leak(slots.into_boxed_slice()).as_mut_ptr(),
        m_traverse: Some(traverse),
        m_clear: Some(clear),
        m_free: Some(free),
    }))
}

/// Constants the module exports: name → value builder.
pub type Constant = (&'static CStr, fn() -> Result<Owned, PyErrSet>);

static CONSTANTS: std::sync::OnceLock<&'static [Constant]> = std::sync::OnceLock::new();

/// Register the constants `exec` adds (from `PyInit`, before any module exists).
pub fn set_constants(c: &'static [Constant]) {
    let _ = CONSTANTS.set(c);
}

unsafe extern "C" fn exec(module: *mut ffi::PyObject) -> c_int {
    let r = catch_unwind(AssertUnwindSafe(|| -> Result<(), PyErrSet> {
        let m = ModuleRef(module);
        // SAFETY: static base type; valid C strings; a new reference or NULL.
        let exc = Owned::from_new(unsafe {
            ffi::PyErr_NewExceptionWithDoc(
                c"pycapio._pycapio.PyCAPIOException".as_ptr(),
                c"A failure of the CAPIO runtime itself (server start, server gone, bad state)."
                    .as_ptr(),
                ffi::PyExc_OSError,
                null_mut(),
            )
        })?;
        add(module, c"PyCAPIOException", &exc)?;
        // SAFETY: importing a stdlib module; the names are valid C strings.
        let os = Owned::from_new(unsafe { ffi::PyImport_ImportModule(c"os".as_ptr()) })?;
        // SAFETY: `os` is live.
        let stat_result = Owned::from_new(unsafe {
            ffi::PyObject_GetAttrString(os.as_ptr(), c"stat_result".as_ptr())
        })?;
        let stat_fields = struct_sequence_fields(&stat_result);
        // SAFETY: the state block is ours, zeroed by CPython; we store one strong reference each.
        unsafe {
            (*m.state()).capio_exc = exc.into_raw();
            (*m.state()).stat_result = stat_result.into_raw();
            (*m.state()).stat_fields = stat_fields;
        }
        for (name, make) in CONSTANTS.get().copied().unwrap_or_default() {
            add(module, name, &make()?)?;
        }
        Ok(())
    }));
    match r {
        Ok(Ok(())) => 0,
        _ => -1,
    }
}

fn add(module: *mut ffi::PyObject, name: &CStr, value: &Owned) -> Result<(), PyErrSet> {
    // SAFETY: `module` is being initialised; AddObjectRef takes its own reference.
    match unsafe { ffi::PyModule_AddObjectRef(module, name.as_ptr(), value.as_ptr()) } {
        0 => Ok(()),
        _ => Err(PyErrSet),
    }
}

unsafe extern "C" fn traverse(
    module: *mut ffi::PyObject,
    visit: ffi::visitproc,
    arg: *mut c_void,
) -> c_int {
    // SAFETY: GC calls this with our module; the state may be NULL before exec.
    let st = unsafe { ffi::PyModule_GetState(module).cast::<State>() };
    if st.is_null() {
        return 0;
    }
    // SAFETY: our own state, not aliased during traversal.
    for r in unsafe { (*st).refs() } {
        if !r.is_null() {
            // SAFETY: visiting a live reference the state owns.
            let v = unsafe { visit(*r, arg) };
            if v != 0 {
                return v;
            }
        }
    }
    0
}

unsafe extern "C" fn clear(module: *mut ffi::PyObject) -> c_int {
    // SAFETY: our module's state (or NULL before exec).
    let st = unsafe { ffi::PyModule_GetState(module).cast::<State>() };
    if st.is_null() {
        return 0;
    }
    // SAFETY: our own state; idempotent (each pointer is nulled before its release).
    for r in unsafe { (*st).refs() } {
        let p = std::mem::replace(r, null_mut());
        if !p.is_null() {
            // SAFETY: releasing the strong reference the state held.
            unsafe { ffi::Py_DecRef(p) };
        }
    }
    0
}

unsafe extern "C" fn free(module: *mut c_void) {
    // SAFETY: CPython passes the module being freed.
    unsafe { clear(module.cast()) };
}

/// `Error::Value` helper for argument checks.
pub fn value_error<T>(msg: impl Into<String>) -> PyResult<T> {
    Err(Error::Value(msg.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panics_message_reaches_the_system_error_text() {
        let caught = catch_unwind(|| panic!("slot {} out of range", 7)).unwrap_err();
        assert_eq!(
            panic_text(c"_read", &*caught),
            "pycapio: internal error in _read() (Rust panic: slot 7 out of range)"
        );
        let caught = catch_unwind(|| std::panic::panic_any(3_u8)).unwrap_err();
        assert!(panic_text(c"_write", &*caught).ends_with("(Rust panic: no message)"));
    }
}
