"""One namespace across nodes: what a step on one node writes, a step on another node sees, waits
for and streams, with nothing but MPI between the two nodes' servers.

Nodes are simulated as in ``test_multinode``: ranks joined only by TCP, each with its own runtime
directory; a step "on node k" attaches to node k's server. Every check compares checksums of what
was written with what was read.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import signal
import subprocess
import textwrap
import time
from pathlib import Path
from typing import Any

from mpijob import server_cli, server_pid, status

from conftest import Step, Workflow, wait_until

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


_steps = itertools.count(1)


def pair_file(wf: Workflow, name: str, rule: dict[str, Any]) -> Path:
    """A CAPIO-CL file in which app ``producer`` writes ``name`` under ``rule`` (its ``committed``
    and ``mode``) and app ``consumer`` reads it."""
    streaming = {"name": [name], **rule}
    return cl_file(
        wf,
        [
            {"name": "producer", "input_stream": [], "output_stream": [name], "streaming": [streaming]},
            {"name": "consumer", "input_stream": [name], "output_stream": []},
        ],
    )


def start(node: Workflow, body: str, app: str, *args: str) -> Step:
    """Start a step on ``node``. Scripts and logs are named by a count over every node (the nodes
    of a job share the test's directory)."""
    n = next(_steps)
    script = node.script(textwrap.dedent(body), name=f"node-step{n}.py")
    logs = node.root / "logs"
    logs.mkdir(exist_ok=True)
    out, err = logs / f"node-step{n}-{app}.out", logs / f"node-step{n}-{app}.err"
    with open(out, "wb") as o, open(err, "wb") as e:
        cmd = node.command(script, app, args)
        proc = subprocess.Popen(cmd, stdout=o, stderr=e, env=node.env, cwd=node.root)
    step = Step(proc, out, err)
    node.steps.append(step)
    return step


def result(step: Step) -> dict[str, Any]:
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
    config = pair_file(wf, "stream.bin", {"committed": "on_close", "mode": "no_update"})
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
        assert seen["text"] == ["node " + str(r) * 10 for r in range(3)]
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


# -- commit rules counted across nodes ------------------------------------------------------------

READ_ALL = (
    PRELUDE
    + """
path, done = sys.argv[1], sys.argv[2]
with open(path, "rb") as f:
    data = f.read()
touch(done)
print(json.dumps({"text": data.decode(), "sha256": hashlib.sha256(data).hexdigest()}))
"""
)


def test_on_close_n_counts_the_closes_of_a_producer_on_another_node(job, workflow: Workflow) -> None:  # type: ignore[no-untyped-def]
    """``on_close:3``: the reader on node 1 gets the file at the producer's third close, while
    the producer (on node 0) still runs."""
    wf = workflow
    config = pair_file(wf, "parts.txt", {"committed": "on_close:3", "mode": "update"})
    j = job(2, config)
    j.wait_ready()
    data, read = wf.capio_dir / "parts.txt", wf.marker("read")
    consumer = start(j.nodes[1], READ_ALL, "consumer", str(data), str(read))
    producer = start(
        j.nodes[0],
        PRELUDE
        + textwrap.dedent(
            """
            path, read = sys.argv[1], sys.argv[2]
            for i in range(3):
                with open(path, "a") as f:
                    f.write(f"part {i};")
                early = os.path.exists(read)
                time.sleep(0.3)
            print(json.dumps({"read_before_third_close": early, "read_while_running": wait_for(read, 60)}))
            """
        ),
        "producer",
        str(data),
        str(read),
    )
    consumed, produced = result(consumer), result(producer)
    assert consumed["text"] == "part 0;part 1;part 2;"
    assert produced == {"read_before_third_close": False, "read_while_running": True}


def test_on_file_follows_a_dependency_committed_on_another_node(job, workflow: Workflow) -> None:  # type: ignore[no-untyped-def]
    """``result.txt`` (written on node 1) commits when ``input.txt`` (written on node 0)
    commits, not when its own producer exits; a reader on node 0 gets it."""
    wf = workflow
    rules = [
        {"name": ["input.txt"], "committed": "on_close"},
        {"name": ["result.txt"], "committed": "on_file", "file_deps": ["input.txt"]},
    ]
    config = cl_file(
        wf,
        [
            {"name": "first", "input_stream": [], "output_stream": ["input.txt"], "streaming": rules[:1]},
            {"name": "second", "input_stream": [], "output_stream": ["result.txt"], "streaming": rules[1:]},
            {"name": "reader", "input_stream": ["result.txt"], "output_stream": []},
        ],
    )
    j = job(2, config)
    j.wait_ready()
    result_path, read, go = wf.capio_dir / "result.txt", wf.marker("read"), wf.marker("go")
    second = start(
        j.nodes[1],
        PRELUDE
        + textwrap.dedent(
            """
            path, read, go = sys.argv[1:4]
            with open(path, "w") as f:
                f.write("result")
            touch(go)
            print(json.dumps({"read_while_running": wait_for(read, 60)}))
            """
        ),
        "second",
        str(result_path),
        str(read),
        str(go),
    )
    reader = start(j.nodes[0], READ_ALL, "reader", str(result_path), str(read))
    assert wait_until(go.exists, 60), second.stderr()
    time.sleep(0.5)
    assert reader.running(), "result.txt waits for input.txt"
    write_input = "import sys\nwith open(sys.argv[1], 'w') as f:\n    f.write('in')\n"
    first = j.nodes[0].run_step(write_input, "first", str(wf.capio_dir / "input.txt"))
    assert first.returncode == 0, first.stderr
    assert result(reader)["text"] == "result"
    assert result(second) == {"read_while_running": True}


DIR_PRODUCER = (
    PRELUDE
    + """
d, names, listed = sys.argv[1], sys.argv[2].split(","), sys.argv[3]
os.makedirs(d, exist_ok=True)
for name in names:
    with open(os.path.join(d, name), "w") as f:
        f.write("data " + name)
    time.sleep(0.2)
print(json.dumps({"listed_while_running": wait_for(listed, 60)}))
"""
)

DIR_CONSUMER = (
    PRELUDE
    + """
d, listed = sys.argv[1], sys.argv[2]
assert wait_for(d, 60), "the directory never appeared"
entries = []
for entry in os.scandir(d):
    with open(entry.path) as f:
        entries.append([entry.name, f.read()])
touch(listed)
print(json.dumps({"entries": sorted(entries)}))
"""
)


def test_a_directory_streams_entries_made_by_producers_on_two_nodes(job, workflow: Workflow) -> None:  # type: ignore[no-untyped-def]
    """``on_n_files: 4``, ``no_update``: a consumer on node 1 scans the directory while producers
    on nodes 0 and 1 each add two files; the scan ends at the fourth, while both still run."""
    wf = workflow
    rules = [
        {"dirname": ["outdir"], "committed": "on_n_files", "n_files": 4, "mode": "no_update"},
        {"name": ["outdir/*"], "committed": "on_close"},
    ]
    config = cl_file(
        wf,
        [
            {"name": "producer", "input_stream": [], "output_stream": ["outdir", "outdir/*"]}
            | {"streaming": rules},
            {"name": "consumer", "input_stream": ["outdir"], "output_stream": []},
        ],
    )
    j = job(2, config)
    j.wait_ready()
    d, listed = wf.capio_dir / "outdir", wf.marker("listed")
    consumer = start(j.nodes[1], DIR_CONSUMER, "consumer", str(d), str(listed))
    producers = [
        start(j.nodes[rank], DIR_PRODUCER, "producer", str(d), f"n{rank}a.txt,n{rank}b.txt", str(listed))
        for rank in (0, 1)
    ]
    consumed = result(consumer)
    names = sorted(f"n{r}{x}.txt" for r in (0, 1) for x in "ab")
    assert consumed["entries"] == [[n, f"data {n}"] for n in names]
    assert [result(p) for p in producers] == [{"listed_while_running": True}] * 2


def test_a_file_commits_when_its_producer_on_another_node_terminates(job) -> None:  # type: ignore[no-untyped-def]
    """No CAPIO-CL file: a file commits at its producer's exit, and a reader on another node that
    started first waits for exactly that; the committed file is persisted once, by its home."""
    j = job(2)
    j.wait_ready()
    wf = j.wf
    data, read = wf.capio_dir / "late.txt", wf.marker("read")
    release = j.nodes[1].start_peer("keeper")  # a live step: the reader may wait for a producer
    reader = start(j.nodes[1], READ_ALL, "reader", str(data), str(read))
    producer = start(
        j.nodes[0],
        PRELUDE
        + textwrap.dedent(
            """
            path, read = sys.argv[1], sys.argv[2]
            with open(path, "w") as f:
                f.write("written on node 0")
            print(json.dumps({"read_while_running": wait_for(read, 2)}))
            """
        ),
        "producer",
        str(data),
        str(read),
    )
    assert result(producer) == {"read_while_running": False}, "it commits at the exit, not before"
    assert result(reader)["text"] == "written on node 0"
    release.write_text("go")
    assert wait_until(lambda: data.exists() and data.read_text() == "written on node 0", 30)


def test_unlink_and_rename_on_one_node_are_seen_on_every_node(job) -> None:  # type: ignore[no-untyped-def]
    j = job(3)
    j.wait_ready()
    wf = j.wf
    a, b, c = (wf.capio_dir / n for n in ("a.txt", "b.txt", "c.tmp"))
    make = "import sys\nfor p in sys.argv[1:]:\n    open(p, 'w').write(p)\n"
    assert j.nodes[0].run_step(make, "maker", str(a), str(c)).returncode == 0
    # Node 1 removes node 0's a.txt (its home does it, and tells every node); node 0 renames c.tmp.
    assert j.nodes[1].run_step("import os, sys\nos.unlink(sys.argv[1])\n", "remover", str(a)).returncode == 0
    move = "import os, sys\nos.rename(sys.argv[1], sys.argv[2])\n"
    renamed = j.nodes[0].run_step(move, "mover", str(c), str(b))
    assert renamed.returncode == 0, renamed.stderr
    look = "import os, sys, json\nprint(json.dumps(sorted(os.listdir(sys.argv[1]))))\n"
    for rank in range(3):
        assert wait_until(
            lambda rank=rank: (
                json.loads(j.nodes[rank].run_step(look, "looker", str(wf.capio_dir)).stdout) == ["b.txt"]
            ),
            10,
        ), rank
    text = j.nodes[2].run_step("import sys\nprint(open(sys.argv[1]).read())\n", "reader", str(b))
    assert text.stdout.strip() == str(c), text.stderr
    # A file of another node is read-only here, and moves only on its own node.
    refused = j.nodes[2].run_step(
        textwrap.dedent(
            """
            import errno, os, sys
            path = sys.argv[1]
            for attempt in (lambda: open(path, "a"), lambda: os.rename(path, path + ".x")):
                try:
                    attempt()
                except OSError as e:
                    print(errno.errorcode[e.errno])
            """
        ),
        "writer",
        str(b),
    )
    assert refused.stdout.split() == ["EROFS", "EXDEV"], refused.stderr


def test_a_killed_server_fails_a_reader_waiting_on_its_file_from_another_node(job) -> None:  # type: ignore[no-untyped-def]
    j = job(2)
    reports = j.wait_ready()
    wf = j.wf
    data, started = wf.capio_dir / "held.bin", wf.marker("held-started")
    holder = start(
        j.nodes[0],
        PRELUDE
        + textwrap.dedent(
            """
            path, started = sys.argv[1], sys.argv[2]
            with open(path, "wb") as f:
                f.write(b"y" * 4096)
                f.flush()
                touch(started)
                time.sleep(120)
            """
        ),
        "holder",
        str(data),
        str(started),
    )
    assert wait_until(started.exists, 60), holder.stderr()
    reader = start(j.nodes[1], "import sys\nopen(sys.argv[1], 'rb').read()\n", "reader", str(data))
    time.sleep(1)
    assert reader.running(), "it waits for the commit"
    killed_at = time.monotonic()
    os.kill(server_pid(reports[0]), signal.SIGKILL)
    done = reader.wait(60)
    assert time.monotonic() - killed_at < 20, "released within seconds"
    assert done.returncode != 0
    assert "OSError: [Errno 5]" in done.stderr or "PyCAPIOException" in done.stderr, done.stderr
    assert j.wait(60) != 0
    assert not data.exists(), "no real path is left half-written"


def test_status_shows_remote_files_and_the_bytes_moved(job) -> None:  # type: ignore[no-untyped-def]
    j = job(2)
    j.wait_ready()
    wf = j.wf
    data = wf.capio_dir / "moved.bin"
    make = "import sys\nopen(sys.argv[1], 'wb').write(bytes(range(256)) * 4096)\n"
    assert j.nodes[0].run_step(make, "maker", str(data)).returncode == 0
    size = "import sys\nprint(len(open(sys.argv[1], 'rb').read()))\n"
    read = j.nodes[1].run_step(size, "reader", str(data))
    assert read.stdout.strip() == str(1 << 20), read.stderr
    sent, received = status(j.nodes[0]), status(j.nodes[1])
    assert sent is not None and received is not None
    assert sent["server"]["cluster"]["bytes_sent"] == 1 << 20  # type: ignore[index]
    assert received["server"]["cluster"]["bytes_received"] == 1 << 20  # type: ignore[index]
    (replica,) = [f for f in received["files"] if f["path"] == str(data)]  # type: ignore[attr-defined]
    expected = {"node": 0, "writer": 0, "kept_here": False, "state": "committed", "size": 1 << 20}
    assert replica["home"] == expected
    assert replica["size"] == 1 << 20, "cached here"
    text = server_cli(j.nodes[1], "status").stdout
    assert "from node 0 (committed there, 1.0 MiB); 1.0 MiB cached here" in text, text
    assert "moved between nodes: 0 B sent, 1.0 MiB received" in text, text


EIGHT_NODE_STEP = (
    PRELUDE
    + """
d, me, step, nxt = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
for i in range(3):
    with open(os.path.join(d, f"n{me}-s{step}-{i}.txt"), "w") as f:
        f.write(f"node {me} step {step} file {i}\\n" * (100 * (i + 1)))
got = {}
for s in (0, 1):
    for i in range(3):
        name = f"n{nxt}-s{s}-{i}.txt"
        with open(os.path.join(d, name)) as f:
            got[name] = f.read() == f"node {nxt} step {s} file {i}\\n" * (100 * (i + 1))
print(json.dumps(got))
"""
)


def test_a_workflow_of_eight_nodes_ends_with_every_file_seen_everywhere(job, workflow: Workflow) -> None:  # type: ignore[no-untyped-def]
    """Eight nodes, two steps each: every step writes three files and reads the six of the next
    node's steps (waiting for them: their producers are declared, one app per step). Then every
    node lists and reads all 48 files, and after the stop each is on the shared file system,
    persisted by the node that wrote it only."""
    wf = workflow
    ranks = 8
    graph = [
        {
            "name": f"writer{k}s{s}",
            "input_stream": [f"n{(k + 1) % ranks}-*"],
            "output_stream": [f"n{k}-s{s}-*"],
            "streaming": [{"name": [f"n{k}-s{s}-*"], "committed": "on_close"}],
        }
        for k in range(ranks)
        for s in (0, 1)
    ] + [{"name": "checker", "input_stream": ["n*"], "output_stream": []}]
    config = cl_file(wf, graph, permanent=["n*"])
    j = job(ranks, config)
    j.wait_ready()
    d = str(wf.capio_dir)
    steps = [
        start(j.nodes[k], EIGHT_NODE_STEP, f"writer{k}s{s}", d, str(k), str(s), str((k + 1) % ranks))
        for k in range(ranks)
        for s in (0, 1)
    ]
    for step in steps:
        assert all(result(step).values())
    text = "node {} step {} file {}\n"
    expected = {
        f"n{k}-s{s}-{i}.txt": hashlib.sha256((text.format(k, s, i) * (100 * (i + 1))).encode()).hexdigest()
        for k in range(ranks)
        for s in (0, 1)
        for i in range(3)
    }
    check = """
        import hashlib, json, os, sys
        d = sys.argv[1]
        print(json.dumps({n: hashlib.sha256(open(os.path.join(d, n), "rb").read()).hexdigest()
                          for n in os.listdir(d)}))
    """
    for k in range(ranks):
        seen = j.nodes[k].run_step(textwrap.dedent(check), "checker", d)
        assert seen.returncode == 0, seen.stderr
        assert json.loads(seen.stdout) == expected, k
        # Only the writer's copy is permanent: a replica is never persisted.
        for name, f in files_seen(j.nodes[k]).items():
            assert f["permanent"] == name.startswith(f"n{k}-"), (k, name)
    assert server_cli(j.nodes[3], "stop").returncode == 0
    assert j.wait(120) == 0, j.text()
    on_disk = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in wf.capio_dir.iterdir()}
    assert on_disk == expected


