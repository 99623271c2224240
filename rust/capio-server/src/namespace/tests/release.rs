//! Releasing what every declared consumer has read (`release`): when, how far, and never under
//! a reader that still needs the bytes, a mapping, or a file that persists.

use super::*;
use crate::namespace::release::GRAIN;

const STREAM: &str = r#"{"name": "wf", "IO_Graph": [
    {"name": "p", "input_stream": [], "output_stream": ["s.bin", "kept.bin"]},
    {"name": "c1", "input_stream": ["s.bin", "kept.bin"], "output_stream": []},
    {"name": "c2", "input_stream": ["s.bin", "kept.bin"], "output_stream": []}],
    "permanent": ["kept.bin"]}"#;

/// A namespace under `STREAM`, with a memory limit far above what the tests use: what consumers
/// read is released at once (without a limit what the pool could hold would stay).
fn fx() -> Fx {
    let mut fx = Fx::with_config(STREAM);
    fx.ns.set_memory_limit(Some(1 << 40));
    fx
}

/// A stream of `mib` MiB written by app `p`.
fn stream(fx: &mut Fx, rel: &str, mib: u64) -> Mem {
    let p = fx.client("p");
    let w = mem(fx.open(p, rel, WR | CREAT).unwrap());
    write(fx, &w, 0, &vec![0xAB; (mib * GRAIN) as usize]);
    w
}

fn reader(fx: &mut Fx, app: &str, rel: &str) -> (ClientId, Mem) {
    let c = fx.client(app);
    let m = mem(fx.open(c, rel, RD).unwrap());
    assert_ne!(m.progress, 0, "a reader of a releasable file is tracked");
    (c, m)
}

fn read_to(fx: &Fx, m: &Mem, end: u64) {
    fx.table.slot(m.progress).unwrap().note_read(0, end);
}

fn released(fx: &Fx, m: &Mem) -> u64 {
    fx.table.slot(m.slot).unwrap().released.load(SeqCst)
}

#[test]
fn bytes_every_declared_consumer_and_every_open_reader_read_are_released() {
    let mut fx = fx();
    let w = stream(&mut fx, "s.bin", 4);
    let held = fx.ns.memory_in_use();
    let (_, r1) = reader(&mut fx, "c1", "s.bin");
    read_to(&fx, &r1, 3 * GRAIN + 10);
    assert_eq!(fx.ns.release_consumed(), 0, "c2 has read nothing yet");
    let (c2, r2) = reader(&mut fx, "c2", "s.bin");
    read_to(&fx, &r2, 2 * GRAIN + 10);
    assert_eq!(
        fx.ns.release_consumed(),
        2 * GRAIN,
        "the slower consumer, in whole grains"
    );
    assert_eq!(released(&fx, &w), 2 * GRAIN);
    assert_eq!(fx.ns.memory_in_use(), held - 2 * GRAIN);
    assert_eq!(fx.ns.memory_released(), 2 * GRAIN);
    let mut head = [1u8; 16];
    w.data.read_exact_at(&mut head, 0).unwrap();
    assert_eq!(head, [0; 16], "the memory is gone");
    // c2 closes where it was; a new handle of c2 starts at 0, and holds what it has not read.
    fx.ns.close_tracked(c2, r2.slot, false, r2.progress);
    let (_, again) = reader(&mut fx, "c2", "s.bin");
    read_to(&fx, &r1, 4 * GRAIN);
    assert_eq!(
        fx.ns.release_consumed(),
        0,
        "an open handle at 0 holds the rest"
    );
    read_to(&fx, &again, 4 * GRAIN);
    assert_eq!(fx.ns.release_consumed(), 2 * GRAIN);
    // Never past what was published.
    read_to(&fx, &r1, 100 * GRAIN);
    assert_eq!(fx.ns.release_consumed(), 0);
}

#[test]
fn a_read_past_a_gap_is_no_progress() {
    let mut fx = fx();
    let _w = stream(&mut fx, "s.bin", 4);
    let (_, r1) = reader(&mut fx, "c1", "s.bin");
    let (_, r2) = reader(&mut fx, "c2", "s.bin");
    for r in [&r1, &r2] {
        let cell = fx.table.slot(r.progress).unwrap();
        // The footer first, as a zip or parquet reader does: the bytes before are still needed.
        cell.note_read(4 * GRAIN - 10, 4 * GRAIN);
        assert_eq!(cell.reader_progress().0, 0);
        cell.note_read(0, GRAIN);
        cell.note_read(GRAIN, 2 * GRAIN);
    }
    assert_eq!(fx.ns.release_consumed(), 2 * GRAIN);
}

