//! The server's error types: per-request file-system errors (sent as `-errno`) and start-up failures.

use std::io;
use std::path::PathBuf;

/// Why a request on a path failed; each variant maps to the errno a real file system would give.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("no such file or directory")]
    NotFound,
    #[error("file exists")]
    Exists,
    #[error("is a directory")]
    IsDir,
    #[error("not a directory")]
    NotDir,
    #[error("directory not empty")]
    NotEmpty,
    /// `EBUSY`: the CAPIO directory itself cannot be removed or moved.
    #[error("the CAPIO directory itself cannot be removed or moved")]
    Busy,
    /// `EINVAL`: a directory cannot be moved into its own subtree.
    #[error("cannot move a directory into itself")]
    IntoItself,
    /// `EINVAL`: a request flag this server does not implement.
    #[error("unsupported flags {0:#x}")]
    BadFlags(u32),
    /// `EXDEV`: the path (or a symlink on the way) leaves the client's CAPIO directory.
    #[error("path is outside the client's CAPIO directory")]
    OutsideRoot,
    /// `EXDEV`: the CAPIO-CL configuration excludes the path; the OS, not CAPIO, serves it.
    #[error("path is excluded from CAPIO by the CAPIO-CL configuration")]
    Excluded,
    #[error("path is not absolute and lexically normalised")]
    BadPath,
    /// `EIO`: the producer terminated before committing the file.
    #[error("the file's producer terminated before committing it")]
    Aborted,
    /// FIFOs, sockets and devices inside a CAPIO directory are never opened by the server.
    #[error("not a regular file or directory")]
    Unsupported,
    #[error("the shared state table is full")]
    TableFull,
    /// `ENOSPC`: the server's memory budget (`--memory-limit`) cannot hold the write.
    #[error("the server's memory budget of {limit} bytes is exhausted")]
    NoSpace { limit: u64 },
    /// `ENODATA`: part of the file was released after its declared consumers read it (a stream
    /// renamed to a permanent path): it cannot be persisted whole.
    #[error("part of the file was released after its declared consumers read it")]
    Released,
    /// `ENAMETOOLONG`: a component longer than `NAME_MAX` or a path of `PATH_MAX` bytes or more.
    #[error("file name too long")]
    NameTooLong,
    /// `EBADF`: the request names a file the client does not have open (for writing).
    #[error("the file is not open for writing by this client")]
    NotOpen,
    /// The client already sent `Exit`.
    #[error("client has already exited")]
    Exited,
    /// `ESHUTDOWN`: the server decided to stop (its last client left with a teardown request, or
    /// it was told to) and takes no new client; the client attaches to a fresh server instead.
    #[error("the server is shutting down")]
    Closing,
    /// `EROFS`: the file is written on another node of the workflow; here it is read-only.
    #[error("the file is written on node {node}; on this node it is read-only")]
    WrittenElsewhere { node: usize },
    /// `EXDEV`: a file written on another node cannot be renamed here.
    #[error("the file is written on node {node}; rename it there")]
    MovedElsewhere { node: usize },
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl FsError {
    /// The positive errno for this error.
    pub fn errno(&self) -> i32 {
        match self {
            FsError::NotFound => libc::ENOENT,
            FsError::Exists => libc::EEXIST,
            FsError::IsDir => libc::EISDIR,
            FsError::NotDir => libc::ENOTDIR,
            FsError::NotEmpty => libc::ENOTEMPTY,
            FsError::Busy => libc::EBUSY,
            FsError::Released => libc::ENODATA,
            FsError::IntoItself | FsError::BadFlags(_) => libc::EINVAL,
            FsError::OutsideRoot | FsError::Excluded | FsError::MovedElsewhere { .. } => {
                libc::EXDEV
            }
            FsError::WrittenElsewhere { .. } => libc::EROFS,
            FsError::BadPath => libc::EINVAL,
            FsError::Aborted => libc::EIO,
            FsError::Unsupported => libc::EOPNOTSUPP,
            FsError::TableFull | FsError::NoSpace { .. } => libc::ENOSPC,
            FsError::NameTooLong => libc::ENAMETOOLONG,
            FsError::NotOpen => libc::EBADF,
            FsError::Exited | FsError::Closing => libc::ESHUTDOWN,
            FsError::Io(e) => e.raw_os_error().unwrap_or(libc::EIO),
        }
    }

    /// Classify an OS error from a lookup: the errors a path walk can legitimately produce become
    /// their own variants, so callers can match on them.
    pub fn from_lookup(e: io::Error) -> FsError {
        match e.raw_os_error() {
            Some(libc::ENOENT) => FsError::NotFound,
            Some(libc::ENOTDIR) => FsError::NotDir,
            Some(libc::EEXIST) => FsError::Exists,
            Some(libc::EISDIR) => FsError::IsDir,
            Some(libc::ENOTEMPTY) => FsError::NotEmpty,
            _ => FsError::Io(e),
        }
    }
}

/// Why the server could not start; reported as `ERR <message>` and exit status 1.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("CAPIO_DIR is not set and --capio-dir was not given")]
    NoCapioDir,
    #[error("CAPIO directory {}: {source}", path.display())]
    CapioDir { path: PathBuf, source: io::Error },
    #[error("CAPIO directory {} is not a directory", .0.display())]
    CapioDirNotDir(PathBuf),
    #[error("backend '{0}' is not supported by this build")]
    Backend(String),
    #[error(
        "backend 'mpi' needs a server built with MPI support (PYCAPIO_MPI=1 pip install .); this \
         one was built without"
    )]
    NoMpi,
    #[error("cannot join the MPI job: {0}")]
    Cluster(String),
    #[error(
        "invalid memory limit '{0}' (--memory-limit or $PYCAPIO_MEMORY_LIMIT): expected a byte \
         count such as 4096, 512M or 2G"
    )]
    MemoryLimit(String),
    #[error(
        "invalid pool limit '{0}' (--pool-limit or $PYCAPIO_POOL_LIMIT): expected 0 or a byte \
         count such as 4096, 512M or 2G"
    )]
    PoolLimit(String),
    #[error(
        "invalid pool idle time '{0}' (--pool-idle or $PYCAPIO_POOL_IDLE): expected seconds \
         such as 30 or 0.5"
    )]
    PoolIdle(String),
    /// The CAPIO-CL file is unreadable or invalid; its message names the file and, for a bad
    /// value, the value's JSON path.
    #[error(transparent)]
    Config(#[from] capio_cl::ConfigError),
    #[error(
        "a capio_server for workflow '{workflow}' is already running{}",
        .pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    AlreadyRunning { workflow: String, pid: Option<i32> },
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
}

impl StartError {
    pub fn io(what: impl Into<String>) -> impl FnOnce(io::Error) -> StartError {
        let what = what.into();
        move |source| StartError::Io { what, source }
    }
}
