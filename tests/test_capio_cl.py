"""CAPIO-CL enforced across processes: commit and fire rules, directories, persistence, errors.

Every step is an ordinary Python script launched with ``pycapio --capio-cl FILE``; steps signal
their progress through marker files *outside* the CAPIO directory (plain OS files). The tests are
built so that they can only pass when the rule is really enforced: a producer that waits (for a
bounded time) for a marker its consumer can only write after reading data shows that the data
reached the consumer while the producer was still running, and the opposite for rules that must
hold data back. Paths in the configurations are relative: they resolve against the CAPIO
directory, while every step runs in the workflow's root (another directory).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from conftest import ServerTracker, Step, StepResult, Workflow, wait_until

# Helpers every step script starts with: bounded waits for markers, atomic marker writes.
PRELUDE = """\
import hashlib, json, os, random, sys, time


def wait_for(path, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            return True
        time.sleep(0.02)
    return os.path.exists(path)


def touch(path, text="x"):
    with open(path + ".part", "w") as f:
        f.write(text)
    os.replace(path + ".part", path)


touch(os.environ["STEP_STARTED"])  # the launcher has attached this process before running it
"""


def config(wf: Workflow, cl: dict[str, Any], name: str = "capio_cl.json") -> Path:
    """Write a CAPIO-CL file (outside the CAPIO directory) for ``wf``; returns its path."""
    cl = {"name": wf.name, **cl}
    path = wf.root / name
    path.write_text(json.dumps(cl, indent=2))
    return path


def step_rule(app: str, outputs: Sequence[str], streaming: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    return {"name": app, "input_stream": [], "output_stream": list(outputs), "streaming": list(streaming)}


def reader_rule(app: str, inputs: Sequence[str]) -> dict[str, Any]:
    return {"name": app, "input_stream": list(inputs), "output_stream": []}


def start(wf: Workflow, cl: Path | None, body: str, app: str, *args: str) -> Step:
    """Like ``Workflow.start_step`` (via the CLI), with ``--capio-cl cl`` when given; returns once
    the step is attached to the workflow's server.

    Waiting for the attach matters: a consumer started "first" that attached only after a quick
    producer had left would find a new server, without the producer's memory-only files.
    """
    script = wf.script(PRELUDE + textwrap.dedent(body))
    cmd = wf.command(script, app, args)
    if cl is not None:
        cmd[3:3] = ["--capio-cl", str(cl)]  # after "python -m pycapio"
    logs = wf.root / "logs"
    logs.mkdir(exist_ok=True)
    n = len(wf.steps) + 1
    out_path, err_path = logs / f"{n}-{app}.out", logs / f"{n}-{app}.err"
    started = wf.marker(f"started-{n}")
    env = dict(wf.env, STEP_STARTED=str(started))
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=wf.root)
    step = Step(proc, out_path, err_path)
    wf.steps.append(step)
    wait_for_marker(started, step)
    return step


def report(result: StepResult) -> Any:
    """The JSON object a step printed as its last line of stdout (after checking it succeeded)."""
    result.check()
    lines = result.stdout.strip().splitlines()
    assert lines, f"no output; stderr:\n{result.stderr}"
    return json.loads(lines[-1])


def run_cli(wf: Workflow, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pycapio", *args],
        capture_output=True,
        text=True,
        env=wf.env,
        cwd=wf.root,
        timeout=timeout,
    )


def no_server_left(wf: Workflow) -> bool:
    tracker = ServerTracker(wf.runtime_dir)
    return wait_until(lambda: not tracker.live(), 15)


def wait_for_marker(path: Path, step: Step, timeout: float = 60) -> None:
    assert wait_until(lambda: path.exists() or not step.running(), timeout), f"no {path.name}"
    assert path.exists(), f"{path.name} not written; the step ended:\n{step.stderr()}"


# -- fire rules: real streaming -----------------------------------------------------------------

CHUNK = 1 << 20
CHUNKS = 6
SEED = 31337

STREAM_PRODUCER = """
    path, got_chunk, done, patience = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    chunk, chunks, seed = int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
    rng = random.Random(seed)
    with open(path, "wb") as f:
        f.write(rng.randbytes(chunk))
        f.flush()
        started = time.monotonic()
        saw = wait_for(got_chunk, patience)  # the consumer writes it once it has read chunk 1
        waited = time.monotonic() - started
        for _ in range(chunks - 1):
            f.write(rng.randbytes(chunk))
    touch(done)  # the producer's last act: the (default) commit is at its exit, after this
    print(json.dumps({"saw_marker": saw, "waited": waited}))
"""

STREAM_CONSUMER = """
    path, got_chunk, done, chunk = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    digest = hashlib.sha256()
    total = early = 0
    first_read_after_done = None
    with open(path, "rb", buffering=0) as f:  # raw reads: return what is there, block at the end
        while True:
            data = f.read(1 << 16)
            finished = os.path.exists(done)
            if first_read_after_done is None:
                first_read_after_done = finished
            if not data:
                break
            digest.update(data)
            total += len(data)
            if not finished:
                early += len(data)
            if total >= chunk and not os.path.exists(got_chunk):
                touch(got_chunk)
    print(json.dumps({"total": total, "sha256": digest.hexdigest(), "early": early,
                      "first_read_after_done": first_read_after_done}))
"""


def stream_expected() -> tuple[int, str]:
    rng = random.Random(SEED)
    digest = hashlib.sha256()
    for _ in range(CHUNKS):
        digest.update(rng.randbytes(CHUNK))
    return CHUNKS * CHUNK, digest.hexdigest()


@pytest.mark.parametrize("mode", ["no_update", "update"])
def test_fire_rule_streams_or_holds_back_a_file(workflow: Workflow, mode: str) -> None:
    """``no_update``: the consumer gets chunk 1 while the producer waits for it to say so (only
    real streaming completes the hand-shake). ``update``: nothing is readable before the commit,
    so the producer's bounded wait for the consumer's marker runs out."""
    wf = workflow
    rule = {"name": ["stream.bin"], "committed": "on_termination", "mode": mode}
    cl = config(
        wf,
        {
            "IO_Graph": [
                step_rule("producer", ["stream.bin"], [rule]),
                reader_rule("consumer", ["stream.bin"]),
            ]
        },
    )
    data = str(wf.capio_dir / "stream.bin")
    got, done = wf.marker("got-chunk-1"), wf.marker("producer-done")
    patience = 20.0 if mode == "no_update" else 3.0
    consumer = start(wf, cl, STREAM_CONSUMER, "consumer", data, str(got), str(done), str(CHUNK))
    producer = start(
        wf, cl, STREAM_PRODUCER, "producer", data, str(got), str(done), str(patience),
        str(CHUNK), str(CHUNKS), str(SEED),
    )  # fmt: skip
    produced = report(producer.wait())
    consumed = report(consumer.wait())
    total, digest = stream_expected()
    assert (consumed["total"], consumed["sha256"]) == (total, digest)
    if mode == "no_update":
        assert produced["saw_marker"], "the consumer did not get chunk 1 while the producer was writing"
        assert consumed["early"] >= CHUNK
        assert not consumed["first_read_after_done"]
    else:
        assert not produced["saw_marker"], "an update file was readable before its commit"
        assert produced["waited"] >= patience - 0.1
        assert consumed["early"] == 0
        assert consumed["first_read_after_done"]
    # Not permanent in a configuration: memory only, never written to disk.
    assert not Path(data).exists()


# -- commit rules for files ---------------------------------------------------------------------

READ_AND_SIGNAL = """
    path, done = sys.argv[1], sys.argv[2]
    exiting = sys.argv[3] if len(sys.argv) > 3 else None
    with open(path) as f:
        text = f.read()
    producer_exiting = bool(exiting) and os.path.exists(exiting)
    touch(done, text)
    print(json.dumps({"text": text, "producer_exiting": producer_exiting}))
"""


def commit_config(wf: Workflow, rules: Sequence[dict[str, Any]], outputs: Sequence[str]) -> Path:
    return config(wf, {"IO_Graph": [step_rule("producer", outputs, rules), reader_rule("consumer", outputs)]})


def test_on_close_commits_at_close_while_the_producer_runs(workflow: Workflow) -> None:
    wf = workflow
    cl = commit_config(wf, [{"name": ["out.txt"], "committed": "on_close", "mode": "update"}], ["out.txt"])
    path, done = str(wf.capio_dir / "out.txt"), wf.marker("consumer-done")
    consumer = start(wf, cl, READ_AND_SIGNAL, "consumer", path, str(done))
    producer = start(
        wf,
        cl,
        """
        path, done = sys.argv[1], sys.argv[2]
        with open(path, "w") as f:
            f.write("closed once\\n")
        print(json.dumps({"consumer_done_while_running": wait_for(done, 20)}))
        """,
        "producer",
        path,
        str(done),
    )
    assert report(producer.wait())["consumer_done_while_running"]
    assert report(consumer.wait())["text"] == "closed once\n"


def test_on_close_n_commits_at_the_nth_close(workflow: Workflow) -> None:
    wf = workflow
    cl = commit_config(wf, [{"name": ["out.txt"], "committed": "on_close:2"}], ["out.txt"])
    path, done = str(wf.capio_dir / "out.txt"), wf.marker("consumer-done")
    consumer = start(wf, cl, READ_AND_SIGNAL, "consumer", path, str(done))
    producer = start(
        wf,
        cl,
        """
        path, done = sys.argv[1], sys.argv[2]
        with open(path, "w") as f:
            f.write("first\\n")
        after_first = wait_for(done, 2.5)
        with open(path, "a") as f:
            f.write("second\\n")
        after_second = wait_for(done, 20)
        print(json.dumps({"after_first": after_first, "after_second": after_second}))
        """,
        "producer",
        path,
        str(done),
    )
    produced = report(producer.wait())
    assert produced == {"after_first": False, "after_second": True}, produced
    assert report(consumer.wait())["text"] == "first\nsecond\n"


def test_on_file_commits_when_its_dependency_commits(workflow: Workflow) -> None:
    wf = workflow
    rules = [
        {"name": ["result.dat"], "committed": "on_file", "file_deps": ["result.done"]},
        {"name": ["result.done"], "committed": "on_close"},
    ]
    cl = commit_config(wf, rules, ["result.dat", "result.done"])
    path, flag, done = (
        str(wf.capio_dir / "result.dat"),
        str(wf.capio_dir / "result.done"),
        wf.marker("c-done"),
    )
    consumer = start(wf, cl, READ_AND_SIGNAL, "consumer", path, str(done))
    producer = start(
        wf,
        cl,
        """
        path, flag, done = sys.argv[1], sys.argv[2], sys.argv[3]
        with open(path, "w") as f:
            f.write("the result\\n")
        before_dep = wait_for(done, 2.5)
        with open(flag, "w") as f:
            f.write("ok")
        after_dep = wait_for(done, 20)
        print(json.dumps({"before_dep": before_dep, "after_dep": after_dep}))
        """,
        "producer",
        path,
        flag,
        str(done),
    )
    produced = report(producer.wait())
    assert produced == {"before_dep": False, "after_dep": True}, produced
    assert report(consumer.wait())["text"] == "the result\n"


def test_on_termination_commits_only_when_the_producer_exits(workflow: Workflow) -> None:
    wf = workflow
    cl = commit_config(wf, [{"name": ["out.txt"], "committed": "on_termination"}], ["out.txt"])
    path, done, exiting = str(wf.capio_dir / "out.txt"), wf.marker("c-done"), wf.marker("p-exiting")
    consumer = start(wf, cl, READ_AND_SIGNAL, "consumer", path, str(done), str(exiting))
    producer = start(
        wf,
        cl,
        """
        path, done, exiting = sys.argv[1], sys.argv[2], sys.argv[3]
        with open(path, "w") as f:
            f.write("at exit\\n")
        before_exit = wait_for(done, 2.5)
        touch(exiting)
        print(json.dumps({"before_exit": before_exit}))
        """,
        "producer",
        path,
        str(done),
        str(exiting),
    )
    assert report(producer.wait()) == {"before_exit": False}
    consumed = report(consumer.wait(timeout=30))
    assert consumed == {"text": "at exit\n", "producer_exiting": True}


@pytest.mark.parametrize(
    "rule",
    [
        {"committed": "on_close:5", "mode": "update"},
        {"committed": "on_close:5", "mode": "no_update"},
        {"committed": "on_file", "file_deps": ["never.flag"]},
    ],
    ids=["on_close:5-update", "on_close:5-no_update", "on_file-unmet"],
)
def test_last_producer_exit_commits_whatever_the_rule(workflow: Workflow, rule: dict[str, Any]) -> None:
    wf = workflow
    cl = commit_config(wf, [{"name": ["out.txt"], **rule}], ["out.txt"])
    path, done = str(wf.capio_dir / "out.txt"), wf.marker("c-done")
    consumer = start(wf, cl, READ_AND_SIGNAL, "consumer", path, str(done))
    producer = start(
        wf,
        cl,
        """
        with open(sys.argv[1], "w") as f:
            f.write("one close only\\n")
        """,
        "producer",
        path,
    )
    producer.wait().check()
    assert report(consumer.wait(timeout=30))["text"] == "one close only\n"


def test_a_killed_producer_releases_no_update_readers_with_oserror(workflow: Workflow) -> None:
    wf = workflow
    rule = {"name": ["out.bin"], "committed": "on_close:2", "mode": "no_update"}
    cl = config(
        wf,
        {
            "IO_Graph": [step_rule("producer", ["out.bin"], [rule]), reader_rule("consumer", ["out.bin"])],
            "permanent": ["out.bin"],
        },
    )
    path, written = str(wf.capio_dir / "out.bin"), wf.marker("written")
    consumer = start(
        wf,
        cl,
        """
        got = 0
        try:
            with open(sys.argv[1], "rb", buffering=0) as f:
                while data := f.read(1 << 16):
                    got += len(data)
        except OSError as e:
            print(json.dumps({"error": type(e).__name__, "got": got}))
            sys.exit(3)
        print(json.dumps({"eof": True, "got": got}))
        """,
        "consumer",
        path,
    )
    producer = start(
        wf,
        cl,
        """
        f = open(sys.argv[1], "wb")
        f.write(b"x" * 4096)
        f.flush()
        touch(sys.argv[2])
        time.sleep(120)
        """,
        "producer",
        path,
        str(written),
    )
    wait_for_marker(written, producer)
    time.sleep(0.5)
    assert consumer.running(), consumer.stderr()  # it has the 4 KiB and waits at the end
    os.kill(producer.proc.pid, signal.SIGKILL)
    result = consumer.wait(timeout=15)
    assert result.returncode == 3, (result.stdout, result.stderr)
    assert json.loads(result.stdout) == {"error": "OSError", "got": 4096}
    assert no_server_left(wf)
    assert not Path(path).exists()  # permanent, but never committed: not persisted


# -- directories --------------------------------------------------------------------------------

DIR_PRODUCER = """
    d, seen1, listed, made3 = sys.argv[1:5]
    os.makedirs(d)
    with open(os.path.join(d, "f1.txt"), "w") as f:
        f.write("data 1")
    saw_f1_seen = wait_for(seen1, 20)  # the consumer has entry 1 before entry 3 exists
    for i in (2, 3):
        with open(os.path.join(d, "f%d.txt" % i), "w") as f:
            f.write("data %d" % i)
    touch(made3)
    listing_done = wait_for(listed, 20)  # n_files commits the directory, not the exit
    print(json.dumps({"saw_f1_seen": saw_f1_seen, "listing_done_while_running": listing_done}))
"""

DIR_SCAN_CONSUMER = """
    d, seen1, listed, made3 = sys.argv[1:5]
    assert wait_for(d, 30), "the directory never appeared"
    entries = []
    for entry in os.scandir(d):
        with open(entry.path) as f:
            text = f.read()
        entries.append([entry.name, text, os.path.exists(made3)])
        if entry.name == "f1.txt":
            touch(seen1)
    touch(listed)
    print(json.dumps({"entries": entries}))
"""


def dir_config(wf: Workflow, dir_rule: dict[str, Any], **extra: Any) -> Path:
    rules = [{"dirname": ["outdir"], **dir_rule}, {"name": ["outdir/*"], "committed": "on_close"}]
    graph = [step_rule("producer", ["outdir", "outdir/*"], rules), reader_rule("consumer", ["outdir"])]
    return config(wf, {"IO_Graph": graph, **extra})


def test_dir_on_n_files_no_update_scandir_streams_entries_as_they_are_created(workflow: Workflow) -> None:
    wf = workflow
    cl = dir_config(wf, {"committed": "on_n_files", "n_files": 3, "mode": "no_update"})
    d = str(wf.capio_dir / "outdir")
    markers = [str(wf.marker(m)) for m in ("seen-f1", "listed", "made-3")]
    consumer = start(wf, cl, DIR_SCAN_CONSUMER, "consumer", d, *markers)
    producer = start(wf, cl, DIR_PRODUCER, "producer", d, *markers)
    produced = report(producer.wait())
    consumed = report(consumer.wait())
    assert consumed["entries"][0] == ["f1.txt", "data 1", False], consumed
    assert [e[:2] for e in consumed["entries"]] == [[f"f{i}.txt", f"data {i}"] for i in (1, 2, 3)]
    assert produced == {"saw_f1_seen": True, "listing_done_while_running": True}, produced
    # Neither the directory nor its files are permanent: nothing on disk once the server is gone
    # (the directory was there while it ran, and is removed at shutdown, empty on disk).
    assert no_server_left(wf)
    assert not Path(d).exists()


def test_dir_on_n_files_update_listdir_returns_at_the_nth_entry(workflow: Workflow) -> None:
    wf = workflow
    cl = dir_config(wf, {"committed": "on_n_files", "n_files": 3, "mode": "update"})
    d = str(wf.capio_dir / "outdir")
    seen1, listed, made3 = (str(wf.marker(m)) for m in ("seen-f1", "listed", "made-3"))
    consumer = start(
        wf,
        cl,
        """
        d, listed, made3 = sys.argv[1:4]
        assert wait_for(d, 30), "the directory never appeared"
        names = os.listdir(d)
        touch(listed)
        print(json.dumps({"names": names}))
        """,
        "consumer",
        d,
        listed,
        made3,
    )
    # seen-f1 is never written here: the producer waits for it in vain (update holds the
    # listing back), then writes the rest.
    producer = start(wf, cl, DIR_PRODUCER.replace("wait_for(seen1, 20)", "wait_for(seen1, 2)"), "producer",
                     d, seen1, listed, made3)  # fmt: skip
    produced = report(producer.wait())
    consumed = report(consumer.wait())
    assert consumed["names"] == ["f1.txt", "f2.txt", "f3.txt"]
    assert produced == {"saw_f1_seen": False, "listing_done_while_running": True}, produced


def test_dir_on_n_files_short_of_entries_commits_when_its_producer_exits(workflow: Workflow) -> None:
    wf = workflow
    cl = dir_config(wf, {"committed": "on_n_files", "n_files": 5, "mode": "no_update"})
    d = str(wf.capio_dir / "outdir")
    consumer = start(
        wf,
        cl,
        """
        d = sys.argv[1]
        assert wait_for(d, 30), "the directory never appeared"
        print(json.dumps(sorted(e.name for e in os.scandir(d))))
        """,
        "consumer",
        d,
    )
    producer = start(
        wf,
        cl,
        """
        d = sys.argv[1]
        os.makedirs(d)
        for name in ("a.txt", "b.txt"):
            with open(os.path.join(d, name), "w") as f:
                f.write(name)
        """,
        "producer",
        d,
    )
    producer.wait().check()
    assert report(consumer.wait(timeout=30)) == ["a.txt", "b.txt"]


@pytest.mark.parametrize("lister", ["listdir", "scandir"])
def test_dir_on_termination_listing_waits_for_the_creator_to_exit(workflow: Workflow, lister: str) -> None:
    wf = workflow
    rules = [{"dirname": ["results"], "committed": "on_termination", "mode": "update"}]
    cl = config(
        wf,
        {
            "IO_Graph": [
                step_rule("producer", ["results", "results/*"], rules),
                reader_rule("consumer", ["results"]),
            ]
        },
    )
    d = str(wf.capio_dir / "results")
    listed, exiting = str(wf.marker("listed")), str(wf.marker("exiting"))
    consumer = start(
        wf,
        cl,
        f"""
        d, listed, exiting = sys.argv[1:4]
        assert wait_for(d, 30), "the directory never appeared"
        names = sorted({"os.listdir(d)" if lister == "listdir" else "e.name for e in os.scandir(d)"})
        producer_exiting = os.path.exists(exiting)
        touch(listed)
        print(json.dumps({{"names": names, "producer_exiting": producer_exiting}}))
        """,
        "consumer",
        d,
        listed,
        exiting,
    )
    producer = start(
        wf,
        cl,
        """
        d, listed, exiting = sys.argv[1:4]
        os.makedirs(d)
        for name in ("a.txt", "b.txt"):
            with open(os.path.join(d, name), "w") as f:
                f.write(name)
        before_exit = wait_for(listed, 2.5)
        touch(exiting)
        print(json.dumps({"before_exit": before_exit}))
        """,
        "producer",
        d,
        listed,
        exiting,
    )
    assert report(producer.wait()) == {"before_exit": False}
    assert report(consumer.wait(timeout=30)) == {"names": ["a.txt", "b.txt"], "producer_exiting": True}


# -- persistence, exclude, storage --------------------------------------------------------------

HOLD_UNTIL_GO = """
    # Write each NAME=TEXT under the CAPIO directory, then wait for the test's go.
    capio_dir, made, go, *files = sys.argv[1:]
    for spec in files:
        name, text = spec.split("=", 1)
        path = os.path.join(capio_dir, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
    touch(made)
    print(json.dumps({"go": wait_for(go, 30)}))
"""

READ_ALL = """
    # Read each path (waiting for it), print {name: text}.
    capio_dir, *names = sys.argv[1:]
    out = {}
    for name in names:
        with open(os.path.join(capio_dir, name)) as f:
            out[name] = f.read()
    print(json.dumps(out))
"""


def disk_tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def test_permanent_files_are_persisted_at_commit_and_the_others_stay_in_memory(workflow: Workflow) -> None:
    wf = workflow
    cl = config(
        wf,
        {
            "IO_Graph": [
                step_rule("producer", ["keep.txt", "scratch.txt", "results/*"]),
                reader_rule("consumer", ["keep.txt", "scratch.txt", "results/r.txt"]),
            ],
            "permanent": ["keep.txt", "results", "results/*"],
        },
    )
    made, go = wf.marker("made"), wf.marker("go")
    files = ["keep.txt=kept", "scratch.txt=scratch", "results/r.txt=result"]
    consumer = start(
        wf, cl, READ_ALL, "consumer", str(wf.capio_dir), "keep.txt", "scratch.txt", "results/r.txt"
    )
    producer = start(wf, cl, HOLD_UNTIL_GO, "producer", str(wf.capio_dir), str(made), str(go), *files)
    wait_for_marker(made, producer)
    # Not committed yet: no file on disk; the directory is, from the moment it was made.
    assert os.listdir(wf.capio_dir) == ["results"]
    assert os.listdir(wf.capio_dir / "results") == []
    go.write_text("go")
    assert report(producer.wait()) == {"go": True}
    assert report(consumer.wait()) == {
        "keep.txt": "kept",
        "scratch.txt": "scratch",
        "results/r.txt": "result",
    }
    assert no_server_left(wf)
    # Only the permanent files, complete, and no temporary files left behind.
    assert disk_tree(wf.capio_dir) == {"keep.txt": "kept", "results/r.txt": "result"}
    assert sorted(os.listdir(wf.capio_dir)) == ["keep.txt", "results"]


def test_without_a_configuration_dirs_are_on_disk_at_once_and_files_at_commit(workflow: Workflow) -> None:
    wf = workflow
    made, go = wf.marker("made"), wf.marker("go")
    producer = start(
        wf, None, HOLD_UNTIL_GO, "producer", str(wf.capio_dir), str(made), str(go), "sub/x.txt=x"
    )
    wait_for_marker(made, producer)
    assert os.listdir(wf.capio_dir) == ["sub"]
    assert os.listdir(wf.capio_dir / "sub") == []
    go.write_text("go")
    assert report(producer.wait()) == {"go": True}
    assert no_server_left(wf)
    assert disk_tree(wf.capio_dir) == {"sub/x.txt": "x"}


def test_excluded_paths_go_straight_to_disk(workflow: Workflow) -> None:
    wf = workflow
    # Only the files: the directory "logs" the step makes through CAPIO is on disk at once, so
    # an excluded file can go into it.
    cl = config(wf, {"IO_Graph": [step_rule("producer", ["data.txt"])], "exclude": ["*.log"]})
    made, go = wf.marker("made"), wf.marker("go")
    producer = start(
        wf, cl, HOLD_UNTIL_GO, "producer", str(wf.capio_dir), str(made), str(go),
        "run.log=log line\n", "logs/deep.log=deep\n", "data.txt=data",
    )  # fmt: skip
    wait_for_marker(made, producer)
    # While the producer still runs, a plain (non-CAPIO) process sees the excluded files, and
    # only them.
    check = "import os, sys; print(*(os.path.exists(p) for p in sys.argv[1:]))"
    paths = [str(wf.capio_dir / name) for name in ("run.log", "logs/deep.log", "data.txt")]
    plain = subprocess.run(
        [sys.executable, "-c", check, *paths], capture_output=True, text=True, check=True, timeout=30
    )
    assert plain.stdout.split() == ["True", "True", "False"]
    assert disk_tree(wf.capio_dir) == {"run.log": "log line\n", "logs/deep.log": "deep\n"}
    go.write_text("go")
    assert report(producer.wait()) == {"go": True}


@pytest.mark.parametrize("permanent", [False, True], ids=["memory-only", "permanent"])
def test_storage_fs_backs_the_file_on_disk_and_streams_correctly(workflow: Workflow, permanent: bool) -> None:
    wf = workflow
    rule = {"name": ["big.bin"], "committed": "on_close", "mode": "no_update"}
    cl = config(
        wf,
        {
            "IO_Graph": [step_rule("producer", ["big.bin"], [rule]), reader_rule("consumer", ["big.bin"])],
            "storage": {"fs": ["big.bin"]},
            "permanent": ["big.bin"] if permanent else [],
        },
    )
    data = str(wf.capio_dir / "big.bin")
    got, done, go = wf.marker("got-chunk-1"), wf.marker("producer-done"), wf.marker("go")
    consumer = start(wf, cl, STREAM_CONSUMER, "consumer", data, str(got), str(done), str(CHUNK))
    producer = start(
        wf,
        cl,
        STREAM_PRODUCER.replace("saw = wait_for(got_chunk, patience)", "saw = wait_for(got_chunk, patience)\n"
                                "        wait_for(sys.argv[8], 30)"),
        "producer", data, str(got), str(done), "20", str(CHUNK), str(CHUNKS), str(SEED), str(go),
    )  # fmt: skip
    wait_for_marker(got, producer)
    # Backed on disk (a hidden data file in the CAPIO directory), not yet at its real path.
    hidden = [p for p in wf.capio_dir.iterdir() if p.name.startswith(".big.bin")]
    assert hidden and hidden[0].stat().st_size >= CHUNK, sorted(os.listdir(wf.capio_dir))
    assert not Path(data).exists()
    go.write_text("go")
    assert report(producer.wait())["saw_marker"]
    consumed = report(consumer.wait())
    total, digest = stream_expected()
    assert (consumed["total"], consumed["sha256"]) == (total, digest)
    assert consumed["early"] >= CHUNK
    assert no_server_left(wf)
    leftovers = sorted(os.listdir(wf.capio_dir))
    if permanent:
        assert leftovers == ["big.bin"]
        assert hashlib.sha256(Path(data).read_bytes()).hexdigest() == digest
    else:
        assert leftovers == []


# -- declared producers -------------------------------------------------------------------------


def declared_config(wf: Workflow) -> Path:
    return config(
        wf,
        {
            "IO_Graph": [
                step_rule("writer", ["made.txt", "never.txt"]),
                reader_rule("reader", ["made.txt", "never.txt"]),
            ]
        },
    )


OPEN_AND_REPORT = """
    # Open each path for reading in turn; report its text or the exception raised.
    waiting, *paths = sys.argv[1:]
    out = []
    for path in paths:
        touch(waiting + "-" + os.path.basename(path))
        started = time.monotonic()
        try:
            with open(path) as f:
                out.append([os.path.basename(path), "text", f.read()])
        except OSError as e:
            out.append([os.path.basename(path), type(e).__name__, e.errno])
        out[-1].append(round(time.monotonic() - started, 2))
    print(json.dumps(out))
"""


def test_waiting_for_a_file_its_declared_producers_never_made_raises_filenotfound(workflow: Workflow) -> None:
    wf = workflow
    cl = declared_config(wf)
    made, never = str(wf.capio_dir / "made.txt"), str(wf.capio_dir / "never.txt")
    waiting = wf.marker("waiting")
    reader = start(wf, cl, OPEN_AND_REPORT, "reader", str(waiting), never)
    wait_for_marker(Path(str(waiting) + "-never.txt"), reader)
    time.sleep(1.0)
    assert reader.running(), reader.stderr()  # waiting: the writer has not run yet
    writer = start(wf, cl, "with open(sys.argv[1], 'w') as f:\n    f.write('made')\n", "writer", made)
    writer.wait().check()
    exited_at = time.monotonic()
    result = report(reader.wait(timeout=30))
    assert time.monotonic() - exited_at < 10
    assert [r[:3] for r in result] == [["never.txt", "FileNotFoundError", 2]]


def test_declared_producers_never_wait_for_their_own_files(workflow: Workflow) -> None:
    wf = workflow
    cl = declared_config(wf)
    made, go = wf.marker("made"), wf.marker("go")
    writer = start(wf, cl, HOLD_UNTIL_GO, "writer", str(wf.capio_dir), str(made), str(go), "made.txt=partial")
    wait_for_marker(made, writer)
    # Another process of the writer app: the uncommitted file reads at once, the missing one
    # is not waited for.
    paths = [str(wf.capio_dir / "made.txt"), str(wf.capio_dir / "never.txt")]
    result = report(start(wf, cl, OPEN_AND_REPORT, "writer", str(wf.marker("w")), *paths).wait(timeout=30))
    assert [r[:3] for r in result] == [["made.txt", "text", "partial"], ["never.txt", "FileNotFoundError", 2]]
    assert all(r[3] < 5 for r in result), result
    # A process of another app waits for the commit.
    reader = start(wf, cl, OPEN_AND_REPORT, "reader", str(wf.marker("r")), paths[0])
    time.sleep(1.5)
    assert reader.running(), reader.stdout()
    go.write_text("go")
    assert report(writer.wait()) == {"go": True}
    assert [r[:3] for r in report(reader.wait(timeout=30))] == [["made.txt", "text", "partial"]]


# -- configuration errors, validate, mismatch ---------------------------------------------------

BAD_CONFIGS = {
    "on_file-without-file_deps": (
        '{"name": "wf", "IO_Graph": [{"name": "p", "input_stream": [], "output_stream": [],\n'
        ' "streaming": [{"name": ["x"], "committed": "on_file"}]}]}',
        ["$.IO_Graph[0].streaming[0]", "file_deps"],
    ),
    "bad-commit-rule": (
        '{"name": "wf", "IO_Graph": [{"name": "p", "input_stream": [], "output_stream": [],\n'
        ' "streaming": [{"name": ["x"], "committed": "on_close:two"}]}]}',
        ["$.IO_Graph[0].streaming[0].committed", "on_close:two"],
    ),
    "malformed-json": ('{"name": "wf",\n "IO_Graph": [}', [":2:"]),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_an_invalid_configuration_fails_fast_and_starts_nothing(workflow: Workflow, case: str) -> None:
    wf = workflow
    text, expected = BAD_CONFIGS[case]
    bad = wf.root / "bad.json"
    bad.write_text(text)
    ran = wf.marker("ran")
    script = wf.script(f"open({str(ran)!r}, 'w').close()\n")
    result = run_cli(
        wf, "--capio-dir", str(wf.capio_dir), "--workflow-name", wf.name, "--capio-cl", str(bad), str(script)
    )
    assert result.returncode == 1, result
    assert result.stdout == ""
    assert str(bad) in result.stderr
    for fragment in expected:
        assert fragment in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not ran.exists(), "the script ran with an invalid configuration"
    assert sorted(p.name for p in wf.runtime_dir.iterdir() if p.suffix in (".sock", ".info")) == []
    assert ServerTracker(wf.runtime_dir).live() == []


def test_validate_prints_each_paths_rules_resolved_against_the_capio_dir(workflow: Workflow) -> None:
    wf = workflow
    cl = dir_config(
        wf, {"committed": "on_n_files", "n_files": 4, "mode": "no_update"}, permanent=["outdir/*"]
    )
    result = run_cli(wf, "validate", "--capio-dir", str(wf.capio_dir), str(cl), "outdir", "outdir/a.txt")
    assert result.returncode == 0, result.stderr
    blocks = result.stdout.split("\n\n")
    assert blocks[0] == f"{cl}: valid CAPIO-CL for workflow '{wf.name}'"
    dir_block, file_block = (dict(line.split(": ", 1) for line in b.strip().splitlines()) for b in blocks[1:])
    root = wf.capio_dir.resolve()
    assert dir_block["path"] == f"{root}/outdir"
    assert dir_block["directory commit"].startswith("on_n_files 4")
    assert dir_block["directory fire"].startswith("no_update")
    assert dir_block["producers"].startswith("producer")
    assert dir_block["consumers"].startswith("consumer")
    assert file_block["path"] == f"{root}/outdir/a.txt"
    assert file_block["commit"].startswith("on_close")
    assert file_block["fire"].startswith("update (streaming rule")
    assert file_block["permanent"].startswith("yes")
    assert file_block["excluded"] == "no"
    # Nothing was started to validate.
    assert ServerTracker(wf.runtime_dir).live() == []


def test_validate_reports_an_invalid_file_with_exit_1(workflow: Workflow) -> None:
    wf = workflow
    text, expected = BAD_CONFIGS["on_file-without-file_deps"]
    bad = wf.root / "bad.json"
    bad.write_text(text)
    result = run_cli(wf, "validate", str(bad), "x")
    assert result.returncode == 1
    assert result.stdout == ""
    assert all(fragment in result.stderr for fragment in [str(bad), *expected]), result.stderr


def test_validate_warns_about_every_field_a_rule_ignores(workflow: Workflow) -> None:
    wf = workflow
    cl = dir_config(wf, {"committed": "on_close", "n_files": 4, "file_deps": ["x"]})
    result = run_cli(wf, "validate", str(cl))
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stdout.splitlines() if line.startswith("warning: ")]
    at = "$.IO_Graph[0].streaming[0]"
    assert len(warnings) == 3, result.stdout
    assert warnings[0].startswith(f'warning: {at}.n_files: ignored: only "committed": "on_n_files"'), warnings
    assert warnings[1].startswith(f'warning: {at}.file_deps: ignored: only "committed": "on_file"'), warnings
    assert warnings[2].startswith(f'warning: {at}.committed: "on_close" counts closes'), warnings
    # A rule that uses what it says gets none.
    quiet = run_cli(wf, "validate", str(dir_config(wf, {"committed": "on_n_files", "n_files": 4})))
    assert quiet.returncode == 0 and "warning" not in quiet.stdout, quiet.stdout


def test_validate_warns_that_an_excluded_paths_rules_are_ignored(workflow: Workflow) -> None:
    wf = workflow
    rule = {"name": ["a.log"], "committed": "on_close", "mode": "no_update"}
    extra = {"exclude": ["*.log"], "permanent": ["a.log"], "storage": {"fs": ["a.log"]}}
    cl = config(wf, {"IO_Graph": [step_rule("p", ["a.log"], [rule])], **extra})
    result = run_cli(wf, "validate", str(cl))
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stdout.splitlines() if line.startswith("warning: ")]
    assert [w.split(":", 2)[1].strip() for w in warnings] == [
        "$.IO_Graph[0].streaming[0].name[0]",
        "$.permanent[0]",
        "$.storage.fs[0]",
    ], warnings
    assert all('"a.log" is excluded (the OS serves it)' in w for w in warnings), warnings


def test_validate_says_the_dynamic_rule_api_is_not_supported(workflow: Workflow) -> None:
    wf = workflow
    toml = wf.root / "engine.toml"
    toml.write_text('[dynamic_api]\nip = "224.224.224.3"\nport = 11223\n')
    cl = config(wf, {"version": 1.1, "configuration": str(toml), "IO_Graph": [step_rule("a", ["f"])]})
    result = run_cli(wf, "validate", str(cl))
    assert result.returncode == 0, result.stderr
    (warning,) = [line for line in result.stdout.splitlines() if line.startswith("warning: ")]
    assert warning.startswith("warning: $.configuration: not read"), warning
    assert "dynamic_api" in warning and "does not support the dynamic rule API" in warning, warning
    # The server says the same in its log when it starts with that file.
    step = start(wf, cl, "pass", "a")
    assert step.wait().returncode == 0
    log = "\n".join(p.read_text() for p in wf.runtime_dir.glob("*.log"))
    assert "does not support the dynamic rule API" in log, log


def test_a_client_with_another_configuration_than_the_server_is_refused(workflow: Workflow) -> None:
    wf = workflow
    cl1 = config(wf, {"IO_Graph": [step_rule("producer", ["a.txt"])]}, "one.json")
    cl2 = config(wf, {"IO_Graph": [step_rule("producer", ["b.txt"])]}, "two.json")
    made, go = wf.marker("made"), wf.marker("go")
    holder = start(wf, cl1, HOLD_UNTIL_GO, "producer", str(wf.capio_dir), str(made), str(go), "a.txt=a")
    wait_for_marker(made, holder)
    other = wf.script(
        """
        import sys
        import pycapio
        try:
            pycapio.pycapio_init(sys.argv[1], "other", sys.argv[2], capio_cl_configuration_file=sys.argv[3])
        except pycapio.PyCAPIOException as e:
            print("PyCAPIOException", e)
        else:
            print("attached")
        """
    )
    result = subprocess.run(
        [sys.executable, str(other), str(wf.capio_dir), wf.name, str(cl2)],
        capture_output=True, text=True, env=wf.env, cwd=wf.root, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("PyCAPIOException"), result.stdout
    assert "two.json" in result.stdout and "one.json" in result.stdout
    # The same through the launcher: exit 1, the problem on stderr, the script not run.
    result = run_cli(
        wf, "--capio-dir", str(wf.capio_dir), "--workflow-name", wf.name, "--capio-cl", str(cl2),
        str(wf.script("print('ran')")),
    )  # fmt: skip
    assert result.returncode == 1 and result.stdout == ""
    assert "PyCAPIOException" in result.stderr and "two.json" in result.stderr
    # The running workflow is unaffected.
    go.write_text("go")
    assert report(holder.wait()) == {"go": True}


# -- the examples -------------------------------------------------------------------------------

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize(
    ("example", "expected"),
    [
        ("capio_cl_streaming", {"summary.txt"}),
        ("directory_streaming", {"report.txt"}),
    ],
)
def test_capio_cl_example_runs_with_one_command(
    tmp_path: Path, runtime_dir: Path, example: str, expected: set[str]
) -> None:
    env = dict(os.environ, PYCAPIO_RUNTIME_DIR=str(runtime_dir), PYTHON=sys.executable)
    result = subprocess.run(
        ["bash", str(EXAMPLES / example / "run.sh"), str(tmp_path / "work")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1].startswith("OK: "), result.stdout
    producer, consumer = (line.split(": ", 1)[1] for line in lines[1:3])
    assert producer == consumer, result.stdout
    overlap = next(line for line in lines if "before the producer finished" in line)
    assert int(overlap.split(": ")[1].split(" of ")[0]) >= 1, overlap
    # Only the permanent output is on disk; the streamed data stayed in memory.
    assert set(os.listdir(tmp_path / "work" / "capio")) == expected
    assert ServerTracker(runtime_dir).live() == []


@pytest.mark.parametrize("example", ["capio_cl_streaming", "directory_streaming"])
def test_capio_cl_example_steps_do_not_import_pycapio(example: str) -> None:
    for step in ("producer.py", "consumer.py"):
        source = (EXAMPLES / example / step).read_text()
        assert "import pycapio" not in source and "from pycapio" not in source
