"""Faults with real processes: killed producers, a killed server, killed clients, a server stopped
while it persists, and memory pressure. Every case must end in a clear error within seconds, never
a hang, with everything committed intact; the next run must work.

Servers are found through the runtime directory's ``*.info`` files and signalled by pid only.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ServerTracker, Workflow, info_pids, is_capio_server, pid_alive, wait_until

# Every step starts by saying it is attached; markers live outside the CAPIO directory.
PRELUDE = """\
import errno, hashlib, json, os, sys, time

def touch(path, text="x"):
    with open(path + ".part", "w") as f:
        f.write(text)
    os.replace(path + ".part", path)

def wait_for(path, timeout=60):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.01)
    return os.path.exists(path)
"""


def server_pid(wf: Workflow) -> int:
    """The pid of the workflow's live server (from its info file)."""
    assert wait_until(lambda: any(is_capio_server(p) for p in info_pids(wf.runtime_dir)), 30)
    pids = [p for p in info_pids(wf.runtime_dir) if is_capio_server(p) and pid_alive(p)]
    assert len(pids) == 1, pids
    return pids[0]


def status_json(wf: Workflow) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-m", "pycapio", "server", "status", "--json", "--workflow-name", wf.name],
        env=wf.env,
        capture_output=True,
        text=True,
        timeout=30,
        cwd=wf.root,  # not the checkout, whose pycapio/ has no extension
    )
    assert out.returncode == 0, out.stderr
    reports = json.loads(out.stdout)
    assert len(reports) == 1
    return reports[0]  # type: ignore[no-any-return]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- a producer killed mid-write ----------------------------------------------------------------


def test_a_killed_producer_leaves_other_files_intact_and_a_later_run_works(workflow: Workflow) -> None:
    wf = workflow
    done, written = wf.marker("done"), wf.marker("written")
    good, partial = wf.capio_dir / "good.bin", wf.capio_dir / "partial.bin"
    producer = wf.start_step(
        PRELUDE
        + """
good, partial, done, written = sys.argv[1:5]
with open(good, "wb") as f:
    f.write(b"g" * 100_000)
touch(done)
f = open(partial, "wb")
f.write(b"p" * (3 << 20))
f.flush()
touch(written)
time.sleep(120)
""",
        "producer",
        str(good),
        str(partial),
        str(done),
        str(written),
    )
    consumer = wf.start_step(
        PRELUDE
        + """
try:
    with open(sys.argv[1], "rb") as f:
        f.read()
except OSError as e:
    print("OSError", e.errno)
    sys.exit(3)
""",
        "consumer",
        str(partial),
    )
    assert wait_until(written.exists, 60), producer.stderr()
    os.kill(producer.proc.pid, signal.SIGKILL)
    killed = time.monotonic()
    result = consumer.wait(30)
    assert (result.returncode, result.stdout.split()[0]) == (3, "OSError"), result
    assert time.monotonic() - killed < 10
    # Both files were still uncommitted (they commit when their producer terminates cleanly):
    # both are aborted, none half-visible or half-persisted.
    reader = wf.run_step(
        PRELUDE
        + """
import os
print(os.path.exists(sys.argv[1]), os.path.exists(sys.argv[2]))
""",
        "reader",
        str(good),
        str(partial),
    ).check()
    assert reader.stdout.split() == ["False", "False"], "aborted files are gone, not half-visible"
    assert not good.exists() and not partial.exists()
    # A later run produces both again, and a reader gets exactly that.
    wf.run_step(
        PRELUDE
        + """
for path, byte in zip(sys.argv[1:3], (b"G", b"P")):
    with open(path, "wb") as f:
        f.write(byte * 200_000)
""",
        "producer",
        str(good),
        str(partial),
    ).check()
    out = wf.run_step(
        PRELUDE
        + """
for path in sys.argv[1:3]:
    with open(path, "rb") as f:
        print(hashlib.sha256(f.read()).hexdigest())
""",
        "consumer",
        str(good),
        str(partial),
    ).check()
    assert out.stdout.split() == [sha(b"G" * 200_000), sha(b"P" * 200_000)]
    assert good.read_bytes() == b"G" * 200_000


