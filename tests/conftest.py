"""Shared fixtures: isolated workflows with real server processes, and their clean-up.

Every test gets its own workflow name (uuid), its own CAPIO directory under ``tmp_path`` and its
own ``PYCAPIO_RUNTIME_DIR`` (set in this process for in-process tests and in the environment of
every process it spawns). Servers are found through ``<runtime dir>/*.info`` (first line: pid)
and stopped by pid, never by name; the clean-up fails the test if one survives.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

# The tests exercise the installed package. ``python -m pytest`` from the checkout puts the
# checkout first on sys.path, where ``pycapio/`` has no compiled extension (unless it was built in
# place): drop it so ``import pycapio`` finds the installed one.
_REPO = Path(__file__).resolve().parent.parent
if not list((_REPO / "pycapio").glob("_pycapio*.so")):
    sys.path[:] = [p for p in sys.path if Path(p or os.curdir).resolve() != _REPO]
    for _name in [m for m in sys.modules if m == "pycapio" or m.startswith("pycapio.")]:
        del sys.modules[_name]

import pycapio  # noqa: E402
from pycapio import _patch  # noqa: E402

RUNTIME_ENV = "PYCAPIO_RUNTIME_DIR"

# Paths used by the step scripts are always absolute, so a step's cwd does not matter.


# -- server processes ---------------------------------------------------------------------------


def pid_alive(pid: int) -> bool:
    """True while ``pid`` is a live (non-zombie) process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        return False
    # The state is the first field after the parenthesised command name.
    state = stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3]
    return state not in (b"Z", b"X")


