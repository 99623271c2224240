//! What the namespace publishes in the shared index (`capio_proto::index`) for clients to look up
//! without a round trip: each file by path and slot, and each directory it keys by real path. The
//! file and directory tables call it at every change of their keys; the per-file direct access
//! (the memory object clients may open themselves) is the file node's to publish in its slot.

use capio_proto::StateTable;
use capio_proto::index::{Entry, IndexWriter};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The writer's end of the index, shared by the file and directory tables (both change it under
/// the namespace lock; the mutex only makes it shareable). Without a table it publishes nothing.
#[derive(Clone, Default)]
pub(super) struct Published {
    to: Option<(Arc<StateTable>, Arc<Mutex<IndexWriter>>)>,
}

impl Published {
    pub(super) fn new(table: Arc<StateTable>) -> Published {
        Published {
            to: Some((table, Arc::default())),
        }
    }

    fn with(&self, change: impl FnOnce(&mut IndexWriter, &capio_proto::index::Index<'_>)) {
        if let Some((table, writer)) = &self.to {
            let mut writer = writer.lock().unwrap_or_else(|e| e.into_inner());
            change(&mut writer, &table.index());
        }
    }

    /// The file at `path` is in `slot`.
    pub(super) fn file(&self, path: &Path, slot: u32) {
        self.with(|w, ix| w.set(ix, path.as_os_str().as_bytes(), Entry::File(slot)));
    }

    /// The file at `path` has a persisted copy with this identity on disk (or none): a client
    /// answering for it checks the disk shows that copy, as the server does.
    pub(super) fn disk(&self, path: &Path, disk: Option<capio_proto::index::DiskId>) {
        self.with(|w, ix| w.set_disk(ix, path.as_os_str().as_bytes(), disk));
    }

    /// The file in `slot` is no longer at `path`.
    pub(super) fn file_gone(&self, path: &Path, slot: u32) {
        self.with(|w, ix| w.remove(ix, path.as_os_str().as_bytes(), Entry::File(slot)));
    }

    /// The server keys a directory by `path` (a file recorded there stays: it is what a look-up
    /// must find).
    pub(super) fn dir(&self, path: &Path) {
        self.with(|w, ix| {
            let name = path.as_os_str().as_bytes();
            if w.get(ix, name).is_none() {
                w.set(ix, name, Entry::Dir);
            }
        });
    }

    /// The directory at `path` is no longer keyed.
    pub(super) fn dir_gone(&self, path: &Path) {
        self.with(|w, ix| w.remove(ix, path.as_os_str().as_bytes(), Entry::Dir));
    }

    /// Make the changes until the returned guard drops look like one to clients (who meanwhile
    /// ask the server): a rename removes one name and adds another.
    pub(super) fn batch(&self) -> Batch {
        self.with(|w, ix| w.hold(ix));
        Batch(self.clone())
    }

    /// The namespace is not all on this node any more: clients must ask.
    pub(super) fn turn_off(&self) {
        self.with(|w, ix| w.turn_off(ix));
    }
}

/// See [`Published::batch`].
pub(super) struct Batch(Published);

impl Drop for Batch {
    fn drop(&mut self) {
        self.0.with(|w, ix| w.let_go(ix));
    }
}