#[test]
fn a_consumer_that_left_keeps_what_it_had_not_read() {
    let mut fx = fx();
    let w = stream(&mut fx, "s.bin", 4);
    let (_, r1) = reader(&mut fx, "c1", "s.bin");
    let (c2, r2) = reader(&mut fx, "c2", "s.bin");
    read_to(&fx, &r1, 4 * GRAIN);
    read_to(&fx, &r2, GRAIN + 5);
    // Killed: its progress stays what it was; its unread bytes are not released for it (what
    // it had read is, at once).
    fx.ns.detach(c2);
    assert_eq!(released(&fx, &w), GRAIN);
    assert_eq!(fx.ns.memory_released(), GRAIN);
    assert_eq!(fx.ns.release_consumed(), 0);
}

#[test]
fn a_mapped_or_permanent_file_and_a_file_without_consumers_are_never_released() {
    let mut fx = fx();
    let w = stream(&mut fx, "s.bin", 2);
    let (_, r1) = reader(&mut fx, "c1", "s.bin");
    let (_, r2) = reader(&mut fx, "c2", "s.bin");
    read_to(&fx, &r1, 2 * GRAIN);
    read_to(&fx, &r2, 2 * GRAIN);
    fx.table.slot(r2.progress).unwrap().note_mapped();
    assert_eq!(fx.ns.release_consumed(), 0);
    assert_eq!(released(&fx, &w), 0);

    let _k = stream(&mut fx, "kept.bin", 2);
    let c = fx.client("c1");
    let k = mem(fx.open(c, "kept.bin", RD).unwrap());
    assert_eq!(k.progress, 0, "permanent: persisted later, so kept whole");
    let _o = stream(&mut fx, "other.bin", 2);
    let o = mem(fx.open(c, "other.bin", RD).unwrap());
    assert_eq!(o.progress, 0, "no declared consumer");
}

#[test]
fn a_file_written_anew_starts_over_and_a_limit_makes_room_from_what_was_read() {
    let mut fx = fx();
    fx.ns.set_memory_limit(Some(4 * GRAIN));
    let p = fx.client("p");
    let w = mem(fx.open(p, "s.bin", WR | CREAT).unwrap());
    let granted = fx.ns.reserve(p, w.slot, 3 * GRAIN).unwrap();
    write(&fx, &w, 0, &vec![1; (3 * GRAIN) as usize]);
    let (_, r1) = reader(&mut fx, "c1", "s.bin");
    let (_, r2) = reader(&mut fx, "c2", "s.bin");
    read_to(&fx, &r1, 3 * GRAIN);
    read_to(&fx, &r2, 3 * GRAIN);
    // Full: the next grant comes from what both consumers have read.
    let more = fx.ns.reserve(p, w.slot, 6 * GRAIN).unwrap();
    assert!(more >= 6 * GRAIN && more > granted, "{more}");
    assert_eq!(released(&fx, &w), 3 * GRAIN);
    assert!(fx.ns.memory_used() <= 4 * GRAIN);
    // Rewritten from scratch: nothing is released, and old progress does not count.
    let again = mem(fx.open(p, "s.bin", WR | TRUNC).unwrap());
    assert_eq!(released(&fx, &again), 0);
    write(&fx, &again, 0, &vec![2; (2 * GRAIN) as usize]);
    assert_eq!(fx.ns.release_consumed(), 0);
    let mut byte = [0];
    again.data.read_exact_at(&mut byte, 0).unwrap();
    assert_eq!(byte, [2]);
}

#[test]
fn without_a_limit_the_last_bytes_read_stay_for_a_reader_going_back() {
    const KEEP_READ: u64 = 256 * GRAIN;
    let mut fx = Fx::with_config(STREAM);
    fx.ns.set_pool_limit(KEEP_READ);
    let w = stream(&mut fx, "s.bin", 300);
    let (_, r1) = reader(&mut fx, "c1", "s.bin");
    let (_, r2) = reader(&mut fx, "c2", "s.bin");
    read_to(&fx, &r1, 300 * GRAIN);
    read_to(&fx, &r2, 100 * GRAIN);
    assert_eq!(
        fx.ns.release_consumed(),
        0,
        "less than KEEP_READ was read by both"
    );
    read_to(&fx, &r2, 300 * GRAIN);
    assert_eq!(fx.ns.release_consumed(), 300 * GRAIN - KEEP_READ);
    assert_eq!(released(&fx, &w), 300 * GRAIN - KEEP_READ);
}

#[test]
fn a_closed_readers_cell_is_reused_only_after_its_client_left() {
    let mut fx = fx();
    let _w = stream(&mut fx, "s.bin", 1);
    let (c1, r1) = reader(&mut fx, "c1", "s.bin");
    fx.ns.close_tracked(c1, r1.slot, false, r1.progress);
    // Another thread of c1 may still note a read in it: no new file gets that slot.
    let p = fx.client("p");
    let other = mem(fx.open(p, "other.bin", WR | CREAT).unwrap());
    assert_ne!(other.slot, r1.progress);
    fx.ns.detach(c1);
    let again = mem(fx.open(p, "again.bin", WR | CREAT).unwrap());
    assert_eq!(again.slot, r1.progress, "free once its client is gone");
}
