//! Frames (oversize, truncated, back-to-back), the checked conversions of every wire enum, and
//! typed round trips of requests and their replies.

use super::request::KINDS;
use super::*;

#[test]
fn round_trip_frame() {
    let req = OpenReq {
        flags: 0o101,
        mode: 0o644,
    };
    let bytes = encode(Kind::Open as u16, &req, b"/tmp/x").unwrap();
    let (h, body) = read_frame(&mut &bytes[..]).unwrap();
    assert_eq!(h.kind, Kind::Open as u16);
    let (got, tail): (OpenReq, _) = decode(&body).unwrap();
    assert_eq!(got.flags, 0o101);
    assert_eq!(tail, b"/tmp/x");
}

#[test]
fn back_to_back_frames() {
    let mut bytes = encode(Kind::Stat as u16, &Empty {}, b"/a").unwrap();
    bytes.extend(encode(Kind::Stat as u16, &Empty {}, b"/bb").unwrap());
    let mut r = &bytes[..];
    assert_eq!(read_frame(&mut r).unwrap().1, b"/a");
    assert_eq!(read_frame(&mut r).unwrap().1, b"/bb");
    assert!(matches!(read_frame(&mut r), Err(WireError::Eof)));
}

/// Yields `bytes`, then fails with a connection reset.
struct ResetAfter<'a>(&'a [u8]);

impl std::io::Read for ResetAfter<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.0.is_empty() {
            return Err(std::io::ErrorKind::ConnectionReset.into());
        }
        let n = buf.len().min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

