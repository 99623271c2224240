"""Case 3: many small files: 10 000 (quick: 2 000) files, each created, written with 4 KiB and
closed; then each opened, read back whole and compared; then each ``os.stat``-ed, and as many
missing names beside them looked up with ``os.path.exists``.

pycapio: this process under ``CapioContext`` (files committed on close; read back after the
commit by the same process, through a new ``open()``). Baseline: built-in ``open`` on
``/dev/shm``, unpatched. Alternated, median of the repeats. Files per second (higher is better).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from _common import Isolated, Row, alternate, check, in_process_capio, median, row, seeded_pool

SIZE = 4096


def _create(paths: list[str], payloads: list[bytes]) -> float:
    t = time.perf_counter()
    for path, data in zip(paths, payloads, strict=True):
        with open(path, "wb") as f:
            f.write(data)
    return time.perf_counter() - t


def _read(paths: list[str], payloads: list[bytes]) -> float:
    t = time.perf_counter()
    bad = 0
    for path, data in zip(paths, payloads, strict=True):
        with open(path, "rb") as f:
            if f.read() != data:
                bad += 1
    elapsed = time.perf_counter() - t
    check(bad == 0, f"{bad} small files read back wrong ({paths[0]}...)")
    return elapsed


def _stat(paths: list[str]) -> float:
    t = time.perf_counter()
    for path in paths:
        os.stat(path)
    return time.perf_counter() - t


def _exists(paths: list[str]) -> float:
    missing = [p + ".missing" for p in paths]
    t = time.perf_counter()
    found = sum(os.path.exists(p) for p in missing)
    elapsed = time.perf_counter() - t
    check(found == 0, f"{found} missing files were found ({missing[0]}...)")
    return elapsed


def run(quick: bool) -> list[Row]:
    n = 2000 if quick else 10000
    repeats = 1 if quick else 3
    pool = seeded_pool(n * SIZE, 3)
    payloads = [pool[i * SIZE : (i + 1) * SIZE] for i in range(n)]

    with Isolated("small") as iso, in_process_capio(iso, "bench") as (capio_dir, ctx):
        count = 0

        def batch(root: Path) -> list[str]:
            nonlocal count
            count += 1
            d = root / f"batch{count}"
            return [str(d / f"f{i:05d}.dat") for i in range(n)]

        def variant(paths: list[str]) -> tuple[float, float, float, float]:
            os.mkdir(os.path.dirname(paths[0]))
            c = _create(paths, payloads)
            r = _read(paths, payloads)
            s = _stat(paths)
            e = _exists(paths)
            shutil.rmtree(os.path.dirname(paths[0]))
            return n / c, n / r, n / s, n / e

        def capio() -> tuple[float, float, float, float]:
            paths = batch(capio_dir)
            with ctx:
                return variant(paths)

        def shm() -> tuple[float, float, float, float]:
            return variant(batch(iso.shm))

        res = alternate(repeats, {"capio": capio, "shm": shm})

    def med(name: str, i: int) -> float:
        return median([r[i] for r in res[name]])

    note = f"{n} files x 4 KiB; in-process CapioContext vs built-in open on /dev/shm"
    return [
        row("small files: create+write+close", med("capio", 0), med("shm", 0), "files/s", True, 1.0,
            f"{note}; target: tmpfs speed"),
        row("small files: open+read+close", med("capio", 1), med("shm", 1), "files/s", True, 1.0,
            f"{note}; read back after commit (on_close)"),
        row("small files: os.stat", med("capio", 2), med("shm", 2), "calls/s", True, 1.0,
            f"{note}; each file once"),
        row("small files: exists() of a missing name", med("capio", 3), med("shm", 3), "calls/s",
            True, 1.0, f"{note}; a missing name beside each file"),
    ]  # fmt: skip
