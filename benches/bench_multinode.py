"""Case: two nodes of one workflow over MPI, against what MPI itself carries between them.

Two ranks on this machine stand for two nodes (``mpirun -np 2 --mca btl tcp,self``: data cross as
TCP, as between real nodes), each with its own runtime directory; one ``capio_server`` per rank,
built with MPI support (into ``target/mpi`` of the checkout, or ``$PYCAPIO_MPI_SERVER``). In the
same run, ``mpi_transport`` (a cargo example of the server crate) measures the transport between
the same two ranks: 1 GiB (quick: 128 MiB) in 1 MiB messages, and the round trip of one byte.

- streaming: a consumer on node 1, started first, reads a file that a producer on node 0 writes in
  1 MiB writes (CAPIO-CL ``no_update``); throughput from the producer's ``open()`` to the
  consumer's EOF, against the transport's bandwidth. Target 0.7x.
- remote open: 1,000 committed 4 KiB files made on node 0; a step on node 1 opens, reads and
  closes each; what that adds to the median per file over the same loop on node 0, against the
  round trip. Target: at most 3 round trips.
- small files: the same 1,000 files read on node 1 against the same reads on node 0 (one node).

Without MPI on the machine (``mpirun``, ``mpicc``) the case prints why and returns no row.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from _common import GiB, MiB, Row, check, median, row, unique_workflow

REPO = Path(__file__).resolve().parent.parent
MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
MPIRUN = ["mpirun", "-np", "2", "--oversubscribe", "--mca", "btl", "tcp,self"]
FILES, FILE_SIZE = 1000, 4096

PRODUCER = """
import json, sys, time
path, chunks = sys.argv[1], int(sys.argv[2])
block = bytearray(1 << 20)
t_open = time.time()
with open(path, "wb") as f:
    for i in range(chunks):
        block[:8] = i.to_bytes(8, "little")
        f.write(block)
print(json.dumps({"t_open": t_open}))
"""

CONSUMER = """
import json, sys, time
path, chunks = sys.argv[1], int(sys.argv[2])
block = bytearray(1 << 20)
total, order = 0, True
with open(path, "rb", buffering=0) as f:
    while True:
        n = f.readinto(block)
        if not n:
            break
        if total % len(block) == 0 and n >= 8:
            order &= int.from_bytes(block[:8], "little") == total // len(block)
        total += n
