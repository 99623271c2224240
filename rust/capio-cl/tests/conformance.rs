//! Parser conformance: every shape the CAPIO-CL schemas reject (the reference's rejected fixtures and
//! more), valid files of both versions, malformed JSON, and what the errors say.

use capio_cl::{Committed, Config, ConfigError, Kind, Mode, Version};
use std::path::{Path, PathBuf};

const FILE: &str = "/work/wf.json";

fn parse(json: &str) -> Result<Config, ConfigError> {
    Config::parse(json, Path::new(FILE))
}

/// The same document as a v1.1 file: `"version": 1.1` added as the first key.
fn v1_1(json: &str) -> String {
    let body = json.trim_start().strip_prefix('{').expect("an object");
    if body.trim_start().starts_with('}') {
        format!("{{\"version\": 1.1{body}")
    } else {
        format!("{{\"version\": 1.1, {body}")
    }
}

/// Asserts `json` is rejected as a schema violation at `json_path`, in both language versions, and
/// returns the v1 error's (expected, found).
fn rejected_at(json: &str, json_path: &str) -> (String, String) {
    let mut first = None;
    for doc in [json.to_string(), v1_1(json)] {
        match parse(&doc) {
            Err(ConfigError::Invalid {
                file,
                json_path: at,
                expected,
                found,
            }) => {
                assert_eq!(file, PathBuf::from(FILE));
                assert_eq!(at, json_path, "wrong JSON path for {doc}");
                first.get_or_insert((expected, found));
            }
            other => panic!("{doc}: expected a schema error at {json_path}, got {other:?}"),
        }
    }
    first.unwrap()
}

fn step(extra: &str) -> String {
    format!(
        r#"{{"name": "wf", "IO_Graph": [{{"name": "s", "input_stream": [], "output_stream": []{extra}}}]}}"#
    )
}

