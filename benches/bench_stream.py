"""Case 8: streaming throughput on a warm server, 1 GiB (quick: 128 MiB) in 1 MiB chunks.

Two steps launched with ``pycapio`` (the launcher attaches them before their script runs), the
consumer started first, stream a file under CAPIO-CL ``no_update`` + ``on_close``: the consumer
reads each chunk as soon as it is written. A third step stays attached throughout, so every round
runs on a server that has run before, and removes the stream file after each round: the next
round's file takes that memory from the server's pool (steady state; the first round is the untimed
warm-up). Pure I/O: the producer writes a precomputed 64 MiB pool over and over, the consumer reads
into a buffer whose pages are faulted in; both checksums are computed outside the timed span and
compared. Measured from the producer's ``open()`` to the consumer's end of file, median of the
rounds, and printed next to the machine's memory-copy limit. Goal (issue 13): 4 GiB/s.
"""

from __future__ import annotations

from typing import Any

from _common import GiB, Isolated, MiB, Row, alternate, check, median, memcpy_rate, row

GOAL = 4.0


def run(quick: bool) -> list[Row]:
    size = 128 * MiB if quick else 1 * GiB
    repeats = 1 if quick else 3
    limit = memcpy_rate(size)
    with Isolated("stream") as iso:
        workflow, capio_dir = iso.workflow()
        config = iso.capio_cl(workflow, "producer", ["consumer"], "stream.bin", "no_update")
        path = str(capio_dir / "stream.bin")

        def launcher(app: str) -> list[str]:
            return ["--capio-dir", str(capio_dir), "--workflow-name", workflow, "--app-name", app,
                    "--capio-cl", str(config)]  # fmt: skip

        base: dict[str, Any] = {"mode": "launched", "path": path, "size": size, "chunk": MiB, "seed": 8}
        keeper = iso.start_step("keeper", base, launcher=launcher("keeper"))
        keeper.wait_ready()

        def one_round() -> float:
            reader = dict(base, into_buffer=True)
            writer = dict(base, work=False, crc_first=True)
            consumer = iso.start_step("stream_consumer", reader, launcher=launcher("consumer"))
            producer = iso.start_step("stream_producer", writer, launcher=launcher("producer"))
            consumer.wait_ready()
            producer.wait_ready()
            consumer.go()
            producer.go()
            p, c = producer.result(), consumer.result()
            check(c["bytes"] == size, f"the consumer read {c['bytes']} bytes of {size}")
            check(c["crc"] == p["crc"], f"checksum mismatch (producer {p['crc']:#x}, consumer {c['crc']:#x})")
            check(keeper.ask(path) == "ok", "the keeper could not remove the stream file")
            return size / GiB / (c["t1"] - p["t0"])

        rates = alternate(repeats, {"stream": one_round})["stream"]
        keeper.go()
        keeper.result()
    rate = median(rates)
    note = (
        f"{size // MiB} MiB; producer and consumer launched with pycapio, consumer first, no_update; "
        f"a warm server (its pool holds the previous round's memory); producer open() to consumer EOF, "
        f"median of {repeats}"
    )
    return [
        row("stream, warm server vs 4 GiB/s goal", rate, GOAL, "GiB/s", True, 1.0, note),
        row("stream, warm server vs memcpy limit", rate, limit, "GiB/s", True, None,
            f"{note}; baseline = in-process copy into pre-faulted memory"),
    ]  # fmt: skip
