"""Case 9: workloads bigger than the memory limit (issue 13).

- A stream of 8 GiB (quick: 512 MiB) from a producer to a declared consumer (CAPIO-CL
  ``input_stream``, ``no_update``), both steps under ``CapioContext``, through a server with
  ``PYCAPIO_MEMORY_LIMIT=1G`` (quick: 64M), against the same stream on a server without a limit,
  alternated. Throughput from ``go`` to the consumer's end of file; the peak of the memory the
  server's memory objects hold during the limited run is sampled every 10 ms (as in the memory
  case) and compared with the limit. Checksums compared.
- 4 GiB (quick: 256 MiB) of ``permanent`` files, 256 MiB (quick: 32 MiB) each, written by one step
  through a server with a 1 GiB (quick: 64 MiB) limit: committed files leave memory for their
  persisted copies as the writer needs room. It must complete; every file on disk is checked; the
  time is shown against the same step without a limit.
"""

from __future__ import annotations

import os
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from _common import GiB, Isolated, MiB, Row, alternate, check, median, row, seeded_pool, shm_free_check
from bench_memory import Sampler


@contextmanager
def _limit(value: str | None) -> Iterator[None]:
    """``PYCAPIO_MEMORY_LIMIT`` for the steps started meanwhile (the first one starts the server)."""
    saved = os.environ.pop("PYCAPIO_MEMORY_LIMIT", None)
    if value is not None:
        os.environ["PYCAPIO_MEMORY_LIMIT"] = value
    try:
        yield
    finally:
        os.environ.pop("PYCAPIO_MEMORY_LIMIT", None)
        if saved is not None:
            os.environ["PYCAPIO_MEMORY_LIMIT"] = saved


def _stream(iso: Isolated, size: int, limit: str | None) -> tuple[float, float]:
    """GiB/s of one stream, and the peak MiB of memory the server's files held."""
    workflow, capio_dir = iso.workflow()
    config = iso.capio_cl(workflow, "producer", ["consumer"], "big.bin", "no_update")
    params = {
        "mode": "capio", "size": size, "chunk": MiB, "seed": 9, "work": False, "pool_mib": 8,
        "crc_first": True, "fd": -1, "capio_dir": str(capio_dir), "workflow": workflow,
        "config": str(config), "path": str(capio_dir / "big.bin"),
    }  # fmt: skip
    with _limit(limit):
        consumer = iso.start_step("stream_consumer", params)
        consumer.wait_ready()
        producer = iso.start_step("stream_producer", params)
        producer.wait_ready()
    servers = iso.server_pids()
    check(len(servers) >= 1, "no capio_server")
    sampler = Sampler({"server": max(servers)})
    sampler.start()
    t = time.perf_counter()
    producer.go()
    consumer.go()
    p, c = producer.result(), consumer.result()
    elapsed = c["t1"] - min(t, p["t0"])
    sampler.stop.set()
    sampler.join()
    check(c["bytes"] == size and c["crc"] == p["crc"], f"stream (limit {limit}): checksum mismatch")
    iso.wait_servers_gone()
    return size / GiB / elapsed, sampler.shm_peak / 1024


WRITER = """
import os, sys, time, zlib
from pycapio import CapioContext
d, n, each, pool_path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
pool = open(pool_path, "rb").read()
view = memoryview(pool)
with CapioContext(capio_dir=sys.argv[5], app_name="writer", workflow_name=sys.argv[6],
                  capio_cl_configuration_file=sys.argv[7]):
    t = time.perf_counter()
    for i in range(n):
        with open(os.path.join(d, f"p{i}.bin"), "wb") as f:
            for off in range(0, each, 1 << 20):
                p = (off + i * (1 << 20)) % len(pool)
                f.write(view[p : p + (1 << 20)])
    print(time.perf_counter() - t)
"""


def _permanent(iso: Isolated, total: int, each: int, limit: str | None, pool_file: Path) -> float:
    """Seconds to write ``total`` bytes of permanent files; every file is checked on disk."""
    import json
    import subprocess
    import sys

    workflow, capio_dir = iso.workflow()
    config = iso.root / f"{workflow}.json"
    on_close = {"name": ["*.bin"], "committed": "on_close"}
    graph = [{"name": "writer", "input_stream": [], "output_stream": ["*.bin"], "streaming": [on_close]}]
    config.write_text(json.dumps({"name": workflow, "IO_Graph": graph, "permanent": ["*.bin"]}))
    script = iso.scripts / "permanent_writer.py"
    script.write_text(WRITER)
    n = total // each
    with _limit(limit):
        out = subprocess.run(
            [sys.executable, str(script), str(capio_dir), str(n), str(each), str(pool_file),
             str(capio_dir), workflow, str(config)],
            capture_output=True, text=True, env=iso.env(), cwd=iso.root, timeout=1200,
        )  # fmt: skip
    check(out.returncode == 0, f"permanent writer (limit {limit}) failed:\n{out.stderr[-2000:]}")
    iso.wait_servers_gone()
    pool = pool_file.read_bytes()
    for i in range(n):
        path = capio_dir / f"p{i}.bin"
        check(path.stat().st_size == each, f"{path}: {path.stat().st_size} bytes on disk, {each} written")
        with open(path, "rb") as f:
            for off in range(0, each, 64 * MiB):
                p = (off + i * MiB) % len(pool)
                head = f.read(MiB)
                check(head == pool[p : p + MiB], f"{path}: wrong bytes at {off}")
                f.seek(off + 64 * MiB)
        path.unlink()
    check(zlib.crc32(pool) != 0, "pool")
    return float(out.stdout.strip().splitlines()[-1])


def run(quick: bool) -> list[Row]:
    size, limit = (512 * MiB, "64M") if quick else (8 * GiB, "1G")
    limit_mib = 64 if quick else 1024
    total, each = (256 * MiB, 32 * MiB) if quick else (4 * GiB, 256 * MiB)
    repeats = 1
    shm_free_check(size + GiB)
    with Isolated("limits") as iso:
        res = alternate(
            repeats,
            {"limited": lambda: _stream(iso, size, limit), "free": lambda: _stream(iso, size, None)},
            warmup=False,
        )
        pool_file = iso.root / "pool.bin"
        pool_file.write_bytes(seeded_pool(64 * MiB, 9))
        perm = alternate(
            repeats,
            {
                "limited": lambda: _permanent(iso, total, each, limit, pool_file),
                "free": lambda: _permanent(iso, total, each, None, pool_file),
            },
            warmup=False,
        )

    rate = median([r[0] for r in res["limited"]])
    free = median([r[0] for r in res["free"]])
    peak = max(r[1] for r in res["limited"])
    gib = size / GiB
    note = f"{gib:g} GiB from producer to a declared consumer (no_update), {limit} limit vs none"
    perm_note = (
        f"{total // MiB} MiB of permanent files, {each // MiB} MiB each, one writer: {limit} limit vs "
        f"none; every file checked on disk"
    )
    return [
        row(f"stream {gib:g} GiB, {limit} limit vs none", rate, free, "GiB/s", True, 0.8, note),
        row(f"stream {gib:g} GiB, {limit} limit: peak memory", peak, limit_mib, "MiB", False, 1.0,
            f"{note}; peak of the server's memory objects (sampled every 10 ms) vs the limit"),
        row(f"permanent {total // MiB} MiB, {limit} limit vs none", median(perm["limited"]),
            median(perm["free"]), "s", False, None, perm_note),
    ]  # fmt: skip
