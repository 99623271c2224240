//! Checks a parsed JSON document against the CAPIO-CL schemas (v1 and v1.1) by hand and turns it into
//! a [`Config`]. Each check mirrors one rule of the reference's draft-07 schemas; the first violation
//! found is reported with its JSON path.

use crate::error::{ConfigError, Violation};
use crate::schema::{
    Alias, Committed, Config, HomeNodePolicies, Kind, ManualPolicy, Mode, Step, StorageSection,
    StreamingItem, Version,
};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::path::Path;

type Result<T> = std::result::Result<T, Violation>;
type Object = Map<String, Value>;

const TOP_V1: &[&str] = &[
    "name",
    "aliases",
    "IO_Graph",
    "permanent",
    "exclude",
    "home_node_policies",
    "storage",
];
const TOP_V1_1: &[&str] = &[
    "version",
    "configuration",
    "name",
    "aliases",
    "IO_Graph",
    "permanent",
    "exclude",
    "home_node_policies",
    "storage",
];
const STEP: &[&str] = &["name", "input_stream", "output_stream", "streaming"];
const FILE_RULE: &[&str] = &["name", "committed", "mode", "file_deps", "n_files"];
const DIR_RULE: &[&str] = &["dirname", "committed", "mode", "file_deps", "n_files"];
const ALIAS: &[&str] = &["group_name", "files"];
const HOME_NODE: &[&str] = &["create", "hashing", "manual"];
const MANUAL: &[&str] = &["name", "app_node"];
const STORAGE: &[&str] = &["memory", "fs"];

const PATHS: &str = "an array of strings (paths or glob patterns)";

/// Parses `text` as a CAPIO-CL file; `file` only names it in errors.
pub(crate) fn parse(text: &str, file: &Path) -> std::result::Result<Config, ConfigError> {
    let doc: Value = serde_json::from_str(text).map_err(|e| ConfigError::syntax(file, &e))?;
    validate(&doc).map_err(|v| v.in_file(file))
}

/// Validates a whole document: version dispatch first, because it decides which keys are allowed.
pub(crate) fn validate(doc: &Value) -> Result<Config> {
    let top = object(doc, "$", "a JSON object describing the workflow")?;
    let version = version(top)?;
    let allowed = match version {
        Version::V1_0 => TOP_V1,
        Version::V1_1 => TOP_V1_1,
    };
    check_keys(top, "$", allowed)?;
    require(top, "$", "name", "the workflow name (a string)")?;
    require(top, "$", "IO_Graph", "the workflow steps (an array)")?;

    let name = string(&top["name"], "$.name", "a string (the workflow name)")?;
    let configuration = top
        .get("configuration")
        .map(|v| string(v, "$.configuration", "a string (a TOML file path)"))
        .transpose()?;
    let aliases = match top.get("aliases") {
        Some(v) => aliases(v, "$.aliases")?,
        None => Vec::new(),
    };
    let steps = array(&top["IO_Graph"], "$.IO_Graph", "an array of steps")?
        .iter()
        .enumerate()
        .map(|(i, v)| step(v, &format!("$.IO_Graph[{i}]")))
        .collect::<Result<Vec<_>>>()?;
    let permanent = optional_strings(top, "$", "permanent")?;
    let exclude = optional_strings(top, "$", "exclude")?;
    let home_node_policies = top
        .get("home_node_policies")
        .map(|v| home_node_policies(v, "$.home_node_policies"))
        .transpose()?;
    let storage = match top.get("storage") {
        Some(v) => storage(v, "$.storage")?,
        None => StorageSection::default(),
    };
    Ok(Config {
        version,
        name,
        configuration,
        aliases,
        steps,
        permanent,
        exclude,
        home_node_policies,
        storage,
    })
}

/// No `version` is 1.0; the number 1.1 is 1.1. As in the reference, a `version: 1.0` selects the v1
/// schema, which has no `version` key, so it is refused; so is `"1.1"` written as a string.
fn version(top: &Object) -> Result<Version> {
    const EXPECTED: &str = "the number 1.1, or no `version` key for CAPIO-CL 1.0";
    let Some(v) = top.get("version") else {
        return Ok(Version::V1_0);
    };
    match v {
        Value::Number(n) if n.as_f64() == Some(1.1) => Ok(Version::V1_1),
        Value::Number(n) if n.as_f64() == Some(1.0) => Err(Violation::new(
            "$.version",
            "no `version` key: CAPIO-CL 1.0 files leave it out (or the number 1.1)",
            found(v),
        )),
        Value::String(s) if s == "1.0" || s == "1.1" => {
            Err(Violation::new("$.version", EXPECTED, found(v)))
        }
        Value::Number(_) | Value::String(_) => Err(Violation {
            unsupported_version: true,
            ..Violation::new("$.version", EXPECTED, v.to_string())
        }),
        _ => Err(Violation::new("$.version", EXPECTED, found(v))),
    }
}