fn streaming(item: &str) -> String {
    step(&format!(r#", "streaming": [{item}]"#))
}

// ---- the reference's rejected fixtures (test1 … test25), each in v1 and v1.1 ---------------------

#[test]
fn missing_name_and_io_graph() {
    let (expected, found) = rejected_at("{}", "$");
    assert!(expected.contains("\"name\""), "{expected}");
    assert_eq!(found, "no \"name\"");
    let (expected, _) = rejected_at(r#"{"name": "wf"}"#, "$");
    assert!(expected.contains("\"IO_Graph\""), "{expected}");
}

#[test]
fn name_must_be_a_string() {
    let (_, found) = rejected_at(r#"{"name": [], "IO_Graph": []}"#, "$.name");
    assert_eq!(found, "an array of 0 items");
}

#[test]
fn io_graph_must_be_an_array_of_steps() {
    let (_, found) = rejected_at(r#"{"name": "wf", "IO_Graph": "fail"}"#, "$.IO_Graph");
    assert_eq!(found, "string \"fail\"");
    rejected_at(r#"{"name": "wf", "IO_Graph": [3]}"#, "$.IO_Graph[0]");
}

#[test]
fn steps_need_name_and_both_streams() {
    let (expected, _) = rejected_at(r#"{"name": "wf", "IO_Graph": [{}]}"#, "$.IO_Graph[0]");
    assert!(expected.contains("\"name\""));
    rejected_at(
        r#"{"name": "wf", "IO_Graph": [{"name": ["failMe"], "input_stream": [], "output_stream": []}]}"#,
        "$.IO_Graph[0].name",
    );
    let (expected, _) = rejected_at(
        r#"{"name": "wf", "IO_Graph": [{"name": "s"}]}"#,
        "$.IO_Graph[0]",
    );
    assert!(expected.contains("\"input_stream\""), "{expected}");
    let (expected, _) = rejected_at(
        r#"{"name": "wf", "IO_Graph": [{"name": "s", "input_stream": []}]}"#,
        "$.IO_Graph[0]",
    );
    assert!(expected.contains("\"output_stream\""), "{expected}");
}

#[test]
fn streams_must_be_arrays_of_strings() {
    rejected_at(
        r#"{"name": "wf", "IO_Graph": [{"name": "s", "input_stream": "failMe", "output_stream": []}]}"#,
        "$.IO_Graph[0].input_stream",
    );
    rejected_at(
        r#"{"name": "wf", "IO_Graph": [{"name": "s", "input_stream": [], "output_stream": "failMe"}]}"#,
        "$.IO_Graph[0].output_stream",
    );
    rejected_at(
        r#"{"name": "wf", "IO_Graph": [{"name": "s", "input_stream": ["a", 7], "output_stream": []}]}"#,
        "$.IO_Graph[0].input_stream[1]",
    );
}

#[test]
fn an_empty_streaming_item_is_neither_shape() {
    let (expected, found) = rejected_at(&streaming("{}"), "$.IO_Graph[0].streaming[0]");
    assert!(expected.contains("exactly one of `name`"), "{expected}");
    assert_eq!(found, "neither");
}

#[test]
fn a_streaming_item_with_name_and_dirname_is_neither_shape() {
    let (_, found) = rejected_at(
        &streaming(r#"{"name": ["a"], "dirname": ["d"]}"#),
        "$.IO_Graph[0].streaming[0]",
    );
    assert_eq!(found, "both");
}

#[test]
fn streaming_name_must_be_an_array() {
    rejected_at(
        &streaming(r#"{"name": "failMe"}"#),
        "$.IO_Graph[0].streaming[0].name",
    );
    rejected_at(
        &streaming(r#"{"dirname": "failMe"}"#),
        "$.IO_Graph[0].streaming[0].dirname",
    );
}

#[test]
fn committed_must_be_a_valid_string() {
    let at = "$.IO_Graph[0].streaming[0].committed";
    rejected_at(&streaming(r#"{"name": ["a"], "committed": []}"#), at);
    let (expected, found) = rejected_at(&streaming(r#"{"name": ["a"], "committed": "a:b"}"#), at);
    assert!(expected.contains("\"on_close:N\""), "{expected}");
    assert_eq!(found, "string \"a:b\"");
    rejected_at(&streaming(r#"{"name": ["a"], "committed": "failMe"}"#), at);
}

#[test]
fn on_file_requires_file_deps() {
    let (expected, found) = rejected_at(
        &streaming(r#"{"name": ["a"], "committed": "on_file"}"#),
        "$.IO_Graph[0].streaming[0]",
    );
    assert!(expected.contains("\"file_deps\""), "{expected}");
    assert_eq!(found, "no \"file_deps\"");
    // In a directory rule too.
    rejected_at(
        &streaming(r#"{"dirname": ["d"], "committed": "on_file"}"#),
        "$.IO_Graph[0].streaming[0]",
    );
}

#[test]
fn mode_must_be_update_or_no_update() {
    let at = "$.IO_Graph[0].streaming[0].mode";
    rejected_at(&streaming(r#"{"name": ["a"], "mode": ["failMe"]}"#), at);
    let (expected, _) = rejected_at(&streaming(r#"{"name": ["a"], "mode": "failMe"}"#), at);
    assert_eq!(expected, "\"update\" or \"no_update\"");
    rejected_at(&streaming(r#"{"name": ["a"], "mode": "Update"}"#), at);
}

#[test]
fn storage_must_be_an_object_of_arrays() {
    let base = r#"{"name": "wf", "IO_Graph": [], "storage": STORAGE}"#;
    rejected_at(&base.replace("STORAGE", r#""failMe""#), "$.storage");
    rejected_at(
        &base.replace("STORAGE", r#"{"memory": "failMe"}"#),
        "$.storage.memory",
    );
    rejected_at(
        &base.replace("STORAGE", r#"{"fs": "failMe"}"#),
        "$.storage.fs",
    );
    rejected_at(
        &base.replace("STORAGE", r#"{"fs": [1]}"#),
        "$.storage.fs[0]",
    );
}

#[test]
fn n_files_must_be_an_integer() {
    let at = "$.IO_Graph[0].streaming[0].n_files";
    rejected_at(
        &streaming(r#"{"dirname": ["d"], "committed": "on_n_files", "n_files": "failMe"}"#),
        at,
    );
    rejected_at(
        &streaming(r#"{"dirname": ["d"], "committed": "on_n_files", "n_files": 2.5}"#),
        at,
    );
    // The schema would take a negative integer; a negative count means nothing.
    rejected_at(
        &streaming(r#"{"dirname": ["d"], "committed": "on_n_files", "n_files": -1}"#),
        at,
    );
    // In a file rule n_files is allowed (and ignored), but its type is still checked.
    rejected_at(&streaming(r#"{"name": ["a"], "n_files": "x"}"#), at);
}

#[test]
fn legacy_n_files_colon_form_is_rejected() {
    let at = "$.IO_Graph[0].streaming[0].committed";
    let (expected, _) = rejected_at(
        &streaming(r#"{"dirname": ["d"], "committed": "n_files:failMe"}"#),
        at,
    );
    assert!(expected.contains("\"on_n_files\""), "{expected}");
    let (expected, _) = rejected_at(
        &streaming(r#"{"dirname": ["d"], "committed": "n_files:3"}"#),
        at,
    );
    assert!(expected.contains("\"n_files\": N"), "{expected}");
    rejected_at(
        &streaming(r#"{"name": ["a"], "committed": "n_files:3"}"#),
        at,
    );
}

#[test]
fn unknown_version_is_unsupported() {
    for (doc, shown) in [
        (
            r#"{"version": "1234.5678", "name": "wf", "IO_Graph": []}"#,
            "\"1234.5678\"",
        ),
        (r#"{"version": 2, "name": "wf", "IO_Graph": []}"#, "2"),
        (r#"{"version": 1.2, "name": "wf", "IO_Graph": []}"#, "1.2"),
    ] {
        match parse(doc) {
            Err(ref e @ ConfigError::UnsupportedVersion { ref found, .. }) => {
                assert_eq!(found, shown);
                assert_eq!(e.json_path(), Some("$.version"));
                let msg = e.to_string();
                assert!(msg.contains("unsupported CAPIO-CL version"), "{msg}");
                assert!(msg.starts_with(FILE), "{msg}");
            }
            other => panic!("{doc}: {other:?}"),
        }
    }
}

// ---- further rejected shapes --------------------------------------------------------------------

fn rejected_once(json: &str, json_path: &str) -> (String, String) {
    match parse(json) {
        Err(ConfigError::Invalid {
            json_path: at,
            expected,
            found,
            ..
        }) => {
            assert_eq!(at, json_path, "{json}");
            (expected, found)
        }
        other => panic!("{json}: expected a schema error at {json_path}, got {other:?}"),
    }
}

#[test]
fn version_must_be_the_number_1_1() {
    let (_, found) = rejected_once(
        r#"{"version": "1.1", "name": "wf", "IO_Graph": []}"#,
        "$.version",
    );
    assert_eq!(found, "string \"1.1\"");
    // 1.0 selects the v1 schema, which has no `version` key.
    let (expected, found) = rejected_once(
        r#"{"version": 1.0, "name": "wf", "IO_Graph": []}"#,
        "$.version",
    );
    assert!(expected.contains("leave it out"), "{expected}");
    assert_eq!(found, "number 1.0");
    rejected_once(
        r#"{"version": "1.0", "name": "wf", "IO_Graph": []}"#,
        "$.version",
    );
    rejected_once(
        r#"{"version": true, "name": "wf", "IO_Graph": []}"#,
        "$.version",
    );
    rejected_once(
        r#"{"version": null, "name": "wf", "IO_Graph": []}"#,
        "$.version",
    );
}

#[test]
fn v1_1_requires_version_and_v1_forbids_configuration() {
    let (expected, found) = rejected_once(
        r#"{"name": "wf", "IO_Graph": [], "configuration": "x.toml"}"#,
        "$.configuration",
    );
    assert!(expected.contains("\"version\": 1.1"), "{expected}");
    assert_eq!(found, "unknown key \"configuration\"");
    rejected_once(
        r#"{"version": 1.1, "name": "wf", "IO_Graph": [], "configuration": 3}"#,
        "$.configuration",
    );
}

#[test]
fn unknown_keys_are_rejected_at_every_level() {
    rejected_at(r#"{"name": "wf", "IO_Graph": [], "extra": 1}"#, "$.extra");
    rejected_at(&step(r#", "extra": 1"#), "$.IO_Graph[0].extra");
    rejected_at(
        &streaming(r#"{"name": ["a"], "extra": 1}"#),
        "$.IO_Graph[0].streaming[0].extra",
    );
    rejected_at(
        &streaming(r#"{"dirname": ["d"], "extra": 1}"#),
        "$.IO_Graph[0].streaming[0].extra",
    );
    rejected_at(
        r#"{"name": "wf", "IO_Graph": [], "aliases": [{"group_name": "g", "files": [], "x": 1}]}"#,
        "$.aliases[0].x",
    );
    rejected_at(
        r#"{"name": "wf", "IO_Graph": [], "home_node_policies": {"random": []}}"#,
        "$.home_node_policies.random",
    );
    rejected_at(
        r#"{"name": "wf", "IO_Graph": [], "home_node_policies": {"manual": [{"name": [], "app_node": "n", "x": 1}]}}"#,
        "$.home_node_policies.manual[0].x",
    );
    // "No file may appear in more than one policy group."
    rejected_at(
        r#"{"name": "wf", "IO_Graph": [], "home_node_policies": {"create": ["a"], "hashing": ["b", "a"]}}"#,
        "$.home_node_policies.hashing[1]",
    );
    rejected_at(
        r#"{"name": "wf", "IO_Graph": [], "home_node_policies": {"hashing": ["a"], "manual": [{"name": ["a"], "app_node": "n"}]}}"#,
        "$.home_node_policies.manual[0].name[0]",
    );
    rejected_at(
        r#"{"name": "wf", "IO_Graph": [], "storage": {"disk": []}}"#,
        "$.storage.disk",
    );
    rejected_at(
        r#"{"name": "wf", "IO_Graph": [], "odd key": 1}"#,
        "$[\"odd key\"]",
    );
}

#[test]
fn documented_misspellings_are_rejected_with_a_hint() {
    let (expected, found) = rejected_at(
        &streaming(r#"{"name": ["a"], "committed": "on_file", "files_deps": ["b"]}"#),
        "$.IO_Graph[0].streaming[0].files_deps",
    );
    assert!(
        expected.contains("did you mean \"file_deps\"?"),
        "{expected}"
    );
    assert_eq!(found, "unknown key \"files_deps\"");
    let (expected, _) = rejected_at(
        r#"{"name": "wf", "IO_Graph": [], "home_node_policy": {}}"#,
        "$.home_node_policy",
    );
    assert!(
        expected.contains("did you mean \"home_node_policies\"?"),
        "{expected}"
    );
    let (expected, _) = rejected_at(r#"{"name": "wf", "io_graph": []}"#, "$.io_graph");
    assert!(
        expected.contains("did you mean \"IO_Graph\"?"),
        "{expected}"
    );
}

#[test]
fn bad_commit_strings() {
    let at = "$.IO_Graph[0].streaming[0].committed";
    let (expected, _) = rejected_at(
        &streaming(r#"{"name": ["a"], "committed": "on_file:x", "file_deps": ["x"]}"#),
        at,
    );
    assert!(expected.contains("write \"on_file\""), "{expected}");
    let (expected, _) = rejected_at(
        &streaming(r#"{"name": ["a"], "committed": "on_n_files", "n_files": 3}"#),
        at,
    );
    assert!(
        expected.contains("belongs in a `dirname` rule"),
        "{expected}"
    );
    assert!(
        !expected.contains(", \"on_n_files\""),
        "file rules do not offer on_n_files: {expected}"
    );
    for bad in [
        "on_close:",
        "on_close:x",
        "on_close:-1",
        "on_close: 3",
        "on_close:3x",
        "on_close:٣",
        "ON_CLOSE",
        "on_closed",
        " on_close",
    ] {
        rejected_at(
            &streaming(&format!(r#"{{"name": ["a"], "committed": "{bad}"}}"#)),
            at,
        );
    }
    let (expected, _) = rejected_at(
        &streaming(r#"{"name": ["a"], "committed": "on_close:99999999999"}"#),
        at,
    );
    assert!(expected.contains("at most 4294967295"), "{expected}");
}

#[test]
fn on_n_files_requires_n_files() {
    let (expected, found) = rejected_at(
        &streaming(r#"{"dirname": ["d"], "committed": "on_n_files"}"#),
        "$.IO_Graph[0].streaming[0]",
    );
    assert!(expected.contains("\"n_files\""), "{expected}");
    assert_eq!(found, "no \"n_files\"");
}

#[test]
fn wrong_types_elsewhere() {
    rejected_once(r#"[]"#, "$");
    rejected_once(r#""workflow""#, "$");
    rejected_at(
        r#"{"name": "wf", "IO_Graph": [], "permanent": "x"}"#,
        "$.permanent",
    );
    rejected_at(
        r#"{"name": "wf", "IO_Graph": [], "exclude": [1]}"#,
        "$.exclude[0]",
    );
    rejected_at(
        r#"{"name": "wf", "IO_Graph": [], "aliases": {}}"#,
        "$.aliases",
    );
    rejected_at(
        r#"{"name": "wf", "IO_Graph": [], "aliases": ["g"]}"#,
        "$.aliases[0]",
    );
    rejected_at(
        r#"{"name": "wf", "IO_Graph": [], "aliases": [{"group_name": "g"}]}"#,
        "$.aliases[0]",
    );
    rejected_at(
        r#"{"name": "wf", "IO_Graph": [], "aliases": [{"group_name": 1, "files": []}]}"#,
        "$.aliases[0].group_name",
    );
    rejected_at(
        r#"{"name": "wf", "IO_Graph": [], "home_node_policies": []}"#,
        "$.home_node_policies",
    );
    rejected_at(
        r#"{"name": "wf", "IO_Graph": [], "home_node_policies": {"create": "x"}}"#,
        "$.home_node_policies.create",
    );
    rejected_at(
        r#"{"name": "wf", "IO_Graph": [], "home_node_policies": {"manual": [{"name": ["a"], "app_node": 3}]}}"#,
        "$.home_node_policies.manual[0].app_node",
    );
    rejected_at(
        r#"{"name": "wf", "IO_Graph": [], "home_node_policies": {"manual": [{"name": ["a"]}]}}"#,
        "$.home_node_policies.manual[0]",
    );
    rejected_at(&step(r#", "streaming": {}"#), "$.IO_Graph[0].streaming");
    rejected_at(&streaming(r#""a""#), "$.IO_Graph[0].streaming[0]");
    rejected_at(
        &streaming(r#"{"name": ["a"], "committed": "on_file", "file_deps": "b"}"#),
        "$.IO_Graph[0].streaming[0].file_deps",
    );
}

#[test]
fn an_alias_name_may_be_used_once() {
    rejected_at(
        r#"{"name": "wf", "IO_Graph": [], "aliases": [{"group_name": "g", "files": []}, {"group_name": "g", "files": ["a"]}]}"#,
        "$.aliases[1].group_name",
    );
}

#[test]
fn errors_read_as_one_actionable_line() {
    let err = parse(&streaming(r#"{"name": ["a"], "committed": "on_close:x"}"#)).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with("/work/wf.json: $.IO_Graph[0].streaming[0].committed: expected one of "),
        "{msg}"
    );
    assert!(msg.ends_with(", found string \"on_close:x\""), "{msg}");
    assert_eq!(err.file(), Path::new(FILE));
    let long = format!(
        r#"{{"name": {}, "IO_Graph": []}}"#,
        "[".to_string() + &"1,".repeat(5) + "1]"
    );
    let (_, found) = rejected_once(&long, "$.name");
    assert_eq!(found, "an array of 6 items");
    let long = format!(r#"{{"name": "wf", "IO_Graph": "{}"}}"#, "x".repeat(100));
    let (_, found) = rejected_once(&long, "$.IO_Graph");
    assert!(found.ends_with("...") && found.len() < 80, "{found}");
}

// ---- malformed JSON ------------------------------------------------------------------------------

#[test]
fn malformed_json_reports_line_and_column() {
    let doc = "{\n  \"name\": \"wf\",\n  \"IO_Graph\": [,]\n}\n";
    match parse(doc) {
        Err(
            ref e @ ConfigError::Syntax {
                line,
                column,
                ref message,
                ..
            },
        ) => {
            assert_eq!((line, column), (3, 16));
            assert!(!message.contains("at line"), "{message}");
            assert!(
                e.to_string()
                    .starts_with("/work/wf.json:3:16: malformed JSON: "),
                "{e}"
            );
            assert_eq!(e.json_path(), None);
        }
        other => panic!("{other:?}"),
    }
    for (doc, at) in [
        ("", (1, 0)),
        ("{\"name\": \"wf\", \"IO_Graph\": []", (1, 29)),
        ("{\"name\": \"wf\",}", (1, 15)),
        ("{\"name\": 'wf'}", (1, 10)),
    ] {
        match parse(doc) {
            Err(ConfigError::Syntax { line, column, .. }) => {
                assert_eq!((line, column), at, "{doc:?}")
            }
            other => panic!("{doc:?}: {other:?}"),
        }
    }
}

// ---- valid files ---------------------------------------------------------------------------------

fn valid(json: &str) -> Config {
    parse(json).unwrap_or_else(|e| panic!("{json}\nwas rejected: {e}"))
}

#[test]
fn the_smallest_valid_files() {
    let c = valid(r#"{"name": "CAPIO", "IO_Graph": []}"#);
    assert_eq!(c.version, Version::V1_0);
    assert_eq!(c.name, "CAPIO");
    assert!(c.steps.is_empty());
    let c = valid(r#"{"version": 1.1, "name": "CAPIO", "IO_Graph": []}"#);
    assert_eq!(c.version, Version::V1_1);
    assert_eq!(c.configuration, None);
    valid(
        r#"{"name": "", "IO_Graph": [], "storage": {}, "home_node_policies": {}, "aliases": []}"#,
    );
}

#[test]
fn the_documented_v1_example() {
    let c = valid(
        r#"{
  "name": "my_workflow",
  "IO_Graph": [
    { "name": "writer",
      "input_stream": [],
      "output_stream": ["file0.dat", "file1.dat", "file2.dat", "dir"],
      "streaming": [
        { "name": ["file0.dat"], "committed": "on_termination", "mode": "update" },
        { "name": ["file1.dat"], "committed": "on_close",       "mode": "update" },
        { "name": ["file2.dat"], "committed": "on_close:10",    "mode": "no_update" },
        { "dirname": ["dir"],    "committed": "on_n_files", "n_files": 1000, "mode": "no_update" }
      ] },
    { "name": "reader", "input_stream": ["file0.dat", "file1.dat", "file2.dat", "dir"], "output_stream": [] }
  ]
}"#,
    );
    let items = &c.steps[0].streaming;
    assert_eq!(items[0].committed, Some(Committed::OnTermination));
    assert_eq!(items[1].committed, Some(Committed::OnClose(0)));
    assert_eq!(items[2].committed, Some(Committed::OnClose(10)));
    assert_eq!(items[2].mode, Some(Mode::NoUpdate));
    assert_eq!(items[3].kind, Kind::Directory);
    assert_eq!(items[3].committed, Some(Committed::OnNFiles));
    assert_eq!(items[3].n_files, Some(1000));
    assert_eq!(c.steps[1].input_stream.len(), 4);
}

#[test]
fn the_v1_1_example_with_a_runtime_configuration() {
    let c = valid(
        r#"{ "version": 1.1, "configuration": "/tmp/capio_cl.toml", "name": "test",
  "IO_Graph": [ { "name": "step", "input_stream": ["/tmp/file", "file3"], "output_stream": ["file1", "file2"],
                  "streaming": [ { "name": ["/tmp/file"], "committed": "on_termination", "mode": "no_update" },
                                 { "name": ["/tmp/file1"] } ] } ] }"#,
    );
    assert_eq!(c.configuration.as_deref(), Some("/tmp/capio_cl.toml"));
    let bare = &c.steps[0].streaming[1];
    assert_eq!((bare.committed, bare.mode), (None, None));
}

#[test]
fn commit_on_file_glob_and_directory_examples() {
    let c = valid(
        r#"{ "name": "wf", "IO_Graph": [ { "name": "sim", "input_stream": [], "output_stream": ["/run/out.h5", "/run/done.flag"],
  "streaming": [ { "name": ["/run/out.h5"], "committed": "on_file", "file_deps": ["/run/done.flag"], "mode": "update" },
                 { "name": ["/run/done.flag"], "committed": "on_close" } ] } ] }"#,
    );
    assert_eq!(c.steps[0].streaming[0].file_deps, ["/run/done.flag"]);
    valid(
        r#"{ "name": "benchmark", "IO_Graph": [
  { "name": "producer", "input_stream": [], "output_stream": ["*/test_data.bin"],
    "streaming": [ { "name": ["*/test_data.bin"], "committed": "on_close:1", "mode": "no_update" } ] },
  { "name": "consumer", "input_stream": ["*/test_data.bin"], "output_stream": [], "streaming": [] } ] }"#,
    );
    let c = valid(
        r#"{ "name": "libcapio_readdir_example", "IO_Graph": [
  { "name": "producer", "input_stream": [], "output_stream": ["/tmp/*"],
    "streaming": [ { "dirname": ["/tmp"], "committed": "on_close", "n_files": 4, "mode": "no_update" },
                   { "name": ["/tmp/*"], "committed": "on_close", "mode": "no_update" } ] },
  { "name": "reader", "input_stream": ["/tmp"], "output_stream": [], "streaming": [] } ] }"#,
    );
    assert_eq!(c.steps[0].streaming[0].n_files, Some(4));
}

#[test]
fn every_optional_section() {
    let doc = r#"{ "name": "full",
  "aliases": [ { "group_name": "evens", "files": ["f0.dat", "f2.dat"] } ],
  "IO_Graph": [ { "name": "w", "input_stream": [], "output_stream": ["f0.dat"] } ],
  "permanent": ["f0.dat"],
  "exclude": ["*.tmp", "*~"],
  "home_node_policies": { "create": ["*.dat"], "hashing": [], "manual": [ { "name": ["big.bin"], "app_node": "node3" } ] },
  "storage": { "memory": ["f0.dat"], "fs": [] } }"#;
    for doc in [doc.to_string(), v1_1(doc)] {
        let c = valid(&doc);
        assert_eq!(c.aliases[0].files, ["f0.dat", "f2.dat"]);
        assert_eq!(c.exclude, ["*.tmp", "*~"]);
        let h = c.home_node_policies.unwrap();
        assert_eq!(h.create, ["*.dat"]);
        assert_eq!(h.manual[0].app_node, "node3");
        assert_eq!(c.storage.memory, ["f0.dat"]);
    }
}

#[test]
fn schema_corners_that_are_valid() {
    // on_close:0 means on_close; a file rule may carry n_files (ignored); n_files 4.0 is an integer.
    let c = valid(&streaming(
        r#"{"name": ["a"], "committed": "on_close:0", "n_files": 3},
           {"dirname": ["d"], "committed": "on_n_files", "n_files": 4.0},
           {"dirname": ["e"], "committed": "on_file", "file_deps": []},
           {"name": ["f"], "committed": "on_close:007"}"#,
    ));
    let items = &c.steps[0].streaming;
    assert_eq!(items[0].committed, Some(Committed::OnClose(0)));
    assert_eq!(items[1].n_files, Some(4));
    assert_eq!(items[2].committed, Some(Committed::OnFile));
    assert_eq!(items[3].committed, Some(Committed::OnClose(7)));
}

// ---- files on disk -------------------------------------------------------------------------------

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn load_reads_fixture_files() {
    let c = Config::load(&fixture("pipeline_v1.json")).unwrap();
    assert_eq!((c.version, c.name.as_str()), (Version::V1_0, "pipeline"));
    let c = Config::load(&fixture("pipeline_v1_1.json")).unwrap();
    assert_eq!(
        (c.version, c.name.as_str()),
        (Version::V1_1, "pipeline-1.1")
    );
    let rules = capio_cl::load(&fixture("pipeline_v1_1.json"), Path::new("/capio")).unwrap();
    assert_eq!(rules.workflow_name(), "pipeline-1.1");
}

#[test]
fn load_errors_name_the_file() {
    let path = fixture("malformed.json");
    match Config::load(&path) {
        Err(
            e @ ConfigError::Syntax {
                line: 4,
                column: 39,
                ..
            },
        ) => {
            assert_eq!(e.file(), path);
            assert!(
                e.to_string()
                    .contains("malformed.json:4:39: malformed JSON"),
                "{e}"
            );
        }
        other => panic!("{other:?}"),
    }
    let path = fixture("bad_commit.json");
    let err = capio_cl::load(&path, Path::new("/capio")).unwrap_err();
    assert_eq!(err.file(), path);
    assert_eq!(
        err.json_path(),
        Some("$.IO_Graph[0].streaming[1].committed")
    );
    let missing = fixture("no_such_file.json");
    match Config::load(&missing) {
        Err(e @ ConfigError::Read { .. }) => {
            assert_eq!(e.file(), missing);
            assert!(
                e.to_string().starts_with("cannot read CAPIO-CL file "),
                "{e}"
            );
        }
        other => panic!("{other:?}"),
    }
}
