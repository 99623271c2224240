//! The closed sets of values the protocol carries as integers: message kinds, what an `Open`
//! reply says, fire rules and node kinds. Each is a real enum with a checked conversion from its
//! wire integer (`TryFrom`, failing with `WireError`) and an infallible one back (`From`).

use super::frame::{REPLY_BIT, WireError};

/// Declares a wire enum with its discriminants, `ALL`, `TryFrom<repr>` and `From<enum> for repr`,
/// so the list of values is written once.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident: $repr:ty, $unknown:expr;
        { $($(#[$vmeta:meta])* $variant:ident = $value:literal,)+ }
    ) => {
        $(#[$meta])*
        #[repr($repr)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant = $value,)+
        }

        impl $name {
            /// Every value, in wire order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
        }

        impl TryFrom<$repr> for $name {
            type Error = WireError;
            fn try_from(value: $repr) -> Result<$name, WireError> {
                match value {
                    $($value => Ok($name::$variant),)+
                    _ => Err($unknown(value)),
                }
            }
        }

        impl From<$name> for $repr {
            fn from(value: $name) -> $repr {
                value as $repr
            }
        }
    };
}

fn unknown(what: &'static str) -> impl Fn(u32) -> WireError {
    move |value| WireError::UnknownValue { what, value }
}

wire_enum! {
    /// Request kinds. A reply uses `kind | REPLY_BIT`.
    pub enum Kind: u16, WireError::UnknownKind;
    {
        Hello = 1,
        Open = 2,
        /// One-way: the server sends no reply, so `close` costs no round trip.
        Close = 3,
        Stat = 4,
        Mkdir = 5,
        List = 6,
        /// Clean termination of a client: commits its `on_termination` files; replied once persisted.
        Exit = 7,
        /// Ask the server to stop (after persisting what must persist).
        Shutdown = 8,
        /// Remove a file (tail: the path); replied with a `StatusReply`.
        Unlink = 9,
        /// Move a file or directory like `rename(2)`; body `RenameReq`, replied with a `StatusReply`.
        Rename = 10,
        /// Remove an empty directory (tail: the path); replied with a `StatusReply`.
        Rmdir = 11,
        /// Observability: the server's state as JSON (see [`STATUS_FORMAT_VERSION`]); allowed to
        /// observers.
        ///
        /// [`STATUS_FORMAT_VERSION`]: super::STATUS_FORMAT_VERSION
        Status = 12,
        /// Ask for memory budget before writing past a file's reserved end; body `ReserveReq`.
        Reserve = 13,
        /// Change a path's attributes (mode, owner, times) like `chmod`/`chown`/`utimensat`; body
        /// `SetAttrReq`, tail the path; replied with a `StatusReply`.
        SetAttr = 14,
        /// Like `Stat`, but a final symbolic link is reported itself, as `lstat(2)` does.
        Lstat = 15,
    }
}

impl Kind {
    /// The header `kind` of a request.
    pub fn code(self) -> u16 {
        self as u16
    }

    /// The header `kind` of the reply to this request.
    pub fn reply_code(self) -> u16 {
        self as u16 | REPLY_BIT
    }
}

wire_enum! {
    /// What an `Open` reply tells the client to do (`OpenReply::kind`).
    pub enum OpenKind: u32, unknown("open reply kind");
    {
        /// A CAPIO file: the fd is its shared-memory data object, `slot` its state.
        Memory = 1,
        /// A committed input that lives on disk: the fd is the real file, opened read-only.
        Disk = 2,
        /// The path does not exist yet: wait on the namespace word until it changes from
        /// `generation`, then retry.
        Wait = 3,
        /// Something on disk CAPIO does not serve (a FIFO, a socket, a device): no fd; the client
        /// opens the path itself, exactly as without CAPIO.
        Pass = 4,
    }
}

wire_enum! {
    /// Fire rules (CAPIO-CL `mode`).
    pub enum Fire: u32, unknown("fire rule");
    {
        /// Readers wait for the commit.
        Update = 0,
        /// Readers see data as it is published, block at the current end, EOF only at commit.
        NoUpdate = 1,
    }
}

wire_enum! {
    /// What a name is (`StatReply::kind`, and the kind bits of a `List` entry).
    pub enum NodeKind: u32, unknown("node kind");
    {
        File = 1,
        Dir = 2,
        /// A symbolic link (only from an `Lstat`), a FIFO, socket or device on disk:
        /// `StatReply::file_type` says which.
        Other = 3,
    }
}

/// The kind byte of a `List` entry: the node kind, and whether the entry is a symbolic link on
/// disk (then the kind is its target's, `Other` when it dangles).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EntryKind {
    pub node: NodeKind,
    pub link: bool,
}

impl EntryKind {
    /// The link bit of the wire value.
    pub const LINK: u32 = 0x10;
    /// The node-kind bits of the wire value.
    const MASK: u32 = 0x0f;

    pub const fn plain(node: NodeKind) -> EntryKind {
        EntryKind { node, link: false }
    }

    /// A directory, following a symbolic link.
    pub fn is_dir(self) -> bool {
        self.node == NodeKind::Dir
    }
}

impl From<NodeKind> for EntryKind {
    fn from(node: NodeKind) -> EntryKind {
        EntryKind::plain(node)
    }
}

impl TryFrom<u32> for EntryKind {
    type Error = WireError;
    fn try_from(value: u32) -> Result<EntryKind, WireError> {
        if value & !(EntryKind::LINK | EntryKind::MASK) != 0 {
            return Err(unknown("list entry kind")(value));
        }
        Ok(EntryKind {
            node: NodeKind::try_from(value & EntryKind::MASK)?,
            link: value & EntryKind::LINK != 0,
        })
    }
}

impl From<EntryKind> for u32 {
    fn from(kind: EntryKind) -> u32 {
        u32::from(kind.node) | if kind.link { EntryKind::LINK } else { 0 }
    }
}
