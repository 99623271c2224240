//! Warnings about a valid CAPIO-CL file: fields that the schema allows but that pycapio ignores where
//! they are written, and the parts of the reference's runtime that pycapio does not have. A warning
//! never stops a run; `pycapio validate` prints them and the server logs them at start.

use crate::rules::Rules;
use crate::schema::{Committed, Config, Kind, StreamingItem};
use std::path::{Path, PathBuf};

/// Keys of the reference engine's TOML runtime file that ask for UDP multicast.
const MULTICAST_KEYS: &[&str] = &["dynamic_api", "mcast"];

impl Config {
    /// Everything in the file (read from `file`) that will be ignored, each with its JSON path.
    pub fn warnings(&self, file: &Path) -> Vec<String> {
        let mut out = Vec::new();
        for (i, step) in self.steps.iter().enumerate() {
            for (j, item) in step.streaming.iter().enumerate() {
                let at = format!("$.IO_Graph[{i}].streaming[{j}]");
                out.extend(ignored_fields(item).into_iter().map(|w| format!("{at}{w}")));
            }
        }
        out.extend(self.excluded_rules());
        if let Some(toml) = &self.configuration {
            out.push(runtime_file(toml, file));
        }
        if self
            .home_node_policies
            .as_ref()
            .is_some_and(|p| !p.create.is_empty() || !p.hashing.is_empty() || !p.manual.is_empty())
        {
            out.push(
                "$.home_node_policies: used only by servers that run as one MPI job over many \
                 nodes (on a single node every path lives on its server)"
                    .into(),
            );
        }
        out
    }
}

impl Config {
    /// Rules given to paths that `exclude` also names: an excluded path is the OS's, so its
    /// streaming rule, `permanent` and `storage` do nothing. A pattern is reported when `exclude`
    /// surely covers it: the same pattern, or one an exclude pattern matches as written.
    fn excluded_rules(&self) -> Vec<String> {
        if self.exclude.is_empty() {
            return Vec::new();
        }
        let rules = Rules::new(self, Path::new("/"));
        let aliases: Vec<&str> = self.aliases.iter().map(|a| a.group_name.as_str()).collect();
        let excluded =
            |p: &String| !aliases.contains(&p.as_str()) && rules.is_excluded(Path::new(p));
        let mut out = Vec::new();
        let mut check = |at: String, list: &[String], what: &str| {
            for (k, p) in list.iter().enumerate() {
                if excluded(p) {
                    out.push(format!(
                        "{at}[{k}]: ignored: \"{p}\" is excluded (the OS serves it), so its {what} \
                         does nothing"
                    ));
                }
            }
        };
        for (i, step) in self.steps.iter().enumerate() {
            for (j, item) in step.streaming.iter().enumerate() {
                let key = match item.kind {
                    Kind::File => "name",
                    Kind::Directory => "dirname",
                };
                check(
                    format!("$.IO_Graph[{i}].streaming[{j}].{key}"),
                    &item.paths,
                    "streaming rule",
                );
            }
        }
        check("$.permanent".into(), &self.permanent, "permanence");
        check("$.storage.memory".into(), &self.storage.memory, "storage");
        check("$.storage.fs".into(), &self.storage.fs, "storage");
        out
    }
}

/// The suffix (field and reason) of each field of `item` that its rule does not use.
fn ignored_fields(item: &StreamingItem) -> Vec<String> {
    let committed = item.committed.unwrap_or(Committed::OnTermination);
    let shown = committed_name(committed);
    let mut out = Vec::new();
    if item.n_files.is_some() {
        match item.kind {
            Kind::File => out.push(
                ".n_files: ignored: it counts the files of a directory, and this is a file rule \
                 (`name`); write a `dirname` rule with \"committed\": \"on_n_files\""
                    .to_string(),
            ),
            Kind::Directory if committed != Committed::OnNFiles => out.push(format!(
                ".n_files: ignored: only \"committed\": \"on_n_files\" uses it, and this rule \
                 commits {shown}"
            )),
            Kind::Directory => {}
        }
    }
    if !item.file_deps.is_empty() && committed != Committed::OnFile {
        out.push(format!(
            ".file_deps: ignored: only \"committed\": \"on_file\" uses it, and this rule commits \
             {shown}"
        ));
    }
    if item.kind == Kind::Directory && matches!(committed, Committed::OnClose(_)) {
        out.push(format!(
            ".committed: {shown} counts closes of a file; a directory is never opened for writing, \
             so this one commits when its producers terminate (use \"on_n_files\" to commit it \
             earlier)"
        ));
    }
    out
}

fn committed_name(c: Committed) -> String {
    match c {
        Committed::OnTermination => "\"on_termination\"".into(),
        Committed::OnClose(0) => "\"on_close\"".into(),
        Committed::OnClose(n) => format!("\"on_close:{n}\""),
        Committed::OnFile => "\"on_file\"".into(),
        Committed::OnNFiles => "\"on_n_files\"".into(),
    }
}

