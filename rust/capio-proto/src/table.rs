//! The per-file state shared by the server and every client: one 64-byte slot per CAPIO file in a
//! memfd the server creates and hands out at `Hello`. A slot holds the published length, the commit
//! state and a futex word, so readers wait and writers publish without any server round trip.
//!
//! Slot 0 is the namespace slot: its `seq` is bumped whenever a path is created or a file changes
//! state, which is what a reader blocked in `open` of a not-yet-existing path sleeps on.
//!
//! A slot may also serve a reader as its progress cell instead of a file: `len` is how far the
//! reader has read without a gap, and `state` says whether it mapped the file (see `Slot::note_read`).
//!
//! After the slots come the namespace index (`index`) and one [`SlotAttrs`] per slot: what a
//! `stat` of a committed file reports, published with the slot's direct access.

use crate::Inode;
use crate::sys;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicI32, AtomicI64, AtomicU32, AtomicU64, Ordering::SeqCst};
use std::time::Duration;

/// Number of slots in a server's table (64 MiB of slots and as much of their attributes, plus
/// the namespace index: sparse, lazily allocated shared memory).
pub const DEFAULT_SLOTS: u32 = 1 << 20;
/// The namespace slot.
pub const NAMESPACE_SLOT: u32 = 0;

#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotState {
    Free = 0,
    /// Being produced: readers follow the fire rule.
    Open = 1,
    Committed = 2,
    /// Its producer terminated before the commit: readers get an error.
    Aborted = 3,
}

impl SlotState {
    pub fn from_u32(v: u32) -> SlotState {
        match v {
            1 => SlotState::Open,
            2 => SlotState::Committed,
            3 => SlotState::Aborted,
            _ => SlotState::Free,
        }
    }
}

#[repr(C, align(64))]
pub struct Slot {
    /// Bytes published by producers (readers never read past it before the commit); of a file
    /// its writers write directly, by the server at the commit (and after it, at each writer's
    /// close).
    pub len: AtomicU64,
    /// Futex word: bumped when `len` grows while someone waits, and on every state change.
    pub seq: AtomicU32,
    /// Number of readers sleeping on `seq`; writers skip the wake syscall when it is zero.
    pub waiters: AtomicU32,
    pub state: AtomicU32,
    /// Serialises appends and truncations of the file across processes, as a plain file's inode
    /// lock does: 0, or the pid of the holder (a holder that died is detected and replaced).
    pub append_lock: AtomicU32,
    /// Recycled memory (see [`Slot::prepare_write`]): every byte below `clean` was written or
    /// cleared for this file; the top bit is set while a writer clears a gap.
    pub clean: AtomicU64,
    /// Below this end the file's memory object may still hold bytes of a previous file (it came
    /// from the server's pool); 0 for fresh memory, whose unwritten bytes read as zeros anyway.
    pub stale: AtomicU64,
    /// Bytes below this end were released: every declared consumer had read them (a read of
    /// them fails). Only ever grows for a file; the server sets it before it frees the memory.
    pub released: AtomicU64,
    /// Direct access (see [`Slot::direct`]): even between changes of the two fields below and
    /// the slot's [`SlotAttrs`], odd during one; every change moves it, so a client can tell its
    /// answer still held.
    access: AtomicU32,
    /// The server's fd of the file's memory object, which a client may open and `stat` itself
    /// (through `/proc/<server>/fd`) while the file's data and rules allow it; -1 otherwise.
    data_fd: AtomicI32,
    /// The inode of that object: what a client checks the object it opened by number against.
    data_ino: AtomicU64,
}

const _: () = assert!(size_of::<Slot>() == 64);

