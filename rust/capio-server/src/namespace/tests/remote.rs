//! One namespace over many nodes, driven without MPI: a recording outbox stands for the other
//! nodes, and the tests deliver their messages by calling the namespace as the MPI thread does.

use super::*;
use std::os::fd::AsFd;
use std::sync::Mutex;
use std::sync::atomic::Ordering::SeqCst;

/// The other nodes, as far as this node's namespace can tell: what it sent them.
#[derive(Clone, Default)]
struct Sent(Arc<Mutex<Vec<Notice>>>);

impl Outbox for Sent {
    fn send(&self, notice: Notice) {
        self.0.lock().unwrap().push(notice);
    }
}

impl Sent {
    fn take(&self) -> Vec<Notice> {
        std::mem::take(&mut self.0.lock().unwrap())
    }

    /// The fetches sent since the last take, as (source node, file, id, sink).
    fn fetches(&self) -> Vec<(usize, FileId, u64, Sink)> {
        self.take()
            .into_iter()
            .filter_map(|n| match n {
                Notice::Fetch {
                    from,
                    file,
                    id,
                    sink,
                    ..
                } => Some((from, file, id, sink)),
                _ => None,
            })
            .collect()
    }
}

/// Node 1 of three (hosts a, b, c).
fn node1(fx: &mut Fx) -> Sent {
    let sent = Sent::default();
    let root = fx.root.clone();
    let hosts = vec!["a".into(), "b".into(), "c".into()];
    fx.ns.join_cluster(1, hosts, root, Box::new(sent.clone()));
    sent
}

/// A file node 0 created (a step of app "producer"), kept on `home`, numbered `serial`.
fn created(path: &Path, home: usize, serial: u64) -> Created {
    Created {
        path: path.to_path_buf(),
        mode: 0o644,
        home,
        serial,
        app: "producer".into(),
    }
}

/// Deliver `bytes` at `offset` of a fetch, as the MPI thread lands them.
fn land(fx: &Fx, sink: &Sink, offset: u64, bytes: &[u8]) {
    assert!(
        sink.live.load(SeqCst),
        "bytes of a fetch called off are dropped"
    );
    let slot = fx.table.slot(sink.slot).unwrap();
    let end = offset + bytes.len() as u64;
    slot.prepare_write(sink.file.as_fd(), offset, end, false)
        .unwrap();
    sink.file.write_all_at(bytes, offset).unwrap();
    slot.publish(end);
}

#[test]
fn a_file_created_here_is_announced_with_its_number_and_home() {
    let mut fx = Fx::new();
    let sent = node1(&mut fx);
    let w = fx.client("writer");
    let m = mem(fx.open(w, "out.txt", WR | CREAT).unwrap());
    let notices = sent.take();
    let announced = notices.iter().find_map(|n| match n {
        Notice::Created(c) => Some((c.path.clone(), c.home, c.serial, c.app.clone())),
        _ => None,
    });
    assert_eq!(announced, Some((fx.p("out.txt"), 1, 1, "writer".into())));
    write(&fx, &m, 0, b"abc");
    fx.ns.exit(w, false).unwrap();
    let states: Vec<(SlotState, u64)> = sent
        .take()
        .into_iter()
        .filter_map(|n| match n {
            Notice::State { state, len, .. } => Some((state, len)),
            _ => None,
        })
        .collect();
    assert_eq!(states, vec![(SlotState::Committed, 3)]);
}