# -- where files are kept: CAPIO-CL home_node_policies --------------------------------------------


def files_seen(node: Workflow) -> dict[str, dict[str, Any]]:
    report = status(node)
    assert report is not None
    return {Path(f["path"]).name: f for f in report["files"] if f["path"]}  # type: ignore[attr-defined]


def test_a_manual_home_keeps_a_file_written_on_another_node(job, workflow: Workflow) -> None:  # type: ignore[no-untyped-def]
    """``manual``: ``kept.dat`` is kept on the node named for it (node 0: the first rank of this
    host) though written on node 2; node 1 fetches it from node 0. Only its writer persists it."""
    wf = workflow
    host = Path("/proc/sys/kernel/hostname").read_text().strip()
    config = cl_file(
        wf,
        [{"name": "writer", "input_stream": [], "output_stream": ["kept.dat"]}],
        permanent=["kept.dat"],
        home_node_policies={"manual": [{"name": ["kept.dat"], "app_node": host}]},
    )
    j = job(3, config)
    j.wait_ready()
    data = wf.capio_dir / "kept.dat"
    payload = "import sys\nopen(sys.argv[1], 'w').write('kept on node 0\\n' * 1000)\n"
    assert j.nodes[2].run_step(payload, "writer", str(data)).returncode == 0
    count = "import sys\nprint(open(sys.argv[1]).read().count('\\n'))\n"
    read = j.nodes[1].run_step(count, "reader", str(data))
    assert read.stdout.strip() == "1000", read.stderr
    on = [files_seen(n)["kept.dat"] for n in j.nodes]
    assert on[2]["home"] is None and on[2]["kept_on"] == 0 and on[2]["permanent"]
    assert on[0]["home"]["kept_here"] and on[0]["home"]["writer"] == 2 and not on[0]["permanent"]
    assert wait_until(lambda: files_seen(j.nodes[2])["kept.dat"]["persisted"], 30)
    assert on[1]["home"]["node"] == 0 and on[1]["home"]["writer"] == 2 and not on[1]["home"]["kept_here"]
    assert "kept on node 0 for the other nodes' readers" in server_cli(j.nodes[2], "status").stdout
    assert ", written on node 2); " in server_cli(j.nodes[1], "status").stdout
    assert "kept here for the other nodes" in server_cli(j.nodes[0], "status").stdout
    assert data.read_text() == "kept on node 0\n" * 1000
    assert server_cli(j.nodes[1], "stop").returncode == 0
    assert j.wait(60) == 0, j.text()
    assert "not persisted" not in j.text(), "no node reports it lost: its writer persisted it"
    assert data.read_text() == "kept on node 0\n" * 1000