/// What `stat` reports of a committed file besides its size and state, as the server last read
/// it from the file's memory object: clients answer `stat` from it without a syscall. Written
/// and read under its slot's access word (see [`StateTable::publish_direct`]).
#[repr(C, align(64))]
pub struct SlotAttrs {
    mode: AtomicU32,
    uid: AtomicU32,
    gid: AtomicU32,
    /// Moved by every client that changes the object itself (`fchmod` of its fd, a write after
    /// the commit): the copy holds only while this is what it was when the server read the
    /// object (`published`), so a change racing the server's read is never covered up.
    changes: AtomicU32,
    published: AtomicU32,
    /// 0: no copy (the file is not committed, or not offered).
    ino: AtomicU64,
    dev: AtomicU64,
    atime_ns: AtomicI64,
    mtime_ns: AtomicI64,
    ctime_ns: AtomicI64,
}

const _: () = assert!(size_of::<SlotAttrs>() == 64);

impl SlotAttrs {
    /// Keep `inode` (read when `changes` was `seen`), or no copy.
    fn store(&self, inode: Option<&Inode>, seen: u32) {
        let Some(i) = inode else {
            self.ino.store(0, SeqCst);
            return;
        };
        self.mode.store(i.mode, SeqCst);
        self.uid.store(i.uid, SeqCst);
        self.gid.store(i.gid, SeqCst);
        self.dev.store(i.dev, SeqCst);
        self.atime_ns.store(i.atime_ns, SeqCst);
        self.mtime_ns.store(i.mtime_ns, SeqCst);
        self.ctime_ns.store(i.ctime_ns, SeqCst);
        self.published.store(seen, SeqCst);
        self.ino.store(i.ino, SeqCst);
    }

    /// Where clients' changes stand: read by the server before it reads the object.
    pub fn changes(&self) -> u32 {
        self.changes.load(SeqCst)
    }

    /// The copy, if there is one and nobody changed the object since (size 0, one link: the
    /// caller knows the file's).
    pub fn load(&self) -> Option<Inode> {
        let ino = self.ino.load(SeqCst);
        let current = self.changes.load(SeqCst) == self.published.load(SeqCst);
        (ino != 0 && current).then(|| Inode {
            size: 0,
            mode: self.mode.load(SeqCst),
            uid: self.uid.load(SeqCst),
            gid: self.gid.load(SeqCst),
            nlink: 1,
            ino,
            dev: self.dev.load(SeqCst),
            atime_ns: self.atime_ns.load(SeqCst),
            mtime_ns: self.mtime_ns.load(SeqCst),
            ctime_ns: self.ctime_ns.load(SeqCst),
        })
    }

    /// A client changed the object through its own fd.
    pub fn mark_stale(&self) {
        self.changes.fetch_add(1, SeqCst);
    }
}

/// The bit of `Slot::clean` a writer sets while it clears a gap.
const CLEARING: u64 = 1 << 63;
/// A progress cell's `state` once its reader mapped the file.
const MAPPED: u32 = u32::MAX;

impl Slot {
    pub fn state(&self) -> SlotState {
        SlotState::from_u32(self.state.load(SeqCst))
    }

    /// Publish bytes up to `end`. The futex word moves on every publish (one atomic add), so a
    /// reader that read it before checking `len` can never sleep through this publish; the wake
    /// syscall is made only when someone sleeps.
    pub fn publish(&self, end: u64) {
        let prev = self.len.fetch_max(end, SeqCst);
        if end > prev {
            self.wake();
        }
    }

    /// Publish `len` as the file's length even if shorter (the server, for a file its writers
    /// write directly, whose object may also have been cut).
    pub fn publish_exact(&self, len: u64) {
        if self.len.swap(len, SeqCst) != len {
            self.wake();
        }
    }

    fn wake(&self) {
        self.seq.fetch_add(1, SeqCst);
        if self.waiters.load(SeqCst) > 0 {
            sys::futex_wake_all(&self.seq);
        }
    }

