//! Waiting on the shared state table: one bounded futex sleep with the liveness, signal and
//! deadline checks, and the read-side wait for data per the file's fire rule.

use crate::error::{ClientError, Result};
use capio_proto::{Fire, Slot, SlotState, sys};
use std::os::fd::RawFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

use super::{Client, Handle};

/// How long one futex sleep lasts before the waiter checks that the server is alive and that no
/// signal handler wants to run. Wake-ups for data never depend on it.
const WAIT_SLICE: Duration = Duration::from_millis(250);

/// What a waiter for a missing path waits for: its timeout is `ENOENT`, not `ETIMEDOUT`.
pub(super) const TO_BE_CREATED: &str = "to be created";

/// One operation's waiting: every sleep it makes shares one deadline (`wait_timeout` from the
/// operation's start) and checks the same server probe. Holds no lock, so a test can make one from
/// a socket pair and an in-test state table.
pub(super) struct Waiter<'a> {
    probe: &'a UnixStream,
    workflow: &'a str,
    timeout: Option<Duration>,
    deadline: Option<Instant>,
}

impl<'a> Waiter<'a> {
    fn new(probe: &'a UnixStream, workflow: &'a str, timeout: Option<Duration>) -> Waiter<'a> {
        Waiter {
            probe,
            workflow,
            timeout,
            deadline: timeout.map(|t| Instant::now() + t),
        }
    }

    /// One bounded sleep on `slot` while its word still equals `seen`, with the liveness, signal
    /// and deadline checks every waiter needs.
    pub(super) fn sleep_on(
        &self,
        slot: &Slot,
        seen: u32,
        path: &Path,
        what: &'static str,
        interrupt: &mut dyn FnMut() -> bool,
    ) -> Result<()> {
        let slice = match self.deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    let secs = self.timeout.map_or(0.0, |t| t.as_secs_f64());
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
            if sys::peer_hung_up(self.probe) {
                return Err(ClientError::ServerGone(self.workflow.to_owned()));
            }
        }
        Ok(())
    }

    /// The end of the bytes a reader of `slot` may read now at `off`: waits per the fire rule
    /// unless the reader produces the file.
    fn slot_end(
        &self,
        slot: &Slot,
        reader: Reader,
        off: u64,
        path: &Path,
        interrupt: &mut dyn FnMut() -> bool,
    ) -> Result<u64> {
        loop {
            let seen = slot.seq.load(SeqCst);
            let len = slot.len.load(SeqCst);
            match slot.state() {
                _ if reader.producer => return Ok(len),
                SlotState::Committed => return Ok(len),
                SlotState::Aborted => {
                    return Err(ClientError::ProducerDied {
                        path: path.to_path_buf(),
                    });
                }
                _ if reader.fire == Fire::NoUpdate && len > off => return Ok(len),
                _ => {}
            }
            let what = if reader.fire == Fire::NoUpdate {
                "to have more data"
            } else {
                "to be committed"
            };
            self.sleep_on(slot, seen, path, what, interrupt)?;
        }
    }
}

/// What decides how a handle reads a file in memory: whether it produces it, and the fire rule.
#[derive(Clone, Copy, Debug)]
struct Reader {
    producer: bool,
    fire: Fire,
}

