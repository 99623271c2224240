//! Rule lookup: precedence (exact, longest glob), path resolution, every rule field, defaults, and
//! the no-config rules.

use capio_cl::{CommitRule, Config, FireRule, Kind, Rule, Rules, Storage};
use std::path::{Path, PathBuf};

const CAPIO: &str = "/capio";

fn rules(json: &str) -> Rules {
    let config = Config::parse(json, Path::new("wf.json")).unwrap_or_else(|e| panic!("{e}"));
    Rules::new(&config, Path::new(CAPIO))
}

/// A one-step workflow whose `streaming` is `items`.
fn streaming(items: &str) -> Rules {
    rules(&format!(
        r#"{{"name": "wf", "IO_Graph": [{{"name": "w", "input_stream": [], "output_stream": [], "streaming": [{items}]}}]}}"#
    ))
}

fn file(r: &Rules, path: &str) -> Rule {
    r.rule_for(Path::new(path))
}

fn dir(r: &Rules, path: &str) -> Rule {
    r.dir_rule_for(Path::new(path))
}

#[test]
fn unmatched_paths_get_the_defaults() {
    let r = streaming(r#"{"name": ["/capio/a"], "committed": "on_close"}"#);
    let expected = Rule {
        commit: CommitRule::OnTermination,
        fire: FireRule::Update,
        permanent: false,
        excluded: false,
        storage: Storage::Memory,
        producers: vec![],
        consumers: vec![],
        n_files: None,
    };
    assert_eq!(file(&r, "/capio/b"), expected);
    assert_eq!(dir(&r, "/capio/b"), expected);
    assert_eq!(
        dir(&r, "/capio/a"),
        expected,
        "a file rule says nothing about a directory"
    );
}

#[test]
fn streaming_item_defaults_are_on_termination_and_update() {
    let r = streaming(r#"{"name": ["/capio/a"]}, {"name": ["/capio/b"], "mode": "no_update"}"#);
    let a = file(&r, "/capio/a");
    assert_eq!(
        (a.commit, a.fire),
        (CommitRule::OnTermination, FireRule::Update)
    );
    let b = file(&r, "/capio/b");
    assert_eq!(
        (b.commit, b.fire),
        (CommitRule::OnTermination, FireRule::NoUpdate)
    );
}

#[test]
fn no_config_rules_persist_everything() {
    let r = Rules::default_no_config();
    assert_eq!(r.workflow_name(), "CAPIO");
    for path in ["/anything", "/capio/x/y.dat", "relative"] {
        let rule = file(&r, path);
        assert_eq!(rule.commit, CommitRule::OnTermination);
        assert_eq!(rule.fire, FireRule::Update);
        assert!(rule.permanent);
        assert!(!rule.excluded);
        assert_eq!(rule.storage, Storage::Memory);
        assert!(rule.producers.is_empty() && rule.consumers.is_empty());
        assert!(dir(&r, path).permanent);
    }
    assert!(!r.is_producer("any", Path::new("/x")));
}

#[test]
fn on_close_counts() {
    let r = streaming(
        r#"{"name": ["/capio/a"], "committed": "on_close"},
           {"name": ["/capio/b"], "committed": "on_close:0"},
           {"name": ["/capio/c"], "committed": "on_close:1"},
           {"name": ["/capio/d"], "committed": "on_close:10"}"#,
    );
    let closes = |p: &str| {
        let c = file(&r, p).commit;
        (c.clone(), c.closes_needed())
    };
    assert_eq!(closes("/capio/a"), (CommitRule::OnClose(0), Some(1)));
    assert_eq!(closes("/capio/b"), (CommitRule::OnClose(0), Some(1)));
    assert_eq!(closes("/capio/c"), (CommitRule::OnClose(1), Some(1)));
    assert_eq!(closes("/capio/d"), (CommitRule::OnClose(10), Some(10)));
    assert_eq!(CommitRule::OnTermination.closes_needed(), None);
    assert_eq!(CommitRule::OnClose(10).to_string(), "on_close:10");
    assert_eq!(CommitRule::OnClose(0).to_string(), "on_close");
}

#[test]
fn exact_name_beats_any_glob() {
    let r = streaming(
        r#"{"name": ["/capio/run/out.dat"], "committed": "on_file", "file_deps": ["done"]},
           {"name": ["/capio/run/*.dat"], "committed": "on_close", "mode": "no_update"},
           {"name": ["/capio/run/out.da[t]"], "committed": "on_close:5"}"#,
    );
    let exact = file(&r, "/capio/run/out.dat");
    assert_eq!(
        exact.commit,
        CommitRule::OnFile(vec![PathBuf::from("/capio/done")])
    );
    assert_eq!(exact.fire, FireRule::Update);
    let other = file(&r, "/capio/run/x.dat");
    assert_eq!(
        (other.commit, other.fire),
        (CommitRule::OnClose(0), FireRule::NoUpdate)
    );
}

#[test]
fn longest_pattern_wins_whatever_the_order() {
    let items = [
        r#"{"name": ["/capio/*"], "committed": "on_close", "mode": "no_update"}"#,
        r#"{"name": ["/capio/sub/*"], "committed": "on_close:3"}"#,
        r#"{"name": ["*.log"], "committed": "on_termination", "mode": "no_update"}"#,
    ];
    for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0]] {
        let r = streaming(&order.map(|i| items[i]).join(","));
        assert_eq!(file(&r, "/capio/sub/a").commit, CommitRule::OnClose(3));
        // `*` crosses `/`: /capio/* reaches any depth.
        assert_eq!(
            file(&r, "/capio/other/deep/b").commit,
            CommitRule::OnClose(0)
        );
        assert_eq!(file(&r, "/capio/sub/x/y").commit, CommitRule::OnClose(3));
        // The relative "*.log" resolves to "/capio/*.log", longer than "/capio/*".
        assert_eq!(file(&r, "/capio/a.log").fire, FireRule::NoUpdate);
    }
}

