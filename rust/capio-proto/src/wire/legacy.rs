//! Transitional: the former `u32` constant modules, now derived from the enums, for the code
//! still comparing raw fields (the namespace, the client's call sites, older tests) while it moves
//! to [`OpenKind`], [`Fire`], [`NodeKind`] and [`EntryKind`]. Nothing new should use them.

use super::enums::{EntryKind, Fire, NodeKind, OpenKind};

pub mod open_kind {
    use super::OpenKind;
    pub const MEMORY: u32 = OpenKind::Memory as u32;
    pub const DISK: u32 = OpenKind::Disk as u32;
    pub const WAIT: u32 = OpenKind::Wait as u32;
    pub const PASS: u32 = OpenKind::Pass as u32;
}

pub mod fire {
    use super::Fire;
    pub const UPDATE: u32 = Fire::Update as u32;
    pub const NO_UPDATE: u32 = Fire::NoUpdate as u32;
}

pub mod node_kind {
    use super::{EntryKind, NodeKind};
    pub const FILE: u32 = NodeKind::File as u32;
    pub const DIR: u32 = NodeKind::Dir as u32;
    pub const OTHER: u32 = NodeKind::Other as u32;
    pub const LINK: u32 = EntryKind::LINK;

    /// A `List` entry kind is a directory, following a symbolic link.
    pub fn is_dir(kind: u32) -> bool {
        EntryKind::try_from(kind).is_ok_and(EntryKind::is_dir)
    }
}
