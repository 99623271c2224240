//! The data path of an open fd: read, write (appends under the file's append lock, writes
//! within the memory budget's reservation), seek and truncate. No server round trip unless a
//! write crosses its reserved end.

use crate::error::{ClientError, Result};
use capio_proto::datamap::{MAPPED_WRITE_MIN, WriteMap};
use capio_proto::{ReserveReq, Slot, sys};
use std::os::fd::{AsFd, RawFd};
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering::SeqCst;

use super::{Client, Handle, Readable};

impl Client {
    /// Ask the server's memory budget to hold `h`'s file up to `end`; returns the end granted
    /// (headroom beyond `end`).
    fn ask_reserve(&self, h: &Handle, slot: u32, end: u64) -> Result<u64> {
        let req = ReserveReq { slot, _pad: 0, end };
        let r = self.conn().call(&req, &[])?.check(&h.path)?.fixed;
        Ok(r.granted)
    }

    /// Read into `buf` at `offset`, or at the fd's position (advancing it) when `offset` is None.
    /// Returns 0 only at the end of a committed file.
    pub fn read(
        &self,
        fd: RawFd,
        buf: &mut [u8],
        offset: Option<u64>,
        interrupt: &mut dyn FnMut() -> bool,
    ) -> Result<usize> {
        let (h, off) = self.read_start(fd, offset)?;
        if buf.is_empty() {
            return Ok(0);
        }
        let end = self.readable_end(&h, off, interrupt)?;
        self.read_held(&h, off, end, buf, offset.is_none())
    }

    /// Read what `wait_readable` found readable, as many bytes as fit in `buf`, without waiting:
    /// returns 0 only when the wait found the end of a committed file.
    pub fn read_ready(&self, ready: &Readable, buf: &mut [u8]) -> Result<usize> {
        self.read_held(
            &ready.handle,
            ready.offset,
            ready.end,
            buf,
            ready.at_position,
        )
    }

    /// `read_range`, for bytes the server still holds: released bytes (every declared consumer
    /// read them) are an error, checked before and after the copy since a release frees them;
    /// a tracked reader then notes how far it got.
    fn read_held(
        &self,
        h: &Handle,
        off: u64,
        end: u64,
        buf: &mut [u8],
        advance: bool,
    ) -> Result<usize> {
        self.check_held(h, off)?;
        let n = h.read_range(off, end, buf, advance)?;
        self.check_held(h, off)?;
        if let Some(cell) = h.progress.and_then(|c| self.table.slot(c)) {
            cell.note_read(off, off + n as u64);
        }
        Ok(n)
    }

    /// The file behind `fd` is being mapped from `offset` (a view, or its raw fd handed out: 0):
    /// none of its bytes may be released early any more, and bytes released already are an error,
    /// not the zeros a mapping would show. The mark is set before the check and the server checks
    /// it after publishing a release, so one of the two always sees the other.
    pub fn pin(&self, fd: RawFd, offset: u64) -> Result<()> {
        let h = self.handle(fd)?;
        if let Some(cell) = h.progress.and_then(|c| self.table.slot(c)) {
            cell.note_mapped();
        }
        self.check_held(&h, offset)
    }

    /// `ENODATA` when the bytes of `h`'s file from `off` on were released.
    fn check_held(&self, h: &Handle, off: u64) -> Result<()> {
        match h.slot.and_then(|i| self.table.slot(i)) {
            Some(s) if !s.holds(off) => Err(ClientError::Released {
                path: h.path.clone(),
                upto: s.released.load(SeqCst),
            }),
            _ => Ok(()),
        }
    }

    /// Write all of `data` at `offset`, or at the position (the end, with O_APPEND) when None.
    pub fn write(&self, fd: RawFd, data: &[u8], offset: Option<u64>) -> Result<usize> {
        let h = self.handle(fd)?;
        if !h.writable {
            return Err(ClientError::os(libc::EBADF, None));
        }
        let (index, slot) = match h.slot {
            Some(i) => (i, self.slot(i)?),
            None => return Err(ClientError::os(libc::EBADF, None)),
        };
        let written = if h.direct_write {
            h.write_direct(data, offset)
        } else {
            h.write_published(slot, data, offset, |end| self.ask_reserve(&h, index, end))
        };
        self.changed_after_commit(index, slot);
        written
    }

