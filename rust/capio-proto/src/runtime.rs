//! Where a workflow's server keeps its socket, lock and log: a private (0700) per-user directory.
//! One server runs per (user, workflow name); file names derive from a hash of the name, so any
//! name (with `/`, spaces, any length) maps to a short, safe socket path.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Environment variable that overrides the runtime directory.
pub const RUNTIME_DIR_ENV: &str = "PYCAPIO_RUNTIME_DIR";

/// The per-user runtime directory: `$PYCAPIO_RUNTIME_DIR`, else `$XDG_RUNTIME_DIR/pycapio`, else
/// `/tmp/pycapio-<uid>`. Created 0700 if missing; refused if owned by someone else or open to others.
pub fn runtime_dir() -> io::Result<PathBuf> {
    let dir = if let Some(d) = std::env::var_os(RUNTIME_DIR_ENV).filter(|d| !d.is_empty()) {
        PathBuf::from(d)
    } else if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Path::new(&x).join("pycapio")
    } else {
        PathBuf::from(format!("/tmp/pycapio-{}", crate::sys::getuid()))
    };
    ensure_private_dir(&dir)?;
    Ok(dir)
}

fn ensure_private_dir(dir: &Path) -> io::Result<()> {
    match fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(dir)
    {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let meta = fs::symlink_metadata(dir)?;
    if !meta.is_dir() {
        return Err(io::Error::other(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    if meta.uid() != crate::sys::getuid() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "runtime directory {} is owned by uid {}, not by this user",
                dir.display(),
                meta.uid()
            ),
        ));
    }
    if meta.mode() & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// FNV-1a, 64-bit: stable across versions and processes (unlike std's SipHash keys).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The suffix of the info files a live server keeps in the runtime directory.
pub const INFO_SUFFIX: &str = ".info";

/// The file-name stem for a workflow: a readable prefix of the name plus its hash.
pub fn workflow_stem(workflow: &str) -> String {
    let readable: String = workflow
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(24)
        .collect();
    format!("{readable}-{:016x}", fnv1a(workflow.as_bytes()))
}

/// The end of the marker a workflow whose servers run as an MPI job keeps in its CAPIO directory.
const CLUSTER_MARK: &str = ".capio-cluster";

/// Where that marker lives: in the CAPIO directory, which every node shares, so that a step on a
/// node whose server is not up yet waits for it instead of starting a lone one. Hidden, and never
/// listed by the server. What it says is a [`ClusterMark`].
pub fn cluster_marker(capio_dir: &Path, workflow: &str) -> PathBuf {
    capio_dir.join(format!(".{}{CLUSTER_MARK}", workflow_stem(workflow)))
}

/// Whether a file name is such a marker: `.` + a workflow stem (ending in 16 hex digits) + the mark.
pub fn is_cluster_marker_name(name: &[u8]) -> bool {
    let Some(stem) = name
        .strip_prefix(b".")
        .and_then(|n| n.strip_suffix(CLUSTER_MARK.as_bytes()))
    else {
        return false;
    };
    stem.len() > 17
        && stem[stem.len() - 17] == b'-'
        && stem[stem.len() - 16..].iter().all(u8::is_ascii_hexdigit)
}

/// What the marker says: the first node's server, by pid and host.
#[derive(Debug, PartialEq, Eq)]
pub struct ClusterMark {
    pub pid: i32,
    pub host: String,
}

impl ClusterMark {
    /// The mark of this process, on this host.
    pub fn here() -> ClusterMark {
        ClusterMark {
            pid: std::process::id() as i32,
            host: this_host(),
        }
    }

    pub fn text(&self) -> String {
        format!("{}\n{}\n", self.pid, self.host)
    }

    pub fn parse(text: &str) -> Option<ClusterMark> {
        let mut lines = text.lines();
        let pid = lines.next()?.parse().ok()?;
        let host = lines.next()?.to_owned();
        Some(ClusterMark { pid, host })
    }

    /// Left by a job that is gone: its first server ran on this host and is no longer running
    /// (a live process with its pid that is not a `capio_server` is a reused pid). A mark from
    /// another host cannot be checked from here.
    pub fn is_stale(&self) -> bool {
        self.host == this_host()
            && !(crate::sys::process_alive(self.pid)
                && fs::read_to_string(format!("/proc/{}/comm", self.pid))
                    .is_ok_and(|comm| comm.trim_end() == "capio_server"))
    }
}

/// This host's name as the kernel has it: the one name both the marker's writer and its readers
/// use (MPI's processor name may be shortened).
pub fn this_host() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim_end().to_owned())
        .unwrap_or_default()
}

