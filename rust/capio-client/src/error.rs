//! Client errors, with the one table that gives each its errno: the C API returns it as `-errno`,
//! and Python raises it — as a plain `OSError` subclass for the OS-level errors, as
//! `PyCAPIOException` (itself an `OSError`, carrying the same `errno`) for the runtime's own.

use std::path::PathBuf;

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// An errno from the server or a syscall, with the path it concerns.
    #[error("[Errno {errno}] {}", std::io::Error::from_raw_os_error(*errno))]
    Os { errno: i32, path: Option<PathBuf> },
    #[error("CAPIO is not initialised in this process (call pycapio_init first)")]
    NotInitialized,
    #[error("'{}' is not inside the CAPIO directory '{}'", path.display(), root.display())]
    OutsideCapioDir { path: PathBuf, root: PathBuf },
    #[error("CAPIO is already initialised in this process with {0}; call pycapio_teardown() first")]
    AlreadyInitialized(String),
    #[error("the CAPIO server of workflow '{0}' is gone (it stopped or was killed)")]
    ServerGone(String),
    #[error("could not start capio_server: {0}")]
    Start(String),
    /// `pycapio server status|stop` found no live server of the workflow.
    #[error("no capio_server is running for workflow '{0}'")]
    NotRunning(String),
    /// A CAPIO-CL file that does not load, or that differs from the one the server runs with.
    #[error("{0}")]
    Config(String),
    #[error("protocol error talking to capio_server: {0}")]
    Protocol(#[from] capio_proto::WireError),
    #[error("timed out after {secs:.1} s waiting for '{}' {what}", path.display())]
    Timeout {
        path: PathBuf,
        what: &'static str,
        secs: f64,
    },
    /// A wait for a missing path to be created outlived `PYCAPIO_WAIT_TIMEOUT`: to the caller
    /// it is missing (`ENOENT`), as an optional-file probe expects.
    #[error(
        "No such file or directory (nothing created it within the wait timeout of {secs:.1} s, \
         PYCAPIO_WAIT_TIMEOUT)"
    )]
    NeverCreated { path: PathBuf, secs: f64 },
    #[error("the producer of '{}' terminated before committing it", path.display())]
    ProducerDied { path: PathBuf },
    /// A read of bytes the server released (see `Slot::released`).
    #[error(
        "No data available: the bytes of this file below offset {upto} were released once every \
         consumer its CAPIO-CL rule declares (input_stream) had read them"
    )]
    Released { path: PathBuf, upto: u64 },
    /// A signal handler raised (e.g. KeyboardInterrupt); the exception is already set.
    #[error("interrupted")]
    Interrupted,
}

impl ClientError {
    pub fn os(errno: i32, path: impl Into<Option<PathBuf>>) -> ClientError {
        ClientError::Os {
            errno,
            path: path.into(),
        }
    }

    pub fn from_io(e: std::io::Error, path: impl Into<Option<PathBuf>>) -> ClientError {
        ClientError::os(e.raw_os_error().unwrap_or(libc::EIO), path)
    }

    /// The errno of this error, everywhere it is reported.
    pub fn errno(&self) -> i32 {
        match self {
            ClientError::Os { errno, .. } => *errno,
            ClientError::Timeout { .. } => libc::ETIMEDOUT,
            ClientError::NeverCreated { .. } => libc::ENOENT,
            ClientError::ProducerDied { .. } => libc::EIO,
            ClientError::Released { .. } => libc::ENODATA,
            ClientError::NotInitialized => libc::ENOTCONN,
            ClientError::OutsideCapioDir { .. } => libc::EXDEV,
            ClientError::AlreadyInitialized(_) => libc::EBUSY,
            ClientError::ServerGone(_) => libc::ECONNRESET,
            ClientError::NotRunning(_) => libc::ESRCH,
            ClientError::Start(_) | ClientError::Config(_) => libc::EIO,
            ClientError::Protocol(_) => libc::EPROTO,
            ClientError::Interrupted => libc::EINTR,
        }
    }

    /// An error of the file system itself (raised as the `OSError` subclass of its errno), not of
    /// the CAPIO runtime (raised as `PyCAPIOException`).
    pub fn is_os_level(&self) -> bool {
        matches!(
            self,
            ClientError::Os { .. }
                | ClientError::Timeout { .. }
                | ClientError::NeverCreated { .. }
                | ClientError::ProducerDied { .. }
                | ClientError::Released { .. }
        )
    }

    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            ClientError::Os { path, .. } => path.as_deref(),
            ClientError::Timeout { path, .. }
            | ClientError::NeverCreated { path, .. }
            | ClientError::ProducerDied { path }
            | ClientError::Released { path, .. } => Some(path),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_has_one_errno_and_one_python_class() {
        let p = || PathBuf::from("f");
        let wire = capio_proto::WireError::Eof;
        let table = [
            (ClientError::os(libc::EACCES, p()), libc::EACCES, true),
            (
                ClientError::Timeout {
                    path: p(),
                    what: "to be committed",
                    secs: 1.0,
                },
                libc::ETIMEDOUT,
                true,
            ),
            (
                ClientError::NeverCreated {
                    path: p(),
                    secs: 1.0,
                },
                libc::ENOENT,
                true,
            ),
            (ClientError::ProducerDied { path: p() }, libc::EIO, true),
            (
                ClientError::Released { path: p(), upto: 1 },
                libc::ENODATA,
                true,
            ),
            (ClientError::NotInitialized, libc::ENOTCONN, false),
            (
                ClientError::OutsideCapioDir {
                    path: p(),
                    root: p(),
                },
                libc::EXDEV,
                false,
            ),
            (
                ClientError::AlreadyInitialized("x".into()),
                libc::EBUSY,
                false,
            ),
            (
                ClientError::ServerGone("wf".into()),
                libc::ECONNRESET,
                false,
            ),
            (ClientError::NotRunning("wf".into()), libc::ESRCH, false),
            (ClientError::Start("x".into()), libc::EIO, false),
            (ClientError::Config("x".into()), libc::EIO, false),
            (ClientError::Protocol(wire), libc::EPROTO, false),
            (ClientError::Interrupted, libc::EINTR, false),
        ];
        for (e, errno, os_level) in table {
            assert_eq!((e.errno(), e.is_os_level()), (errno, os_level), "{e:?}");
        }
    }
}
