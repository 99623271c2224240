//! `Open` and `Close`: what an open finds (a CAPIO file, a disk file, a path to wait for), how a
//! file is created, imported from disk, reopened or restarted, and what opens and closes count.

use super::{Caused, ClientId, Done, Namespace, Opened, Where, new_data};
use crate::backing;
use crate::disk::{self, Kind as DiskKind};
use crate::error::FsError;
use crate::log::warning;
use crate::rules::fire_wire;
use capio_proto::{OpenReq, SlotState, sys};
use std::fs::{self, File};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::SeqCst;

const O_ACCMODE: u32 = libc::O_ACCMODE as u32;
const O_RDONLY: u32 = libc::O_RDONLY as u32;
const O_WRONLY: u32 = libc::O_WRONLY as u32;
const O_RDWR: u32 = libc::O_RDWR as u32;
const O_CREAT: u32 = libc::O_CREAT as u32;
const O_EXCL: u32 = libc::O_EXCL as u32;
const O_TRUNC: u32 = libc::O_TRUNC as u32;
const O_DIRECTORY: u32 = libc::O_DIRECTORY as u32;

impl Namespace {
    /// Open `path` for `cid` with `open(2)` flags (creating it with `mode`, umask applied).
    /// Creating a file may commit its directory (`on_n_files`), and files depending on that.
    /// With `OpenReq::PLAIN_WRITE` in `flags`, a file this open creates is written directly where
    /// its rule allows (see `FileNode::direct_write`).
    pub fn open(&mut self, cid: ClientId, path: &Path, flags: u32, mode: u32) -> Done<Opened> {
        let flags_asked = flags;
        let flags = flags & !OpenReq::PLAIN_WRITE;
        let plain_write = flags_asked & OpenReq::PLAIN_WRITE != 0
            && matches!(flags & O_ACCMODE, O_WRONLY | O_RDWR);
        self.doing(|ns, caused| {
            let mut opened = ns.open_in(cid, path, (flags, plain_write), mode, caused)?;
            if let Opened::Memory { slot, progress, .. } = &mut opened
                && flags & O_ACCMODE == O_RDONLY
            {
                *progress = ns.track_reader(cid, *slot);
            }
            Ok(opened)
        })
    }

    /// One-way close: unknown slots (a `DISK` open, a stale message) are ignored. A writable
    /// close by a producer counts towards `on_close:N`; a reader's `progress` cell is retired.
    pub fn close(&mut self, cid: ClientId, slot: u32, writable: bool, progress: u32) -> Caused {
        let mut caused = Caused::default();
        if progress != 0 {
            self.untrack_reader(cid, progress);
        }
        let Some(last) = self.clients.closed(cid, slot) else {
            return caused;
        };
        if writable
            && let Some(node) = self.files.node(slot)
            && node.is_committed()
        {
            // A writer still open when its file was committed: what it changed since (and of a
            // file written directly, what it wrote) is seen from its close on. Before the
            // commit nobody reads the published length of a file written directly.
            node.publish_direct_writes();
            node.publish_direct();
        }
        if writable && self.clients.produces(cid, slot) {
            self.producer_closed(slot, &mut caused);
        }
        if last {
            self.release_unlinked(slot);
        }
        self.settle(&mut caused);
        caused
    }

