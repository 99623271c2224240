//! Which reply answers which request: each request type names its kind and its reply's type, so
//! neither end can decode a request as the wrong kind or answer it with the wrong reply.

use super::enums::Kind;
use super::messages::{
    CloseReq, ExitReq, HelloReply, HelloReq, ListReply, MkdirReq, OpenReply, OpenReq, RenameReq,
    ReserveReply, ReserveReq, SetAttrReq, StatReply, StatusReply,
};
use bytemuck::{Pod, Zeroable};

/// A request's fixed part.
pub trait Request: Pod {
    const KIND: Kind;
    /// The fixed part of the reply; [`NoReply`] for a one-way request.
    type Reply;
}

/// A reply's fixed part: every reply leads with a status, 0 or `-errno`.
pub trait ReplyBody: Pod {
    fn status(&self) -> i32;
}

/// The reply of a one-way request (`Close`): there is none, and no value of this type.
pub enum NoReply {}

macro_rules! requests {
    ($($req:ty => $kind:ident, $reply:ty;)+) => {
        $(impl Request for $req {
            const KIND: Kind = Kind::$kind;
            type Reply = $reply;
        })+

        #[cfg(test)]
        /// Every request type's kind, to check each kind has exactly one.
        pub(super) const KINDS: &[Kind] = &[$(<$req as Request>::KIND),+];
    };
}

macro_rules! path_requests {
    ($($(#[$meta:meta])* $name:ident;)+) => {
        $($(#[$meta])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
        pub struct $name {})+
    };
}

path_requests! {
    /// `Stat` body: an empty fixed part; the tail is the path.
    StatReq;
    /// `Lstat` body: an empty fixed part; the tail is the path.
    LstatReq;
    /// `List` body: an empty fixed part; the tail is the directory's path.
    ListReq;
    /// `Unlink` body: an empty fixed part; the tail is the path.
    UnlinkReq;
    /// `Rmdir` body: an empty fixed part; the tail is the path.
    RmdirReq;
    /// `Status` body: empty, no tail.
    StatusReq;
    /// `Shutdown` body: empty, no tail.
    ShutdownReq;
}

requests! {
    HelloReq => Hello, HelloReply;
    OpenReq => Open, OpenReply;
    CloseReq => Close, NoReply;
    StatReq => Stat, StatReply;
    MkdirReq => Mkdir, StatusReply;
    ListReq => List, ListReply;
    ExitReq => Exit, StatusReply;
    ShutdownReq => Shutdown, StatusReply;
    UnlinkReq => Unlink, StatusReply;
    RenameReq => Rename, StatusReply;
    RmdirReq => Rmdir, StatusReply;
    StatusReq => Status, StatusReply;
    ReserveReq => Reserve, ReserveReply;
    SetAttrReq => SetAttr, StatusReply;
    LstatReq => Lstat, StatReply;
}

macro_rules! replies {
    ($($reply:ty),+) => {
        $(impl ReplyBody for $reply {
            fn status(&self) -> i32 {
                self.status
            }
        })+
    };
}

replies!(
    HelloReply,
    OpenReply,
    StatReply,
    StatusReply,
    ListReply,
    ReserveReply
);
