//! Framing: the fixed 16-byte header, its checks, and the one frame reader and encoder both ends
//! use. Pure over `Read`; the socket (and the fd that rides with a reply) stays with the caller.

use super::request::{ReplyBody, Request};
use bytemuck::{Pod, Zeroable};
use std::io::{self, Read};

pub const MAGIC: u32 = u32::from_le_bytes(*b"CPIO");
/// Bumped whenever a message layout changes; exchanged in `Hello`.
pub const PROTOCOL_VERSION: u16 = 8;
/// Hard cap on a frame body, checked before anything is allocated.
pub const MAX_BODY: u32 = 16 << 20;
/// Replies carry the request kind with this bit set.
pub const REPLY_BIT: u16 = 0x8000;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct Header {
    pub magic: u32,
    pub version: u16,
    pub kind: u16,
    pub len: u32,
    pub reserved: u32,
}

pub const HEADER_LEN: usize = size_of::<Header>();

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("bad frame magic {0:#x}")]
    BadMagic(u32),
    #[error("protocol version {0} is not supported (expected {PROTOCOL_VERSION})")]
    BadVersion(u16),
    #[error("unknown message kind {0}")]
    UnknownKind(u16),
    #[error("unknown {what} {value}")]
    UnknownValue { what: &'static str, value: u32 },
    #[error("frame body of {0} bytes exceeds the {MAX_BODY}-byte limit")]
    TooLarge(u32),
    #[error("message body of {got} bytes is shorter than its {need}-byte fixed part")]
    Truncated { need: usize, got: usize },
    #[error("peer closed the connection")]
    Eof,
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl Header {
    pub fn new(kind: u16, len: usize) -> Result<Header, WireError> {
        let len = u32::try_from(len).map_err(|_| WireError::TooLarge(u32::MAX))?;
        if len > MAX_BODY {
            return Err(WireError::TooLarge(len));
        }
        Ok(Header {
            magic: MAGIC,
            version: PROTOCOL_VERSION,
            kind,
            len,
            reserved: 0,
        })
    }

    /// Validate a received header before its body is read or allocated.
    pub fn check(&self) -> Result<(), WireError> {
        if self.magic != MAGIC {
            return Err(WireError::BadMagic(self.magic));
        }
        if self.version != PROTOCOL_VERSION {
            return Err(WireError::BadVersion(self.version));
        }
        if self.len > MAX_BODY {
            return Err(WireError::TooLarge(self.len));
        }
        Ok(())
    }
}

/// Serialise one frame: header, fixed body, trailing bytes. Raw: the typed ends use
/// [`encode_request`] and [`encode_reply`]; the fuzzer uses this to build frames that lie.
pub fn encode<T: Pod>(kind: u16, fixed: &T, tail: &[u8]) -> Result<Vec<u8>, WireError> {
    let fixed = bytemuck::bytes_of(fixed);
    let header = Header::new(kind, fixed.len() + tail.len())?;
    let mut out = Vec::with_capacity(HEADER_LEN + fixed.len() + tail.len());
    out.extend_from_slice(bytemuck::bytes_of(&header));
    out.extend_from_slice(fixed);
    out.extend_from_slice(tail);
    Ok(out)
}

/// A request frame: its kind comes from its type.
pub fn encode_request<R: Request>(req: &R, tail: &[u8]) -> Result<Vec<u8>, WireError> {
    encode(R::KIND.code(), req, tail)
}

/// The reply frame to a request of type `R`: only `R::Reply` can be sent back.
pub fn encode_reply<R: Request>(reply: &R::Reply, tail: &[u8]) -> Result<Vec<u8>, WireError>
where
    R::Reply: ReplyBody,
{
    encode(R::KIND.reply_code(), reply, tail)
}

/// Split a body into its fixed POD part and the trailing bytes.
pub fn decode<T: Pod>(body: &[u8]) -> Result<(T, &[u8]), WireError> {
    let need = size_of::<T>();
    if body.len() < need {
        return Err(WireError::Truncated {
            need,
            got: body.len(),
        });
    }
    let (fixed, tail) = body.split_at(need);
    Ok((bytemuck::pod_read_unaligned(fixed), tail))
}

/// Read one whole frame (header checked before the body is allocated). The peer closing before
/// the first byte (EOF, or a reset) is `WireError::Eof`; inside the frame it is an I/O error.
pub fn read_frame(r: &mut impl Read) -> Result<(Header, Vec<u8>), WireError> {
    let mut raw = [0u8; HEADER_LEN];
    read_exact_or_eof(r, &mut raw)?;
    let header: Header = bytemuck::pod_read_unaligned(&raw);
    header.check()?;
    let mut body = vec![0u8; header.len as usize];
    r.read_exact(&mut body)?;
    Ok((header, body))
}

/// Like `read_exact`, but the peer closing before the first byte is `WireError::Eof`: a reset
/// there (it closed with a request of ours unread) ends the connection as cleanly as an EOF.
fn read_exact_or_eof(r: &mut impl Read, buf: &mut [u8]) -> Result<(), WireError> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) if got == 0 => return Err(WireError::Eof),
            Err(e) if got == 0 && e.kind() == io::ErrorKind::ConnectionReset => {
                return Err(WireError::Eof);
            }
            Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
