//! The memory budget: grants, refusals, what files hold with or without a limit, and the pool of
//! memory recycled from gone files.

use super::*;
use crate::namespace::Evict;

#[test]
fn the_memory_budget_grants_in_increments_refuses_past_the_limit_and_frees_on_removal() {
    let mut fx = Fx::new();
    let limit = 1 << 20;
    fx.ns.set_memory_limit(Some(limit));
    let (a, b) = (fx.client("writer"), fx.client("reader"));
    let w = mem(fx.open(a, "a.bin", WR | CREAT).unwrap());
    let granted = fx.ns.reserve(a, w.slot, 1000).unwrap();
    assert!(granted >= 1000 && granted <= limit, "{granted}");
    assert!(
        granted > 1000,
        "headroom so the next writes need no request"
    );
    assert_eq!(fx.ns.memory_used(), granted);
    // Inside the grant: the same answer, nothing charged twice.
    assert_eq!(fx.ns.reserve(a, w.slot, 10).unwrap(), granted);
    // A reader of the file cannot reserve for it only by being someone else...
    assert_eq!(
        fx.ns.reserve(b, w.slot, 10).unwrap_err().errno(),
        libc::EBADF
    );
    // ...and an unknown slot is not open.
    assert_eq!(fx.ns.reserve(a, 60, 10).unwrap_err().errno(), libc::EBADF);
    // Past the limit: ENOSPC, and the charge is unchanged.
    let e = fx.ns.reserve(a, w.slot, limit + 1).unwrap_err();
    assert_eq!(e.errno(), libc::ENOSPC);
    assert_eq!(fx.ns.memory_used(), granted);
    // Exactly the limit still fits (no headroom left to add).
    assert_eq!(fx.ns.reserve(a, w.slot, limit).unwrap(), limit);
    let v = mem(fx.open(a, "b.bin", WR | CREAT).unwrap());
    assert_eq!(
        fx.ns.reserve(a, v.slot, 1).unwrap_err().errno(),
        libc::ENOSPC
    );
    // The commit gives back what was granted but not written.
    write(&fx, &w, 0, &[7u8; 4096]);
    fx.exit_and_persist(a);
    assert_eq!(fx.ns.memory_used(), 4096);
    // Unlinked and closed by everyone: nothing is charged any more.
    let c = fx.client("cleaner");
    fx.ns.close(a, w.slot, true);
    fx.ns.close(a, v.slot, true);
    fx.ns.unlink(c, &fx.p("a.bin")).unwrap();
    assert_eq!(fx.ns.memory_used(), 0);
}

#[test]
fn truncation_restart_and_imports_are_charged_and_fs_files_are_not() {
    let mut fx = Fx::with_config(
        r#"{"name": "wf", "IO_Graph": [{"name": "w", "input_stream": [],
            "output_stream": ["disk.bin"]}], "storage": {"fs": ["disk.bin"]}}"#,
    );
    fx.ns.set_memory_limit(Some(64 << 10));
    let a = fx.client("w");
    let w = mem(fx.open(a, "m.bin", WR | CREAT).unwrap());
    let g = fx.ns.reserve(a, w.slot, 32 << 10).unwrap();
    assert_eq!(fx.ns.memory_used(), g);
    // O_TRUNC empties the data object, and its charge.
    let w2 = mem(fx.open(a, "m.bin", WR | TRUNC).unwrap());
    assert_eq!((w2.slot, fx.ns.memory_used()), (w.slot, 0));
    // `storage: fs` bytes live on disk: unlimited.
    let d = mem(fx.open(a, "disk.bin", WR | CREAT).unwrap());
    assert_eq!(fx.ns.reserve(a, d.slot, 1 << 30).unwrap(), u64::MAX);
    assert_eq!(fx.ns.memory_used(), 0);
    // An input on disk opened for writing is copied into memory: it must fit first.
    fs::write(fx.p("big.in"), vec![1u8; 100 << 10]).unwrap();
    fs::write(fx.p("small.in"), vec![1u8; 10 << 10]).unwrap();
    assert_eq!(fx.errno(a, "big.in", RW), libc::ENOSPC);
    assert!(!fx.ns.files.contains(&fx.p("big.in")));
    mem(fx.open(a, "small.in", RW).unwrap());
    assert_eq!(fx.ns.memory_used(), 10 << 10);
}

#[test]
fn without_a_limit_every_reservation_is_unlimited() {
    let mut fx = Fx::new();
    let a = fx.client("w");
    let w = mem(fx.open(a, "x", WR | CREAT).unwrap());
    assert_eq!(fx.ns.reserve(a, w.slot, 1 << 40).unwrap(), u64::MAX);
    assert_eq!(fx.ns.memory_used(), 0);
}

