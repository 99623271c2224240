//! The server process from start to exit: single-instance lock, socket, readiness, the accept loop
//! with its peer-credential check, and the ordered shutdown.

use crate::cli::{Options, Settings};
use crate::cluster::Cluster;
use crate::error::StartError;
use crate::leftovers;
use crate::log::{self, error, info, warning};
use crate::namespace::Namespace;
use crate::ready::Ready;
use crate::session;
use crate::shared::{Identity, Shared};
use capio_proto::runtime::WorkflowPaths;
use capio_proto::{StateTable, sys, table};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Duration;

/// How long a new server waits for a previous one of the same workflow to finish its shutdown.
pub const LOCK_WAIT: Duration = Duration::from_secs(10);

/// Run the server until a graceful shutdown. `Err` means start-up failed before readiness was
/// reported; the caller reports it.
pub fn run(opts: &Options, ready: &mut Ready) -> Result<(), StartError> {
    if opts.daemonize {
        sys::daemonize().map_err(StartError::io("cannot daemonize"))?;
    }
    // Before any thread exists: every thread inherits the mask, and only the signal thread takes
    // the signals (synchronously, so shutdown runs as ordinary code).
    sys::block_termination_signals().map_err(StartError::io("cannot block signals"))?;
    sys::ignore_lease_breaks().map_err(StartError::io("cannot ignore SIGIO"))?;
    let settings = opts.resolve(|k| std::env::var_os(k))?;
    let paths = WorkflowPaths::for_workflow(&settings.workflow)
        .map_err(StartError::io("runtime directory"))?;
    init_log(opts, &settings, &paths)?;
    // Joining is collective: every rank of the job starts its server at once.
    let cluster = settings
        .multinode
        .then(|| Cluster::join(&settings.capio_dir, &settings.workflow))
        .transpose()?;
    if let Some(cluster) = &cluster {
        cluster.members.check_home_nodes(&settings.rules)?;
    }
    let _lock = acquire_lock(&paths, &settings.workflow)?;
    // Holding the lock: any previous server of this workflow is gone, and what it left is ours.
    match leftovers::start(&paths.hidden) {
        Ok(recovered) => leftovers::report(&recovered),
        Err(e) => warning!(
            "cannot use {}: {e}; hidden files a killed server left are not cleaned up",
            paths.hidden.display()
        ),
    }

    // Whatever socket file is there belongs to a server that no longer holds the lock.
    remove_if_present(&paths.socket).map_err(StartError::io("cannot remove the stale socket"))?;
    let listener = UnixListener::bind(&paths.socket).map_err(StartError::io(format!(
        "cannot listen on {}",
        paths.socket.display()
    )))?;
    let started = fs::set_permissions(&paths.socket, fs::Permissions::from_mode(0o600))
        .map_err(StartError::io("cannot restrict the socket"))
        .and_then(|()| write_info(&paths, &settings));
    if let Err(e) = started {
        let _ = remove_if_present(&paths.socket);
        return Err(e);
    }
    let table = Arc::new(
        StateTable::create(table::DEFAULT_SLOTS)
            .map_err(StartError::io("cannot create the state table"))?,
    );
    let mut ns = Namespace::new(table.clone(), settings.rules.clone());
    ns.set_memory_limit(settings.memory_limit);
    ns.set_pool_limit(settings.pool_limit);
    ns.set_pool_idle(settings.pool_idle);
    // Spilling only matters under a limit; without a usable directory files stay in memory.
    if settings.memory_limit.is_some() {
        match crate::spill::SpillDir::open(&settings.spill_parent) {
            Ok(dir) => {
                if sys::in_memory_fs(dir.path()) {
                    warning!(
                        "the spill directory {} is in memory (tmpfs): files spilled there still \
                         use memory, outside --memory-limit; set PYCAPIO_SPILL_DIR (or \
                         --spill-dir) to a directory on disk",
                        dir.path().display()
                    );
                }
                ns.set_spill_dir(dir);
            }
            Err(e) => warning!(
                "cannot use the spill directory under {}: {e}; files will not leave memory",
                settings.spill_parent.display()
            ),
        }
    }
    if let Some(cluster) = &cluster
        && let Some(outbox) = cluster.outbox()
    {
        let members = &cluster.members;
        ns.join_cluster(
            members.rank,
            members.hosts.clone(),
            settings.capio_dir.clone(),
            outbox,
        );
    }
    let identity = Identity {
        workflow: settings.workflow.clone(),
        capio_dir: settings.capio_dir.clone(),
        log: log_path(opts, &paths).map(Path::to_path_buf),
        managed: opts.managed,
    };
    let server = Arc::new(Shared::new(
        ns,
        table,
        listener,
        settings.config.clone(),
        identity,
        cluster,
    ));
    if let Some(cluster) = &server.cluster {
        cluster.serve(&server);
    }

    let on_signal = server.clone();
    thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let why = match sys::wait_termination_signal() {
                libc::SIGTERM => "SIGTERM".to_owned(),
                libc::SIGINT => "SIGINT".to_owned(),
                libc::SIGHUP => "SIGHUP".to_owned(),
                other => format!("signal {other}"),
            };
            on_signal.begin_shutdown(&why);
        })
        .map_err(StartError::io("cannot start the signal thread"))?;

    let keeper = Arc::downgrade(&server);
    thread::Builder::new()
        .name("memory-keeper".into())
        .spawn(move || keep_memory(&keeper))
        .map_err(StartError::io("cannot start the memory keeper thread"))?;

    if !ready.ok() {
        // Otherwise it would wait, with no client, for a teardown request that never comes.
        server.begin_shutdown("the client that started it gave up waiting for it");
    }
    info!(
        "listening on {} (pid {}, workflow '{}', CAPIO dir {})",
        paths.socket.display(),
        std::process::id(),
        settings.workflow,
        settings.capio_dir.display()
    );
    accept_loop(&server);
    shut_down(&server, &paths);
    if let Some(cluster) = &server.cluster {
        cluster.finish();
    }
    Ok(())
}

