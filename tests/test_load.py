"""Load: many client processes x threads creating, streaming and reading thousands of files at once
on one server, every byte accounted for by checksums, under a watchdog that fails the test (with the
server's status) instead of hanging.

Sizes come from the environment so CI can run a lighter version: ``PYCAPIO_LOAD_PROCS`` (32),
``PYCAPIO_LOAD_THREADS`` (4), ``PYCAPIO_LOAD_FILES`` (files per thread, 32), ``PYCAPIO_LOAD_TIMEOUT``
(seconds, 150).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import Workflow

PROCS = int(os.environ.get("PYCAPIO_LOAD_PROCS", "32"))
THREADS = int(os.environ.get("PYCAPIO_LOAD_THREADS", "4"))
FILES = int(os.environ.get("PYCAPIO_LOAD_FILES", "32"))
TIMEOUT = float(os.environ.get("PYCAPIO_LOAD_TIMEOUT", "150"))

# Worker p, thread t writes load/p<p>/t<t>-<i>.bin (a header naming it, random bytes, their
# SHA-256) in chunks, and after each file streams file i of worker p+1's thread t, checking its
# header, its trailer and its size. No cycle can deadlock: every read waits only for a write that
# its producer does before its own read.
WORKER = r"""
import hashlib, json, os, random, sys, threading

root = sys.argv[1]
me, procs, threads, files = (int(a) for a in sys.argv[2:6])
peer = (me + 1) % procs


def spec(p, t, i):
    rng = random.Random(p * 1_000_003 + t * 10_007 + i)
    size = (1 << 20) + rng.randrange(1 << 16) if rng.randrange(16) == 0 else rng.randrange(1 << 16)
    return rng, size


def path(p, t, i):
    return os.path.join(root, "p%d" % p, "t%d-%d.bin" % (t, i))


def produce(t, i, out):
    rng, size = spec(me, t, i)
    header = b"%d:%d:%d:" % (me, t, i)
    payload = header + rng.randbytes(size)
    data = payload + hashlib.sha256(payload).digest()
    with open(path(me, t, i), "wb") as f:
        for at in range(0, len(data), 1 << 16):
            f.write(data[at : at + (1 << 16)])
            f.flush()  # streamed: the reader sees it chunk by chunk (no_update)
    out["written"] += len(data)
    out["files"][path(me, t, i)] = hashlib.sha256(data).hexdigest()


def consume(t, i, out):
    _, size = spec(peer, t, i)
    digest = hashlib.sha256()
    chunks = []
    with open(path(peer, t, i), "rb") as f:  # waits until the peer has created it
        while chunk := f.read(1 << 16):
            chunks.append(chunk)
            digest.update(chunk)
    data = b"".join(chunks)
    header = b"%d:%d:%d:" % (peer, t, i)
    payload, trailer = data[:-32], data[-32:]
    ok = payload.startswith(header) and len(payload) == len(header) + size
    ok = ok and hashlib.sha256(payload).digest() == trailer
    if not ok:
        out["bad"].append(path(peer, t, i))
    out["read"] += len(data)
    out["seen"][path(peer, t, i)] = digest.hexdigest()
    st = os.stat(path(peer, t, i))
    if st.st_size != len(data):
        out["bad"].append("stat " + path(peer, t, i))


def run(t, out):
    try:
        for i in range(files):
            produce(t, i, out)
            consume(t, i, out)
        names = os.listdir(os.path.join(root, "p%d" % me))
        out["listed"] = sum(1 for n in names if n.startswith("t%d-" % t))
    except BaseException as e:
        out["error"] = "%s: %s" % (type(e).__name__, e)


os.makedirs(os.path.join(root, "p%d" % me), exist_ok=True)
results = [{"written": 0, "read": 0, "files": {}, "seen": {}, "bad": [], "listed": 0} for _ in range(threads)]
workers = [threading.Thread(target=run, args=(t, results[t])) for t in range(threads)]
for w in workers:
    w.start()
