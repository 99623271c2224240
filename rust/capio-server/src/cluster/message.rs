//! What one node's server tells another over MPI: a fixed header (magic, version, kind, payload
//! length) and the payload. Decoding checks the header before trusting the payload, as the control
//! socket's frames do; a message from a server of another pycapio version is refused by its
//! version, not misread.

use crate::namespace::Created;
use bytemuck::{Pod, Zeroable};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use thiserror::Error;

const MAGIC: u32 = u32::from_le_bytes(*b"CPnd");
/// Bumped whenever a message's layout or meaning changes.
pub const CLUSTER_VERSION: u16 = 3;

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct Header {
    magic: u32,
    version: u16,
    kind: u16,
    len: u64,
}

/// One message between node servers. Paths travel as raw bytes (they are the same on every node:
/// the CAPIO directory is on the shared file system).
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
    /// A file was created on the sender, which writes it.
    Created(Created),
    /// A file written on the sender changed state (`SlotState` as a number), `len` bytes long,
    /// in round `round`.
    State {
        path: PathBuf,
        state: u32,
        len: u64,
        round: u32,
    },
    /// A file written on the sender is gone.
    Removed { path: PathBuf },
    /// A file written on the sender was renamed.
    Renamed { from: PathBuf, to: PathBuf },
    /// The sender's apps: those with live clients, and those whose clients all terminated.
    Apps {
        live: Vec<String>,
        ended: Vec<String>,
    },
    /// Send the bytes of file number `serial` of node `writer` (written or kept on the
    /// receiver; `path` for logs) from `from` on, as they are written, then seal fetch `id`.
    Fetch {
        id: u64,
        writer: u64,
        serial: u64,
        round: u32,
        path: PathBuf,
        from: u64,
    },
    /// A client on the sender unlinked `path`, written on the receiver.
    Unlink { path: PathBuf },
    /// `len` bytes of fetch `id` at `offset`: the bytes themselves are the sender's next message
    /// on the data tag.
    Data { id: u64, offset: u64, len: u64 },
    /// Fetch `id` is over: the file is in `state`, `len` bytes long, in round `round`.
    Seal {
        id: u64,
        state: u32,
        len: u64,
        round: u32,
    },
    /// May the sender create `path` exclusively? Sent to the node that arbitrates the path.
    Claim { id: u64, path: PathBuf },
    /// The answer to claim `id`.
    Claimed { id: u64, granted: bool },
    /// A claim the sender was granted is given up (its create failed).
    Release { path: PathBuf },
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
    #[error("payload ends inside a field")]
    Truncated,
}

const STOP: u16 = 1;
const DONE: u16 = 2;
const WORKING: u16 = 3;
const CREATED: u16 = 4;
const STATE: u16 = 5;
const REMOVED: u16 = 6;
const RENAMED: u16 = 7;
const APPS: u16 = 8;
const FETCH: u16 = 9;
const UNLINK: u16 = 10;
const DATA: u16 = 11;
const SEAL: u16 = 12;
const CLAIM: u16 = 13;
const CLAIMED: u16 = 14;
const RELEASE: u16 = 15;

/// Builds a payload: numbers little-endian, byte strings and lists prefixed by their length.
#[derive(Default)]
struct Writer(Vec<u8>);

impl Writer {
    fn num(mut self, n: u64) -> Self {
        self.0.extend_from_slice(&n.to_le_bytes());
        self
    }

    fn bytes(self, b: &[u8]) -> Self {
        let mut w = self.num(b.len() as u64);
        w.0.extend_from_slice(b);
        w
    }

    fn path(self, p: &Path) -> Self {
        self.bytes(p.as_os_str().as_bytes())
    }

    fn names(self, names: &[String]) -> Self {
        names
            .iter()
            .fold(self.num(names.len() as u64), |w, n| w.bytes(n.as_bytes()))
    }
}