fn step(v: &Value, at: &str) -> Result<Step> {
    let map = object(
        v,
        at,
        "a step object (name, input_stream, output_stream, streaming)",
    )?;
    check_keys(map, at, STEP)?;
    require(map, at, "name", "the application name (a string)")?;
    require(
        map,
        at,
        "input_stream",
        "the paths the step reads (an array, may be empty)",
    )?;
    require(
        map,
        at,
        "output_stream",
        "the paths the step writes (an array, may be empty)",
    )?;
    let streaming = match map.get("streaming") {
        Some(v) => {
            let at = key_path(at, "streaming");
            array(v, &at, "an array of streaming rules")?
                .iter()
                .enumerate()
                .map(|(i, item)| streaming_item(item, &format!("{at}[{i}]")))
                .collect::<Result<Vec<_>>>()?
        }
        None => Vec::new(),
    };
    Ok(Step {
        name: string(
            &map["name"],
            &key_path(at, "name"),
            "a string (the application name)",
        )?,
        input_stream: strings(&map["input_stream"], &key_path(at, "input_stream"))?,
        output_stream: strings(&map["output_stream"], &key_path(at, "output_stream"))?,
        streaming,
    })
}

/// The schema's `oneOf`: an item is a file rule (`name`) or a directory rule (`dirname`), never both.
fn streaming_item(v: &Value, at: &str) -> Result<StreamingItem> {
    let map = object(
        v,
        at,
        "a streaming rule (an object with `name` or `dirname`)",
    )?;
    const ONE_OF: &str = "exactly one of `name` (a file rule) or `dirname` (a directory rule)";
    let kind = match (map.contains_key("name"), map.contains_key("dirname")) {
        (true, false) => Kind::File,
        (false, true) => Kind::Directory,
        (true, true) => return Err(Violation::new(at, ONE_OF, "both")),
        (false, false) => return Err(Violation::new(at, ONE_OF, "neither")),
    };
    let (paths_key, allowed) = match kind {
        Kind::File => ("name", FILE_RULE),
        Kind::Directory => ("dirname", DIR_RULE),
    };
    check_keys(map, at, allowed)?;
    let paths = strings(&map[paths_key], &key_path(at, paths_key))?;
    let committed = map
        .get("committed")
        .map(|v| committed(v, &key_path(at, "committed"), kind))
        .transpose()?;
    let mode = map
        .get("mode")
        .map(|v| mode(v, &key_path(at, "mode")))
        .transpose()?;
    let file_deps = optional_strings(map, at, "file_deps")?;
    let n_files = map
        .get("n_files")
        .map(|v| count(v, &key_path(at, "n_files")))
        .transpose()?;
    if committed == Some(Committed::OnFile) {
        require(
            map,
            at,
            "file_deps",
            "the files whose commit commits this one (an array), required by \"on_file\"",
        )?;
    }
    if committed == Some(Committed::OnNFiles) {
        require(
            map,
            at,
            "n_files",
            "the number of files that commits the directory (an integer), required by \"on_n_files\"",
        )?;
    }
    Ok(StreamingItem {
        kind,
        paths,
        committed,
        mode,
        file_deps,
        n_files,
    })
}

/// The `committed` patterns: `^(on_close(:[0-9]+)?|on_file|on_termination)$`, plus `on_n_files` for
/// directory rules.
fn committed(v: &Value, at: &str, kind: Kind) -> Result<Committed> {
    let mut expected = String::from(
        "one of \"on_termination\", \"on_close\", \"on_close:N\" (N in decimal digits), \"on_file\"",
    );
    if kind == Kind::Directory {
        expected.push_str(", \"on_n_files\"");
    }
    let Some(s) = v.as_str() else {
        return Err(Violation::new(at, expected, found(v)));
    };
    match s {
        "on_termination" => return Ok(Committed::OnTermination),
        "on_close" => return Ok(Committed::OnClose(0)),
        "on_file" => return Ok(Committed::OnFile),
        "on_n_files" if kind == Kind::Directory => return Ok(Committed::OnNFiles),
        _ => {}
    }
    if let Some(n) = s.strip_prefix("on_close:")
        && !n.is_empty()
        && n.bytes().all(|b| b.is_ascii_digit())
    {
        // The schema allows any digit string; a count beyond u32 is surely a typo.
        return n
            .parse()
            .map(Committed::OnClose)
            .map_err(|_| Violation::new(at, "\"on_close:N\" with N at most 4294967295", found(v)));
    }
    if s == "on_n_files" {
        expected.push_str(
            "; \"on_n_files\" counts a directory's files, so it belongs in a `dirname` rule",
        );
    } else if s.starts_with("on_file:") {
        expected.push_str("; write \"on_file\" and list the dependencies in \"file_deps\"");
    } else if s.starts_with("n_files") {
        expected.push_str(
            "; a directory that commits after N files is written \"committed\": \"on_n_files\", \"n_files\": N",
        );
    }
    Err(Violation::new(at, expected, found(v)))
}