def test_a_killed_producer_does_not_disturb_a_committed_file_of_another_producer(workflow: Workflow) -> None:
    wf = workflow
    kept = wf.capio_dir / "kept.txt"
    wf.run_step("import sys\nopen(sys.argv[1], 'w').write('committed')\n", "first", str(kept)).check()
    written = wf.marker("w")
    victim = wf.start_step(
        PRELUDE
        + """
kept, other, written = sys.argv[1:4]
with open(kept) as f:           # a reader of the committed file...
    assert f.read() == "committed"
    g = open(other, "w")        # ...that also produces another one
    g.write("half")
    g.flush()
    touch(written)
    time.sleep(120)
""",
        "victim",
        str(kept),
        str(wf.capio_dir / "other.txt"),
        str(written),
    )
    assert wait_until(written.exists, 60), victim.stderr()
    os.kill(victim.proc.pid, signal.SIGKILL)
    victim.proc.wait()
    out = wf.run_step(
        "import os, sys\nprint(open(sys.argv[1]).read(), os.path.exists(sys.argv[2]))\n",
        "after",
        str(kept),
        str(wf.capio_dir / "other.txt"),
    ).check()
    assert out.stdout.split() == ["committed", "False"]
    assert kept.read_text() == "committed"


# -- the server killed --------------------------------------------------------------------------


def test_a_killed_server_releases_every_client_promptly_and_the_next_init_starts_fresh(
    workflow: Workflow,
) -> None:
    wf = workflow
    cl = wf.root / "cl.json"
    cl.write_text(
        json.dumps(
            {
                "name": wf.name,
                "IO_Graph": [{"name": "holder", "input_stream": [], "output_stream": ["held.bin"]}],
                "storage": {"fs": ["held.bin"]},
            }
        )
    )
    held, never = wf.capio_dir / "held.bin", wf.capio_dir / "never.bin"
    ready = {name: wf.marker(name) for name in ("holder", "opener", "reader", "busy")}
    # Each step reports how it ended: the exception type and how long after the kill it came.
    ending = """
def ended(e):
    print(type(e).__name__, isinstance(e, OSError), time.time())
    sys.exit(3)
"""
    steps = {
        "holder": """
f = open(sys.argv[1], "wb")
f.write(b"h" * 4096)
f.flush()
touch(sys.argv[2])
try:
    while True:                     # ordinary calls while it holds the file
        f.write(b"h" * 4096)
        os.stat(sys.argv[1])
        time.sleep(0.01)
except BaseException as e:
    ended(e)
""",
        "opener": """
touch(sys.argv[2])
try:
    open(sys.argv[1], "rb")         # blocked: nobody creates it
except BaseException as e:
    ended(e)
""",
        "reader": """
touch(sys.argv[2])
try:
    with open(sys.argv[1], "rb") as f:   # blocked in read: the holder never commits
        f.read()
except BaseException as e:
    ended(e)
""",
        "busy": """
touch(sys.argv[2])
try:
    while True:
        os.listdir(os.path.dirname(sys.argv[1]))
        with open(sys.argv[1] + ".busy", "w") as g:
            g.write("x")
        time.sleep(0.005)
except BaseException as e:
    ended(e)
""",
    }
    procs = {}
    for name, body in steps.items():
        target = never if name == "opener" else held
        script = PRELUDE + ending + body
        cmd = wf.command(wf.script(script, f"{name}.py"), name, [str(target), str(ready[name])])
        cmd[3:3] = ["--capio-cl", str(cl)]
        logs = wf.root / "logs"
        logs.mkdir(exist_ok=True)
        with open(logs / f"{name}.out", "wb") as out, open(logs / f"{name}.err", "wb") as err:
            proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=wf.env, cwd=wf.root)
        procs[name] = (proc, logs / name)
        if name == "holder":
            assert wait_until(ready["holder"].exists, 60), (logs / "holder.err").read_text()
    for name, marker in ready.items():
        assert wait_until(marker.exists, 60), (procs[name][1].with_suffix(".err")).read_text()
    time.sleep(0.5)  # everyone is in its wait or loop now
    pid = server_pid(wf)
    data_files = [n for n in os.listdir(wf.capio_dir) if ".capio-data-" in n]
    assert len(data_files) == 1, "held.bin's storage-fs data file"
    killed_at = time.time()
    os.kill(pid, signal.SIGKILL)
    for name, (proc, log) in procs.items():
        try:
            rc = proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail(f"{name} hung after the server was killed: {log.with_suffix('.err').read_text()}")
        out = log.with_suffix(".out").read_text().split()
        assert rc == 3 and out[:2] in (["PyCAPIOException", "True"], ["OSError", "True"]), (
            name,
            rc,
            out,
            log.with_suffix(".err").read_text(),
        )
        assert float(out[2]) - killed_at < 5, f"{name} released {float(out[2]) - killed_at:.1f} s late"
    # What the dead server left: socket, info file, its storage-fs data file.
    assert list(wf.runtime_dir.glob("*.sock")) and list(wf.runtime_dir.glob("*.info"))
    assert [n for n in os.listdir(wf.capio_dir) if ".capio-data-" in n] == data_files
    # pycapio server status knows it is stale.
    listing = subprocess.run(
        [sys.executable, "-m", "pycapio", "server", "status"],
        env=wf.env,
        capture_output=True,
        text=True,
        timeout=30,
        cwd=wf.root,
    )
    assert f"workflow '{wf.name}': stale info file (pid {pid} is gone" in listing.stdout, listing
    # The next step's pycapio_init starts a fresh server and works; the leftovers are gone.
    out = wf.run_step(
        "import sys\nopen(sys.argv[1], 'w').write('fresh')\nprint(open(sys.argv[1]).read())\n",
        "next",
        str(wf.capio_dir / "fresh.txt"),
        timeout=60,
    ).check()
    assert out.stdout == "fresh\n"
    assert (wf.capio_dir / "fresh.txt").read_text() == "fresh"
    assert not [n for n in os.listdir(wf.capio_dir) if ".capio-" in n], os.listdir(wf.capio_dir)
    assert not held.exists()


