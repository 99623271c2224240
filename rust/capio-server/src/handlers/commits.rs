//! Commits leaving the namespace and their persistence, run by the thread whose request made them.

use crate::error::FsError;
use crate::log::{debug, error};
use crate::namespace::{Commit, Namespace};
use crate::persist;
use crate::server::{Server, WorkGuard};
use std::path::Path;

/// Run `op` on the namespace and take the commits it made in the same critical section, so the
/// thread whose request committed a file is the one that persists it (before it replies).
pub(super) fn with_commits<T>(
    server: &Server,
    op: impl FnOnce(&mut Namespace) -> T,
) -> (T, Vec<Commit>) {
    let mut ns = server.ns();
    let out = op(&mut ns);
    (out, ns.take_commits())
}

/// Persist `commits` while `work` keeps shutdown waiting; without it the server is draining and
/// the shutdown report names what is left. Returns the first error as `-errno`, or 0.
pub fn persist_all(server: &Server, commits: Vec<Commit>, work: Option<&WorkGuard>) -> i32 {
    let mut first_error = 0;
    for (path, generation) in commits.into_iter().filter(|_| work.is_some()) {
        if let Err(e) = persist_one(server, &path, generation) {
            error!("cannot persist {}: {e}", path.display());
            if first_error == 0 {
                first_error = -e.errno();
            }
        }
    }
    first_error
}

fn persist_one(server: &Server, path: &Path, generation: u64) -> Result<(), FsError> {
    // The copy runs outside the namespace lock; only the superseded-check and rename hold it.
    let Some(job) = server.ns().persist_job(path, generation)? else {
        return Ok(());
    };
    if job.in_place {
        match server.ns().install_in_place(&job) {
            Ok(true) => {
                debug!("persisted {} in place ({} bytes)", path.display(), job.len);
                return Ok(());
            }
            Ok(false) => {}
            // Say, a mount point between the data file and its real path: copy instead.
            Err(e) => debug!("cannot rename {} into place ({e}); copying", path.display()),
        }
    }
    let temp = persist::write_temp(&job)?;
    if server.ns().install(&job, temp)? {
        debug!("persisted {} ({} bytes)", path.display(), job.len);
    }
    Ok(())
}
