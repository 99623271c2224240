//! Directories as a workflow sees them: `Mkdir`, `List`, the entries a create adds to its parent,
//! and directories on disk that a `dirname` rule adopts.

use super::dirs::MadeDir;
use super::{Caused, ClientId, Done, Listing, Namespace, Where};
use crate::disk::{self, Kind as DiskKind};
use crate::error::FsError;
use crate::rules::fire_wire;
use capio_proto::{EntryKind, NodeKind};
use std::collections::HashSet;
use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The listing kind of an `S_IFMT` file type.
fn kind_of_type(file_type: u32) -> NodeKind {
    match file_type {
        libc::S_IFDIR => NodeKind::Dir,
        libc::S_IFREG => NodeKind::File,
        _ => NodeKind::Other,
    }
}

impl Namespace {
    /// `cid` created `path`: list it in its parent, whose producers `cid` joins while the parent
    /// is not committed (its entry count may commit it).
    pub(super) fn add_child(&mut self, cid: ClientId, path: &Path, caused: &mut Caused) {
        let Some(parent) = path.parent() else {
            return;
        };
        if !self.dirs.contains(parent)
            && let Some(root) = self.clients.get(cid).map(|c| c.root.clone())
        {
            // The first entry made in a directory the namespace did not know: one rule lookup
            // per directory, not per entry.
            self.adopt(&root, parent, caused);
        }
        if self.dirs.add_entry(cid, path) {
            caused.unsettled = true;
        }
    }

    /// A directory on disk that a `dirname` rule covers follows the rule like one made during the
    /// run: its listing waits or streams until the rule commits it. Its entries are the ones on
    /// disk at adoption and those created through CAPIO during the run: `on_n_files` counts both,
    /// so one that already holds its count is committed at once.
    pub(super) fn adopt(&mut self, root: &Path, path: &Path, caused: &mut Caused) {
        if self.dirs.is_made(path) || !self.rules.has_dir_rule(path) {
            return;
        }
        let Ok(Some(node)) = disk::lookup(root, path) else {
            return;
        };
        if node.kind != DiskKind::Dir {
            return;
        }
        let before = disk::list(&node.real)
            .map(|names| names.into_iter().map(|(_, name)| name).collect())
            .unwrap_or_default();
        let rule = self.rules.dir_rule_for(path);
        let made = MadeDir::adopted(root.to_path_buf(), rule, before, node.meta.mode() & 0o7777);
        self.dirs.make(path, made);
        // `on_n_files: 0`, or `on_file` with its dependencies committed already.
        caused.unsettled = true;
        self.settle(caused);
    }

    /// Make a directory, produced by `cid`: on disk at once (with its mode), in the namespace
    /// for its listing and its CAPIO-CL rule.
    pub fn mkdir(&mut self, cid: ClientId, path: &Path, mode: u32) -> Done<()> {
        self.doing(|ns, caused| ns.mkdir_in(cid, path, mode, caused))
    }

    fn mkdir_in(
        &mut self,
        cid: ClientId,
        path: &Path,
        mode: u32,
        caused: &mut Caused,
    ) -> Result<(), FsError> {
        let root = self.root_for(cid, path)?;
        let path: &Path = &self.real_path(&root, path);
        self.drop_stale_dir(path);
        // An aborted file keeps its node (it may be restarted), so its path stays taken.
        if self.files.contains(path) || !matches!(self.locate(&root, path)?, Where::Missing) {
            return Err(FsError::Exists);
        }
        self.check_parent(&root, path)?;
        // The client applied its umask; `mkdir(2)` keeps only the sticky bit beyond rwx.
        disk::mkdir_exact(&root, path, mode & 0o1777)?;
        let rule = self.rules.dir_rule_for(path);
        self.dirs
            .make(path, MadeDir::made(root, rule, cid, mode & 0o1777));
        // `on_n_files: 0`, or `on_file` with its dependencies already committed.
        caused.unsettled = true;
        self.add_child(cid, path, caused);
        self.bump();
        Ok(())
    }

