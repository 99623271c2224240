//! One control connection to the server: typed requests, replies that may carry an fd.
//! Requests from all threads of a process share it under a mutex; the server never blocks a
//! request, so the lock is only held for one round trip.

use crate::error::{ClientError, Result};
use capio_proto::{
    NoReply, ReplyBody, Request, WireError, decode, encode_request, recv_frame, sys,
};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

/// How long `receive` checks for a reply before blocking.
const REPLY_SPIN: std::time::Duration = std::time::Duration::from_micros(40);

pub struct Conn {
    stream: UnixStream,
    workflow: String,
}

/// A reply: its fixed part `T` (the request's `Reply` type), its tail, and the fd it carried.
pub struct Reply<T> {
    pub fixed: T,
    body: Vec<u8>,
    pub fd: Option<OwnedFd>,
}

impl<T: ReplyBody> Reply<T> {
    /// The reply, or its negative status as an error about `path`.
    pub fn check(self, path: &Path) -> Result<Reply<T>> {
        match self.fixed.status() {
            s if s < 0 => Err(ClientError::os(-s, path.to_path_buf())),
            _ => Ok(self),
        }
    }

    /// The bytes after the fixed part.
    pub fn tail(&self) -> &[u8] {
        &self.body[size_of::<T>()..]
    }
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
    pub fn send<R: Request<Reply = NoReply>>(&mut self, req: &R, tail: &[u8]) -> Result<()> {
        self.write(req, tail)
    }

    /// One round trip; the reply is `R`'s reply type.
    pub fn call<R: Request>(&mut self, req: &R, tail: &[u8]) -> Result<Reply<R::Reply>>
    where
        R::Reply: ReplyBody,
    {
        self.write(req, tail)?;
        self.receive::<R>()
    }

    fn write<R: Request>(&mut self, req: &R, tail: &[u8]) -> Result<()> {
        let frame = encode_request(req, tail)?;
        sys::send_with_fd(&self.stream, &frame, None).map_err(|_| self.gone())
    }

    fn receive<R: Request>(&mut self) -> Result<Reply<R::Reply>>
    where
        R::Reply: ReplyBody,
    {
        // Most replies come within tens of microseconds: checking for a short while before
        // sleeping in recv saves a sleep and a wake-up per request.
        let start = std::time::Instant::now();
        while start.elapsed() < REPLY_SPIN
            && !sys::poll_readable(self.stream.as_fd(), std::time::Duration::ZERO).unwrap_or(true)
        {
            std::thread::yield_now();
        }
        let (header, body, fd) = match recv_frame(&self.stream) {
            Ok(frame) => frame,
            Err(WireError::Eof | WireError::Io(_)) => return Err(self.gone()),
            Err(e) => return Err(e.into()),
        };
        if header.kind != R::KIND.reply_code() {
            return Err(WireError::UnknownKind(header.kind).into());
        }
        let (fixed, _) = decode::<R::Reply>(&body)?;
        Ok(Reply { fixed, body, fd })
    }
}
