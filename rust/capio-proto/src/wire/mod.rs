//! Control-plane messages: a fixed 16-byte header followed by a POD body and, for most requests,
//! a trailing path. Encoding and decoding are pure; the one piece of socket I/O here is `socket`,
//! where the client receives a reply and the fd riding on it (the server reads requests with
//! `read_frame` from its buffered connection, and both ends send through `sys::send_with_fd`).
//!
//! `frame`: header, checks, the one frame reader; `enums`: kinds and the other closed value sets;
//! `messages`: the bodies; `request`: which reply answers which request; `socket`: receiving a
//! frame and its fd; `stat`: what a stat reports.

mod enums;
mod frame;
mod messages;
mod request;
mod socket;
mod stat;
#[cfg(test)]
mod tests;

pub use enums::{EntryKind, Fire, Kind, NodeKind, OpenKind};
pub use frame::{
    HEADER_LEN, Header, MAGIC, MAX_BODY, PROTOCOL_VERSION, REPLY_BIT, WireError, decode, encode,
    encode_reply, encode_request, read_frame,
};
pub use messages::*;
pub use request::{
    ListReq, LstatReq, NoReply, ReplyBody, Request, RmdirReq, ShutdownReq, StatReq, StatusReq,
    UnlinkReq,
};
pub use socket::recv_frame;
pub use stat::{Inode, NodeStat, StatReply, nanos, reported_identity};