#[test]
fn equally_long_patterns_go_to_the_later_declaration() {
    let r = streaming(
        r#"{"name": ["/capio/a*"], "committed": "on_close:1"},
           {"name": ["/capio/*b"], "committed": "on_close:2"}"#,
    );
    assert_eq!(file(&r, "/capio/ab").commit, CommitRule::OnClose(2));
    let r = streaming(
        r#"{"name": ["/capio/a*"], "committed": "on_close:1"},
           {"name": ["/capio/*b"], "committed": "on_close:2"},
           {"name": ["/capio/a*"], "committed": "on_close:3"}"#,
    );
    assert_eq!(file(&r, "/capio/ab").commit, CommitRule::OnClose(3));
    assert_eq!(file(&r, "/capio/xb").commit, CommitRule::OnClose(2));
}

#[test]
fn brackets_and_question_marks() {
    let r = streaming(
        r#"{"name": ["/capio/test.[abc][abc][abc]"], "committed": "on_close"},
           {"name": ["/capio/f?.dat"], "mode": "no_update"}"#,
    );
    assert_eq!(file(&r, "/capio/test.cab").commit, CommitRule::OnClose(0));
    assert_eq!(
        file(&r, "/capio/test.dat").commit,
        CommitRule::OnTermination
    );
    assert_eq!(file(&r, "/capio/f1.dat").fire, FireRule::NoUpdate);
    assert_eq!(file(&r, "/capio/f12.dat").fire, FireRule::Update);
}

#[test]
fn relative_paths_resolve_against_the_capio_dir() {
    let r = streaming(
        r#"{"name": ["out.dat"], "committed": "on_close"},
           {"name": ["./sub//../frames/*.npy"], "mode": "no_update"},
           {"name": ["*/test_data.bin"], "committed": "on_close:1"},
           {"name": ["/tmp/abs.dat"], "committed": "on_close:7"},
           {"name": ["deps.dat"], "committed": "on_file", "file_deps": ["a", "/abs/b", "c/../d"]}"#,
    );
    for p in [
        "/capio/out.dat",
        "out.dat",
        "./out.dat",
        "/capio//out.dat",
        "/capio/x/../out.dat",
    ] {
        assert_eq!(file(&r, p).commit, CommitRule::OnClose(0), "{p}");
    }
    assert_eq!(file(&r, "/out.dat").commit, CommitRule::OnTermination);
    assert_eq!(file(&r, "/capio/frames/0.npy").fire, FireRule::NoUpdate);
    assert_eq!(
        file(&r, "/capio/a/b/test_data.bin").commit,
        CommitRule::OnClose(1)
    );
    assert_eq!(
        file(&r, "/capio/test_data.bin").commit,
        CommitRule::OnTermination
    );
    assert_eq!(file(&r, "/tmp/abs.dat").commit, CommitRule::OnClose(7));
    assert_eq!(
        file(&r, "/capio/tmp/abs.dat").commit,
        CommitRule::OnTermination
    );
    assert_eq!(
        file(&r, "deps.dat").commit,
        CommitRule::OnFile(
            ["/capio/a", "/abs/b", "/capio/d"]
                .map(PathBuf::from)
                .to_vec()
        )
    );
    // The CAPIO directory itself may be given in any lexical form.
    let config = Config::parse(
        r#"{"name": "wf", "IO_Graph": [], "permanent": ["keep"]}"#,
        Path::new("wf.json"),
    )
    .unwrap();
    let r = Rules::new(&config, Path::new("/capio/./x/../"));
    assert!(file(&r, "/capio/keep").permanent);
}

