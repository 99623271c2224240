//! Waiting on the shared state table: one bounded futex sleep with the liveness, signal and
//! deadline checks, and the read-side wait for data per the file's fire rule.

use crate::error::{ClientError, Result};
use capio_proto::{Slot, SlotState, fire, sys};
use std::os::fd::RawFd;
use std::path::Path;
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

use super::{Client, Handle};

/// How long one futex sleep lasts before the waiter checks that the server is alive and that no
/// signal handler wants to run. Wake-ups for data never depend on it.
const WAIT_SLICE: Duration = Duration::from_millis(250);

/// What a waiter for a missing path waits for: its timeout is `ENOENT`, not `ETIMEDOUT`.
pub(super) const TO_BE_CREATED: &str = "to be created";

impl Client {
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.settings.wait_timeout.map(|t| Instant::now() + t)
    }

    /// One bounded sleep on `slot` while its word still equals `seen`, with the liveness, signal
    /// and deadline checks every waiter needs.
    pub(super) fn sleep_on(
        &self,
        slot: &Slot,
        seen: u32,
        deadline: Option<Instant>,
        path: &Path,
        what: &'static str,
        interrupt: &mut dyn FnMut() -> bool,
    ) -> Result<()> {
        let slice = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    let secs = self.settings.wait_timeout.map_or(0.0, |t| t.as_secs_f64());
                    if what == TO_BE_CREATED {
                        return Err(ClientError::NeverCreated {
                            path: path.to_path_buf(),
                            secs,
                        });
                    }
                    return Err(ClientError::Timeout {
                        path: path.to_path_buf(),
                        what,
                        secs,
                    });
                }
                left.min(WAIT_SLICE)
            }
            None => WAIT_SLICE,
        };
        let woke = slot.wait(seen, Some(slice));
        if woke != sys::Wake::Changed {
            if !interrupt() {
                return Err(ClientError::Interrupted);
            }
            if sys::peer_hung_up(&self.probe) {
                return Err(ClientError::ServerGone(self.settings.workflow.clone()));
            }
        }
        Ok(())
    }

    /// The end of the bytes `h` may read now at `off`: waits per the fire rule unless the caller
    /// produces the file.
    pub(super) fn readable_end(
        &self,
        h: &Handle,
        off: u64,
        interrupt: &mut dyn FnMut() -> bool,
    ) -> Result<u64> {
        let Some(index) = h.slot else {
            return Ok(h
                .file
                .metadata()
                .map_err(|e| ClientError::from_io(e, h.path.clone()))?
                .len());
        };
        let slot = self.slot(index)?;
        let deadline = self.deadline();
        loop {
            let seen = slot.seq.load(SeqCst);
            let len = slot.len.load(SeqCst);
            match slot.state() {
                _ if h.producer => return Ok(len),
                SlotState::Committed => return Ok(len),
                SlotState::Aborted => {
                    return Err(ClientError::ProducerDied {
                        path: h.path.clone(),
                    });
                }
                _ if h.fire == fire::NO_UPDATE && len > off => return Ok(len),
                _ => {}
            }
            let what = if h.fire == fire::NO_UPDATE {
                "to have more data"
            } else {
                "to be committed"
            };
            self.sleep_on(slot, seen, deadline, &h.path, what, interrupt)?;
        }
    }

    /// Wait, per the fire rule, until `want` bytes from `offset` (the fd's position when None) can
    /// be read, or until the file's end is final (committed, or the caller produces it) when they
    /// never will; `want == None` waits for the final end. Returns `(offset, end)`: the bytes in
    /// `offset..end` are readable now (`end < offset` past the end of the file). Lets callers size
    /// a buffer exactly (a whole-file read) or map a committed range.
    pub fn readable(
        &self,
        fd: RawFd,
        offset: Option<u64>,
        want: Option<u64>,
        interrupt: &mut dyn FnMut() -> bool,
    ) -> Result<(u64, u64)> {
        let h = self.handle(fd)?;
        if !h.readable {
            return Err(ClientError::os(libc::EBADF, None));
        }
        let off = offset.unwrap_or_else(|| h.pos.load(SeqCst));
        let target = want.map(|w| off.saturating_add(w));
        if target == Some(off) {
            return Ok((off, off));
        }
        let mut cur = off;
        loop {
            let end = self.readable_end(&h, cur, interrupt)?;
            // `readable_end` returns at or before `cur` only when no more bytes will come.
            if end <= cur || target.is_some_and(|t| end >= t) {
                return Ok((off, end));
            }
            cur = end;
        }
    }
}
