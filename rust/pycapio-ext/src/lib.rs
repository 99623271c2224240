//! `pycapio._pycapio`: the CAPIO client as a CPython extension module (abi3, raw pyo3-ffi).
//! `py/` holds every CPython call (`capi` makes the C API's capsule); `api` converts arguments
//! and calls `capio-client`.

mod api;
mod capi;
mod py;
mod server_ctl;
mod state;

use py::module::{Constant, module_def, set_constants};
use py::{convert, obj::Owned};
use pyo3_ffi as ffi;

fn file_modes() -> Result<Owned, py::err::PyErrSet> {
    // SAFETY: a new dict; SetItemString copies the key and takes its own value reference.
    unsafe {
        let d = Owned::from_new(ffi::PyDict_New())?;
        for (name, value) in [
            (c"O_RDONLY", libc::O_RDONLY),
            (c"O_WRONLY", libc::O_WRONLY),
            (c"O_RDWR", libc::O_RDWR),
            (c"O_CREAT", libc::O_CREAT),
            (c"O_APPEND", libc::O_APPEND),
            (c"O_TRUNC", libc::O_TRUNC),
            (c"O_EXCL", libc::O_EXCL),
        ] {
            let v = convert::int(i64::from(value))?;
            if ffi::PyDict_SetItemString(d.as_ptr(), name.as_ptr(), v.as_ptr()) != 0 {
                return Err(py::err::PyErrSet);
            }
        }
        Ok(d)
    }
}

static CONSTANTS: &[Constant] = &[
    (c"FILE_MODES", file_modes),
    (c"CAPIO_DEFAULT_APP_NAME", || {
        convert::str(api::DEFAULT_APP_NAME)
    }),
    (c"CAPIO_DEFAULT_WORKFLOW_NAME", || {
        convert::str(api::DEFAULT_WORKFLOW_NAME)
    }),
    (c"__version__", || convert::str(env!("CARGO_PKG_VERSION"))),
    (c"C_API", capi::capsule),
];