    /// A write or cut of a file already committed (by its rule, while this fd was still open)
    /// changes what the server published of it for `stat` (see `SlotAttrs`).
    fn changed_after_commit(&self, index: u32, slot: &Slot) {
        if slot.state() == capio_proto::SlotState::Committed {
            self.attrs_changed(index);
        }
    }

    fn current_size(&self, h: &Handle) -> Result<u64> {
        match h.slot {
            Some(i) => h.live_len(self.slot(i)?),
            None => Ok(h
                .file
                .metadata()
                .map_err(|e| ClientError::from_io(e, h.path.clone()))?
                .len()),
        }
    }

    pub fn seek(&self, fd: RawFd, offset: i64, whence: i32) -> Result<u64> {
        let h = self.handle(fd)?;
        let base = match whence {
            libc::SEEK_SET => 0,
            libc::SEEK_CUR => h.pos.load(SeqCst) as i64,
            libc::SEEK_END => self.current_size(&h)? as i64,
            _ => return Err(ClientError::os(libc::EINVAL, None)),
        };
        let new = base
            .checked_add(offset)
            .filter(|p| *p >= 0)
            .ok_or_else(|| ClientError::os(libc::EINVAL, None))?;
        h.pos.store(new as u64, SeqCst);
        Ok(new as u64)
    }

    pub fn truncate(&self, fd: RawFd, size: u64) -> Result<()> {
        let h = self.handle(fd)?;
        let (index, slot) = match h.slot {
            Some(i) if h.writable => (i, self.slot(i)?),
            _ => return Err(ClientError::os(libc::EINVAL, None)),
        };
        let cut = h.truncate_published(slot, size, |end| self.ask_reserve(&h, index, end));
        self.changed_after_commit(index, slot);
        cut
    }
}

