//! The rule engine: which commit rule, fire rule, persistence, exclusion, storage and declared
//! producers/consumers govern a path. Built once from a [`Config`]; every lookup is `&self`.

use crate::paths::{resolve, text};
use crate::schema::{Committed, Config, Kind, Mode};
use crate::table::{Entry, Table, replace};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// The workflow name when there is no CAPIO-CL file, as in the reference.
pub const DEFAULT_WORKFLOW_NAME: &str = "CAPIO";

/// When a file or directory counts as committed: complete, so readers get end-of-file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommitRule {
    /// When the producer terminates (`on_termination`, the default).
    OnTermination,
    /// After N closes (`on_close:N`); `on_close` is `OnClose(0)`, and 0 and 1 both mean the first
    /// close (see [`CommitRule::closes_needed`]).
    OnClose(u32),
    /// When every listed file is committed (`on_file` + `file_deps`, resolved).
    OnFile(Vec<PathBuf>),
    /// A directory, once it holds this many entries (`on_n_files` + `n_files`).
    OnNFiles(u64),
}

impl CommitRule {
    /// For `OnClose`, how many closes commit the file.
    pub fn closes_needed(&self) -> Option<u32> {
        match *self {
            CommitRule::OnClose(n) => Some(n.max(1)),
            _ => None,
        }
    }
}

impl fmt::Display for CommitRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommitRule::OnTermination => f.write_str("on_termination"),
            CommitRule::OnClose(0) => f.write_str("on_close"),
            CommitRule::OnClose(n) => write!(f, "on_close:{n}"),
            CommitRule::OnFile(deps) => {
                f.write_str("on_file [")?;
                for (i, d) in deps.iter().enumerate() {
                    let sep = if i == 0 { "" } else { ", " };
                    write!(f, "{sep}{}", d.display())?;
                }
                f.write_str("]")
            }
            CommitRule::OnNFiles(n) => write!(f, "on_n_files {n}"),
        }
    }
}

/// What readers see before the commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FireRule {
    /// Reads wait for the commit (`update`).
    Update,
    /// Written data is readable at once; reads block at the current end until the commit
    /// (`no_update`).
    NoUpdate,
}

impl fmt::Display for FireRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FireRule::Update => "update",
            FireRule::NoUpdate => "no_update",
        })
    }
}

/// Where a file's bytes live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    Memory,
    Fs,
}

impl fmt::Display for Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Storage::Memory => "memory",
            Storage::Fs => "fs",
        })
    }
}

/// Everything the configuration says about one path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub commit: CommitRule,
    pub fire: FireRule,
    /// Written to its real path at commit.
    pub permanent: bool,
    /// Not handled by CAPIO at all: the real file system serves it.
    pub excluded: bool,
    pub storage: Storage,
    /// Apps whose `output_stream` matches the path, best-matching pattern first.
    pub producers: Vec<String>,
    /// Apps whose `input_stream` matches the path, best-matching pattern first.
    pub consumers: Vec<String>,
    /// The `n_files` of the governing `dirname` rule, whatever its commit rule. The reference
    /// server also applies it to `on_termination` directories: they commit at termination only if
    /// they hold at least this many entries.
    pub n_files: Option<u64>,
}

/// One streaming item's verdict for the paths it names.
#[derive(Clone, Debug)]
struct Streaming {
    commit: CommitRule,
    fire: FireRule,
    n_files: Option<u64>,
    /// For `describe`: which step declared it.
    step: String,
}

/// Which node is a path's home (holds its metadata and commit state), by CAPIO-CL's
/// `home_node_policies`. Only a workflow spanning nodes asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Home {
    /// The node that creates the path (the default).
    Create,
    /// A node chosen by the path's hash, the same on every node.
    Hashing,
    /// The node of this name (`app_node`).
    Manual(String),
}

/// The rule set of one workflow. `Send + Sync`; no lookup changes it.
#[derive(Clone, Debug)]
pub struct Rules {
    workflow: String,
    /// Absolute and normalised: relative configuration paths and lookups are resolved against it.
    capio_dir: String,
    /// The no-config decision: with no CAPIO-CL file every committed file is persisted.
    persist_all: bool,
    files: Table<Streaming>,
    dirs: Table<Streaming>,
    permanent: Table<()>,
    exclude: Table<()>,
    storage: Table<Storage>,
    producers: Table<Vec<String>>,
    consumers: Table<Vec<String>>,
    homes: Table<Home>,
    /// What the file says that will be ignored (see `Config::warnings`).
    warnings: Vec<String>,
}

