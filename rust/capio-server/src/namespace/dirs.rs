//! The directory table: the children of every directory something was created in, in creation
//! order, and the directories made during the run (or adopted by a `dirname` rule) with their
//! producers and commit state.

use super::ClientId;
use super::published::Published;
use capio_cl::Rule;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

/// A directory `Mkdir` created: on disk at once, so that what CAPIO does not intercept (`chdir`, a
/// child's `cwd`, links, C libraries) finds it; its listing and commit follow its CAPIO-CL rule.
/// Also a directory that existed on disk before but has a `dirname` rule (`adopted`).
pub(super) struct MadeDir {
    /// Canonical root of its creator: its disk copy is made inside it.
    pub(super) root: PathBuf,
    /// The CAPIO-CL directory rule of its current path.
    pub(super) rule: Rule,
    /// Its creator and every client that created an entry in it, until they terminate.
    pub(super) producers: BTreeSet<ClientId>,
    committed: bool,
    /// It was on disk before the namespace knew it: never removed at shutdown.
    pub(super) adopted: bool,
    /// Some client has produced it (made it, or created an entry in it). Until then an adopted
    /// directory does not commit when an unrelated client terminates.
    pub(super) produced: bool,
    /// An adopted directory's entries on disk when adopted: they count toward `on_n_files`, so a
    /// directory a previous run completed is complete now (re-running only its consumer).
    pub(super) before: HashSet<OsString>,
    /// Its permission bits when made (or adopted): what it gets back if another program removes
    /// it from disk while it still holds files only in memory.
    pub(super) mode: u32,
}

impl MadeDir {
    /// Made by `producer` during the run.
    pub(super) fn made(root: PathBuf, rule: Rule, producer: ClientId, mode: u32) -> MadeDir {
        MadeDir {
            root,
            rule,
            producers: BTreeSet::from([producer]),
            committed: false,
            adopted: false,
            produced: true,
            before: HashSet::new(),
            mode,
        }
    }

    /// On disk before, holding `before`, and covered by `rule`.
    pub(super) fn adopted(
        root: PathBuf,
        rule: Rule,
        before: HashSet<OsString>,
        mode: u32,
    ) -> MadeDir {
        MadeDir {
            root,
            rule,
            producers: BTreeSet::new(),
            committed: false,
            adopted: true,
            produced: false,
            before,
            mode,
        }
    }

    pub(super) fn committed(&self) -> bool {
        self.committed
    }
}

/// Children in creation order, kept for any directory something was created in (also for
/// directories that were on disk before); `made` when `Mkdir` created it or a `dirname` rule
/// adopted it.
#[derive(Default)]
pub(super) struct DirNode {
    pub(super) made: Option<MadeDir>,
    /// Names in creation order; `None` where one was removed, until the next compaction.
    children: Vec<Option<OsString>>,
    /// Where each present name sits in `children`, so removal costs O(1) in a big directory.
    index: HashMap<OsString, usize>,
    /// The apps that created entries in it from other nodes, by node (they may add more).
    pub(super) remote_writers: BTreeSet<(usize, String)>,
}

impl DirNode {
    fn add(&mut self, name: &OsStr) {
        if !self.index.contains_key(name) {
            self.index.insert(name.to_owned(), self.children.len());
            self.children.push(Some(name.to_owned()));
        }
    }

    fn remove(&mut self, name: &OsStr) {
        if let Some(at) = self.index.remove(name) {
            self.children[at] = None;
        }
        // Amortised: holes never outnumber names by much.
        if self.children.len() > 2 * self.index.len() + 16 {
            self.children.retain(Option::is_some);
            for (at, name) in self.children.iter().flatten().enumerate() {
                if let Some(i) = self.index.get_mut(name) {
                    *i = at;
                }
            }
        }
    }

    /// Present names, in creation order.
    pub(super) fn names(&self) -> impl Iterator<Item = &OsString> {
        self.children.iter().flatten()
    }

    pub(super) fn has(&self, name: &OsStr) -> bool {
        self.index.contains_key(name)
    }

    /// How many names are present.
    pub(super) fn len(&self) -> usize {
        self.index.len()
    }
}

#[derive(Default)]
pub(super) struct DirTable {
    dirs: HashMap<PathBuf, DirNode>,
    /// Made directories not committed yet.
    open: BTreeSet<PathBuf>,
    /// Every key is published as a directory the server knows by its real path.
    published: Published,
}

impl DirTable {
    pub(super) fn new(published: Published) -> DirTable {
        DirTable {
            published,
            ..DirTable::default()
        }
    }

    /// The node of the directory at `path`, new if the table did not key it yet.
    fn node(&mut self, path: &Path) -> &mut DirNode {
        if !self.dirs.contains_key(path) {
            self.published.dir(path);
        }
        self.dirs.entry(path.to_path_buf()).or_default()
    }

    pub(super) fn get(&self, path: &Path) -> Option<&DirNode> {
        self.dirs.get(path)
    }

