//! CAPIO-CL commit rules at run time: when a file or a made directory commits, and what a commit
//! does (publish the state, queue persistence, create a permanent directory on disk).
//!
//! Differences from the reference server, which follow the language's documentation instead:
//! `on_close:N` counts only writable closes by the file's producers (the reference counts any
//! close), `on_file` is enforced (the reference never implemented it), and `on_n_files` tests the
//! directory's own rule (the reference tests the rule of the child just added).

use super::{Caused, ClientId, Namespace};
use crate::disk;
use crate::log::{debug, info};
use capio_cl::CommitRule;
use capio_proto::SlotState;
use std::path::{Path, PathBuf};

/// Whether a file's own rule commits it, after `closes` writable closes by its producers, with
/// `deps_committed` telling whether every given `on_file` dependency is committed. Termination
/// is not a question for the rule: the last producer terminating commits a file whatever it says.
pub(super) fn file_due(
    rule: &CommitRule,
    closes: u64,
    deps_committed: impl FnOnce(&[PathBuf]) -> bool,
) -> bool {
    match rule {
        CommitRule::OnClose(_) => rule.closes_needed().is_some_and(|n| closes >= u64::from(n)),
        CommitRule::OnFile(deps) => deps_committed(deps),
        // A directory rule on a file: nothing but termination commits it, as by default.
        CommitRule::OnTermination | CommitRule::OnNFiles(_) => false,
    }
}

/// Whether a directory's own rule commits it now: `has_entries(n)` tells whether it holds at
/// least `n` entries. `on_termination` (and `on_close`, which means nothing for a directory)
/// wait for its producers instead.
pub(super) fn dir_due(
    rule: &CommitRule,
    has_entries: impl FnOnce(u64) -> bool,
    deps_committed: impl FnOnce(&[PathBuf]) -> bool,
) -> bool {
    match rule {
        CommitRule::OnNFiles(n) => has_entries(*n),
        CommitRule::OnFile(deps) => deps_committed(deps),
        CommitRule::OnTermination | CommitRule::OnClose(_) => false,
    }
}

/// Whether a directory commits now that nobody produces it: `on_termination` (and `on_close`)
/// always; `on_n_files` and `on_file` only once every app declared to produce it has terminated
/// too (`declared_gone`), since until then more entries may come. Committing then releases its
/// readers, who would otherwise wait forever.
pub(super) fn dir_due_at_termination(rule: &CommitRule, declared_gone: bool) -> bool {
    match rule {
        CommitRule::OnTermination | CommitRule::OnClose(_) => true,
        CommitRule::OnNFiles(_) | CommitRule::OnFile(_) => declared_gone,
    }
}

impl Namespace {
    /// The file in `slot` lost its last producer (it exited cleanly). That commits the file
    /// whatever its rule: no more data can come, and its readers must not be left waiting.
    pub(super) fn stop_producing(&mut self, slot: u32, caused: &mut Caused) {
        if !self.clients.producers(slot).is_empty() {
            return;
        }
        let Some(node) = self
            .files
            .node(slot)
            .filter(|n| n.state() == SlotState::Open)
        else {
            return;
        };
        if node.rule().commit != CommitRule::OnTermination {
            let rule = node.rule().commit.to_string();
            info!(
                "committing {} (rule {rule}) because its last producer terminated: no more data can come",
                self.files.name_of(slot)
            );
        }
        self.commit_file(slot, caused);
    }

    /// A producer of the file in `slot` closed a writable descriptor: `on_close:N` counts it, and
    /// an `on_file` file whose dependencies committed while it was being written commits now.
    pub(super) fn producer_closed(&mut self, slot: u32, caused: &mut Caused) {
        let Some(node) = self.files.node_mut(slot) else {
            return;
        };
        node.closes_by_producers += 1;
        if node.state() != SlotState::Open || node.rule().commit == CommitRule::OnTermination {
            return;
        }
        if self.file_rule_met(slot) {
            self.commit_file(slot, caused);
        }
    }

    pub(super) fn file_rule_met(&self, slot: u32) -> bool {
        self.files.node(slot).is_some_and(|node| {
            // A replica commits when its home says so, never by rules counted here.
            node.state() == SlotState::Open
                && node.remote.is_none()
                && file_due(&node.rule().commit, node.closes_by_producers, |deps| {
                    self.deps_committed(&node.root, deps)
                })
        })
    }

    /// Commit the file in `slot`: readers get end-of-file at its end from now on. It is to
    /// persist when its rule makes it permanent and it still has a path.
    pub(super) fn commit_file(&mut self, slot: u32, caused: &mut Caused) {
        let Some(done) = self.files.commit(slot) else {
            return;
        };
        self.bump();
        caused.unsettled = true;
        debug!("committed {}", self.files.name_of(slot));
        self.tell_state(slot);
        if done.permanent
            && let Some(path) = self.files.path_of(slot)
        {
            caused.committed((path.clone(), done.generation));
        }
    }