#[test]
fn a_replica_is_fetched_on_first_read_and_commits_when_sealed() {
    let mut fx = Fx::new();
    let sent = node1(&mut fx);
    let r = fx.client("reader");
    let path = fx.p("remote.txt");
    let _ = fx.ns.remote_created(0, created(&path, 0, 7));
    assert!(
        sent.fetches().is_empty(),
        "nothing moves before someone reads it"
    );
    let m = mem(fx.open(r, "remote.txt", RD).unwrap());
    let fetches = sent.fetches();
    let [(source, file, id, sink)] = &fetches[..] else {
        panic!("one fetch, got {}", fetches.len());
    };
    assert_eq!(
        (*source, *file),
        (
            0,
            FileId {
                writer: 0,
                serial: 7
            }
        )
    );
    assert_eq!(
        fx.state(m.slot),
        SlotState::Open,
        "readers wait for the bytes"
    );
    land(&fx, sink, 0, b"hello");
    let _ = fx.ns.remote_state(0, &path, (SlotState::Committed, 5, 0));
    assert_eq!(
        fx.state(m.slot),
        SlotState::Open,
        "committed at home, not all here yet"
    );
    let _ = fx.ns.fetch_sealed(*id, (SlotState::Committed, 5, 0));
    assert_eq!(fx.state(m.slot), SlotState::Committed);
    assert_eq!(read_all(&m, 5), b"hello");
    // A second reader reads it here: no message.
    mem(fx.open(r, "remote.txt", RD).unwrap());
    assert!(sent.take().is_empty());
    // Read-only here.
    assert_eq!(fx.errno(r, "remote.txt", WR), libc::EROFS);
}

#[test]
fn a_replica_written_anew_starts_over_and_drops_the_old_fetch() {
    let mut fx = Fx::new();
    let sent = node1(&mut fx);
    let r = fx.client("reader");
    let path = fx.p("v.txt");
    let _ = fx.ns.remote_created(0, created(&path, 0, 1));
    let m = mem(fx.open(r, "v.txt", RD).unwrap());
    let (_, _, first, old) = sent.fetches().pop().unwrap();
    land(&fx, &old, 0, b"old content");
    // Its writer aborts it, then writes it again.
    let _ = fx.ns.remote_state(0, &path, (SlotState::Aborted, 11, 0));
    assert_eq!(fx.state(m.slot), SlotState::Aborted);
    assert!(!old.live.load(SeqCst), "the old fetch is called off");
    let _ = fx.ns.remote_state(0, &path, (SlotState::Open, 0, 1));
    assert_eq!(
        fx.state(m.slot),
        SlotState::Open,
        "restarted, and fetched again"
    );
    let (_, _, second, new) = sent.fetches().pop().expect("a reader has it open");
    assert_ne!(first, second);
    assert_eq!(new.from, 0, "from the start: what was here is gone");
    // A late seal of the old fetch changes nothing.
    let _ = fx.ns.fetch_sealed(first, (SlotState::Committed, 11, 0));
    assert_eq!(fx.state(m.slot), SlotState::Open);
    land(&fx, &new, 0, b"new");
    let _ = fx.ns.fetch_sealed(second, (SlotState::Committed, 3, 1));
    assert_eq!(fx.state(m.slot), SlotState::Committed);
    assert_eq!(read_all(&m, 3), b"new");
}

#[test]
fn a_fetch_cut_short_at_its_source_starts_over() {
    let mut fx = Fx::new();
    let sent = node1(&mut fx);
    let r = fx.client("reader");
    let path = fx.p("cut.txt");
    let _ = fx.ns.remote_created(0, created(&path, 0, 1));
    let m = mem(fx.open(r, "cut.txt", RD).unwrap());
    let (_, _, id, sink) = sent.fetches().pop().unwrap();
    land(&fx, &sink, 0, b"stale stale");
    let _ = fx.ns.fetch_sealed(id, (SlotState::Open, 3, 0));
    let (_, _, _, again) = sent.fetches().pop().expect("fetched again");
    assert_eq!(again.from, 0);
    // The copy is empty; its memory is kept, and what it held is stale until written again.
    let slot = fx.table.slot(m.slot).unwrap();
    assert_eq!((slot.len.load(SeqCst), slot.clean.load(SeqCst)), (0, 0));
    assert_eq!(slot.stale.load(SeqCst), 11);
}

