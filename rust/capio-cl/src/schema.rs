//! A validated CAPIO-CL file as typed data, exactly as written: paths unresolved, defaults not applied.

/// The language version a file is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// CAPIO-CL 1.0: a file without a `version` key.
    V1_0,
    /// CAPIO-CL 1.1: `"version": 1.1`, which also allows `configuration`.
    V1_1,
}

/// A whole configuration file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub version: Version,
    /// The workflow name (`name`).
    pub name: String,
    /// v1.1 `configuration`: the TOML runtime file of the reference engine. Kept, never read (see the
    /// crate docs).
    pub configuration: Option<String>,
    pub aliases: Vec<Alias>,
    /// `IO_Graph`, in file order.
    pub steps: Vec<Step>,
    pub permanent: Vec<String>,
    pub exclude: Vec<String>,
    pub home_node_policies: Option<HomeNodePolicies>,
    pub storage: StorageSection,
}

/// `aliases[]`: a name that stands for a group of paths.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alias {
    pub group_name: String,
    pub files: Vec<String>,
}

/// One `IO_Graph` step: an application, what it reads, what it writes, and rules for those files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub name: String,
    pub input_stream: Vec<String>,
    pub output_stream: Vec<String>,
    pub streaming: Vec<StreamingItem>,
}

/// What a rule is for: a file (`name` rules) or a directory (`dirname` rules).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Directory,
}

/// The `committed` string, parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Committed {
    OnTermination,
    /// `on_close` (0) or `on_close:N`.
    OnClose(u32),
    OnFile,
    /// Directory rules only.
    OnNFiles,
}

/// The `mode` string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Update,
    NoUpdate,
}

/// One `streaming[]` item. Optional keys stay optional here; the rule engine applies the defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamingItem {
    pub kind: Kind,
    /// `name` or `dirname`: paths or glob patterns.
    pub paths: Vec<String>,
    pub committed: Option<Committed>,
    pub mode: Option<Mode>,
    pub file_deps: Vec<String>,
    pub n_files: Option<u64>,
}

/// `home_node_policies`: validated and kept; a single-node server has no use for it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HomeNodePolicies {
    pub create: Vec<String>,
    pub hashing: Vec<String>,
    pub manual: Vec<ManualPolicy>,
}

/// `home_node_policies.manual[]`: pin paths to a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManualPolicy {
    pub name: Vec<String>,
    pub app_node: String,
}

/// `storage`: which paths live in memory and which on the file system.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StorageSection {
    pub memory: Vec<String>,
    pub fs: Vec<String>,
}