/// A lookup with the entries that decided it, so `describe` can say where each value came from.
struct Lookup<'a> {
    path: String,
    streaming: Option<&'a Entry<Streaming>>,
    permanent: Option<&'a Entry<()>>,
    excluded: Option<&'a Entry<()>>,
    storage: Option<&'a Entry<Storage>>,
}

impl Rules {
    /// The rules of `config`. Relative paths in it are taken relative to `capio_dir`, which should be
    /// absolute (the CAPIO directory as the server sees it).
    pub fn new(config: &Config, capio_dir: &Path) -> Rules {
        let capio_dir = resolve("/", &text(capio_dir));
        let aliases: HashMap<&str, &[String]> = config
            .aliases
            .iter()
            .map(|a| (a.group_name.as_str(), a.files.as_slice()))
            .collect();
        // The docs let an alias stand wherever a path may; its files are not themselves expanded.
        let expand = |list: &[String]| -> Vec<String> {
            let mut out = Vec::with_capacity(list.len());
            for p in list {
                match aliases.get(p.as_str()) {
                    Some(files) => out.extend(files.iter().map(|f| resolve(&capio_dir, f))),
                    None => out.push(resolve(&capio_dir, p)),
                }
            }
            out
        };
        let add_app = |apps: &mut Vec<String>, new: Vec<String>| {
            for app in new {
                if !apps.contains(&app) {
                    apps.push(app);
                }
            }
        };

        let (mut files, mut dirs) = (Table::default(), Table::default());
        let (mut producers, mut consumers) = (Table::default(), Table::default());
        for step in &config.steps {
            for p in expand(&step.input_stream) {
                consumers.declare(p, vec![step.name.clone()], add_app);
            }
            for p in expand(&step.output_stream) {
                producers.declare(p, vec![step.name.clone()], add_app);
            }
            for item in &step.streaming {
                let commit = match item.committed.unwrap_or(Committed::OnTermination) {
                    Committed::OnTermination => CommitRule::OnTermination,
                    Committed::OnClose(n) => CommitRule::OnClose(n),
                    Committed::OnFile => CommitRule::OnFile(
                        expand(&item.file_deps)
                            .into_iter()
                            .map(PathBuf::from)
                            .collect(),
                    ),
                    // Validation requires n_files here; a hand-built Config without it gets 0.
                    Committed::OnNFiles => CommitRule::OnNFiles(item.n_files.unwrap_or(0)),
                };
                let value = Streaming {
                    commit,
                    // The documented default; the reference parser uses no_update.
                    fire: match item.mode.unwrap_or(Mode::Update) {
                        Mode::Update => FireRule::Update,
                        Mode::NoUpdate => FireRule::NoUpdate,
                    },
                    n_files: match item.kind {
                        Kind::File => None,
                        Kind::Directory => item.n_files,
                    },
                    step: step.name.clone(),
                };
                let table = match item.kind {
                    Kind::File => &mut files,
                    Kind::Directory => &mut dirs,
                };
                for p in expand(&item.paths) {
                    table.declare(p, value.clone(), replace);
                }
            }
        }
        let mut permanent = Table::default();
        for p in expand(&config.permanent) {
            permanent.declare(p, (), replace);
        }
        let mut exclude = Table::default();
        for p in expand(&config.exclude) {
            exclude.declare(p, (), replace);
        }
        // fs after memory: a path in both ends up on the file system, where it is safe.
        let mut storage = Table::default();
        for p in expand(&config.storage.memory) {
            storage.declare(p, Storage::Memory, replace);
        }
        for p in expand(&config.storage.fs) {
            storage.declare(p, Storage::Fs, replace);
        }

        let mut homes = Table::default();
        if let Some(policies) = &config.home_node_policies {
            for p in expand(&policies.create) {
                homes.declare(p, Home::Create, replace);
            }
            for p in expand(&policies.hashing) {
                homes.declare(p, Home::Hashing, replace);
            }
            for m in &policies.manual {
                for p in expand(&m.name) {
                    homes.declare(p, Home::Manual(m.app_node.clone()), replace);
                }
            }
        }

        Rules {
            workflow: config.name.clone(),
            capio_dir,
            persist_all: false,
            files: files.sealed(),
            dirs: dirs.sealed(),
            permanent: permanent.sealed(),
            exclude: exclude.sealed(),
            storage: storage.sealed(),
            producers: producers.sealed(),
            consumers: consumers.sealed(),
            homes: homes.sealed(),
            warnings: Vec::new(),
        }
    }

