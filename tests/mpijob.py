"""Nodes of one machine standing for the nodes of a cluster, for the multi-node tests: an MPI job
of one ``capio_server`` per simulated node (``Job``), each with its own runtime directory, joined
only by TCP; the CAPIO directory stands for the shared file system. The server is built with MPI
support into ``target/mpi`` (or taken from ``$PYCAPIO_MPI_SERVER``); without MPI on the machine
the tests that use it are skipped, saying why, unless ``$PYCAPIO_REQUIRE_MPI=1`` (CI) makes that a
failure. The fixtures ``mpi_server`` and ``job`` are registered in ``conftest``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import RUNTIME_ENV, Workflow, info_pids, stop_server, wait_until

_REPO = Path(__file__).resolve().parent.parent
MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}


def unavailable(why: str) -> None:
    if os.environ.get("PYCAPIO_REQUIRE_MPI") == "1":
        pytest.fail(f"MPI tests required but {why}")
    pytest.skip(why)


def build_mpi_server() -> Path:
    """A capio_server built with MPI support."""
    given = os.environ.get("PYCAPIO_MPI_SERVER")
    if given:
        return Path(given)
    for tool in ("mpirun", "mpicc", "cargo"):
        if shutil.which(tool) is None:
            unavailable(f"{tool} is not installed (Debian: libopenmpi-dev openmpi-bin libclang-dev)")
    target = _REPO / "target" / "mpi"
    build = subprocess.run(
        ["cargo", "build", "--quiet", "-p", "capio-server", "--features", "mpi"],
        cwd=_REPO,
        env={**os.environ, "CARGO_TARGET_DIR": str(target)},
        capture_output=True,
        text=True,
    )
    if build.returncode != 0:
        unavailable(f"the MPI build of capio_server failed:\n{build.stderr[-3000:]}")
    return target / "debug" / "capio_server"


def on_node(wf: Workflow, rank: int) -> Workflow:
    """``wf`` as seen from node ``rank``: the same CAPIO directory and name, that node's runtime
    directory. Its step scripts are numbered apart from every other node's (they share the test's
    directory), so that one node's step never overwrites another's script."""
    runtime = wf.runtime_dir / f"node{rank}"
    env = {**wf.env, RUNTIME_ENV: str(runtime)}
    return dataclasses.replace(wf, runtime_dir=runtime, env=env, steps=[], _count=(rank + 1) * 10_000)


def server_cli(wf: Workflow, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pycapio", "server", *args, "--workflow-name", wf.name],
        env=wf.env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=wf.root,  # not the checkout: its source tree would shadow the installed package
    )


def status(node: Workflow) -> dict[str, object] | None:
    done = server_cli(node, "status", "--json")
    if done.returncode != 0:
        return None
    reports = json.loads(done.stdout)
    return reports[0] if reports else None


class Job:
    """``mpirun -np N`` of one server per simulated node, stopped by pid at the end."""

    def __init__(self, wf: Workflow, exe: Path, ranks: int, config: Path | None = None) -> None:
        self.wf = wf
        self.ranks = ranks
        self.nodes = [on_node(wf, r) for r in range(ranks)]
        for node in self.nodes:
            node.runtime_dir.mkdir(mode=0o700)
        self.log = wf.root / "mpirun.log"
        # Each rank picks its node's runtime directory from its rank, as a job script would.
        rank_dir = f"{wf.runtime_dir}/node$OMPI_COMM_WORLD_RANK"
        server = (
            f"{RUNTIME_ENV}={rank_dir} exec {exe} --backend mpi --managed --capio-dir {wf.capio_dir}"
            f" --workflow-name {wf.name} " + (f"--config {config}" if config else "--no-config")
        )
        command = ["mpirun", "-np", str(ranks), "--oversubscribe", "--mca", "btl", "tcp,self"]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [*command, "sh", "-c", server],
                env={**wf.env, **MPI_ENV},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=wf.root,
            )

    def wait_ready(self) -> list[dict[str, object]]:
        reports: list[dict[str, object] | None] = [None] * self.ranks

        def all_up() -> bool:
            assert self.proc.poll() is None, self.text()
            for rank, node in enumerate(self.nodes):
                reports[rank] = reports[rank] or status(node)
            return all(reports)

        assert wait_until(all_up, 60, interval=0.2), self.text()
        return [r for r in reports if r is not None]

    def wait(self, timeout: float = 60) -> int:
        return self.proc.wait(timeout)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        """Whatever the test did: nothing of the job outlives it (mpirun forwards SIGTERM to its
        ranks; the session is killed if that is not enough)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(30)
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        # mpirun puts each rank in a process group of its own: its servers are stopped by pid.
        for node in self.nodes:
            for pid in info_pids(node.runtime_dir):
                stop_server(pid)
            node.cleanup()


def jobs(workflow: Workflow, mpi_server: Path) -> Iterator[object]:
    started: list[Job] = []

    def start(ranks: int, config: Path | None = None) -> Job:
        j = Job(workflow, mpi_server, ranks, config)
        started.append(j)
        return j

    try:
        yield start
    finally:
        for j in started:
            j.stop()


def server_pid(report: dict[str, object]) -> int:
    server = report["server"]
    assert isinstance(server, dict)
    return int(server["pid"])