fn mode(v: &Value, at: &str) -> Result<Mode> {
    match v.as_str() {
        Some("update") => Ok(Mode::Update),
        Some("no_update") => Ok(Mode::NoUpdate),
        _ => Err(Violation::new(at, "\"update\" or \"no_update\"", found(v))),
    }
}

/// `n_files`: the schema says integer, so 4.0 counts (draft-07) and 4.5 does not; a negative count
/// has no meaning and is refused although the schema would take it.
fn count(v: &Value, at: &str) -> Result<u64> {
    const EXPECTED: &str = "a non-negative integer (the number of files)";
    if let Some(n) = v.as_u64() {
        return Ok(n);
    }
    match v.as_f64() {
        Some(f) if f >= 0.0 && f.fract() == 0.0 && f < 2f64.powi(53) => Ok(f as u64),
        _ => Err(Violation::new(at, EXPECTED, found(v))),
    }
}

fn aliases(v: &Value, at: &str) -> Result<Vec<Alias>> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, item) in array(v, at, "an array of {group_name, files} objects")?
        .iter()
        .enumerate()
    {
        let at = format!("{at}[{i}]");
        let map = object(item, &at, "an object with `group_name` and `files`")?;
        check_keys(map, &at, ALIAS)?;
        require(map, &at, "group_name", "the alias name (a string)")?;
        require(
            map,
            &at,
            "files",
            "the paths it stands for (an array of strings)",
        )?;
        let name_at = key_path(&at, "group_name");
        let group_name = string(&map["group_name"], &name_at, "a string (the alias name)")?;
        // Aliases are expanded wherever a path is accepted, so a name must mean one group.
        if !seen.insert(group_name.clone()) {
            return Err(Violation::new(
                &name_at,
                "a group name no earlier alias uses",
                found(&map["group_name"]),
            ));
        }
        let files = strings(&map["files"], &key_path(&at, "files"))?;
        out.push(Alias { group_name, files });
    }
    Ok(out)
}

fn home_node_policies(v: &Value, at: &str) -> Result<HomeNodePolicies> {
    let map = object(v, at, "an object with `create`, `hashing` and `manual`")?;
    check_keys(map, at, HOME_NODE)?;
    let manual = match map.get("manual") {
        Some(v) => {
            let at = key_path(at, "manual");
            let items = array(v, &at, "an array of {name, app_node} objects")?;
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let at = format!("{at}[{i}]");
                let m = object(item, &at, "an object with `name` and `app_node`")?;
                check_keys(m, &at, MANUAL)?;
                require(m, &at, "name", "the pinned paths (an array of strings)")?;
                require(m, &at, "app_node", "the node name (a string)")?;
                out.push(ManualPolicy {
                    name: strings(&m["name"], &key_path(&at, "name"))?,
                    app_node: string(&m["app_node"], &key_path(&at, "app_node"), "a string")?,
                });
            }
            out
        }
        None => Vec::new(),
    };
    let policies = HomeNodePolicies {
        create: optional_strings(map, at, "create")?,
        hashing: optional_strings(map, at, "hashing")?,
        manual,
    };
    one_policy_per_path(&policies, at)?;
    Ok(policies)
}

/// "No file may appear in more than one policy group": a path named twice would have two homes.
fn one_policy_per_path(p: &HomeNodePolicies, at: &str) -> Result<()> {
    let create = p
        .create
        .iter()
        .enumerate()
        .map(|(i, n)| (format!("create[{i}]"), n));
    let hashing = p
        .hashing
        .iter()
        .enumerate()
        .map(|(i, n)| (format!("hashing[{i}]"), n));
    let manual = p.manual.iter().enumerate().flat_map(|(i, m)| {
        m.name
            .iter()
            .enumerate()
            .map(move |(j, n)| (format!("manual[{i}].name[{j}]"), n))
    });
    let mut seen: HashMap<&str, String> = HashMap::new();
    for (place, name) in create.chain(hashing).chain(manual) {
        if let Some(first) = seen.get(name.as_str()) {
            return Err(Violation::new(
                &format!("{at}.{place}"),
                "a path in one policy group only".to_owned(),
                format!("\"{name}\", already at {at}.{first}"),
            ));
        }
        seen.insert(name, place);
    }
    Ok(())
}