#[test]
fn memory_is_counted_without_a_limit() {
    let mut fx = Fx::new();
    let a = fx.client("a");
    let w = mem(fx.open(a, "big", WR | CREAT).unwrap());
    write(&fx, &w, 0, &[7u8; 4096]);
    assert_eq!(fx.ns.memory_limit(), None);
    assert_eq!(fx.ns.memory_in_use(), 4096);
    fx.ns.unlink(a, &fx.p("big")).unwrap();
    assert_eq!(fx.ns.memory_in_use(), 4096, "still held by its open fd");
    fx.ns.close(a, w.slot, true);
    assert_eq!(fx.ns.memory_in_use(), 0);
}

/// Write `len` bytes of 0xEE to a new file `rel`, commit it, and remove it.
pub(super) fn written_and_removed(fx: &mut Fx, rel: &str, len: usize) {
    let a = fx.client("gone");
    let w = mem(fx.open(a, rel, WR | CREAT).unwrap());
    write(fx, &w, 0, &vec![0xEE; len]);
    fx.ns.close(a, w.slot, true);
    drop(w);
    fx.exit_and_persist(a);
    let c = fx.client("cleaner");
    fx.unlink(c, rel).unwrap();
}

#[test]
fn the_memory_of_a_removed_file_serves_the_next_file_without_showing_its_bytes() {
    let mut fx = Fx::new();
    fx.ns.set_pool_limit(1 << 30);
    written_and_removed(&mut fx, "old.bin", 64 << 10);
    assert_eq!(fx.ns.memory_pooled(), 64 << 10);
    assert_eq!(fx.ns.memory_in_use(), 0);

    let a = fx.client("w");
    let w = mem(fx.open(a, "new.bin", WR | CREAT).unwrap());
    assert_eq!(fx.ns.memory_pooled(), 0, "taken by the new file");
    assert_eq!(fx.ns.memory_in_use(), 64 << 10, "which holds its pages");
    let slot = fx.table.slot(w.slot).unwrap();
    assert_eq!(
        (slot.len.load(SeqCst), slot.stale.load(SeqCst)),
        (0, 64 << 10)
    );
    // A write past a gap: the gap reads as zeros, not as the old file's bytes.
    write(&fx, &w, 1000, b"new");
    fx.ns.close(a, w.slot, true);
    fx.exit_and_persist(a);
    let mut bytes = vec![1; 1003];
    w.data.read_exact_at(&mut bytes, 0).unwrap();
    assert!(bytes[..1000].iter().all(|b| *b == 0));
    assert_eq!(&bytes[1000..], b"new");
    // Committed: the memory past its end went back, so the object's size is the file's.
    assert_eq!(w.data.metadata().unwrap().len(), 1003);
    assert_eq!(fx.ns.memory_in_use(), 1003);
    // A new file's times are its own.
    let age = w.data.metadata().unwrap().modified().unwrap().elapsed();
    assert!(age.map_or(true, |a| a.as_secs() < 60));
}

#[test]
fn memory_something_still_holds_is_not_recycled() {
    let mut fx = Fx::new();
    fx.ns.set_pool_limit(1 << 30);
    let a = fx.client("w");
    let w = mem(fx.open(a, "held.bin", WR | CREAT).unwrap());
    write(&fx, &w, 0, &[1; 8192]);
    fx.ns.close(a, w.slot, true);
    fx.exit_and_persist(a);
    // The fd the client received outlives its close (a `dup`, a forked child, a mapping).
    let kept = w.data;
    let c = fx.client("cleaner");
    fx.unlink(c, "held.bin").unwrap();
    assert_eq!(fx.ns.memory_pooled(), 0);
    let mut bytes = [0; 4];
    kept.read_exact_at(&mut bytes, 0).unwrap();
    assert_eq!(bytes, [1; 4]);
}

#[test]
fn pooled_memory_gives_way_to_files_under_a_limit_and_to_its_own_limit() {
    let mut fx = Fx::new();
    fx.ns.set_pool_limit(1 << 30);
    fx.ns.set_memory_limit(Some(256 << 10));
    written_and_removed(&mut fx, "a.bin", 128 << 10);
    written_and_removed(&mut fx, "b.bin", 64 << 10);
    // The second file took the first one's memory, gave back what it did not fill when it was
    // committed, and the rest went to the pool when it went.
    assert_eq!(fx.ns.memory_pooled(), 64 << 10);
    // A file that needs more than what is left beside the pool gets it: the pool gives way.
    let a = fx.client("w");
    let w = mem(fx.open(a, "big.bin", WR | CREAT).unwrap());
    assert_eq!(fx.ns.memory_pooled(), 0, "taken");
    let granted = fx.ns.reserve(a, w.slot, 200 << 10).unwrap();
    assert!(granted >= 200 << 10);
    assert!(fx.ns.memory_used() + fx.ns.memory_pooled() <= 256 << 10);
    fx.ns.close(a, w.slot, true);
    drop(w);
    // The pool's own limit: memory past it goes back to the system.
    written_and_removed(&mut fx, "c.bin", 32 << 10);
    fx.ns.set_pool_limit(16 << 10);
    assert!(fx.ns.memory_pooled() <= 16 << 10);
    fx.ns.set_pool_limit(0);
    assert_eq!(fx.ns.memory_pooled(), 0);
    written_and_removed(&mut fx, "d.bin", 4096);
    assert_eq!(fx.ns.memory_pooled(), 0, "no pool: nothing kept");
}

