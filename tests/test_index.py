"""The namespace index (issue 14): a step finds committed files, their attributes and the paths
that do not exist from the index the server publishes in shared memory, without a request — and
every answer is the one the server would give, even while other steps create, rename and remove
files under it. Steps are separate processes on one real server; ``client_requests`` in the
server's status counts the requests clients make.

A persisted file's copy on disk is checked first, as the server checks it.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_capio_cl import config, start, step_rule
from test_faults import status_json

from conftest import Step, Workflow, wait_until


def in_memory(wf: Workflow) -> Path:
    """A CAPIO-CL file under which every file is committed on close and never persisted."""
    stream = {"name": ["*"], "committed": "on_close", "mode": "no_update"}
    return config(wf, {"IO_Graph": [step_rule("writer", ["*"], [stream])]}, f"{wf.name}.json")


def step(wf: Workflow, cl: Path | None, body: str, app: str, *args: str) -> Step:
    """A step (``body`` after the usual prelude) attached under ``cl``."""
    return start(wf, cl, textwrap.dedent(body), app, *args)


def keeper(wf: Workflow, cl: Path | None) -> Path:
    """A step that keeps the server up until the returned path is written."""
    done = wf.marker(f"{wf.name}-keeper")
    step(wf, cl, "wait_for(sys.argv[1], 600)\n", "keeper", str(done))
    return done


@pytest.fixture
def kept(workflow: Workflow) -> Iterator[tuple[Workflow, Path]]:
    """A workflow under ``in_memory``, its server kept up for the test."""
    cl = in_memory(workflow)
    release = keeper(workflow, cl)
    yield workflow, cl
    release.write_text("done")


PRODUCE = """
root = sys.argv[1]
os.mkdir(root)
for i in range(40):
    path = os.path.join(root, f"f{i:02d}.dat")
    with open(path, "wb") as f:
        f.write(f"file {i} ".encode() * (i + 1))
    os.chmod(path, 0o600 + i % 8)
    os.utime(path, ns=(1_000_000_000 + i, 2_000_000_000 + i))
# A path longer than the index holds: the server answers for it.
deep = os.path.join(root, "d" * 120, "e" * 120)
os.makedirs(deep)
with open(os.path.join(deep, "long.dat"), "wb") as f:
    f.write(b"long")
"""

CONSUME = """
import stat
root, ready, go, done, finish = sys.argv[1:6]
os.stat(root)  # attached, and the directory is known
touch(ready)
wait_for(go, 60)
for i in range(40):
    path = os.path.join(root, f"f{i:02d}.dat")
    want = f"file {i} ".encode() * (i + 1)
    st = os.stat(path)
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600 + i % 8, oct(st.st_mode)
    assert (st.st_size, st.st_nlink) == (len(want), 1), st
    assert (st.st_atime_ns, st.st_mtime_ns) == (1_000_000_000 + i, 2_000_000_000 + i), st
    assert os.lstat(path) == st
    assert os.path.isfile(path) and os.path.exists(path)
    with open(path, "rb") as f:
        assert f.read() == want
        assert os.path.samestat(os.fstat(f.fileno()), st)
    assert not os.path.exists(path + ".missing")
    try:
        os.stat(os.path.join(root, f"g{i}"))
    except FileNotFoundError as e:
        assert e.filename == os.path.join(root, f"g{i}"), e
    else:
        raise AssertionError("a missing file was found")
held = open(os.path.join(root, "f07.dat"), "rb")
touch(done)
wait_for(finish, 60)
deep = os.path.join(root, "d" * 120, "e" * 120, "long.dat")
with open(deep, "rb") as f:
    assert f.read() == b"long"