    pub(super) fn contains(&self, path: &Path) -> bool {
        self.dirs.contains_key(path)
    }

    pub(super) fn made(&self, path: &Path) -> Option<&MadeDir> {
        self.dirs.get(path)?.made.as_ref()
    }

    pub(super) fn made_mut(&mut self, path: &Path) -> Option<&mut MadeDir> {
        self.dirs.get_mut(path)?.made.as_mut()
    }

    pub(super) fn is_made(&self, path: &Path) -> bool {
        self.made(path).is_some()
    }

    /// Record a made (or adopted) directory, open until its rule commits it.
    pub(super) fn make(&mut self, path: &Path, made: MadeDir) {
        self.node(path).made = Some(made);
        self.open.insert(path.to_path_buf());
    }

    /// `cid` created `path`: list it in its parent, whose producers `cid` joins while the parent
    /// is a made directory not committed yet. Returns whether it joined (the entry count may
    /// commit the parent).
    pub(super) fn add_entry(&mut self, cid: ClientId, path: &Path) -> bool {
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return false;
        };
        let dir = self.node(parent);
        dir.add(name);
        match dir.made.as_mut().filter(|m| !m.committed) {
            Some(made) => {
                made.producers.insert(cid);
                made.produced = true;
                true
            }
            None => false,
        }
    }

    /// List `path` in its parent, made on another node by a step of an app (`writer`): no client
    /// here produces it. Returns whether the parent is a directory whose rule may now commit it.
    pub(super) fn add_name(&mut self, path: &Path, writer: (usize, String)) -> bool {
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return false;
        };
        let dir = self.node(parent);
        dir.add(name);
        dir.remote_writers.insert(writer);
        dir.made.as_ref().is_some_and(|m| !m.committed)
    }

    /// `path` is gone from its parent's listing.
    pub(super) fn remove_entry(&mut self, path: &Path) {
        if let (Some(parent), Some(name)) = (path.parent(), path.file_name())
            && let Some(dir) = self.dirs.get_mut(parent)
        {
            dir.remove(name);
            if let Some(made) = dir.made.as_mut() {
                made.before.remove(name);
            }
        }
    }

    /// Forget the directory at `path` (its own entry in its parent stays; see `remove_entry`).
    pub(super) fn forget(&mut self, path: &Path) {
        if self.dirs.remove(path).is_some() {
            self.published.dir_gone(path);
        }
        self.open.remove(path);
    }

    /// Commit a made directory: its listing is final from now on. False if it is not a made
    /// directory still open.
    pub(super) fn commit(&mut self, path: &Path) -> bool {
        self.open.remove(path);
        match self.made_mut(path) {
            Some(made) if !made.committed => {
                made.committed = true;
                true
            }
            _ => false,
        }
    }

    /// Made directories not committed yet, in path order.
    pub(super) fn open(&self) -> impl Iterator<Item = &PathBuf> {
        self.open.iter()
    }

    /// `cid` terminated: it produces no directory any more.
    pub(super) fn lose_producer(&mut self, cid: ClientId) {
        for dir in &self.open {
            if let Some(made) = self.dirs.get_mut(dir).and_then(|d| d.made.as_mut()) {
                made.producers.remove(&cid);
            }
        }
    }

    /// Re-key every directory at or below `src` to the same place below `dst`. Directories keep
    /// their child lists (names are relative) and their commit state, but take the rules of their
    /// new paths.
    pub(super) fn rekey_tree(&mut self, src: &Path, dst: &Path, rule_for: impl Fn(&Path) -> Rule) {
        let moved: Vec<PathBuf> = self
            .dirs
            .keys()
            .filter(|p| p.starts_with(src))
            .cloned()
            .collect();
        for old in moved {
            if let Some(mut node) = self.dirs.remove(&old) {
                self.published.dir_gone(&old);
                let new = rebase(&old, src, dst);
                self.published.dir(&new);
                if let Some(made) = node.made.as_mut() {
                    made.rule = rule_for(&new);
                }
                if self.open.remove(&old) {
                    self.open.insert(new.clone());
                }
                self.dirs.insert(new, node);
            }
        }
    }

    /// Made directories to remove at shutdown (not adopted, not permanent), as `(path, root)`,
    /// children before their parents.
    pub(super) fn transient(&self) -> Vec<(PathBuf, PathBuf)> {
        let mut out: Vec<(PathBuf, PathBuf)> = self
            .dirs
            .iter()
            .filter_map(|(path, d)| {
                let made = d.made.as_ref()?;
                (!made.adopted && !made.rule.permanent).then(|| (path.clone(), made.root.clone()))
            })
            .collect();
        // A longer path is never an ancestor of a shorter one.
        out.sort_by_key(|(path, _)| std::cmp::Reverse(path.as_os_str().len()));
        out
    }
}

