//! The server's side of CAPIO-CL: loading the workflow's rules at start-up and turning rule values
//! into wire values. The rules themselves (matching, defaults) are the `capio-cl` crate's.

use crate::error::StartError;
use capio_cl::{FireRule, Rules};
use capio_proto::Fire;
use std::path::{Path, PathBuf};

/// The rules of a run: those of `config` (resolved against `capio_dir`), or the no-config defaults
/// (commit on termination, readers wait for the commit, persist everything). Returns the config's
/// canonical path too: clients are told it, so they load the very same file for `exclude`.
pub fn load(
    config: Option<&Path>,
    capio_dir: &Path,
) -> Result<(Rules, Option<PathBuf>), StartError> {
    let Some(config) = config else {
        return Ok((Rules::default_no_config(), None));
    };
    let rules = capio_cl::load(config, capio_dir)?;
    // It was just read, so it exists; canonical so that a client in another cwd finds it.
    let absolute = std::fs::canonicalize(config).map_err(|source| {
        StartError::Config(capio_cl::ConfigError::Read {
            file: config.to_path_buf(),
            source,
        })
    })?;
    Ok((rules, Some(absolute)))
}

/// The value of a fire rule in `OpenReply::fire` and `ListReply::fire`.
pub fn fire_wire(rule: FireRule) -> Fire {
    match rule {
        FireRule::Update => Fire::Update,
        FireRule::NoUpdate => Fire::NoUpdate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdir::TestDir;

    #[test]
    fn without_a_config_everything_commits_on_termination_and_persists() {
        let (rules, path) = load(None, Path::new("/capio")).unwrap();
        assert!(path.is_none());
        let rule = rules.rule_for(Path::new("/any/where"));
        assert_eq!(rule.commit, capio_cl::CommitRule::OnTermination);
        assert_eq!(fire_wire(rule.fire), Fire::Update);
        assert!(rule.permanent && !rule.excluded);
    }

    #[test]
    fn a_config_is_loaded_and_its_errors_carry_the_json_path() {
        let t = TestDir::new();
        let good = t.path().join("good.json");
        std::fs::write(
            &good,
            r#"{"name": "wf", "IO_Graph": [{"name": "w", "input_stream": [],
                "output_stream": ["out.dat"], "streaming": [
                {"name": ["out.dat"], "committed": "on_close", "mode": "no_update"}]}]}"#,
        )
        .unwrap();
        let (rules, path) = load(Some(&good), t.path()).unwrap();
        assert_eq!(path.as_deref(), Some(good.as_path()));
        let rule = rules.rule_for(&t.path().join("out.dat"));
        assert_eq!(fire_wire(rule.fire), Fire::NoUpdate);

        let bad = t.path().join("bad.json");
        std::fs::write(
            &bad,
            r#"{"name": "wf", "IO_Graph": [{"name": 3, "input_stream": [], "output_stream": []}]}"#,
        )
        .unwrap();
        let msg = load(Some(&bad), t.path()).unwrap_err().to_string();
        assert!(msg.contains("$.IO_Graph[0].name"), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
    }
}
