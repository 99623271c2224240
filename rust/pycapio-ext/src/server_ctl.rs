//! `pycapio server status|start|stop`: thin conversions around `capio_client::control`. None of
//! these attach the calling process as a workflow client.

use crate::py::convert;
use crate::py::err::PyResult;
use crate::py::gil::allow_threads;
use crate::py::module::{CallArgs, ModuleRef, value_error};
use crate::py::obj::Owned;
use capio_client::{ClientError, StartParams, control};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Duration;

/// `_server_list()`: `[(workflow, pid, capio_dir, alive)]` from the runtime directory.
pub fn server_list(a: &CallArgs, _m: ModuleRef) -> PyResult<Owned> {
    a.bind(&[], 0)?;
    let servers = allow_threads(|_| control::list_servers())?;
    let mut items = Vec::with_capacity(servers.len());
    for s in servers {
        items.push(convert::tuple(vec![
            convert::str(&s.workflow)?,
            convert::int(i64::from(s.pid))?,
            convert::fs_str(s.capio_dir.as_os_str().as_bytes())?,
            convert::bool(s.alive)?,
        ])?);
    }
    Ok(convert::list(items)?)
}

/// `_server_status(workflow)`: the server's state as JSON text.
pub fn server_status(a: &CallArgs, _m: ModuleRef) -> PyResult<Owned> {
    let v = a.bind(&["workflow"], 1)?;
    let workflow = convert::string(v[0].expect("required"), "workflow")?;
    let text = allow_threads(|_| control::status(&workflow))?;
    Ok(convert::str(&text)?)
}

/// `_server_stop(workflow, timeout)`: ask for a shutdown and wait for the process; its pid.
pub fn server_stop(a: &CallArgs, _m: ModuleRef) -> PyResult<Owned> {
    let v = a.bind(&["workflow", "timeout"], 1)?;
    let workflow = convert::string(v[0].expect("required"), "workflow")?;
    let timeout = v[1]
        .map(|o| convert::f64(o, "timeout"))
        .transpose()?
        .unwrap_or(60.0);
    if !(timeout > 0.0 && timeout.is_finite()) {
        return value_error("timeout must be a positive number of seconds");
    }
    let pid = allow_threads(|_| control::stop(&workflow, Duration::from_secs_f64(timeout)))?;
    Ok(convert::int(i64::from(pid))?)
}

/// `_server_start(capio_dir, workflow, capio_cl_configuration_file, capio_server_exec_path,
/// await_server_timeout_seconds)`: `(pid, started)`; an already running server is left alone.
pub fn server_start(a: &CallArgs, m: ModuleRef) -> PyResult<Owned> {
    let names = [
        "capio_dir",
        "workflow",
        "capio_cl_configuration_file",
        "capio_server_exec_path",
        "await_server_timeout_seconds",
    ];
    let v = a.bind(&names, 2)?;
    let cwd = std::env::current_dir().map_err(|e| ClientError::from_io(e, None::<PathBuf>))?;
    let given = convert::path(v[0].expect("required"), "capio_dir")?;
    let capio_dir = std::fs::canonicalize(capio_client::paths::normalize(&given, &cwd))
        .map_err(|e| ClientError::from_io(e, given.clone()))?;
    if !capio_dir.is_dir() {
        return Err(ClientError::os(libc::ENOTDIR, given).into());
    }
    let workflow = convert::string(v[1].expect("required"), "workflow")?;
    if workflow.is_empty() || workflow.contains('\0') {
        return value_error("workflow must be a non-empty string without NUL characters");
    }
    let config = match v[2].filter(|o| !o.is_none()) {
        Some(o) => {
            let p = convert::path(o, "capio_cl_configuration_file")?;
            (!p.as_os_str().is_empty()).then(|| capio_client::paths::normalize(&p, &cwd))
        }
        None => None,
    };
    if let Some(c) = config.as_ref().filter(|c| !c.is_file()) {
        return Err(ClientError::os(libc::ENOENT, c.clone()).into());
    }
    let exe = v[3]
        .map(|o| convert::string(o, "capio_server_exec_path"))
        .transpose()?
        .unwrap_or_else(|| "capio_server".into());
    let exe = crate::api::locate_server(&exe, m)?;
    let secs = v[4]
        .map(|o| convert::f64(o, "await_server_timeout_seconds"))
        .transpose()?
        .unwrap_or(10.0);
    if !(secs > 0.0 && secs.is_finite()) {
        return value_error("await_server_timeout_seconds must be a positive number");
    }
    let (pid, started) = allow_threads(|_| {
        control::start(&StartParams {
            workflow: &workflow,
            app: "pycapio-server-start",
            capio_dir: &capio_dir,
            server_exe: &exe,
            config_file: config.as_deref(),
            ready_timeout: Duration::from_secs_f64(secs),
            managed: true,
        })
    })?;
    Ok(convert::tuple(vec![
        convert::int(i64::from(pid))?,
        convert::bool(started)?,
    ])?)
}
