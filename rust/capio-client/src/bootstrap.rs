//! Attaching to a workflow's server, starting it when none runs. Concurrent starters serialise on
//! a start lock; the server proves it is listening through a ready pipe (no sleeps, no polling),
//! and a server that cannot start says why on the same pipe.

use crate::conn::Conn;
use crate::error::{ClientError, Result};
use capio_proto::runtime::{self, ClusterMark, WorkflowPaths};
use capio_proto::{HelloReq, StateTable, sys};
use std::fs::OpenOptions;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The server's memory budget (`capio_server --memory-limit`), passed on when a client starts it.
pub const MEMORY_LIMIT_ENV: &str = "PYCAPIO_MEMORY_LIMIT";

pub struct Attached {
    pub conn: Conn,
    pub table: StateTable,
    pub server_pid: i32,
    /// Set when this call started the server.
    pub started: bool,
    /// The server's CAPIO-CL file, if it runs with one.
    pub config: Option<PathBuf>,
    /// `HelloReply::flags` (`server_flags`).
    pub flags: u32,
}

pub struct StartParams<'a> {
    pub workflow: &'a str,
    pub app: &'a str,
    pub capio_dir: &'a Path,
    pub server_exe: &'a Path,
    pub config_file: Option<&'a Path>,
    pub ready_timeout: Duration,
    /// Start it `--managed` (`pycapio server start`): it ignores clients' teardown requests.
    pub managed: bool,
}

/// Connect to the running server, or start one and connect. A server that is shutting down may
/// reset a fresh connection: that is retried a few times against the next server.
pub fn attach(p: &StartParams<'_>) -> Result<Attached> {
    let paths = WorkflowPaths::for_workflow(p.workflow)
        .map_err(|e| ClientError::Start(format!("runtime directory: {e}")))?;
    let mut last = None;
    for _ in 0..5 {
        match attach_once(p, &paths) {
            Ok(a) => return Ok(a),
            Err(e @ ClientError::ServerGone(_)) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| ClientError::ServerGone(p.workflow.to_owned())))
}

/// Start the workflow's server unless one is running, without attaching to it (`pycapio server
/// start`). Returns its pid and whether this call started it.
pub fn ensure_running(p: &StartParams<'_>) -> Result<(i32, bool)> {
    let paths = WorkflowPaths::for_workflow(p.workflow)
        .map_err(|e| ClientError::Start(format!("runtime directory: {e}")))?;
    let lock = take_start_lock(&paths)?;
    if let Ok(pid) = crate::control::running_pid(&paths) {
        return Ok((pid, false));
    }
    if let Some(job) = running_job(p) {
        drop(lock);
        drop(await_node_server(p, &paths, &job)?);
        let pid = crate::control::running_pid(&paths)
            .map_err(|_| ClientError::ServerGone(p.workflow.to_owned()))?;
        return Ok((pid, false));
    }
    let pid = start_server(p, &paths)?;
    drop(lock);
    Ok((pid, true))
}

/// A multi-node job serving this workflow, found by its mark in the CAPIO directory.
struct Job {
    marker: PathBuf,
    mark: ClusterMark,
}

/// The job serving this workflow, unless there is none or its mark is stale.
fn running_job(p: &StartParams<'_>) -> Option<Job> {
    let marker = runtime::cluster_marker(p.capio_dir, p.workflow);
    let text = std::fs::read_to_string(&marker).ok()?;
    // One being written reads as a live job of an unknown host: waiting is the safe side.
    let mark = ClusterMark::parse(&text).unwrap_or(ClusterMark {
        pid: 0,
        host: "?".into(),
    });
    (!mark.is_stale()).then_some(Job { marker, mark })
}