/// The warning for a v1.1 `configuration` file, naming the multicast features it asks for.
fn runtime_file(toml: &str, file: &Path) -> String {
    let base = "$.configuration: not read: it configures the reference engine's commit monitors \
                and rule API, which pycapio does not have";
    let Some(text) = read_beside(toml, file) else {
        return format!("{base} ({toml} was not found either)");
    };
    let asked: Vec<&str> = MULTICAST_KEYS
        .iter()
        .copied()
        .filter(|key| mentions_key(&text, key))
        .collect();
    if asked.is_empty() {
        return base.into();
    }
    format!(
        "{base}. {toml} asks for UDP multicast ({}): pycapio does not support the dynamic rule API \
         or multicast commit monitors, because its servers take rules only from this file and talk \
         to nothing but their own steps (and, on many nodes, each other over MPI); declare every \
         rule in this file instead",
        asked.join(", ")
    )
}

/// The TOML file as the reference reads it (as written, from the working directory), else beside
/// the CAPIO-CL file.
fn read_beside(toml: &str, file: &Path) -> Option<String> {
    let as_written = PathBuf::from(toml);
    let beside = file.parent().map(|dir| dir.join(toml));
    std::iter::once(as_written)
        .chain(beside)
        .find_map(|p| std::fs::read_to_string(p).ok())
}

/// `key` as a table name or a dotted key on some line, outside comments.
fn mentions_key(text: &str, key: &str) -> bool {
    text.lines()
        .map(|line| line.split('#').next().unwrap_or("").trim())
        .filter(|line| !line.is_empty())
        .any(|line| {
            let head = line
                .trim_start_matches('[')
                .split(['=', ']'])
                .next()
                .unwrap_or("");
            head.split('.')
                .any(|part| part.trim().trim_matches('"') == key)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(streaming: &str) -> Config {
        let text = format!(
            r#"{{"name": "wf", "IO_Graph": [{{"name": "a", "input_stream": [], "output_stream": [],
                "streaming": [{streaming}]}}]}}"#
        );
        Config::parse(&text, Path::new("wf.json")).unwrap()
    }

    #[test]
    fn fields_a_rule_does_not_use_are_named() {
        let w = config(r#"{"dirname": ["d"], "committed": "on_close", "n_files": 4}"#)
            .warnings(Path::new("wf.json"));
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].starts_with("$.IO_Graph[0].streaming[0].n_files: ignored"),
            "{w:?}"
        );
        assert!(
            w[1].contains(".committed: \"on_close\" counts closes"),
            "{w:?}"
        );
        let w = config(
            r#"{"name": ["f"], "committed": "on_close:2", "file_deps": ["g"], "n_files": 1}"#,
        )
        .warnings(Path::new("wf.json"));
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w.iter()
                .any(|m| m.contains(".n_files: ignored") && m.contains("file rule"))
        );
        assert!(
            w.iter()
                .any(|m| m.contains(".file_deps: ignored") && m.contains("on_close:2"))
        );
    }

    #[test]
    fn rules_that_use_their_fields_have_no_warning() {
        for item in [
            r#"{"dirname": ["d"], "committed": "on_n_files", "n_files": 4, "mode": "no_update"}"#,
            r#"{"name": ["f"], "committed": "on_file", "file_deps": ["g"]}"#,
            r#"{"name": ["f"], "committed": "on_close:3"}"#,
        ] {
            assert_eq!(
                config(item).warnings(Path::new("wf.json")),
                Vec::<String>::new()
            );
        }
    }

    #[test]
    fn rules_for_excluded_paths_are_named() {
        let text = r#"{"name": "wf", "exclude": ["*.log", "scratch/tmp.bin"],
            "permanent": ["out/run.log", "out/data.bin"], "storage": {"fs": ["scratch/tmp.bin"]},
            "IO_Graph": [{"name": "a", "input_stream": [], "output_stream": [],
                "streaming": [{"name": ["logs/*.log", "res.csv"], "committed": "on_close"}]}]}"#;
        let w = Config::parse(text, Path::new("wf.json"))
            .unwrap()
            .warnings(Path::new("wf.json"));
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(w[0].starts_with("$.IO_Graph[0].streaming[0].name[0]: ignored: \"logs/*.log\""));
        assert!(w[1].starts_with("$.permanent[0]: ignored: \"out/run.log\" is excluded"));
        assert!(w[2].starts_with("$.storage.fs[0]: ignored"));
    }

    #[test]
    fn multicast_keys_are_found_in_tables_and_dotted_keys() {
        assert!(mentions_key(
            "[dynamic_api]\nip = \"224.224.224.3\"",
            "dynamic_api"
        ));
        assert!(mentions_key("dynamic_api.port = 11223", "dynamic_api"));
        assert!(mentions_key("[monitor.mcast]\nenabled = true", "mcast"));
        assert!(!mentions_key(
            "# dynamic_api = 1\n[monitor.filesystem]",
            "dynamic_api"
        ));
        assert!(!mentions_key(
            "[monitor.filesystem]\nenabled = true",
            "mcast"
        ));
    }
}