/// `path` (at or below `src`) moved below `dst`.
pub(super) fn rebase(path: &Path, src: &Path, dst: &Path) -> PathBuf {
    match path.strip_prefix(src) {
        // `join("")` would add a trailing slash, and namespace keys are exact bytes.
        Ok(rel) if !rel.as_os_str().is_empty() => dst.join(rel),
        _ => dst.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use capio_cl::Rules;

    /// A directory rule that does not persist it (without a config every directory would).
    fn rule(path: &Path) -> Rule {
        Rule {
            permanent: false,
            ..Rules::default_no_config().dir_rule_for(path)
        }
    }

    fn names(dirs: &DirTable, dir: &str) -> Vec<String> {
        dirs.get(Path::new(dir)).map_or(Vec::new(), |d| {
            d.names()
                .map(|n| n.to_string_lossy().into_owned())
                .collect()
        })
    }

    #[test]
    fn entries_keep_creation_order_and_join_only_open_made_parents() {
        let mut dirs = DirTable::default();
        assert!(!dirs.add_entry(1, Path::new("/r/plain/a")), "not made");
        dirs.make(
            Path::new("/r/d"),
            MadeDir::made("/r".into(), rule(Path::new("/r/d")), 1, 0o755),
        );
        assert!(dirs.add_entry(2, Path::new("/r/d/b")));
        assert!(dirs.add_entry(2, Path::new("/r/d/a")));
        assert!(dirs.add_entry(3, Path::new("/r/d/b")), "twice: listed once");
        assert_eq!(names(&dirs, "/r/d"), ["b", "a"]);
        let made = dirs.made(Path::new("/r/d")).unwrap();
        assert_eq!(made.producers, BTreeSet::from([1, 2, 3]));
        dirs.remove_entry(Path::new("/r/d/b"));
        assert_eq!(names(&dirs, "/r/d"), ["a"]);
        assert_eq!(dirs.get(Path::new("/r/d")).unwrap().len(), 1);

        assert_eq!(dirs.open().collect::<Vec<_>>(), [Path::new("/r/d")]);
        assert!(dirs.commit(Path::new("/r/d")));
        assert!(!dirs.commit(Path::new("/r/d")), "commits once");
        assert!(dirs.made(Path::new("/r/d")).unwrap().committed());
        assert_eq!(dirs.open().count(), 0);
        assert!(
            !dirs.add_entry(4, Path::new("/r/d/c")),
            "committed: joins no more"
        );
        assert_eq!(names(&dirs, "/r/d"), ["a", "c"]);
    }

    #[test]
    fn producers_leave_and_trees_move_with_their_state() {
        let mut dirs = DirTable::default();
        for d in ["/r/a", "/r/a/b"] {
            dirs.make(
                Path::new(d),
                MadeDir::made("/r".into(), rule(Path::new(d)), 1, 0o700),
            );
        }
        dirs.add_entry(1, Path::new("/r/a/b"));
        dirs.add_entry(2, Path::new("/r/a/b/f"));
        dirs.commit(Path::new("/r/a"));
        dirs.lose_producer(1);
        assert_eq!(
            dirs.made(Path::new("/r/a/b")).unwrap().producers,
            BTreeSet::from([2])
        );
        dirs.rekey_tree(Path::new("/r/a"), Path::new("/r/z"), rule);
        assert!(!dirs.contains(Path::new("/r/a")) && !dirs.contains(Path::new("/r/a/b")));
        assert!(dirs.made(Path::new("/r/z")).unwrap().committed());
        assert_eq!(dirs.open().collect::<Vec<_>>(), [Path::new("/r/z/b")]);
        assert_eq!(names(&dirs, "/r/z/b"), ["f"]);
        let transient: Vec<PathBuf> = dirs.transient().into_iter().map(|(p, _)| p).collect();
        assert_eq!(transient, [PathBuf::from("/r/z/b"), PathBuf::from("/r/z")]);
        dirs.forget(Path::new("/r/z/b"));
        assert_eq!(dirs.open().count(), 0);
        assert_eq!(
            rebase(Path::new("/r/z"), Path::new("/r/z"), Path::new("/q")),
            Path::new("/q")
        );
    }

    #[test]
    fn child_lists_keep_creation_order_across_removals_and_compaction() {
        let mut dir = DirNode::default();
        for i in 0..100 {
            dir.add(OsStr::new(&format!("n{i}")));
        }
        for i in (0..100).filter(|i| i % 10 != 0) {
            dir.remove(OsStr::new(&format!("n{i}")));
        }
        dir.add(OsStr::new("n0"));
        dir.add(OsStr::new("n5"));
        dir.remove(OsStr::new("n20"));
        let names: Vec<_> = dir
            .names()
            .map(|n| n.to_string_lossy().into_owned())
            .collect();
        let want = [
            "n0", "n10", "n30", "n40", "n50", "n60", "n70", "n80", "n90", "n5",
        ];
        assert_eq!(names, want);
        assert!(dir.children.len() < 30, "holes were compacted");
        assert_eq!(dir.index.len(), want.len());
    }
}