fn storage(v: &Value, at: &str) -> Result<StorageSection> {
    let map = object(v, at, "an object with optional `memory` and `fs` arrays")?;
    check_keys(map, at, STORAGE)?;
    Ok(StorageSection {
        memory: optional_strings(map, at, "memory")?,
        fs: optional_strings(map, at, "fs")?,
    })
}

// ---- shape helpers -------------------------------------------------------------------------------

fn object<'a>(v: &'a Value, at: &str, expected: &str) -> Result<&'a Object> {
    v.as_object()
        .ok_or_else(|| Violation::new(at, expected, found(v)))
}

fn array<'a>(v: &'a Value, at: &str, expected: &str) -> Result<&'a Vec<Value>> {
    v.as_array()
        .ok_or_else(|| Violation::new(at, expected, found(v)))
}

fn string(v: &Value, at: &str, expected: &str) -> Result<String> {
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| Violation::new(at, expected, found(v)))
}

fn strings(v: &Value, at: &str) -> Result<Vec<String>> {
    array(v, at, PATHS)?
        .iter()
        .enumerate()
        .map(|(i, item)| {
            string(
                item,
                &format!("{at}[{i}]"),
                "a string (a path or glob pattern)",
            )
        })
        .collect()
}

fn optional_strings(map: &Object, at: &str, key: &str) -> Result<Vec<String>> {
    match map.get(key) {
        Some(v) => strings(v, &key_path(at, key)),
        None => Ok(Vec::new()),
    }
}

/// `additionalProperties: false`: the first key not in `allowed` is the error, with a guess at what
/// was meant (the reference's own docs misspell `file_deps` and `home_node_policies`).
fn check_keys(map: &Object, at: &str, allowed: &[&str]) -> Result<()> {
    let Some(key) = map.keys().find(|k| !allowed.contains(&k.as_str())) else {
        return Ok(());
    };
    let mut expected = format!("one of the keys {}", allowed.join(", "));
    if key == "configuration" || key == "version" {
        expected.push_str(&format!(
            " (`{key}` needs a CAPIO-CL 1.1 file: \"version\": 1.1)"
        ));
    } else if let Some(guess) = closest(key, allowed) {
        expected.push_str(&format!(" (did you mean \"{guess}\"?)"));
    }
    Err(Violation::new(
        &key_path(at, key),
        expected,
        format!("unknown key \"{key}\""),
    ))
}

fn require(map: &Object, at: &str, key: &str, what: &str) -> Result<()> {
    if map.contains_key(key) {
        return Ok(());
    }
    Err(Violation::new(
        at,
        format!("the key \"{key}\": {what}"),
        format!("no \"{key}\""),
    ))
}

/// The allowed key nearest to a misspelt one, if it is near enough to be a plausible typo.
fn closest<'a>(key: &str, allowed: &[&'a str]) -> Option<&'a str> {
    let lower = key.to_ascii_lowercase();
    allowed
        .iter()
        .map(|&a| (edit_distance(&lower, &a.to_ascii_lowercase()), a))
        .filter(|&(d, a)| d <= 3 && d * 2 < a.len().max(key.len()))
        .min_by_key(|&(d, _)| d)
        .map(|(_, a)| a)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let next = (diag + usize::from(ca != cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diag = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// `$.a.b` for plain keys, `$.a["odd key"]` otherwise, so the path can be pasted into a JSON tool.
fn key_path(at: &str, key: &str) -> String {
    let plain = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        format!("{at}.{key}")
    } else {
        format!("{at}[{}]", Value::from(key))
    }
}

/// A value as an error message shows it: its type, and the value itself when it is short.
fn found(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) if s.chars().count() <= 60 => format!("string {v}"),
        Value::String(s) => {
            let head: String = s.chars().take(57).collect();
            format!("string {}...", Value::from(head))
        }
        Value::Array(a) => format!("an array of {} item{}", a.len(), plural(a.len())),
        Value::Object(o) => format!("an object with {} key{}", o.len(), plural(o.len())),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_catch_the_documented_misspellings() {
        assert_eq!(closest("files_deps", FILE_RULE), Some("file_deps"));
        assert_eq!(
            closest("home_node_policy", TOP_V1),
            Some("home_node_policies")
        );
        assert_eq!(closest("io_graph", TOP_V1), Some("IO_Graph"));
        assert_eq!(closest("zzz", TOP_V1), None);
    }

    #[test]
    fn odd_keys_are_quoted_in_json_paths() {
        assert_eq!(key_path("$", "name"), "$.name");
        assert_eq!(key_path("$", "a key"), "$[\"a key\"]");
        assert_eq!(key_path("$", "0x"), "$[\"0x\"]");
    }
}