def test_hashing_spreads_files_over_the_nodes_the_same_way_on_every_node(job, workflow: Workflow) -> None:  # type: ignore[no-untyped-def]
    wf = workflow
    config = cl_file(
        wf,
        [{"name": "writer", "input_stream": [], "output_stream": ["shards/*"]}],
        permanent=["shards/*"],
        home_node_policies={"hashing": ["shards/*"]},
    )
    j = job(3, config)
    j.wait_ready()
    shards = wf.capio_dir / "shards"
    make = """
        import os, sys
        os.makedirs(sys.argv[1])
        for i in range(12):
            with open(os.path.join(sys.argv[1], f"s{i:02d}"), "wb") as f:
                f.write(bytes([i]) * (1000 + i))
    """
    assert j.nodes[0].run_step(textwrap.dedent(make), "writer", str(shards)).returncode == 0
    check = """
        import json, os, sys
        d = sys.argv[1]
        shard = lambda n: bytes([int(n[1:])]) * (1000 + int(n[1:]))
        names = sorted(os.listdir(d))
        print(json.dumps({n: open(os.path.join(d, n), "rb").read() == shard(n) for n in names}))
    """
    for node in j.nodes[1:]:
        seen = node.run_step(textwrap.dedent(check), "reader", str(shards))
        assert seen.returncode == 0, seen.stderr
        assert json.loads(seen.stdout) == {f"s{i:02d}": True for i in range(12)}
    homes = [
        {name: f["home"]["node"] for name, f in files_seen(node).items() if f["home"]} for node in j.nodes[1:]
    ]
    assert homes[0] == homes[1], "every node places each file on the same node"
    assert len(homes[0]) == 12 and len(set(homes[0].values())) > 1, homes[0]
    kept = {name: f["kept_on"] for name, f in files_seen(j.nodes[0]).items() if name.startswith("s")}
    assert kept == {name: (None if home == 0 else home) for name, home in homes[0].items()}
    assert server_cli(j.nodes[0], "stop").returncode == 0
    assert j.wait(60) == 0, j.text()
    assert sorted(p.name for p in shards.iterdir()) == [f"s{i:02d}" for i in range(12)]
    for p in shards.iterdir():
        assert p.read_bytes() == bytes([int(p.name[1:])]) * (1000 + int(p.name[1:])), p


