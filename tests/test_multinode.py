"""One workflow's servers as the ranks of one MPI job: each node's server knows the job, and a stop
on any node (a ``pycapio server stop`` there, a signal to its server) stops every node after each
persisted what it must; the job exits 0.

Nodes are simulated as on a cluster: ranks joined only by TCP (``--mca btl tcp,self``), each with
its own runtime directory (a node's private ``/tmp``), the CAPIO directory standing for the shared
file system. The server is built with MPI support into ``target/mpi`` (or taken from
``$PYCAPIO_MPI_SERVER``); without MPI on the machine these tests are skipped, saying why, unless
``$PYCAPIO_REQUIRE_MPI=1`` (CI) makes that a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from mpijob import MPI_ENV, server_cli, server_pid, status, unavailable

import pycapio

from conftest import Workflow, info_pids, pid_alive, stop_server, wait_until

WRITE = "import sys\nopen(sys.argv[1], 'w').write(sys.argv[2])\n"


@pytest.mark.parametrize("ranks", [2, 3])
def test_every_node_s_server_knows_its_rank_and_the_job(job, ranks: int) -> None:  # type: ignore[no-untyped-def]
    j = job(ranks)
    reports = j.wait_ready()
    pids = set()
    for rank, report in enumerate(reports):
        server = report["server"]
        assert isinstance(server, dict)
        assert server["mpi"], "built with MPI support"
        assert server["cluster"]["rank"] == rank
        assert len(server["cluster"]["nodes"]) == ranks
        pids.add(server["pid"])
    assert len(pids) == ranks, "one server per node, each in its own runtime directory"
    text = server_cli(j.nodes[ranks - 1], "status").stdout
    assert f"node {ranks - 1} of {ranks} (MPI job)" in text
    assert server_cli(j.nodes[0], "stop").returncode == 0
    assert j.wait() == 0, j.text()


@pytest.mark.parametrize("ranks", [2, 3])
def test_a_stop_on_any_node_stops_every_node_after_each_persisted(job, ranks: int) -> None:  # type: ignore[no-untyped-def]
    j = job(ranks)
    reports = j.wait_ready()
    (marker,) = marker_paths(j.wf)
    assert marker.read_text().splitlines()[0] == str(server_pid(reports[0])), "the first node marks it"
    # A step on each node writes a file there; with no CAPIO-CL file each persists when committed.
    for rank, node in enumerate(j.nodes):
        path = node.capio_dir / f"from-node{rank}.txt"
        node.run_step(WRITE, f"writer{rank}", str(path), f"written on node {rank}").check()
    last = j.nodes[-1]
    assert server_cli(last, "stop").returncode == 0
    assert j.wait() == 0, j.text()
    for rank in range(ranks):
        assert (j.wf.capio_dir / f"from-node{rank}.txt").read_text() == f"written on node {rank}"
        assert not pid_alive(server_pid(reports[rank]))
    assert not marker_paths(j.wf), "the mark goes with the job"
    log = j.text()
    assert log.count("INFO: stopped") == ranks, log
    assert "stopped: Shutdown request" in log, "the others were told why"


def test_a_signal_to_one_node_s_server_stops_the_job(job) -> None:  # type: ignore[no-untyped-def]
    j = job(2)
    reports = j.wait_ready()
    os.kill(server_pid(reports[1]), signal.SIGTERM)
    assert j.wait() == 0, j.text()
    assert not pid_alive(server_pid(reports[0]))
    assert "node 1 (" in j.text() and "stopped: SIGTERM" in j.text()


PRODUCER = """
import sys, time
with open(sys.argv[1], "w") as f:
    f.write("begun")
    f.flush()
    open(sys.argv[2], "w").close()  # the consumer may start: the file exists, uncommitted
    time.sleep(600)