    /// Entries of a directory (CAPIO entries in creation order, then disk entries not yet
    /// listed), its commit state and fire rule.
    pub fn list(&mut self, cid: ClientId, path: &Path) -> Done<Listing> {
        self.doing(|ns, caused| ns.list_in(cid, path, caused))
    }

    fn list_in(
        &mut self,
        cid: ClientId,
        path: &Path,
        caused: &mut Caused,
    ) -> Result<Listing, FsError> {
        let root = self.root_for(cid, path)?;
        let path: &Path = &self.real_path(&root, path);
        // A link to a directory lists that directory, CAPIO entries included.
        let path: &Path = &self.through_links(&root, path)?;
        self.drop_stale_dir(path);
        self.adopt(&root, path, caused);
        let real = match self.locate(&root, path)? {
            Where::Dir => disk::lookup(&root, path)
                .ok()
                .flatten()
                .filter(|n| n.kind == DiskKind::Dir)
                .map(|n| n.real),
            Where::Disk(node) if node.kind == DiskKind::Dir => Some(node.real),
            Where::File | Where::Disk(_) => return Err(FsError::NotDir),
            Where::Missing if self.producer_may_appear(cid, path) => {
                return Ok(Listing {
                    entries: Vec::new(),
                    committed: false,
                    fire: fire_wire(self.rules.dir_rule_for(path).fire),
                    producer: false,
                    missing: true,
                });
            }
            Where::Missing => return Err(FsError::NotFound),
        };
        let on_disk = match &real {
            Some(real) => disk::list(real)?,
            None => Vec::new(),
        };
        self.drop_stale_children(path, &on_disk);
        let mut entries = Vec::new();
        let mut seen = HashSet::new();
        if let Some(dir) = self.dirs.get(path) {
            for name in dir.names() {
                let child = path.join(name);
                let kind = if self.files.visible(&child).is_some() {
                    NodeKind::File.into()
                } else if self.dirs.is_made(&child) {
                    NodeKind::Dir.into()
                } else {
                    continue;
                };
                seen.insert(name.clone());
                entries.push((kind, name.clone()));
            }
        }
        for (kind, name) in on_disk {
            if !seen.contains(&name) {
                // A link is listed with the kind of what a look-up through it finds, which may be
                // a CAPIO file or directory the disk does not have.
                let kind = if kind.link {
                    self.stat(cid, &path.join(&name))
                        .map_or(kind, |st| EntryKind {
                            node: kind_of_type(st.file_type),
                            link: true,
                        })
                } else {
                    kind
                };
                entries.push((kind, name));
            }
        }
        let declared = self.rules.is_producer(self.clients.app_of(cid), path);
        let listing = match self.dirs.made(path) {
            Some(made) => Listing {
                entries,
                // Nobody produces it now and nobody can any more: complete for this caller.
                committed: made.committed()
                    || (made.producers.is_empty() && !self.producer_may_appear(cid, path)),
                fire: fire_wire(made.rule.fire),
                producer: declared
                    || made.producers.contains(&cid)
                    || self.clients.made_by_ancestor(cid, &made.producers),
                missing: false,
            },
            // On disk before anyone here made it, without a `dirname` rule: complete.
            None => Listing {
                entries,
                committed: true,
                fire: fire_wire(self.rules.dir_rule_for(path).fire),
                producer: declared,
                missing: false,
            },
        };
        Ok(listing)
    }

    /// Persisted files in `dir` that the disk listing `on_disk` lacks were removed by another
    /// program: they are not listed (nor served) any more. Costs nothing beyond the listing.
    fn drop_stale_children(&mut self, dir: &Path, on_disk: &[(EntryKind, OsString)]) {
        let Some(d) = self.dirs.get(dir) else {
            return;
        };
        let present: HashSet<&OsString> = on_disk.iter().map(|(_, name)| name).collect();
        let gone: Vec<PathBuf> = d
            .names()
            .filter(|name| !present.contains(name))
            .map(|name| dir.join(name))
            .filter(|child| {
                self.files
                    .get(child)
                    .is_some_and(|n| n.persisted && n.is_committed())
            })
            .collect();
        for child in gone {
            self.drop_stale(&child);
        }
    }
}
