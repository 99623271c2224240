//! `rust_writer`: writes (and reads) a CAPIO file through pycapio's C API from a native (Rust) thread
//! while the calling Python thread has released the GIL — the Rust twin of
//! `capsule/examples/c_writer`, over the consumer crate `capio-capi`.
//!
//! ```python
//! import rust_writer
//! written, saw_gate = rust_writer.write_file(path, data, block=1 << 20, gate=None, gate_timeout=0.0)
//! data = rust_writer.read_file(path, gate=None, gate_after=0)
//! ```
//!
//! With `gate` (a path outside the CAPIO directory) the writer pauses after the first block until
//! that file exists (at most `gate_timeout` seconds), and the reader creates it once it has read
//! `gate_after` bytes, so a test can prove the file streams.

use capio_capi::{Api, CapioFile};
use pyo3_ffi as ffi;
use std::ffi::{CStr, c_char};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::ptr::null_mut;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Imported once at module init (with the GIL), then used from any thread without it.
static API: OnceLock<Api> = OnceLock::new();

fn wait_gate(gate: &Path, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while !gate.exists() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// The native thread's work: plain Rust I/O traits over the C API.
fn write_all(
    api: Api,
    path: &Path,
    data: &[u8],
    block: usize,
    gate: Option<(&Path, Duration)>,
) -> io::Result<(usize, bool)> {
    let mut f = CapioFile::create(api, path)?;
    let mut saw_gate = false;
    for (i, chunk) in data.chunks(block).enumerate() {
        f.write_all(chunk)?;
        if i == 0
            && let Some((gate, timeout)) = gate
        {
            saw_gate = wait_gate(gate, timeout);
        }
    }
    f.close()?;
    Ok((data.len(), saw_gate))
}

/// The native reader: `Read` to the end (each read waits per CAPIO-CL), then `metadata` and `Seek`.
fn read_all(api: Api, path: &Path, gate: Option<(&Path, u64)>) -> io::Result<Vec<u8>> {
    let mut f = CapioFile::open_read(api, path)?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut gate = gate;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        if let Some((g, after)) = gate
            && out.len() as u64 >= after
        {
            std::fs::File::create(g)?; // a plain file outside CAPIO: tells the producer to go on
            gate = None;
        }
    }
    let meta = f.metadata()?;
    if meta.size != out.len() as u64 || !meta.is_committed() {
        return Err(io::Error::other(format!(
            "EOF at {} but fstat says {} bytes, committed={}",
            out.len(),
            meta.size,
            meta.committed
        )));
    }
    let mut head = [0u8; 16];
    f.seek(SeekFrom::Start(0))?;
    let n = f.read(&mut head)?;
    if head[..n] != out[..n.min(out.len())] {
        return Err(io::Error::other("re-read after seek(0) differs"));
    }
    f.close()?;
    Ok(out)
}

/// Run `work` on a native thread with the GIL released; the GIL is held again on return.
///
/// # Safety
/// The calling thread holds the GIL.
unsafe fn without_gil<T: Send>(
    work: impl FnOnce() -> io::Result<T> + Send,
) -> std::thread::Result<io::Result<T>> {
    // SAFETY: give up the GIL while the native thread works; retaken right after the join.
    let saved = unsafe { ffi::PyEval_SaveThread() };
    let outcome = std::thread::scope(|s| s.spawn(work).join());
    // SAFETY: the thread state saved above, on this same thread.
    unsafe { ffi::PyEval_RestoreThread(saved) };
    outcome
}

/// Set the Python exception for a failed native job (`None`: the thread panicked); returns NULL
/// for the caller to return.
///
/// # Safety
/// The GIL is held.
unsafe fn raise(error: Option<io::Error>, path: &Path) -> *mut ffi::PyObject {
    match error {
        Some(e) if e.raw_os_error().is_some() => {
            let name =
                std::ffi::CString::new(path.to_string_lossy().into_owned()).unwrap_or_default();
            // SAFETY: GIL held; sets OSError(errno, strerror, path) from errno.
            unsafe {
                *libc::__errno_location() = e.raw_os_error().unwrap_or(libc::EIO);
                ffi::PyErr_SetFromErrnoWithFilename(ffi::PyExc_OSError, name.as_ptr());
            }
        }
        Some(e) => {
            let msg = std::ffi::CString::new(e.to_string()).unwrap_or_default();
            // SAFETY: GIL held; `msg` is copied.
            unsafe { ffi::PyErr_SetString(ffi::PyExc_OSError, msg.as_ptr()) };
        }
        None => {
            // SAFETY: GIL held; static strings.
            unsafe {
                ffi::PyErr_SetString(
                    ffi::PyExc_SystemError,
                    c"rust_writer: native thread panicked".as_ptr(),
                )
            };
        }
    }
    null_mut()
}