impl Handle {
    /// Copy the readable bytes `off..end` that fit in `buf` from the file; with `advance` the
    /// position moves past them.
    fn read_range(&self, off: u64, end: u64, buf: &mut [u8], advance: bool) -> Result<usize> {
        let want = end.saturating_sub(off).min(buf.len() as u64) as usize;
        let mut got = 0;
        while got < want {
            match self.file.read_at(&mut buf[got..want], off + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ClientError::from_io(e, self.path.clone())),
            }
        }
        if advance {
            self.pos.store(off + got as u64, SeqCst);
        }
        Ok(got)
    }

    /// Make sure the memory budget holds the file up to `end` before bytes go there. Costs one
    /// atomic load unless the write crosses the end granted last; then `ask(end)` makes the one
    /// round trip and returns the end granted.
    fn reserve(&self, end: u64, ask: impl FnOnce(u64) -> Result<u64>) -> Result<()> {
        if end <= self.reserved.load(SeqCst) {
            return Ok(());
        }
        let granted = ask(end)?;
        self.reserved.fetch_max(granted, SeqCst);
        Ok(())
    }

    /// Write all of `data` at `offset`, or at the position when None, into a file written
    /// directly: plain writes through this handle's own description, whose `O_APPEND` the OS
    /// keeps (an append lands at the end whoever else writes). Nothing is published.
    fn write_direct(&self, data: &[u8], offset: Option<u64>) -> Result<usize> {
        use std::io::{Seek, Write};
        let io_err = |e| ClientError::from_io(e, self.path.clone());
        match offset {
            Some(off) => self.file.write_all_at(data, off).map_err(io_err)?,
            None if self.append => {
                let mut file = &self.file;
                file.write_all(data).map_err(io_err)?;
                let end = file.stream_position().map_err(io_err)?;
                self.pos.store(end, SeqCst);
            }
            None => {
                let off = self.pos.load(SeqCst);
                self.file.write_all_at(data, off).map_err(io_err)?;
                self.pos.store(off + data.len() as u64, SeqCst);
            }
        }
        Ok(data.len())
    }

    /// Write all of `data` into the file of `slot` at `offset`, or at the position (the end, with
    /// O_APPEND) when None, and publish it; `ask` reserves memory as for `reserve`.
    fn write_published(
        &self,
        slot: &Slot,
        data: &[u8],
        offset: Option<u64>,
        mut ask: impl FnMut(u64) -> Result<u64>,
    ) -> Result<usize> {
        // An append finds the end, writes and publishes under the file's append lock: two
        // processes appending, or one appending while another truncates, never write at a stale
        // end. A failed append publishes nothing, so the next one starts where this one did.
        let appending = offset.is_none() && self.append;
        // As the kernel: a write whose end does not fit in an `off_t` is invalid.
        let end_at = |off: u64| {
            off.checked_add(data.len() as u64)
                .filter(|end| *end <= i64::MAX as u64)
                .ok_or_else(|| ClientError::os(libc::EINVAL, self.path.clone()))
        };
        loop {
            let guess = match offset {
                Some(o) => o,
                None if appending => slot.len.load(SeqCst),
                None => self.pos.load(SeqCst),
            };
            // Never ask the server while holding the append lock: the server takes that lock
            // (truncating on open) while holding its namespace, which a `Reserve` needs.
            let reserved_for = end_at(guess)?;
            self.reserve(reserved_for, &mut ask)?;
            let _append_lock = appending.then(|| slot.lock_appends());
            let off = if appending {
                slot.len.load(SeqCst)
            } else {
                guess
            };
            let end = end_at(off)?;
            if end > reserved_for.max(self.reserved.load(SeqCst)) {
                // Others appended since the guess, past what is reserved: ask again, unlocked.
                continue;
            }
            let io_err = |e| ClientError::from_io(e, self.path.clone());
            let claimed = slot
                .prepare_write(self.file.as_fd(), off, end, appending)
                .map_err(io_err)?;
            let written = match self.mapping(slot, data.len()) {
                Some(map) => self.copy_mapped(map, slot, off, data, appending),
                None => Ok(false),
            }
            .and_then(|mapped| match mapped {
                true => Ok(()),
                false => self.file.write_all_at(data, off).map_err(io_err),
            });
            if let Err(e) = written {
                slot.write_failed(self.file.as_fd(), claimed, end);
                return Err(e);
            }
            slot.publish(end);
            if offset.is_none() {
                self.pos.store(end, SeqCst);
            }
            return Ok(data.len());
        }
    }

    /// The mapping a write of `len` bytes goes through: long writes into recycled memory (see
    /// `capio_proto::datamap`), mapped at the first one.
    fn mapping(&self, slot: &Slot, len: usize) -> Option<&WriteMap> {
        if len < MAPPED_WRITE_MIN {
            return None;
        }
        if let Some(map) = self.map.get() {
            return Some(map);
        }
        let stale = slot.stale.load(SeqCst);
        if stale == 0 {
            return None;
        }
        let size = self.file.metadata().ok()?.len();
        let map = WriteMap::new(&self.file, stale.min(size)).ok()?;
        let _ = self.map.set(map);
        self.map.get()
    }

    /// Copy `data` to `off` through the mapping, under the file's append lock (unless `locked`:
    /// the caller holds it), which every change of the file's size takes too, so the file cannot
    /// shrink under the copy; it also updates the file's times, as a `pwrite` does. False when
    /// the range is not inside the mapping and the file: the caller writes it with `pwrite`.
    fn copy_mapped(
        &self,
        map: &WriteMap,
        slot: &Slot,
        off: u64,
        data: &[u8],
        locked: bool,
    ) -> Result<bool> {
        let io_err = |e| ClientError::from_io(e, self.path.clone());
        let _lock = (!locked).then(|| slot.lock_appends());
        if !map.copy_in(&self.file, off, data).map_err(io_err)? {
            return Ok(false);
        }
        let modified = sys::Attrs {
            mtime: sys::TimeSet::Now,
            ..sys::Attrs::default()
        };
        sys::set_attrs_fd(self.file.as_fd(), &modified).map_err(io_err)?;
        Ok(true)
    }

    /// Set the file of `slot` to `size` bytes under its append lock, after reserving memory for
    /// them, and wake its readers.
    fn truncate_published(
        &self,
        slot: &Slot,
        size: u64,
        ask: impl FnOnce(u64) -> Result<u64>,
    ) -> Result<()> {
        self.reserve(size, ask)?;
        let _append_lock = slot.lock_appends();
        let io_err = |e| ClientError::from_io(e, self.path.clone());
        self.file.set_len(size).map_err(io_err)?;
        slot.resized(self.file.as_fd(), size).map_err(io_err)?;
        slot.reset_len(size);
        slot.bump();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use capio_proto::{SlotState, StateTable, sys};
    use std::fs::File;
    use std::path::PathBuf;
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;
    use std::time::Duration;

    const SLOT: u32 = 1;

    /// A writable handle on `file`, with `reserved` bytes granted by the memory budget.
    fn handle(file: &File, append: bool, reserved: u64) -> Handle {
        Handle {
            file: file.try_clone().unwrap(),
            path: PathBuf::from("f"),
            slot: Some(SLOT),
            offered: None,
            namespace_file: true,
            producer: true,
            fire: capio_proto::Fire::Update,
            readable: false,
            writable: true,
            append,
            pos: AtomicU64::new(0),
            reserved: AtomicU64::new(reserved),
            progress: None,
            map: std::sync::OnceLock::new(),
            direct_write: false,
        }
    }

    fn setup() -> (Arc<StateTable>, File) {
        let table = Arc::new(StateTable::create(4).unwrap());
        table.slot(SLOT).unwrap().set_state(SlotState::Open);
        (table, File::from(sys::memfd("capio-test").unwrap()))
    }

    /// The published length, the file's stored length, and the append lock's holder.
    fn sizes_and_lock(slot: &Slot, file: &File) -> (u64, u64, u32) {
        let stored = file.metadata().unwrap().len();
        (slot.len.load(SeqCst), stored, slot.append_lock.load(SeqCst))
    }

    fn no_budget(_: u64) -> Result<u64> {
        panic!("a write within the reservation asked the server")
    }

    #[test]
    fn appends_from_many_handles_take_disjoint_ranges() {
        let (table, file) = setup();
        let threads: Vec<_> = (0..4u8)
            .map(|t| {
                let (table, h) = (table.clone(), handle(&file, true, u64::MAX));
                std::thread::spawn(move || {
                    for i in 0..200u8 {
                        let slot = table.slot(SLOT).unwrap();
                        h.write_published(slot, &[t, i, t, i], None, no_budget)
                            .unwrap();
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        let slot = table.slot(SLOT).unwrap();
        assert_eq!(slot.len.load(SeqCst), 4 * 200 * 4);
        assert_eq!(slot.append_lock.load(SeqCst), 0);
        let mut bytes = vec![0; 4 * 200 * 4];
        file.read_exact_at(&mut bytes, 0).unwrap();
        let mut records: Vec<&[u8]> = bytes.chunks(4).collect();
        assert!(records.iter().all(|r| r[0..2] == r[2..4]), "a torn record");
        records.sort_unstable();
        records.dedup();
        assert_eq!(records.len(), 4 * 200);
    }

    #[test]
    fn an_append_lands_at_the_published_end_and_a_plain_write_at_the_position() {
        let (table, file) = setup();
        let slot = table.slot(SLOT).unwrap();
        // Another process published 100 bytes; this handle's position is still 0.
        handle(&file, false, u64::MAX)
            .write_published(slot, &[1; 100], Some(0), no_budget)
            .unwrap();
        let appender = handle(&file, true, u64::MAX);
        assert_eq!(
            appender
                .write_published(slot, b"abc", None, no_budget)
                .unwrap(),
            3
        );
        assert_eq!(appender.pos.load(SeqCst), 103);
        let writer = handle(&file, false, u64::MAX);
        writer
            .write_published(slot, b"xy", None, no_budget)
            .unwrap();
        assert_eq!(writer.pos.load(SeqCst), 2);
        // An explicit offset neither uses nor moves the position, even with O_APPEND.
        appender
            .write_published(slot, b"z", Some(50), no_budget)
            .unwrap();
        assert_eq!(appender.pos.load(SeqCst), 103);
        assert_eq!(slot.len.load(SeqCst), 103);
        let mut bytes = vec![0; 103];
        file.read_exact_at(&mut bytes, 0).unwrap();
        assert_eq!(
            (&bytes[..2], bytes[50], &bytes[100..]),
            (&b"xy"[..], b'z', &b"abc"[..])
        );
    }

    #[test]
    fn a_truncation_waits_for_the_append_in_progress() {
        let (table, file) = setup();
        let slot = table.slot(SLOT).unwrap();
        handle(&file, false, u64::MAX)
            .write_published(slot, &[7; 64], None, no_budget)
            .unwrap();
        let seq = slot.seq.load(SeqCst);
        let append = slot.lock_appends();
        let (t, h) = (table.clone(), handle(&file, false, u64::MAX));
        let truncation =
            std::thread::spawn(move || h.truncate_published(t.slot(SLOT).unwrap(), 8, no_budget));
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(sizes_and_lock(slot, &file), (64, 64, std::process::id()));
        drop(append);
        truncation.join().unwrap().unwrap();
        // The length went down (a publish never lowers it) and readers were woken.
        assert_eq!(sizes_and_lock(slot, &file), (8, 8, 0));
        assert_ne!(slot.seq.load(SeqCst), seq);
    }

    #[test]
    fn only_a_write_past_the_reserved_end_asks_the_budget() {
        let (table, file) = setup();
        let slot = table.slot(SLOT).unwrap();
        let h = handle(&file, false, 0);
        let mut asked = Vec::new();
        let mut write = |data: &[u8], at: Option<u64>| {
            h.write_published(slot, data, at, |end| {
                asked.push(end);
                Ok(end + 100)
            })
            .unwrap()
        };
        write(&[0; 10], None);
        write(&[0; 10], None);
        write(&[0; 90], Some(20));
        write(&[0; 10], Some(200));
        assert_eq!(asked, [10, 210]);
        assert_eq!(h.reserved.load(SeqCst), 310);
        let mut truncated = Vec::new();
        h.truncate_published(slot, 400, |end| {
            truncated.push(end);
            Ok(end)
        })
        .unwrap();
        assert_eq!(truncated, [400]);
    }

    #[test]
    fn the_budget_is_asked_with_the_append_lock_free() {
        let (table, file) = setup();
        let slot = table.slot(SLOT).unwrap();
        let h = handle(&file, true, 0);
        // The server may wait for this lock while holding what answering a `Reserve` needs.
        let unlocked = |end| {
            assert_eq!(slot.append_lock.load(SeqCst), 0, "asked under the lock");
            Ok(end)
        };
        h.write_published(slot, b"abc", None, unlocked).unwrap();
        h.write_published(slot, b"de", Some(10), unlocked).unwrap();
        h.truncate_published(slot, 20, unlocked).unwrap();
        assert_eq!(slot.len.load(SeqCst), 20);
    }

    #[test]
    fn an_append_that_finds_the_file_grown_reserves_again() {
        let (table, file) = setup();
        let slot = table.slot(SLOT).unwrap();
        let h = handle(&file, true, 0);
        let mut asked = Vec::new();
        h.write_published(slot, b"abc", None, |end| {
            if asked.is_empty() {
                // Another process appends 100 bytes between the reservation and the lock.
                slot.publish(100);
            }
            asked.push(end);
            Ok(end)
        })
        .unwrap();
        assert_eq!(asked, [3, 103]);
        assert_eq!((slot.len.load(SeqCst), h.pos.load(SeqCst)), (103, 103));
    }

    #[test]
    fn a_grant_never_lowers_the_reserved_end() {
        let (_table, file) = setup();
        let h = handle(&file, false, 500);
        h.reserve(600, |_| Ok(550)).unwrap();
        h.reserve(700, |_| Ok(100)).unwrap();
        assert_eq!(h.reserved.load(SeqCst), 550);
    }

    #[test]
    fn a_refused_append_writes_and_publishes_nothing() {
        let (table, file) = setup();
        let slot = table.slot(SLOT).unwrap();
        let h = handle(&file, true, 0);
        let full = |_| Err(ClientError::os(libc::ENOSPC, PathBuf::from("f")));
        let err = h.write_published(slot, b"abc", None, full).unwrap_err();
        assert_eq!(err.errno(), libc::ENOSPC);
        let err = h.truncate_published(slot, 10, full).unwrap_err();
        assert_eq!(err.errno(), libc::ENOSPC);
        assert_eq!(sizes_and_lock(slot, &file), (0, 0, 0));
        assert_eq!(h.pos.load(SeqCst), 0);
        // The next append starts where the refused one would have.
        h.write_published(slot, b"de", None, Ok).unwrap();
        assert_eq!(slot.len.load(SeqCst), 2);
    }

    #[test]
    fn recycled_memory_never_shows_through_a_seek_or_a_truncation() {
        let (table, file) = setup();
        let slot = table.slot(SLOT).unwrap();
        // The memory object held 8 KiB of another file.
        file.write_all_at(&[0xEE; 8192], 0).unwrap();
        slot.start_file(0, 8192);
        let h = handle(&file, false, u64::MAX);
        h.write_published(slot, b"head", None, no_budget).unwrap();
        h.write_published(slot, b"tail", Some(1000), no_budget)
            .unwrap();
        h.truncate_published(slot, 3000, no_budget).unwrap();
        let mut bytes = vec![0; 3000];
        file.read_exact_at(&mut bytes, 0).unwrap();
        assert_eq!(
            (&bytes[..4], &bytes[1000..1004]),
            (&b"head"[..], &b"tail"[..])
        );
        assert!(bytes[4..1000].iter().chain(&bytes[1004..]).all(|b| *b == 0));
        assert_eq!(slot.len.load(SeqCst), 3000);
        // Cut back and grown again: nothing of the old bytes comes back.
        h.truncate_published(slot, 2000, no_budget).unwrap();
        h.truncate_published(slot, 8192, no_budget).unwrap();
        let mut rest = vec![1; 8192 - 2000];
        file.read_exact_at(&mut rest, 2000).unwrap();
        assert!(rest.iter().all(|b| *b == 0));
    }

    #[test]
    fn long_writes_into_recycled_memory_go_through_a_mapping_and_read_back_exactly() {
        let (table, file) = setup();
        let slot = table.slot(SLOT).unwrap();
        file.write_all_at(&vec![0xEE; 4 << 20], 0).unwrap();
        slot.start_file(0, 4 << 20);
        let h = handle(&file, false, u64::MAX);
        let block: Vec<u8> = (0..MAPPED_WRITE_MIN * 2).map(|i| i as u8).collect();
        h.write_published(slot, &block, None, no_budget).unwrap();
        assert!(h.map.get().is_some(), "mapped");
        // Past a gap and past the recycled end (written with pwrite there): all exact.
        h.write_published(slot, &block, Some(3 << 20), no_budget)
            .unwrap();
        h.write_published(slot, &block, Some((4 << 20) - 100), no_budget)
            .unwrap();
        let end = (4 << 20) - 100 + block.len();
        let mut all = vec![0; end];
        file.read_exact_at(&mut all, 0).unwrap();
        assert_eq!(&all[..block.len()], &block[..]);
        assert!(all[block.len()..3 << 20].iter().all(|b| *b == 0));
        assert_eq!(&all[(4 << 20) - 100..], &block[..]);
        assert_eq!(slot.len.load(SeqCst), end as u64);
        assert_eq!(slot.append_lock.load(SeqCst), 0);
        // A mapped write updates the file's times, as pwrite does.
        let before = file.metadata().unwrap().modified().unwrap();
        std::thread::sleep(Duration::from_millis(20));
        h.write_published(slot, &block, Some(0), no_budget).unwrap();
        assert!(file.metadata().unwrap().modified().unwrap() > before);
        // Cut under the mapping (as a truncation by another handle would): the next write past
        // the file's end goes through pwrite, never faulting on the mapping.
        h.truncate_published(slot, 1000, no_budget).unwrap();
        h.write_published(slot, &block, Some(2 << 20), no_budget)
            .unwrap();
        let mut again = vec![0; block.len()];
        file.read_exact_at(&mut again, 2 << 20).unwrap();
        assert_eq!(again, block);
    }

    #[test]
    fn a_write_whose_end_overflows_is_einval_before_asking() {
        let (table, file) = setup();
        let h = handle(&file, false, 0);
        let err = h
            .write_published(
                table.slot(SLOT).unwrap(),
                b"ab",
                Some(i64::MAX as u64 - 1),
                no_budget,
            )
            .unwrap_err();
        assert_eq!(err.errno(), libc::EINVAL);
    }

    #[test]
    fn a_ready_read_copies_what_the_wait_found_and_no_more() {
        let (table, file) = setup();
        let h = handle(&file, false, u64::MAX);
        h.write_published(table.slot(SLOT).unwrap(), b"0123456789", Some(0), no_budget)
            .unwrap();
        let mut buf = [0; 4];
        // Bytes published past the end the wait found are not read: they may not be final.
        assert_eq!(h.read_range(2, 5, &mut buf, false).unwrap(), 3);
        assert_eq!((&buf[..3], h.pos.load(SeqCst)), (&b"234"[..], 0));
        assert_eq!(h.read_range(2, 10, &mut buf, true).unwrap(), 4);
        assert_eq!((&buf, h.pos.load(SeqCst)), (b"2345", 6));
        // Past the end found (end <= offset) a read is the end of the file.
        assert_eq!(h.read_range(7, 5, &mut buf, true).unwrap(), 0);
        assert_eq!(h.pos.load(SeqCst), 7);
    }
}