# -- a client killed while holding files open ---------------------------------------------------


def test_a_client_killed_with_files_open_is_cleaned_up_and_the_server_keeps_serving(
    workflow: Workflow,
) -> None:
    wf = workflow
    inp = wf.capio_dir / "input.txt"
    inp.write_text("input on disk")
    wf.run_step(
        "import sys\nopen(sys.argv[1], 'w').write('made')\n", "maker", str(wf.capio_dir / "made.txt")
    ).check()
    ready = wf.marker("ready")
    holder = wf.start_step(
        PRELUDE
        + """
d = os.path.dirname(sys.argv[1])
held = [open(sys.argv[1]), open(os.path.join(d, "made.txt")), open(os.path.join(d, "out.txt"), "w")]
held[2].write("unfinished")
held[2].flush()
touch(sys.argv[2])
time.sleep(120)
""",
        "holder",
        str(inp),
        str(ready),
    )
    keeper = wf.start_step(PRELUDE + "touch(sys.argv[1])\ntime.sleep(120)\n", "keeper", str(wf.marker("k")))
    assert wait_until(ready.exists, 60) and wait_until(wf.marker("k").exists, 60), holder.stderr()
    before = status_json(wf)
    assert {c["app"] for c in before["clients"]} >= {"holder", "keeper"}  # type: ignore[index,union-attr]
    os.kill(holder.proc.pid, signal.SIGKILL)
    holder.proc.wait()

    def holder_gone() -> bool:
        return all(c["app"] != "holder" for c in status_json(wf)["clients"])  # type: ignore[index,union-attr]

    assert wait_until(holder_gone, 15)
    st = status_json(wf)
    files = {Path(f["path"]).name: f for f in st["files"]}  # type: ignore[index,union-attr]
    assert files["out.txt"]["state"] == "aborted", "its unfinished output was aborted"
    assert files["out.txt"]["readers"] == files["out.txt"]["producers"] == []
    # made.txt (persisted by an earlier step's server) and input.txt are disk inputs here.
    assert set(files) == {"out.txt"}, files
    # Everything it held works for others: read, rewrite, unlink.
    out = wf.run_step(
        PRELUDE
        + """
d = sys.argv[1]
print(open(os.path.join(d, "input.txt")).read() + "|" + open(os.path.join(d, "made.txt")).read())
with open(os.path.join(d, "out.txt"), "w") as f:
    f.write("redone")
os.remove(os.path.join(d, "made.txt"))
""",
        "after",
        str(wf.capio_dir),
    ).check()
    assert out.stdout == "input on disk|made\n"
    assert (wf.capio_dir / "out.txt").read_text() == "redone"
    assert inp.read_text() == "input on disk"
    keeper.proc.kill()
    keeper.proc.wait()


# -- the server stopped while it persists -------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_server_stopped_while_persisting_never_leaves_a_half_written_file(
    workflow: Workflow, sig: signal.Signals
) -> None:
    wf = workflow
    target = wf.capio_dir / "big.bin"
    old = b"old content\n" * 1000
    target.write_bytes(old)
    size_mib = int(os.environ.get("PYCAPIO_TEST_PERSIST_MIB", "384"))
    keeper = wf.start_step(PRELUDE + "touch(sys.argv[1])\ntime.sleep(120)\n", "keeper", str(wf.marker("k")))
    assert wait_until(wf.marker("k").exists, 60), keeper.stderr()
    pid = server_pid(wf)
    producer = wf.start_step(
        """
import sys
block = bytes(range(256)) * 4096
with open(sys.argv[1], "wb") as f:
    for _ in range(int(sys.argv[2])):
        f.write(block)
""",
        "producer",
        str(target),
        str(size_mib),
    )
    # The producer's exit commits the file; the server copies it to a hidden temp beside it.
    assert wait_until(lambda: any(".capio-tmp-" in n for n in os.listdir(wf.capio_dir)), 60, 0.001), (
        producer.stderr()
    )
    os.kill(pid, sig)
    assert wait_until(lambda: not pid_alive(pid), 60)
    expected = (bytes(range(256)) * 4096) * size_mib
    content = target.read_bytes()
    if sig == signal.SIGTERM:
        # A graceful stop finishes the persist in flight before it exits.
        assert len(content) == len(expected) and content == expected
        assert producer.wait(30).returncode == 0
        assert not [n for n in os.listdir(wf.capio_dir) if ".capio-" in n]
    else:
        assert content == old, "only the complete new content or the old one, never a mix"
        producer.wait(30)
        # The temp is left behind; the next server of the workflow removes it.
        assert [n for n in os.listdir(wf.capio_dir) if ".capio-tmp-" in n]
        wf.run_step("print('next')", "next").check()
        assert not [n for n in os.listdir(wf.capio_dir) if ".capio-" in n]
        assert target.read_bytes() == old
    keeper.proc.kill()
    keeper.proc.wait()