/// Arguments as `PyArg_ParseTupleAndKeywords` leaves them.
struct Args {
    path: *const c_char,
    data: ffi::Py_buffer,
    block: ffi::Py_ssize_t,
    gate: *const c_char,
    gate_timeout: f64,
}

unsafe extern "C" fn write_file(
    _module: *mut ffi::PyObject,
    args: *mut ffi::PyObject,
    kwargs: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let mut names: [*mut c_char; 6] = [
        c"path".as_ptr().cast_mut(),
        c"data".as_ptr().cast_mut(),
        c"block".as_ptr().cast_mut(),
        c"gate".as_ptr().cast_mut(),
        c"gate_timeout".as_ptr().cast_mut(),
        null_mut(),
    ];
    let mut a = Args {
        path: std::ptr::null(),
        // SAFETY: an all-zero Py_buffer is a valid "empty" value for ParseTuple to fill.
        data: unsafe { std::mem::zeroed() },
        block: 1 << 20,
        gate: std::ptr::null(),
        gate_timeout: 0.0,
    };
    // SAFETY: the GIL is held (CPython calls us); each out-pointer matches its format unit.
    let parsed = unsafe {
        ffi::PyArg_ParseTupleAndKeywords(
            args,
            kwargs,
            c"sy*|nzd".as_ptr(),
            names.as_mut_ptr(),
            &mut a.path,
            &mut a.data,
            &mut a.block,
            &mut a.gate,
            &mut a.gate_timeout,
        )
    };
    if parsed == 0 {
        return null_mut();
    }
    // SAFETY: the buffer stays valid until PyBuffer_Release below; the strings live in the args.
    let result = unsafe { run(&a) };
    // SAFETY: releasing the buffer ParseTuple acquired, with the GIL held.
    unsafe { ffi::PyBuffer_Release(&mut a.data) };
    result
}

