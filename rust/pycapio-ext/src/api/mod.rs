//! The module's functions: each converts its arguments, calls the client, converts the result.
//!
//! Blocking calls run with the GIL released. This file: attaching and detaching, the process
//! hooks and the helpers; `files` the I/O on CAPIO fds; `names` the namespace (stat, listings,
//! attributes, unlink, rename, mkdir).

mod files;
mod names;

pub use files::*;
pub use names::*;

use crate::py::convert;
use crate::py::err::{Error, PyResult};
use crate::py::gil::allow_threads;
use crate::py::module::{CallArgs, ModuleRef, value_error};
use crate::py::obj::{Borrowed, Owned};
use crate::state;
use capio_client::{Client, ClientError, Settings};
use capio_proto::sys::Tracking;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub const DEFAULT_APP_NAME: &str = "default_app";
pub const DEFAULT_WORKFLOW_NAME: &str = "CAPIO";
const SERVER_EXE: &str = "capio_server";
/// Environment variable bounding every CAPIO wait, in seconds.
const WAIT_TIMEOUT_ENV: &str = "PYCAPIO_WAIT_TIMEOUT";
pub(crate) fn client() -> PyResult<Arc<Client>> {
    Ok(state::current()?)
}

pub(crate) fn fd_arg(o: Option<Borrowed>) -> PyResult<i32> {
    let v = convert::i64(o.expect("required"), "fd")?;
    i32::try_from(v).map_err(|_| Error::Overflow("fd is out of range".into()))
}

pub(crate) fn offset_arg(o: Option<Borrowed>) -> PyResult<Option<u64>> {
    match o {
        None => Ok(None),
        Some(o) if o.is_none() => Ok(None),
        Some(o) => match convert::i64(o, "offset")? {
            // -1 is the documented "at the position"; any other negative offset is EINVAL, as
            // for os.pread/os.pwrite, never silently the position.
            -1 => Ok(None),
            v => u64::try_from(v)
                .map(Some)
                .map_err(|_| ClientError::os(libc::EINVAL, None).into()),
        },
    }
}

/// `capio_server` → beside this module, then `$PATH`; a path with `/` is used as given.
pub(crate) fn locate_server(given: &str, module: ModuleRef) -> PyResult<PathBuf> {
    if given.contains('/') {
        return Ok(PathBuf::from(given));
    }
    let mut candidates = Vec::new();
    if given == SERVER_EXE
        && let Some(dir) = module.file().as_deref().and_then(Path::parent)
    {
        candidates.push(dir.join(SERVER_EXE));
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join(given)));
    }
    candidates.into_iter().find(|c| c.is_file()).ok_or_else(|| {
        Error::Client(ClientError::Start(format!(
            "could not locate the '{given}' executable (looked beside pycapio and in PATH)"
        )))
    })
}

fn wait_timeout_from_env() -> PyResult<Option<Duration>> {
    let Some(v) = std::env::var_os(WAIT_TIMEOUT_ENV) else {
        return Ok(None);
    };
    let s = v.to_string_lossy();
    match s.trim().parse::<f64>() {
        Ok(x) if x > 0.0 && x.is_finite() => Ok(Some(Duration::from_secs_f64(x))),
        Ok(_) => Ok(None),
        Err(_) => value_error(format!(
            "{WAIT_TIMEOUT_ENV} must be a number of seconds, not '{s}'"
        )),
    }
}

pub fn pycapio_init(a: &CallArgs, m: ModuleRef) -> PyResult<Owned> {
    match init(a, m, false)? {
        Attached::Now(result) | Attached::Already(result) => Ok(convert::int(result)?),
        Attached::SameApp => unreachable!("only a lenient init reuses other settings"),
    }
}

/// `CapioContext`'s attach: as `pycapio_init`, but a process a context already attached is
/// reused for the same directory, app and workflow even if the start-up settings (server path,
/// timeout, CAPIO-CL file) differ, which no longer matter. True when the process now runs with
/// exactly these settings, False when it keeps its own.
pub fn attach(a: &CallArgs, m: ModuleRef) -> PyResult<Owned> {
    let attached = init(a, m, true)?;
    state::set_by_context();
    Ok(convert::bool(!matches!(attached, Attached::SameApp))?)
}

enum Attached {
    /// This call attached; the server pid if it started it, else -1.
    Now(i64),
    /// Already attached with exactly these settings: what the first call returned.
    Already(i64),
    /// Already attached to the same directory, app and workflow with other start-up settings.
    SameApp,
}

/// Whether a process attached with `current` may go on for a call asking for `asked`: this is
/// the one place deciding it. `real_dir` is the attached client's real CAPIO directory; `lenient`
/// only for a context's attach of a process a context attached before: a process attached by a
/// plain `pycapio_init` has exported nothing to children nor registered its exit, which a context
/// reusing it with other settings would silently skip, so that is refused as before.
fn compatible(
    current: &Settings,
    real_dir: &Path,
    asked: &Settings,
    lenient: bool,
) -> Option<bool> {
    if current == asked {
        return Some(true);
    }
    let same_dir = std::fs::canonicalize(&asked.capio_dir).is_ok_and(|d| d == real_dir);
    (lenient && same_dir && current.app == asked.app && current.workflow == asked.workflow)
        .then_some(false)
}

