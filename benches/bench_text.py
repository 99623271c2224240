"""Case 5: text I/O: 1 000 000 (quick: 200 000) short lines (~40 characters) written one
``write`` each to a text file, then read back by iterating over the file.

pycapio: this process under ``CapioContext`` (file committed on close, read after the commit).
Baseline: built-in ``open`` on ``/dev/shm``, unpatched. Both with the default buffering and UTF-8.
Alternated, median of the repeats; lines per second (higher is better). The reader counts lines
and characters (checked); the written bytes are CRC-checked once per variant (untimed).
"""

from __future__ import annotations

import os
import random
import time
import zlib

from _common import Isolated, Row, alternate, check, in_process_capio, median, row


def _lines(n: int) -> list[str]:
    rng = random.Random(5)
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
    return [f"{i:07d},{rng.choice(words)},{rng.random():.6f},{rng.randrange(10**6)}\n" for i in range(n)]


def _write(path: str, lines: list[str]) -> float:
    t = time.perf_counter()
    with open(path, "w", encoding="utf-8") as f:
        for line in lines:
            f.write(line)
    return time.perf_counter() - t


def _read(path: str, n: int, chars: int) -> float:
    t = time.perf_counter()
    count = total = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            count += 1
            total += len(line)
    elapsed = time.perf_counter() - t
    check(count == n and total == chars, f"{path}: read {count} lines / {total} chars, wrote {n} / {chars}")
    return elapsed


def _crc(path: str) -> int:
    with open(path, "rb") as f:
        return zlib.crc32(f.read())


def run(quick: bool) -> list[Row]:
    n = 200_000 if quick else 1_000_000
    repeats = 1 if quick else 3
    lines = _lines(n)
    text = "".join(lines)
    chars = len(text)
    expected = zlib.crc32(text.encode())
    del text

    with Isolated("text") as iso, in_process_capio(iso, "bench") as (capio_dir, ctx):
        count = 0

        def variant(path: str) -> tuple[float, float]:
            nonlocal count
            count += 1
            w = _write(path, lines)
            r = _read(path, n, chars)
            if count <= 2:
                check(_crc(path) == expected, f"{path}: checksum mismatch")
            os.remove(path)
            return n / w, n / r

        def capio() -> tuple[float, float]:
            with ctx:
                return variant(str(capio_dir / f"lines{count}.csv"))

        def shm() -> tuple[float, float]:
            return variant(str(iso.shm / "lines.csv"))

        res = alternate(repeats, {"capio": capio, "shm": shm})

    def med(name: str, i: int) -> float:
        return median([r[i] for r in res[name]])

    note = f"{n} lines, {chars / n:.0f} chars each; vs built-in open on /dev/shm; target (issue 14) 1.0x"
    return [
        row("text: write lines", med("capio", 0), med("shm", 0), "lines/s", True, 1.0, note),
        row("text: read lines", med("capio", 1), med("shm", 1), "lines/s", True, 1.0, note),
    ]