    /// These rules, with the warnings about the file they came from.
    pub fn with_warnings(self, warnings: Vec<String>) -> Rules {
        Rules { warnings, ..self }
    }

    /// What the CAPIO-CL file says that pycapio ignores, each with its JSON path.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The rules of a run without a CAPIO-CL file: every path commits on termination, readers wait
    /// for the commit, data lives in memory, and — a pycapio decision, so that a run without a
    /// configuration never loses an output — every committed file is persisted (`permanent: true`).
    pub fn default_no_config() -> Rules {
        Rules {
            workflow: DEFAULT_WORKFLOW_NAME.to_string(),
            capio_dir: "/".to_string(),
            persist_all: true,
            files: Table::default(),
            dirs: Table::default(),
            permanent: Table::default(),
            exclude: Table::default(),
            storage: Table::default(),
            producers: Table::default(),
            consumers: Table::default(),
            homes: Table::default(),
            warnings: Vec::new(),
        }
    }

    /// The workflow name: `name` of the configuration, or `"CAPIO"` without one.
    pub fn workflow_name(&self) -> &str {
        &self.workflow
    }

    /// The rule for the file at `path` (absolute, or relative to the CAPIO directory).
    pub fn rule_for(&self, path: &Path) -> Rule {
        self.rule(path, Kind::File)
    }

    /// The rule for the directory at `path`. Only `dirname` rules give directories their commit and
    /// fire rules; a `dirname` rule governs the directory itself, not what is inside it.
    pub fn dir_rule_for(&self, path: &Path) -> Rule {
        self.rule(path, Kind::Directory)
    }

    /// The rule for `path` as a file or as a directory.
    pub fn rule(&self, path: &Path, kind: Kind) -> Rule {
        let found = self.lookup(path, kind);
        let (commit, fire, n_files) = match found.streaming {
            Some(e) => (e.value.commit.clone(), e.value.fire, e.value.n_files),
            None => (CommitRule::OnTermination, FireRule::Update, None),
        };
        Rule {
            commit,
            fire,
            permanent: self.persist_all || found.permanent.is_some(),
            excluded: found.excluded.is_some(),
            storage: found.storage.map_or(Storage::Memory, |e| e.value),
            producers: apps(&self.producers, &found.path),
            consumers: apps(&self.consumers, &found.path),
            n_files,
        }
    }

    /// Whether a `dirname` rule covers the directory at `path` (as opposed to the default rule):
    /// a directory that exists on disk before the run follows such a rule too.
    pub fn has_dir_rule(&self, path: &Path) -> bool {
        self.dirs.best(&self.resolve(&text(path))).is_some()
    }

    /// Whether `app` is declared (`output_stream`) as a producer of `path`, through any matching
    /// pattern: a declared producer never waits for its own file.
    pub fn is_producer(&self, app: &str, path: &Path) -> bool {
        let path = self.resolve(&text(path));
        self.producers
            .matching(&path)
            .any(|e| e.value.iter().any(|a| a == app))
    }

    /// Whether `path` is listed in `exclude`: such paths bypass CAPIO and go to the OS. Cheaper
    /// than `rule_for(..).excluded`, for clients that ask it on every path they intercept.
    /// Where `path`'s home node is, by the best-matching `home_node_policies` pattern.
    pub fn home_for(&self, path: &Path) -> Home {
        self.homes
            .best(&self.resolve(&text(path)))
            .map_or(Home::Create, |e| e.value.clone())
    }