impl Client {
    /// A waiter for one operation; its deadline starts now.
    pub(super) fn waiter(&self) -> Waiter<'_> {
        Waiter::new(
            &self.probe,
            &self.settings.workflow,
            self.settings.wait_timeout,
        )
    }

    /// The end of the bytes `h` may read now at `off`: waits per the fire rule unless the caller
    /// produces the file. Each call starts its own deadline.
    pub(super) fn readable_end(
        &self,
        h: &Handle,
        off: u64,
        interrupt: &mut dyn FnMut() -> bool,
    ) -> Result<u64> {
        let Some(index) = h.slot else {
            if let Some(end) = self.offered_end(h) {
                return Ok(end);
            }
            return Ok(h
                .file
                .metadata()
                .map_err(|e| ClientError::from_io(e, h.path.clone()))?
                .len());
        };
        let slot = self.slot(index)?;
        if h.direct_write && h.producer {
            // Its producer never waits, and reads what its writers wrote so far.
            return h.live_len(slot);
        }
        let reader = Reader {
            producer: h.producer,
            fire: h.fire,
        };
        self.waiter()
            .slot_end(slot, reader, off, &h.path, interrupt)
    }

    /// Wait, per the fire rule, until `want` bytes from `offset` (the fd's position when None) can
    /// be read, or until the file's end is final (committed, or the caller produces it) when they
    /// never will; `want == None` waits for the final end. The result says which bytes are
    /// readable now (`end < offset` past the end of the file), so callers size a buffer exactly (a
    /// whole-file read) or map a committed range, and `read_ready` reads them without waiting
    /// again: one wait per read.
    pub fn wait_readable(
        &self,
        fd: RawFd,
        offset: Option<u64>,
        want: Option<u64>,
        interrupt: &mut dyn FnMut() -> bool,
    ) -> Result<Readable> {
        let (h, off) = self.read_start(fd, offset)?;
        let end = self.wait_for(&h, off, want, interrupt)?;
        Ok(Readable {
            handle: h,
            offset: off,
            end,
            at_position: offset.is_none(),
        })
    }

    /// The handle of a readable fd, and where a read of it starts: `offset`, or its position.
    pub(super) fn read_start(&self, fd: RawFd, offset: Option<u64>) -> Result<(Arc<Handle>, u64)> {
        let h = self.handle(fd)?;
        if !h.readable {
            return Err(ClientError::os(libc::EBADF, None));
        }
        let off = offset.unwrap_or_else(|| h.pos.load(SeqCst));
        Ok((h, off))
    }

    fn wait_for(
        &self,
        h: &Handle,
        off: u64,
        want: Option<u64>,
        interrupt: &mut dyn FnMut() -> bool,
    ) -> Result<u64> {
        let target = want.map(|w| off.saturating_add(w));
        if target == Some(off) {
            return Ok(off);
        }
        let mut cur = off;
        loop {
            let end = self.readable_end(h, cur, interrupt)?;
            // `readable_end` returns at or before `cur` only when no more bytes will come.
            if end <= cur || target.is_some_and(|t| end >= t) {
                return Ok(end);
            }
            cur = end;
        }
    }
}

/// What a wait found readable on an open fd: the bytes `offset..end` (none when `end <= offset`,
/// past the end of the file). `Client::read_ready` reads them without waiting again.
pub struct Readable {
    pub(super) handle: Arc<Handle>,
    pub(super) offset: u64,
    pub(super) end: u64,
    /// The wait started at the fd's position, which the read then advances.
    pub(super) at_position: bool,
}

impl Readable {
    pub fn offset(&self) -> u64 {
        self.offset
    }

