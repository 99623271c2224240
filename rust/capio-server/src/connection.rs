//! One client socket, framing only: read whole request frames, send a reply whose fd (if any)
//! rides as `SCM_RIGHTS` on the same `sendmsg` as the reply's first bytes.

use crate::server::WorkGuard;
use capio_proto::{Kind, ReplyBody, Request, WireError, encode_reply, read_frame, sys};
use std::io::{self, BufRead, BufReader};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// How long a connection polls for the next request before blocking on it.
const SPIN: Duration = Duration::from_micros(50);

/// An encoded reply, the fd that travels with it, and the work it completes.
pub struct Reply {
    frame: Vec<u8>,
    fd: Option<OwnedFd>,
    /// Held until the reply is on the wire, so a shutdown cannot exit between a commit and the
    /// reply that reports it.
    _work: Option<WorkGuard>,
}

impl Reply {
    /// The reply to a request of type `R`: its fixed part can only be `R`'s reply type.
    pub fn new<R: Request>(fixed: &R::Reply, tail: &[u8]) -> Result<Reply, WireError>
    where
        R::Reply: ReplyBody,
    {
        Ok(Reply {
            frame: encode_reply::<R>(fixed, tail)?,
            fd: None,
            _work: None,
        })
    }

    pub fn with_fd(mut self, fd: OwnedFd) -> Reply {
        self.fd = Some(fd);
        self
    }

    pub fn holding(mut self, work: Option<WorkGuard>) -> Reply {
        self._work = work;
        self
    }
}

pub struct Connection {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Connection {
    pub fn new(stream: UnixStream) -> io::Result<Connection> {
        let reader = BufReader::new(stream.try_clone()?);
        Ok(Connection { stream, reader })
    }

    /// The next request, or `None` at a clean EOF between frames. A malformed frame is an error:
    /// the caller drops the connection.
    pub fn read_request(&mut self) -> Result<Option<(Kind, Vec<u8>)>, WireError> {
        if self.reader.buffer().is_empty() {
            self.await_briefly();
        }
        match read_frame(&mut self.reader) {
            Ok((header, body)) => Ok(Some((Kind::try_from(header.kind)?, body))),
            Err(WireError::Eof) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A client working through many small files sends its next request within microseconds;
    /// polling for it a little while keeps this thread from going to sleep and being woken (a
    /// wake-up costs more than the request). Then the blocking read takes over.
    fn await_briefly(&mut self) {
        if self.stream.set_nonblocking(true).is_err() {
            return;
        }
        let start = Instant::now();
        loop {
            match self.reader.fill_buf() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && start.elapsed() < SPIN => {
                    std::thread::yield_now();
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // Data, EOF, or an error the blocking read will meet again.
                _ => break,
            }
        }
        // Replies (and the blocking read) need the socket blocking again: a failure here is the
        // connection's end, which the next read or send reports.
        let _ = self.stream.set_nonblocking(false);
    }

    pub fn send(&self, reply: Reply) -> io::Result<()> {
        sys::send_with_fd(
            &self.stream,
            &reply.frame,
            reply.fd.as_ref().map(|f| f.as_fd()),
        )
    }
}