"""
CONSUMER = "import sys\nprint(open(sys.argv[1]).read())\n"


def test_a_killed_node_fails_the_steps_waiting_on_every_node(job) -> None:  # type: ignore[no-untyped-def]
    """A node that dies takes the job down (MPI's default), and a step waiting on any node's server
    gets an error within seconds, never a hang; nothing of the job is left running."""
    j = job(2)
    reports = j.wait_ready()
    node0 = j.nodes[0]
    data, ready = node0.capio_dir / "slow.txt", node0.root / "producer-ready"
    producer = node0.start_step(PRODUCER, "producer", str(data), str(ready))
    assert wait_until(ready.exists, 60), producer.stderr()
    consumer = node0.start_step(CONSUMER, "consumer", str(data))
    time.sleep(1)
    assert consumer.running(), "it waits for the commit"
    killed_at = time.monotonic()
    os.kill(server_pid(reports[1]), signal.SIGKILL)
    result = consumer.wait(60)
    assert time.monotonic() - killed_at < 20, "released within seconds"
    # As on one node (test_faults): the wait ends in the server's error, an OSError.
    assert result.returncode != 0
    failure = result.stderr.split("\n\n")[0]
    assert "OSError: [Errno 5]" in failure or "PyCAPIOException" in failure, result.stderr
    assert j.wait(60) != 0, "the job reports the lost node"
    assert wait_until(lambda: not any(pid_alive(server_pid(r)) for r in reports), 30)
    assert not data.exists(), "no real path is left half-written"


def test_a_job_refuses_home_policies_that_pin_paths_to_a_node_it_does_not_have(job) -> None:  # type: ignore[no-untyped-def]
    config = Path(tempfile.mkdtemp(prefix="pccl-")) / "wf.json"
    policies = {"manual": [{"name": ["pinned.dat"], "app_node": "no-such-node"}]}
    config.write_text(json.dumps({"name": "wf", "IO_Graph": [], "home_node_policies": policies}))
    try:
        j = job(2, config)
        assert j.wait() != 0
        assert "pin paths to node 'no-such-node', which is not in this job" in j.text(), j.text()
    finally:
        shutil.rmtree(config.parent)


def test_server_run_in_an_mpi_job_without_mpi_support_says_how_to_build(workflow: Workflow) -> None:
    """``pycapio server run`` in a rank of a job becomes that node's server of the job; a package
    built without MPI refuses, naming the build that has it, instead of running lone servers that
    would each think they are the whole workflow."""
    if shutil.which("mpirun") is None:
        unavailable("mpirun is not installed")
    packaged = Path(pycapio.__file__).parent / "capio_server"
    built = subprocess.run([packaged, "--version"], capture_output=True, text=True)
    if "MPI support: built in" in built.stdout:
        pytest.skip("this package's server is built with MPI support")
    wf = workflow
    command = [sys.executable, "-m", "pycapio", "server", "run", "--capio-dir", str(wf.capio_dir)]
    done = subprocess.run(
        ["mpirun", "-np", "2", "--oversubscribe", *command, "--workflow-name", wf.name],
        env={**wf.env, **MPI_ENV},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=wf.root,
    )
    assert done.returncode != 0
    assert "PYCAPIO_MPI=1 pip install ." in done.stdout + done.stderr


# -- a step that starts before its node's server ------------------------------------------------

STEP = """
import sys, pycapio
with pycapio.CapioContext(
    capio_dir=sys.argv[1], app_name="early", workflow_name=sys.argv[2],
    await_server_timeout_seconds=float(sys.argv[3]),
):
    open(sys.argv[1] + "/early.txt", "w").write("written")
"""


def mark_as_job(wf: Workflow, pid: int, host: str) -> Path:
    """The mark the first node's server of a running MPI job leaves in the CAPIO directory."""
    assert not marker_paths(wf), "no job has marked it yet"
    stem = job_stem(wf)
    path = wf.capio_dir / f".{stem}.capio-cluster"
    path.write_text(f"{pid}\n{host}\n")
    return path


def marker_paths(wf: Workflow) -> list[Path]:
    return sorted(wf.capio_dir.glob(".*.capio-cluster"))


def job_stem(wf: Workflow) -> str:
    # Read back from a real server's info file name: the stem is the runtime files' own.
    started = server_cli(wf, "start", "--capio-dir", str(wf.capio_dir))
    assert started.returncode == 0, started.stderr
    (info,) = wf.runtime_dir.glob("*.info")
    assert server_cli(wf, "stop").returncode == 0
    assert wait_until(lambda: not list(wf.runtime_dir.glob("*.info")), 30)
    return info.name.removesuffix(".info")


def early_step(node: Workflow, timeout: float) -> subprocess.Popen[str]:
    script = node.script(STEP)
    return subprocess.Popen(
        [sys.executable, str(script), str(node.capio_dir), node.name, str(timeout)],
        env=node.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=node.root,
    )


def this_host() -> str:
    return Path("/proc/sys/kernel/hostname").read_text().strip()


def test_a_step_before_its_node_s_server_waits_for_it_instead_of_starting_one(workflow: Workflow) -> None:
    wf = workflow
    mark_as_job(wf, 4242, "node-a")  # the first node is another host: its server is trusted alive
    step = early_step(wf, 60)
    node_server: subprocess.Popen[bytes] | None = None
    try:
        time.sleep(1.5)
        assert step.poll() is None, step.communicate()
        assert not list(wf.runtime_dir.glob("*.info")), "it started no server of its own"
        # Neither does 'pycapio server start': the same decision, in the same place.
        start = server_cli(wf, "start", "--capio-dir", str(wf.capio_dir), "--timeout", "1")
        assert start.returncode != 0 and "runs its servers as an MPI job" in start.stderr, start.stderr
        # The node's server comes up (as its rank would, in the foreground): the step attaches.
        run = [sys.executable, "-m", "pycapio", "server", "run", "--capio-dir", str(wf.capio_dir)]
        node_server = subprocess.Popen(
            [*run, "--workflow-name", wf.name], env=wf.env, cwd=wf.root, stderr=subprocess.DEVNULL
        )
        _, err = step.communicate(timeout=60)
        assert step.returncode == 0, err
        assert len(list(wf.runtime_dir.glob("*.info"))) == 1
        # Steps never see the mark: the server lists it as one of its own files.
        lister = "import os, sys\nprint(sorted(os.listdir(sys.argv[1])))\n"
        listed = wf.run_step(lister, "lister", str(wf.capio_dir)).check()
        assert listed.stdout == "['early.txt']\n"
    finally:
        if step.poll() is None:
            step.kill()
            step.wait()
        if node_server is not None:
            server_cli(wf, "stop")
            try:
                node_server.wait(30)
            except subprocess.TimeoutExpired:
                node_server.kill()
                node_server.wait()


def test_a_step_whose_node_s_server_never_comes_says_so(workflow: Workflow) -> None:
    wf = workflow
    marker = mark_as_job(wf, os.getpid(), "node-a")
    step = early_step(wf, 1)
    _, err = step.communicate(timeout=60)
    assert step.returncode != 0
    assert "PyCAPIOException" in err
    assert f"workflow '{wf.name}' runs its servers as an MPI job (first node node-a; {marker})" in err
    assert not list(wf.runtime_dir.glob("*.info")), "no lone server"


@pytest.mark.parametrize("left_by", ["an exited server", "a reused pid"])
def test_the_mark_of_a_job_that_died_on_this_host_is_ignored(workflow: Workflow, left_by: str) -> None:
    wf = workflow
    if left_by == "an exited server":
        gone = subprocess.Popen(["true"])
        gone.wait()
        pid = gone.pid
    else:
        pid = os.getpid()  # alive, but no capio_server
    mark_as_job(wf, pid, this_host())
    step = early_step(wf, 30)
    _, err = step.communicate(timeout=60)
    assert step.returncode == 0, err
    assert (wf.capio_dir / "early.txt").read_text() == "written"


def test_server_run_as_the_only_task_of_a_job_is_a_one_node_server(workflow: Workflow) -> None:
    """A job of one task (``srun -n1`` just to place the server on a node) is one node: ``server
    run`` starts the ordinary server there, with any build."""
    if shutil.which("mpirun") is None:
        unavailable("mpirun is not installed")
    wf = workflow
    command = [sys.executable, "-m", "pycapio", "server", "run", "--capio-dir", str(wf.capio_dir)]
    log = wf.root / "one-task.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["mpirun", "-np", "1", *command, "--workflow-name", wf.name],
            env={**wf.env, **MPI_ENV},
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=wf.root,
        )
    try:
        assert wait_until(lambda: status(wf) is not None, 60, interval=0.2), log.read_text()
        report = status(wf)
        assert report is not None and report["server"]["cluster"] is None  # type: ignore[index]
        wf.run_step(WRITE, "writer", str(wf.capio_dir / "one.txt"), "one node").check()
        assert server_cli(wf, "stop").returncode == 0
        assert proc.wait(60) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        for pid in info_pids(wf.runtime_dir):
            stop_server(pid)
    assert (wf.capio_dir / "one.txt").read_text() == "one node"