#[test]
fn trailing_slashes_do_not_matter() {
    let r = streaming(r#"{"dirname": ["dir/"], "committed": "on_n_files", "n_files": 2}"#);
    assert_eq!(dir(&r, "/capio/dir").commit, CommitRule::OnNFiles(2));
    assert_eq!(dir(&r, "/capio/dir/").commit, CommitRule::OnNFiles(2));
}

#[test]
fn directory_rules() {
    let r = rules(
        r#"{"name": "wf", "IO_Graph": [
            {"name": "writer", "input_stream": [], "output_stream": ["dir", "/tmp/*"],
             "streaming": [
               {"dirname": ["dir"], "committed": "on_n_files", "n_files": 1000, "mode": "no_update"},
               {"dirname": ["/tmp"], "committed": "on_close", "n_files": 4, "mode": "no_update"},
               {"dirname": ["/scratch/*"], "committed": "on_termination"},
               {"name": ["/tmp/*"], "committed": "on_close", "mode": "no_update"}
             ]},
            {"name": "reader", "input_stream": ["dir", "/tmp"], "output_stream": []}]}"#,
    );
    let d = dir(&r, "/capio/dir");
    assert_eq!(d.commit, CommitRule::OnNFiles(1000));
    assert_eq!(d.fire, FireRule::NoUpdate);
    assert_eq!(d.n_files, Some(1000));
    assert_eq!(d.producers, ["writer"]);
    assert_eq!(d.consumers, ["reader"]);
    // A dirname rule covers the directory, not its contents.
    assert_eq!(file(&r, "/capio/dir/x").commit, CommitRule::OnTermination);
    assert_eq!(dir(&r, "/capio/dir/sub").commit, CommitRule::OnTermination);
    // n_files with another commit rule is kept for the server.
    let t = dir(&r, "/tmp");
    assert_eq!(
        (t.commit.clone(), t.n_files),
        (CommitRule::OnClose(0), Some(4))
    );
    assert_eq!(dir(&r, "/scratch/a/b").n_files, None);
    // The file rule `/tmp/*` governs files below /tmp, and not /tmp as a directory.
    assert_eq!(file(&r, "/tmp/f").fire, FireRule::NoUpdate);
    assert_eq!(dir(&r, "/tmp/f").fire, FireRule::Update);
    assert_eq!(r.rule(Path::new("/tmp"), Kind::Directory), t);
}

#[test]
fn permanent_exclude_and_storage() {
    let r = rules(
        r#"{"name": "wf",
            "IO_Graph": [{"name": "w", "input_stream": [], "output_stream": ["out/result.h5"],
                          "streaming": [{"name": ["out/result.h5"], "committed": "on_close"}]}],
            "permanent": ["*.h5", "logs/run.log"],
            "exclude": ["*.tmp", "*~"],
            "storage": {"memory": ["big/*", "both.bin"], "fs": ["big/keep/*", "both.bin", "out/*"]}}"#,
    );
    // A permanent glob reaches a path a streaming rule named earlier (the reference would not).
    let out = file(&r, "/capio/out/result.h5");
    assert!(out.permanent);
    assert_eq!(out.commit, CommitRule::OnClose(0));
    assert!(file(&r, "/capio/logs/run.log").permanent);
    assert!(!file(&r, "/capio/logs/other.log").permanent);
    assert!(file(&r, "/capio/a/b.tmp").excluded);
    assert!(file(&r, "/capio/notes~").excluded);
    assert!(!file(&r, "/capio/notes").excluded);
    assert!(dir(&r, "/capio/scratch.tmp").excluded);
    assert!(r.is_excluded(Path::new("/capio/a/b.tmp")));
    assert!(r.is_excluded(Path::new("notes~")));
    assert!(!r.is_excluded(Path::new("/capio/notes")));
    assert_eq!(file(&r, "/capio/big/x").storage, Storage::Memory);
    assert_eq!(file(&r, "/capio/big/keep/x").storage, Storage::Fs);
    assert_eq!(file(&r, "/capio/both.bin").storage, Storage::Fs);
    assert_eq!(file(&r, "/capio/out/result.h5").storage, Storage::Fs);
    assert_eq!(file(&r, "/capio/elsewhere").storage, Storage::Memory);
}

