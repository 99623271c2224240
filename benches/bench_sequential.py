"""Case 1: sequential write, then read, of 1 GiB (quick: 128 MiB) through ``open()`` in 1 MiB chunks.

pycapio: this process under ``CapioContext`` writes a file (committed on close, CAPIO-CL
``on_close``, not permanent), then reads it back after the commit, through a new ``open()``. The
read path is the one any reader takes: data comes from the file's shared-memory object with one
copy (``pread`` into the new ``bytes``), whichever process reads it. Baseline: built-in ``open``
on ``/dev/shm``, same chunks, same process. Limit: a plain in-process copy of the same bytes into
memory that is already faulted in. Also: ``view()`` (the zero-copy mapping) copied out in 1 MiB
pieces: the first pass (which pays for mapping the pages) against ``mmap`` of the /dev/shm file,
the second pass through the same mapping against the memory-copy limit. Every variant runs
``repeats`` times, alternated; the median is reported.
"""

from __future__ import annotations

import mmap
import os
import time
import zlib

from _common import (
    GiB,
    Isolated,
    MiB,
    Row,
    alternate,
    check,
    in_process_capio,
    median,
    memcpy_rate,
    row,
    seeded_pool,
    shm_free_check,
)

POOL = 64 * MiB


def _chunks(pool: memoryview, total: int) -> list[memoryview]:
    return [pool[off % POOL : off % POOL + MiB] for off in range(0, total, MiB)]


def _write(path: str, chunks: list[memoryview]) -> float:
    t = time.perf_counter()
    with open(path, "wb") as f:
        for chunk in chunks:
            f.write(chunk)
    return time.perf_counter() - t


def _read(path: str, pool: bytes, total: int) -> float:
    """Reads in 1 MiB chunks; checks each chunk's first bytes against the pool (cheap: the full
    checksum is a separate, untimed pass)."""
    t = time.perf_counter()
    got = 0
    with open(path, "rb") as f:
        while data := f.read(MiB):
            p = got % POOL
            if data[:16] != pool[p : p + 16]:
                raise AssertionError(f"{path}: wrong bytes at offset {got}")
            got += len(data)
    elapsed = time.perf_counter() - t
    check(got == total, f"{path}: read {got} bytes, wrote {total}")
    return elapsed


def _crc_file(path: str) -> int:
    crc = 0
    with open(path, "rb") as f:
        while data := f.read(MiB):
            crc = zlib.crc32(data, crc)
    return crc


def _copy_out(view: memoryview, dst: memoryview, total: int) -> float:
    t = time.perf_counter()
    for off in range(0, total, MiB):
        dst[off : off + MiB] = view[off : off + MiB]
    return time.perf_counter() - t


def _view_copy(path: str, dst: memoryview, total: int) -> tuple[float, float]:
    """``view()`` of the whole file, copied out twice: the first pass pays for mapping the pages
    (page-table population, the kernel's work), the second reads through the established mapping."""
    with open(path, "rb") as f:
        t = time.perf_counter()
        view = f.view()  # type: ignore[attr-defined]  # pycapio's buffered files have view()
        check(len(view) == total, f"{path}: view of {len(view)} bytes, wrote {total}")
        first = _copy_out(view, dst, total) + time.perf_counter() - t
        second = _copy_out(view, dst, total)
        view.release()
    return first, second


def _mmap_copy(path: str, dst: memoryview, total: int) -> float:
    """The built-in counterpart of a first ``view()`` pass: ``mmap`` of the /dev/shm file."""
    with open(path, "rb") as f:
        t = time.perf_counter()
        m = mmap.mmap(f.fileno(), total, prot=mmap.PROT_READ)
        with memoryview(m) as view:
            elapsed = _copy_out(view, dst, total) + time.perf_counter() - t
        m.close()
    return elapsed


def run(quick: bool) -> list[Row]:
    total = 128 * MiB if quick else 1 * GiB
    repeats = 1 if quick else 3
    shm_free_check(2 * total)
    pool = seeded_pool(POOL, 1)
    chunks = _chunks(memoryview(pool), total)
    expected = 0
    for chunk in chunks:
        expected = zlib.crc32(chunk, expected)
    dst = bytearray(total)
    dst_view = memoryview(dst)
    for off in range(0, total, 4096):
        dst[off] = 1
    gib = total / GiB

    with Isolated("seq") as iso, in_process_capio(iso, "bench") as (capio_dir, ctx):
        count = 0

        def capio() -> tuple[float, float, float, float]:
            nonlocal count
            count += 1
            path = str(capio_dir / f"seq{count}.bin")
            with ctx:
                w = _write(path, chunks)
                r = _read(path, pool, total)
                v1, v2 = _view_copy(path, dst_view, total)
                if count == 1:
                    check(_crc_file(path) == expected, "pycapio: checksum mismatch")
                    check(zlib.crc32(dst) == expected, "pycapio view: checksum mismatch")
                os.remove(path)
            return gib / w, gib / r, gib / v1, gib / v2

        def shm() -> tuple[float, float, float, float]:
            path = str(iso.shm / "seq.bin")
            w = _write(path, chunks)
            r = _read(path, pool, total)
            v = _mmap_copy(path, dst_view, total)
            if not hasattr(shm, "checked"):
                check(_crc_file(path) == expected, "/dev/shm: checksum mismatch")
                check(zlib.crc32(dst) == expected, "/dev/shm mmap: checksum mismatch")
                shm.checked = True  # type: ignore[attr-defined]
            os.remove(path)
            return gib / w, gib / r, gib / v, 0.0

        def limit() -> tuple[float, float, float, float]:
            rate = memcpy_rate(total, MiB, pool)
            return rate, rate, rate, rate

        res = alternate(repeats, {"pycapio": capio, "shm": shm, "limit": limit})

    def med(name: str, i: int) -> float:
        return median([r[i] for r in res[name]])

    size = f"{total // MiB} MiB"
    lim = med("limit", 0)
    how = "in-process CapioContext; read after commit (on_close), new open()"
    return [
        row("seq write 1 MiB chunks", med("pycapio", 0), med("shm", 0), "GiB/s", True, 1.5,
            f"{size}; {how}; vs built-in open on /dev/shm; steady state: each round writes a new "
            f"file after removing the last one (pycapio: into the memory the server recycled from it; "
            f"/dev/shm: into pages the kernel hands out again); goal 1.5x, floor 0.8x"),
        row("seq read 1 MiB chunks", med("pycapio", 1), med("shm", 1), "GiB/s", True, 1.0,
            f"{size}; {how}; vs built-in open on /dev/shm; floor 0.8x"),
        row("seq write vs memcpy limit", med("pycapio", 0), lim, "GiB/s", True, None,
            f"{size}; baseline = in-process copy into pre-faulted memory"),
        row("seq read vs memcpy limit", med("pycapio", 1), lim, "GiB/s", True, None,
            f"{size}; baseline = in-process copy into pre-faulted memory"),
        row("view() first pass vs mmap", med("pycapio", 2), med("shm", 2), "GiB/s", True, 0.8,
            f"{size}; open+view()+copy-out in 1 MiB pieces vs open+mmap+copy-out of the /dev/shm file"),
        row("view() second pass vs memcpy", med("pycapio", 3), lim, "GiB/s", True, 0.8,
            f"{size}; copy-out through the established mapping vs the memcpy limit ('memory speed')"),
    ]  # fmt: skip
