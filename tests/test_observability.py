"""Observability: ``pycapio server start|status|stop`` against real servers and steps, and the
server's log levels (``CAPIO_LOG_LEVEL``). Looking at a server never makes the looker a client."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pycapio

from conftest import ServerTracker, Workflow, info_pids, pid_alive, wait_until


def cli(wf: Workflow, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pycapio", "server", *args],
        env=env or wf.env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=wf.root,
    )


def status(wf: Workflow) -> dict[str, Any]:
    out = cli(wf, "status", "--json", "--workflow-name", wf.name)
    assert out.returncode == 0, out.stderr
    (report,) = json.loads(out.stdout)
    return report  # type: ignore[no-any-return]


HOLD = """
import os, sys, time
out, ready = sys.argv[1], sys.argv[2]
f = open(out, "wb")
f.write(b"z" * 12345)
f.flush()
with open(ready + ".part", "w") as m:
    m.write("x")
os.replace(ready + ".part", ready)
deadline = time.monotonic() + 120
while not os.path.exists(ready + ".go") and time.monotonic() < deadline:
    time.sleep(0.02)
f.close()
"""

READ = """
import sys
with open(sys.argv[1], "rb") as f:
    print(len(f.read()))
"""


def test_start_status_stop_show_clients_files_readers_and_waits(workflow: Workflow) -> None:
    wf = workflow
    started = cli(wf, "start", "--capio-dir", str(wf.capio_dir), "--workflow-name", wf.name)
    assert started.returncode == 0, started.stderr
    assert started.stdout.startswith("started capio_server pid ")
    pid = int(started.stdout.split()[3])
    again = cli(wf, "start", "--capio-dir", str(wf.capio_dir), "--workflow-name", wf.name)
    assert again.stdout.startswith(f"already running: capio_server pid {pid}"), again

    out, ready = wf.capio_dir / "stuck.bin", wf.marker("ready")
    producer = wf.start_step(HOLD, "producer", str(out), str(ready))
    assert wait_until(ready.exists, 60), producer.stderr()
    reader = wf.start_step(READ, "reader", str(out))
    opener = wf.start_step(READ, "opener", str(wf.capio_dir / "never.bin"))

    def everyone_waits() -> bool:
        st = status(wf)
        files = {Path(f["path"]).name: f for f in st["files"]}
        return (
            len(st["clients"]) == 3
            and len(files.get("stuck.bin", {}).get("readers", [])) == 1
            and len(st["waiting_opens"]) == 1
        )

    assert wait_until(everyone_waits, 30), status(wf)
    st = status(wf)
    assert st["server"]["pid"] == pid and st["server"]["managed"] is True
    apps = {c["app"]: c["pid"] for c in st["clients"]}
    assert apps == {"producer": producer.proc.pid, "reader": reader.proc.pid, "opener": opener.proc.pid}
    assert st["live_clients"] == 3, "the observer is not a client"
    (stuck,) = [f for f in st["files"] if f["path"] == str(out)]
    assert (stuck["size"], stuck["state"], stuck["commit"], stuck["fire"]) == (
        12345,
        "open",
        "on_termination",
        "update",
    )
    assert [p["app"] for p in stuck["producers"]] == ["producer"]
    assert [r["app"] for r in stuck["readers"]] == ["reader"]
    (wait,) = st["waiting_opens"]
    assert wait["path"] == str(wf.capio_dir / "never.bin") and wait["client"]["app"] == "opener"

    text = cli(wf, "status").stdout
    for needle in [
        f"workflow '{wf.name}': capio_server pid {pid}",
        f"producer[{producer.proc.pid}]",
        f"{out}  12.1 KiB  open (on_termination, update)",
        f"readers reader[{reader.proc.pid}]",
        "waiting to open a file nobody has created:",
        f"{wf.capio_dir / 'never.bin'}  opener[{opener.proc.pid}] for ",
    ]:
        assert needle in text, f"{needle!r} not in:\n{text}"

    # The producer finishes: the reader gets the whole file. The launcher asks for a teardown when
    # its steps end, but a server started with 'pycapio server start' keeps running.
    Path(str(ready) + ".go").write_text("go")
    producer.wait(30).check()
    assert reader.wait(30).check().stdout == "12345\n"
    opener.proc.kill()
    opener.proc.wait()
    assert wait_until(lambda: status(wf)["live_clients"] == 0, 30)
    assert pid_alive(pid)
    stopped = cli(wf, "stop", "--workflow-name", wf.name)
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.strip() == f"stopped capio_server pid {pid} of workflow '{wf.name}'"
    assert not pid_alive(pid)
    assert cli(wf, "status").stdout.strip() == "no capio_server is running"
    missing = cli(wf, "status", "--workflow-name", wf.name)
    assert missing.returncode == 1 and "no capio_server runs for workflow" in missing.stderr
    gone = cli(wf, "stop", "--workflow-name", wf.name)
    assert gone.returncode == 1 and f"no capio_server is running for workflow '{wf.name}'" in gone.stderr


def test_version_and_status_say_whether_mpi_support_is_built_in(workflow: Workflow) -> None:
    wf = workflow
    server = Path(pycapio.__file__).parent / "capio_server"
    version = subprocess.run([str(server), "--version"], capture_output=True, text=True, timeout=30)
    assert version.returncode == 0, version.stderr
    name, support = version.stdout.splitlines()
    assert name == f"capio_server {pycapio.__version__}"
    assert support.startswith("MPI support: "), support
    started = cli(wf, "start", "--capio-dir", str(wf.capio_dir), "--workflow-name", wf.name)
    assert started.returncode == 0, started.stderr
    mpi = status(wf)["server"]["mpi"]
    text = cli(wf, "status").stdout
    assert cli(wf, "stop", "--workflow-name", wf.name).returncode == 0
    if mpi is None:
        assert support.startswith("MPI support: not built in (build with PYCAPIO_MPI=1"), support
        assert "MPI support: not built in" in text, text
    else:
        assert support == f"MPI support: built in ({mpi})"
        assert f"MPI support: built in ({mpi})" in text, text


def test_a_committed_reader_and_a_stopped_server_with_its_memory_budget(workflow: Workflow) -> None:
    wf = workflow
    started = cli(
        wf, "start", "--capio-dir", str(wf.capio_dir), "--workflow-name", wf.name, "--memory-limit", "64M"
    )
    assert started.returncode == 0, started.stderr
    wf.run_step(
        "import sys\nopen(sys.argv[1], 'wb').write(b'q' * 1000)\n", "w", str(wf.capio_dir / "q")
    ).check()
    st = status(wf)
    assert st["memory_limit"] == 64 << 20
    (q,) = st["files"]
    assert (q["state"], q["persisted"], q["size"], q["memory_charged"]) == ("committed", True, 1000, 1000)
    assert st["memory_used"] == 1000
    assert "memory 1000 B of 64.0 MiB" in cli(wf, "status").stdout
    assert cli(wf, "stop", "--all").returncode == 0
    assert not ServerTracker(wf.runtime_dir).live()


def test_a_killed_server_is_shown_stale(
    workflow: Workflow,
) -> None:
    wf = workflow
    ready = wf.marker("r")
    step = wf.start_step(HOLD, "holder", str(wf.capio_dir / "h"), str(ready))
    assert wait_until(ready.exists, 60), step.stderr()
    (pid,) = info_pids(wf.runtime_dir)
    assert status(wf)["server"]["managed"] is False
    os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: not pid_alive(pid), 10)
    text = cli(wf, "status").stdout
    assert f"workflow '{wf.name}': stale info file (pid {pid} is gone" in text, text
    step.proc.kill()
    step.proc.wait()


def log_path(runtime_dir: Path, workflow: str) -> Path:
    """``capio_proto::runtime::workflow_stem``: a readable prefix and the name's FNV-1a hash."""
    h = 0xCBF29CE484222325
    for b in workflow.encode():
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    readable = "".join(c for c in workflow if c.isascii() and (c.isalnum() or c in "-_."))[:24]
    return runtime_dir / f"{readable}-{h:016x}.log"