#[test]
fn producers_and_consumers() {
    let r = rules(
        r#"{"name": "wf", "IO_Graph": [
            {"name": "sim", "input_stream": ["params.json"], "output_stream": ["frames/*", "frames/f0.npy"]},
            {"name": "sim2", "input_stream": [], "output_stream": ["frames/f0.npy"]},
            {"name": "viz", "input_stream": ["frames/*", "frames/*.npy"], "output_stream": ["plot.png"]},
            {"name": "sim", "input_stream": [], "output_stream": ["frames/f0.npy", "extra.dat"]}]}"#,
    );
    let f0 = file(&r, "/capio/frames/f0.npy");
    assert_eq!(f0.producers, ["sim", "sim2"]);
    assert_eq!(f0.consumers, ["viz"]);
    assert_eq!(file(&r, "/capio/frames/f1.npy").producers, ["sim"]);
    assert_eq!(file(&r, "/capio/params.json").consumers, ["sim"]);
    assert!(file(&r, "/capio/params.json").producers.is_empty());
    assert!(r.is_producer("sim", Path::new("/capio/frames/f9.npy")));
    assert!(r.is_producer("sim2", Path::new("frames/f0.npy")));
    assert!(!r.is_producer("sim2", Path::new("/capio/frames/f1.npy")));
    assert!(!r.is_producer("viz", Path::new("/capio/frames/f0.npy")));
    assert!(r.is_producer("sim", Path::new("/capio/extra.dat")));
    assert_eq!(
        r.declared_producers(Path::new("/capio/frames/f0.npy")),
        ["sim", "sim2"]
    );
    assert!(r.declared_producers(Path::new("/capio/nothing")).is_empty());
    assert_eq!(r.workflow_name(), "wf");
}

#[test]
fn aliases_stand_for_their_files() {
    let r = rules(
        r#"{"name": "wf",
            "aliases": [{"group_name": "evens", "files": ["f0.dat", "f2.dat"]},
                        {"group_name": "inputs", "files": ["/in/*"]}],
            "IO_Graph": [{"name": "w", "input_stream": ["inputs"], "output_stream": ["evens"],
                          "streaming": [{"name": ["evens"], "committed": "on_close"},
                                        {"name": ["x.dat"], "committed": "on_file", "file_deps": ["evens"]}]}],
            "permanent": ["evens"], "exclude": ["inputs"]}"#,
    );
    for p in ["/capio/f0.dat", "/capio/f2.dat"] {
        let rule = file(&r, p);
        assert_eq!(rule.commit, CommitRule::OnClose(0));
        assert!(rule.permanent);
        assert_eq!(rule.producers, ["w"]);
    }
    assert!(!file(&r, "/capio/f1.dat").permanent);
    assert!(
        !file(&r, "/capio/evens").permanent,
        "an alias is not a path"
    );
    assert_eq!(
        file(&r, "/capio/x.dat").commit,
        CommitRule::OnFile(
            ["/capio/f0.dat", "/capio/f2.dat"]
                .map(PathBuf::from)
                .to_vec()
        )
    );
    let input = file(&r, "/in/a");
    assert!(input.excluded);
    assert_eq!(input.consumers, ["w"]);
}