/// # Safety
/// GIL held; `a` as filled by a successful parse.
unsafe fn run(a: &Args) -> *mut ffi::PyObject {
    let Some(api) = API.get().copied() else {
        return null_mut();
    };
    if a.block <= 0 {
        // SAFETY: GIL held; static strings.
        unsafe { ffi::PyErr_SetString(ffi::PyExc_ValueError, c"block must be positive".as_ptr()) };
        return null_mut();
    }
    // "s" and "z" give NUL-terminated UTF-8 owned by the argument objects ("z": or NULL).
    let text = |p: *const c_char| {
        // SAFETY: non-NULL here, NUL-terminated and alive for this call (see above).
        PathBuf::from(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    };
    let path = text(a.path);
    let gate = (!a.gate.is_null()).then(|| text(a.gate));
    // SAFETY: "y*" filled a contiguous buffer of `len` bytes, kept alive until our caller releases it.
    let data = unsafe { std::slice::from_raw_parts(a.data.buf.cast::<u8>(), a.data.len as usize) };
    let block = a.block as usize;
    let timeout = Duration::from_secs_f64(a.gate_timeout.max(0.0));

    // SAFETY: GIL held (our caller's contract).
    let outcome = unsafe {
        without_gil(|| {
            write_all(
                api,
                &path,
                data,
                block,
                gate.as_deref().map(|g| (g, timeout)),
            )
        })
    };
    match outcome {
        Ok(Ok((written, saw_gate))) => {
            // SAFETY: GIL held; "(nO)" with a Py_ssize_t and a borrowed bool.
            unsafe {
                let flag = if saw_gate {
                    ffi::Py_True()
                } else {
                    ffi::Py_False()
                };
                ffi::Py_BuildValue(c"(nO)".as_ptr(), written as ffi::Py_ssize_t, flag)
            }
        }
        // SAFETY: GIL held.
        Ok(Err(e)) => unsafe { raise(Some(e), &path) },
        // SAFETY: GIL held.
        Err(_) => unsafe { raise(None, &path) },
    }
}

unsafe extern "C" fn read_file(
    _module: *mut ffi::PyObject,
    args: *mut ffi::PyObject,
    kwargs: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let mut names: [*mut c_char; 4] = [
        c"path".as_ptr().cast_mut(),
        c"gate".as_ptr().cast_mut(),
        c"gate_after".as_ptr().cast_mut(),
        null_mut(),
    ];
    let (mut path, mut gate, mut gate_after): (*const c_char, *const c_char, ffi::Py_ssize_t) =
        (std::ptr::null(), std::ptr::null(), 0);
    // SAFETY: the GIL is held (CPython calls us); each out-pointer matches its format unit.
    let parsed = unsafe {
        ffi::PyArg_ParseTupleAndKeywords(
            args,
            kwargs,
            c"s|zn".as_ptr(),
            names.as_mut_ptr(),
            &mut path,
            &mut gate,
            &mut gate_after,
        )
    };
    if parsed == 0 {
        return null_mut();
    }
    let Some(api) = API.get().copied() else {
        return null_mut();
    };
    let text = |p: *const c_char| {
        // SAFETY: "s"/"z" strings: NUL-terminated, owned by the arguments, non-NULL here.
        PathBuf::from(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    };
    let path = text(path);
    let gate = (!gate.is_null()).then(|| text(gate));
    let after = gate_after.max(0) as u64;
    // SAFETY: GIL held (CPython calls us).
    let outcome =
        unsafe { without_gil(|| read_all(api, &path, gate.as_deref().map(|g| (g, after)))) };
    match outcome {
        Ok(Ok(data)) => {
            // SAFETY: GIL held; copies `data` into a new bytes object (NULL with an exception on failure).
            unsafe {
                ffi::PyBytes_FromStringAndSize(data.as_ptr().cast(), data.len() as ffi::Py_ssize_t)
            }
        }
        // SAFETY: GIL held.
        Ok(Err(e)) => unsafe { raise(Some(e), &path) },
        // SAFETY: GIL held.
        Err(_) => unsafe { raise(None, &path) },
    }
}

unsafe extern "C" fn capi_version(
    _module: *mut ffi::PyObject,
    _args: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let Some(api) = API.get() else {
        return null_mut();
    };
    let (major, minor) = api.version();
    let flag = if api.is_initialized() {
        // SAFETY: the True singleton.
        unsafe { ffi::Py_True() }
    } else {
        // SAFETY: the False singleton.
        unsafe { ffi::Py_False() }
    };
    // SAFETY: GIL held; "(IIIO)" with three unsigned ints and a borrowed bool.
    unsafe {
        ffi::Py_BuildValue(
            c"(IIIO)".as_ptr(),
            u32::from(major),
            u32::from(minor),
            api.table().header.struct_size,
            flag,
        )
    }
}

/// # Safety
/// Called by CPython's import machinery with the GIL held.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn PyInit_rust_writer() -> *mut ffi::PyObject {
    // Like numpy's import_array(): fail the import with pycapio's ImportError if the C API is
    // missing or incompatible.
    // SAFETY: the GIL is held during module init.
    match unsafe { Api::import() } {
        Ok(api) => {
            let _ = API.set(api);
        }
        Err(_) => return null_mut(), // the ImportError is set
    }
    let methods = Box::leak(Box::new([
        ffi::PyMethodDef {
            ml_name: c"write_file".as_ptr(),
            ml_meth: ffi::PyMethodDefPointer {
                PyCFunctionWithKeywords: write_file,
            },
            ml_flags: ffi::METH_VARARGS | ffi::METH_KEYWORDS,
            ml_doc: c"write_file(path, data, block=1 MiB, gate=None, gate_timeout=0.0) -> (written, saw_gate)"
                .as_ptr(),
        },
        ffi::PyMethodDef {
            ml_name: c"read_file".as_ptr(),
            ml_meth: ffi::PyMethodDefPointer {
                PyCFunctionWithKeywords: read_file,
            },
            ml_flags: ffi::METH_VARARGS | ffi::METH_KEYWORDS,
            ml_doc: c"read_file(path, gate=None, gate_after=0) -> bytes: read a CAPIO file to its end from a native thread"
                .as_ptr(),
        },
        ffi::PyMethodDef {
            ml_name: c"capi_version".as_ptr(),
            ml_meth: ffi::PyMethodDefPointer {
                PyCFunction: capi_version,
            },
            ml_flags: ffi::METH_NOARGS,
            ml_doc: c"(abi_major, abi_minor, struct_size, is_initialized) of the pycapio C API in use."
                .as_ptr(),
        },
        ffi::PyMethodDef::zeroed(),
    ]));
    let def = Box::leak(Box::new(ffi::PyModuleDef {
        m_base: ffi::PyModuleDef_HEAD_INIT,
        m_name: c"rust_writer".as_ptr(),
        m_doc: c"Writes CAPIO files from a native Rust thread through pycapio's C API.".as_ptr(),
        m_size: -1,
        m_methods: methods.as_mut_ptr(),
        m_slots: null_mut(),
        m_traverse: None,
        m_clear: None,
        m_free: None,
    }));
    // SAFETY: `def` is leaked (outlives the interpreter); GIL held.
    unsafe { ffi::PyModule_Create2(def, ffi::PYTHON_ABI_VERSION) }
}
