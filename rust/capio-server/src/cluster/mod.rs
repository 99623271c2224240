//! Many nodes, one workflow: each node's server is one rank of an MPI job (`pycapio server run`
//! under `mpirun`/`srun`, built with `PYCAPIO_MPI=1 pip install .`, the cargo feature `mpi`).
//! This module knows the members of the job and carries what the servers tell each other; MPI
//! itself is confined to `transport`, the one thread that calls it.

#[cfg(any(feature = "mpi", test))]
mod message;
#[cfg(feature = "mpi")]
mod transport;

use crate::error::StartError;
use crate::log::warning;
use crate::shared::Shared;
use capio_proto::runtime;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
#[cfg(feature = "mpi")]
use std::sync::Mutex;

/// The ranks of the job: this server's, and every node's host name (indexed by rank).
#[derive(Clone, Debug)]
pub struct Members {
    pub rank: usize,
    pub hosts: Vec<String>,
}

/// This server's place in a multi-node workflow and its line to the other nodes.
pub struct Cluster {
    pub members: Members,
    #[cfg(feature = "mpi")]
    link: Mutex<Option<transport::Link>>,
}

impl Cluster {
    /// Join the MPI job this server was launched in (`--backend mpi`).
    pub fn join() -> Result<Cluster, StartError> {
        #[cfg(feature = "mpi")]
        {
            let (members, link) = transport::start().map_err(StartError::Cluster)?;
            Ok(Cluster {
                members,
                link: Mutex::new(Some(link)),
            })
        }
        #[cfg(not(feature = "mpi"))]
        Err(StartError::NoMpi)
    }

    /// Deliver what the other nodes say (a stop, so far) to `server` from now on.
    pub fn serve(&self, server: Arc<Shared>) {
        #[cfg(feature = "mpi")]
        if let Some(link) = self.link().as_ref() {
            link.serve(server);
        }
        #[cfg(not(feature = "mpi"))]
        let _ = server;
    }

    /// This node is stopping: so must every other (each node says it once, whoever started it).
    pub fn announce_stop(&self, why: &str) {
        #[cfg(feature = "mpi")]
        if let Some(link) = self.link().as_ref() {
            link.announce_stop(why);
        }
        #[cfg(not(feature = "mpi"))]
        let _ = why;
    }

    /// After the server's own shutdown: wait until every node has stopped, then leave MPI.
    pub fn finish(&self) {
        #[cfg(feature = "mpi")]
        if let Some(link) = self.link().take() {
            link.finish();
        }
    }

    /// On the first node: mark the shared CAPIO directory as served by this job, so that a step
    /// on a node whose server is not up yet waits for it (see `capio_proto::runtime::
    /// cluster_marker`). The mark goes when the returned guard drops, after the shutdown.
    pub fn mark_shared_dir(&self, capio_dir: &Path, workflow: &str) -> Option<Marker> {
        if self.members.rank != 0 {
            return None;
        }
        let path = runtime::cluster_marker(capio_dir, workflow);
        let text = format!("{}\n{}\n", std::process::id(), self.members.hosts[0]);
        match fs::write(&path, text) {
            Ok(()) => Some(Marker(path)),
            Err(e) => {
                warning!(
                    "cannot write {}: {e}; a step started before its node's server may start a \
                     lone one",
                    path.display()
                );
                None
            }
        }
    }

    #[cfg(feature = "mpi")]
    fn link(&self) -> std::sync::MutexGuard<'_, Option<transport::Link>> {
        self.link.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The CAPIO directory's mark of a running multi-node job, removed on drop.
pub struct Marker(PathBuf);

impl Drop for Marker {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// `Some(library version)` when built with MPI support, `None` otherwise.
pub fn mpi_library() -> Option<String> {
    #[cfg(feature = "mpi")]
    {
        // MPI_Get_library_version may be called before MPI_Init; a failure still means "built in".
        Some(
            mpi::environment::library_version()
                .map(|v| {
                    v.split([',', '\n'])
                        .next()
                        .unwrap_or_default()
                        .trim()
                        .to_owned()
                })
                .unwrap_or_else(|_| "unknown MPI library".to_owned()),
        )
    }
    #[cfg(not(feature = "mpi"))]
    None
}

/// One line for `--version` and logs.
pub fn support_line() -> String {
    match mpi_library() {
        Some(library) => format!("MPI support: built in ({library})"),
        None => "MPI support: not built in (build with PYCAPIO_MPI=1 pip install .)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_says_whether_mpi_is_built_in() {
        let line = support_line();
        if cfg!(feature = "mpi") {
            assert!(line.starts_with("MPI support: built in ("), "{line}");
        } else {
            assert!(line.starts_with("MPI support: not built in"), "{line}");
        }
    }
}
