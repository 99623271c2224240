"""Case 7: memory while streaming 4 GiB (quick: 256 MiB) from a producer to a consumer that reads
as it goes (CAPIO-CL ``no_update`` + ``on_close``, 1 MiB chunks, both steps under
``CapioContext``).

Sampled every 10 ms from ``/proc``: ``VmHWM`` (peak resident set) of the server and of the two
step processes, and the shared memory allocated to the file (the blocks of the server's
memory objects). The consumer is declared (``input_stream``); without a memory limit a stream
keeps up to 1 GiB of what was read, and releases the rest as it goes; ``bench_limits`` streams
through a limit. Each is compared with the bytes streamed (lower is better; the ratio is bytes
streamed / memory).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from _common import GiB, Isolated, MiB, Row, check, row, shm_free_check


def _status_kib(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _memfd_kib(pid: int) -> int:
    """Memory allocated to the CAPIO files the server holds (its pool included): the blocks of its
    ``memfd:capio-data`` memory objects, each counted once however many descriptors it has (``stat``
    through ``/proc/PID/fd`` reaches the memfd itself)."""
    seen: dict[tuple[int, int], int] = {}
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        fds = list(fd_dir.iterdir())
    except OSError:
        return 0
    for fd in fds:
        try:
            if os.readlink(fd).startswith(("/memfd:capio-data", "/memfd:capio:")):
                st = os.stat(fd)
                seen[(st.st_dev, st.st_ino)] = st.st_blocks * 512
        except OSError:
            pass
    return sum(seen.values()) // 1024


class Sampler(threading.Thread):
    def __init__(self, pids: dict[str, int]) -> None:
        super().__init__(daemon=True)
        self.pids = pids
        self.peak: dict[str, int] = dict.fromkeys(pids, 0)
        self.shm_peak = 0
        self.stop = threading.Event()

    def sample(self) -> None:
        for name, pid in self.pids.items():
            self.peak[name] = max(self.peak[name], _status_kib(pid, "VmHWM"))
        self.shm_peak = max(self.shm_peak, _memfd_kib(self.pids["server"]))

    def run(self) -> None:
        while not self.stop.wait(0.01):
            self.sample()


def run(quick: bool) -> list[Row]:
    size = 256 * MiB if quick else 4 * GiB
    shm_free_check(size + GiB)
    with Isolated("mem") as iso:
        workflow, capio_dir = iso.workflow()
        config = iso.capio_cl(workflow, "producer", ["consumer"], "big.bin", "no_update")
        params = {
            "mode": "capio",
            "size": size,
            "chunk": MiB,
            "seed": 7,
            "work": False,
            "pool_mib": 8,  # the producer's data: 8 MiB, cycled
            "fd": -1,
            "capio_dir": str(capio_dir),
            "workflow": workflow,
            "config": str(config),
            "path": str(capio_dir / "big.bin"),
        }
        consumer = iso.start_step("stream_consumer", params)
        consumer.wait_ready()
        producer = iso.start_step("stream_producer", params)
        producer.wait_ready()
        servers = iso.server_pids()
        check(len(servers) == 1, f"expected one capio_server, found {servers}")
        sampler = Sampler(
            {"server": servers[0], "producer": producer.proc.pid, "consumer": consumer.proc.pid}
        )
        sampler.start()
        t = time.perf_counter()
        producer.go()
        consumer.go()
        p = producer.result()
        c = consumer.result()
        elapsed = time.perf_counter() - t
        sampler.stop.set()
        sampler.join()
        check(c["bytes"] == size and c["crc"] == p["crc"], "memory case: checksum mismatch")
        iso.wait_servers_gone()

    streamed = size / MiB
    note = f"{size // MiB} MiB streamed in {elapsed:.1f} s; peak VmHWM vs the bytes streamed"
    peak = {k: v / 1024 for k, v in sampler.peak.items()}
    return [
        row("memory: server peak RSS", peak["server"], streamed, "MiB", False, None, note),
        row("memory: producer peak RSS", peak["producer"], streamed, "MiB", False, None, note),
        row("memory: consumer peak RSS", peak["consumer"], streamed, "MiB", False, None, note),
        row("memory: file data in shm, peak", sampler.shm_peak / 1024, streamed, "MiB", False, None,
            f"{size // MiB} MiB streamed; blocks of the server's memory objects (no memory limit: the "
            f"stream keeps up to 1 GiB of what was read)"),
    ]  # fmt: skip
