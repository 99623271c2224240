//! CAPIO-CL, the coordination language of CAPIO: reads and validates a workflow's configuration file
//! (language versions 1.0 and 1.1) and answers, for any path, which rule governs it.
//!
//! ```no_run
//! # use std::path::Path;
//! let rules = capio_cl::load(Path::new("workflow.json"), Path::new("/scratch/capio"))?;
//! let rule = rules.rule_for(Path::new("/scratch/capio/out/part-0.dat"));
//! println!("{}", rules.describe(Path::new("out/part-0.dat")));
//! # Ok::<(), capio_cl::ConfigError>(())
//! ```
//!
//! Reading goes in two steps: [`Config::parse`] checks the file against the schema of its version and
//! gives the file as typed data; [`Rules::new`] resolves its paths against the CAPIO directory and
//! builds the tables that lookups search. [`load`] does both.
//!
//! Matching: patterns are `fnmatch` globs without `FNM_PATHNAME`, so `*` and `?` match `/` too
//! (`"/d/*"` covers `/d/a/b`), and `[...]` works. A pattern equal to the path wins; otherwise the
//! longest matching pattern does. A pattern without wildcards — including a `dirname` — covers only
//! itself, never what lies below it.
//!
//! Defaults: a path no rule names commits on termination, its readers wait for the commit (`update`),
//! it is neither permanent nor excluded, and it lives in memory. A streaming item without `committed`
//! commits on termination; without `mode` it is `update`.
//!
//! # Differences from the reference implementation
//!
//! The reference is the CAPIO-CL C++ library (v1.4.1) and the CAPIO server that uses it. Where it and
//! the language's documentation disagree, this crate follows the documentation:
//!
//! - **Lookups change nothing and do not depend on declaration order.** The reference creates an
//!   entry on every lookup, copied once from the longest matching pattern at that moment, so a path
//!   named in an `output_stream` before a glob streaming rule keeps the defaults, and a `permanent`
//!   glob does not reach a file a streaming rule named earlier. Here each aspect — the streaming rule,
//!   `permanent`, `exclude`, `storage`, producers, consumers — is looked up on its own, every time,
//!   with the exact-then-longest precedence.
//! - **Ties** between equally long matching globs go to the later declaration (the reference leaves
//!   them to hash-map order). A pattern declared twice takes its later streaming rule whole; the
//!   reference merges field by field.
//! - **Producers and consumers** of a path are the union over every matching pattern, as the
//!   reference's `isProducer` does; app names are kept as written (the reference deletes whitespace).
//! - **`mode` defaults to `update`**, as documented; the reference parser uses `no_update`.
//! - **`aliases` are expanded** wherever a path is accepted (streams, streaming `name`/`dirname`,
//!   `file_deps`, `permanent`, `exclude`, `storage`), as documented; the reference validates the
//!   section and ignores it. A `group_name` used twice is rejected.
//! - **Every path is resolved** against the CAPIO directory when relative, `storage` paths included
//!   (the reference resolves only with `--resolve-prefix`, and never `storage`), and normalised
//!   lexically (`.`, `..`, `//`, a trailing `/`), the form the client uses.
//! - **`on_file` and `on_n_files` carry their data** in the [`CommitRule`]: the dependencies, and the
//!   directory's own `n_files`. The reference server never implements `on_file`, and commits an
//!   `on_n_files` directory by testing the rule of the *child* just added; enforcing them is the
//!   server's work, from these values.
//! - **Storage defaults to memory** (the reference: file system), a pycapio decision; a path in both
//!   `storage.memory` and `storage.fs` goes to the file system.
//! - **Without a configuration** ([`Rules::default_no_config`]) every committed file is permanent: a
//!   workflow run without a CAPIO-CL file never loses an output.
//! - **Stricter than the schema** where the schema lets nonsense through: a negative `n_files`, and an
//!   `on_close:N` whose N does not fit 32 bits, are rejected.
//! - **Not read**: the v1.1 `configuration` TOML file (it configures the reference engine's commit
//!   monitors, which pycapio does not have) and `home_node_policies` (a single-node concern of the
//!   reference that it never implemented). Both are validated and kept in [`Config`].
//! - The reference's empty-path conventions, `isFile` bug and automatic directory child counts have
//!   no counterpart: a lookup answers only from the configuration.
#![forbid(unsafe_code)]

mod error;
mod glob;
mod notes;
pub mod paths;
mod rules;
mod schema;
mod table;
mod validate;

pub use error::ConfigError;
pub use rules::{CommitRule, DEFAULT_WORKFLOW_NAME, FireRule, Home, Rule, Rules, Storage};
pub use schema::{
    Alias, Committed, Config, HomeNodePolicies, Kind, ManualPolicy, Mode, Step, StorageSection,
    StreamingItem, Version,
};

use std::path::Path;

impl Config {
    /// Parses and validates the text of a CAPIO-CL file; `file` only names it in errors.
    pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
        validate::parse(text, file)
    }

    /// Reads, parses and validates a CAPIO-CL file.
    pub fn load(file: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
            file: file.to_path_buf(),
            source,
        })?;
        Config::parse(&text, file)
    }
}

/// Reads and validates the CAPIO-CL file at `path` and builds its rules, resolving relative paths
/// against `capio_dir`.
pub fn load(path: &Path, capio_dir: &Path) -> Result<Rules, ConfigError> {
    let config = Config::load(path)?;
    Ok(Rules::new(&config, capio_dir).with_warnings(config.warnings(path)))
}
