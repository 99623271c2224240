//! Why a CAPIO-CL file was refused, told so that its author can fix it without reading the schema.

use std::io;
use std::path::{Path, PathBuf};

/// A configuration file that cannot be used. Every variant names the file; the schema variants also
/// name the offending value by its JSON path (`$.IO_Graph[0].streaming[1].committed`).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read CAPIO-CL file {}: {source}", file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The file is not JSON. `line` and `column` are 1-based, as editors count them.
    #[error("{}:{line}:{column}: malformed JSON: {message}", file.display())]
    Syntax {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// `version` names a language version this crate does not know.
    #[error(
        "{}: {json_path}: unsupported CAPIO-CL version {found} \
         (supported: 1.1, written as `\"version\": 1.1`, and 1.0, written by leaving `version` out)",
        file.display()
    )]
    UnsupportedVersion {
        file: PathBuf,
        json_path: String,
        found: String,
    },
    /// A value breaks the schema of the file's version.
    #[error("{}: {json_path}: expected {expected}, found {found}", file.display())]
    Invalid {
        file: PathBuf,
        json_path: String,
        expected: String,
        found: String,
    },
}

impl ConfigError {
    /// The configuration file the error is about.
    pub fn file(&self) -> &Path {
        match self {
            ConfigError::Read { file, .. }
            | ConfigError::Syntax { file, .. }
            | ConfigError::UnsupportedVersion { file, .. }
            | ConfigError::Invalid { file, .. } => file,
        }
    }

    /// The JSON path of the offending value, for errors about a value.
    pub fn json_path(&self) -> Option<&str> {
        match self {
            ConfigError::UnsupportedVersion { json_path, .. }
            | ConfigError::Invalid { json_path, .. } => Some(json_path),
            ConfigError::Read { .. } | ConfigError::Syntax { .. } => None,
        }
    }

    pub(crate) fn syntax(file: &Path, err: &serde_json::Error) -> ConfigError {
        // serde_json appends " at line L column C"; we report those as fields and in the prefix.
        let text = err.to_string();
        let message = match text.rfind(" at line ") {
            Some(i) => text[..i].to_string(),
            None => text,
        };
        ConfigError::Syntax {
            file: file.to_path_buf(),
            line: err.line(),
            column: err.column(),
            message,
        }
    }
}

/// A schema violation before it is tied to a file: validation works on values, `load` knows the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Violation {
    pub json_path: String,
    pub expected: String,
    pub found: String,
    pub unsupported_version: bool,
}

impl Violation {
    pub fn new(json_path: &str, expected: impl Into<String>, found: impl Into<String>) -> Self {
        Violation {
            json_path: json_path.to_string(),
            expected: expected.into(),
            found: found.into(),
            unsupported_version: false,
        }
    }

    pub fn in_file(self, file: &Path) -> ConfigError {
        let file = file.to_path_buf();
        if self.unsupported_version {
            ConfigError::UnsupportedVersion {
                file,
                json_path: self.json_path,
                found: self.found,
            }
        } else {
            ConfigError::Invalid {
                file,
                json_path: self.json_path,
                expected: self.expected,
                found: self.found,
            }
        }
    }
}