/// The log file, or `None` for stderr.
fn log_path<'a>(opts: &'a Options, paths: &'a WorkflowPaths) -> Option<&'a Path> {
    match (&opts.log_file, opts.daemonize) {
        (Some(path), _) => Some(path.as_path()),
        (None, true) => Some(paths.log.as_path()),
        (None, false) => None,
    }
}

fn init_log(opts: &Options, settings: &Settings, paths: &WorkflowPaths) -> Result<(), StartError> {
    let file = log_path(opts, paths);
    let sink = match file {
        Some(path) => log::Sink::File(
            OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(path)
                .map_err(StartError::io(format!(
                    "cannot open log file {}",
                    path.display()
                )))?,
        ),
        None => log::Sink::Stderr,
    };
    log::init(settings.log_level, sink);
    if let Some(bad) = &settings.bad_log_level {
        warning!("CAPIO_LOG_LEVEL='{bad}' is not error|warn|info|debug or 0-3; using info");
    }
    match &settings.config {
        Some(config) => info!("CAPIO-CL rules: {}", config.display()),
        None => info!(
            "no CAPIO-CL file: every file commits when its producer terminates, readers wait \
             for the commit, and every committed file is persisted"
        ),
    }
    for note in settings.rules.warnings() {
        warning!("CAPIO-CL: {note}");
    }
    let named = settings.rules.workflow_name();
    if settings.config.is_some() && named != settings.workflow {
        warning!(
            "the CAPIO-CL file names workflow '{named}', but this server serves workflow '{}' \
             (the workflow name, not the file, decides which server clients attach to)",
            settings.workflow
        );
    }
    if let Some(limit) = settings.memory_limit {
        info!("memory limit: {limit} bytes for memory-backed files (writes past it get ENOSPC)");
    }
    if opts.mem_only {
        info!("--mem-only has no effect: files are kept in memory until they are persisted");
    }
    Ok(())
}

/// Hold the workflow's server lock for the life of the process. A holder may be a server that is
/// still finishing its shutdown (it unlinks its socket first, so clients start us meanwhile):
/// wait for it, but not forever.
fn acquire_lock(paths: &WorkflowPaths, workflow: &str) -> Result<File, StartError> {
    let lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&paths.server_lock)
        .map_err(StartError::io(format!(
            "cannot open {}",
            paths.server_lock.display()
        )))?;
    let take = |wait| sys::flock_exclusive(lock.as_fd(), wait).map_err(StartError::io("flock"));
    if take(false)? {
        return Ok(lock);
    }
    info!(
        "another server of workflow '{workflow}' holds the lock; waiting up to {} s for it to exit",
        LOCK_WAIT.as_secs()
    );
    // The waiter shares the lock's open file description, so the lock it gets is ours.
    let waiter = lock.try_clone().map_err(StartError::io("dup"))?;
    let (tx, rx) = mpsc::channel();
    thread::Builder::new()
        .name("lock-wait".into())
        .spawn(move || {
            let _ = tx.send(sys::flock_exclusive(waiter.as_fd(), true));
        })
        .map_err(StartError::io("cannot start the lock waiter"))?;
    match rx.recv_timeout(LOCK_WAIT) {
        Ok(Ok(true)) => Ok(lock),
        Ok(Err(e)) => Err(StartError::Io {
            what: "flock".into(),
            source: e,
        }),
        Ok(Ok(false)) | Err(_) => Err(StartError::AlreadyRunning {
            workflow: workflow.to_owned(),
            pid: read_info_pid(&paths.info),
        }),
    }
}

fn read_info_pid(info: &Path) -> Option<i32> {
    fs::read_to_string(info)
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// `pid\nworkflow\ncapio_dir\n`, replaced atomically so a reader never sees half of it.
fn write_info(paths: &WorkflowPaths, settings: &Settings) -> Result<(), StartError> {
    let mut text = format!("{}\n{}\n", std::process::id(), settings.workflow).into_bytes();
    text.extend_from_slice(settings.capio_dir.as_os_str().as_encoded_bytes());
    text.push(b'\n');
    let tmp = paths
        .info
        .with_extension(format!("info.tmp-{}", std::process::id()));
    let written = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(&text))
        .and_then(|()| fs::rename(&tmp, &paths.info));
    written.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        StartError::Io {
            what: format!("cannot write {}", paths.info.display()),
            source: e,
        }
    })
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// How often the memory keeper looks while some file's consumed bytes may be released: at 4 GiB/s
/// a stream moves 40 MiB meanwhile.
const RELEASE_EVERY: Duration = Duration::from_millis(10);