def run_logged(wf: Workflow, level: str | None) -> str:
    """Run a crashing producer and a clean step under CAPIO_LOG_LEVEL=level; the server's log."""
    env = dict(wf.env)
    if level is None:
        env.pop("CAPIO_LOG_LEVEL", None)
    else:
        env["CAPIO_LOG_LEVEL"] = level
    name = f"{wf.name}-{level}"
    ready = wf.marker(f"crash-{level}")
    wf2 = Workflow(wf.root, wf.capio_dir, name, wf.runtime_dir, env)
    crasher = wf2.start_step(HOLD, "crasher", str(wf.capio_dir / f"lost-{level}.bin"), str(ready))
    assert wait_until(ready.exists, 60), crasher.stderr()
    os.kill(crasher.proc.pid, signal.SIGKILL)
    crasher.proc.wait()
    wf2.run_step("print('ok')", "clean").check()
    assert wait_until(lambda: not ServerTracker(wf.runtime_dir).live(), 30)
    wf2.cleanup()
    return log_path(wf.runtime_dir, name).read_text()


def test_log_levels_come_from_capio_log_level_and_warnings_say_what_was_lost(workflow: Workflow) -> None:
    default = run_logged(workflow, None)
    assert " INFO: listening on " in default and " DEBUG: " not in default
    # The crash is a warning that names the app, its pid and the file it lost.
    assert (
        "WARN: client " in default and "app 'crasher'" in default and "disconnected without Exit" in default
    )
    assert "WARN: aborted " in default and "lost-None.bin (12345 bytes written)" in default
    debug = run_logged(workflow, "debug")
    assert " DEBUG: " in debug
    quiet = run_logged(workflow, "error")
    assert " INFO: " not in quiet and " WARN: " not in quiet and " DEBUG: " not in quiet, quiet
    loud = run_logged(workflow, "loud")
    assert "CAPIO_LOG_LEVEL='loud' is not error|warn|info|debug or 0-3; using info" in loud