def is_capio_server(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv0 = f.read().split(b"\0", 1)[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return os.path.basename(argv0).startswith(b"capio_server")


def info_pids(runtime_dir: Path) -> list[int]:
    """Pids named by the servers' ``*.info`` files in ``runtime_dir``."""
    pids = []
    for info in sorted(runtime_dir.glob("*.info")):
        with contextlib.suppress(OSError, ValueError, IndexError):
            pids.append(int(info.read_text().splitlines()[0]))
    return pids


def wait_until(predicate, timeout: float, interval: float = 0.02) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def stop_server(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL, the server ``pid`` (only if it still is a capio_server)."""
    if not (pid_alive(pid) and is_capio_server(pid)):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not wait_until(lambda: not pid_alive(pid), timeout):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not pid_alive(pid), timeout)


class ServerTracker:
    """Remembers every server pid seen in one runtime directory and stops them at the end."""

    def __init__(self, runtime_dir: Path) -> None:
        self.runtime_dir = runtime_dir
        self.seen: set[int] = set()

    def refresh(self) -> list[int]:
        pids = [p for p in info_pids(self.runtime_dir) if is_capio_server(p)]
        self.seen.update(pids)
        return pids

    def add(self, pid: int) -> None:
        if pid > 0:
            self.seen.add(pid)

    def live(self) -> list[int]:
        self.refresh()
        return sorted(p for p in self.seen if pid_alive(p) and is_capio_server(p))

    def stop_all(self) -> list[int]:
        """Stop every server still running; returns the pids that had to be stopped."""
        leftover = self.live()
        for pid in leftover:
            stop_server(pid)
        still = [p for p in leftover if pid_alive(p)]
        assert not still, f"capio_server processes survived SIGKILL: {still}"
        return leftover


@pytest.fixture
def runtime_dir() -> Iterator[Path]:
    # Short, under /tmp: socket paths must fit in sun_path (108 bytes).
    path = Path(tempfile.mkdtemp(prefix="pcrt-"))
    path.chmod(0o700)
    tracker = ServerTracker(path)
    try:
        yield path
    finally:
        tracker.stop_all()
        shutil.rmtree(path, ignore_errors=True)


def unique_workflow(prefix: str = "wf") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


# -- in-process CAPIO ---------------------------------------------------------------------------


@dataclass
class InProcess:
    """CAPIO initialised in the test process itself (this process is app ``app``)."""

    capio_dir: Path
    workflow: str
    app: str
    server_pid: int
    runtime_dir: Path

    def context(self, **overrides: object) -> pycapio.CapioContext:
        kwargs: dict[str, object] = {
            "capio_dir": str(self.capio_dir),
            "app_name": self.app,
            "workflow_name": self.workflow,
        }
        kwargs.update(overrides)
        return pycapio.CapioContext(**kwargs)  # type: ignore[arg-type]

    def path(self, *parts: str) -> str:
        return os.path.join(str(self.capio_dir), *parts)


@pytest.fixture
def capio(tmp_path: Path, runtime_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[InProcess]:
    """CAPIO initialised in this process on a fresh workflow, torn down (server stopped) after."""
    monkeypatch.setenv(RUNTIME_ENV, str(runtime_dir))
    monkeypatch.setenv("SILENT", "ON")
    capio_dir = tmp_path / "capio"
    capio_dir.mkdir()
    workflow = unique_workflow("inproc")
    pid = pycapio.pycapio_init(str(capio_dir), "tester", workflow)
    tracker = ServerTracker(runtime_dir)
    tracker.add(pid)
    try:
        yield InProcess(capio_dir, workflow, "tester", pid, runtime_dir)
    finally:
        leaked = _patch.is_patched()
        while _patch.is_patched():
            _patch.deactivate()
        pycapio.pycapio_teardown(True)
        tracker.stop_all()
        assert not leaked, "a test left the CAPIO patch installed"


# -- workflows of separate processes ------------------------------------------------------------

_DECORATOR_RUNNER = textwrap.dedent(
    """\
    # Runs a step script inside @CapioContext (the decorator way in), as __main__.
    import sys

    from pycapio import CapioContext

    _, capio_dir, app_name, workflow_name, script, *args = sys.argv


    @CapioContext(capio_dir=capio_dir, app_name=app_name, workflow_name=workflow_name)
    def step():
        with open(script) as f:
            code = compile(f.read(), script, "exec")
        exec(code, {"__name__": "__main__", "__file__": script})


    sys.argv = [script, *args]
    step()
    """
)


# The launcher (or the decorator) attaches before the script runs.
_PEER = """
    import os, sys, time
    open(sys.argv[1], "w").close()
    while not os.path.exists(sys.argv[2]):
        time.sleep(0.05)
"""


@dataclass
class StepResult:
    returncode: int
    stdout: str
    stderr: str

    def check(self) -> StepResult:
        assert self.returncode == 0, f"step failed with {self.returncode}:\n{self.stderr}"
        return self


@dataclass
class Step:
    """A running step process; output goes to files so a chatty step never blocks on a pipe."""

    proc: subprocess.Popen[bytes]
    out_path: Path
    err_path: Path

    def running(self) -> bool:
        return self.proc.poll() is None

    def wait(self, timeout: float = 90) -> StepResult:
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"step did not finish in {timeout} s; stderr:\n{self.stderr()}") from None
        return StepResult(rc, self.stdout(), self.stderr())

    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")


@dataclass
class Workflow:
    """One workflow: a CAPIO directory, a unique name, an environment, and its step processes."""

    root: Path
    capio_dir: Path
    name: str
    runtime_dir: Path
    env: dict[str, str]
    steps: list[Step] = field(default_factory=list)
    _count: int = 0

    def script(self, text: str, name: str | None = None) -> Path:
        self._count += 1
        scripts = self.root / "scripts"
        scripts.mkdir(exist_ok=True)
        path = scripts / (name or f"step{self._count}.py")
        path.write_text(textwrap.dedent(text))
        return path

    def command(
        self,
        script: Path | str,
        app_name: str,
        args: Sequence[str] = (),
        via: str = "cli",
        capio_dir: Path | None = None,
        workflow_name: str | None = None,
    ) -> list[str]:
        capio_dir = capio_dir or self.capio_dir
        workflow_name = workflow_name or self.name
        if via == "cli":
            return [
                sys.executable,
                "-m",
                "pycapio",
                "--capio-dir",
                str(capio_dir),
                "--app-name",
                app_name,
                "--workflow-name",
                workflow_name,
                str(script),
                *args,
            ]
        if via == "decorator":
            runner = self.root / "scripts" / "_decorator_runner.py"
            runner.parent.mkdir(exist_ok=True)
            runner.write_text(_DECORATOR_RUNNER)
            return [sys.executable, str(runner), str(capio_dir), app_name, workflow_name, str(script), *args]
        raise ValueError(f"unknown way in: {via}")

    def start_step(
        self,
        script_text: str,
        app_name: str,
        *args: str,
        via: str = "cli",
        capio_dir: Path | None = None,
        workflow_name: str | None = None,
        cwd: Path | None = None,
    ) -> Step:
        script = self.script(script_text)
        cmd = self.command(script, app_name, args, via, capio_dir, workflow_name)
        logs = self.root / "logs"
        logs.mkdir(exist_ok=True)
        n = len(self.steps) + 1
        out_path, err_path = logs / f"{n}-{app_name}.out", logs / f"{n}-{app_name}.err"
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=self.env, cwd=cwd or self.root)
        step = Step(proc, out_path, err_path)
        self.steps.append(step)
        return step

    def run_step(
        self, script_text: str, app_name: str, *args: str, timeout: float = 90, **kw: object
    ) -> StepResult:
        return self.start_step(script_text, app_name, *args, **kw).wait(timeout)  # type: ignore[arg-type]

    def start_peer(self, app_name: str = "peer") -> Path:
        """Start a step that only stays attached, until the returned path is written (or the
        test ends). A reader of a missing file waits only while a producer may still appear; with
        no CAPIO-CL file that means "another step is attached", which this step is."""
        self._count += 1
        ready = self.marker(f"{app_name}-{self._count}-attached")
        release = self.marker(f"{app_name}-{self._count}-release")
        step = self.start_step(_PEER, app_name, str(ready), str(release))
        assert wait_until(ready.exists, 60), step.stderr()
        return release

    def marker(self, name: str) -> Path:
        """A path outside every CAPIO directory, for steps to signal progress to the test."""
        markers = self.root / "markers"
        markers.mkdir(exist_ok=True)
        return markers / name

    def cleanup(self) -> None:
        for step in self.steps:
            if step.proc.poll() is None:
                step.proc.kill()
            step.proc.wait()


@pytest.fixture
def plain(tmp_path: Path) -> Path:
    """A plain directory, for comparing a call on it with the same call in the CAPIO directory."""
    d = tmp_path / "plain"
    d.mkdir()
    return d


@pytest.fixture
def patched(capio: InProcess) -> Iterator[InProcess]:
    """The in-process CAPIO directory, with a context active for the whole test."""
    with capio.context():
        yield capio


@pytest.fixture
def make_workflow(tmp_path: Path, runtime_dir: Path) -> Iterator[object]:
    """Factory for workflows sharing this test's runtime directory (each with its own dir/name)."""
    made: list[Workflow] = []

    def make(capio_name: str = "capio") -> Workflow:
        root = tmp_path
        capio_dir = root / capio_name
        capio_dir.mkdir(exist_ok=True)
        env = dict(os.environ)
        env[RUNTIME_ENV] = str(runtime_dir)
        env["SILENT"] = "ON"
        env.pop("CAPIO_DIR", None)
        wf = Workflow(root, capio_dir, unique_workflow(), runtime_dir, env)
        made.append(wf)
        return wf

    try:
        yield make
    finally:
        for wf in made:
            wf.cleanup()


@pytest.fixture
def workflow(make_workflow) -> Workflow:  # type: ignore[no-untyped-def]
    return make_workflow()  # type: ignore[no-any-return]


# -- many nodes: an MPI job of one server per simulated node (tests/mpijob.py) --------------------

from mpijob import Job, build_mpi_server, jobs  # noqa: E402


@pytest.fixture(scope="session")
def mpi_server() -> Path:
    """A capio_server built with MPI support (or the test is skipped, saying why)."""
    return build_mpi_server()


@pytest.fixture
def job(workflow: Workflow, mpi_server: Path) -> Iterator[Callable[..., Job]]:
    """``job(ranks, config=None)`` starts an MPI job of one server per simulated node; every job
    started is stopped, by pid, at the end of the test."""
    yield from jobs(workflow, mpi_server)  # type: ignore[misc]
