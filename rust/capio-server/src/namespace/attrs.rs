//! `Stat`, `Lstat` and `SetAttr`: a CAPIO file's attributes live in its data object, a made
//! directory's on disk; what CAPIO adds is the commit state.

use super::{ClientId, Namespace, Where};
use crate::backing::Backing;
use crate::disk::{self, Kind as DiskKind};
use crate::error::FsError;
use crate::log::warning;
use capio_proto::{NodeKind, NodeStat, sys};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

impl Namespace {
    /// What `stat` reports of `path`, following a final symbolic link.
    pub fn stat(&self, cid: ClientId, path: &Path) -> Result<NodeStat, FsError> {
        let root = self.root_for(cid, path)?;
        let path: &Path = &self.real_path(&root, path);
        let path = &self.through_links(&root, path)?;
        match self.locate(&root, path)? {
            Where::File => {
                let node = self.files.visible(path).ok_or(FsError::NotFound)?;
                let meta = node.data.metadata()?;
                let root_dev = self.clients.get(cid).map_or(0, |c| c.root_dev);
                let (dev, ino) = capio_proto::reported_identity(meta.dev(), meta.ino(), root_dev);
                // A replica answers with what its writer last told (or what is cached here).
                let size = node.remote.as_ref().map_or(0, |r| r.len).max(node.len());
                Ok(NodeStat {
                    size,
                    nlink: 1,
                    ino,
                    dev,
                    ..NodeStat::of_meta(NodeKind::File, &meta, node.committed_at_home())
                })
            }
            Where::Dir => {
                // A made directory is on disk: its attributes are the disk's, its state CAPIO's.
                let made = self.dirs.made(path).ok_or(FsError::NotFound)?;
                let real = disk::lookup(&root, path)?.ok_or(FsError::NotFound)?;
                Ok(NodeStat::of_meta(
                    NodeKind::Dir,
                    &real.meta,
                    made.committed(),
                ))
            }
            Where::Disk(node) => Ok(NodeStat::of_meta(node.wire_kind(), &node.meta, true)),
            Where::Missing => Err(FsError::NotFound),
        }
    }

    /// `stat` without following a final symbolic link: one on disk is reported itself.
    pub fn lstat(&self, cid: ClientId, path: &Path) -> Result<NodeStat, FsError> {
        let root = self.root_for(cid, path)?;
        let path: &Path = &self.real_path(&root, path);
        if self.locate_ns(&root, path)?.is_none()
            && let Some(meta) = disk::link_metadata(&root, path)?
        {
            return Ok(NodeStat::of_meta(NodeKind::Other, &meta, true));
        }
        self.stat(cid, path)
    }

    /// Change the attributes of `path` as `chmod`, `chown` and `utimensat` do (`nofollow`: a final
    /// symbolic link itself). A CAPIO file's live in its data object, so the kernel applies its
    /// own rules to them; a persisted file's disk copy changes too, so the disk never disagrees.
    pub fn set_attrs(
        &mut self,
        cid: ClientId,
        path: &Path,
        attrs: &sys::Attrs,
        nofollow: bool,
    ) -> Result<(), FsError> {
        let root = self.root_for(cid, path)?;
        let path: &Path = &self.real_path(&root, path);
        if nofollow
            && self.locate_ns(&root, path)?.is_none()
            && disk::link_metadata(&root, path)?.is_some()
        {
            let entry = disk::entry(&root, path)?.ok_or(FsError::NotFound)?;
            return Ok(sys::set_attrs_path(&entry.real, attrs, true)?);
        }
        let path = &self.through_links(&root, path)?;
        match self.locate(&root, path)? {
            Where::File => {
                let node = self.files.visible(path).ok_or(FsError::NotFound)?;
                let applied = sys::set_attrs_fd(node.data.as_fd(), attrs);
                // Clients answer `stat` from what it published: what changed (or not) is told.
                node.publish_direct();
                applied?;
                if node.persisted
                    && node.backing != Backing::InPlace
                    && let Ok(Some(copy)) = disk::lookup(&root, path)
                    && copy.kind == DiskKind::File
                    && let Err(e) = sys::set_attrs_path(&copy.real, attrs, false)
                {
                    warning!("cannot update the attributes of {}: {e}", path.display());
                }
                Ok(())
            }
            Where::Dir => {
                let real = disk::lookup(&root, path)?.ok_or(FsError::NotFound)?;
                Ok(sys::set_attrs_path(&real.real, attrs, false)?)
            }
            Where::Disk(node) => Ok(sys::set_attrs_path(&node.real, attrs, false)?),
            Where::Missing => Err(FsError::NotFound),
        }
    }
}
