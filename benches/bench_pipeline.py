"""Case 2: a two-process streaming pipeline, 1 GiB (quick: 96 MiB) in 1 MiB chunks.

The producer computes its data (seeded ``randbytes``, ~0.4 GiB/s) and writes it; the consumer
reads it and checksums it (CRC-32, checked against the producer's, plus MD5 as its own work,
~0.65 GiB/s). Both processes are started and set up (pycapio attached) before the clock starts;
the makespan runs from ``go`` to the end of the last step.

- pycapio: both steps under ``CapioContext``, the file under CAPIO-CL ``no_update`` +
  ``on_close``: the consumer reads each chunk as soon as it is written.
- file-based: the producer writes the whole file on ``/dev/shm``, then the consumer reads it; the
  makespan is the sum of the two steps' times (no hand-off gap counted).
- ``os.pipe``: the same two processes connected by a pipe (default 64 KiB capacity).

The overlap target: a streaming makespan within 1.25x of max(producer, consumer), i.e. a ratio
to the file-based way of at least 0.8 x (producer + consumer) / max(producer, consumer).
"""

from __future__ import annotations

import functools
import os
from typing import Any

from _common import Isolated, MiB, Row, alternate, check, median, row


def _run(iso: Isolated, mode: str, size: int) -> dict[str, float]:
    common: dict[str, Any] = {"mode": mode, "size": size, "chunk": MiB, "seed": 2, "work": True}
    pass_p: tuple[int, ...] = ()
    pass_c: tuple[int, ...] = ()
    if mode == "capio":
        workflow, capio_dir = iso.workflow()
        config = iso.capio_cl(workflow, "producer", ["consumer"], "stream.bin", "no_update")
        common |= {"capio_dir": str(capio_dir), "workflow": workflow, "config": str(config)}
        common["path"] = str(capio_dir / "stream.bin")
    elif mode == "file":
        common["path"] = str(iso.shm / "stream.bin")
    else:
        r, w = os.pipe()
        pass_p, pass_c = (w,), (r,)
    params_p = dict(common, fd=pass_p[0] if pass_p else -1)
    params_c = dict(common, fd=pass_c[0] if pass_c else -1)
    consumer = iso.start_step("stream_consumer", params_c, pass_c)
    producer = iso.start_step("stream_producer", params_p, pass_p)
    for fd in pass_p + pass_c:
        os.close(fd)
    consumer.wait_ready()
    producer.wait_ready()
    if mode == "file":
        producer.go()
        p = producer.result()
        consumer.go()
        c = consumer.result()
    else:
        producer.go()
        consumer.go()
        p = producer.result()
        c = consumer.result()
    check(c["bytes"] == size, f"{mode}: consumer read {c['bytes']} bytes of {size}")
    check(c["crc"] == p["crc"], f"{mode}: checksum mismatch (producer {p['crc']:#x}, consumer {c['crc']:#x})")
    if mode == "capio":
        iso.wait_servers_gone()
    elif mode == "file":
        os.remove(common["path"])
    tp, tc = p["t1"] - p["t0"], c["t1"] - c["t0"]
    makespan = tp + tc if mode == "file" else max(p["t1"], c["t1"]) - min(p["t0"], c["t0"])
    return {"makespan": makespan, "producer": tp, "consumer": tc}


def run(quick: bool) -> list[Row]:
    size = 96 * MiB if quick else 1024 * MiB
    repeats = 1 if quick else 3
    with Isolated("pipe") as iso:
        variants = {m: functools.partial(_run, iso, m, size) for m in ("capio", "file", "pipe")}
        res = alternate(repeats, variants, warmup=False)

    def med(mode: str, key: str) -> float:
        return median([r[key] for r in res[mode]])

    tp, tc = med("file", "producer"), med("file", "consumer")
    ideal = (tp + tc) / max(tp, tc)
    stages = f"producer {tp:.2f} s, consumer {tc:.2f} s alone"
    return [
        row("stream makespan vs file-based", med("capio", "makespan"), med("file", "makespan"), "s", False,
            0.8 * ideal, f"{size // MiB} MiB; no_update+on_close; {stages}; ideal ratio {ideal:.2f}"),
        row("stream makespan vs os.pipe", med("capio", "makespan"), med("pipe", "makespan"), "s", False,
            None, f"{size // MiB} MiB; same two processes over an os.pipe (64 KiB)"),
    ]  # fmt: skip