#[test]
fn committed_files_nobody_holds_leave_memory_when_it_is_full() {
    let mut fx = Fx::with_config(
        r#"{"name": "wf", "IO_Graph": [{"name": "w", "input_stream": [],
            "output_stream": ["*"]}], "permanent": ["kept.bin"]}"#,
    );
    let spill = TestDir::new();
    fx.ns
        .set_spill_dir(crate::spill::SpillDir::open(spill.path()).unwrap());
    fx.ns.set_memory_limit(Some(256 << 10));
    let a = fx.client("w");
    for (name, byte) in [("old.bin", 1u8), ("kept.bin", 2)] {
        let m = mem(fx.open(a, name, WR | CREAT).unwrap());
        fx.ns.reserve(a, m.slot, 100 << 10).unwrap();
        write(&fx, &m, 0, &vec![byte; 100 << 10]);
        fx.ns.close(a, m.slot, true);
    }
    // kept.bin commits at termination and persists; old.bin is only in memory.
    fx.exit_and_persist(a);
    let b = fx.client("w");
    let w = mem(fx.open(b, "new.bin", WR | CREAT).unwrap());
    assert!(fx.ns.reserve(b, w.slot, 200 << 10).is_err(), "full");
    // old.bin is copied out (unlocked, in the server); kept.bin is served from its persisted
    // copy, without a copy.
    let (mut copied, mut moved) = (0, 0);
    loop {
        match fx.ns.evict_one() {
            Evict::Copy(job) => {
                let copy = job.copy();
                assert!(fx.ns.finish_eviction(job, copy));
                copied += 1;
            }
            Evict::Done => moved += 1,
            Evict::Nothing => break,
        }
    }
    assert_eq!((copied, moved), (1, 1));
    assert_eq!(fx.ns.memory_spilled(), 100 << 10);
    assert!(fx.ns.reserve(b, w.slot, 200 << 10).is_ok());
    // Both are read back exactly, and the spill directory shows no file.
    for (name, byte) in [("old.bin", 1u8), ("kept.bin", 2)] {
        let r = mem(fx.open(b, name, RD).unwrap());
        let mut bytes = vec![0; 100 << 10];
        r.data.read_exact_at(&mut bytes, 0).unwrap();
        assert!(bytes.iter().all(|x| *x == byte), "{name}");
        fx.ns.close(b, r.slot, false);
    }
    let dir = fx.ns.spill_dir().unwrap().to_path_buf();
    assert_eq!(fs::read_dir(dir).unwrap().count(), 0);
    // Written again, the persisted file is not written in place before its next commit.
    let again = mem(fx.open(b, "kept.bin", WR | TRUNC).unwrap());
    write(&fx, &again, 0, b"new");
    assert_eq!(fs::read(fx.p("kept.bin")).unwrap(), vec![2; 100 << 10]);
}

#[test]
fn a_file_whose_spill_copy_failed_is_not_offered_again() {
    let mut fx = Fx::with_config(
        r#"{"name": "wf", "IO_Graph": [{"name": "w", "input_stream": [],
            "output_stream": ["*"]}]}"#,
    );
    let spill = TestDir::new();
    let dir = crate::spill::SpillDir::open(spill.path()).unwrap();
    let spill_path = dir.path().to_path_buf();
    fx.ns.set_spill_dir(dir);
    fx.ns.set_memory_limit(Some(1 << 20));
    let a = fx.client("w");
    let m = mem(fx.open(a, "old.bin", WR | CREAT).unwrap());
    write(&fx, &m, 0, &[1; 4096]);
    fx.ns.close(a, m.slot, true);
    drop(m);
    fx.exit_and_persist(a);
    // The spill directory is gone (a tmp cleaner): the copy fails.
    fs::remove_dir(&spill_path).unwrap();
    let Evict::Copy(job) = fx.ns.evict_one() else {
        panic!("old.bin is offered")
    };
    let copy = job.copy();
    assert!(copy.is_err());
    assert!(!fx.ns.finish_eviction(job, copy));
    assert!(matches!(fx.ns.evict_one(), Evict::Nothing), "not again");
}