# -- files written anew, and what moves where ------------------------------------------------------

KILLABLE = (
    PRELUDE
    + """
path, text, started = sys.argv[1], sys.argv[2], sys.argv[3]
with open(path, "w") as f:
    f.write(text)
    f.flush()
    touch(started)
    time.sleep(120)
"""
)


def test_a_crashed_producer_s_file_is_written_again_on_any_node_and_read_everywhere(job) -> None:  # type: ignore[no-untyped-def]
    j = job(2)
    j.wait_ready()
    wf = j.wf
    data, started = wf.capio_dir / "redo.txt", wf.marker("redo-started")
    release = j.nodes[1].start_peer("keeper")  # readers may wait for a producer
    crashed = start(j.nodes[0], KILLABLE, "producer", str(data), "first", str(started))
    assert wait_until(started.exists, 60), crashed.stderr()
    reader = start(j.nodes[1], "import sys\nopen(sys.argv[1]).read()\n", "reader", str(data))
    time.sleep(0.5)
    os.kill(crashed.proc.pid, signal.SIGKILL)
    failed = reader.wait(30)
    assert failed.returncode != 0 and "Errno 5" in failed.stderr, failed.stderr
    # Written again where it was written first: node 1 reads the new file.
    write = "import sys\nwith open(sys.argv[1], 'w') as f:\n    f.write(sys.argv[2])\n"
    assert j.nodes[0].run_step(write, "producer", str(data), "second").returncode == 0
    read = "import sys\nprint(open(sys.argv[1]).read())\n"
    assert wait_until(lambda: j.nodes[1].run_step(read, "reader", str(data)).stdout.strip() == "second", 10)
    # Crashed again, then written on the other node: that node becomes its writer.
    started.unlink()
    crashed = start(j.nodes[0], KILLABLE, "producer", str(data), "third", str(started))
    assert wait_until(started.exists, 60), crashed.stderr()
    os.kill(crashed.proc.pid, signal.SIGKILL)
    crashed.wait(30)
    rewrite = j.nodes[1].run_step(write, "producer", str(data), "fourth")
    assert rewrite.returncode == 0, rewrite.stderr
    assert wait_until(lambda: j.nodes[0].run_step(read, "reader", str(data)).stdout.strip() == "fourth", 10)
    release.write_text("go")