    fn open_in(
        &mut self,
        cid: ClientId,
        path: &Path,
        (flags, plain_write): (u32, bool),
        mode: u32,
        caused: &mut Caused,
    ) -> Result<Opened, FsError> {
        let root = self.root_for(cid, path)?;
        let path: &Path = &self.real_path(&root, path);
        self.drop_stale(path);
        let exclusive_create = flags & (O_CREAT | O_EXCL) == O_CREAT | O_EXCL;
        let (resolved, probe) = self.resolve_links(&root, path, !exclusive_create)?;
        if exclusive_create && matches!(probe, Some(disk::Probe::Link(_))) {
            // `O_EXCL` never follows a final symbolic link, dangling or not.
            return Err(FsError::Exists);
        }
        if resolved != path {
            self.drop_stale(&resolved);
        }
        let path = &resolved;
        if flags & O_CREAT != 0
            && self
                .files
                .get(path)
                .is_some_and(|n| n.remote.is_some() && n.state() == SlotState::Aborted)
        {
            // Another node's file whose producer crashed: a new producer here writes it anew,
            // and this node becomes its writer.
            self.forget_file(path);
            self.bump();
        }
        // Read before deciding the path is missing: a create after this point moves `seq` past it,
        // so the client's futex wait cannot miss it.
        let generation = self.table.namespace().seq.load(SeqCst);
        let writable = matches!(flags & O_ACCMODE, O_WRONLY | O_RDWR);
        let create = flags & O_CREAT != 0;
        let exclusive = create && flags & O_EXCL != 0;
        if flags & O_DIRECTORY != 0 {
            // As the kernel (also for `O_TMPFILE`, which includes it): never a file, and never a
            // wait. A directory itself is not opened through CAPIO.
            return Err(match self.locate(&root, path)? {
                _ if create => FsError::BadFlags(flags),
                _ if self.files.contains(path) => FsError::NotDir,
                Where::File => FsError::NotDir,
                Where::Disk(node) if node.kind != DiskKind::Dir => FsError::NotDir,
                Where::Dir | Where::Disk(_) => FsError::IsDir,
                Where::Missing => FsError::NotFound,
            });
        }
        let opened = if self.files.contains(path) {
            self.open_existing(cid, path, flags)
        } else {
            // The probe already saw nothing on disk: no second look-up for a create.
            let found = match probe {
                Some(disk::Probe::Nothing) => Where::Missing,
                _ => self.locate(&root, path)?,
            };
            match found {
                Where::File => self.open_existing(cid, path, flags),
                // As the kernel: `O_CREAT | O_EXCL` on anything that exists is `EEXIST` (which
                // `tempfile.mkstemp` retries on); other opens of a directory are `EISDIR`.
                Where::Dir | Where::Disk(_) if exclusive => Err(FsError::Exists),
                Where::Dir => Err(FsError::IsDir),
                Where::Disk(node) => match node.kind {
                    DiskKind::Dir => Err(FsError::IsDir),
                    DiskKind::Other => Ok(Opened::Pass),
                    DiskKind::File if !writable => {
                        let file = disk::open_read(&node)?;
                        let size = file.metadata()?.len();
                        Ok(Opened::Disk { size, file })
                    }
                    DiskKind::File => {
                        self.import(cid, root, path, &node, flags & O_TRUNC != 0, caused)
                    }
                },
                Where::Missing if create => {
                    self.check_parent(&root, path)?;
                    // The client applied its umask, as `open(2)` does.
                    let new = NewData {
                        seed: None,
                        mode: mode & 0o7777,
                        plain_write: plain_write.then_some(flags),
                    };
                    let own = self.insert(cid, root, path, new, caused)?;
                    self.opened(cid, path, own)
                }
                Where::Missing if !writable => self.missing_read(cid, path, generation),
                Where::Missing => Err(FsError::NotFound),
            }
        };
        match &opened {
            Ok(Opened::Wait { .. }) => self.note_waiting(cid, path),
            _ => self.done_waiting(cid, path),
        }
        opened
    }

    /// A read-only open of a path nobody has created: wait for it while a producer may still
    /// appear, `ENOENT` at once otherwise (an optional-file probe must not hang).
    fn missing_read(&self, cid: ClientId, path: &Path, generation: u32) -> Result<Opened, FsError> {
        if self.producer_may_appear(cid, path) {
            Ok(Opened::Wait { generation })
        } else {
            Err(FsError::NotFound)
        }
    }

    /// The one rule for "`path` is missing now: wait, or answer `ENOENT`?", for opens and
    /// listings alike. With apps declared (CAPIO-CL `output_stream`) to produce it: wait until
    /// every one of them has terminated, unless the caller is one of them (it never waits for its
    /// own output). Without: wait while another client is attached, since only a live process
    /// can still create it — but not for the caller's ancestors (its parent step waits on it).
    /// Terminations bump the namespace generation, so waiters ask again then.
    pub(super) fn producer_may_appear(&self, cid: ClientId, path: &Path) -> bool {
        let declared = self.rules.declared_producers(path);
        let me = self.clients.app_of(cid);
        if declared.is_empty() {
            return self.clients.another_may_create(cid) || self.remote_may_create();
        }
        !declared.iter().any(|app| app == me)
            && !declared.iter().all(|app| self.app_terminated(app))
    }

    /// A committed input opened for writing becomes a CAPIO file, seeded with its disk content.
    fn import(
        &mut self,
        cid: ClientId,
        root: PathBuf,
        path: &Path,
        node: &disk::Node,
        truncate: bool,
        caused: &mut Caused,
    ) -> Result<Opened, FsError> {
        let seed = if truncate {
            None
        } else {
            Some(disk::open_read(node)?)
        };
        let new = NewData {
            seed,
            mode: node.meta.mode() & 0o7777,
            plain_write: None,
        };
        self.insert(cid, root, path, new, caused)?;
        // Opening a file for writing changes none of its times: keep the input's until written.
        if let Some(file) = self.files.get(path) {
            let times = disk::same_times(&node.meta);
            if let Err(e) = sys::set_attrs_fd(file.data.as_fd(), &times) {
                warning!("cannot keep the times of {}: {e}", path.display());
            }
        }
        self.opened(cid, path, None)
    }