    /// Take the append lock: appends find the end, write and publish under it, and truncations
    /// change the size under it, so an append never lands at an end that a truncation or another
    /// append has just moved. Held for one write; a holder that died is taken over.
    pub fn lock_appends(&self) -> AppendGuard<'_> {
        let me = std::process::id();
        loop {
            match self.append_lock.compare_exchange(0, me, SeqCst, SeqCst) {
                Ok(_) => return AppendGuard { slot: self },
                Err(holder) => {
                    let woke =
                        sys::futex_wait(&self.append_lock, holder, Some(Duration::from_millis(2)));
                    if woke == sys::Wake::TimedOut
                        && holder != me
                        && !sys::process_alive(holder as i32)
                    {
                        let _ = self.append_lock.compare_exchange(holder, 0, SeqCst, SeqCst);
                    }
                }
            }
        }
    }

    /// Set the length outright (a truncation, a restarted file). Callers that may race with
    /// appenders hold the append lock.
    pub fn reset_len(&self, len: u64) {
        self.len.store(len, SeqCst);
    }

    /// Before bytes `off..end` are written into the file's memory object `data`: where that memory
    /// is recycled, make sure no byte of a previous file can show in the gap between what was
    /// written so far and `off` (it is punched out, so it reads as zeros as in a fresh file).
    /// Returns where the part of the write that now counts as written but is not yet starts
    /// (`end`: none), for [`Self::write_failed`].
    /// Costs one atomic load for fresh memory and one compare-exchange for a write that starts
    /// inside what was written; only a write past a gap takes the append lock (`holding_lock`:
    /// the caller holds it already). A clearer that died is outlived through that lock.
    pub fn prepare_write(
        &self,
        data: BorrowedFd<'_>,
        off: u64,
        end: u64,
        holding_lock: bool,
    ) -> io::Result<u64> {
        let stale = self.stale.load(SeqCst);
        if stale == 0 {
            return Ok(end);
        }
        let mut lock = None;
        loop {
            let clean = self.clean.load(SeqCst);
            if clean & CLEARING != 0 && !holding_lock && lock.is_none() {
                // Someone clears a gap: wait for them through the lock they hold.
                lock = Some(self.lock_appends());
                continue;
            }
            // Under the lock a set bit can only be left by a clearer that died.
            let base = clean & !CLEARING;
            if end <= base {
                return Ok(end);
            }
            if off <= base || base >= stale {
                // No stale byte lies between what was written and this write.
                if self
                    .clean
                    .compare_exchange(clean, end, SeqCst, SeqCst)
                    .is_ok()
                {
                    return Ok(base.max(off));
                }
                continue;
            }
            if !holding_lock && lock.is_none() {
                lock = Some(self.lock_appends());
                continue;
            }
            // A gap of stale bytes: claim it, so no write lands in it while it is punched.
            if self
                .clean
                .compare_exchange(clean, base | CLEARING, SeqCst, SeqCst)
                .is_err()
            {
                continue;
            }
            let cleared = sys::punch_hole(data, base, off.min(stale) - base);
            let now = if cleared.is_ok() { end } else { base };
            self.clean.store(now, SeqCst);
            return cleared.map(|()| off);
        }
    }

    /// A write of `off..end` failed after [`Self::prepare_write`] counted `claimed..end` (what it
    /// returned) as written: clear that part, so no byte of a previous file stays counted as this
    /// file's. Best effort (the write's own error is what the writer reports).
    pub fn write_failed(&self, data: BorrowedFd<'_>, claimed: u64, end: u64) {
        if claimed < end {
            let _ = sys::punch_hole(data, claimed, end - claimed);
        }
    }

    /// The end below which every byte was written or cleared (or claimed by a write under way).
    pub fn clean_end(&self) -> u64 {
        self.clean.load(SeqCst) & !CLEARING
    }

    /// The file's memory object was just cut or extended to `size` (by `ftruncate`, under the
    /// append lock): bytes beyond it are gone, and the ones it gained must read as zeros.
    pub fn resized(&self, data: BorrowedFd<'_>, size: u64) -> io::Result<()> {
        let stale = self.stale.load(SeqCst).min(size);
        self.stale.store(stale, SeqCst);
        let base = self.clean.load(SeqCst) & !CLEARING;
        if base < stale {
            sys::punch_hole(data, base, stale - base)?;
        }
        self.clean.store(size, SeqCst);
        Ok(())
    }

    /// A new file in this slot, whose memory object holds `len` bytes of its own and may hold a
    /// previous file's bytes below `stale`.
    pub fn start_file(&self, len: u64, stale: u64) {
        self.released.store(0, SeqCst);
        self.clean.store(len, SeqCst);
        // Stale bytes the file's own content covers are not stale.
        self.stale
            .store(if stale > len { stale } else { 0 }, SeqCst);
        self.reset_len(len);
    }

    /// As a reader's progress cell: it read `off..end`. Its progress is how far it has read
    /// without a gap: a read past it (a footer, a chunk read out of order) moves nothing.
    pub fn note_read(&self, off: u64, end: u64) {
        let mut cur = self.len.load(SeqCst);
        while off <= cur && end > cur {
            match self.len.compare_exchange(cur, end, SeqCst, SeqCst) {
                Ok(_) => return,
                Err(now) => cur = now,
            }
        }
    }

    /// As a reader's progress cell: it mapped the file (or took its raw fd, which may be mapped),
    /// so none of the file's bytes may be released early any more.
    pub fn note_mapped(&self) {
        self.state.store(MAPPED, SeqCst);
    }

    /// As a reader's progress cell: how far it has read, and whether it mapped the file.
    pub fn reader_progress(&self) -> (u64, bool) {
        (self.len.load(SeqCst), self.state.load(SeqCst) == MAPPED)
    }

    /// Whether bytes at `off` and beyond are still held (not released). A reader checks before
    /// and after it copies: released bytes read as zeros once freed.
    pub fn holds(&self, off: u64) -> bool {
        off >= self.released.load(SeqCst)
    }

    /// The memory object a client may reach directly, as `(fd, ino, access)`: the server's fd
    /// and the object's inode, and the access word to check with [`Slot::direct_unchanged`]
    /// after acting on them. `None` when the server does not allow it now.
    pub fn direct(&self) -> Option<(i32, u64, u32)> {
        let access = self.access.load(SeqCst);
        let (fd, ino) = (self.data_fd.load(SeqCst), self.data_ino.load(SeqCst));
        (access & 1 == 0 && fd >= 0 && self.access.load(SeqCst) == access)
            .then_some((fd, ino, access))
    }

    /// Whether the direct access read as `access` still holds.
    pub fn direct_unchanged(&self, access: u32) -> bool {
        self.access.load(SeqCst) == access
    }

    /// Set the state and wake everyone waiting on this slot.
    pub fn set_state(&self, state: SlotState) {
        self.state.store(state as u32, SeqCst);
        self.bump();
    }

    /// Advance the futex word and wake all sleepers. A sleeper counts itself in `waiters` before
    /// its futex call, which re-checks the word, so skipping the syscall when none is counted
    /// loses no wake-up.
    pub fn bump(&self) {
        self.seq.fetch_add(1, SeqCst);
        if self.waiters.load(SeqCst) > 0 {
            sys::futex_wake_all(&self.seq);
        }
    }

    /// Sleep until `seq` moves past `seen` (or the timeout / a signal). Callers read `seq` *before*
    /// checking their condition and pass that value here, so a publish in between is never lost.
    pub fn wait(&self, seen: u32, timeout: Option<Duration>) -> sys::Wake {
        self.waiters.fetch_add(1, SeqCst);
        let r = sys::futex_wait(&self.seq, seen, timeout);
        self.waiters.fetch_sub(1, SeqCst);
        r
    }
}

