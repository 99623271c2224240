"""The step processes of the multi-process cases: ``python _steps.py ROLE PARAMS_JSON``.

Protocol (see ``_common.Step``): set up (attach to CAPIO, open what must be open), print
``ready``, wait for ``go`` on stdin, do the work, print one JSON line with the results. Times are
``time.perf_counter()`` (CLOCK_MONOTONIC on Linux: the same clock in every process).

``mode`` is ``capio`` (the step runs under ``CapioContext`` and uses plain ``open()`` on a path in
the CAPIO directory), ``launched`` (the step was started by the ``pycapio`` launcher, which attached
it before the script ran), ``file`` (built-in ``open`` on ``/dev/shm``) or ``pipe`` (an ``os.pipe``
fd inherited from the parent).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import struct
import sys
import time
import zlib
from contextlib import AbstractContextManager, nullcontext
from typing import Any

MiB = 1 << 20
RECORD = 64
_HEADER = struct.Struct("<QQ")


def _context(p: dict[str, Any], app: str) -> AbstractContextManager[Any]:
    if p["mode"] != "capio":
        # Not CAPIO's, or already attached by the `pycapio` launcher.
        return nullcontext()
    from pycapio import CapioContext

    return CapioContext(
        capio_dir=p["capio_dir"],
        app_name=app,
        workflow_name=p["workflow"],
        capio_cl_configuration_file=p["config"],
    )


def _ready_then_wait() -> None:
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        sys.exit("no go")


def _emit(result: dict[str, Any]) -> None:
    print(json.dumps(result), flush=True)


def stream_producer(p: dict[str, Any]) -> None:
    """Writes ``size`` bytes in ``chunk`` pieces. With ``work`` each piece is computed
    (``Random(seed).randbytes``: ~0.4 GiB/s, the producer's own work); without it, pieces cycle
    through a seeded pool of ``pool_mib`` MiB (default 64: pure I/O), whose CRC-32 is then
    computed before the clock starts (with ``crc_first``) or as it writes. Reports the CRC-32 of
    what it wrote."""
    size, chunk = p["size"], p["chunk"]
    rng = random.Random(p["seed"])
    pool = bytearray()
    if not p["work"]:
        for _ in range(p.get("pool_mib", 64)):
            pool += rng.randbytes(MiB)
    pieces = memoryview(pool)

    def piece(off: int) -> Any:
        if p["work"]:
            return rng.randbytes(chunk)
        o = off % len(pool)
        return pieces[o : o + chunk]

    crc_first = p.get("crc_first", False) and not p["work"]
    crc = 0
    if crc_first:
        for off in range(0, size, chunk):
            crc = zlib.crc32(piece(off), crc)
    with _context(p, "producer"):
        _ready_then_wait()
        t0 = time.perf_counter()
        target: Any = p["fd"] if p["mode"] == "pipe" else p["path"]
        with open(target, "wb") as f:
            for off in range(0, size, chunk):
                data = piece(off)
                if not crc_first:
                    crc = zlib.crc32(data, crc)
                f.write(data)
        t1 = time.perf_counter()
    _emit({"t0": t0, "t1": t1, "crc": crc, "bytes": size})


def stream_consumer(p: dict[str, Any]) -> None:
    """Reads to the end in ``chunk`` pieces; CRC-32 of everything (the check) and, with ``work``,
    an MD5 too (the consumer's own work, ~0.65 GiB/s). With ``into_buffer`` it reads into a
    buffer of ``size`` bytes whose pages are faulted in first, and checks after the clock stops:
    pure I/O."""
    if p.get("into_buffer"):
        _consume_into_buffer(p)
        return
    chunk = p["chunk"]
    with _context(p, "consumer"):
        _ready_then_wait()
        t0 = time.perf_counter()
        crc = 0
        got = 0
        md5 = hashlib.md5()
        target: Any = p["fd"] if p["mode"] == "pipe" else p["path"]
        with open(target, "rb") as f:
            while data := f.read(chunk):
                crc = zlib.crc32(data, crc)
                if p["work"]:
                    md5.update(data)
                got += len(data)
        t1 = time.perf_counter()
    _emit({"t0": t0, "t1": t1, "crc": crc, "bytes": got, "md5": md5.hexdigest()})


def _consume_into_buffer(p: dict[str, Any]) -> None:
    size, chunk = p["size"], p["chunk"]
    buf = bytearray(size + chunk)
    for off in range(0, len(buf), 4096):
        buf[off] = 1
    view = memoryview(buf)
    with _context(p, "consumer"):
        _ready_then_wait()
        t0 = time.perf_counter()
        got = 0
        with open(p["path"], "rb", buffering=0) as f:
            while n := f.readinto(view[got : got + chunk]):
                got += n
        t1 = time.perf_counter()
    _emit({"t0": t0, "t1": t1, "crc": zlib.crc32(view[:got]), "bytes": got})


def keeper(p: dict[str, Any]) -> None:
    """Stays attached (so the workflow's server and what it pooled stay up) and removes the paths
    it is given, one per line on stdin, answering ``ok``; ends at ``go`` or end of input."""
    with _context(p, "keeper"):
        print("ready", flush=True)
        for line in sys.stdin:
            path = line.strip()
            if path == "go":
                break
            os.remove(path)
            print("ok", flush=True)
    _emit({})


def latency_producer(p: dict[str, Any]) -> None:
    """Writes ``n`` 64-byte records, one ``write`` each (unbuffered), ``interval`` s apart; each
    carries its sequence number and the time it was written."""
    n, interval = p["n"], p["interval"]
    payload = random.Random(p["seed"]).randbytes(RECORD - _HEADER.size)
    with _context(p, "producer"):
        target: Any = p["fd"] if p["mode"] == "pipe" else p["path"]
        with open(target, "wb", buffering=0) as f:
            _ready_then_wait()
            crc = 0
            for i in range(n):
                time.sleep(interval)
                rec = _HEADER.pack(i, time.perf_counter_ns()) + payload
                crc = zlib.crc32(rec[8:16], zlib.crc32(payload, crc))
                f.write(rec)
    _emit({"crc": crc, "n": n})


def latency_consumer(p: dict[str, Any]) -> None:
    """Reads the records as they come (each read returns as soon as a record is there) and
    records, per record, the time from its write to the end of the read that got it."""
    n = p["n"]
    payload = random.Random(p["seed"]).randbytes(RECORD - _HEADER.size)
    lat = [0] * n
    with _context(p, "consumer"):
        target: Any = p["fd"] if p["mode"] == "pipe" else p["path"]
        with open(target, "rb", buffering=0) as f:
            _ready_then_wait()
            buf = b""
            crc = 0
            for i in range(n):
                while len(buf) < RECORD:
                    more = f.read(RECORD - len(buf))
                    if not more:
                        sys.exit(f"end of stream after {i} records")
                    buf += more
                now = time.perf_counter_ns()
                seq, ts = _HEADER.unpack_from(buf)
                if seq != i or buf[_HEADER.size :] != payload:
                    sys.exit(f"record {i}: got sequence number {seq} / wrong payload")
                lat[i] = now - ts
                crc = zlib.crc32(buf[8:16], zlib.crc32(payload, crc))
                buf = b""
    _emit({"crc": crc, "n": n, "lat_ns": lat})


ROLES = {
    f.__name__: f for f in (stream_producer, stream_consumer, keeper, latency_producer, latency_consumer)
}

if __name__ == "__main__":
    ROLES[sys.argv[1]](json.loads(sys.argv[2]))
