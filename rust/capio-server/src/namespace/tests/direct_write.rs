//! Files written directly (`OpenReq::PLAIN_WRITE`): granted only to a create whose readers wait
//! for the commit, of fresh memory; their length is their object's size until the commit, which
//! publishes it.

use super::*;
use capio_proto::OpenReq;

const PLAIN: u32 = OpenReq::PLAIN_WRITE;

#[test]
fn a_file_created_to_be_written_directly_is_as_long_as_its_object_until_its_commit() {
    let mut fx = Fx::new();
    let (a, b) = (fx.client("w"), fx.client("r"));
    let w = mem(fx.open(a, "t.txt", WR | CREAT | TRUNC | PLAIN).unwrap());
    assert!(w.direct_write);
    // The writer writes through a description of its own; nothing is published.
    w.data.write_all_at(b"0123456789", 0).unwrap();
    let table = fx.table.clone();
    let slot = table.slot(w.slot).unwrap();
    assert_eq!(slot.len.load(SeqCst), 0);
    // Another writer is told so; a reader sees the bytes written so far as the file's size.
    let again = mem(fx.open(b, "t.txt", WR | PLAIN).unwrap());
    assert!(again.direct_write && again.size == 10);
    fx.ns.close(b, again.slot, true);
    fx.ns.close(a, w.slot, true);
    // Without a CAPIO-CL file its producers commit it when they end.
    fx.ns.exit(b, false).unwrap();
    fx.ns.exit(a, false).unwrap();
    assert_eq!(fx.state(w.slot), SlotState::Committed);
    assert_eq!(slot.len.load(SeqCst), 10, "published at the commit");
    // Written again after its commit: still directly, as long as its object until committed
    // again, which publishes what was written.
    let c = fx.client("again");
    let reopened = mem(fx.open(c, "t.txt", WR).unwrap());
    assert!(reopened.direct_write && reopened.size == 10);
    reopened.data.write_all_at(b"abc", 10).unwrap();
    fx.ns.close(c, reopened.slot, true);
    let d = fx.client("reader");
    assert_eq!(mem(fx.open(d, "t.txt", RD).unwrap()).size, 13);
    fx.ns.exit(c, false).unwrap();
    assert_eq!(fx.state(w.slot), SlotState::Committed);
    assert_eq!(slot.len.load(SeqCst), 13);
}

#[test]
fn only_a_create_asking_for_it_under_an_update_rule_without_a_limit_writes_directly() {
    let mut fx = Fx::new();
    let a = fx.client("w");
    assert!(!mem(fx.open(a, "unasked", WR | CREAT).unwrap()).direct_write);
    assert!(
        !mem(fx.open(a, "unasked", WR | PLAIN).unwrap()).direct_write,
        "not a create"
    );
    fx.ns.set_memory_limit(Some(1 << 30));
    assert!(!mem(fx.open(a, "limited", WR | CREAT | PLAIN).unwrap()).direct_write);

    let steps = r#"{"name": "w", "input_stream": [], "output_stream": [],
                    "streaming": [{"name": ["stream*"], "mode": "no_update"}]}"#;
    let mut fx = Fx::with_config(&format!(r#"{{"name": "wf", "IO_Graph": [{steps}]}}"#));
    let a = fx.client("w");
    assert!(!mem(fx.open(a, "stream.dat", WR | CREAT | PLAIN).unwrap()).direct_write);
    assert!(mem(fx.open(a, "other.dat", WR | CREAT | PLAIN).unwrap()).direct_write);
}

#[test]
fn a_file_written_directly_never_gets_recycled_memory() {
    let mut fx = Fx::new();
    fx.ns.set_pool_limit(1 << 30);
    super::memory::written_and_removed(&mut fx, "old", 8192);
    assert_eq!(fx.ns.memory_pooled(), 8192);
    let c = fx.client("w");

    let w = mem(fx.open(c, "new", WR | CREAT | PLAIN).unwrap());
    assert!(w.direct_write);
    assert_eq!(fx.ns.memory_pooled(), 8192, "left in the pool");
    assert_eq!(w.data.metadata().unwrap().len(), 0);
    assert_eq!(fx.table.slot(w.slot).unwrap().stale.load(SeqCst), 0);
}