    pub fn end(&self) -> u64 {
        self.end
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use capio_proto::StateTable;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    const UPDATE: Reader = Reader {
        producer: false,
        fire: Fire::Update,
    };
    const NO_UPDATE: Reader = Reader {
        producer: false,
        fire: Fire::NoUpdate,
    };
    const PRODUCER: Reader = Reader {
        producer: true,
        fire: Fire::Update,
    };
    const SLOT: u32 = 1;

    /// A state table with one open file of `len` bytes, and both ends of a server probe.
    fn setup(len: u64) -> (Arc<StateTable>, UnixStream, UnixStream) {
        let table = Arc::new(StateTable::create(4).unwrap());
        let slot = table.slot(SLOT).unwrap();
        slot.set_state(SlotState::Open);
        slot.publish(len);
        let (probe, server) = UnixStream::pair().unwrap();
        (table, probe, server)
    }

    fn end(waiter: &Waiter<'_>, slot: &Slot, reader: Reader, off: u64) -> Result<u64> {
        waiter.slot_end(slot, reader, off, Path::new("f"), &mut || true)
    }

    /// Run `f` on the table from another thread after `ms` milliseconds.
    fn later(table: &Arc<StateTable>, ms: u64, f: impl FnOnce(&Slot) + Send + 'static) {
        let t = table.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(ms));
            f(t.slot(SLOT).unwrap());
        });
    }

    #[test]
    fn a_producer_and_a_reader_of_a_committed_file_never_wait() {
        let (table, probe, _server) = setup(5);
        let slot = table.slot(SLOT).unwrap();
        // A deadline already passed: any sleep would fail.
        let w = Waiter::new(&probe, "wf", Some(Duration::ZERO));
        assert_eq!(end(&w, slot, PRODUCER, 0).unwrap(), 5);
        slot.set_state(SlotState::Committed);
        for reader in [UPDATE, NO_UPDATE] {
            assert_eq!(end(&w, slot, reader, 0).unwrap(), 5);
            // Past the end of a committed file the end is final: at or before the offset.
            assert_eq!(end(&w, slot, reader, 9).unwrap(), 5);
        }
    }

    #[test]
    fn an_update_reader_waits_for_the_commit_not_for_data() {
        let (table, probe, _server) = setup(0);
        let committed = Arc::new(AtomicBool::new(false));
        let flag = committed.clone();
        later(&table, 20, move |s| {
            s.publish(10);
            std::thread::sleep(Duration::from_millis(50));
            s.publish(12);
            flag.store(true, Ordering::SeqCst);
            s.set_state(SlotState::Committed);
        });
        let w = Waiter::new(&probe, "wf", Some(Duration::from_secs(10)));
        assert_eq!(end(&w, table.slot(SLOT).unwrap(), UPDATE, 0).unwrap(), 12);
        assert!(committed.load(Ordering::SeqCst));
    }

    #[test]
    fn a_no_update_reader_returns_as_soon_as_data_passes_its_offset() {
        let (table, probe, _server) = setup(4);
        let slot = table.slot(SLOT).unwrap();
        let w = Waiter::new(&probe, "wf", Some(Duration::from_secs(10)));
        assert_eq!(end(&w, slot, NO_UPDATE, 0).unwrap(), 4);
        later(&table, 20, |s| s.publish(9));
        assert_eq!(end(&w, slot, NO_UPDATE, 4).unwrap(), 9);
        assert_eq!(slot.state(), SlotState::Open);
    }

    #[test]
    fn a_producer_that_died_fails_the_waiting_reader() {
        let (table, probe, _server) = setup(3);
        later(&table, 20, |s| s.set_state(SlotState::Aborted));
        let w = Waiter::new(&probe, "wf", None);
        let err = end(&w, table.slot(SLOT).unwrap(), UPDATE, 0).unwrap_err();
        assert!(matches!(&err, ClientError::ProducerDied { path } if path == Path::new("f")));
        assert_eq!(err.errno(), libc::EIO);
    }

    #[test]
    fn the_deadline_ends_a_wait_as_a_timeout_or_as_never_created() {
        let (table, probe, _server) = setup(0);
        let slot = table.slot(SLOT).unwrap();
        for (reader, what) in [
            (UPDATE, "to be committed"),
            (NO_UPDATE, "to have more data"),
        ] {
            let start = Instant::now();
            let w = Waiter::new(&probe, "wf", Some(Duration::from_millis(60)));
            match end(&w, slot, reader, 0) {
                Err(e @ ClientError::Timeout { what: w, .. }) => {
                    assert_eq!((w, e.errno()), (what, libc::ETIMEDOUT));
                }
                other => panic!("{other:?}"),
            }
            assert!(start.elapsed() >= Duration::from_millis(60));
            assert!(start.elapsed() < Duration::from_secs(2));
        }
        // A wait for a path to be created times out as a missing path.
        let w = Waiter::new(&probe, "wf", Some(Duration::ZERO));
        let seen = slot.seq.load(SeqCst);
        let err = w
            .sleep_on(slot, seen, Path::new("f"), TO_BE_CREATED, &mut || true)
            .unwrap_err();
        assert!(matches!(err, ClientError::NeverCreated { .. }));
        assert_eq!(err.errno(), libc::ENOENT);
    }

    #[test]
    fn one_deadline_bounds_every_sleep_of_an_operation() {
        // Wake-ups that do not make the file readable must not restart the timeout.
        let (table, probe, _server) = setup(0);
        let stop = Arc::new(AtomicBool::new(false));
        let (t, halt) = (table.clone(), stop.clone());
        let bumper = std::thread::spawn(move || {
            while !halt.load(Ordering::SeqCst) {
                t.slot(SLOT).unwrap().bump();
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        let start = Instant::now();
        let w = Waiter::new(&probe, "wf", Some(Duration::from_millis(100)));
        let r = end(&w, table.slot(SLOT).unwrap(), UPDATE, 0);
        stop.store(true, Ordering::SeqCst);
        bumper.join().unwrap();
        assert!(matches!(r, Err(ClientError::Timeout { .. })), "{r:?}");
        assert!(start.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn a_signal_handler_that_raises_ends_the_wait() {
        let (table, probe, _server) = setup(0);
        let w = Waiter::new(&probe, "wf", None);
        let mut asked = 0;
        let r = w.slot_end(
            table.slot(SLOT).unwrap(),
            UPDATE,
            0,
            Path::new("f"),
            &mut || {
                asked += 1;
                false
            },
        );
        assert!(matches!(r, Err(ClientError::Interrupted)), "{r:?}");
        assert_eq!(asked, 1);
    }

    #[test]
    fn a_server_that_hung_up_ends_the_wait() {
        let (table, probe, server) = setup(0);
        drop(server);
        let w = Waiter::new(&probe, "my wf", None);
        let err = end(&w, table.slot(SLOT).unwrap(), UPDATE, 0).unwrap_err();
        assert!(
            matches!(&err, ClientError::ServerGone(wf) if wf == "my wf"),
            "{err:?}"
        );
        assert_eq!(err.errno(), libc::ECONNRESET);
    }
}
