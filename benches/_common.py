"""Helpers shared by the benchmark cases: isolated workflows, CAPIO-CL files, step processes,
deterministic data, timing and the row convention (see ``benches/README.md``).

Every case runs in its own interpreter (``run.py`` starts one per case). A case that uses CAPIO
makes an :class:`Isolated` environment: a private ``PYCAPIO_RUNTIME_DIR``, a unique workflow name
and a temporary root. On exit, every ``capio_server`` named by that runtime directory's ``*.info``
files is stopped **by pid** (never by name), the step processes it started are killed if still
running, and the directories are removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypedDict, TypeVar

HERE = Path(__file__).resolve().parent
RUNTIME_ENV = "PYCAPIO_RUNTIME_DIR"
MiB = 1 << 20
GiB = 1 << 30
T = TypeVar("T")


class Row(TypedDict):
    """One line of the table; what every ``bench_*.run(quick)`` returns a list of."""

    case: str
    pycapio: float
    baseline: float
    unit: str
    higher_is_better: bool
    target: float | None
    note: str


class BenchError(RuntimeError):
    """A benchmark did not do what it measures (checksum mismatch, a step failed): an error, not
    a slow result. ``run.py`` exits non-zero on it."""


def row(
    case: str,
    pycapio: float,
    baseline: float,
    unit: str,
    higher_is_better: bool,
    target: float | None = None,
    note: str = "",
) -> Row:
    return Row(
        case=case,
        pycapio=float(pycapio),
        baseline=float(baseline),
        unit=unit,
        higher_is_better=higher_is_better,
        target=None if target is None else float(target),
        note=note,
    )


def ratio(r: Row) -> float:
    """pycapio relative to the baseline, oriented so that > 1 means pycapio is better."""
    if r["higher_is_better"]:
        return r["pycapio"] / r["baseline"] if r["baseline"] else float("inf")
    return r["baseline"] / r["pycapio"] if r["pycapio"] else float("inf")


def check(condition: bool, message: str) -> None:
    if not condition:
        raise BenchError(message)


# -- timing -----------------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def alternate(
    repeats: int, variants: Mapping[str, Callable[[], T]], warmup: bool = True
) -> dict[str, list[T]]:
    """Run each variant ``repeats`` times, alternating between them (A B C, then C B A, ...) so
    that slow drift of the machine lands on all of them alike; with ``warmup``, one untimed round
    first (the first pass through a code path pays for allocator and cache warm-up)."""
    names = list(variants)
    if warmup:
        for name in names:
            variants[name]()
    results: dict[str, list[T]] = {name: [] for name in names}
    for i in range(repeats):
        order = names if i % 2 == 0 else names[::-1]
        for name in order:
            results[name].append(variants[name]())
    return results


# -- deterministic data -----------------------------------------------------------------------------


def seeded_pool(size: int, seed: int) -> bytes:
    """``size`` pseudo-random bytes, the same for the same seed (made 1 MiB at a time: one
    ``randbytes(size)`` would briefly need twice the memory)."""
    rng = random.Random(seed)
    pool = bytearray()
    for off in range(0, size, MiB):
        pool += rng.randbytes(min(MiB, size - off))
    return bytes(pool)


# -- the machine's limit ----------------------------------------------------------------------------


def memcpy_rate(total: int, chunk: int = MiB, pool: bytes | None = None) -> float:
    """GiB/s of a plain in-process copy of ``total`` bytes in ``chunk``-sized pieces into a buffer
    whose pages are already faulted in: the memory-copy limit that file I/O in this process can
    at best approach. The source cycles through a 64 MiB pool (larger than any cache)."""
    pool = pool if pool is not None else seeded_pool(64 * MiB, 0)
    src = memoryview(pool)
    dst = bytearray(total)  # zero-filled by calloc: touch every page first
    view = memoryview(dst)
    for off in range(0, total, 4096):
        dst[off] = 1
    t = time.perf_counter()
    n = len(pool)
    for off in range(0, total, chunk):
        p = off % n
        view[off : off + chunk] = src[p : p + chunk]
    return total / GiB / (time.perf_counter() - t)


# -- isolated CAPIO workflows -----------------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        return False
    state = stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3]
    return state not in (b"Z", b"X")


def _is_capio_server(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv0 = f.read().split(b"\0", 1)[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return os.path.basename(argv0).startswith(b"capio_server")


def _wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def stop_server(pid: int, timeout: float = 10.0) -> bool:
    """SIGTERM, then SIGKILL, the server ``pid`` if it still is a capio_server; True if it had
    to be stopped."""
    if not (_pid_alive(pid) and _is_capio_server(pid)):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not _wait_until(lambda: not _pid_alive(pid), timeout):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _wait_until(lambda: not _pid_alive(pid), timeout)
    return True


def unique_workflow(prefix: str) -> str:
    return f"bench-{prefix}-{uuid.uuid4().hex[:10]}"


class Isolated:
    """A private runtime directory (set in this process's environment while active), a unique
    workflow name, a temporary root holding the CAPIO directory and a ``/dev/shm`` directory for
    the baselines. Servers are found through the runtime directory and stopped by pid at exit."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        # Short, under /tmp: the socket path must fit in sun_path.
        self.runtime_dir = Path(tempfile.mkdtemp(prefix="pcbrt-"))
        self.runtime_dir.chmod(0o700)
        self.root = Path(tempfile.mkdtemp(prefix=f"pcb-{prefix}-"))
        self.shm = Path(tempfile.mkdtemp(prefix=f"pcb-{prefix}-", dir="/dev/shm"))
        self.scripts = self.root / "scripts"
        self.scripts.mkdir()
        self.servers: set[int] = set()
        self.procs: list[subprocess.Popen[bytes]] = []
        self._saved_env: dict[str, str | None] = {}
        self._count = 0

    # A new CAPIO directory and workflow name per use: nothing carries over between runs.
    def workflow(self) -> tuple[str, Path]:
        self._count += 1
        capio_dir = self.root / f"capio{self._count}"
        capio_dir.mkdir()
        return unique_workflow(self.prefix), capio_dir

    def env(self) -> dict[str, str]:
        """The environment for step processes: this runtime directory, quiet, no inherited
        CAPIO context."""
        env = dict(os.environ)
        env[RUNTIME_ENV] = str(self.runtime_dir)
        env["SILENT"] = "ON"
        env.pop("PYCAPIO_CONTEXT", None)
        env.pop("CAPIO_DIR", None)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        return env

    def server_pids(self) -> list[int]:
        pids = []
        for info in sorted(self.runtime_dir.glob("*.info")):
            with contextlib.suppress(OSError, ValueError, IndexError):
                pid = int(info.read_text().splitlines()[0])
                if _is_capio_server(pid):
                    pids.append(pid)
        self.servers.update(pids)
        return pids

    def wait_servers_gone(self, timeout: float = 20.0) -> None:
        """Wait for the servers seen so far to stop by themselves (the last client left)."""
        self.server_pids()
        _wait_until(lambda: not any(_pid_alive(p) for p in self.servers), timeout)

    def __enter__(self) -> Isolated:
        for key, value in ((RUNTIME_ENV, str(self.runtime_dir)), ("SILENT", "ON")):
            self._saved_env[key] = os.environ.get(key)
            os.environ[key] = value
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        self.server_pids()
        leftover = [pid for pid in sorted(self.servers) if stop_server(pid)]
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(self.runtime_dir, ignore_errors=True)
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.rmtree(self.shm, ignore_errors=True)
        if leftover and exc[0] is None:
            print(
                f"note: stopped capio_server {leftover} left running by a {self.prefix} run", file=sys.stderr
            )

    # -- CAPIO-CL ----------------------------------------------------------------------------------

    def capio_cl(
        self,
        workflow: str,
        producer: str,
        consumers: Sequence[str] = (),
        pattern: str = "*",
        mode: str = "update",
    ) -> Path:
        """A CAPIO-CL file: files matching ``pattern`` (relative to the CAPIO directory) are
        committed ``on_close`` with fire rule ``mode``; nothing is permanent, so nothing is
        written to disk (the baselines on /dev/shm never reach a disk either)."""
        graph: list[dict[str, Any]] = [
            {
                "name": producer,
                "input_stream": [],
                "output_stream": [pattern],
                "streaming": [{"name": [pattern], "committed": "on_close", "mode": mode}],
            }
        ]
        graph += [{"name": c, "input_stream": [pattern], "output_stream": []} for c in consumers]
        path = self.root / f"{workflow}.json"
        path.write_text(json.dumps({"name": workflow, "IO_Graph": graph}, indent=2))
        return path

    # -- step processes ----------------------------------------------------------------------------

    def start_step(
        self, role: str, params: dict[str, Any], pass_fds: Sequence[int] = (), launcher: Sequence[str] = ()
    ) -> Step:
        """Start ``benches/_steps.py ROLE PARAMS`` with this environment, in the temporary root
        (never in the checkout, whose ``pycapio/`` would shadow the installed package); with
        ``launcher`` options, through ``python -m pycapio OPTIONS`` (params ``mode: launched``)."""
        self._count += 1
        err = self.root / f"step{self._count}-{role}.err"
        via = ["-m", "pycapio", *launcher] if launcher else []
        with open(err, "wb") as errf:
            proc = subprocess.Popen(
                [sys.executable, *via, str(HERE / "_steps.py"), role, json.dumps(params)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errf,
                env=self.env(),
                cwd=self.root,
                pass_fds=tuple(pass_fds),
            )
        self.procs.append(proc)
        return Step(role, proc, err)


class Step:
    """A step process speaking a line protocol: it prints ``ready`` once set up, waits for
    ``go`` on stdin, and prints one JSON object with its results at the end."""

    def __init__(self, role: str, proc: subprocess.Popen[bytes], err: Path) -> None:
        self.role = role
        self.proc = proc
        self.err = err

    def _fail(self, what: str) -> BenchError:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        stderr = self.err.read_text(errors="replace")[-3000:]
        return BenchError(f"step {self.role} {what} (exit {self.proc.returncode}):\n{stderr}")

    def wait_ready(self) -> None:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != b"ready":
            raise self._fail(f"did not get ready (said {line[:200]!r})")

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.flush()

    def ask(self, line: str) -> str:
        """Send one command line; return the step's one-line answer."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().decode().strip()
        if not answer:
            raise self._fail(f"did not answer {line!r}")
        return answer

    def result(self, timeout: float = 600) -> dict[str, Any]:
        assert self.proc.stdout is not None
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise self._fail(f"did not finish in {timeout} s") from None
        if self.proc.returncode != 0:
            raise self._fail("failed")
        try:
            return json.loads(out.decode().strip().splitlines()[-1])  # type: ignore[no-any-return]
        except (ValueError, IndexError):
            raise self._fail(f"printed no result ({out[-200:]!r})") from None


@contextlib.contextmanager
def in_process_capio(iso: Isolated, app: str, mode: str = "update") -> Iterator[tuple[Path, Any]]:
    """CAPIO in this process on a fresh workflow whose files are committed on close and never
    persisted. Yields the CAPIO directory and a ``CapioContext`` (already attached: entering it
    only installs the patch, as a user's ``with CapioContext(...)`` does after its first use), so
    the timed sections enter it and the baselines run unpatched. Detaches at the end and waits
    for the server to stop."""
    import pycapio

    workflow, capio_dir = iso.workflow()
    config = iso.capio_cl(workflow, app, mode=mode)
    ctx = pycapio.CapioContext(
        capio_dir=str(capio_dir),
        app_name=app,
        workflow_name=workflow,
        capio_cl_configuration_file=str(config),
    )
    try:
        with ctx:
            iso.server_pids()
        yield capio_dir, ctx
    finally:
        pycapio.pycapio_teardown(True)
        iso.wait_servers_gone()


def shm_free_check(need: int) -> None:
    """Fail early, with a clear message, when /dev/shm or memory cannot hold a case's data."""
    st = os.statvfs("/dev/shm")
    free = st.f_bavail * st.f_frsize
    check(free > need, f"/dev/shm has {free / GiB:.1f} GiB free; this case needs {need / GiB:.1f} GiB")