# -- memory pressure ----------------------------------------------------------------------------

BUDGET_STEP = (
    PRELUDE
    + """
d = sys.argv[1]
with open(os.path.join(d, "small.bin"), "wb") as f:
    f.write(b"s" * (1 << 20))
try:
    with open(os.path.join(d, "big.bin"), "wb") as f:
        for _ in range(16):
            f.write(b"b" * (1 << 20))
    print("no error")
except OSError as e:
    print("error", e.errno, errno.errorcode[e.errno])
print(os.path.getsize(os.path.join(d, "small.bin")))
with open(os.path.join(d, "small.bin"), "rb") as f:
    print(hashlib.sha256(f.read()).hexdigest())
big = os.path.getsize(os.path.join(d, "big.bin"))
print(big < (16 << 20), big % (1 << 20) == 0 or big)
# Freeing memory makes room again.
os.remove(os.path.join(d, "big.bin"))
with open(os.path.join(d, "again.bin"), "wb") as f:
    f.write(b"a" * (4 << 20))
print("again ok")
"""
)


def test_writes_past_the_memory_budget_fail_with_enospc_and_written_data_stays(workflow: Workflow) -> None:
    wf = workflow
    wf.env["PYCAPIO_MEMORY_LIMIT"] = "8M"
    out = wf.run_step(BUDGET_STEP, "writer", str(wf.capio_dir)).check().stdout.split("\n")
    assert out[0] == "error 28 ENOSPC", out
    assert out[1] == str(1 << 20)
    assert out[2] == sha(b"s" * (1 << 20))
    assert out[3].startswith("True"), out
    assert out[4] == "again ok"
    assert (wf.capio_dir / "small.bin").read_bytes() == b"s" * (1 << 20)
    assert (wf.capio_dir / "again.bin").stat().st_size == 4 << 20
    # The server said why in its log.
    log = "".join(p.read_text() for p in wf.runtime_dir.glob("*.log"))
    assert "memory limit: refused to grow" in log and "big.bin" in log, log


def test_the_budget_is_shared_by_the_workflow_and_a_bad_value_is_a_clear_error(workflow: Workflow) -> None:
    wf = workflow
    wf.env["PYCAPIO_MEMORY_LIMIT"] = "6M"
    hold = wf.marker("hold")
    holder = wf.start_step(
        PRELUDE
        + "f = open(sys.argv[1], 'wb')\nf.write(b'x' * (5 << 20))\nf.flush()\n"
        + "touch(sys.argv[2])\ntime.sleep(120)\n",
        "holder",
        str(wf.capio_dir / "a.bin"),
        str(hold),
    )
    assert wait_until(hold.exists, 60), holder.stderr()
    other = wf.run_step(
        PRELUDE
        + """
try:
    with open(sys.argv[1], "wb") as f:
        f.write(b"y" * (2 << 20))
except OSError as e:
    print(errno.errorcode[e.errno])
""",
        "other",
        str(wf.capio_dir / "b.bin"),
    ).check()
    assert other.stdout.strip() == "ENOSPC"
    st = status_json(wf)
    assert st["memory_limit"] == 6 << 20 and st["memory_used"] <= 6 << 20  # type: ignore[operator]
    pid = st["server"]["pid"]  # type: ignore[index]
    holder.proc.kill()
    holder.proc.wait()

    wf2 = Workflow(wf.root, wf.capio_dir, wf.name + "-bad", wf.runtime_dir, dict(wf.env))
    wf2.env["PYCAPIO_MEMORY_LIMIT"] = "plenty"
    bad = wf2.run_step("print('ran')", "x")
    wf2.cleanup()
    assert bad.returncode != 0 and "ran" not in bad.stdout
    assert "invalid memory limit 'plenty'" in bad.stderr, bad.stderr
    assert not [p for p in ServerTracker(wf.runtime_dir).live() if p != pid], "no server started"
