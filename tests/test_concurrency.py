"""Threads and processes: 8 writer + 8 reader threads, multiprocessing pools (fork and spawn), files
left open at exit, with checksums throughout."""

from __future__ import annotations

import hashlib
import queue
import threading

import pytest

from pycapio import open_proxy

from conftest import InProcess, Workflow, wait_until

WRITERS = READERS = 8
FILES_PER_WRITER = 6


def content(writer: int, index: int) -> bytes:
    seed = hashlib.sha256(f"{writer}-{index}".encode()).digest()
    return seed * (1 + (writer * 7919 + index * 104729) % 9000)  # 32 B .. 288 KiB


def test_eight_writer_and_eight_reader_threads(capio: InProcess) -> None:
    done: queue.Queue[tuple[str, str] | None] = queue.Queue()
    errors: list[BaseException] = []
    verified: list[str] = []
    lock = threading.Lock()

    def writer(w: int) -> None:
        try:
            for i in range(FILES_PER_WRITER):
                data = content(w, i)
                path = capio.path(f"t-{w}-{i}.bin")
                with open_proxy(path, "wb", buffering=[0, -1, 4096][i % 3]) as f:
                    for start in range(0, len(data), 50_000):
                        f.write(data[start : start + 50_000])
                done.put((path, hashlib.sha256(data).hexdigest()))
        except BaseException as e:
            errors.append(e)

    def reader() -> None:
        try:
            while (item := done.get()) is not None:
                path, digest = item
                with open_proxy(path, "rb") as f:
                    assert hashlib.sha256(f.read()).hexdigest() == digest, path
                with open_proxy(path, "rb") as f:  # a second pass, in small pieces
                    h = hashlib.sha256()
                    while chunk := f.read(7777):
                        h.update(chunk)
                    assert h.hexdigest() == digest, path
                with lock:
                    verified.append(path)
        except BaseException as e:
            errors.append(e)

    with capio.context():
        threads = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
        threads += [threading.Thread(target=reader) for _ in range(READERS)]
        for t in threads:
            t.start()
        for t in threads[:WRITERS]:
            t.join(120)
        for _ in range(READERS):
            done.put(None)
        for t in threads[WRITERS:]:
            t.join(120)
    assert not errors, errors
    assert len(verified) == WRITERS * FILES_PER_WRITER


THREADED_PRODUCER = """
    import hashlib, sys, threading
    d = sys.argv[1]

    def content(w, i):
        seed = hashlib.sha256(f"{w}-{i}".encode()).digest()
        return seed * (1 + (w * 7919 + i * 104729) % 9000)

    def write(w):
        for i in range(4):
            with open(f"{d}/p-{w}-{i}.bin", "wb") as f:
                f.write(content(w, i))

    threads = [threading.Thread(target=write, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
"""

THREADED_CONSUMER = """
    import hashlib, sys, threading
    d, marker = sys.argv[1], sys.argv[2]
    results = {}

    def read(w):
        for i in range(4):
            with open(f"{d}/p-{w}-{i}.bin", "rb") as f:  # waits for creation, then the commit
                results[(w, i)] = hashlib.sha256(f.read()).hexdigest()

    threads = [threading.Thread(target=read, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    open(marker, "w").close()
    for t in threads:
        t.join()
    for key in sorted(results):
        print(*key, results[key])
"""


def test_reader_threads_wait_for_writer_threads_of_another_process(workflow: Workflow) -> None:
    workflow.start_peer()  # attached: a consumer started first waits for the producer
    consumer = workflow.start_step(
        THREADED_CONSUMER, "consumer", str(workflow.capio_dir), str(workflow.marker("readers"))
    )
    assert wait_until(lambda: workflow.marker("readers").exists(), 30)
    workflow.run_step(THREADED_PRODUCER, "producer", str(workflow.capio_dir)).check()
    lines = consumer.wait(90).check().stdout.splitlines()
    expected = [f"{w} {i} {hashlib.sha256(content(w, i)).hexdigest()}" for w in range(8) for i in range(4)]
    assert lines == expected


POOL_STEP = """
    import hashlib, multiprocessing as mp, os, sys

    def produce(args):
        path, n = args
        data = hashlib.sha256(str(n).encode()).digest() * (1000 + n * 517)
        with open(path, "wb") as f:
            f.write(data)
        unclosed = open(path + ".txt", "w")  # never closed: flushed when the worker ends
        unclosed.write(f"{n}\\n" * 1000)
        return hashlib.sha256(data).hexdigest()

    if __name__ == "__main__":
        d, method, use_with = sys.argv[1], sys.argv[2], sys.argv[3] == "with"
        os.makedirs(d, exist_ok=True)
        jobs = [(os.path.join(d, f"{method}-{n}.bin"), n) for n in range(12)]
        ctx = mp.get_context(method)
        if use_with:
            with ctx.Pool(4) as pool:  # __exit__ terminates the workers (SIGTERM)
                digests = pool.map(produce, jobs)
        else:
            pool = ctx.Pool(4)
            digests = pool.map(produce, jobs)
            pool.close()
            pool.join()
        for (path, n), digest in zip(jobs, digests):
            with open(path, "rb") as f:
                ok = hashlib.sha256(f.read()).hexdigest() == digest
            with open(path + ".txt") as f:
                ok = ok and f.read() == f"{n}\\n" * 1000
            print(n, ok, digest)
"""


@pytest.mark.parametrize("method", ["fork", "spawn"])
@pytest.mark.parametrize("use_with", ["with", "close-join"])
def test_multiprocessing_pool_workers_write_files_the_parent_reads(
    workflow: Workflow, method: str, use_with: str
) -> None:
    out = workflow.capio_dir / "pool"
    result = workflow.run_step(POOL_STEP, "pool", str(out), method, use_with, timeout=120).check()
    lines = [line.split() for line in result.stdout.splitlines()]
    assert [(int(n), ok) for n, ok, _ in lines] == [(n, "True") for n in range(12)], result.stderr
    # And a later step of another app reads the same bytes.
    check = workflow.run_step(
        """
        import hashlib, sys
        for n, digest in zip(range(12), sys.argv[3:]):
            with open(f"{sys.argv[1]}/{sys.argv[2]}-{n}.bin", "rb") as f:
                assert hashlib.sha256(f.read()).hexdigest() == digest, n
        print("ok")
        """,
        "checker",
        str(out),
        method,
        *[d for _, _, d in lines],
    ).check()
    assert check.stdout == "ok\n"


def test_files_left_open_are_flushed_at_exit(workflow: Workflow) -> None:
    workflow.start_peer()  # attached: a consumer started first waits for the producer
    consumer = workflow.start_step(
        """
        import sys
        with open(sys.argv[1]) as f:
            text = f.read()
        with open(sys.argv[1] + ".bin", "rb") as f:
            data = f.read()
        print(len(text), text[:5], len(data))
        """,
        "consumer",
        str(workflow.capio_dir / "left-open.txt"),
    )
    workflow.run_step(
        """
        import sys
        f = open(sys.argv[1], "w")
        f.write("hello" * 10_000)  # stays in the text and buffered layers
        g = open(sys.argv[1] + ".bin", "wb", buffering=1 << 20)
        g.write(b"x" * 1000)
        sys.exit(0)  # no close
        """,
        "producer",
        str(workflow.capio_dir / "left-open.txt"),
    ).check()
    assert consumer.wait(60).check().stdout.split() == ["50000", "hello", "1000"]
    assert (workflow.capio_dir / "left-open.txt").read_text() == "hello" * 10_000