    /// Create the file at `path`, produced by `cid`, backed as its rule says. Of a file written
    /// directly, returns its creator's own description of it.
    fn insert(
        &mut self,
        cid: ClientId,
        root: PathBuf,
        path: &Path,
        NewData {
            seed,
            mode,
            plain_write,
        }: NewData,
        caused: &mut Caused,
    ) -> Result<Option<OwnedFd>, FsError> {
        let rule = self.rules.rule_for(path);
        let direct_write =
            plain_write.filter(|_| seed.is_none() && self.files.plain_write_allowed(&rule));
        // Before the copy: an input bigger than the budget must not even pass through memory.
        if rule.storage == capio_cl::Storage::Memory
            && let Some(seed) = &seed
        {
            self.files.budget.check(seed.metadata()?.len())?;
        }
        // Written directly, its memory is fresh: no byte of another file below its size.
        let pool = direct_write
            .is_none()
            .then_some(&mut self.files.budget.pool);
        let mut new = new_data(root, path, rule, seed, pool)?;
        new.direct_write = direct_write.is_some();
        // Made before the mode is set, as `open(2)` creating a file opens it whatever its mode.
        let own = direct_write.map(|flags| sys::reopen_as(new.data.as_fd(), flags as i32));
        // The data object carries the file's mode, owner and times, kept by the kernel.
        let made = own.transpose().and_then(|own| {
            new.data.set_permissions(fs::Permissions::from_mode(mode))?;
            Ok(own)
        });
        let own = match made {
            Ok(own) => own,
            Err(e) => {
                backing::discard(&new.data, new.backing);
                return Err(e.into());
            }
        };
        let slot = self.files.create(path, new)?;
        self.announce_new_file(cid, path, slot, mode);
        self.clients.add_producer(cid, slot);
        self.add_child(cid, path, caused);
        self.bump();
        Ok(own)
    }

    fn open_existing(&mut self, cid: ClientId, path: &Path, flags: u32) -> Result<Opened, FsError> {
        let writable = matches!(flags & O_ACCMODE, O_WRONLY | O_RDWR);
        let create = flags & O_CREAT != 0;
        let slot = self.files.get(path).ok_or(FsError::NotFound)?.slot();
        if create && flags & O_EXCL != 0 {
            return Err(FsError::Exists);
        }
        // A writer of a file written directly gets a description of its own, made as `open(2)`
        // makes it (its mode may refuse it), before anything about the file changes.
        let own = match self.files.get(path) {
            Some(node) if writable && node.direct_write() => {
                Some(sys::reopen_as(node.data.as_fd(), flags as i32)?)
            }
            _ => None,
        };
        if writable && self.files.node(slot).is_some_and(|n| n.remote.is_none()) {
            // Out of memory and served from its persisted copy: never written in place.
            self.writable_again(slot)?;
        }
        let (node, budget) = self.files.node_and_budget(slot).ok_or(FsError::NotFound)?;
        if let Some(replica) = &node.remote
            && writable
        {
            return Err(FsError::WrittenElsewhere {
                node: replica.writer,
            });
        }
        let slot = node.slot();
        let was = node.state();
        let mut truncated = Ok(());
        if node.state() == SlotState::Aborted {
            if !(writable && create) {
                return Err(FsError::Aborted);
            }
            node.restart(budget)?;
            self.forget_readers(slot);
            self.clients.only_producer(cid, slot);
            self.table.namespace().bump();
        } else if writable {
            self.clients.add_producer(cid, slot);
            if node.reopen() {
                self.table.namespace().bump();
            }
            if flags & O_TRUNC != 0 {
                truncated = node.truncate(budget);
            }
        }
        // A new round: written anew after a commit or an abort, or cut to nothing (told even if
        // the cut failed: the round moved when it was reopened).
        if writable && (was != SlotState::Open || flags & O_TRUNC != 0) {
            self.tell_state(slot);
        }
        truncated?;
        if flags & O_TRUNC != 0 {
            self.forget_readers(slot);
        }
        self.opened(cid, path, own)
    }

    /// Count an open and build the `Memory` reply, handing over `own` (a writer's own
    /// description) or a duplicate of the file's. A declared producer counts as a producer even
    /// when it only reads: it never waits on the file.
    fn opened(
        &mut self,
        cid: ClientId,
        path: &Path,
        own: Option<OwnedFd>,
    ) -> Result<Opened, FsError> {
        let node = self.files.get_mut(path).ok_or(FsError::NotFound)?;
        let client = self.clients.get(cid).ok_or(FsError::Exited)?;
        let data = match own {
            Some(own) => own,
            None => OwnedFd::from(node.data.try_clone()?),
        };
        node.apps.insert(client.app.clone());
        let (slot, fire, size) = (node.slot(), fire_wire(node.rule().fire), node.len());
        let direct_write = node.direct_write();
        let producers = self.clients.producers(slot);
        let producer = producers.contains(&cid)
            || self.clients.made_by_ancestor(cid, producers)
            || self.rules.is_producer(&client.app, path);
        self.clients.opened(cid, slot);
        // Another node's file: its bytes start coming here now.
        self.fetch_if_needed(slot);
        Ok(Opened::Memory {
            slot,
            producer,
            fire,
            size,
            data,
            progress: 0,
            direct_write,
        })
    }
}

/// What a new file starts from: `seed`'s content (an input opened for writing), its mode, and
/// whether its creator asked to write it directly (`OpenReq::PLAIN_WRITE`).
struct NewData {
    seed: Option<File>,
    mode: u32,
    /// The creator's `open(2)` flags, when it asked to write the file directly.
    plain_write: Option<u32>,
}
