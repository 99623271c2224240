"""Producer and consumer in separate processes: streaming, persistence, crashes, isolation.

The step scripts are ordinary Python with no pycapio import; they run under the ``pycapio``
launcher (``via="cli"``) or inside ``@CapioContext`` (``via="decorator"``).
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ServerTracker, Workflow, wait_until

SIZE_MIB = 24
SEED = 20240611

PRODUCER = """
    import hashlib, os, random, sys

    path, size_mib, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rng = random.Random(seed)
    digest = hashlib.sha256()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        for _ in range(size_mib):
            chunk = rng.randbytes(1 << 20)
            f.write(chunk)
            digest.update(chunk)
    with open(path + ".txt", "w") as f:
        f.write("produced %d MiB\\n" % size_mib)
    print(digest.hexdigest(), size_mib << 20)
"""

CONSUMER = """
    import hashlib, sys

    path, waiting = sys.argv[1], sys.argv[2]
    with open(waiting, "w") as f:  # outside the CAPIO directory: goes to disk at once
        f.write("waiting")
    digest = hashlib.sha256()
    n = 0
    with open(path, "rb") as f:
        with open(waiting + ".opened", "w") as m:
            m.write("opened")
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            n += len(chunk)
    with open(path + ".txt") as f:
        summary = f.read().strip()
    print(digest.hexdigest(), n, summary)