fn init(a: &CallArgs, m: ModuleRef, lenient: bool) -> PyResult<Attached> {
    let names = [
        "CAPIO_DIR",
        "CAPIO_APP_NAME",
        "CAPIO_WORKFLOW_NAME",
        "capio_server_exec_path",
        "capio_cl_configuration_file",
        "await_server_timeout_seconds",
    ];
    let v = a.bind(&names, 0)?;
    let capio_dir = v[0]
        .map(|o| convert::path(o, "CAPIO_DIR"))
        .transpose()?
        .unwrap_or_else(|| ".".into());
    let app = v[1]
        .map(|o| convert::string(o, "CAPIO_APP_NAME"))
        .transpose()?
        .unwrap_or_else(|| DEFAULT_APP_NAME.into());
    let workflow = v[2]
        .map(|o| convert::string(o, "CAPIO_WORKFLOW_NAME"))
        .transpose()?
        .unwrap_or_else(|| DEFAULT_WORKFLOW_NAME.into());
    let exe = v[3]
        .map(|o| convert::string(o, "capio_server_exec_path"))
        .transpose()?
        .unwrap_or_else(|| SERVER_EXE.into());
    let config = v[4]
        .map(|o| convert::path(o, "capio_cl_configuration_file"))
        .transpose()?
        .unwrap_or_default();
    let await_secs = v[5]
        .map(|o| convert::f64(o, "await_server_timeout_seconds"))
        .transpose()?
        .unwrap_or(2.0);
    if app.is_empty() || app.contains('\0') {
        return value_error("CAPIO_APP_NAME must be a non-empty string without NUL characters");
    }
    if workflow.is_empty() || workflow.contains('\0') {
        return value_error(
            "CAPIO_WORKFLOW_NAME must be a non-empty string without NUL characters",
        );
    }
    if !(await_secs > 0.0 && await_secs.is_finite()) {
        return value_error("await_server_timeout_seconds must be a positive number");
    }
    let cwd = std::env::current_dir().map_err(|e| ClientError::from_io(e, None::<PathBuf>))?;
    let config_file = if config.as_os_str().is_empty() {
        None
    } else {
        let abs = capio_client::paths::normalize(&config, &cwd);
        if !abs.is_file() {
            return Err(ClientError::os(libc::ENOENT, config).into());
        }
        Some(abs)
    };
    let settings = Settings {
        capio_dir: capio_client::paths::normalize(&capio_dir, &cwd),
        app,
        workflow,
        server_exe: locate_server(&exe, m)?,
        config_file,
        ready_timeout: Duration::from_secs_f64(await_secs),
        wait_timeout: wait_timeout_from_env()?,
    };
    if let Some(c) = state::peek() {
        let lenient = lenient && state::by_context();
        match compatible(c.settings(), c.capio_dir(), &settings, lenient) {
            Some(true) => return Ok(Attached::Already(state::init_result())),
            Some(false) => return Ok(Attached::SameApp),
            None => {}
        }
        let s = c.settings();
        return Err(ClientError::AlreadyInitialized(format!(
            "CAPIO_DIR='{}', app '{}', workflow '{}'",
            s.capio_dir.display(),
            s.app,
            s.workflow
        ))
        .into());
    }
    let client = allow_threads(|_| Client::connect(settings))?;
    let result = client.started_server_pid().map_or(-1, i64::from);
    state::install(Arc::new(client), result);
    Ok(Attached::Now(result))
}

pub fn pycapio_teardown(a: &CallArgs, _m: ModuleRef) -> PyResult<Owned> {
    let v = a.bind(&["teardown_server"], 0)?;
    let teardown = v[0].map(convert::truthy).transpose()?.unwrap_or(false);
    if let Some(c) = state::take() {
        allow_threads(|_| c.exit(teardown))?;
    }
    Ok(Owned::none())
}

pub fn pycapio_get_capio_dir(a: &CallArgs, _m: ModuleRef) -> PyResult<Owned> {
    a.bind(&[], 0)?;
    convert::pathlib_path(client()?.capio_dir())
}

pub fn is_initialized(a: &CallArgs, _m: ModuleRef) -> PyResult<Owned> {
    a.bind(&[], 0)?;
    Ok(convert::bool(state::peek().is_some())?)
}

/// End the process by `signum` with its default action (from any thread); never returns.
pub fn die_by_signal(a: &CallArgs, _m: ModuleRef) -> PyResult<Owned> {
    let v = a.bind(&["signum"], 1)?;
    let signum = convert::i64(v[0].expect("required"), "signum")?;
    match i32::try_from(signum) {
        Ok(s) if (1..=64).contains(&s) && s != libc::SIGKILL && s != libc::SIGSTOP => {
            crate::py::process::die_by_signal(s)
        }
        _ => value_error(format!("signal number out of range: {signum}")),
    }
}