    /// Every node a `manual` home policy names (a multi-node job checks they are its members).
    pub fn manual_home_nodes(&self) -> Vec<&str> {
        let mut nodes: Vec<&str> = self
            .homes
            .entries()
            .filter_map(|e| match &e.value {
                Home::Manual(node) => Some(node.as_str()),
                _ => None,
            })
            .collect();
        nodes.sort_unstable();
        nodes.dedup();
        nodes
    }

    pub fn is_excluded(&self, path: &Path) -> bool {
        self.exclude.best(&self.resolve(&text(path))).is_some()
    }

    /// The apps declared as producers of `path`, best-matching pattern first, without repeats.
    pub fn declared_producers(&self, path: &Path) -> Vec<String> {
        apps(&self.producers, &self.resolve(&text(path)))
    }

    /// The rule of `path`, one line per field, each saying which declaration decided it. Shows the
    /// directory rule too when a `dirname` rule matches. For `pycapio validate`.
    pub fn describe(&self, path: &Path) -> String {
        let file = self.lookup(path, Kind::File);
        let rule = self.rule(path, Kind::File);
        let mut out = format!("path: {}\n", file.path);
        let streaming = |e: Option<&Entry<Streaming>>, kind: &str| match e {
            Some(e) => format!("{kind} rule \"{}\" of step \"{}\"", e.pattern, e.value.step),
            None => "default".to_string(),
        };
        let by_file = streaming(file.streaming, "streaming");
        out += &format!("commit: {} ({by_file})\n", rule.commit);
        out += &format!("fire: {} ({by_file})\n", rule.fire);
        let flag = |on: bool, e: Option<&Entry<()>>, section: &str| match e {
            Some(e) => format!("yes ({section} \"{}\")", e.pattern),
            None if on => "yes (no CAPIO-CL file: every committed file is persisted)".to_string(),
            None => "no".to_string(),
        };
        out += &format!(
            "permanent: {}\n",
            flag(rule.permanent, file.permanent, "permanent")
        );
        out += &format!(
            "excluded: {}\n",
            flag(rule.excluded, file.excluded, "exclude")
        );
        out += &match file.storage {
            Some(e) => format!("storage: {} (storage \"{}\")\n", rule.storage, e.pattern),
            None => format!("storage: {} (default)\n", rule.storage),
        };
        out += &format!(
            "producers: {}\n",
            listing(
                &rule.producers,
                &self.producers,
                &file.path,
                "output_stream"
            )
        );
        out += &format!(
            "consumers: {}\n",
            listing(&rule.consumers, &self.consumers, &file.path, "input_stream")
        );
        let dir = self.lookup(path, Kind::Directory);
        if let Some(e) = dir.streaming {
            let by_dir = streaming(Some(e), "dirname");
            out += &format!("directory commit: {} ({by_dir})\n", e.value.commit);
            out += &format!("directory fire: {} ({by_dir})\n", e.value.fire);
            if let Some(n) = e.value.n_files {
                out += &format!("directory n_files: {n} ({by_dir})\n");
            }
        }
        out.pop();
        out
    }

    fn lookup(&self, path: &Path, kind: Kind) -> Lookup<'_> {
        let path = self.resolve(&text(path));
        let streaming = match kind {
            Kind::File => &self.files,
            Kind::Directory => &self.dirs,
        };
        Lookup {
            streaming: streaming.best(&path),
            permanent: self.permanent.best(&path),
            excluded: self.exclude.best(&path),
            storage: self.storage.best(&path),
            path,
        }
    }

    fn resolve(&self, path: &str) -> String {
        resolve(&self.capio_dir, path)
    }
}

/// The union of the app lists of every pattern matching `path`, best first: several steps may
/// declare one file, through its name or through globs, and each of them produces it.
fn apps(table: &Table<Vec<String>>, path: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for entry in table.matching(path) {
        for app in &entry.value {
            if !out.contains(app) {
                out.push(app.clone());
            }
        }
    }
    out
}

fn listing(apps: &[String], table: &Table<Vec<String>>, path: &str, section: &str) -> String {
    if apps.is_empty() {
        return "none".to_string();
    }
    let patterns: Vec<String> = table
        .matching(path)
        .map(|e| format!("\"{}\"", e.pattern))
        .collect();
    format!("{} ({section} {})", apps.join(", "), patterns.join(", "))
}