/// The memory keeper, until the server stops: releases what every consumer of a stream has read,
/// and gives pooled memory no file took for its idle time back to the system.
fn keep_memory(server: &std::sync::Weak<Shared>) {
    if let Some(server) = server.upgrade() {
        server.ns().set_memory_keeper(thread::current());
    }
    let mut every = Duration::from_secs(1);
    // Memory a reader held when its file went is looked at again about once a second.
    let mut recheck_due = std::time::Instant::now();
    loop {
        thread::park_timeout(every);
        let Some(server) = server.upgrade().filter(|s| !s.stopping()) else {
            return;
        };
        let mut ns = server.ns();
        ns.release_consumed();
        // Memory leaves the pool at most a sixth of the idle time late.
        every = if ns.releasing() {
            RELEASE_EVERY
        } else {
            (ns.pool_idle() / 6).clamp(Duration::from_millis(100), Duration::from_secs(5))
        };
        if recheck_due <= std::time::Instant::now() {
            ns.recheck_memory_held_elsewhere();
            recheck_due = std::time::Instant::now() + Duration::from_secs(1);
        }
        let given = ns.give_back_idle_memory(std::time::Instant::now());
        drop(ns);
        if given > 0 {
            log::debug!("gave {given} bytes of idle pooled memory back to the system");
        }
    }
}

/// Accept until shutdown; each same-user client gets its own thread.
fn accept_loop(server: &Arc<Shared>) {
    let me = sys::getuid();
    let mut backoff = Duration::from_millis(1);
    loop {
        let stream = match server.listener.accept() {
            Ok((stream, _)) => stream,
            Err(_) if server.stopping() => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                // Out of fds or memory: back off instead of spinning, and keep serving.
                error!("accept failed: {e}");
                thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        backoff = Duration::from_millis(1);
        if server.stopping() {
            return;
        }
        let (uid, pid) = match sys::peer_cred(&stream) {
            Ok(cred) => cred,
            Err(e) => {
                warning!("cannot read a connection's peer credentials: {e}; dropping it");
                continue;
            }
        };
        if uid != me {
            warning!("refused a connection from uid {uid} (pid {pid}): only uid {me} may attach");
            continue;
        }
        let srv = server.clone();
        let spawned = thread::Builder::new()
            .name(format!("client-{pid}"))
            .spawn(move || session::serve(srv, stream, pid));
        if let Err(e) = spawned {
            error!("cannot start a thread for pid {pid}: {e}; dropping the connection");
        }
    }
}

/// How many committed files kept in memory only (as their rule says) the shutdown names.
const NAMED_UNPERSISTED: usize = 20;

/// Ordered shutdown: disappear from the runtime directory, let commits in flight finish
/// persisting, then name every file whose content is not on disk (of committed files kept in
/// memory only as their rule says, the first few and a count).
fn shut_down(server: &Shared, paths: &WorkflowPaths) {
    // First, so a client starting now spawns a fresh server (which waits on our lock).
    for path in [&paths.socket, &paths.info] {
        if let Err(e) = remove_if_present(path) {
            warning!("cannot remove {}: {e}", path.display());
        }
    }
    server.drain_work();
    for dir in server.ns().uncommitted_dirs() {
        warning!(
            "not committed: directory {} (its CAPIO-CL rule never committed it)",
            dir.display()
        );
    }
    // Files lost half-written are named one by one; committed files their rule keeps in memory
    // only are as asked, so a run of thousands of them names a few and counts the rest.
    let (mut kept, mut kept_bytes) = (0usize, 0u64);
    for f in server.ns().shut_down() {
        let apps = if f.apps.is_empty() {
            "no app".to_owned()
        } else {
            f.apps.join(", ")
        };
        let why = match f.state {
            capio_proto::SlotState::Open => "still being written",
            capio_proto::SlotState::Aborted => "its producer crashed",
            _ => {
                kept += 1;
                kept_bytes += f.size;
                if kept > NAMED_UNPERSISTED {
                    continue;
                }
                "committed, not configured to persist"
            }
        };
        warning!(
            "not persisted: {} ({} bytes, {why}, opened by {apps})",
            f.path.display(),
            f.size,
        );
    }
    if kept > NAMED_UNPERSISTED {
        warning!(
            "not persisted: {} more committed files not configured to persist ({kept} files, {kept_bytes} bytes in all)",
            kept - NAMED_UNPERSISTED
        );
    }
    for dir in server.ns().remove_transient_dirs() {
        info!(
            "removed the empty directory {} (made during the run, not permanent)",
            dir.display()
        );
    }
    leftovers::finish();
    info!("stopped");
}