"""


def expected(size_mib: int = SIZE_MIB, seed: int = SEED) -> tuple[str, int]:
    rng = random.Random(seed)
    digest = hashlib.sha256()
    for _ in range(size_mib):
        digest.update(rng.randbytes(1 << 20))
    return digest.hexdigest(), size_mib << 20


@pytest.mark.parametrize("via", ["cli", "decorator"])
def test_consumer_started_first_blocks_then_reads_everything(workflow: Workflow, via: str) -> None:
    workflow.start_peer()  # attached: a consumer started first waits for the producer
    data = str(workflow.capio_dir / "out" / "data.bin")
    waiting = workflow.marker("consumer-waiting")
    consumer = workflow.start_step(CONSUMER, "consumer", data, str(waiting), via=via)
    assert wait_until(waiting.exists, 60), consumer.stderr()
    # The consumer is blocked in open(): the file does not exist yet.
    time.sleep(1.0)
    assert consumer.running(), consumer.stderr()
    assert not Path(str(waiting) + ".opened").exists()

    producer = workflow.start_step(PRODUCER, "producer", data, str(SIZE_MIB), str(SEED), via=via)
    produced = producer.wait().check().stdout.split()
    consumed = consumer.wait().check().stdout.split()
    digest, size = expected()
    assert produced == [digest, str(size)]
    assert consumed[:2] == [digest, str(size)]
    assert " ".join(consumed[2:]) == f"produced {SIZE_MIB} MiB"
    # Persisted (no CAPIO-CL file: every committed file is), byte for byte.
    assert hashlib.sha256(Path(data).read_bytes()).hexdigest() == digest


def test_steps_in_sequence_give_the_same_files_as_without_pycapio(workflow: Workflow, tmp_path: Path) -> None:
    data = str(workflow.capio_dir / "out" / "data.bin")
    digest, size = expected(8)
    produced = workflow.run_step(PRODUCER, "producer", data, "8", str(SEED)).check()
    assert produced.stdout.split() == [digest, str(size)]
    # The producer has exited: its files are on disk, complete.
    assert hashlib.sha256(Path(data).read_bytes()).hexdigest() == digest
    assert Path(data + ".txt").read_text() == "produced 8 MiB\n"

    consumed = workflow.run_step(CONSUMER, "consumer", data, str(workflow.marker("w"))).check()
    assert consumed.stdout.split() == [digest, str(size), "produced", "8", "MiB"]

    # The same script without pycapio makes the same tree.
    plain = tmp_path / "plain"
    script = workflow.script(PRODUCER, "plain_producer.py")
    subprocess.run(
        [sys.executable, str(script), str(plain / "out" / "data.bin"), "8", str(SEED)],
        check=True,
        capture_output=True,
    )

    def tree(root: Path) -> dict[str, str]:
        return {
            str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file()
        }

    assert tree(workflow.capio_dir) == tree(plain)


@pytest.mark.parametrize("via", ["cli", "decorator"])
def test_killed_producer_releases_the_waiting_consumer_with_oserror(workflow: Workflow, via: str) -> None:
    workflow.start_peer()  # attached: a consumer started first waits for the producer
    data = str(workflow.capio_dir / "partial.bin")
    written = workflow.marker("written")
    producer_text = """
        import sys, time
        path, marker = sys.argv[1], sys.argv[2]
        f = open(path, "wb")
        for _ in range(4):
            f.write(b"x" * (1 << 20))
        f.flush()
        with open(marker, "w") as m:
            m.write("written")
        time.sleep(120)
    """
    consumer_text = """
        import sys
        try:
            with open(sys.argv[1], "rb") as f:
                data = f.read()
        except OSError as e:
            print("OSError", type(e).__name__, e.errno)
            sys.exit(3)
        print("read", len(data))
    """
    consumer = workflow.start_step(consumer_text, "consumer", data, via=via)
    producer = workflow.start_step(producer_text, "producer", data, str(written), via=via)
    assert wait_until(written.exists, 60), producer.stderr()
    time.sleep(0.5)
    assert consumer.running(), consumer.stderr()
    os.kill(producer.proc.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    result = consumer.wait(timeout=30)
    elapsed = time.monotonic() - killed_at
    assert result.returncode == 3, (result.stdout, result.stderr)
    assert result.stdout.startswith("OSError"), result.stdout
    assert elapsed < 10, f"consumer released only after {elapsed:.1f} s"
    # Nothing half-written is persisted.
    assert not Path(data).exists()


def test_two_workflows_do_not_see_each_others_files(make_workflow) -> None:  # type: ignore[no-untyped-def]
    wf1: Workflow = make_workflow()
    wf2: Workflow = make_workflow()  # same CAPIO directory, another workflow name
    assert wf1.capio_dir == wf2.capio_dir and wf1.name != wf2.name
    shared = str(wf1.capio_dir / "shared.txt")
    ready, go = wf1.marker("ready"), wf1.marker("go")
    holder = """
        import os, sys, time
        path, ready, go = sys.argv[1:4]
        with open(path, "w") as f:
            f.write("wf1 data")
        with open(ready, "w") as m:
            m.write("ready")
        deadline = time.time() + 60
        while not os.path.exists(go) and time.time() < deadline:
            time.sleep(0.05)
    """
    looker = """
        import os, sys
        path = sys.argv[1]
        d = os.path.dirname(path)
        names = sorted(os.listdir(d))
        print(os.path.exists(path), os.path.isfile(path), names, sorted(e.name for e in os.scandir(d)))
    """
    producer = wf1.start_step(holder, "producer", shared, str(ready), str(go))
    assert wait_until(ready.exists, 60), producer.stderr()
    seen = wf2.run_step(looker, "looker", shared).check()
    assert seen.stdout.split("\n")[0] == "False False [] []"
    # The same look from inside wf1 sees them.
    seen = wf1.run_step(looker, "looker", shared).check()
    assert seen.stdout.split("\n")[0] == "True True ['shared.txt'] ['shared.txt']"
    go.write_text("go")
    producer.wait().check()
    assert Path(shared).read_text() == "wf1 data"


def test_two_capio_dirs_do_not_see_each_others_files(make_workflow) -> None:  # type: ignore[no-untyped-def]
    wf1: Workflow = make_workflow("capio1")
    wf2: Workflow = make_workflow("capio2")
    f1 = str(wf1.capio_dir / "one.txt")
    ready, go = wf1.marker("ready1"), wf1.marker("go1")
    holder = """
        import os, sys, time
        path, ready, go = sys.argv[1:4]
        with open(path, "w") as f:
            f.write("one")
        with open(ready, "w") as m:
            m.write("ready")
        deadline = time.time() + 60
        while not os.path.exists(go) and time.time() < deadline:
            time.sleep(0.05)
    """
    looker = """
        import os, sys
        mine, theirs = sys.argv[1:3]
        print(os.path.exists(theirs), os.listdir(os.path.dirname(theirs)), os.listdir(mine))
    """
    producer = wf1.start_step(holder, "producer", f1, str(ready), str(go))
    assert wait_until(ready.exists, 60), producer.stderr()
    seen = wf2.run_step(looker, "looker", str(wf2.capio_dir), f1).check()
    assert seen.stdout.strip() == "False [] []"
    go.write_text("go")
    producer.wait().check()
    assert Path(f1).read_text() == "one"
    assert os.listdir(wf2.capio_dir) == []


def test_server_stops_when_the_last_client_leaves(workflow: Workflow) -> None:
    result = workflow.run_step("print('hi')", "solo").check()
    assert result.stdout == "hi\n"
    tracker = ServerTracker(workflow.runtime_dir)
    assert wait_until(lambda: not tracker.live(), 15), f"servers still running: {tracker.live()}"


def test_files_already_on_disk_are_inputs_readable_at_once(workflow: Workflow) -> None:
    (workflow.capio_dir / "inputs").mkdir()
    (workflow.capio_dir / "inputs" / "params.txt").write_text("alpha=1\n")
    reader = """
        import os, sys
        d = sys.argv[1]
        print(os.listdir(d), os.path.getsize(os.path.join(d, "params.txt")))
        with open(os.path.join(d, "params.txt")) as f:
            print(f.read().strip())
    """
    result = workflow.run_step(reader, "reader", str(workflow.capio_dir / "inputs"), timeout=30).check()
    assert result.stdout.splitlines() == ["['params.txt'] 8", "alpha=1"]


def test_pathlib_goes_through_the_patch(workflow: Workflow) -> None:
    script = """
        import pathlib, sys
        root = pathlib.Path(sys.argv[1])
        (root / "sub").mkdir()
        (root / "sub" / "a.txt").write_text("A")
        (root / "sub" / "b.bin").write_bytes(b"B")
        print(sorted(p.name for p in (root / "sub").iterdir()), (root / "sub" / "a.txt").read_text())
    """
    result = workflow.run_step(script, "pathlib", str(workflow.capio_dir)).check()
    assert result.stdout == "['a.txt', 'b.bin'] A\n"
    assert (workflow.capio_dir / "sub" / "a.txt").read_text() == "A"


def test_multiprocessing_fork_children_are_clients_of_the_same_app(workflow: Workflow) -> None:
    script = """
        import multiprocessing as mp, os, sys

        def work(path, i):
            with open(path, "w") as f:
                f.write("child %d" % i)

        if __name__ == "__main__":
            d = sys.argv[1]
            with open(os.path.join(d, "parent.txt"), "w") as f:
                f.write("parent")
            ctx = mp.get_context("fork")
            procs = [ctx.Process(target=work, args=(os.path.join(d, "c%d.txt" % i), i)) for i in range(3)]
            for p in procs:
                p.start()
            for p in procs:
                p.join()
            print([p.exitcode for p in procs])
            for i in range(3):
                with open(os.path.join(d, "c%d.txt" % i)) as f:
                    print(f.read())
    """
    result = workflow.run_step(script, "forker", str(workflow.capio_dir), timeout=60).check()
    assert result.stdout.splitlines() == ["[0, 0, 0]", "child 0", "child 1", "child 2"]
    for i in range(3):
        assert (workflow.capio_dir / f"c{i}.txt").read_text() == f"child {i}"
    assert (workflow.capio_dir / "parent.txt").read_text() == "parent"
