"""Case 4: wake-up latency. A producer writes 64-byte records one at a time (an unbuffered
``write`` each, 1 ms apart, so the consumer is asleep waiting each time); the consumer, blocked
in ``read``, wakes and reads it. Latency = time from just before the ``write`` to the end of the
``read`` that returned the record (both processes read CLOCK_MONOTONIC). 2 000 records (quick:
300) per run.

pycapio: both steps under ``CapioContext``, the file under CAPIO-CL ``no_update`` + ``on_close``
(the reader sleeps on the file's futex word; the writer wakes it). Baseline: the same two processes
over an ``os.pipe``. Alternated; percentiles over all records of all repeats (lower is better).
"""

from __future__ import annotations

import functools
import os
from typing import Any

from _common import Isolated, Row, alternate, check, row


def _run(iso: Isolated, mode: str, n: int) -> list[int]:
    common: dict[str, Any] = {"mode": mode, "n": n, "interval": 0.001, "seed": 4, "fd": -1}
    pass_p: tuple[int, ...] = ()
    pass_c: tuple[int, ...] = ()
    if mode == "capio":
        workflow, capio_dir = iso.workflow()
        config = iso.capio_cl(workflow, "producer", ["consumer"], "records.bin", "no_update")
        common |= {"capio_dir": str(capio_dir), "workflow": workflow, "config": str(config)}
        common["path"] = str(capio_dir / "records.bin")
    else:
        r, w = os.pipe()
        pass_p, pass_c = (w,), (r,)
    # The producer creates the file before it says ready; the consumer opens it before it does.
    producer = iso.start_step("latency_producer", dict(common, fd=w if pass_p else -1), pass_p)
    if pass_p:
        os.close(w)
    producer.wait_ready()
    consumer = iso.start_step("latency_consumer", dict(common, fd=r if pass_c else -1), pass_c)
    if pass_c:
        os.close(r)
    consumer.wait_ready()
    producer.go()
    consumer.go()
    p = producer.result()
    c = consumer.result()
    check(c["n"] == n and c["crc"] == p["crc"], f"{mode}: records checksum mismatch")
    if mode == "capio":
        iso.wait_servers_gone()
    lat: list[int] = c["lat_ns"]
    return lat


def _pct(values: list[int], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] / 1000.0


def run(quick: bool) -> list[Row]:
    n = 300 if quick else 2000
    repeats = 1 if quick else 3
    with Isolated("lat") as iso:
        variants = {m: functools.partial(_run, iso, m, n) for m in ("capio", "pipe")}
        res = alternate(repeats, variants, warmup=False)
    capio = [x for r in res["capio"] for x in r]
    pipe = [x for r in res["pipe"] for x in r]
    note = f"{len(capio)} records of 64 B, 1 ms apart; no_update; vs os.pipe"
    return [
        row("wake-up latency p50", _pct(capio, 0.5), _pct(pipe, 0.5), "us", False, None, note),
        row("wake-up latency p99", _pct(capio, 0.99), _pct(pipe, 0.99), "us", False, None, note),
    ]