/// Reads a payload built by `Writer`, refusing one that ends early or has bytes left over.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn num(&mut self) -> Result<u64, MessageError> {
        let (head, rest) = self
            .0
            .split_first_chunk::<8>()
            .ok_or(MessageError::Truncated)?;
        self.0 = rest;
        Ok(u64::from_le_bytes(*head))
    }

    fn small(&mut self) -> Result<u32, MessageError> {
        u32::try_from(self.num()?).map_err(|_| MessageError::Truncated)
    }

    fn bytes(&mut self) -> Result<&[u8], MessageError> {
        let n = usize::try_from(self.num()?).map_err(|_| MessageError::Truncated)?;
        let (b, rest) = self.0.split_at_checked(n).ok_or(MessageError::Truncated)?;
        self.0 = rest;
        Ok(b)
    }

    fn path(&mut self) -> Result<PathBuf, MessageError> {
        Ok(PathBuf::from(OsStr::from_bytes(self.bytes()?)))
    }

    fn text(&mut self) -> Result<String, MessageError> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| MessageError::Text)
    }

    fn names(&mut self) -> Result<Vec<String>, MessageError> {
        let n = self.num()?;
        // Each name takes at least its 8-byte length: a count beyond that is a lie.
        if n > self.0.len() as u64 / 8 {
            return Err(MessageError::Truncated);
        }
        (0..n).map(|_| self.text()).collect()
    }

    fn end<T>(self, value: T) -> Result<T, MessageError> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(MessageError::Truncated)
        }
    }
}

