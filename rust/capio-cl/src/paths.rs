//! Puts configuration paths and looked-up paths in one form, so that comparing strings compares paths.
//!
//! The form is the one the client gives the server: absolute, lexically normalised (no `.`, `..`,
//! repeated or trailing `/`). Nothing here touches the file system, so symlinks are not resolved.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// The one normaliser: `path` made absolute against `base` (itself absolute) with `.`, `..` and
/// repeated or trailing `/` removed, without touching the file system. `..` at the root stays at
/// the root, as the kernel does. Works on bytes, so paths that are not UTF-8 keep their bytes.
pub fn normalize_bytes(base: &[u8], path: &[u8]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::new();
    let joined: [&[u8]; 2] = if path.starts_with(b"/") {
        [path, b""]
    } else {
        [base, path]
    };
    for segment in joined.iter().flat_map(|s| s.split(|&b| b == b'/')) {
        match segment {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    if parts.is_empty() {
        return b"/".to_vec();
    }
    let mut out = Vec::with_capacity(path.len() + base.len() + 1);
    for part in parts {
        out.push(b'/');
        out.extend_from_slice(part);
    }
    out
}

/// [`normalize_bytes`] for paths: `p` made absolute against `cwd` and normalised lexically.
pub fn normalize(p: &Path, cwd: &Path) -> PathBuf {
    let bytes = normalize_bytes(cwd.as_os_str().as_bytes(), p.as_os_str().as_bytes());
    PathBuf::from(OsString::from_vec(bytes))
}

/// Whether `path` is already absolute and in normal form (what [`normalize`] returns).
pub fn is_normal(path: &[u8]) -> bool {
    path.starts_with(b"/") && normalize_bytes(b"/", path) == path
}

/// [`normalize_bytes`] for configuration strings. Glob characters pass through untouched, so this
/// applies to patterns as well; splitting at `/` keeps UTF-8 intact.
pub(crate) fn resolve(base: &str, path: &str) -> String {
    String::from_utf8(normalize_bytes(base.as_bytes(), path.as_bytes()))
        .expect("splitting UTF-8 at '/' leaves UTF-8")
}

/// A looked-up path as a string. CAPIO-CL patterns are JSON strings, so a path that is not UTF-8
/// can only be matched by wildcards; the replacement character keeps its length for those.
pub(crate) fn text(path: &Path) -> std::borrow::Cow<'_, str> {
    path.to_string_lossy()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_keep_bytes_that_are_not_utf8() {
        let p = Path::new(std::ffi::OsStr::from_bytes(b"a/\xff/../b"));
        assert_eq!(normalize(p, Path::new("/c")), Path::new("/c/a/b"));
        assert_eq!(
            normalize(Path::new("x/./\u{e9}"), Path::new("/")),
            Path::new("/x/\u{e9}")
        );
    }

    #[test]
    fn normal_form_is_what_normalize_returns() {
        for good in ["/", "/a", "/a/b c", "/a/\u{e9}"] {
            assert!(is_normal(good.as_bytes()), "{good}");
        }
        for bad in ["", "a/b", "/a/", "/a//b", "/a/./b", "/a/../b", "/.."] {
            assert!(!is_normal(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn relative_paths_join_the_base() {
        assert_eq!(resolve("/capio", "out.dat"), "/capio/out.dat");
        assert_eq!(resolve("/capio/", "./sub//x/"), "/capio/sub/x");
        assert_eq!(resolve("/capio", "*/data.bin"), "/capio/*/data.bin");
        assert_eq!(resolve("/capio", "../other/f"), "/other/f");
    }

    #[test]
    fn absolute_paths_ignore_the_base() {
        assert_eq!(resolve("/capio", "/tmp/x"), "/tmp/x");
        assert_eq!(resolve("/capio", "/tmp/a/../b/"), "/tmp/b");
        assert_eq!(resolve("/capio", "/"), "/");
        assert_eq!(resolve("/capio", "/.."), "/");
    }

    #[test]
    fn paths_are_made_absolute_against_the_working_directory() {
        let cwd = Path::new("/home/u");
        assert_eq!(
            normalize(Path::new("a/./b//c/../d"), cwd),
            Path::new("/home/u/a/b/d")
        );
        assert_eq!(normalize(Path::new("/../.."), cwd), Path::new("/"));
        assert_eq!(normalize(Path::new("x/"), cwd), Path::new("/home/u/x"));
        assert_eq!(normalize(Path::new(""), cwd), Path::new("/home/u"));
    }
}