assert os.stat(deep).st_size == 4
touch(done + ".long")
wait_for(finish + ".long", 60)
held.close()
print("ok")
"""


def requests(wf: Workflow) -> int:
    return status_json(wf)["server"]["client_requests"]  # type: ignore[index, no-any-return]


def consume_without_requests(wf: Workflow, cl: Path | None, root: Path) -> tuple[Step, Path, Path]:
    """Run CONSUME's checks of the 40 files under ``root`` and assert they made no request;
    returns the consumer (holding one file open) and its ``done`` and ``finish`` markers."""
    ready, go, done, finish = (wf.marker(m) for m in ("ready", "go", "done", "finish"))
    consumer = step(wf, cl, CONSUME, "consumer", str(root), str(ready), str(go), str(done), str(finish))
    assert wait_until(ready.exists, 60), consumer.stderr()
    before = requests(wf)
    go.write_text("go")
    assert wait_until(lambda: done.exists() or not consumer.running(), 60), consumer.stderr()
    assert done.exists(), consumer.stderr()
    # 40 opens and reads, 120 stats, 80 look-ups of missing paths: not one request.
    assert requests(wf) == before
    return consumer, done, finish


def test_committed_files_are_opened_stated_and_missed_without_a_request(kept: tuple[Workflow, Path]) -> None:
    wf, cl = kept
    root = wf.capio_dir / "out"
    step(wf, cl, PRODUCE, "writer", str(root)).wait(60).check()
    consumer, done, finish = consume_without_requests(wf, cl, root)

    # The server never saw the open the consumer still holds, yet its status shows it.
    st = status_json(wf)
    (held,) = [f for f in st["files"] if f["path"] == str(root / "f07.dat")]  # type: ignore[union-attr]
    assert [r["app"] for r in held["readers"]] == ["consumer"]
    (client,) = [c for c in st["clients"] if c["app"] == "consumer"]  # type: ignore[union-attr]
    assert client["open_files"] == 1

    # A path longer than the index holds is the server's to answer.
    before = requests(wf)
    finish.write_text("go")
    long_done = done.with_name(done.name + ".long")
    assert wait_until(lambda: long_done.exists() or not consumer.running(), 60), consumer.stderr()
    assert requests(wf) > before
    finish.with_name(finish.name + ".long").write_text("go")
    assert consumer.wait(60).check().stdout == "ok\n"


def test_persisted_files_are_answered_without_a_request_until_their_disk_copy_changes(
    workflow: Workflow,
) -> None:
    # Without a CAPIO-CL file every file is persisted. A step checks the disk copy first, as the
    # server does: one that another program replaced makes the server serve the disk's file.
    wf = workflow
    release = keeper(wf, None)
    root = wf.capio_dir / "out"
    step(wf, None, PRODUCE, "writer", str(root)).wait(60).check()
    on_disk = [root / f"f{i:02d}.dat" for i in range(40)]
    assert wait_until(lambda: all(p.exists() for p in on_disk), 60)
    consumer, _, finish = consume_without_requests(wf, None, root)
    finish.write_text("go")
    finish.with_name(finish.name + ".long").write_text("go")
    assert consumer.wait(60).check().stdout == "ok\n"

    # Another program replaces one persisted copy (the test itself is not under CAPIO).
    (root / "f05.new").write_bytes(b"replaced on disk")
    (root / "f05.new").replace(root / "f05.dat")
    out = (
        step(
            wf,
            None,
            """
path = sys.argv[1]
with open(path, "rb") as f:
    print(f.read().decode(), os.stat(path).st_size)
""",
            "reader",
            str(root / "f05.dat"),
        )
        .wait(60)
        .check()
    )
    assert out.stdout == "replaced on disk 16\n"
    release.write_text("done")


CHURN = """
root, stop = sys.argv[1], sys.argv[2]
n = 0
while not os.path.exists(stop):
    n += 1
    for i in range(8):
        path = os.path.join(root, f"n{i}")
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(f"{path} {n} ".encode() * (1 + n % 50))
        os.replace(tmp, path)  # over the previous version: its memory goes to the pool
    for i in range(0, 8, 3):
        os.remove(os.path.join(root, f"n{i}"))