print(json.dumps({"t_eof": time.time(), "bytes": total, "in_order": order}))
"""

MAKE_FILES = """
import os, sys
d, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(d, exist_ok=True)
for i in range(n):
    with open(os.path.join(d, f"f{i:05d}"), "wb") as f:
        f.write(i.to_bytes(8, "little") * (size // 8))
print("{}")
"""

READ_FILES = """
import json, os, sys, time
d, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
times, ok = [], True
t0 = time.perf_counter()
for i in range(n):
    t = time.perf_counter()
    with open(os.path.join(d, f"f{i:05d}"), "rb") as f:
        data = f.read()
    times.append(time.perf_counter() - t)
    ok &= data == i.to_bytes(8, "little") * (size // 8)
total = time.perf_counter() - t0
times.sort()
print(json.dumps({"median": times[len(times) // 2], "total": total, "ok": ok}))
"""


def mpi_missing() -> str | None:
    for tool in ("mpirun", "mpicc"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian: libopenmpi-dev openmpi-bin libclang-dev)"
    if not os.environ.get("PYCAPIO_MPI_SERVER") and not (REPO / "Cargo.toml").is_file():
        return "no checkout to build the MPI server in, and $PYCAPIO_MPI_SERVER is not set"
    return None


def build() -> tuple[Path, Path]:
    """The MPI server and the transport benchmark, built in release mode."""
    target = REPO / "target" / "mpi"
    command = ["cargo", "build", "--quiet", "--release", "-p", "capio-server", "--features", "mpi"]
    built = subprocess.run(
        [*command, "--bin", "capio_server", "--example", "mpi_transport"],
        cwd=REPO,
        env={**os.environ, "CARGO_TARGET_DIR": str(target)},
        capture_output=True,
        text=True,
    )
    check(built.returncode == 0, f"the MPI build failed:\n{built.stderr[-3000:]}")
    server = Path(os.environ.get("PYCAPIO_MPI_SERVER") or target / "release" / "capio_server")
    return server, target / "release" / "examples" / "mpi_transport"


def transport(exe: Path, total: int) -> dict[str, float]:
    done = subprocess.run(
        [*MPIRUN, str(exe), str(total), str(MiB)],
        env={**os.environ, **MPI_ENV},
        capture_output=True,
        text=True,
        timeout=300,
    )
    check(done.returncode == 0, f"mpi_transport failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


class Job:
    """One server per simulated node, as one MPI job; stopped with ``pycapio server stop`` and,
    failing that, by pid."""

    def __init__(self, root: Path, server: Path, config: Path | None) -> None:
        self.root = root
        self.capio_dir = root / "capio"
        self.capio_dir.mkdir()
        self.workflow = unique_workflow("nodes")
        self.runtime = [root / "rt" / f"node{r}" for r in range(2)]
        for d in self.runtime:
            d.mkdir(parents=True, mode=0o700)
        rank_dir = f"{root}/rt/node$OMPI_COMM_WORLD_RANK"
        cl = f"--config {config}" if config else "--no-config"
        script = (
            f"PYCAPIO_RUNTIME_DIR={rank_dir} exec {server} --backend mpi --managed "
            f"--capio-dir {self.capio_dir} --workflow-name {self.workflow} {cl}"
        )
        self.log = open(root / "mpirun.log", "wb")  # closed in stop()
        self.proc = subprocess.Popen(
            [*MPIRUN, "sh", "-c", script],
            env={**os.environ, **MPI_ENV},
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=root,
        )
        deadline = time.monotonic() + 60
        while not all(any(d.glob("*.sock")) for d in self.runtime):
            check(self.proc.poll() is None, f"the MPI job ended: {self.text()}")
            check(time.monotonic() < deadline, f"the MPI job did not come up: {self.text()}")
            time.sleep(0.05)

    def text(self) -> str:
        return (self.root / "mpirun.log").read_text(errors="replace")[-3000:]

    def env(self, rank: int) -> dict[str, str]:
        return {**os.environ, "PYCAPIO_RUNTIME_DIR": str(self.runtime[rank]), "SILENT": "ON"}

    def step(self, rank: int, body: str, app: str, *args: str) -> subprocess.Popen[str]:
        script = self.root / f"{app}-{rank}.py"
        script.write_text(textwrap.dedent(body))
        cmd = [sys.executable, "-m", "pycapio", "--capio-dir", str(self.capio_dir), "--app-name", app]
        cmd += ["--workflow-name", self.workflow, str(script), *args]
        pipe = subprocess.PIPE
        return subprocess.Popen(cmd, env=self.env(rank), stdout=pipe, stderr=pipe, text=True)

    def stop(self) -> None:
        if self.proc.poll() is None:
            subprocess.run(
                [sys.executable, "-m", "pycapio", "server", "stop", "--workflow-name", self.workflow],
                env=self.env(0),
                capture_output=True,
                timeout=120,
            )
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(60)
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.log.close()


def finished(proc: subprocess.Popen[str], what: str) -> dict[str, Any]:
    out, err = proc.communicate(timeout=600)
    check(proc.returncode == 0, f"{what} failed:\n{err[-3000:]}")
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def stream(root: Path, server: Path, size: int) -> float:
    """GiB/s from the producer's open on node 0 to the consumer's EOF on node 1."""
    config = root / "capio_cl.json"
    rule = {"name": ["stream.bin"], "committed": "on_close", "mode": "no_update"}
    graph = [
        {"name": "producer", "input_stream": [], "output_stream": ["stream.bin"], "streaming": [rule]},
        {"name": "consumer", "input_stream": ["stream.bin"], "output_stream": []},
    ]
    config.write_text(json.dumps({"name": "bench", "IO_Graph": graph}))
    job = Job(root, server, config)
    try:
        path, chunks = str(job.capio_dir / "stream.bin"), str(size // MiB)
        consumer = job.step(1, CONSUMER, "consumer", path, chunks)
        time.sleep(0.5)  # it is waiting for the file when the producer starts
        producer = job.step(0, PRODUCER, "producer", path, chunks)
        p, c = finished(producer, "the producer"), finished(consumer, "the consumer")
    finally:
        job.stop()
    got = c["bytes"]
    check(got == size and c["in_order"], f"the consumer read {got} of {size} bytes, or out of order")
    return size / GiB / (c["t_eof"] - p["t_open"])


def small_files(root: Path, server: Path, count: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The read loop over ``count`` files made on node 0: on node 1, then on node 0."""
    job = Job(root, server, None)
    try:
        d = str(job.capio_dir / "small")
        args = (d, str(count), str(FILE_SIZE))
        finished(job.step(0, MAKE_FILES, "maker", *args), "the maker")
        remote = finished(job.step(1, READ_FILES, "remote", *args), "the remote reader")
        local = finished(job.step(0, READ_FILES, "local", *args), "the local reader")
    finally:
        job.stop()
    check(remote["ok"] and local["ok"], "a small file read back wrong")
    return remote, local


def run(quick: bool) -> list[Row]:
    why = mpi_missing()
    if why:
        print(f"bench_multinode: skipped: {why}", file=sys.stderr)
        return []
    server, transport_exe = build()
    size = 128 * MiB if quick else GiB
    count = 200 if quick else FILES
    repeats = 1 if quick else 3
    rates, bandwidths, trips, remotes, locals_ = [], [], [], [], []
    for i in range(repeats):
        with tempfile.TemporaryDirectory(prefix="pcb-nodes-", dir="/tmp") as tmp:
            measured = transport(transport_exe, size)
            bandwidths.append(measured["bytes"] / GiB / measured["seconds"])
            trips.append(measured["round_trip_seconds"])
            (Path(tmp) / "stream").mkdir()
            rates.append(stream(Path(tmp) / "stream", server, size))
            (Path(tmp) / "small").mkdir()
            remote, local = small_files(Path(tmp) / "small", server, count)
            remotes.append(remote)
            locals_.append(local)
        del i
    trip = median(trips)
    per_open = median([r["median"] for r in remotes])
    # What crossing nodes adds to an open: the same open's median on the file's own node is the
    # part no network can remove (the step's request to its server, the memfd).
    extra = max(per_open - median([r["median"] for r in locals_]), 1e-9)
    return [
        row("cross-node stream vs MPI bandwidth", median(rates), median(bandwidths), "GiB/s", True, 0.7,
            f"{size // MiB} MiB in 1 MiB writes, consumer first on node 1; MPI: same bytes in 1 MiB "
            "messages between the same two ranks (TCP)"),
        row("cross-node open+read 4 KiB: added latency vs MPI round trip", extra * 1e6, trip * 1e6, "us",
            False, 1 / 3,
            f"median over {count} committed files, minus the same open on their own node; target <= 3 "
            f"round trips (added: {extra / trip:.1f} round trips; whole open+read+close "
            f"{per_open * 1e6:.0f} us = {per_open / trip:.1f} round trips)"),
        row(f"{count} small files read on another node vs one node",
            median([r["total"] for r in remotes]), median([r["total"] for r in locals_]), "s", False, None,
            f"{count} x 4 KiB made on node 0: open+read+close on node 1 vs on node 0"),
    ]  # fmt: skip
