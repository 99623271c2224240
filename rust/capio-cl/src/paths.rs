//! Puts configuration paths and looked-up paths in one form, so that comparing strings compares paths.
//!
//! The form is the one the client gives the server: absolute, lexically normalised (no `.`, `..`,
//! repeated or trailing `/`). Nothing here touches the file system, so symlinks are not resolved.

use std::path::Path;

/// `path` made absolute against `base` (itself absolute) and normalised lexically. Glob characters
/// pass through untouched, so this applies to patterns as well.
pub(crate) fn resolve(base: &str, path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    let joined = if path.starts_with('/') {
        [path, ""]
    } else {
        [base, path]
    };
    for segment in joined.iter().flat_map(|s| s.split('/')) {
        match segment {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    if parts.is_empty() {
        return "/".to_string();
    }
    let mut out = String::with_capacity(path.len() + base.len() + 1);
    for part in parts {
        out.push('/');
        out.push_str(part);
    }
    out
}

/// A looked-up path as a string. CAPIO-CL patterns are JSON strings, so a path that is not UTF-8
/// can only be matched by wildcards; the replacement character keeps its length for those.
pub(crate) fn text(path: &Path) -> std::borrow::Cow<'_, str> {
    path.to_string_lossy()
}

#[cfg(test)]
mod tests {
    use super::resolve;

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
}
