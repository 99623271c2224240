//! One control connection to the server: framed requests, replies that may carry an fd.
//! Requests from all threads of a process share it under a mutex; the server never blocks a
//! request, so the lock is only held for one round trip.

use crate::error::{ClientError, Result};
use capio_proto::{HEADER_LEN, Header, Kind, REPLY_BIT, sys, wire};
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;

/// How long `receive` checks for a reply before blocking.
const REPLY_SPIN: std::time::Duration = std::time::Duration::from_micros(40);

pub struct Conn {
    stream: UnixStream,
    workflow: String,
}

pub struct Reply {
    pub body: Vec<u8>,
    pub fd: Option<OwnedFd>,
}

impl Conn {
    pub fn new(stream: UnixStream, workflow: &str) -> Conn {
        Conn {
            stream,
            workflow: workflow.to_owned(),
        }
    }

    /// A second handle on the socket, used to notice the server's death while waiting.
    pub fn probe(&self) -> std::io::Result<UnixStream> {
        self.stream.try_clone()
    }

    fn gone(&self) -> ClientError {
        ClientError::ServerGone(self.workflow.clone())
    }

    /// Send a request that gets no reply (`Close`).
    pub fn send<T: bytemuck::Pod>(&mut self, kind: Kind, fixed: &T, tail: &[u8]) -> Result<()> {
        let frame = wire::encode(kind as u16, fixed, tail)?;
        sys::send_with_fd(&self.stream, &frame, None).map_err(|_| self.gone())
    }

    /// One round trip.
    pub fn call<T: bytemuck::Pod>(&mut self, kind: Kind, fixed: &T, tail: &[u8]) -> Result<Reply> {
        self.send(kind, fixed, tail)?;
        self.receive(kind)
    }

    fn receive(&mut self, kind: Kind) -> Result<Reply> {
        // Most replies come within tens of microseconds: checking for a short while before
        // sleeping in recv saves a sleep and a wake-up per request.
        let start = std::time::Instant::now();
        while start.elapsed() < REPLY_SPIN
            && !sys::poll_readable(self.stream.as_fd(), std::time::Duration::ZERO).unwrap_or(true)
        {
            std::thread::yield_now();
        }
        let mut raw = [0u8; HEADER_LEN];
        let mut got = 0;
        let mut fd = None;
        while got < HEADER_LEN {
            let (n, f) =
                sys::recv_with_fd(&self.stream, &mut raw[got..]).map_err(|_| self.gone())?;
            if n == 0 {
                return Err(self.gone());
            }
            got += n;
            fd = fd.or(f);
        }
        let header: Header = bytemuck::pod_read_unaligned(&raw);
        header.check()?;
        if header.kind != kind as u16 | REPLY_BIT {
            return Err(wire::WireError::UnknownKind(header.kind).into());
        }
        let mut body = vec![0u8; header.len as usize];
        self.stream.read_exact(&mut body).map_err(|_| self.gone())?;
        Ok(Reply { body, fd })
    }
}

/// Decode a reply's fixed part and turn a negative status into an error about `path`.
pub fn status_of<'a, T: bytemuck::Pod>(
    body: &'a [u8],
    status: impl Fn(&T) -> i32,
    path: &std::path::Path,
) -> Result<(T, &'a [u8])> {
    let (fixed, tail) = wire::decode::<T>(body)?;
    let s = status(&fixed);
    if s < 0 {
        return Err(ClientError::os(-s, path.to_path_buf()));
    }
    Ok((fixed, tail))
}
