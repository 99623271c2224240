//! The data path of an open fd: read, write (appends under the file's append lock, writes
//! within the memory budget's reservation), seek, tell and truncate. No server round trip unless a
//! write crosses its reserved end.

use crate::conn::status_of;
use crate::error::{ClientError, Result};
use capio_proto::{Kind, ReserveReply, ReserveReq};
use std::os::fd::RawFd;
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering::SeqCst;

use super::{Client, Handle};

impl Client {
    /// Make sure the memory budget holds `h`'s file up to `end` before bytes go there. Costs one
    /// atomic load unless the write crosses the end granted last (then one round trip, which
    /// grants headroom beyond `end`).
    fn reserve(&self, h: &Handle, slot: u32, end: u64) -> Result<()> {
        if end <= h.reserved.load(SeqCst) {
            return Ok(());
        }
        let req = ReserveReq { slot, _pad: 0, end };
        let reply = self.conn().call(Kind::Reserve, &req, &[])?;
        let (r, _) = status_of::<ReserveReply>(&reply.body, |r| r.status, &h.path)?;
        h.reserved.fetch_max(r.granted, SeqCst);
        Ok(())
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
        let h = self.handle(fd)?;
        if !h.readable {
            return Err(ClientError::os(libc::EBADF, None));
        }
        let off = offset.unwrap_or_else(|| h.pos.load(SeqCst));
        if buf.is_empty() {
            return Ok(0);
        }
        let end = self.readable_end(&h, off, interrupt)?;
        let want = end.saturating_sub(off).min(buf.len() as u64) as usize;
        let mut got = 0;
        while got < want {
            match h.file.read_at(&mut buf[got..want], off + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ClientError::from_io(e, h.path.clone())),
            }
        }
        if offset.is_none() {
            h.pos.store(off + got as u64, SeqCst);
        }
        Ok(got)
    }

    /// Write all of `data` at `offset`, or at the position (the end, with O_APPEND) when None.
    pub fn write(&self, fd: RawFd, data: &[u8], offset: Option<u64>) -> Result<usize> {
        let h = self.handle(fd)?;
        if !h.writable {
            return Err(ClientError::os(libc::EBADF, None));
        }
        let slot = match h.slot {
            Some(i) => self.slot(i)?,
            None => return Err(ClientError::os(libc::EBADF, None)),
        };
        // An append finds the end, writes and publishes under the file's append lock: two
        // processes appending, or one appending while another truncates, never write at a stale
        // end. A failed append publishes nothing, so the next one starts where this one did.
        let appending = offset.is_none() && h.append;
        let _append_lock = appending.then(|| slot.lock_appends());
        let off = match offset {
            Some(o) => o,
            None if appending => slot.len.load(SeqCst),
            None => h.pos.load(SeqCst),
        };
        let end = off
            .checked_add(data.len() as u64)
            .ok_or_else(|| ClientError::os(libc::EFBIG, h.path.clone()))?;
        if let Some(index) = h.slot {
            self.reserve(&h, index, end)?;
        }
        h.file
            .write_all_at(data, off)
            .map_err(|e| ClientError::from_io(e, h.path.clone()))?;
        slot.publish(end);
        if offset.is_none() {
            h.pos.store(end, SeqCst);
        }
        Ok(data.len())
    }

    fn current_size(&self, h: &Handle) -> Result<u64> {
        match h.slot {
            Some(i) => Ok(self.slot(i)?.len.load(SeqCst)),
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

    pub fn tell(&self, fd: RawFd) -> Result<u64> {
        Ok(self.handle(fd)?.pos.load(SeqCst))
    }

    pub fn truncate(&self, fd: RawFd, size: u64) -> Result<()> {
        let h = self.handle(fd)?;
        let (index, slot) = match h.slot {
            Some(i) if h.writable => (i, self.slot(i)?),
            _ => return Err(ClientError::os(libc::EINVAL, None)),
        };
        self.reserve(&h, index, size)?;
        let _append_lock = slot.lock_appends();
        h.file
            .set_len(size)
            .map_err(|e| ClientError::from_io(e, h.path.clone()))?;
        slot.reset_len(size);
        slot.bump();
        Ok(())
    }
}
