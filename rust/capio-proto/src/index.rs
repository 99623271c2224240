//! The namespace index: which paths the server knows, in the shared state table, so that a client
//! answers `stat`, `exists` and the open of a committed file without a round trip, as the kernel's
//! dentry cache answers a path walk.
//!
//! The server is the one writer (under its namespace lock); clients only read. An open-addressing
//! hash table of record numbers (linear probing, deletion by backward shift, so no tombstones
//! pile up) points into an array of fixed-size records, each a path and what it names: a file and
//! its slot, or a directory the server keys by its real path. One change counter makes every
//! look-up atomic: the writer moves it to odd before a change and to even after, and a reader
//! whose look-up saw it move tries again. A look-up therefore sees the index as it was between two
//! changes, and a miss in a complete index is as good as a miss in the server's own tables.
//!
//! Paths longer than [`MAX_NAME`] are not indexed: a look-up of one is [`Lookup::Unknown`] and
//! goes to the server. So is everything once the records run out, or once the index is turned off
//! (a workflow over many nodes, whose namespace is not all here).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};

/// Buckets of the hash table (a power of two; at most half of them are ever in use).
pub const BUCKETS: usize = 1 << 20;
/// Records: the most paths the index holds.
pub const RECORDS: usize = BUCKETS / 2;
/// The longest path (in bytes) the index holds.
pub const MAX_NAME: usize = NAME_WORDS * 8;
const NAME_WORDS: usize = 25;
/// Look-ups that saw the index change under them give up after this many tries.
const TRIES: usize = 8;

/// The index's bytes in the state table's memory, after the slots.
pub const BYTES: usize =
    size_of::<Header>() + BUCKETS * size_of::<AtomicU32>() + RECORDS * size_of::<Record>();

/// What a record names.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// A file in the namespace, in this slot.
    File(u32),
    /// A directory the server knows by this (real) path.
    Dir,
}

const KIND_FILE: u32 = 1;
const KIND_DIR: u32 = 2;

/// What a look-up found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    Found(Entry),
    /// Not in the namespace (the disk may still have it).
    Missing,
    /// The index cannot say: ask the server.
    Unknown,
}

#[repr(C, align(64))]
pub struct Header {
    /// Even between changes, odd during one.
    changes: AtomicU64,
    /// Set when a path could not be indexed for want of room: a miss proves nothing any more.
    incomplete: AtomicU32,
    /// Set when the namespace is not all on this node: the index answers nothing.
    off: AtomicU32,
}

#[repr(C, align(64))]
pub struct Record {
    hash: AtomicU64,
    kind: AtomicU32,
    slot: AtomicU32,
    len: AtomicU32,
    /// `HAS_DISK` when `disk` holds the identity of the file's persisted copy.
    flags: AtomicU32,
    /// A persisted file's copy on disk as persisted: dev, ino, size, mtime in ns.
    disk: [AtomicU64; 4],
    name: [AtomicU64; NAME_WORDS],
}

const HAS_DISK: u32 = 1;

/// A persisted file's copy on disk, as the server recorded it: the server stops serving the file
/// from memory once its path shows anything else (another program replaced or removed it), so a
/// client answering for it checks the same first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskId {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
}

const _: () = assert!(size_of::<Record>() == 256);
const _: () = assert!(size_of::<Header>() == 64);

/// The index inside a mapped state table (see `StateTable::index`).
pub struct Index<'a> {
    pub(crate) header: &'a Header,
    /// Record number + 1; 0 is an empty bucket.
    pub(crate) buckets: &'a [AtomicU32],
    pub(crate) records: &'a [Record],
}

/// The hash both ends compute of a path: 64-bit FNV-1a over its bytes, eight at a time.
fn hash(name: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ name.len() as u64;
    for chunk in name.chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        h ^= u64::from_le_bytes(word);
        h = h.wrapping_mul(0x0000_0100_0000_01b3).rotate_left(29);
    }
    h ^ (h >> 32)
}

fn word_of(name: &[u8], i: usize) -> u64 {
    let mut word = [0u8; 8];
    if let Some(chunk) = name.chunks(8).nth(i) {
        word[..chunk.len()].copy_from_slice(chunk);
    }
    u64::from_le_bytes(word)
}

impl Record {
    fn holds(&self, h: u64, name: &[u8]) -> bool {
        self.hash.load(SeqCst) == h
            && self.len.load(SeqCst) as usize == name.len()
            && (0..name.len().div_ceil(8)).all(|i| self.name[i].load(SeqCst) == word_of(name, i))
    }

