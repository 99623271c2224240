//! Which CAPIO-CL rule governs a path. Without a configuration every path gets the default rule:
//! commit when the producer terminates, readers wait for the commit, persist everything.

use capio_proto::fire;
use std::path::Path;

/// When a file counts as committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommitRule {
    /// When the last of its producers terminates cleanly (CAPIO-CL `on_termination`).
    OnTermination,
}

/// What readers see before the commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FireRule {
    /// Readers wait for the commit.
    Update,
    /// Readers see data as it is published.
    NoUpdate,
}

impl FireRule {
    /// The value carried in an `OpenReply`.
    pub fn wire(self) -> u32 {
        match self {
            FireRule::Update => fire::UPDATE,
            FireRule::NoUpdate => fire::NO_UPDATE,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub commit: CommitRule,
    pub fire: FireRule,
    /// Write the file to its real path at commit.
    pub persist: bool,
}

/// The rule set of one server.
#[derive(Clone, Debug)]
pub struct Rules {
    default: Rule,
}

impl Rules {
    /// The rules of a run without a CAPIO-CL file: nothing a plain run would keep is lost.
    pub fn default_rules() -> Rules {
        Rules {
            default: Rule {
                commit: CommitRule::OnTermination,
                fire: FireRule::Update,
                persist: true,
            },
        }
    }

    /// The rule for `path`; looked up at open and at commit, so rules may differ per path.
    pub fn rule_for(&self, _path: &Path) -> Rule {
        self.default.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_rule_commits_on_termination_and_persists() {
        let rule = Rules::default_rules().rule_for(Path::new("/any/where"));
        assert_eq!(rule.commit, CommitRule::OnTermination);
        assert_eq!(rule.fire.wire(), fire::UPDATE);
        assert!(rule.persist);
    }
}
