"""One namespace across nodes: what a step on one node writes, a step on another node sees, waits
for and streams, with nothing but MPI between the two nodes' servers.

Nodes are simulated as in ``test_multinode``: ranks joined only by TCP, each with its own runtime
directory; a step "on node k" attaches to node k's server. Every check compares checksums of what
was written with what was read.
"""

from __future__ import annotations

import json
import os
import signal
import textwrap
import time
from pathlib import Path
from typing import Any

from conftest import Workflow, wait_until

PRELUDE = """\
import hashlib, json, os, random, sys, time


def wait_for(path, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            return True
        time.sleep(0.01)
    return False


def touch(path):
    with open(path + ".part", "w") as f:
        f.write("x")
    os.replace(path + ".part", path)
"""

# Writes CHUNKS chunks of seeded random bytes; touches `started` after the first one.
PRODUCER = (
    PRELUDE
    + """
path, started = sys.argv[1], sys.argv[5]
chunk, chunks, seed = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(seed)
digest = hashlib.sha256()
with open(path, "wb") as f:
    for i in range(chunks):
        block = rng.randbytes(chunk)
        digest.update(block)
        f.write(block)
        f.flush()
        if i == 0:
            touch(started)
touch(started + ".closed")
print(json.dumps({"total": chunk * chunks, "sha256": digest.hexdigest()}))
"""
)

# Reads to EOF; reports the checksum and how much it read before the producer closed the file.
CONSUMER = (
    PRELUDE
    + """
path, closed = sys.argv[1], sys.argv[2]
digest, total, early = hashlib.sha256(), 0, 0
with open(path, "rb") as f:
    while True:
        block = f.read(1 << 20)
        if not block:
            break
        if not os.path.exists(closed):
            early += len(block)
        digest.update(block)
        total += len(block)
print(json.dumps({"total": total, "sha256": digest.hexdigest(), "early": early}))
"""
)


def cl_file(wf: Workflow, graph: list[dict[str, Any]], **extra: Any) -> Path:
    path = wf.root / "capio_cl.json"
    path.write_text(json.dumps({"name": wf.name, "IO_Graph": graph, **extra}, indent=2))
    return path


def start(node: Workflow, body: str, app: str, *args: str, config: Path | None = None):  # type: ignore[no-untyped-def]
    script = node.script(textwrap.dedent(body))
    cmd = node.command(script, app, args)
    if config is not None:
        cmd[3:3] = ["--capio-cl", str(config)]
    logs = node.root / "logs"
    logs.mkdir(exist_ok=True)
    import subprocess

    from conftest import Step

    n = len(list(logs.iterdir()))
    out, err = logs / f"{n}-{app}.out", logs / f"{n}-{app}.err"
    with open(out, "wb") as o, open(err, "wb") as e:
        proc = subprocess.Popen(cmd, stdout=o, stderr=e, env=node.env, cwd=node.root)
    step = Step(proc, out, err)
    node.steps.append(step)
    return step


def result(step) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    done = step.wait(300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_a_consumer_on_one_node_streams_a_gibibyte_a_producer_on_another_writes(
    job,  # type: ignore[no-untyped-def]
    workflow: Workflow,
) -> None:
    """Consumer first, on node 1; producer on node 0. ``no_update``: bytes reach node 1 while the
    producer is still writing; EOF comes at the commit; the bytes are the producer's."""
    wf = workflow
    rule = {"name": ["stream.bin"], "committed": "on_close", "mode": "no_update"}
    config = cl_file(
        wf,
        [
            {"name": "producer", "input_stream": [], "output_stream": ["stream.bin"], "streaming": [rule]},
            {"name": "consumer", "input_stream": ["stream.bin"], "output_stream": []},
        ],
    )
    j = job(2, config)
    j.wait_ready()
    data = wf.capio_dir / "stream.bin"
    started = wf.marker("producer-started")
    consumer = start(j.nodes[1], CONSUMER, "consumer", str(data), str(started) + ".closed")
    time.sleep(1)
    assert consumer.running(), "it waits for a file no node has created yet"
    producer = start(j.nodes[0], PRODUCER, "producer", str(data), str(1 << 20), "1024", "7", str(started))
    produced, consumed = result(producer), result(consumer)
    assert (consumed["total"], consumed["sha256"]) == (produced["total"], produced["sha256"])
    assert consumed["early"] > 0, "no byte reached the other node before the producer closed"
    assert not data.exists(), "not permanent: never written to the shared file system"


def test_stat_exists_and_listdir_on_every_node_see_files_made_on_every_node(job) -> None:  # type: ignore[no-untyped-def]
    j = job(3)
    j.wait_ready()
    wf = j.wf
    made = {rank: wf.capio_dir / f"from-node{rank}.txt" for rank in range(3)}
    for rank, path in made.items():
        script = "import sys\nwith open(sys.argv[1], 'w') as f:\n    f.write('node ' + sys.argv[2] * 10)\n"
        done = j.nodes[rank].run_step(script, f"writer{rank}", str(path), str(rank))
        assert done.returncode == 0, done.stderr
    look = """
        import json, os, sys
        paths = sys.argv[1:]
        print(json.dumps({
            "exists": [os.path.exists(p) for p in paths],
            "sizes": [os.stat(p).st_size for p in paths],
            "listing": sorted(os.listdir(os.path.dirname(paths[0]))),
            "text": [open(p).read() for p in paths],
            "missing": os.path.exists(paths[0] + ".nope"),
        }))
    """
    for rank in range(3):
        done = j.nodes[rank].run_step(textwrap.dedent(look), f"looker{rank}", *map(str, made.values()))
        assert done.returncode == 0, done.stderr
        seen = json.loads(done.stdout)
        assert seen["exists"] == [True] * 3
        assert seen["sizes"] == [15] * 3
        assert seen["listing"] == sorted(p.name for p in made.values())
        assert seen["text"] == [f"node {r * 10}" if False else "node " + str(r) * 10 for r in range(3)]
        assert not seen["missing"]


def test_a_producer_killed_on_one_node_fails_the_reader_on_another(job) -> None:  # type: ignore[no-untyped-def]
    j = job(2)
    j.wait_ready()
    wf = j.wf
    data = wf.capio_dir / "doomed.bin"
    started = wf.marker("doomed-started")
    # Keeps writing until killed: the file is never committed.
    forever = PRELUDE + textwrap.dedent(
        """
        path, started = sys.argv[1], sys.argv[2]
        with open(path, "wb") as f:
            f.write(b"x" * 4096)
            f.flush()
            touch(started)
            while True:
                time.sleep(0.1)
        """
    )
    producer = start(j.nodes[0], forever, "producer", str(data), str(started))
    assert wait_until(started.exists, 60), producer.stderr()
    reader = start(j.nodes[1], "import sys\nopen(sys.argv[1], 'rb').read()\n", "reader", str(data))
    time.sleep(1)
    assert reader.running(), "it waits for the commit"
    os.kill(producer.proc.pid, signal.SIGKILL)
    done = reader.wait(30)
    assert done.returncode != 0
    assert "OSError: [Errno 5]" in done.stderr or "PyCAPIOException" in done.stderr, done.stderr
