//! What one node's server tells another over MPI: a fixed header (magic, version, kind, payload
//! length) and the payload. Decoding checks the header before trusting the payload, as the control
//! socket's frames do; a message from a server of another pycapio version is refused by its
//! version, not misread.

use bytemuck::{Pod, Zeroable};
use thiserror::Error;

const MAGIC: u32 = u32::from_le_bytes(*b"CPnd");
/// Bumped whenever a message's layout or meaning changes.
pub const CLUSTER_VERSION: u16 = 1;

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct Header {
    magic: u32,
    version: u16,
    kind: u16,
    len: u64,
}

/// One message between node servers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// The sender is shutting down (and so must every node: the namespace spans them all); the
    /// text says why. Every server sends it once to every other, whoever started the shutdown.
    Stop { why: String },
    /// The sender's server has finished its shutdown (persisted what it must). A node leaves MPI
    /// only once every node said so: then nothing is in flight, and the first node's mark of the
    /// CAPIO directory goes only when no node still works.
    Done,
    /// The sender is still shutting down (persisting, perhaps for long): sent every few seconds
    /// between `Stop` and `Done`, so that a slow node is told from a dead or hung one.
    Working,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum MessageError {
    #[error("shorter than a message header ({0} bytes)")]
    Short(usize),
    #[error("not a pycapio node message")]
    Magic,
    #[error("node message version {0}, this server speaks {CLUSTER_VERSION}")]
    Version(u16),
    #[error("unknown node message kind {0}")]
    Kind(u16),
    #[error("payload of {got} bytes where the header says {said}")]
    Length { said: u64, got: usize },
    #[error("payload is not UTF-8")]
    Text,
}

const STOP: u16 = 1;
const DONE: u16 = 2;
const WORKING: u16 = 3;

impl Message {
    pub fn encode(&self) -> Vec<u8> {
        let (kind, payload) = match self {
            Message::Stop { why } => (STOP, why.as_bytes()),
            Message::Done => (DONE, &[][..]),
            Message::Working => (WORKING, &[][..]),
        };
        let header = Header {
            magic: MAGIC,
            version: CLUSTER_VERSION,
            kind,
            len: payload.len() as u64,
        };
        let mut bytes = Vec::with_capacity(size_of::<Header>() + payload.len());
        bytes.extend_from_slice(bytemuck::bytes_of(&header));
        bytes.extend_from_slice(payload);
        bytes
    }

    pub fn decode(bytes: &[u8]) -> Result<Message, MessageError> {
        let (head, payload) = bytes
            .split_at_checked(size_of::<Header>())
            .ok_or(MessageError::Short(bytes.len()))?;
        let header: Header = bytemuck::pod_read_unaligned(head);
        if header.magic != MAGIC {
            return Err(MessageError::Magic);
        }
        if header.version != CLUSTER_VERSION {
            return Err(MessageError::Version(header.version));
        }
        if header.len != payload.len() as u64 {
            return Err(MessageError::Length {
                said: header.len,
                got: payload.len(),
            });
        }
        match header.kind {
            STOP => Ok(Message::Stop {
                why: String::from_utf8(payload.to_vec()).map_err(|_| MessageError::Text)?,
            }),
            DONE if payload.is_empty() => Ok(Message::Done),
            WORKING if payload.is_empty() => Ok(Message::Working),
            DONE | WORKING => Err(MessageError::Length {
                said: 0,
                got: payload.len(),
            }),
            other => Err(MessageError::Kind(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_survives_its_encoding() {
        let m = Message::Stop {
            why: "node 2 (host-b): Shutdown request".into(),
        };
        assert_eq!(Message::decode(&m.encode()), Ok(m));
        for m in [Message::Done, Message::Working] {
            assert_eq!(Message::decode(&m.encode()), Ok(m));
        }
    }

    #[test]
    fn a_malformed_message_is_refused_by_its_header() {
        let good = Message::Stop { why: "x".into() }.encode();
        assert_eq!(Message::decode(&good[..3]), Err(MessageError::Short(3)));
        let mut bad = good.clone();
        bad[0] ^= 1;
        assert_eq!(Message::decode(&bad), Err(MessageError::Magic));
        let mut bad = good.clone();
        bad[4] = 9;
        assert_eq!(Message::decode(&bad), Err(MessageError::Version(9)));
        let mut bad = good.clone();
        bad[6] = 77;
        assert_eq!(Message::decode(&bad), Err(MessageError::Kind(77)));
        let mut bad = good.clone();
        bad.push(b'y');
        assert_eq!(
            Message::decode(&bad),
            Err(MessageError::Length { said: 1, got: 2 })
        );
        let mut bad = good;
        *bad.last_mut().unwrap() = 0xff;
        assert_eq!(Message::decode(&bad), Err(MessageError::Text));
    }
}
