//! Deciding whether a path is inside the CAPIO directory: the one lexical normalisation
//! (`capio_cl::paths::normalize`, like `posixpath.normpath` of an absolute path), then a
//! component-wise prefix test against the directory's real path and the path it was given as (they
//! differ when it is reached by a symlink).

use crate::error::{ClientError, Result};
pub use capio_cl::paths::normalize;
use std::path::{Path, PathBuf};

/// The CAPIO directory as seen by one client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    /// The real path (symlinks resolved): what the server and the namespace use.
    pub real: PathBuf,
    /// The absolute path as the user gave it; equal to `real` unless it goes through a symlink.
    pub given: PathBuf,
}

impl Scope {
    /// `capio_dir` must exist and be a directory.
    pub fn new(capio_dir: &Path, cwd: &Path) -> std::io::Result<Scope> {
        let given = normalize(capio_dir, cwd);
        let real = std::fs::canonicalize(&given)?;
        if !real.is_dir() {
            return Err(std::io::Error::from_raw_os_error(libc::ENOTDIR));
        }
        Ok(Scope { real, given })
    }

    /// The normalised path rooted at the real CAPIO directory, or None when `p` is outside it.
    pub fn resolve(&self, p: &Path, cwd: &Path) -> Option<PathBuf> {
        let abs = normalize(p, cwd);
        if abs.starts_with(&self.real) {
            return Some(abs);
        }
        let rest = abs.strip_prefix(&self.given).ok()?;
        Some(if rest.as_os_str().is_empty() {
            self.real.clone()
        } else {
            self.real.join(rest)
        })
    }
}

/// Both ends of a rename, each its normalised CAPIO path or None when the OS's. One end outside is
/// `EXDEV`, decided here as between two file systems, so callers fall back to copy and delete like
/// `shutil.move`; both outside is not a CAPIO call at all.
pub(crate) fn rename_ends(
    from: Option<PathBuf>,
    to: Option<PathBuf>,
    src: &Path,
    root: &Path,
) -> Result<(PathBuf, PathBuf)> {
    match (from, to) {
        (Some(from), Some(to)) => Ok((from, to)),
        (None, None) => Err(ClientError::OutsideCapioDir {
            path: src.to_path_buf(),
            root: root.to_path_buf(),
        }),
        _ => Err(ClientError::os(libc::EXDEV, src.to_path_buf())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scope without a directory on disk behind it.
    fn fixed(real: &str, given: &str) -> Scope {
        Scope {
            real: real.into(),
            given: given.into(),
        }
    }

    #[test]
    fn scoping_is_component_wise() {
        let s = fixed("/data", "/data");
        let cwd = Path::new("/");
        assert_eq!(s.resolve(Path::new("/data/x"), cwd), Some("/data/x".into()));
        assert_eq!(s.resolve(Path::new("/data"), cwd), Some("/data".into()));
        assert_eq!(s.resolve(Path::new("/data2/x"), cwd), None);
        assert_eq!(s.resolve(Path::new("/data/../outside"), cwd), None);
        assert_eq!(
            s.resolve(Path::new("x"), Path::new("/data/sub")),
            Some("/data/sub/x".into())
        );
        assert_eq!(
            s.resolve(Path::new("../../etc"), Path::new("/data/sub")),
            None
        );
    }

    #[test]
    fn symlinked_directory_maps_to_real_path() {
        let s = fixed("/real/capio", "/link");
        let cwd = Path::new("/");
        assert_eq!(
            s.resolve(Path::new("/link/a/b"), cwd),
            Some("/real/capio/a/b".into())
        );
        assert_eq!(
            s.resolve(Path::new("/link"), cwd),
            Some("/real/capio".into())
        );
        assert_eq!(s.resolve(Path::new("/linked/a"), cwd), None);
    }

    #[test]
    fn a_rename_across_the_capio_boundary_is_exdev_without_a_server() {
        let scope = fixed("/data", "/link");
        let cwd = Path::new("/data/sub");
        let ends = |src: &str, dst: &str| {
            let (src, dst) = (Path::new(src), Path::new(dst));
            rename_ends(
                scope.resolve(src, cwd),
                scope.resolve(dst, cwd),
                src,
                &scope.real,
            )
        };
        assert_eq!(
            ends("a", "/link/b").unwrap(),
            ("/data/sub/a".into(), "/data/b".into())
        );
        for (src, dst) in [("a", "/tmp/b"), ("/tmp/a", "../b")] {
            match ends(src, dst) {
                Err(ClientError::Os { errno, path }) => {
                    assert_eq!((errno, path), (libc::EXDEV, Some(PathBuf::from(src))));
                }
                other => panic!("{src} -> {dst}: {other:?}"),
            }
        }
        assert!(matches!(
            ends("/tmp/a", "/tmp/b"),
            Err(ClientError::OutsideCapioDir { .. })
        ));
    }
}
