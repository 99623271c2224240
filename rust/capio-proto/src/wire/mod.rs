//! Control-plane messages: a fixed 16-byte header followed by a POD body and, for most requests,
//! a trailing path. Encoding and decoding are pure; the socket I/O lives in the server and client.
//!
//! `frame`: header, checks, the one frame reader; `enums`: kinds and the other closed value sets;
//! `messages`: the bodies; `request`: which reply answers which request; `socket`: receiving a
//! frame and its fd.

mod enums;
mod frame;
mod legacy;
mod messages;
mod request;
mod socket;
#[cfg(test)]
mod tests;

pub use enums::{EntryKind, Fire, Kind, NodeKind, OpenKind};
pub use frame::{
    HEADER_LEN, Header, MAGIC, MAX_BODY, PROTOCOL_VERSION, REPLY_BIT, WireError, decode, encode,
    encode_reply, encode_request, read_frame,
};
pub use legacy::{fire, node_kind, open_kind};
pub use messages::*;
pub use request::{
    ListReq, LstatReq, NoReply, ReplyBody, Request, RmdirReq, ShutdownReq, StatReq, StatusReq,
    UnlinkReq,
};
pub use socket::recv_frame;