def test_a_reader_holding_another_node_s_file_sees_it_written_anew(job) -> None:  # type: ignore[no-untyped-def]
    """Committed on node 0 and read on node 1; node 0 writes it again while node 1's reader keeps
    it open: the reader reads the new content, not the old one, and does not hang."""
    j = job(2)
    j.wait_ready()
    wf = j.wf
    data, read_once, rewritten = wf.capio_dir / "v.txt", wf.marker("read-once"), wf.marker("rewritten")
    write = "import sys\nwith open(sys.argv[1], 'w') as f:\n    f.write(sys.argv[2])\n"
    assert j.nodes[0].run_step(write, "writer", str(data), "version one").returncode == 0
    holder = start(
        j.nodes[1],
        PRELUDE
        + textwrap.dedent(
            """
            path, read_once, rewritten = sys.argv[1:4]
            with open(path) as f:
                first = f.read()
                touch(read_once)
                assert wait_for(rewritten)
                f.seek(0)
                second = f.read()
            print(json.dumps({"first": first, "second": second}))
            """
        ),
        "holder",
        str(data),
        str(read_once),
        str(rewritten),
    )
    assert wait_until(read_once.exists, 60), holder.stderr()
    assert j.nodes[0].run_step(write, "writer", str(data), "version two").returncode == 0
    rewritten.write_text("x")
    assert result(holder) == {"first": "version one", "second": "version two"}