/// Holds a slot's append lock; releases it on drop.
pub struct AppendGuard<'a> {
    slot: &'a Slot,
}

impl Drop for AppendGuard<'_> {
    fn drop(&mut self) {
        self.slot.append_lock.store(0, SeqCst);
        sys::futex_wake_all(&self.slot.append_lock);
    }
}

/// A mapping of the shared slot array.
pub struct StateTable {
    base: NonNull<Slot>,
    slots: u32,
    fd: OwnedFd,
}

// SAFETY: the table is only ever accessed through atomics in `Slot`, and the mapping lives as long
// as the value; sharing it between threads is exactly what the atomics are for.
unsafe impl Send for StateTable {}
// SAFETY: see `Send`.
unsafe impl Sync for StateTable {}

impl StateTable {
    /// Create a fresh table (server side).
    pub fn create(slots: u32) -> io::Result<StateTable> {
        let fd = sys::memfd("capio-state")?;
        let file = std::fs::File::from(fd);
        file.set_len(Self::byte_len(slots) as u64)?;
        Self::map(OwnedFd::from(file), slots)
    }

    /// Map a table received from the server.
    pub fn map(fd: OwnedFd, slots: u32) -> io::Result<StateTable> {
        let len = Self::byte_len(slots);
        let base = sys::mmap_shared(fd.as_fd(), len)?.cast::<Slot>();
        Ok(StateTable { base, slots, fd })
    }