print(n)
"""

LOOK = """
import re
root, stop = sys.argv[1], sys.argv[2]
deadline = time.monotonic() + 4
counts = {"read": 0, "missing": 0, "stat": 0}
seen = set()
while time.monotonic() < deadline:
    for i in range(8):
        path = os.path.join(root, f"n{i}")
        try:
            os.stat(path)
            counts["stat"] += 1
            # Binary through CAPIO's raw file, text through the stdlib's FileIO on a plain fd.
            if counts["stat"] % 2:
                with open(path, "rb") as f:
                    data = f.read()
            else:
                with open(path, encoding="ascii") as f:
                    data = f.read().encode()
        except FileNotFoundError:
            # Only n0, n3 and n6 are ever removed; the others are only replaced (os.replace),
            # which never leaves the name missing once it existed.
            assert i % 3 == 0 or path not in seen, f"{path} went missing"
            counts["missing"] += 1
            continue
        seen.add(path)
        # Whatever version was read, it is whole and it is this name's.
        m = re.fullmatch(rb"(?:(\\S+) (\\d+) )+", data)
        assert m, data[:80]
        versions = set(re.findall(rb"(\\S+) (\\d+) ", data))
        assert versions == {(path.encode(), m.group(2))}, (path, data[:80])
        counts["read"] += 1
touch(stop)
print(json.dumps(counts))
"""


def test_lookups_while_files_are_replaced_and_removed_see_whole_files_of_their_own_name(
    kept: tuple[Workflow, Path],
) -> None:
    wf, cl = kept
    root = wf.capio_dir / "churn"
    root.mkdir()
    stop = wf.marker("stop")
    churn = step(wf, cl, CHURN, "writer", str(root), str(stop))
    looker = step(wf, cl, LOOK, "looker", str(root), str(stop))
    counts = looker.wait(120).check().stdout
    rounds = int(churn.wait(60).check().stdout)
    seen = json.loads(counts)
    assert rounds > 10 and seen["read"] > 100 and seen["missing"] > 0, (rounds, seen)


def test_a_reader_of_a_committed_file_sees_it_grow_when_it_is_written_again(
    kept: tuple[Workflow, Path],
) -> None:
    wf, cl = kept
    path = wf.capio_dir / "grow.txt"
    step(wf, cl, "open(sys.argv[1], 'w').write('first')\n", "writer", str(path)).wait(60).check()
    out = (
        step(
            wf,
            cl,
            """
path = sys.argv[1]
with open(path, "rb") as r:
    assert r.read() == b"first"
    with open(path, "ab") as w:
        w.write(b" second")
        w.flush()
        # Open for writing again: its size is the slot's, not what the reader's open saw.
        assert os.stat(path).st_size == len("first second")
    assert r.read() == b" second"
with open(path, "rb") as r:
    print(r.read().decode())
""",
            "writer",
            str(path),
        )
        .wait(60)
        .check()
    )
    assert out.stdout == "first second\n"


ATTRS = """
import stat
path = sys.argv[1]
def same(st, live):
    keys = ("st_mode", "st_ino", "st_dev", "st_size", "st_uid", "st_gid", "st_mtime_ns", "st_ctime_ns")
    return all(getattr(st, k) == getattr(live, k) for k in keys), (st, live)
fd = os.open(path, os.O_RDONLY)  # a CAPIO fd: its fstat is the object's own, read live
ok, why = same(os.stat(path), os.fstat(fd))
assert ok, why
os.chmod(path, 0o600)  # through the server, which publishes the file's attributes again
st = os.stat(path)
assert stat.S_IMODE(st.st_mode) == 0o600 and same(st, os.fstat(fd))[0], (st, os.fstat(fd))
os.fchmod(fd, 0o640)  # through this step's own fd: what the server published no longer holds
os.utime(fd, ns=(5_000_000_000, 6_000_000_000))
st = os.stat(path)
assert stat.S_IMODE(st.st_mode) == 0o640 and st.st_mtime_ns == 6_000_000_000, st
assert same(st, os.fstat(fd))[0] and os.lstat(path) == st, (st, os.fstat(fd))
os.chmod(path, 0o640)  # the server publishes again: what it published holds once more
with open(path, encoding="utf-8") as t:  # read by the stdlib's own FileIO, on a plain fd
    assert type(t.buffer.raw) is type(open(sys.executable, "rb", buffering=0)), t.buffer.raw
    os.fchmod(t.fileno(), 0o604)  # through the OS: told all the same
    st = os.stat(path)
    assert stat.S_IMODE(st.st_mode) == 0o604 and same(st, os.fstat(fd))[0], (st, os.fstat(fd))