#[test]
fn a_reset_between_frames_is_the_end_and_inside_one_an_error() {
    let bytes = encode(Kind::Stat as u16, &Empty {}, b"/a").unwrap();
    assert!(matches!(
        read_frame(&mut ResetAfter(&[])),
        Err(WireError::Eof)
    ));
    let mut r = ResetAfter(&bytes);
    assert_eq!(read_frame(&mut r).unwrap().1, b"/a");
    assert!(matches!(read_frame(&mut r), Err(WireError::Eof)));
    for cut in [3, bytes.len() - 1] {
        assert!(matches!(
            read_frame(&mut ResetAfter(&bytes[..cut])),
            Err(WireError::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionReset
        ));
    }
}

#[test]
fn oversize_rejected_before_allocation() {
    let h = Header {
        magic: MAGIC,
        version: PROTOCOL_VERSION,
        kind: 2,
        len: MAX_BODY + 1,
        reserved: 0,
    };
    let bytes = bytemuck::bytes_of(&h).to_vec();
    assert!(matches!(
        read_frame(&mut &bytes[..]),
        Err(WireError::TooLarge(_))
    ));
}

#[test]
fn truncated_and_bad_magic() {
    let bytes = encode(Kind::Open as u16, &OpenReq::default(), b"").unwrap();
    let short = &bytes[..bytes.len() - 2];
    assert!(matches!(read_frame(&mut &short[..]), Err(WireError::Io(_))));
    let (_, body) = read_frame(&mut &bytes[..]).unwrap();
    assert!(matches!(
        decode::<OpenReply>(&body),
        Err(WireError::Truncated { .. })
    ));
    let mut bad = bytes.clone();
    bad[0] ^= 0xff;
    assert!(matches!(
        read_frame(&mut &bad[..]),
        Err(WireError::BadMagic(_))
    ));
}

#[test]
fn every_kind_round_trips_through_u16() {
    let all = [
        Kind::Hello,
        Kind::Open,
        Kind::Close,
        Kind::Stat,
        Kind::Mkdir,
        Kind::List,
        Kind::Exit,
        Kind::Shutdown,
        Kind::Unlink,
        Kind::Rename,
        Kind::Rmdir,
        Kind::Status,
        Kind::Reserve,
        Kind::SetAttr,
        Kind::Lstat,
    ];
    for kind in all {
        assert_eq!(Kind::try_from(kind as u16).ok(), Some(kind));
    }
    assert_eq!(
        (Kind::Unlink as u16, Kind::Rename as u16, Kind::Rmdir as u16),
        (9, 10, 11)
    );
    assert_eq!(Kind::try_from(0).ok(), None);
    assert_eq!((Kind::Status as u16, Kind::Reserve as u16), (12, 13));
    assert_eq!(Kind::try_from(14).ok(), Some(Kind::SetAttr));
    assert_eq!(Kind::try_from(15).ok(), Some(Kind::Lstat));
    assert_eq!(Kind::try_from(16).ok(), None);
    assert_eq!(Kind::try_from(2 | REPLY_BIT).ok(), None);
}

#[test]
fn rename_tail_round_trips_and_overruns_are_refused() {
    let (req, tail) = rename_tail(b"/a/src", b"/a/dst").unwrap();
    let bytes = encode(Kind::Rename as u16, &req, &tail).unwrap();
    let (_, body) = read_frame(&mut &bytes[..]).unwrap();
    let (got, tail): (RenameReq, _) = decode(&body).unwrap();
    assert_eq!(got.flags, 0);
    assert_eq!(
        split_rename_tail(&got, tail),
        Some((&b"/a/src"[..], &b"/a/dst"[..]))
    );
    let bad = RenameReq {
        src_len: 99,
        flags: 0,
    };
    assert_eq!(split_rename_tail(&bad, b"/short"), None);
}

#[test]
fn set_attr_requests_round_trip() {
    use crate::sys::{Attrs, TimeSet};
    let attrs = Attrs {
        mode: Some(0o4755),
        owner: Some((u32::MAX, 100)),
        atime: TimeSet::Now,
        mtime: TimeSet::At(-1_500_000_000),
    };
    let req = SetAttrReq::new(&attrs, true);
    assert_ne!(req.flags & attr_flags::NOFOLLOW, 0);
    assert_eq!(req.attrs(), Some(attrs));
    assert_eq!(
        SetAttrReq::new(&Attrs::default(), false).attrs(),
        Some(Attrs::default())
    );
    let bad = SetAttrReq {
        flags: 1 << 20,
        ..SetAttrReq::default()
    };
    assert_eq!(bad.attrs(), None);
}

#[test]
fn entries_round_trip() {
    let mut tail = Vec::new();
    push_entry(&mut tail, NodeKind::File.into(), b"a.txt");
    push_entry(&mut tail, NodeKind::Dir.into(), b"sub dir");
    assert_eq!(
        parse_entries(&tail).unwrap(),
        vec![
            (NodeKind::File.into(), &b"a.txt"[..]),
            (NodeKind::Dir.into(), &b"sub dir"[..])
        ]
    );
}

#[test]
fn every_request_type_names_a_distinct_kind() {
    let mut kinds: Vec<u16> = KINDS.iter().map(|k| k.code()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    let all: Vec<u16> = Kind::ALL.iter().map(|k| k.code()).collect();
    assert_eq!(kinds, all, "each kind has exactly one request type");
}

#[test]
fn wire_enums_convert_both_ways_and_refuse_unknown_values() {
    for &k in OpenKind::ALL {
        assert_eq!(OpenKind::try_from(u32::from(k)).unwrap(), k);
    }
    for &f in Fire::ALL {
        assert_eq!(Fire::try_from(u32::from(f)).unwrap(), f);
    }
    for &n in NodeKind::ALL {
        assert_eq!(NodeKind::try_from(u32::from(n)).unwrap(), n);
        for link in [false, true] {
            let e = EntryKind { node: n, link };
            assert_eq!(EntryKind::try_from(u32::from(e)).unwrap(), e);
        }
    }
    // The wire values are the protocol's: they must never move.
    assert_eq!(
        OpenKind::ALL
            .iter()
            .map(|&k| u32::from(k))
            .collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    assert_eq!((u32::from(Fire::Update), u32::from(Fire::NoUpdate)), (0, 1));
    assert_eq!(
        NodeKind::ALL
            .iter()
            .map(|&k| u32::from(k))
            .collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(
        u32::from(EntryKind {
            node: NodeKind::Dir,
            link: true
        }),
        0x12
    );
    assert!(matches!(
        OpenKind::try_from(0),
        Err(WireError::UnknownValue { value: 0, .. })
    ));
    assert!(OpenKind::try_from(5).is_err());
    assert!(Fire::try_from(2).is_err());
    assert!(NodeKind::try_from(0).is_err());
    assert!(NodeKind::try_from(4).is_err());
    assert!(EntryKind::try_from(0x10).is_err(), "a link bit alone");
    assert!(EntryKind::try_from(0x21).is_err(), "an unknown high bit");
    assert!(matches!(
        Kind::try_from(99),
        Err(WireError::UnknownKind(99))
    ));
    assert!(
        EntryKind::try_from(0x12).unwrap().is_dir(),
        "a link to a directory"
    );
    assert!(!EntryKind::try_from(1).unwrap().is_dir());
}

#[test]
fn an_unknown_entry_kind_fails_the_listing() {
    let tail = [7u8, b'x', 0];
    assert!(matches!(
        parse_entries(&tail),
        Err(WireError::UnknownValue { value: 7, .. })
    ));
}

/// A request and its reply through the typed encoders and the one frame reader.
#[test]
fn typed_request_and_reply_round_trip() {
    let req = OpenReq {
        flags: 0o101,
        mode: 0o600,
    };
    let bytes = encode_request(&req, b"/c/f").unwrap();
    let (h, body) = read_frame(&mut &bytes[..]).unwrap();
    assert_eq!(Kind::try_from(h.kind).unwrap(), <OpenReq as Request>::KIND);
    let (got, tail): (OpenReq, _) = decode(&body).unwrap();
    assert_eq!((got.flags, got.mode, tail), (0o101, 0o600, &b"/c/f"[..]));

    let reply = OpenReply {
        kind: OpenKind::Memory.into(),
        fire: Fire::NoUpdate.into(),
        slot: 3,
        size: 42,
        ..OpenReply::default()
    };
    let bytes = encode_reply::<OpenReq>(&reply, &[]).unwrap();
    let (h, body) = read_frame(&mut &bytes[..]).unwrap();
    assert_eq!(h.kind, Kind::Open.reply_code());
    let (got, _): (<OpenReq as Request>::Reply, _) = decode(&body).unwrap();
    assert_eq!(got.status(), 0);
    assert_eq!(got.open_kind().unwrap(), OpenKind::Memory);
    assert_eq!(got.fire_rule().unwrap(), Fire::NoUpdate);
    assert_eq!((got.slot, got.size), (3, 42));

    // A path-only request is as empty on the wire as the raw `Empty` it replaced.
    assert_eq!(
        encode_request(&LstatReq {}, b"/c/l").unwrap(),
        encode(Kind::Lstat as u16, &Empty {}, b"/c/l").unwrap()
    );
    let st = StatReply {
        status: -libc::ENOENT,
        kind: NodeKind::Other.into(),
        ..StatReply::default()
    };
    let bytes = encode_reply::<LstatReq>(&st, &[]).unwrap();
    let (h, body) = read_frame(&mut &bytes[..]).unwrap();
    assert_eq!(h.kind, Kind::Lstat as u16 | REPLY_BIT);
    let (got, _): (StatReply, _) = decode(&body).unwrap();
    assert_eq!(got.status(), -libc::ENOENT);
    assert_eq!(got.node_kind().unwrap(), NodeKind::Other);
}

#[test]
fn a_stat_survives_its_wire_form_and_a_bad_kind_is_refused() {
    let dir = std::env::temp_dir().join(format!("capio-proto-stat-{}", std::process::id()));
    std::fs::write(&dir, b"12345").unwrap();
    let meta = std::fs::metadata(&dir).unwrap();
    let st = NodeStat::of_meta(NodeKind::File, &meta, false);
    std::fs::remove_file(&dir).unwrap();
    assert_eq!((st.size, st.file_type, st.nlink), (5, libc::S_IFREG, 1));
    assert_eq!(st.mode & !0o7777, 0, "permission bits only");
    assert_eq!(
        st.mtime_ns,
        nanos(
            std::os::unix::fs::MetadataExt::mtime(&meta),
            std::os::unix::fs::MetadataExt::mtime_nsec(&meta)
        )
    );
    let reply = StatReply::of(&st);
    assert_eq!((reply.status, reply.kind, reply.committed), (0, 1, 0));
    assert_eq!(reply.stat().unwrap(), st);
    let bad = StatReply { kind: 9, ..reply };
    assert!(matches!(
        bad.stat(),
        Err(WireError::UnknownValue { value: 9, .. })
    ));
    assert_eq!(nanos(i64::MAX, 1), i64::MAX, "saturates");
}