/// Start (reading the umask at the next create) or stop tracking the umask for creates; see
/// `capio_proto::sys::current_umask`.
pub fn track_umask(a: &CallArgs, _m: ModuleRef) -> PyResult<Owned> {
    let v = a.bind(&["on"], 1)?;
    let on = convert::truthy(v[0].expect("required"))?;
    capio_proto::sys::track_umask(if on { Tracking::Start } else { Tracking::Off });
    Ok(Owned::none())
}

/// The umask was just set to `mask` (by the `os.umask` proxy, while tracked).
pub fn umask_changed(a: &CallArgs, _m: ModuleRef) -> PyResult<Owned> {
    let v = a.bind(&["mask"], 1)?;
    let mask = convert::i64(v[0].expect("required"), "mask")?;
    let mask =
        u32::try_from(mask).map_err(|_| Error::Value(format!("mask out of range: {mask}")))?;
    capio_proto::sys::track_umask(Tracking::Changed(mask));
    Ok(Owned::none())
}

pub fn after_fork_in_child(a: &CallArgs, _m: ModuleRef) -> PyResult<Owned> {
    a.bind(&[], 0)?;
    state::after_fork_in_child();
    Ok(Owned::none())
}

/// Check a CAPIO-CL file and describe the rule each path gets: `pycapio validate`.
pub fn validate_config(a: &CallArgs, _m: ModuleRef) -> PyResult<Owned> {
    let v = a.bind(&["file", "capio_dir", "paths"], 1)?;
    let file = convert::path(v[0].expect("required"), "file")?;
    let cwd = std::env::current_dir().map_err(|e| ClientError::from_io(e, None::<PathBuf>))?;
    let dir = v[1]
        .map(|o| convert::path(o, "capio_dir"))
        .transpose()?
        .unwrap_or_else(|| ".".into());
    let dir = capio_client::paths::normalize(&dir, &cwd);
    let rules = capio_cl::load(&file, &dir).map_err(|e| Error::Value(e.to_string()))?;
    let mut out = format!(
        "{}: valid CAPIO-CL for workflow '{}'\n",
        file.display(),
        rules.workflow_name()
    );
    for warning in rules.warnings() {
        out.push_str(&format!("warning: {warning}\n"));
    }
    if let Some(paths) = v[2] {
        for p in convert::iterate(paths)? {
            // Relative paths name files in the CAPIO directory, as they do in the file itself.
            let p = capio_client::paths::normalize(&convert::path(p.borrow(), "paths")?, &dir);
            out.push('\n');
            out.push_str(rules.describe(&p).trim_end());
            out.push('\n');
        }
    }
    Ok(convert::str(&out)?)
}

/// `_builtin_proxy(impl, name, doc, self, module)`: see `py::proxy::make`.
pub fn builtin_proxy(a: &CallArgs, _m: ModuleRef) -> PyResult<Owned> {
    let v = a.bind(&["impl", "name", "doc", "self", "module"], 5)?;
    let (Some(imp), Some(name), Some(doc), Some(module_self), Some(module)) =
        (v[0], v[1], v[2], v[3], v[4])
    else {
        return value_error("_builtin_proxy() needs all of its arguments");
    };
    let name = convert::string(name, "name")?;
    let doc = if doc.is_none() {
        None
    } else {
        Some(convert::string(doc, "doc")?)
    };
    crate::py::proxy::make(imp, &name, doc.as_deref(), module_self, module)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(dir: &Path, app: &str) -> Settings {
        Settings {
            capio_dir: dir.to_path_buf(),
            app: app.into(),
            workflow: "wf".into(),
            server_exe: "capio_server".into(),
            config_file: None,
            ready_timeout: Duration::from_secs(2),
            wait_timeout: None,
        }
    }

    #[test]
    fn an_attached_process_goes_on_only_for_its_own_directory_app_and_workflow() {
        let dir = std::env::temp_dir().canonicalize().unwrap();
        let current = settings(&dir, "a");
        assert_eq!(compatible(&current, &dir, &current, false), Some(true));
        assert_eq!(compatible(&current, &dir, &current, true), Some(true));
        // Other start-up settings: only a context's lenient attach keeps the process's own.
        let slower = Settings {
            ready_timeout: Duration::from_secs(9),
            ..current.clone()
        };
        assert_eq!(compatible(&current, &dir, &slower, false), None);
        assert_eq!(compatible(&current, &dir, &slower, true), Some(false));
        // Another app, workflow or directory: never.
        assert_eq!(compatible(&current, &dir, &settings(&dir, "b"), true), None);
        let other_wf = Settings {
            workflow: "other".into(),
            ..current.clone()
        };
        assert_eq!(compatible(&current, &dir, &other_wf, true), None);
        assert_eq!(
            compatible(&current, &dir, &settings(Path::new("/"), "a"), true),
            None
        );
    }
}