#[test]
fn a_pinned_replica_slot_is_not_reused_until_its_fetch_ends() {
    let mut fx = Fx::new();
    let sent = node1(&mut fx);
    let r = fx.client("reader");
    let path = fx.p("gone.txt");
    let _ = fx.ns.remote_created(0, created(&path, 0, 1));
    let m = mem(fx.open(r, "gone.txt", RD).unwrap());
    let (_, _, id, _) = sent.fetches().pop().unwrap();
    fx.ns.close(r, m.slot, false);
    fx.ns.remote_removed(0, &path);
    // The slot is still pinned by the fetch: a new file gets another one.
    let w = fx.client("writer");
    let other = mem(fx.open(w, "new.txt", WR | CREAT).unwrap());
    assert_ne!(other.slot, m.slot);
    let _ = fx.ns.fetch_sealed(id, (SlotState::Committed, 0, 0));
    let third = mem(fx.open(w, "third.txt", WR | CREAT).unwrap());
    assert_eq!(third.slot, m.slot, "released once the fetch ended");
}

#[test]
fn its_writer_persists_a_file_kept_elsewhere_and_a_replica_is_never_permanent() {
    let json = r#"{"name": "wf", "IO_Graph": [], "permanent": ["*"],
                   "home_node_policies": {"manual": [{"name": ["kept.txt"], "app_node": "c"}]}}"#;
    let mut fx = Fx::with_config(json);
    let sent = node1(&mut fx);
    let w = fx.client("writer");
    // Written here, kept on node 2 ("c"): announced with home 2, persisted here.
    let m = mem(fx.open(w, "kept.txt", WR | CREAT).unwrap());
    let home = sent.take().into_iter().find_map(|n| match n {
        Notice::Created(c) => Some(c.home),
        _ => None,
    });
    assert_eq!(home, Some(2));
    write(&fx, &m, 0, b"k");
    assert_eq!(
        fx.ns.exit(w, false).unwrap().len(),
        1,
        "its writer persists it"
    );
    // Another node's file kept here (home 1): fetched at once from its writer, not persisted.
    let path = fx.p("mine.txt");
    let _ = fx.ns.remote_created(0, created(&path, 1, 3));
    let (source, _, id, sink) = sent.fetches().pop().expect("the home fetches at once");
    assert_eq!(source, 0);
    land(&fx, &sink, 0, b"data");
    assert!(
        fx.ns
            .fetch_sealed(id, (SlotState::Committed, 4, 0))
            .is_empty()
    );
    assert_eq!(fx.state(sink.slot), SlotState::Committed);
    // Nor one kept elsewhere (home 0).
    let other = fx.p("theirs.txt");
    let _ = fx.ns.remote_created(0, created(&other, 0, 4));
    let r = fx.client("reader");
    mem(fx.open(r, "theirs.txt", RD).unwrap());
    let (_, _, id, sink) = sent.fetches().pop().unwrap();
    land(&fx, &sink, 0, b"x");
    assert!(
        fx.ns
            .fetch_sealed(id, (SlotState::Committed, 1, 0))
            .is_empty()
    );
}

#[test]
fn waits_and_terminations_count_the_apps_of_every_node() {
    let json = r#"{"name": "wf", "IO_Graph": [{"name": "producer", "input_stream": [], "output_stream": ["late.txt"]}]}"#;
    let mut fx = Fx::with_config(json);
    let _sent = node1(&mut fx);
    let r = fx.client("reader");
    assert!(matches!(
        fx.open(r, "late.txt", RD),
        Ok(Opened::Wait { .. })
    ));
    // The producer attached on node 0, then ended there without making it: ENOENT at last.
    let _ = fx.ns.remote_apps(0, vec!["producer".into()], vec![]);
    assert!(matches!(
        fx.open(r, "late.txt", RD),
        Ok(Opened::Wait { .. })
    ));
    let _ = fx.ns.remote_apps(0, vec![], vec!["producer".into()]);
    assert_eq!(fx.errno(r, "late.txt", RD), libc::ENOENT);
}