/// The paths one workflow's server uses inside the runtime directory.
#[derive(Clone, Debug)]
pub struct WorkflowPaths {
    pub socket: PathBuf,
    /// Held (flock) by the live server for its whole life: the single-instance guarantee.
    pub server_lock: PathBuf,
    /// Held by a client while it checks for a server and starts one: serialises concurrent starts.
    pub start_lock: PathBuf,
    pub log: PathBuf,
    /// Written by the server once it listens: `pid\nworkflow\ncapio_dir\n`, for `pycapio server status`.
    pub info: PathBuf,
    /// The directories where the server made hidden files (NUL-separated), so the next server
    /// can remove what a killed one left behind; removed at a clean shutdown.
    pub hidden: PathBuf,
}

impl WorkflowPaths {
    pub fn new(runtime_dir: &Path, workflow: &str) -> WorkflowPaths {
        let stem = workflow_stem(workflow);
        WorkflowPaths {
            socket: runtime_dir.join(format!("{stem}.sock")),
            server_lock: runtime_dir.join(format!("{stem}.lock")),
            start_lock: runtime_dir.join(format!("{stem}.start")),
            log: runtime_dir.join(format!("{stem}.log")),
            info: runtime_dir.join(format!("{stem}.info")),
            hidden: runtime_dir.join(format!("{stem}.hidden")),
        }
    }

    pub fn for_workflow(workflow: &str) -> io::Result<WorkflowPaths> {
        Ok(Self::new(&runtime_dir()?, workflow))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_mark_is_recognised_by_its_whole_form() {
        let m = cluster_marker(Path::new("/c"), "wf");
        let name = m.file_name().unwrap().as_encoded_bytes();
        assert!(is_cluster_marker_name(name), "{m:?}");
        for other in [
            &b".x.capio-cluster"[..],
            b"wf-0123456789abcdef.capio-cluster",
            b".a-0123.capio-cluster",
        ] {
            assert!(
                !is_cluster_marker_name(other),
                "{:?}",
                String::from_utf8_lossy(other)
            );
        }
    }

    #[test]
    fn a_cluster_mark_reads_back_and_knows_when_it_is_stale() {
        let mine = ClusterMark::here();
        assert_eq!(ClusterMark::parse(&mine.text()), Some(mine));
        assert_eq!(ClusterMark::parse("12\n"), None);
        // This test process is alive but no capio_server: a reused pid.
        let reused = ClusterMark {
            pid: std::process::id() as i32,
            host: this_host(),
        };
        assert!(reused.is_stale());
        let elsewhere = ClusterMark {
            pid: 1,
            host: format!("{}-other", this_host()),
        };
        assert!(
            !elsewhere.is_stale(),
            "another host's mark cannot be judged here"
        );
    }

    #[test]
    fn stems_are_safe_and_distinct() {
        let a = workflow_stem("my/workflow with spaces");
        assert!(!a.contains('/') && !a.contains(' '));
        assert_ne!(workflow_stem("wf1"), workflow_stem("wf2"));
        let long = "x".repeat(5000);
        assert!(
            WorkflowPaths::new(Path::new("/tmp/pycapio-0"), &long)
                .socket
                .as_os_str()
                .len()
                < 100
        );
    }
}