def test_memory_in_use_is_reported_without_a_limit(workflow: Workflow) -> None:
    # Issue 10: "memory 0 B (no limit)" while holding a file; memory was only counted under a limit.
    wf = workflow
    started = cli(wf, "start", "--capio-dir", str(wf.capio_dir), "--workflow-name", wf.name)
    assert started.returncode == 0, started.stderr
    wf.run_step(
        "import sys\nopen(sys.argv[1], 'wb').write(b'm' * (3 << 20))\n", "w", str(wf.capio_dir / "m")
    ).check()
    st = status(wf)
    assert st["memory_limit"] is None
    (m,) = st["files"]
    assert (m["size"], m["memory_charged"]) == (3 << 20, 3 << 20)
    assert st["memory_used"] == 3 << 20
    assert "memory 3.0 MiB (no limit)" in cli(wf, "status").stdout
    assert cli(wf, "stop", "--all").returncode == 0
    assert not ServerTracker(wf.runtime_dir).live()


MANY_KEPT = """
import os, sys
for i in range(30):
    with open(os.path.join(sys.argv[1], f"kept{i:02d}.bin"), "wb") as f:
        f.write(b"k" * 100)
"""


def test_the_shutdown_names_a_few_files_kept_in_memory_only_and_counts_the_rest(workflow: Workflow) -> None:
    # 30 committed files whose rule keeps them in memory only: as asked, so not a warning each.
    from test_capio_cl import config, start, step_rule

    rule = {"name": ["kept*"], "committed": "on_close", "mode": "update"}
    cl = config(workflow, {"IO_Graph": [step_rule("keeper", ["kept*"], [rule])]}, "kept.json")
    result = start(workflow, cl, MANY_KEPT, "keeper", str(workflow.capio_dir)).wait(60)
    assert result.returncode == 0, result.stderr
    assert wait_until(lambda: not ServerTracker(workflow.runtime_dir).live(), 30)
    log = log_path(workflow.runtime_dir, workflow.name).read_text()
    named = [line for line in log.splitlines() if "committed, not configured to persist" in line]
    assert len(named) == 20, log
    assert (
        "not persisted: 10 more committed files not configured to persist (30 files, 3000 bytes in all)"
        in log
    )