    /// Follow commits through `on_file` dependencies and directory rules until nothing more
    /// commits. Every operation that may have committed something or added an entry ends here.
    pub(super) fn settle(&mut self, caused: &mut Caused) {
        while std::mem::take(&mut caused.unsettled) {
            let files: Vec<u32> = self
                .files
                .on_file()
                .filter(|&slot| self.file_rule_met(slot))
                .collect();
            for slot in files {
                self.commit_file(slot, caused);
            }
            let dirs: Vec<PathBuf> = self
                .dirs
                .open()
                .filter(|dir| self.dir_rule_met(dir))
                .cloned()
                .collect();
            for dir in dirs {
                self.commit_dir(&dir, caused);
            }
        }
    }

    fn dir_rule_met(&self, dir: &Path) -> bool {
        let Some(made) = self.dirs.made(dir) else {
            return false;
        };
        !made.committed()
            && dir_due(
                &made.rule.commit,
                |n| self.has_entries(dir, n),
                |deps| self.deps_committed(&made.root, deps),
            )
    }

    /// Whether `dir` holds at least `n` entries in the namespace: files and directories created in
    /// it and still there (aborted files do not count; nor do `.` and `..`, unlike the reference),
    /// and for an adopted directory the other entries it had on disk when adopted.
    pub(super) fn has_entries(&self, dir: &Path, n: u64) -> bool {
        let Some(d) = self.dirs.get(dir) else {
            return n == 0;
        };
        let before = d.made.as_ref().map(|m| &m.before);
        let earlier = before.map_or(0, |b| b.iter().filter(|name| !d.has(name)).count());
        // The index holds every present name, so it bounds the count without a scan.
        let n = usize::try_from(n)
            .unwrap_or(usize::MAX)
            .saturating_sub(earlier);
        if d.len() < n {
            return false;
        }
        let live = d.names().filter(|name| {
            let child = dir.join(name);
            self.files.visible(&child).is_some()
                || self.dirs.is_made(&child)
                || before.is_some_and(|b| b.contains(*name))
        });
        live.take(n).count() >= n
    }

    /// Every path in `deps` is committed. A path the namespace does not have counts as committed
    /// when it exists on disk (inside `root`): an input of the workflow.
    fn deps_committed(&self, root: &Path, deps: &[PathBuf]) -> bool {
        deps.iter().all(|dep| {
            if let Some(file) = self.files.get(dep) {
                return file.committed_at_home();
            }
            if let Some(made) = self.dirs.made(dep) {
                return made.committed();
            }
            matches!(disk::lookup(root, dep), Ok(Some(_)))
        })
    }

    /// `cid` terminated (cleanly or not): it no longer produces any directory. Directories left
    /// without producers commit as [`dir_due_at_termination`] says; those waiting for declared
    /// producer apps are checked again at every termination.
    pub(super) fn dirs_lose_producer(&mut self, cid: ClientId, caused: &mut Caused) {
        self.dirs.lose_producer(cid);
        self.commit_orphaned_dirs(caused);
    }

    /// Commit the open directories without producers that [`dir_due_at_termination`] says are
    /// done: at a termination, and after a rename gave a directory a new rule.
    pub(super) fn commit_orphaned_dirs(&mut self, caused: &mut Caused) {
        let mut orphaned = Vec::new();
        for dir in self.dirs.open() {
            if let Some(made) = self.dirs.made(dir) {
                // An adopted directory nobody has produced yet waits for its declared producers
                // (if any), not for whoever happens to terminate first.
                if made.producers.is_empty()
                    && (made.produced || !self.rules.declared_producers(dir).is_empty())
                {
                    orphaned.push(dir.clone());
                }
            }
        }
        for dir in orphaned {
            let Some(rule) = self.dirs.made(&dir).map(|m| m.rule.commit.clone()) else {
                continue;
            };
            let declared = self.rules.declared_producers(&dir);
            let declared_gone = declared.iter().all(|app| self.app_terminated(app));
            if !dir_due_at_termination(&rule, declared_gone) || self.produced_elsewhere(&dir) {
                continue;
            }
            if !matches!(rule, CommitRule::OnTermination | CommitRule::OnClose(_)) {
                info!(
                    "committing directory {} (rule {rule}) because its producers terminated: \
                     no more entries can come",
                    dir.display()
                );
            }
            self.commit_dir(&dir, caused);
        }
    }

    /// Commit a made directory: its listing is final from now on. It is on disk already (since
    /// `Mkdir`).
    pub(super) fn commit_dir(&mut self, dir: &Path, caused: &mut Caused) {
        if !self.dirs.commit(dir) {
            return;
        }
        debug!("committed directory {}", dir.display());
        self.bump();
        caused.unsettled = true;
    }
}