def test_a_directory_with_files_of_another_node_moves_only_there(job) -> None:  # type: ignore[no-untyped-def]
    j = job(2)
    j.wait_ready()
    wf = j.wf
    d = wf.capio_dir / "d"
    make = "import os, sys\nos.mkdir(sys.argv[1])\nopen(os.path.join(sys.argv[1], 'f'), 'w').write('f')\n"
    assert j.nodes[0].run_step(make, "maker", str(d)).returncode == 0
    move = textwrap.dedent(
        """
        import errno, os, sys
        try:
            os.rename(sys.argv[1], sys.argv[1] + "2")
            print("moved")
        except OSError as e:
            print(errno.errorcode[e.errno])
        """
    )
    assert j.nodes[1].run_step(move, "mover", str(d)).stdout.strip() == "EXDEV"
    assert j.nodes[0].run_step(move, "mover", str(d)).stdout.strip() == "moved"
    read = "import sys\nprint(open(sys.argv[1]).read())\n"
    assert j.nodes[1].run_step(read, "reader", str(wf.capio_dir / "d2" / "f")).stdout.strip() == "f"


def test_an_on_termination_directory_waits_for_its_producers_on_every_node(job, workflow: Workflow) -> None:  # type: ignore[no-untyped-def]
    wf = workflow
    rules = [
        {"dirname": ["outdir"], "committed": "on_termination"},
        {"name": ["outdir/*"], "committed": "on_close"},
    ]
    config = cl_file(
        wf,
        [
            {
                "name": "producer",
                "input_stream": [],
                "output_stream": ["outdir", "outdir/*"],
                "streaming": rules,
            },
            {"name": "consumer", "input_stream": ["outdir"], "output_stream": []},
        ],
    )
    j = job(2, config)
    j.wait_ready()
    d, go = wf.capio_dir / "outdir", wf.marker("go")
    write_one = PRELUDE + textwrap.dedent(
        """
        d, name, go = sys.argv[1:4]
        if go != "-":
            touch(go + ".attached")  # the launcher attached this step before running it
            assert wait_for(go)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, name), "w") as f:
            f.write(name)
        """
    )
    late = start(j.nodes[0], write_one, "producer", str(d), "b", str(go))
    assert wait_until(Path(str(go) + ".attached").exists, 60), late.stderr()
    early = j.nodes[1].run_step(write_one, "producer", str(d), "a", "-")
    assert early.returncode == 0, early.stderr
    listing = PRELUDE + textwrap.dedent(
        """
        touch(sys.argv[2])
        print(json.dumps(sorted(os.listdir(sys.argv[1]))))
        """
    )
    listed_from = wf.marker("lister-attached")
    lister = start(j.nodes[1], listing, "consumer", str(d), str(listed_from))
    assert wait_until(listed_from.exists, 60), lister.stderr()
    time.sleep(1)
    assert lister.running(), "a producer of the directory still runs on node 0"
    go.write_text("x")
    assert late.wait(60).returncode == 0
    listed = lister.wait(60)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == ["a", "b"]