for w in workers:
    w.join()
print(json.dumps(results))
"""


def config(wf: Workflow) -> Path:
    """Worker p produces load/p<p>/* (committed at close, streamed, persisted) and reads p+1's."""
    path = wf.root / "load.json"
    steps = []
    for p in range(PROCS):
        mine, theirs = f"load/p{p}/*", f"load/p{(p + 1) % PROCS}/*"
        rule = {"name": [mine], "committed": "on_close", "mode": "no_update"}
        steps.append(
            {"name": f"w{p}", "input_stream": [theirs], "output_stream": [mine], "streaming": [rule]}
        )
    path.write_text(json.dumps({"name": wf.name, "IO_Graph": steps, "permanent": ["load/*"]}))
    return path


def server_cli(wf: Workflow, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pycapio", "server", *args]
    return subprocess.run(cmd, env=wf.env, capture_output=True, text=True, timeout=60, cwd=wf.root)


@pytest.mark.timeout(TIMEOUT + 120)
def test_processes_times_threads_stream_thousands_of_files_and_every_byte_is_accounted_for(
    workflow: Workflow,
) -> None:
    wf = workflow
    cl = config(wf)
    root = wf.capio_dir / "load"
    root.mkdir()
    started = server_cli(
        wf, "start", "--capio-dir", str(wf.capio_dir), "--workflow-name", wf.name, "--capio-cl", str(cl)
    )
    assert started.returncode == 0, started.stderr
    script = wf.script(WORKER, "worker.py")
    logs = wf.root / "logs"
    logs.mkdir(exist_ok=True)
    procs = []
    t0 = time.monotonic()
    for p in range(PROCS):
        cmd = wf.command(script, f"w{p}", [str(root), str(p), str(PROCS), str(THREADS), str(FILES)])
        cmd[3:3] = ["--capio-cl", str(cl)]
        with open(logs / f"w{p}.out", "wb") as out, open(logs / f"w{p}.err", "wb") as err:
            procs.append(subprocess.Popen(cmd, stdout=out, stderr=err, env=wf.env, cwd=wf.root))
    # The watchdog: a deadlock fails the test, with what the server says everyone waits for.
    deadline = t0 + TIMEOUT
    while any(p.poll() is None for p in procs):
        if time.monotonic() > deadline:
            status = server_cli(wf, "status").stdout
            for p in procs:
                p.kill()
            for p in procs:
                p.wait()
            pytest.fail(f"no progress after {TIMEOUT:.0f} s; server status:\n{status[-20000:]}")
        time.sleep(0.1)
    elapsed = time.monotonic() - t0
    written = read = 0
    produced: dict[str, str] = {}
    seen: dict[str, str] = {}
    for p, proc in enumerate(procs):
        err = (logs / f"w{p}.err").read_text()
        assert proc.returncode == 0, f"worker {p} failed ({proc.returncode}):\n{err}"
        for t, r in enumerate(json.loads((logs / f"w{p}.out").read_text())):
            assert "error" not in r, f"worker {p} thread {t}: {r['error']}"
            assert r["bad"] == [], r["bad"]
            assert r["listed"] == FILES
            written += r["written"]
            read += r["read"]
            produced.update(r["files"])
            seen.update(r["seen"])
    total = PROCS * THREADS * FILES
    assert len(produced) == len(seen) == total
    assert produced == seen, "a reader saw other bytes than its producer wrote"
    assert written == read
    # Committed at close and permanent: all on disk, byte for byte, once the server stops.
    stopped = server_cli(wf, "stop", "--workflow-name", wf.name)
    assert stopped.returncode == 0, stopped.stderr
    for path, digest in produced.items():
        assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == digest, path
    leftovers = [p for p in root.rglob("*") if ".capio-" in p.name]
    assert leftovers == []
    print(f"{total} files, {written / 2**20:.0f} MiB written and read in {elapsed:.1f} s")