impl Message {
    pub fn encode(&self) -> Vec<u8> {
        let w = Writer::default();
        let (kind, payload) = match self {
            Message::Stop { why } => (STOP, why.as_bytes().to_vec()),
            Message::Done => (DONE, Vec::new()),
            Message::Working => (WORKING, Vec::new()),
            Message::Created(c) => (
                CREATED,
                w.path(&c.path)
                    .num(u64::from(c.mode))
                    .num(c.home as u64)
                    .num(c.serial)
                    .bytes(c.app.as_bytes())
                    .0,
            ),
            Message::State {
                path,
                state,
                len,
                round,
            } => (
                STATE,
                w.path(path)
                    .num(u64::from(*state))
                    .num(*len)
                    .num(u64::from(*round))
                    .0,
            ),
            Message::Removed { path } => (REMOVED, w.path(path).0),
            Message::Renamed { from, to } => (RENAMED, w.path(from).path(to).0),
            Message::Apps { live, ended } => (APPS, w.names(live).names(ended).0),
            Message::Fetch {
                id,
                writer,
                serial,
                round,
                path,
                from,
            } => (
                FETCH,
                w.num(*id)
                    .num(*writer)
                    .num(*serial)
                    .num(u64::from(*round))
                    .path(path)
                    .num(*from)
                    .0,
            ),
            Message::Unlink { path } => (UNLINK, w.path(path).0),
            Message::Data { id, offset, len } => (DATA, w.num(*id).num(*offset).num(*len).0),
            Message::Seal {
                id,
                state,
                len,
                round,
            } => (
                SEAL,
                w.num(*id)
                    .num(u64::from(*state))
                    .num(*len)
                    .num(u64::from(*round))
                    .0,
            ),
            Message::Claim { id, path } => (CLAIM, w.num(*id).path(path).0),
            Message::Claimed { id, granted } => (CLAIMED, w.num(*id).num(u64::from(*granted)).0),
            Message::Release { path } => (RELEASE, w.path(path).0),
        };
        let header = Header {
            magic: MAGIC,
            version: CLUSTER_VERSION,
            kind,
            len: payload.len() as u64,
        };
        let mut bytes = Vec::with_capacity(size_of::<Header>() + payload.len());
        bytes.extend_from_slice(bytemuck::bytes_of(&header));
        bytes.extend_from_slice(&payload);
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
        let mut r = Reader(payload);
        let message = match header.kind {
            STOP => Message::Stop {
                why: String::from_utf8(payload.to_vec()).map_err(|_| MessageError::Text)?,
            },
            DONE | WORKING if !payload.is_empty() => {
                return Err(MessageError::Length {
                    said: 0,
                    got: payload.len(),
                });
            }
            DONE => Message::Done,
            WORKING => Message::Working,
            CREATED => {
                let path = r.path()?;
                let mode = r.small()?;
                let home = usize::try_from(r.num()?).map_err(|_| MessageError::Truncated)?;
                let serial = r.num()?;
                let app = r.text()?;
                return r.end(Message::Created(Created {
                    path,
                    mode,
                    home,
                    serial,
                    app,
                }));
            }
            STATE => {
                let path = r.path()?;
                let state = r.small()?;
                let len = r.num()?;
                let round = r.small()?;
                return r.end(Message::State {
                    path,
                    state,
                    len,
                    round,
                });
            }
            REMOVED => {
                let path = r.path()?;
                return r.end(Message::Removed { path });
            }
            RENAMED => {
                let from = r.path()?;
                let to = r.path()?;
                return r.end(Message::Renamed { from, to });
            }
            APPS => {
                let live = r.names()?;
                let ended = r.names()?;
                return r.end(Message::Apps { live, ended });
            }
            FETCH => {
                let id = r.num()?;
                let writer = r.num()?;
                let serial = r.num()?;
                let round = r.small()?;
                let path = r.path()?;
                let from = r.num()?;
                return r.end(Message::Fetch {
                    id,
                    writer,
                    serial,
                    round,
                    path,
                    from,
                });
            }
            UNLINK => {
                let path = r.path()?;
                return r.end(Message::Unlink { path });
            }
            DATA => {
                let id = r.num()?;
                let offset = r.num()?;
                let len = r.num()?;
                return r.end(Message::Data { id, offset, len });
            }
            SEAL => {
                let id = r.num()?;
                let state = r.small()?;
                let len = r.num()?;
                let round = r.small()?;
                return r.end(Message::Seal {
                    id,
                    state,
                    len,
                    round,
                });
            }
            CLAIM => {
                let id = r.num()?;
                let path = r.path()?;
                return r.end(Message::Claim { id, path });
            }
            CLAIMED => {
                let id = r.num()?;
                let granted = r.num()? != 0;
                return r.end(Message::Claimed { id, granted });
            }
            RELEASE => {
                let path = r.path()?;
                return r.end(Message::Release { path });
            }
            other => return Err(MessageError::Kind(other)),
        };
        Ok(message)
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
        let every = [
            Message::Done,
            Message::Working,
            Message::Created(Created {
                path: "/capio/a b".into(),
                mode: 0o640,
                home: 2,
                serial: 9,
                app: "writer".into(),
            }),
            Message::State {
                path: "/capio/x".into(),
                state: 2,
                len: 1 << 40,
                round: 3,
            },
            Message::Removed {
                path: "/capio/x".into(),
            },
            Message::Renamed {
                from: "/capio/x.tmp".into(),
                to: "/capio/x".into(),
            },
            Message::Apps {
                live: vec!["reader".into(), "writer".into()],
                ended: vec![],
            },
            Message::Fetch {
                id: 7,
                writer: 1,
                serial: 9,
                round: 2,
                path: "/capio/x".into(),
                from: 4096,
            },
            Message::Unlink {
                path: "/capio/x".into(),
            },
            Message::Data {
                id: 7,
                offset: 1 << 20,
                len: 1 << 20,
            },
            Message::Seal {
                id: 7,
                state: 3,
                len: 12,
                round: 1,
            },
            Message::Claim {
                id: 3,
                path: "/capio/lock".into(),
            },
            Message::Claimed {
                id: 3,
                granted: true,
            },
            Message::Release {
                path: "/capio/lock".into(),
            },
        ];
        for m in every {
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
        // A field cut short, a field too many, and a list count no payload could hold.
        let data = Message::Data {
            id: 1,
            offset: 2,
            len: 3,
        }
        .encode();
        let mut cut = data[..data.len() - 1].to_vec();
        cut[8] -= 1;
        assert_eq!(Message::decode(&cut), Err(MessageError::Truncated));
        let mut long = data.clone();
        long.extend_from_slice(&[0; 8]);
        long[8] += 8;
        assert_eq!(Message::decode(&long), Err(MessageError::Truncated));
        let mut apps = Message::Apps {
            live: vec![],
            ended: vec![],
        }
        .encode();
        apps[16] = 0xff;
        assert_eq!(Message::decode(&apps), Err(MessageError::Truncated));
    }
}
