//! Observing and controlling servers from outside a workflow (`pycapio server status|start|stop`):
//! the runtime directory's info files say which servers exist; an observer connection (a `Hello`
//! with `hello_flags::OBSERVER`) asks one for its state or its shutdown without becoming a client,
//! so looking at a workflow never keeps its server alive or triggers its teardown.

use crate::conn::Conn;
use crate::error::{ClientError, Result};
use capio_proto::runtime::{INFO_SUFFIX, WorkflowPaths, runtime_dir};
use capio_proto::{HelloReq, ShutdownReq, StatusReq, hello_flags, sys};
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// One server the runtime directory knows of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerEntry {
    pub workflow: String,
    pub pid: i32,
    pub capio_dir: PathBuf,
    pub info: PathBuf,
    /// Its process exists and its socket answers (a stale info file of a killed server does not).
    pub alive: bool,
}

/// The servers of this user, from the info files in the runtime directory, sorted by workflow.
pub fn list_servers() -> Result<Vec<ServerEntry>> {
    let dir = runtime_dir().map_err(|e| ClientError::from_io(e, None::<PathBuf>))?;
    let mut out = Vec::new();
    let entries = fs::read_dir(&dir).map_err(|e| ClientError::from_io(e, dir.clone()))?;
    for entry in entries.flatten() {
        let info = entry.path();
        if !info
            .as_os_str()
            .as_bytes()
            .ends_with(INFO_SUFFIX.as_bytes())
        {
            continue;
        }
        let Some((pid, workflow, capio_dir)) = read_info(&info) else {
            continue;
        };
        let paths = WorkflowPaths::new(&dir, &workflow);
        let alive = sys::process_alive(pid) && UnixStream::connect(&paths.socket).is_ok();
        out.push(ServerEntry {
            workflow,
            pid,
            capio_dir,
            info,
            alive,
        });
    }
    out.sort_by(|a, b| a.workflow.cmp(&b.workflow).then(a.pid.cmp(&b.pid)));
    Ok(out)
}

/// `pid\nworkflow\ncapio_dir\n` (the CAPIO directory may hold any byte but a newline).
fn read_info(path: &std::path::Path) -> Option<(i32, String, PathBuf)> {
    let text = fs::read(path).ok()?;
    let mut lines = text.split(|&b| b == b'\n');
    let pid = std::str::from_utf8(lines.next()?)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let workflow = String::from_utf8(lines.next()?.to_vec()).ok()?;
    let capio_dir = PathBuf::from(OsStr::from_bytes(lines.next().unwrap_or_default()));
    Some((pid, workflow, capio_dir))
}

/// An observer connection to the workflow's server, and the server's pid.
fn observe(paths: &WorkflowPaths, workflow: &str) -> Result<(Conn, i32)> {
    let stream = UnixStream::connect(&paths.socket)
        .map_err(|_| ClientError::NotRunning(workflow.to_owned()))?;
    let mut conn = Conn::new(stream, workflow);
    let req = HelloReq {
        pid: std::process::id(),
        flags: hello_flags::OBSERVER,
    };
    let hr = conn.call(&req, &[])?.check(&paths.socket)?.fixed;
    Ok((conn, hr.server_pid as i32))
}

/// The pid of the workflow's live server (it answers an observer's `Hello`).
pub(crate) fn running_pid(paths: &WorkflowPaths) -> Result<i32> {
    observe(paths, "").map(|(_, pid)| pid)
}

fn paths_of(workflow: &str) -> Result<WorkflowPaths> {
    WorkflowPaths::for_workflow(workflow).map_err(|e| ClientError::from_io(e, None::<PathBuf>))
}

/// Start the workflow's server unless one runs (it then lives until `stop` or a signal, like a
/// server whose clients never asked for teardown). Returns its pid and whether it was started.
pub fn start(p: &crate::StartParams<'_>) -> Result<(i32, bool)> {
    crate::bootstrap::ensure_running(p)
}

/// The workflow server's state as JSON (format: `capio_server::status`).
pub fn status(workflow: &str) -> Result<String> {
    let (mut conn, _) = observe(&paths_of(workflow)?, workflow)?;
    let reply = conn.call(&StatusReq {}, &[])?.check(&PathBuf::new())?;
    Ok(String::from_utf8_lossy(reply.tail()).into_owned())
}

/// Ask the workflow's server to shut down (it persists what must persist first) and wait up to
/// `timeout` for its process to end. Returns its pid; `NotRunning` when there is none.
pub fn stop(workflow: &str, timeout: Duration) -> Result<i32> {
    let (mut conn, pid) = observe(&paths_of(workflow)?, workflow)?;
    conn.call(&ShutdownReq {}, &[])?.check(&PathBuf::new())?;
    drop(conn);
    let deadline = Instant::now() + timeout;
    while sys::process_alive(pid) {
        if Instant::now() >= deadline {
            return Err(ClientError::Timeout {
                path: PathBuf::from(format!("capio_server (pid {pid})")),
                what: "to exit",
                secs: timeout.as_secs_f64(),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_files_parse_and_junk_is_skipped() {
        let dir = std::env::temp_dir().join(format!("capio-ctl-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let good = dir.join("a.info");
        fs::write(&good, b"123\nmy wf\n/data/capio \xff\n").unwrap();
        let (pid, wf, capio) = read_info(&good).unwrap();
        assert_eq!((pid, wf.as_str()), (123, "my wf"));
        assert_eq!(capio.as_os_str().as_bytes(), b"/data/capio \xff");
        fs::write(&good, b"not a pid\nwf\n").unwrap();
        assert!(read_info(&good).is_none());
        assert!(read_info(&dir.join("missing.info")).is_none());
        fs::remove_dir_all(&dir).unwrap();
    }
}