os.close(fd)
print("ok")
"""


def committed_then_checked(kept: tuple[Workflow, Path], name: str, check: str) -> Path:
    """A file ``name`` one step writes and commits, then ``check`` run by another on its path
    (``sys.argv[1]``), which must print "ok"; returns the path."""
    wf, cl = kept
    path = wf.capio_dir / name
    step(wf, cl, "open(sys.argv[1], 'w').write('some text')\n", "writer", str(path)).wait(60).check()
    result = step(wf, cl, check, "checker", str(path)).wait(60).check()
    assert result.stdout.strip() == "ok"
    return path


def test_stat_of_a_committed_file_follows_every_change_of_its_attributes(kept: tuple[Workflow, Path]) -> None:
    # A committed file's stat is answered from the attributes the server published: a change
    # through the server publishes them again, one through a step's own fd makes them unusable.
    wf, cl = kept
    path = committed_then_checked(kept, "attrs.txt", ATTRS)
    # And another step, later, sees the last change.
    after = "st = os.stat(sys.argv[1]); print(oct(st.st_mode & 0o777), st.st_mtime_ns)\n"
    result = step(wf, cl, after, "checker", str(path)).wait(60).check()
    assert result.stdout.split() == ["0o604", "6000000000"]


NOATIME = """
import time
path = sys.argv[1]
before = os.stat(path).st_atime_ns
time.sleep(0.05)  # past the kernel's clock tick: a read that touched the access time would show
with open(path, encoding="utf-8") as f:
    f.read()
with open(path, "rb") as f:
    f.read()
fd = os.open(path, os.O_RDONLY)
os.read(fd, 100)
live = os.fstat(fd).st_atime_ns  # the memory object's own
os.close(fd)
after = os.stat(path).st_atime_ns
assert before == after == live, (before, after, live)
print("ok")
"""


def test_reads_leave_a_files_access_time_alone_as_on_a_noatime_mount(kept: tuple[Workflow, Path]) -> None:
    committed_then_checked(kept, "atime.txt", NOATIME)


def test_a_reader_holding_a_file_rewritten_from_scratch_reads_the_new_bytes_only(
    kept: tuple[Workflow, Path],
) -> None:
    # The reader opened the committed file without the server; another step then rewrites it
    # shorter ("w" truncates) and, still writing, lets the reader read. As on a plain file, the
    # reader sees the new bytes and nothing of the old ones beyond them.
    wf, cl = kept
    path = wf.capio_dir / "table.csv"
    first = "open(sys.argv[1], 'w').write('old,old,old,old\\n' * 100)\n"
    step(wf, cl, first, "writer", str(path)).wait(60).check()
    opened, written, read = wf.marker("opened"), wf.marker("written"), wf.marker("read")
    reader = step(
        wf,
        cl,
        """
path, opened, written, read = sys.argv[1:5]
with open(sys.executable, "rb", buffering=0) as plain:
    builtin = type(plain)
with open(path, encoding="ascii") as f:
    assert type(f.buffer.raw) is builtin  # read from the memory object itself
    touch(opened)
    wait_for(written, 60)
    print(f.read(), end="")
touch(read)
""",
        "reader",
        str(path),
        str(opened),
        str(written),
        str(read),
    )
    assert wait_until(opened.exists, 60), reader.stderr()
    rewrite = """
path, written, read = sys.argv[1:4]
with open(path, "w") as f:
    f.write("new\\n")
    f.flush()
    touch(written)
    wait_for(read, 60)