def test_an_exclusive_create_of_one_name_on_two_nodes_has_one_winner(job) -> None:  # type: ignore[no-untyped-def]
    """Two steps on each of three nodes race ``O_CREAT | O_EXCL`` over the same 40 names (whose
    arbiters are spread over the nodes, racers or not): each name is created exactly once; the
    losers get ``FileExistsError``, as ``tempfile.mkstemp`` expects."""
    j = job(3)
    j.wait_ready()
    wf = j.wf
    go = wf.marker("go")
    racer = PRELUDE + textwrap.dedent(
        """
        d, go, me = sys.argv[1], sys.argv[2], sys.argv[3]
        assert wait_for(go)
        won = []
        for i in range(40):
            try:
                fd = os.open(os.path.join(d, f"lock{i}"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                continue
            os.write(fd, me.encode())
            os.close(fd)
            won.append(i)
        print(json.dumps(won))
        """
    )
    racers = [
        start(j.nodes[r], racer, f"racer{r}{k}", str(wf.capio_dir), str(go), f"{r}{k}")
        for r in range(3)
        for k in "ab"
    ]
    time.sleep(1.5)
    go.write_text("x")
    won = [json.loads(r.wait(120).stdout) for r in racers]
    assert sorted(itertools.chain(*won)) == list(range(40)), won
    # Every node agrees on who wrote each.
    read = textwrap.dedent(
        """
        import json, sys, os
        print(json.dumps([open(os.path.join(sys.argv[1], f"lock{i}")).read() for i in range(40)]))
        """
    )
    names = [f"{r}{k}" for r in range(3) for k in "ab"]
    expected = [next(n for n, w in zip(names, won, strict=True) if i in w) for i in range(40)]
    for node in j.nodes:
        assert json.loads(node.run_step(read, "reader", str(wf.capio_dir)).stdout) == expected


