//! The file table on its own: every transition keeps the node and its shared slot in agreement;
//! slots are allocated, reused and freed; rekeys and shutdown.

use super::super::files::{FileNode, FileTable, NewFile};
use super::*;
use crate::backing;
use capio_cl::Rule;

fn table(slots: u32) -> (FileTable, Arc<StateTable>) {
    let shared = Arc::new(StateTable::create(slots).unwrap());
    (FileTable::new(shared.clone(), Default::default()), shared)
}

fn new_file(dir: &Path, commit: CommitRule, permanent: bool) -> NewFile {
    let pool = &mut crate::pool::Pool::default();
    let (data, backing, memory) =
        backing::create(dir, &dir.join("f"), capio_cl::Storage::Memory, Some(pool)).unwrap();
    NewFile {
        data,
        backing,
        memory,
        root: dir.to_path_buf(),
        rule: Rule {
            commit,
            permanent,
            ..capio_cl::Rules::default_no_config().rule_for(&dir.join("f"))
        },
        len: 0,
        direct_write: false,
    }
}

/// Every node's state is its slot's, and every slot no node holds is free.
fn agree(files: &FileTable, shared: &StateTable) {
    let nodes: Vec<&FileNode> = files
        .iter()
        .map(|(_, n)| n)
        .chain(files.unlinked().map(|(_, n)| n))
        .collect();
    for n in &nodes {
        assert_eq!(shared.slot(n.slot()).unwrap().state(), n.state());
    }
    for slot in 1..shared.slots() {
        if nodes.iter().all(|n| n.slot() != slot) {
            assert_eq!(shared.slot(slot).unwrap().state(), SlotState::Free);
        }
    }
}

#[test]
fn every_transition_keeps_the_slot_and_the_node_in_agreement() {
    let t = TestDir::new();
    let (mut files, shared) = table(8);
    let path = t.path().join("f");
    let slot = files
        .create(&path, new_file(t.path(), CommitRule::OnTermination, true))
        .unwrap();
    agree(&files, &shared);
    assert_eq!(files.get(&path).unwrap().state(), SlotState::Open);

    let c = files.commit(slot).unwrap();
    assert!((c.generation, c.permanent) == (1, true));
    assert!(files.commit(slot).is_none(), "a commit happens once");
    agree(&files, &shared);

    let node = files.get_mut(&path).unwrap();
    node.persisted = true;
    node.closes_by_producers = 3;
    assert!(!node.abort(), "only an open file aborts");
    assert!(node.reopen());
    assert!((node.persisted, node.closes_by_producers) == (false, 0));
    assert!(!node.reopen(), "only a committed file reopens");
    agree(&files, &shared);

    let node = files.get_mut(&path).unwrap();
    assert!(node.abort());
    agree(&files, &shared);
    assert!(
        files.visible(&path).is_none(),
        "aborted files are invisible"
    );
    assert_eq!(files.commit(slot).map(|c| c.generation), None);

    let (node, budget) = files.node_and_budget(slot).unwrap();
    assert!(node.restart(budget).unwrap());
    assert!(
        !node.restart(budget).unwrap(),
        "only an aborted file restarts"
    );
    agree(&files, &shared);
    assert_eq!(files.commit(slot).unwrap().generation, 2);

    assert_eq!(files.unlink(&path), Some(slot));
    assert!(files.get(&path).is_none() && files.node(slot).is_some());
    agree(&files, &shared);
    assert!(files.release(slot));
    assert!(!files.release(slot), "released once");
    agree(&files, &shared);
    assert_eq!(shared.slot(slot).unwrap().state(), SlotState::Free);
}

#[test]
fn slots_are_reused_and_the_table_fills_up() {
    let t = TestDir::new();
    let (mut files, shared) = table(4);
    let rule = || new_file(t.path(), CommitRule::OnTermination, false);
    let a = files.create(&t.path().join("a"), rule()).unwrap();
    let b = files.create(&t.path().join("b"), rule()).unwrap();
    let c = files.create(&t.path().join("c"), rule()).unwrap();
    assert_eq!((a, b, c), (1, 2, 3), "slot 0 is the namespace's");
    assert!(matches!(
        files.create(&t.path().join("d"), rule()),
        Err(FsError::TableFull)
    ));
    files.unlink(&t.path().join("b"));
    files.release(b);
    assert_eq!(files.create(&t.path().join("d"), rule()).unwrap(), b);
    agree(&files, &shared);
}

#[test]
fn a_rekey_keeps_the_slot_and_the_rule_decides_on_file_candidacy() {
    let t = TestDir::new();
    let (mut files, _shared) = table(8);
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    let deps = CommitRule::OnFile(vec![t.path().join("dep")]);
    let slot = files.create(&src, new_file(t.path(), deps, false)).unwrap();
    assert_eq!(files.on_file().collect::<Vec<_>>(), vec![slot]);
    assert_eq!(files.rekey(&src, &dst).unwrap().slot(), slot);
    assert_eq!(files.path_of(slot), Some(&dst));
    assert!(files.get(&src).is_none());
    files.set_rule(&dst, capio_cl::Rules::default_no_config().rule_for(&dst));
    assert_eq!(files.on_file().count(), 0);
    assert_eq!(files.paths_under(t.path()), vec![dst]);
}

#[test]
fn shutting_down_aborts_open_files_and_reports_what_is_not_on_disk() {
    let t = TestDir::new();
    let (mut files, shared) = table(8);
    let rule = || new_file(t.path(), CommitRule::OnTermination, true);
    let open = files.create(&t.path().join("open"), rule()).unwrap();
    let done = files.create(&t.path().join("done"), rule()).unwrap();
    let kept = files.create(&t.path().join("kept"), rule()).unwrap();
    files.commit(done);
    files.commit(kept);
    files.get_mut(&t.path().join("kept")).unwrap().persisted = true;
    let gone = files.create(&t.path().join("gone"), rule()).unwrap();
    files.unlink(&t.path().join("gone"));
    let lost = files.shut_down();
    let names: Vec<(&Path, SlotState)> = lost.iter().map(|l| (l.path.as_path(), l.state)).collect();
    let (d, o) = (t.path().join("done"), t.path().join("open"));
    assert_eq!(
        names,
        vec![
            (d.as_path(), SlotState::Committed),
            (o.as_path(), SlotState::Open)
        ]
    );
    agree(&files, &shared);
    assert_eq!(shared.slot(open).unwrap().state(), SlotState::Aborted);
    assert_eq!(shared.slot(gone).unwrap().state(), SlotState::Aborted);
    assert_eq!(shared.slot(kept).unwrap().state(), SlotState::Committed);
}