#[test]
fn rounds_tell_a_copy_of_a_newer_round_from_old_news() {
    let mut fx = Fx::new();
    let sent = node1(&mut fx);
    let r = fx.client("reader");
    let path = fx.p("kept.txt");
    // Written on node 0, kept on node 2: fetched from node 2, which heard of round 1 first.
    let _ = fx.ns.remote_created(0, created(&path, 2, 5));
    let m = mem(fx.open(r, "kept.txt", RD).unwrap());
    let fetches = sent.fetches();
    let [(source, _, id, sink)] = &fetches[..] else {
        panic!("one fetch");
    };
    assert_eq!(*source, 2);
    land(&fx, sink, 0, b"new");
    let _ = fx.ns.fetch_sealed(*id, (SlotState::Committed, 3, 1));
    assert_eq!(
        fx.state(m.slot),
        SlotState::Committed,
        "the home's word counts"
    );
    // The writer's news of that round, arriving later, changes nothing.
    let _ = fx.ns.remote_state(0, &path, (SlotState::Open, 0, 1));
    let _ = fx.ns.remote_state(0, &path, (SlotState::Committed, 3, 1));
    assert_eq!(fx.state(m.slot), SlotState::Committed);
    assert!(sent.fetches().is_empty());
    assert_eq!(read_all(&m, 3), b"new");
    // A newer round starts over, and is fetched again for its reader.
    let _ = fx.ns.remote_state(0, &path, (SlotState::Open, 0, 2));
    assert_eq!(fx.state(m.slot), SlotState::Open);
    assert_eq!(sent.fetches().len(), 1);
}

#[test]
fn a_copy_aborted_by_a_refused_fetch_recovers_when_its_writer_commits() {
    let mut fx = Fx::new();
    let sent = node1(&mut fx);
    let r = fx.client("reader");
    let path = fx.p("late.txt");
    let _ = fx.ns.remote_created(0, created(&path, 2, 1));
    let m = mem(fx.open(r, "late.txt", RD).unwrap());
    let (_, _, id, _) = sent.fetches().pop().unwrap();
    // Its home never heard of it in time and refused the fetch.
    let _ = fx.ns.fetch_sealed(id, (SlotState::Aborted, 0, 0));
    assert_eq!(fx.state(m.slot), SlotState::Aborted);
    // Its writer completed it: the copy starts over and is fetched again for its reader.
    let _ = fx.ns.remote_state(0, &path, (SlotState::Committed, 2, 0));
    assert_eq!(fx.state(m.slot), SlotState::Open);
    let (_, _, id, sink) = sent.fetches().pop().expect("fetched again");
    land(&fx, &sink, 0, b"ok");
    let _ = fx.ns.fetch_sealed(id, (SlotState::Committed, 2, 0));
    assert_eq!(fx.state(m.slot), SlotState::Committed);
}

#[test]
fn an_empty_copy_aborted_by_a_refused_fetch_recovers_too_and_an_abort_is_retried_once() {
    let mut fx = Fx::new();
    let sent = node1(&mut fx);
    let r = fx.client("reader");
    let path = fx.p("done.flag");
    let _ = fx.ns.remote_created(0, created(&path, 2, 1));
    let m = mem(fx.open(r, "done.flag", RD).unwrap());
    let (_, _, id, _) = sent.fetches().pop().unwrap();
    let _ = fx.ns.fetch_sealed(id, (SlotState::Aborted, 0, 0));
    assert_eq!(fx.state(m.slot), SlotState::Aborted);
    // Its writer committed it empty: the copy recovers although it "holds" its 0 bytes.
    let _ = fx.ns.remote_state(0, &path, (SlotState::Committed, 0, 0));
    let (_, _, id, _) = sent.fetches().pop().expect("fetched again");
    // Its source aborts again although the writer committed it: tried once more...
    let _ = fx.ns.fetch_sealed(id, (SlotState::Aborted, 0, 0));
    let (_, _, id, _) = sent.fetches().pop().expect("retried once");
    assert_eq!(fx.state(m.slot), SlotState::Open);
    // ...then the abort stands.
    let _ = fx.ns.fetch_sealed(id, (SlotState::Aborted, 0, 0));
    assert!(sent.fetches().is_empty());
    assert_eq!(fx.state(m.slot), SlotState::Aborted);
}