    fn disk(&self) -> Option<DiskId> {
        (self.flags.load(SeqCst) & HAS_DISK != 0).then(|| DiskId {
            dev: self.disk[0].load(SeqCst),
            ino: self.disk[1].load(SeqCst),
            size: self.disk[2].load(SeqCst),
            mtime_ns: self.disk[3].load(SeqCst) as i64,
        })
    }

    fn entry(&self) -> Option<Entry> {
        match self.kind.load(SeqCst) {
            KIND_FILE => Some(Entry::File(self.slot.load(SeqCst))),
            KIND_DIR => Some(Entry::Dir),
            _ => None,
        }
    }
}

impl Index<'_> {
    fn mask(&self) -> usize {
        self.buckets.len() - 1
    }

    fn record(&self, bucket: usize) -> Option<&Record> {
        let id = self.buckets[bucket].load(SeqCst);
        self.records.get((id as usize).checked_sub(1)?)
    }

    /// What the server knows of `name` (a normalised absolute path), as of one moment.
    pub fn lookup(&self, name: &[u8]) -> Lookup {
        self.lookup_with_disk(name).0
    }

    /// [`Index::lookup`], with the persisted copy's identity of a file found.
    pub fn lookup_with_disk(&self, name: &[u8]) -> (Lookup, Option<DiskId>) {
        if name.len() > MAX_NAME || self.header.off.load(SeqCst) != 0 {
            return (Lookup::Unknown, None);
        }
        let h = hash(name);
        for _ in 0..TRIES {
            let before = self.header.changes.load(SeqCst);
            if before & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let found = self
                .probe(h, name)
                .and_then(|r| Some((r.entry()?, r.disk())));
            if self.header.changes.load(SeqCst) != before {
                continue;
            }
            return match found {
                Some((entry, disk)) => (Lookup::Found(entry), disk),
                None if self.header.incomplete.load(SeqCst) == 0 => (Lookup::Missing, None),
                None => (Lookup::Unknown, None),
            };
        }
        (Lookup::Unknown, None)
    }

    /// The record of `name`, read without regard to changes (the caller checks the counter).
    /// The walk is bounded: a torn read can never loop it.
    fn probe(&self, h: u64, name: &[u8]) -> Option<&Record> {
        let mut at = h as usize & self.mask();
        for _ in 0..self.buckets.len() {
            let record = self.record(at)?;
            if record.holds(h, name) {
                return Some(record);
            }
            at = (at + 1) & self.mask();
        }
        None
    }

    /// The change counter, for a caller that acts on an answer and must know it still held
    /// afterwards (an open through the entry's slot): see [`Index::unchanged_since`].
    pub fn changes(&self) -> u64 {
        self.header.changes.load(SeqCst)
    }

    /// Whether nothing changed since [`Index::changes`] returned `before` (an even value).
    pub fn unchanged_since(&self, before: u64) -> bool {
        before & 1 == 0 && self.header.changes.load(SeqCst) == before
    }
}

/// The server's side: places records and keeps the table. One writer at a time (`&mut self`).
#[derive(Default)]
pub struct IndexWriter {
    /// Records given back, reused first.
    free: Vec<u32>,
    /// Records never used yet start here.
    next: u32,
    /// Open [`IndexWriter::hold`]s: while any is, the counter stays odd and every change made
    /// joins one, so several changes look like one (a rename over an existing name).
    held: u32,
}

/// A change in progress: the counter is odd until it drops.
struct Changing<'a>(&'a Header);

impl<'a> Changing<'a> {
    fn begin(header: &'a Header) -> Changing<'a> {
        header.changes.fetch_add(1, SeqCst);
        Changing(header)
    }
}

impl Drop for Changing<'_> {
    fn drop(&mut self) {
        self.0.changes.fetch_add(1, SeqCst);
    }
}

impl IndexWriter {
    /// Start a change that lasts until the matching [`IndexWriter::let_go`]: readers meanwhile
    /// see nothing of it and ask the server.
    pub fn hold(&mut self, index: &Index<'_>) {
        if self.held == 0 {
            index.header.changes.fetch_add(1, SeqCst);
        }
        self.held += 1;
    }

    /// End a [`IndexWriter::hold`].
    pub fn let_go(&mut self, index: &Index<'_>) {
        if self.held == 0 {
            debug_assert!(false, "let_go without hold");
            return;
        }
        self.held -= 1;
        if self.held == 0 {
            index.header.changes.fetch_add(1, SeqCst);
        }
    }