    /// The slots, then the namespace index (sparse: pages are allocated as they are used), then
    /// each slot's attributes.
    fn byte_len(slots: u32) -> usize {
        Self::attrs_offset(slots) + slots as usize * size_of::<SlotAttrs>()
    }

    fn attrs_offset(slots: u32) -> usize {
        (Self::index_offset(slots) + crate::index::BYTES).next_multiple_of(4096)
    }

    /// The attributes kept for slot `index` (see [`SlotAttrs`]).
    pub fn attrs(&self, index: u32) -> Option<&SlotAttrs> {
        if index >= self.slots {
            return None;
        }
        let at = Self::attrs_offset(self.slots) + index as usize * size_of::<SlotAttrs>();
        // SAFETY: `at` is inside the live mapping (`byte_len`) and 64-byte aligned (page-aligned
        // region of 64-byte entries); `SlotAttrs` is all atomics, valid for any bit pattern.
        Some(unsafe { &*self.base.as_ptr().cast::<u8>().add(at).cast::<SlotAttrs>() })
    }

    /// Tell clients, under slot `index`'s access word, the memory object they may reach directly
    /// (the server's fd of it and its inode), and with `committed` the attributes a `stat` of it
    /// reports (read when its attributes' `changes` was `seen`); `None`: none.
    pub fn publish_direct(
        &self,
        index: u32,
        object: Option<(i32, &Inode)>,
        committed: bool,
        seen: u32,
    ) {
        let (Some(slot), Some(attrs)) = (self.slot(index), self.attrs(index)) else {
            return;
        };
        let (fd, ino) = object.map_or((-1, 0), |(fd, inode)| (fd, inode.ino));
        slot.access.fetch_add(1, SeqCst);
        slot.data_fd.store(fd, SeqCst);
        slot.data_ino.store(ino, SeqCst);
        attrs.store(object.filter(|_| committed).map(|(_, inode)| inode), seen);
        slot.access.fetch_add(1, SeqCst);
    }

    fn index_offset(slots: u32) -> usize {
        (slots as usize * size_of::<Slot>()).next_multiple_of(4096)
    }

    /// The namespace index that follows the slots.
    pub fn index(&self) -> crate::index::Index<'_> {
        use crate::index::{BUCKETS, Header, Index, RECORDS, Record};
        use std::sync::atomic::AtomicU32 as Bucket;
        let base = self.base.as_ptr().cast::<u8>();
        let header_at = Self::index_offset(self.slots);
        let buckets_at = header_at + size_of::<Header>();
        let records_at = buckets_at + BUCKETS * size_of::<Bucket>();
        // SAFETY: the three regions lie inside the live mapping (`byte_len`), are aligned (page
        // aligned start, 64-byte header, bucket array a multiple of 64 bytes) and hold only
        // atomics, valid for any bit pattern; they live as long as `&self`.
        unsafe {
            Index {
                header: &*base.add(header_at).cast::<Header>(),
                buckets: std::slice::from_raw_parts(base.add(buckets_at).cast::<Bucket>(), BUCKETS),
                records: std::slice::from_raw_parts(base.add(records_at).cast::<Record>(), RECORDS),
            }
        }
    }

    pub fn slots(&self) -> u32 {
        self.slots
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    pub fn slot(&self, index: u32) -> Option<&Slot> {
        if index >= self.slots {
            return None;
        }
        // SAFETY: `index` is in bounds of the live mapping; slots are 64-byte aligned (mmap gives
        // page alignment) and `Slot` is all atomics, valid for any bit pattern including zero.
        Some(unsafe { &*self.base.as_ptr().add(index as usize) })
    }

    pub fn namespace(&self) -> &Slot {
        self.slot(NAMESPACE_SLOT)
            .expect("a table always has the namespace slot")
    }
}