def test_mkdir_and_rmdir_on_one_node_are_seen_on_every_node(job) -> None:  # type: ignore[no-untyped-def]
    j = job(2)
    j.wait_ready()
    wf = j.wf
    d = wf.capio_dir / "made"
    look = textwrap.dedent(
        """
        import json, os, sys
        print(json.dumps([os.path.isdir(sys.argv[1]), sorted(os.listdir(os.path.dirname(sys.argv[1])))]))
        """
    )
    assert j.nodes[0].run_step("import os, sys\nos.mkdir(sys.argv[1])\n", "maker", str(d)).returncode == 0
    assert json.loads(j.nodes[1].run_step(look, "looker", str(d)).stdout) == [True, ["made"]]
    removed = j.nodes[1].run_step("import os, sys\nos.rmdir(sys.argv[1])\n", "remover", str(d))
    assert removed.returncode == 0, removed.stderr
    assert json.loads(j.nodes[0].run_step(look, "looker", str(d)).stdout) == [False, []]
    again = j.nodes[0].run_step("import os, sys\nos.mkdir(sys.argv[1])\nprint(os.path.isdir(sys.argv[1]))\n",
                                "maker", str(d))  # fmt: skip
    assert again.stdout.strip() == "True", again.stderr


def test_a_file_kept_away_from_its_writer_is_read_in_its_latest_round(job, workflow: Workflow) -> None:  # type: ignore[no-untyped-def]
    """Written on node 2, kept on node 0 (``manual``), read on node 1; written anew to the very
    same length, again and again: node 1 always reads the latest content, never the home's older
    copy."""
    wf = workflow
    host = Path("/proc/sys/kernel/hostname").read_text().strip()
    config = cl_file(
        wf,
        [{"name": "writer", "input_stream": [], "output_stream": ["kept.txt"]}],
        home_node_policies={"manual": [{"name": ["kept.txt"], "app_node": host}]},
    )
    j = job(3, config)
    j.wait_ready()
    data = wf.capio_dir / "kept.txt"
    write = "import sys\nwith open(sys.argv[1], 'w') as f:\n    f.write(sys.argv[2])\n"
    read = "import sys\nprint(open(sys.argv[1]).read())\n"
    for version in ("version 1", "version 2", "version 3"):
        assert j.nodes[2].run_step(write, "writer", str(data), version).returncode == 0
        seen = j.nodes[1].run_step(read, "reader", str(data))
        assert seen.stdout.strip() == version, (version, seen.stderr)
    assert files_seen(j.nodes[1])["kept.txt"]["home"]["node"] == 0
