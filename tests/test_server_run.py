"""``pycapio server run``: the workflow's server in the foreground (job scripts, workflow managers),
stopped by ``pycapio server stop`` or a signal, with steps attaching to it as to any server."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Workflow, wait_until

WRITE = "import sys\nopen(sys.argv[1], 'w').write(sys.argv[2])\n"


def server_cli(wf: Workflow, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pycapio", "server", *args],
        env=wf.env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=wf.root,
    )


def run_command(wf: Workflow) -> list[str]:
    where = ("--capio-dir", str(wf.capio_dir), "--workflow-name", wf.name)
    return [sys.executable, "-m", "pycapio", "server", "run", *where]


def run_server(wf: Workflow) -> tuple[subprocess.Popen[bytes], Path]:
    log = wf.root / "server.err"
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            run_command(wf),
            env=wf.env,
            stdout=subprocess.DEVNULL,
            stderr=err,
            cwd=wf.root,
        )
    running = lambda: server_cli(wf, "status", "--workflow-name", wf.name).returncode == 0  # noqa: E731
    assert wait_until(running, 30), log.read_text()
    return proc, log


@pytest.mark.parametrize("how", ["stop", "sigterm", "sigint"])
def test_a_foreground_server_serves_steps_and_stops_cleanly(workflow: Workflow, how: str) -> None:
    wf = workflow
    proc, log = run_server(wf)
    try:
        status = server_cli(wf, "status", "--workflow-name", wf.name).stdout
        assert f"capio_server pid {proc.pid}" in status, "the run command became the server itself"
        assert "log: stderr" in status
        wf.run_step(WRITE, "producer", str(wf.capio_dir / "a.txt"), "from a step").check()
        # The step left; a managed server stays for the next one.
        assert proc.poll() is None
        read = "import sys\nprint(open(sys.argv[1]).read())\n"
        assert wf.run_step(read, "consumer", str(wf.capio_dir / "a.txt")).check().stdout == "from a step\n"
        if how == "stop":
            assert server_cli(wf, "stop", "--workflow-name", wf.name).returncode == 0
        else:
            proc.send_signal(signal.SIGTERM if how == "sigterm" else signal.SIGINT)
        assert proc.wait(60) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (wf.capio_dir / "a.txt").read_text() == "from a step", "persisted before it stopped"
    assert "stopped" in log.read_text()


def test_a_second_server_for_the_same_workflow_is_refused(workflow: Workflow) -> None:
    wf = workflow
    proc, _ = run_server(wf)
    try:
        second = subprocess.run(
            run_command(wf),
            env=wf.env,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=wf.root,
        )
        assert second.returncode == 1, second.stderr
        assert "already" in second.stderr or "running" in second.stderr, second.stderr
        assert proc.poll() is None, "the first one keeps running"
    finally:
        server_cli(wf, "stop", "--workflow-name", wf.name)
        proc.wait(60)