impl Drop for StateTable {
    fn drop(&mut self) {
        // SAFETY: the mapping was made by `map` with this length; `&self` borrows have ended.
        unsafe { sys::munmap(self.base.cast(), Self::byte_len(self.slots)) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_committed_files_attributes_are_published_with_its_object_until_a_client_changes_them() {
        let table = StateTable::create(8).unwrap();
        let file = std::fs::File::from(sys::memfd("attrs-test").unwrap());
        let inode = Inode::from(&file.metadata().unwrap());
        let (slot, attrs) = (table.slot(3).unwrap(), table.attrs(3).unwrap());
        // Not committed: the object only; committed: its attributes too, under one access word.
        table.publish_direct(3, Some((7, &inode)), false, 0);
        let (_, _, open_access) = slot.direct().unwrap();
        assert!(attrs.load().is_none());
        table.publish_direct(3, Some((7, &inode)), true, attrs.changes());
        let (fd, ino, access) = slot.direct().unwrap();
        assert_eq!((fd, ino), (7, inode.ino));
        assert!(access != open_access && !slot.direct_unchanged(open_access));
        let got = attrs.load().unwrap();
        assert_eq!(
            (
                got.mode,
                got.uid,
                got.ino,
                got.dev,
                got.mtime_ns,
                got.ctime_ns
            ),
            (
                inode.mode,
                inode.uid,
                inode.ino,
                inode.dev,
                inode.mtime_ns,
                inode.ctime_ns
            )
        );
        // A client's own change makes it unusable until the server publishes again, also one
        // made while the server was reading the object (it read `changes` first).
        attrs.mark_stale();
        assert!(attrs.load().is_none());
        let seen = attrs.changes();
        attrs.mark_stale();
        table.publish_direct(3, Some((7, &inode)), true, seen);
        assert!(attrs.load().is_none());
        table.publish_direct(3, Some((7, &inode)), true, attrs.changes());
        assert!(attrs.load().is_some());
        table.publish_direct(3, None, true, 0);
        assert!(slot.direct().is_none() && attrs.load().is_none());
        // Each slot has its own.
        assert!(table.attrs(2).unwrap().load().is_none() && table.attrs(8).is_none());
    }

    #[test]
    fn publish_wakes_a_waiting_reader() {
        let table = Arc::new(StateTable::create(16).unwrap());
        let slot = table.slot(3).unwrap();
        slot.set_state(SlotState::Open);
        let t2 = table.clone();
        let reader = std::thread::spawn(move || {
            let s = t2.slot(3).unwrap();
            loop {
                let seen = s.seq.load(SeqCst);
                if s.len.load(SeqCst) >= 10 {
                    return s.len.load(SeqCst);
                }
                s.wait(seen, Some(Duration::from_secs(5)));
            }
        });
        std::thread::sleep(Duration::from_millis(20));
        slot.publish(10);
        assert_eq!(reader.join().unwrap(), 10);
    }

    #[test]
    fn a_publish_between_reading_seq_and_waiting_is_not_missed() {
        let table = StateTable::create(4).unwrap();
        let slot = table.slot(1).unwrap();
        slot.set_state(SlotState::Open);
        // The reader reads the word and finds no data...
        let seen = slot.seq.load(SeqCst);
        assert_eq!(slot.len.load(SeqCst), 0);
        // ...the writer publishes before the reader counts itself as waiting...
        slot.publish(10);
        // ...and the reader's sleep must end at once instead of lasting its whole timeout.
        let start = std::time::Instant::now();
        let woke = slot.wait(seen, Some(Duration::from_secs(5)));
        assert_eq!(woke, sys::Wake::Changed);
        assert!(start.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn appends_under_the_lock_take_disjoint_ranges() {
        let table = Arc::new(StateTable::create(4).unwrap());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let t = table.clone();
                std::thread::spawn(move || {
                    let s = t.slot(2).unwrap();
                    (0..1000)
                        .map(|_| {
                            let _g = s.lock_appends();
                            let start = s.len.load(SeqCst);
                            s.publish(start + 10);
                            start
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut starts: Vec<u64> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        starts.sort_unstable();
        assert_eq!(starts, (0..4000).map(|i| i * 10).collect::<Vec<_>>());
        assert_eq!(table.slot(2).unwrap().append_lock.load(SeqCst), 0);
    }

    #[test]
    fn the_append_lock_of_a_dead_holder_is_taken_over() {
        let table = StateTable::create(4).unwrap();
        let s = table.slot(1).unwrap();
        // A pid that is certainly not running (beyond the kernel's pid range).
        s.append_lock.store(4_194_305, SeqCst);
        let start = std::time::Instant::now();
        drop(s.lock_appends());
        assert!(start.elapsed() < Duration::from_secs(1));
        assert_eq!(s.append_lock.load(SeqCst), 0);
    }

    /// A slot over a memory object that held 64 KiB of another file's bytes (0xEE).
    fn recycled(table: &StateTable, index: u32) -> (&Slot, std::fs::File) {
        use std::os::unix::fs::FileExt;
        let data = std::fs::File::from(sys::memfd("capio-test").unwrap());
        data.write_all_at(&[0xEE; 64 << 10], 0).unwrap();
        let slot = table.slot(index).unwrap();
        slot.start_file(0, 64 << 10);
        (slot, data)
    }

    fn bytes(data: &std::fs::File, off: u64, len: usize) -> Vec<u8> {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0; len];
        data.read_exact_at(&mut buf, off).unwrap();
        buf
    }

    #[test]
    fn a_write_past_a_gap_of_recycled_memory_clears_the_gap_first() {
        use std::os::unix::fs::FileExt;
        let table = StateTable::create(4).unwrap();
        let (slot, data) = recycled(&table, 1);
        let write = |off: u64, len: usize| {
            slot.prepare_write(data.as_fd(), off, off + len as u64, false)
                .unwrap();
            data.write_all_at(&vec![7; len], off).unwrap();
        };
        write(0, 1000);
        assert_eq!(
            bytes(&data, 1000, 10),
            [0xEE; 10],
            "contiguous: nothing cleared"
        );
        write(20_000, 100);
        assert_eq!(bytes(&data, 1000, 19_000), vec![0; 19_000]);
        assert_eq!(bytes(&data, 20_100, 10), [0xEE; 10], "past the write: left");
        write(500, 100);
        assert_eq!(slot.clean.load(SeqCst), 20_100);
        // A write past the stale end leaves a gap that is a hole already: only what is stale goes.
        write(100_000, 10);
        assert_eq!(bytes(&data, 20_100, 79_900), vec![0; 79_900]);
        assert_eq!(slot.append_lock.load(SeqCst), 0);
    }

    #[test]
    fn a_write_that_failed_after_its_claim_leaves_zeros_not_old_bytes() {
        let table = StateTable::create(4).unwrap();
        let (slot, data) = recycled(&table, 1);
        let claimed = slot.prepare_write(data.as_fd(), 100, 300, false).unwrap();
        assert_eq!(
            (claimed, slot.clean_end()),
            (100, 300),
            "the gap was cleared, the write claimed"
        );
        // The write fails: what it claimed is cleared, so a later write past it shows no old byte.
        slot.write_failed(data.as_fd(), claimed, 300);
        assert_eq!(bytes(&data, 0, 300), vec![0; 300]);
        // Inside what was written, nothing is claimed: a failure there clears nothing.
        assert_eq!(slot.prepare_write(data.as_fd(), 0, 50, false).unwrap(), 50);
        let fresh = StateTable::create(4).unwrap();
        let s = fresh.slot(1).unwrap();
        assert_eq!(s.prepare_write(data.as_fd(), 0, 10, false).unwrap(), 10);
    }

    #[test]
    fn fresh_memory_is_never_cleared() {
        use std::os::unix::fs::FileExt;
        let table = StateTable::create(4).unwrap();
        let data = std::fs::File::from(sys::memfd("capio-test").unwrap());
        data.write_all_at(&[1; 100], 0).unwrap();
        let slot = table.slot(1).unwrap();
        slot.start_file(100, 100);
        slot.prepare_write(data.as_fd(), 1000, 1010, false).unwrap();
        assert_eq!((slot.stale.load(SeqCst), slot.clean.load(SeqCst)), (0, 100));
        assert_eq!(bytes(&data, 0, 100), [1; 100]);
    }

    #[test]
    fn writers_racing_out_of_order_over_recycled_memory_lose_nothing() {
        use std::os::unix::fs::FileExt;
        let table = Arc::new(StateTable::create(4).unwrap());
        let (_, data) = recycled(&table, 1);
        let data = Arc::new(data);
        // 4 writers, each writing every 4th 1 KiB block of the first 60 KiB, from the back.
        let threads: Vec<_> = (0..4u8)
            .map(|t| {
                let (table, data) = (table.clone(), data.clone());
                std::thread::spawn(move || {
                    let slot = table.slot(1).unwrap();
                    for block in (0..60u64).rev().filter(|b| b % 4 == u64::from(t)) {
                        let off = block * 1024;
                        slot.prepare_write(data.as_fd(), off, off + 1024, false)
                            .unwrap();
                        data.write_all_at(&[t + 1; 1024], off).unwrap();
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        for block in 0..60u64 {
            let want = (block % 4) as u8 + 1;
            assert_eq!(
                bytes(&data, block * 1024, 1024),
                [want; 1024],
                "block {block}"
            );
        }
        assert_eq!(table.slot(1).unwrap().clean.load(SeqCst), 60 * 1024);
    }

    #[test]
    fn a_clearer_that_died_is_outlived() {
        let table = StateTable::create(4).unwrap();
        let (slot, data) = recycled(&table, 1);
        // It claimed the gap after 100 bytes and died holding the lock.
        slot.clean.store(100 | CLEARING, SeqCst);
        slot.append_lock.store(4_194_305, SeqCst);
        slot.prepare_write(data.as_fd(), 200, 300, false).unwrap();
        assert_eq!(slot.clean.load(SeqCst), 300);
        assert_eq!(bytes(&data, 100, 100), [0; 100]);
        assert_eq!(
            bytes(&data, 50, 50),
            [0xEE; 50],
            "below what it had: not its gap"
        );
    }

    #[test]
    fn a_resize_leaves_no_stale_byte_inside_the_file() {
        let table = StateTable::create(4).unwrap();
        let (slot, data) = recycled(&table, 1);
        slot.prepare_write(data.as_fd(), 0, 10, false).unwrap();
        data.set_len(30_000).unwrap();
        slot.resized(data.as_fd(), 30_000).unwrap();
        assert_eq!(bytes(&data, 10, 29_990), vec![0; 29_990]);
        assert_eq!(
            (slot.clean.load(SeqCst), slot.stale.load(SeqCst)),
            (30_000, 30_000)
        );
        data.set_len(5).unwrap();
        slot.resized(data.as_fd(), 5).unwrap();
        assert_eq!((slot.clean.load(SeqCst), slot.stale.load(SeqCst)), (5, 5));
    }

    #[test]
    fn a_second_mapping_sees_the_same_slots() {
        let table = StateTable::create(8).unwrap();
        let dup = table.fd().try_clone_to_owned().unwrap();
        let other = StateTable::map(dup, 8).unwrap();
        table.slot(5).unwrap().publish(42);
        assert_eq!(other.slot(5).unwrap().len.load(SeqCst), 42);
        assert!(other.slot(8).is_none());
    }
}