    /// A change of its own, unless one is held.
    fn change<'a>(&self, index: &Index<'a>) -> Option<Changing<'a>> {
        (self.held == 0).then(|| Changing::begin(index.header))
    }

    /// Record that `name` is `entry` (replacing what it was). A name too long is not recorded
    /// (look-ups of it go to the server); without a free record the index stops answering misses.
    pub fn set(&mut self, index: &Index<'_>, name: &[u8], entry: Entry) {
        if name.len() > MAX_NAME {
            return;
        }
        let h = hash(name);
        let _change = self.change(index);
        let (kind, slot) = match entry {
            Entry::File(slot) => (KIND_FILE, slot),
            Entry::Dir => (KIND_DIR, 0),
        };
        let mut at = h as usize & index.mask();
        loop {
            match index.record(at) {
                Some(record) if record.holds(h, name) => {
                    record.kind.store(kind, SeqCst);
                    record.slot.store(slot, SeqCst);
                    return;
                }
                Some(_) => at = (at + 1) & index.mask(),
                None => break,
            }
        }
        let Some(id) = self.alloc(index) else {
            index.header.incomplete.store(1, SeqCst);
            return;
        };
        let record = &index.records[id as usize];
        record.flags.store(0, SeqCst);
        record.hash.store(h, SeqCst);
        record.len.store(name.len() as u32, SeqCst);
        for i in 0..name.len().div_ceil(8) {
            record.name[i].store(word_of(name, i), SeqCst);
        }
        record.kind.store(kind, SeqCst);
        record.slot.store(slot, SeqCst);
        index.buckets[at].store(id + 1, SeqCst);
    }

    /// What `name` is recorded as (the writer's own view: nothing changes meanwhile).
    pub fn get(&self, index: &Index<'_>, name: &[u8]) -> Option<Entry> {
        if name.len() > MAX_NAME {
            return None;
        }
        index.probe(hash(name), name)?.entry()
    }

    /// The file at `name` has a persisted copy on disk with identity `disk` (or none).
    pub fn set_disk(&mut self, index: &Index<'_>, name: &[u8], disk: Option<DiskId>) {
        if name.len() > MAX_NAME {
            return;
        }
        let Some(record) = index.probe(hash(name), name) else {
            return;
        };
        let _change = self.change(index);
        if let Some(d) = disk {
            record.disk[0].store(d.dev, SeqCst);
            record.disk[1].store(d.ino, SeqCst);
            record.disk[2].store(d.size, SeqCst);
            record.disk[3].store(d.mtime_ns as u64, SeqCst);
        }
        record
            .flags
            .store(if disk.is_some() { HAS_DISK } else { 0 }, SeqCst);
    }

    /// `name` is no longer `entry` (if it is something else now, it stays).
    pub fn remove(&mut self, index: &Index<'_>, name: &[u8], entry: Entry) {
        if name.len() > MAX_NAME {
            return;
        }
        let h = hash(name);
        let mask = index.mask();
        let mut at = h as usize & mask;
        loop {
            match index.record(at) {
                Some(record) if record.holds(h, name) => {
                    if record.entry() != Some(entry) {
                        return;
                    }
                    break;
                }
                Some(_) => at = (at + 1) & mask,
                None => return,
            }
        }
        let _change = self.change(index);
        let id = index.buckets[at].load(SeqCst) - 1;
        index.records[id as usize].kind.store(0, SeqCst);
        self.free.push(id);
        // Backward shift: pull later members of the run into the hole, so that every entry stays
        // reachable from its home bucket without a tombstone.
        let mut hole = at;
        let mut next = (at + 1) & mask;
        while let Some(record) = index.record(next) {
            let home = record.hash.load(SeqCst) as usize & mask;
            // Movable unless its home lies cyclically in (hole, next].
            let stays = if hole <= next {
                hole < home && home <= next
            } else {
                hole < home || home <= next
            };
            if !stays {
                index.buckets[hole].store(index.buckets[next].load(SeqCst), SeqCst);
                hole = next;
            }
            next = (next + 1) & mask;
        }
        index.buckets[hole].store(0, SeqCst);
    }

    /// The index stops answering (a workflow over many nodes: other nodes' files are not in it).
    pub fn turn_off(&mut self, index: &Index<'_>) {
        let _change = self.change(index);
        index.header.off.store(1, SeqCst);
    }

    fn alloc(&mut self, index: &Index<'_>) -> Option<u32> {
        if let Some(id) = self.free.pop() {
            return Some(id);
        }
        if self.next as usize >= index.records.len() {
            return None;
        }
        self.next += 1;
        Some(self.next - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StateTable;
    use std::sync::Arc;

    fn table() -> StateTable {
        StateTable::create(4).unwrap()
    }

    #[test]
    fn records_files_and_directories_and_forgets_them() {
        let t = table();
        let ix = t.index();
        let mut w = IndexWriter::default();
        assert_eq!(ix.lookup(b"/d/a"), Lookup::Missing);
        w.set(&ix, b"/d", Entry::Dir);
        w.set(&ix, b"/d/a", Entry::File(3));
        assert_eq!(ix.lookup(b"/d/a"), Lookup::Found(Entry::File(3)));
        assert_eq!(ix.lookup(b"/d"), Lookup::Found(Entry::Dir));
        assert_eq!(ix.lookup(b"/d/b"), Lookup::Missing);
        assert_eq!(ix.lookup(b"/d/a/"), Lookup::Missing);
        w.set(&ix, b"/d/a", Entry::File(7));
        assert_eq!(ix.lookup(b"/d/a"), Lookup::Found(Entry::File(7)));
        w.remove(&ix, b"/d/a", Entry::File(3));
        assert_eq!(
            ix.lookup(b"/d/a"),
            Lookup::Found(Entry::File(7)),
            "only what it was"
        );
        assert_eq!(w.get(&ix, b"/d/a"), Some(Entry::File(7)));
        w.remove(&ix, b"/d/a", Entry::File(7));
        assert_eq!(ix.lookup(b"/d/a"), Lookup::Missing);
        assert_eq!(ix.lookup(b"/d"), Lookup::Found(Entry::Dir));
    }

    #[test]
    fn changes_made_while_held_are_seen_as_one() {
        // A rename over an existing name: the old file goes, the moved one arrives. No reader may
        // find the name missing in between: while held, every look-up is Unknown.
        let t = table();
        let ix = t.index();
        let mut w = IndexWriter::default();
        w.set(&ix, b"/dst", Entry::File(1));
        w.set(&ix, b"/src", Entry::File(2));
        w.hold(&ix);
        w.hold(&ix);
        w.remove(&ix, b"/dst", Entry::File(1));
        assert_eq!(ix.lookup(b"/dst"), Lookup::Unknown);
        w.remove(&ix, b"/src", Entry::File(2));
        w.let_go(&ix);
        w.set(&ix, b"/dst", Entry::File(2));
        assert_eq!(ix.lookup(b"/dst"), Lookup::Unknown);
        w.let_go(&ix);
        assert_eq!(ix.lookup(b"/dst"), Lookup::Found(Entry::File(2)));
        assert_eq!(ix.lookup(b"/src"), Lookup::Missing);
        assert!(ix.unchanged_since(ix.changes()));
    }

    #[test]
    fn a_persisted_files_disk_copy_is_told_with_it() {
        let t = table();
        let ix = t.index();
        let mut w = IndexWriter::default();
        w.set(&ix, b"/p", Entry::File(4));
        assert_eq!(
            ix.lookup_with_disk(b"/p"),
            (Lookup::Found(Entry::File(4)), None)
        );
        let id = DiskId {
            dev: 1,
            ino: 2,
            size: 3,
            mtime_ns: -4,
        };
        w.set_disk(&ix, b"/p", Some(id));
        assert_eq!(
            ix.lookup_with_disk(b"/p"),
            (Lookup::Found(Entry::File(4)), Some(id))
        );
        w.set_disk(&ix, b"/p", None);
        assert_eq!(ix.lookup_with_disk(b"/p").1, None);
        // A record reused for another name starts without one.
        w.set_disk(&ix, b"/p", Some(id));
        w.remove(&ix, b"/p", Entry::File(4));
        w.set(&ix, b"/q", Entry::File(5));
        assert_eq!(ix.lookup_with_disk(b"/q").1, None);
    }

    #[test]
    fn long_names_and_a_turned_off_index_are_unknown() {
        let t = table();
        let ix = t.index();
        let mut w = IndexWriter::default();
        let long = vec![b'x'; MAX_NAME + 1];
        w.set(&ix, &long, Entry::File(1));
        assert_eq!(ix.lookup(&long), Lookup::Unknown);
        let longest = vec![b'y'; MAX_NAME];
        w.set(&ix, &longest, Entry::File(2));
        assert_eq!(ix.lookup(&longest), Lookup::Found(Entry::File(2)));
        w.turn_off(&ix);
        assert_eq!(ix.lookup(&longest), Lookup::Unknown);
        assert_eq!(ix.lookup(b"/nothing"), Lookup::Unknown);
    }

    fn record() -> Record {
        Record {
            hash: AtomicU64::new(0),
            kind: AtomicU32::new(0),
            slot: AtomicU32::new(0),
            len: AtomicU32::new(0),
            flags: AtomicU32::new(0),
            disk: std::array::from_fn(|_| AtomicU64::new(0)),
            name: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    #[test]
    fn every_entry_stays_reachable_through_colliding_removals() {
        // A table of 16 buckets: runs collide and wrap around its end. After any removal, every
        // other name must still be found (backward shift), and records are reused.
        let ix = small();
        let mut w = IndexWriter::default();
        let names: Vec<Vec<u8>> = (0..12).map(|i| format!("/r/{i}").into_bytes()).collect();
        let mut present = vec![false; names.len()];
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        for step in 0..4000 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let i = (rng % names.len() as u64) as usize;
            if present[i] {
                w.remove(&ix, &names[i], Entry::File(i as u32));
            } else {
                w.set(&ix, &names[i], Entry::File(i as u32));
            }
            present[i] = !present[i];
            for (j, n) in names.iter().enumerate() {
                let want = if present[j] {
                    Lookup::Found(Entry::File(j as u32))
                } else {
                    Lookup::Missing
                };
                assert_eq!(ix.lookup(n), want, "step {step}, name {j}");
            }
        }
        assert!(w.next as usize <= names.len(), "removed records are reused");
    }

    #[test]
    fn a_full_index_stops_answering_misses() {
        let t = table();
        let ix = t.index();
        let mut w = IndexWriter {
            next: RECORDS as u32 - 1,
            ..IndexWriter::default()
        };
        w.set(&ix, b"/last", Entry::Dir);
        assert_eq!(ix.lookup(b"/other"), Lookup::Missing);
        w.set(&ix, b"/one-too-many", Entry::Dir);
        assert_eq!(ix.lookup(b"/one-too-many"), Lookup::Unknown);
        assert_eq!(ix.lookup(b"/last"), Lookup::Found(Entry::Dir));
    }

    /// An index of 16 buckets and 12 records, where every run collides and wraps.
    fn small() -> Index<'static> {
        let header = Box::leak(Box::new(Header {
            changes: AtomicU64::new(0),
            incomplete: AtomicU32::new(0),
            off: AtomicU32::new(0),
        }));
        let buckets: &'static [AtomicU32] = Vec::leak((0..16).map(|_| AtomicU32::new(0)).collect());
        let records: &'static [Record] = Vec::leak((0..12).map(|_| record()).collect());
        Index {
            header,
            buckets,
            records,
        }
    }

    #[test]
    fn a_reader_never_misses_a_name_that_stays_while_others_churn() {
        // One writer adds and removes names around a name that always exists, in a table so small
        // that removals shift it between buckets; readers in other threads must find it every
        // time (never Missing), or be told to ask the server.
        let ix = Arc::new(small());
        let mut w = IndexWriter::default();
        w.set(&ix, b"/stay", Entry::File(9));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let looked = Arc::new(AtomicU64::new(0));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (ix, stop, looked) = (ix.clone(), stop.clone(), looked.clone());
                std::thread::spawn(move || {
                    let mut found = 0u64;
                    while !stop.load(SeqCst) {
                        match ix.lookup(b"/stay") {
                            Lookup::Found(Entry::File(9)) => found += 1,
                            Lookup::Unknown => {}
                            other => panic!("saw {other:?}"),
                        }
                        looked.fetch_add(1, SeqCst);
                    }
                    found
                })
            })
            .collect();
        let mut round = 0u32;
        while round < 20_000 || looked.load(SeqCst) < 200_000 {
            round += 1;
            let name = format!("/churn/{}", round % 10).into_bytes();
            if round.is_multiple_of(3) {
                if let Some(entry) = w.get(&ix, &name) {
                    w.remove(&ix, &name, entry);
                }
            } else {
                w.set(&ix, &name, Entry::File(round));
            }
        }
        stop.store(true, SeqCst);
        for r in readers {
            assert!(r.join().unwrap() > 0);
        }
    }
}