/// The workflow's servers run as an MPI job but this node's is not listening (yet): wait for its
/// socket, up to the start timeout, rather than start a lone server that would take itself for
/// the whole workflow. Checked every 20 ms (a node's server comes up once per workflow run).
fn await_node_server(p: &StartParams<'_>, paths: &WorkflowPaths, job: &Job) -> Result<UnixStream> {
    let deadline = std::time::Instant::now() + p.ready_timeout;
    loop {
        if let Ok(stream) = UnixStream::connect(&paths.socket) {
            return Ok(stream);
        }
        if !job.marker.exists() {
            // The job ended meanwhile: what to do is decided afresh.
            return Err(ClientError::ServerGone(p.workflow.to_owned()));
        }
        if std::time::Instant::now() >= deadline {
            return Err(ClientError::Start(format!(
                "workflow '{}' runs its servers as an MPI job (first node {}; {}), but \
                 this node's server is not listening in {} after {:.0} s: start the job with one \
                 'pycapio server run' per node, or remove the marker if no such job runs",
                p.workflow,
                job.mark.host,
                job.marker.display(),
                paths.socket.parent().unwrap_or(Path::new("?")).display(),
                p.ready_timeout.as_secs_f64()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn take_start_lock(paths: &WorkflowPaths) -> Result<std::fs::File> {
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&paths.start_lock)
        .map_err(|e| ClientError::Start(format!("{}: {e}", paths.start_lock.display())))?;
    sys::flock_exclusive(lock.as_fd(), true)
        .map_err(|e| ClientError::Start(format!("start lock: {e}")))?;
    Ok(lock)
}

fn attach_once(p: &StartParams<'_>, paths: &WorkflowPaths) -> Result<Attached> {
    if let Ok(stream) = UnixStream::connect(&paths.socket) {
        return hello(stream, p, false, 0);
    }
    let lock = take_start_lock(paths)?;
    // Someone else may have started it while we waited for the lock.
    if let Ok(stream) = UnixStream::connect(&paths.socket) {
        return hello(stream, p, false, 0);
    }
    if let Some(job) = running_job(p) {
        drop(lock);
        return hello(await_node_server(p, paths, &job)?, p, false, 0);
    }
    let pid = start_server(p, paths)?;
    let stream = UnixStream::connect(&paths.socket).map_err(|e| {
        ClientError::Start(format!(
            "server reported ready but {} refused: {e}",
            paths.socket.display()
        ))
    })?;
    drop(lock);
    hello(stream, p, true, pid)
}

fn start_server(p: &StartParams<'_>, paths: &WorkflowPaths) -> Result<i32> {
    let (ready_r, ready_w) = sys::pipe().map_err(|e| ClientError::Start(format!("pipe: {e}")))?;
    let mut cmd = Command::new(p.server_exe);
    cmd.arg("--daemonize")
        .arg("--ready-fd")
        .arg(ready_w.as_raw_fd().to_string())
        .arg("--capio-dir")
        .arg(p.capio_dir)
        .arg("--workflow-name")
        .arg(p.workflow)
        .env("CAPIO_DIR", p.capio_dir)
        .env("CAPIO_WORKFLOW_NAME", p.workflow)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    match p.config_file {
        Some(f) => cmd.arg("--config").arg(f),
        None => cmd.arg("--no-config"),
    };
    if p.managed {
        cmd.arg("--managed");
    }
    // Passed explicitly (not only inherited) so `ps` and the server's log show the budget.
    if let Some(limit) = std::env::var_os(MEMORY_LIMIT_ENV).filter(|v| !v.is_empty()) {
        cmd.arg("--memory-limit").arg(limit);
    }
    sys::inherit_fd_on_spawn(&mut cmd, ready_w.as_raw_fd());
    let mut child = cmd.spawn().map_err(|e| {
        ClientError::Start(format!("cannot execute '{}': {e}", p.server_exe.display()))
    })?;
    drop(ready_w);
    // The server forks into the background at once; reap the intermediate so no zombie remains.
    let _ = child.wait();
    let mut line = Vec::new();
    let mut ready = std::fs::File::from(ready_r);
    let deadline = std::time::Instant::now() + p.ready_timeout;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if !sys::poll_readable(ready.as_fd(), left).unwrap_or(false) {
            return Err(ClientError::Start(format!(
                "the server did not become ready within {:.1} s (await_server_timeout_seconds); log: {}",
                p.ready_timeout.as_secs_f64(),
                paths.log.display()
            )));
        }
        let mut buf = [0u8; 512];
        let n = ready.read(&mut buf).unwrap_or(0);
        if n == 0 {
            break;
        }
        line.extend_from_slice(&buf[..n]);
        if line.contains(&b'\n') {
            break;
        }
    }
    let text = String::from_utf8_lossy(&line);
    let text = text.trim();
    if let Some(pid) = text.strip_prefix("OK ") {
        return pid
            .trim()
            .parse()
            .map_err(|_| ClientError::Start(format!("bad ready message '{text}'")));
    }
    if let Some(msg) = text.strip_prefix("ERR ") {
        return Err(ClientError::Start(msg.to_owned()));
    }
    Err(ClientError::Start(format!(
        "the server exited during start-up; log: {}",
        paths.log.display()
    )))
}

fn hello(
    stream: UnixStream,
    p: &StartParams<'_>,
    started: bool,
    started_pid: i32,
) -> Result<Attached> {
    let mut conn = Conn::new(stream, p.workflow);
    let mut tail = p.app.as_bytes().to_vec();
    tail.push(0);
    tail.extend_from_slice(p.capio_dir.as_os_str().as_bytes());
    let req = HelloReq {
        pid: std::process::id(),
        flags: 0,
    };
    let reply = conn
        .call(&req, &tail)?
        .check(p.capio_dir)
        .map_err(|e| match e {
            // The server is stopping and takes no new client: attach to the next one.
            ClientError::Os {
                errno: libc::ESHUTDOWN,
                ..
            } => ClientError::ServerGone(p.workflow.to_owned()),
            e => e,
        })?;
    let hr = reply.fixed;
    let config = Some(reply.tail())
        .filter(|c| !c.is_empty())
        .map(|c| PathBuf::from(std::ffi::OsStr::from_bytes(c)));
    let fd = reply
        .fd
        .ok_or_else(|| ClientError::Start("the server sent no state table".into()))?;
    let table = StateTable::map(fd, hr.table_slots)
        .map_err(|e| ClientError::from_io(e, None::<PathBuf>))?;
    let server_pid = if started {
        started_pid
    } else {
        hr.server_pid as i32
    };
    Ok(Attached {
        conn,
        table,
        server_pid,
        started,
        config,
        flags: hr.flags,
    })
}
