"""Recycled memory (issue 13): the memory of removed files serves the next files, already allocated,
and nothing a removed file held ever shows in a new one — not past a seek, not after a truncation —
nor reaches a process that still holds the removed file through a view, a duplicated fd or a forked
child. Steps are separate processes on one real server; a peer step keeps the server up between
them.
"""

from __future__ import annotations

import hashlib
import os

from test_faults import PRELUDE, status_json

from conftest import Workflow, wait_until

MiB = 1 << 20


def pooled(wf: Workflow) -> int:
    return status_json(wf)["memory_pooled"]  # type: ignore[return-value]


WRITE_AND_REMOVE = (
    PRELUDE
    + """
path, size = sys.argv[1], int(sys.argv[2])
with open(path, "wb") as f:
    for _ in range(size >> 20):
        f.write(b"\\xee" * (1 << 20))
os.remove(path)
"""
)


def test_a_new_file_takes_a_removed_files_memory_and_shows_none_of_its_bytes(workflow: Workflow) -> None:
    wf = workflow
    wf.env["PYCAPIO_POOL_IDLE"] = "600"
    release = wf.start_peer()
    wf.run_step(WRITE_AND_REMOVE, "gone", str(wf.capio_dir / "old.bin"), str(8 * MiB)).check()
    assert pooled(wf) >= 8 * MiB

    # A seek past the end, a truncation that grows the file, an append-mode reopen: every byte not
    # written reads as zero, in the writer and in another process.
    writer = wf.run_step(
        PRELUDE
        + """
path = sys.argv[1]
with open(path, "wb") as f:
    f.write(b"head")
    f.seek(3 << 20)
    f.write(b"mid")
    f.truncate(6 << 20)
with open(path, "ab") as f:
    f.write(b"end")
with open(path, "rb") as f:
    print(hashlib.sha256(f.read()).hexdigest())
""",
        "writer",
        str(wf.capio_dir / "new.bin"),
    ).check()
    expected = b"head" + bytes((3 * MiB) - 4) + b"mid" + bytes(3 * MiB - 3) + b"end"
    assert writer.stdout.split() == [hashlib.sha256(expected).hexdigest()]
    reader = wf.run_step(
        PRELUDE
        + """
with open(sys.argv[1], "rb") as f:
    data = f.read()
print(len(data), hashlib.sha256(data).hexdigest(), data.count(b"\\xee"))
""",
        "reader",
        str(wf.capio_dir / "new.bin"),
    ).check()
    assert reader.stdout.split() == [str(len(expected)), hashlib.sha256(expected).hexdigest(), "0"]
    st = status_json(wf)
    assert st["memory_pooled"] < 8 * MiB, "the new file took the memory"
    assert st["memory_used"] == len(expected), "committed: what lies past its end went back"
    release.touch()


HOLDER = (
    PRELUDE
    + """
d, ready, go = sys.argv[1:4]
def written(name, byte):
    with open(os.path.join(d, name), "wb") as f:
        f.write(byte * (4 << 20))
written("viewed.bin", b"\\xaa")
written("dup.bin", b"\\xbb")
written("forked.bin", b"\\xcc")
# A view outlives its file object...
with open(os.path.join(d, "viewed.bin"), "rb") as f:
    view = f.view()
# ...an fd the program duplicated outlives the file it came from...
with open(os.path.join(d, "dup.bin"), "rb") as f:
    dup = os.dup(f.fileno())
# ...and so does a forked child's copy of an fd, after the parent closed its own.
with open(os.path.join(d, "forked.bin"), "rb") as f:
    fd = os.dup(f.fileno())
child = os.fork()
if child == 0:
    wait_for(go, 120)
    ok = os.pread(fd, 4 << 20, 0) == b"\\xcc" * (4 << 20)
    os._exit(0 if ok else 3)
os.close(fd)
touch(ready)
assert wait_for(go, 120)
print(bytes(view) == b"\\xaa" * (4 << 20), os.pread(dup, 4 << 20, 0) == b"\\xbb" * (4 << 20))
_, code = os.waitpid(child, 0)
print("child", os.waitstatus_to_exitcode(code))
"""
)


def test_memory_a_view_a_dup_or_a_forked_child_still_holds_is_never_recycled(workflow: Workflow) -> None:
    wf = workflow
    wf.env["PYCAPIO_POOL_IDLE"] = "600"
    ready, go = wf.marker("ready"), wf.marker("go")
    holder = wf.start_step(HOLDER, "holder", str(wf.capio_dir), str(ready), str(go))
    assert wait_until(ready.exists, 60), holder.stderr()
    release = wf.start_peer()  # keeps the server up after the holder
    # Removed while held, the three files' memory is not pooled; new files get fresh memory.
    wf.run_step(
        PRELUDE
        + """
d = sys.argv[1]
for name in ("viewed.bin", "dup.bin", "forked.bin"):
    os.remove(os.path.join(d, name))
for n in range(3):
    with open(os.path.join(d, f"new{n}.bin"), "wb") as f:
        f.write(b"\\x11" * (4 << 20))
""",
        "rewriter",
        str(wf.capio_dir),
    ).check()
    st = status_json(wf)
    assert st["memory_pooled"] == 0
    # Still memory in use, counted as such until they let go.
    assert st["memory_held_elsewhere"] >= 12 * MiB, st["memory_held_elsewhere"]
    go.write_text("go")
    out = holder.wait().check().stdout.split("\n")
    assert out[0] == "True True", out
    assert out[1] == "child 0", out
    # Let go (the holder exited): the memory is pooled within about a second.
    assert wait_until(lambda: status_json(wf)["memory_held_elsewhere"] == 0, 30, interval=0.5)
    assert pooled(wf) >= 12 * MiB
    release.touch()


def test_pooled_memory_goes_back_when_idle_and_a_zero_limit_keeps_none(make_workflow) -> None:  # type: ignore[no-untyped-def]
    idle = make_workflow("idle")
    idle.env["PYCAPIO_POOL_IDLE"] = "5"
    release = idle.start_peer("idle-peer")
    idle.run_step(WRITE_AND_REMOVE, "gone", str(idle.capio_dir / "x.bin"), str(4 * MiB)).check()
    assert pooled(idle) >= 4 * MiB
    assert wait_until(lambda: pooled(idle) == 0, 60, interval=1)
    release.touch()

    none = make_workflow("none")
    none.env["PYCAPIO_POOL_LIMIT"] = "0"
    release = none.start_peer("none-peer")
    none.run_step(WRITE_AND_REMOVE, "gone", str(none.capio_dir / "x.bin"), str(4 * MiB)).check()
    st = status_json(none)
    assert (st["memory_pooled"], st["pool_limit"]) == (0, 0)
    release.touch()


def test_each_memory_file_costs_the_server_one_fd(workflow: Workflow) -> None:
    """Ten thousand small files must fit in a common 20,000-fd limit."""
    from test_faults import server_pid

    wf = workflow
    release = wf.start_peer()
    pid = server_pid(wf)
    before = len(os.listdir(f"/proc/{pid}/fd"))
    wf.run_step(
        PRELUDE
        + """
for i in range(300):
    with open(os.path.join(sys.argv[1], f"f{i}.txt"), "w") as f:
        f.write("x")
""",
        "many",
        str(wf.capio_dir),
    ).check()
    after = len(os.listdir(f"/proc/{pid}/fd"))
    assert after - before <= 300 + 20, (before, after)
    release.touch()