#[test]
fn the_v1_1_fixture_example_resolved_against_tmp() {
    let config = Config::parse(
        r#"{ "version": 1.1, "configuration": "/tmp/capio_cl.toml", "name": "test",
  "IO_Graph": [ { "name": "step", "input_stream": ["/tmp/file", "file3"], "output_stream": ["file1", "file2"],
                  "streaming": [ { "name": ["/tmp/file"], "committed": "on_termination", "mode": "no_update" },
                                 { "name": ["/tmp/file1"] } ] } ] }"#,
        Path::new("t.json"),
    )
    .unwrap();
    let r = Rules::new(&config, Path::new("/tmp"));
    let f = file(&r, "/tmp/file");
    assert_eq!(
        (f.commit, f.fire, f.consumers),
        (
            CommitRule::OnTermination,
            FireRule::NoUpdate,
            vec!["step".to_string()]
        )
    );
    assert_eq!(file(&r, "/tmp/file3").consumers, ["step"]);
    let f1 = file(&r, "/tmp/file1");
    assert_eq!(
        (f1.fire, f1.producers),
        (FireRule::Update, vec!["step".to_string()])
    );
    assert_eq!(file(&r, "/tmp/file2").producers, ["step"]);
}

#[test]
fn describe_says_where_each_value_comes_from() {
    let r = capio_cl::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pipeline_v1.json"),
        Path::new(CAPIO),
    )
    .unwrap();
    let text = r.describe(Path::new("summary.csv"));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "path: /capio/summary.csv",
            "commit: on_close:4 (streaming rule \"/capio/summary.csv\" of step \"simulate\")",
            "fire: update (streaming rule \"/capio/summary.csv\" of step \"simulate\")",
            "permanent: yes (permanent \"/capio/summary.csv\")",
            "excluded: no",
            "storage: memory (default)",
            "producers: simulate (output_stream \"/capio/summary.csv\")",
            "consumers: analyse (input_stream \"/capio/summary.csv\")",
        ]
    );
    let text = r.describe(Path::new("/capio/frames"));
    assert!(text.contains("\ndirectory commit: on_n_files 16 (dirname rule \"/capio/frames\" of step \"simulate\")"), "{text}");
    assert!(text.contains("\ndirectory fire: no_update"), "{text}");
    // "frames/*" covers what is inside the directory, not the directory.
    assert!(text.contains("\nstorage: memory (default)"), "{text}");
    let text = r.describe(Path::new("/capio/frames/0.npy"));
    assert!(
        text.contains("\nstorage: memory (storage \"/capio/frames/*\")"),
        "{text}"
    );
    let text = r.describe(Path::new("log.txt"));
    assert!(
        text.contains("commit: on_file [/capio/summary.csv]"),
        "{text}"
    );
    let text = Rules::default_no_config().describe(Path::new("/x"));
    assert!(text.contains("permanent: yes (no CAPIO-CL file"), "{text}");
    assert!(text.contains("commit: on_termination (default)"), "{text}");
    assert!(text.contains("producers: none"), "{text}");
}

#[test]
fn rules_are_shared_between_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Rules>();
    let r = std::sync::Arc::new(streaming(
        r#"{"name": ["/capio/*"], "committed": "on_close"}"#,
    ));
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let r = r.clone();
            std::thread::spawn(move || r.rule_for(Path::new(&format!("/capio/{i}"))).commit)
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), CommitRule::OnClose(0));
    }
}

#[test]
fn home_node_policies_give_each_path_its_home_by_the_best_pattern() {
    use capio_cl::Home;
    let r = rules(
        r#"{"name": "wf", "IO_Graph": [], "home_node_policies": {
            "create": ["out/*"],
            "hashing": ["out/shards/*", "table.db"],
            "manual": [{"name": ["out/shards/index"], "app_node": "node-7"}]
        }}"#,
    );
    let home = |p: &str| r.home_for(Path::new(p));
    assert_eq!(home("/capio/out/a"), Home::Create);
    assert_eq!(
        home("/capio/out/shards/3"),
        Home::Hashing,
        "a longer glob wins"
    );
    assert_eq!(
        home("/capio/out/shards/index"),
        Home::Manual("node-7".into()),
        "an exact name wins"
    );
    assert_eq!(
        home("/capio/table.db"),
        Home::Hashing,
        "relative to the CAPIO directory"
    );
    assert_eq!(home("/capio/elsewhere"), Home::Create, "the default");
    assert_eq!(r.manual_home_nodes(), ["node-7"]);
    assert_eq!(
        Rules::default_no_config().home_for(Path::new("/x")),
        Home::Create
    );
}
