//! Many nodes, one workflow: each node's server is one rank of an MPI job (`pycapio server run`
//! under `mpirun`/`srun`, built with `PYCAPIO_MPI=1 pip install .`, the cargo feature `mpi`).
//! This module knows the members of the job and carries what the servers tell each other; MPI
//! itself is confined to `transport`, the one thread that calls it.

#[cfg(any(feature = "mpi", test))]
mod message;
#[cfg(feature = "mpi")]
mod push;
#[cfg(feature = "mpi")]
#[allow(unsafe_code)] // the MPI edge: buffers of non-blocking sends outlive the call
mod transport;

use crate::error::{FsError, StartError};
use crate::log::warning;
use crate::namespace::Outbox;
use crate::shared::Shared;
use capio_cl::Rules;
use capio_proto::runtime;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
#[cfg(feature = "mpi")]
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

/// The ranks of the job: this server's, and every node's host name (indexed by rank).
#[derive(Clone, Debug)]
pub struct Members {
    pub rank: usize,
    pub hosts: Vec<String>,
}

impl Members {
    /// The node a CAPIO-CL `manual` home policy means by `app_node`: the first rank on that host.
    pub fn rank_of_host(&self, host: &str) -> Option<usize> {
        self.hosts.iter().position(|h| h == host)
    }

    /// Every node a `manual` home policy names must be one of the job's.
    pub fn check_home_nodes(&self, rules: &Rules) -> Result<(), StartError> {
        match rules
            .manual_home_nodes()
            .into_iter()
            .find(|node| self.rank_of_host(node).is_none())
        {
            None => Ok(()),
            Some(node) => Err(StartError::Cluster(format!(
                "the CAPIO-CL home_node_policies pin paths to node '{node}', which is not in this \
                 job (its nodes: {})",
                self.hosts.join(", ")
            ))),
        }
    }
}

/// How long an exclusive create waits for its arbiter's answer: it comes in one round trip, or
/// the arbiter's node is gone (and the job with it).
#[cfg(feature = "mpi")]
const CLAIM_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Bytes of file data this node sent to and received from the others.
#[derive(Debug, Default)]
pub struct Moved {
    pub sent: AtomicU64,
    pub received: AtomicU64,
}

/// This server's place in a multi-node workflow and its line to the other nodes. Dropping it
/// finishes (a node that fails after joining still tells the others, so the job ends cleanly).
pub struct Cluster {
    pub members: Members,
    pub moved: Arc<Moved>,
    #[cfg(feature = "mpi")]
    link: Mutex<Option<transport::Link>>,
    /// The first node's mark of the shared CAPIO directory, removed once every node stopped.
    #[cfg(feature = "mpi")]
    marker: Mutex<Option<Marker>>,
}

impl Cluster {
    /// Join the MPI job this server was launched in (`--backend mpi`). The first node marks the
    /// shared CAPIO directory at once (see `capio_proto::runtime::cluster_marker`), before any
    /// node's server listens, so that no step can start a lone server meanwhile.
    pub fn join(capio_dir: &Path, workflow: &str) -> Result<Cluster, StartError> {
        #[cfg(feature = "mpi")]
        {
            let marker = runtime::cluster_marker(capio_dir, workflow);
            let (members, marker, link) = transport::start(marker).map_err(StartError::Cluster)?;
            Ok(Cluster {
                members,
                moved: link.moved(),
                link: Mutex::new(Some(link)),
                marker: Mutex::new(marker),
            })
        }
        #[cfg(not(feature = "mpi"))]
        {
            let _ = (capio_dir, workflow);
            Err(StartError::NoMpi)
        }
    }

    /// Where the namespace tells the other nodes what happens here.
    pub fn outbox(&self) -> Option<Box<dyn Outbox>> {
        #[cfg(feature = "mpi")]
        {
            locked(&self.link).as_ref().map(transport::Link::outbox)
        }
        #[cfg(not(feature = "mpi"))]
        None
    }

    /// Deliver what the other nodes say to `server` from now on.
    pub fn serve(&self, server: &Arc<Shared>) {
        #[cfg(feature = "mpi")]
        if let Some(link) = locked(&self.link).as_ref() {
            link.serve(Arc::downgrade(server));
        }
        #[cfg(not(feature = "mpi"))]
        let _ = server;
    }

    /// Ask the node that arbitrates `path` for the right to create it exclusively (`O_EXCL`):
    /// of two nodes creating one name at once, exactly one is granted it. `Err` when no answer
    /// came (the job is going down).
    pub fn claim(&self, path: &Path) -> Result<bool, FsError> {
        #[cfg(feature = "mpi")]
        {
            let asked = locked(&self.link).as_ref().map(|link| link.claim(path));
            match asked {
                Some(answer) => answer
                    .recv_timeout(CLAIM_WAIT)
                    .map_err(|_| FsError::Io(std::io::Error::from_raw_os_error(libc::EIO))),
                None => Err(FsError::Closing),
            }
        }
        #[cfg(not(feature = "mpi"))]
        {
            let _ = path;
            Ok(true)
        }
    }

    /// A granted claim whose create failed: the name is free again.
    pub fn release(&self, path: &Path) {
        #[cfg(feature = "mpi")]
        if let Some(link) = locked(&self.link).as_ref() {
            link.release(path);
        }
        #[cfg(not(feature = "mpi"))]
        let _ = path;
    }

    /// This node is stopping: so must every other (each node says it once, whoever started it).
    pub fn announce_stop(&self, why: &str) {
        #[cfg(feature = "mpi")]
        if let Some(link) = locked(&self.link).as_ref() {
            link.announce_stop(why);
        }
        #[cfg(not(feature = "mpi"))]
        let _ = why;
    }

    /// After the server's own shutdown: wait until every node has stopped, then leave MPI.
    pub fn finish(&self) {
        #[cfg(feature = "mpi")]
        {
            // Taken out first: the link's lock must not be held while the MPI thread, which
            // may be delivering a stop that announces through that lock, is joined.
            let link = locked(&self.link).take();
            if let Some(link) = link {
                link.finish();
            }
            drop(locked(&self.marker).take());
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(feature = "mpi")]
fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The CAPIO directory's mark of a running multi-node job, removed on drop.
pub struct Marker(PathBuf);

impl Marker {
    /// Write the mark of this process; `None` (logged) if it cannot be written.
    pub fn write(path: PathBuf) -> Option<Marker> {
        match fs::write(&path, runtime::ClusterMark::here().text()) {
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
}

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
    fn manual_homes_must_name_nodes_of_the_job() {
        let members = Members {
            rank: 1,
            hosts: vec!["a".into(), "b".into(), "b".into()],
        };
        assert_eq!(
            members.rank_of_host("b"),
            Some(1),
            "the first rank on the host"
        );
        let rules = |node: &str| {
            let json = format!(
                r#"{{"name": "wf", "IO_Graph": [], "home_node_policies": {{"manual": [{{"name": ["x"], "app_node": "{node}"}}]}}}}"#
            );
            let config = capio_cl::Config::parse(&json, Path::new("wf.json")).unwrap();
            Rules::new(&config, Path::new("/capio"))
        };
        assert!(members.check_home_nodes(&rules("b")).is_ok());
        let e = members
            .check_home_nodes(&rules("c"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("node 'c', which is not in this job (its nodes: a, b, b)"),
            "{e}"
        );
    }

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