"""
    writer = step(wf, cl, rewrite, "writer", str(path), str(written), str(read))
    assert reader.wait(60).check().stdout == "new\n"
    writer.wait(60).check()


def test_a_committed_text_file_is_read_by_the_stdlibs_own_file_object(kept: tuple[Workflow, Path]) -> None:
    # Read as text, a committed file comes under the exact built-in FileIO (CPython reads each
    # line without a Python-level check), on a plain fd: its fstat is the file as its path
    # reports it, and the OS's own calls on it read the file.
    wf, cl = kept
    path = wf.capio_dir / "lines.csv"
    lines = "".join(f"{i},row {i}\n" for i in range(5000))
    produce = (
        "open(sys.argv[1], 'w', encoding='utf-8').write(''.join(f'{i},row {i}\\n' for i in range(5000)))\n"
    )
    step(wf, cl, produce, "writer", str(path)).wait(60).check()
    out = (
        step(
            wf,
            cl,
            """
import hashlib
path = sys.argv[1]
with open(sys.executable, "rb", buffering=0) as plain:
    builtin = type(plain)  # the real FileIO (while patched, io.FileIO names a stand-in)
with open(path, encoding="utf-8") as f:
    raw = f.buffer.raw
    assert type(raw) is builtin and raw.name == path, raw
    st, fst = os.stat(path), os.fstat(f.fileno())
    assert os.path.samestat(st, fst) and fst.st_nlink == 1 and fst.st_size == st.st_size
    assert os.stat(f.fileno()) == fst
    dup = os.dup(f.fileno())
    assert os.fstat(dup) == fst
    os.close(dup)
# Other files without a link are reported as the OS reports them.
import tempfile
with tempfile.TemporaryFile() as t:
    assert os.fstat(t.fileno()).st_nlink == 0
mem = os.memfd_create("other")
assert os.fstat(mem).st_nlink == 0  # not taken for a CAPIO file's object
os.close(mem)
with open(path, encoding="utf-8") as f:
    first = f.readline()
    rest = f.read()
    f.seek(0)
    assert os.read(f.fileno(), 8) == first.encode()[:8]
    print(hashlib.sha256((first + rest).encode()).hexdigest())
# Open for writing as text, a file is CAPIO's raw file as before.
with open(path, "a", encoding="utf-8") as f:
    assert type(f.buffer.raw).__name__ == "CapioFileIO"
# Read back at once by its writer: the server commits it (on close) before it answers the open.
own = path + ".own"
with open(own, "w", encoding="utf-8") as f:
    f.write("mine\\n")
with open(own, encoding="utf-8") as f:
    assert type(f.buffer.raw) is builtin and f.read() == "mine\\n"
""",
            "reader",
            str(path),
        )
        .wait(60)
        .check()
    )
    import hashlib

    assert out.stdout == hashlib.sha256(lines.encode()).hexdigest() + "\n"


def test_under_a_memory_limit_every_look_up_is_asked(workflow: Workflow) -> None:
    # The server must see every holder of the memory it budgets: nothing is offered directly.
    wf = workflow
    wf.env["PYCAPIO_MEMORY_LIMIT"] = "64M"
    cl = in_memory(wf)
    release = keeper(wf, cl)
    path = wf.capio_dir / "limited.txt"
    step(wf, cl, "open(sys.argv[1], 'w').write('limited')\n", "writer", str(path)).wait(60).check()
    ready, go, done = wf.marker("ready"), wf.marker("go"), wf.marker("done")
    reader = step(
        wf,
        cl,
        """
path, ready, go, done = sys.argv[1:5]
touch(ready)
wait_for(go, 60)
with open(path, encoding="utf-8") as f:
    assert type(f.buffer.raw).__name__ == "CapioFileIO" and f.read() == "limited"
assert os.stat(path).st_size == 7
touch(done)
""",
        "reader",
        str(path),
        str(ready),
        str(go),
        str(done),
    )
    assert wait_until(ready.exists, 60), reader.stderr()
    before = requests(wf)
    go.write_text("go")
    reader.wait(60).check()
    assert done.exists()
    # The open, its close and the stat were asked (the reader's exit comes on top).
    assert requests(wf) >= before + 3
    release.write_text("done")
