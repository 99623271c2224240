//! Patterns mapped to values, searched with CAPIO-CL precedence: the pattern equal to the path wins,
//! then the longest matching glob. Built once, then only read.

use crate::glob::Glob;
use std::collections::HashMap;

/// One distinct pattern and what the configuration says about it.
#[derive(Clone, Debug)]
pub(crate) struct Entry<T> {
    /// Resolved and normalised (see `paths`).
    pub pattern: String,
    pub value: T,
    glob: Glob,
    /// Declaration order of the last declaration of this pattern: breaks ties between equally long
    /// globs, which the reference leaves to hash-map order.
    seq: usize,
}

#[derive(Clone, Debug)]
pub(crate) struct Table<T> {
    entries: Vec<Entry<T>>,
    exact: HashMap<String, usize>,
    /// Indexes of entries with wildcards, best first.
    globs: Vec<usize>,
    next_seq: usize,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table {
            entries: Vec::new(),
            exact: HashMap::new(),
            globs: Vec::new(),
            next_seq: 0,
        }
    }
}

impl<T> Table<T> {
    /// Declares `pattern`; a pattern declared again is combined with `merge(old, new)`.
    pub fn declare(&mut self, pattern: String, value: T, merge: impl FnOnce(&mut T, T)) {
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Some(&i) = self.exact.get(&pattern) {
            let entry = &mut self.entries[i];
            merge(&mut entry.value, value);
            entry.seq = seq;
            return;
        }
        let glob = Glob::new(&pattern);
        let i = self.entries.len();
        if glob.has_wildcards() {
            self.globs.push(i);
        }
        self.exact.insert(pattern.clone(), i);
        self.entries.push(Entry {
            pattern,
            value,
            glob,
            seq,
        });
    }

    /// The table ready for lookups: globs ordered best first. Declarations are over by then.
    pub fn sealed(mut self) -> Self {
        let entries = &self.entries;
        self.globs.sort_by(|&a, &b| {
            let (a, b) = (&entries[a], &entries[b]);
            b.pattern
                .len()
                .cmp(&a.pattern.len())
                .then(b.seq.cmp(&a.seq))
        });
        self
    }

    /// Every declared entry, in no particular order.
    pub fn entries(&self) -> impl Iterator<Item = &Entry<T>> {
        self.entries.iter()
    }

    /// The entry that governs `path`, if any.
    pub fn best(&self, path: &str) -> Option<&Entry<T>> {
        self.matching(path).next()
    }

    /// Every entry whose pattern matches `path`, best first.
    pub fn matching<'a>(&'a self, path: &str) -> impl Iterator<Item = &'a Entry<T>> {
        let exact = self.exact.get(path).copied();
        exact.into_iter().map(|i| &self.entries[i]).chain(
            self.globs
                .iter()
                .filter(move |&&i| Some(i) != exact)
                .map(|&i| &self.entries[i])
                .filter(move |e| e.glob.matches(path)),
        )
    }
}

/// The merge for values where a later declaration overrides an earlier one.
pub(crate) fn replace<T>(old: &mut T, new: T) {
    *old = new;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(patterns: &[(&str, u32)]) -> Table<u32> {
        let mut t = Table::default();
        for &(p, v) in patterns {
            t.declare(p.to_string(), v, replace);
        }
        t.sealed()
    }

    #[test]
    fn exact_beats_longer_glob() {
        let t = table(&[("/d/x", 1), ("/d/x*******", 2)]);
        assert_eq!(t.best("/d/x").unwrap().value, 1);
    }

    #[test]
    fn longest_glob_wins_regardless_of_order() {
        let t = table(&[("/d/*", 1), ("/d/*.dat", 2), ("*", 3)]);
        assert_eq!(t.best("/d/a.dat").unwrap().value, 2);
        assert_eq!(t.best("/d/a.txt").unwrap().value, 1);
        assert_eq!(t.best("/e").unwrap().value, 3);
        let order: Vec<u32> = t.matching("/d/a.dat").map(|e| e.value).collect();
        assert_eq!(order, [2, 1, 3]);
    }

    #[test]
    fn ties_go_to_the_later_declaration() {
        let t = table(&[("/d/a*", 1), ("/d/*b", 2)]);
        assert_eq!(t.best("/d/ab").unwrap().value, 2);
        let t = table(&[("/d/*b", 2), ("/d/a*", 1)]);
        assert_eq!(t.best("/d/ab").unwrap().value, 1);
    }

    #[test]
    fn redeclaring_merges_and_counts_as_later() {
        let t = table(&[("/d/a*", 1), ("/d/*b", 2), ("/d/a*", 3)]);
        assert_eq!(t.best("/d/ab").unwrap().value, 3);
        assert_eq!(t.matching("/d/ab").count(), 2);
    }

    #[test]
    fn a_glob_pattern_also_matches_its_own_text_once() {
        let t = table(&[("/d/*", 1)]);
        assert_eq!(t.matching("/d/*").count(), 1);
    }
}