/// # Safety
/// Called by CPython's import machinery with the GIL held.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn PyInit__pycapio() -> *mut ffi::PyObject {
    set_constants(CONSTANTS);
    let def = module_def(
        c"pycapio._pycapio",
        c"CAPIO client primitives: attach to the workflow's server and do CAPIO file I/O.",
        &methods![
            c"pycapio_init" => api::pycapio_init, c"Attach to (or start) the workflow's CAPIO server; returns the server pid if this call started it, else -1.";
            c"_attach" => api::attach, c"pycapio_init for CapioContext: True when the process now runs with these settings, False when already attached to the same directory, app and workflow with other start-up settings (kept); PyCAPIOException for another directory, app or workflow.";
            c"pycapio_teardown" => api::pycapio_teardown, c"Detach cleanly, committing this process's files; optionally stop the server when no client is left.";
            c"pycapio_get_capio_dir" => api::pycapio_get_capio_dir, c"The CAPIO directory (real path) as a pathlib.Path.";
            c"pycapio_open" => api::pycapio_open, c"Open a CAPIO file with open(2) flags; returns its file descriptor.";
            c"pycapio_mkdir" => api::pycapio_mkdir, c"Create a directory inside the CAPIO directory; returns 0.";
            c"_is_initialized" => api::is_initialized, c"Whether this process is attached to a CAPIO server.";
            c"_open_path" => api::open_path, c"Decide whether a path is CAPIO's and open it (open(2) flags, mode): its CAPIO fd, ~fd for a node the OS opened, or None when the OS serves the path.";
            c"_capio_path" => api::capio_path, c"The normalised CAPIO path for a path inside the CAPIO directory, else None.";
            c"_read" => api::read, c"Read into a writable buffer at the position or at an offset; waits once per CAPIO-CL (fill: for the whole buffer).";
            c"_read_bytes" => api::read_bytes, c"Read into a new bytes object: to the end of the file (size < 0, waits per CAPIO-CL) or what is readable up to size (fill: all size bytes unless the file ends first).";
            c"_wait_readable" => api::wait_readable, c"Wait until size bytes from offset are readable (the whole file when size < 0); returns the readable end.";
            c"_write" => api::write, c"Write a buffer at the position (end with O_APPEND) or at an offset.";
            c"_seek" => api::seek, c"Move a CAPIO fd's position.";
            c"_truncate" => api::truncate, c"Resize a CAPIO file.";
            c"_close" => api::close, c"Close a CAPIO fd.";
            c"_abandon" => api::abandon, c"Undo the open of a CAPIO fd nothing was written through (never a writer's close).";
            c"_pin" => api::pin, c"The file of a CAPIO fd is mapped from offset (or its fd handed out: 0): none of its bytes may be released early; OSError(ENODATA) if some already were.";
            c"_is_capio_fd" => api::is_capio_fd, c"Whether an fd is an open CAPIO fd of this process.";
            c"_fstat" => api::fstat, c"os.stat_result of an open CAPIO fd.";
            c"_plain_fstat" => api::plain_fstat, c"os.stat_result of a plain fd of a CAPIO file (as its path reports it), None for any other fd.";
            c"_plain_changed" => api::plain_changed, c"After a change through a plain fd of a CAPIO file: stat by path reads it again.";
            c"_stat" => api::stat, c"os.stat_result of a CAPIO path; follow_symlinks=False reports a final symlink itself; never waits.";
            c"_stat_path" => api::stat_path, c"os.stat_result of any path in one call; None when it is not CAPIO's.";
            c"_path_mode" => api::path_mode, c"st_mode of any path for the os.path predicates: None where a stat of a CAPIO path would fail, -1 when the path is not CAPIO's.";
            c"_set_attrs" => api::set_attrs, c"chmod/chown/utime of a CAPIO path or fd: mode, uid, gid (-1: unchanged), atime_ns, mtime_ns, now, follow_symlinks.";
            c"_listdir" => api::listdir, c"[(name, is_file, is_dir, is_symlink)] of a CAPIO directory, once it is complete (waits per CAPIO-CL).";
            c"_validate_config" => api::validate_config, c"Check a CAPIO-CL file (ValueError if invalid) and describe the rules of the given paths.";
            c"_list_new" => api::list_new, c"([(name, is_file, is_dir, is_symlink)] not in `seen`, complete): streams a no_update directory's entries as they appear.";
            c"_unlink" => api::unlink, c"Remove a CAPIO file; fds already open on it keep working.";
            c"_rename" => api::rename, c"Move a CAPIO file or directory like os.replace; EXDEV across the CAPIO directory's boundary, after ENOENT for a missing source; dst None: outside, found by a dir_fd.";
            c"_link_check" => api::link_check, c"Whether os.link(src, dst) may go to the OS; else raises link(2)'s error (EPERM/EXDEV for a file CAPIO holds in memory); None: outside, found by a dir_fd.";
            c"_rmdir" => api::rmdir, c"Remove an empty CAPIO directory.";
            c"_die_by_signal" => api::die_by_signal, c"End the process by a signal with its default action, from any thread.";
            c"_server_list" => server_ctl::server_list, c"[(workflow, pid, capio_dir, alive)] of this user's servers, from the runtime directory.";
            c"_server_status" => server_ctl::server_status, c"A workflow server's state as JSON (asked as an observer, not a client).";
            c"_server_start" => server_ctl::server_start, c"Start a workflow's server unless one runs; (pid, started).";
            c"_server_stop" => server_ctl::server_stop, c"Ask a workflow's server to shut down and wait for it to exit; its pid.";
            c"_after_fork_in_child" => api::after_fork_in_child, c"Forget the parent's connection in a forked child.";
            c"_track_umask" => api::track_umask, c"Start (True: read the umask now) or stop (False) tracking the umask for creates.";
            c"_umask_changed" => api::umask_changed, c"Tell the tracker the umask was just set to mask.";
            c"_builtin_proxy" => api::builtin_proxy, c"A built-in function (name, doc, __self__, __module__ given) that forwards every call to impl.";
        ],
    );
    // SAFETY: `def` is leaked, so it outlives the interpreter as multi-phase init requires.
    unsafe { ffi::PyModuleDef_Init(def) }
}
