//! Request paths made trustworthy: absolute, lexically normalised, inside the client's CAPIO directory.

use crate::error::FsError;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Parse a path sent by a client. The namespace is keyed by these bytes, so anything that is not
/// already in normal form (`//`, `.`, `..`, a trailing `/`) is refused rather than silently
/// rewritten: two spellings of one file must never become two files.
///
/// Names the kernel would refuse are refused the same way (`ENAMETOOLONG`), before the namespace
/// holds a file that could never be persisted.
pub fn parse(tail: &[u8]) -> Result<PathBuf, FsError> {
    if tail.contains(&0) || !capio_cl::paths::is_normal(tail) {
        return Err(FsError::BadPath);
    }
    if tail.len() >= PATH_MAX || tail.split(|&b| b == b'/').any(|seg| seg.len() > NAME_MAX) {
        return Err(FsError::NameTooLong);
    }
    Ok(PathBuf::from(OsStr::from_bytes(tail)))
}

/// Linux's limits: bytes in one path component, and in a whole path with its NUL.
pub const NAME_MAX: usize = 255;
pub const PATH_MAX: usize = 4096;

/// `EXDEV` unless `path` is `root` or below it, component-wise (`/data2` is not inside `/data`).
pub fn confine(path: &Path, root: &Path) -> Result<(), FsError> {
    if path.starts_with(root) {
        Ok(())
    } else {
        Err(FsError::OutsideRoot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_normal_absolute_paths_parse() {
        assert_eq!(parse(b"/a/b c").unwrap(), Path::new("/a/b c"));
        assert_eq!(parse(b"/").unwrap(), Path::new("/"));
        assert_eq!(
            parse(b"/a/\xff").unwrap().as_os_str().as_bytes(),
            b"/a/\xff"
        );
        for bad in [
            &b""[..],
            b"a/b",
            b"/a/",
            b"/a//b",
            b"/a/./b",
            b"/a/../b",
            b"/..",
            b"/a\0b",
        ] {
            assert!(matches!(parse(bad), Err(FsError::BadPath)), "{bad:?}");
        }
    }

    #[test]
    fn names_the_kernel_refuses_are_too_long() {
        let long = [b'x'; NAME_MAX + 1];
        let mut p = b"/d/".to_vec();
        p.extend_from_slice(&long);
        assert!(matches!(parse(&p), Err(FsError::NameTooLong)));
        assert!(parse(&p[..p.len() - 1]).is_ok(), "NAME_MAX itself is fine");
        let deep: Vec<u8> = b"/abcdefg".repeat(PATH_MAX / 8);
        assert_eq!(deep.len(), PATH_MAX);
        assert!(matches!(parse(&deep), Err(FsError::NameTooLong)));
        assert!(parse(&deep[..PATH_MAX - 8]).is_ok());
    }

    #[test]
    fn confinement_is_component_wise() {
        let root = Path::new("/data");
        assert!(confine(Path::new("/data"), root).is_ok());
        assert!(confine(Path::new("/data/x"), root).is_ok());
        assert!(matches!(
            confine(Path::new("/data2/x"), root),
            Err(FsError::OutsideRoot)
        ));
        assert!(confine(Path::new("/"), root).is_err());
    }
}
