//! Receiving a frame over a Unix socket, where a reply may carry an fd (`SCM_RIGHTS`) on its
//! first bytes. (Sending is `encode_*` then `sys::send_with_fd`.)

use super::frame::{Header, WireError, read_frame};
use crate::sys;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;

/// Receive one whole frame and the fd that came with it, through [`read_frame`] (so the same
/// checks run before the body is allocated).
pub fn recv_frame(stream: &UnixStream) -> Result<(Header, Vec<u8>, Option<OwnedFd>), WireError> {
    let mut reader = FdReader { stream, fd: None };
    let (header, body) = read_frame(&mut reader)?;
    Ok((header, body, reader.fd))
}

/// Reads with `recvmsg`, keeping the first fd that arrives.
struct FdReader<'a> {
    stream: &'a UnixStream,
    fd: Option<OwnedFd>,
}

impl Read for FdReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let (n, fd) = sys::recv_with_fd(self.stream, buf)?;
        if self.fd.is_none() {
            self.fd = fd;
        }
        Ok(n)
    }
}
