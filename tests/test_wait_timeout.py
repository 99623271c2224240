"""PYCAPIO_WAIT_TIMEOUT bounds every CAPIO wait: a reader whose file never comes gets TimeoutError."""

from __future__ import annotations

import time

from conftest import Workflow, wait_until

OPEN_MISSING = """
    import errno, sys, time
    start = time.monotonic()
    try:
        open(sys.argv[1], "rb")
    except FileNotFoundError as exc:
        named = exc.filename == sys.argv[1] and exc.errno == errno.ENOENT and "timeout" in str(exc)
        print("FileNotFoundError", round(time.monotonic() - start, 1), named)
"""

READ_UNCOMMITTED = """
    import sys, time
    with open(sys.argv[1], "rb") as f:
        start = time.monotonic()
        try:
            f.read()
        except TimeoutError as exc:
            print("TimeoutError", round(time.monotonic() - start, 1), str(exc))
"""

HOLD_OPEN = """
    import os, sys, time
    with open(sys.argv[1], "wb") as f:
        f.write(b"partial")
        f.flush()
        open(sys.argv[2], "w").close()
        deadline = time.monotonic() + 60
        while not os.path.exists(sys.argv[3]) and time.monotonic() < deadline:
            time.sleep(0.05)
"""


def test_open_of_a_file_nobody_creates_times_out(workflow: Workflow) -> None:
    # Another step is attached, so the reader waits; a file that never appeared is then missing:
    # FileNotFoundError (ENOENT, naming the file and the timeout), which a probe's except catches.
    workflow.start_peer()
    workflow.env["PYCAPIO_WAIT_TIMEOUT"] = "1.5"
    result = workflow.run_step(OPEN_MISSING, "reader", str(workflow.capio_dir / "never.dat")).check()
    kind, seconds, named = result.stdout.split()
    assert (kind, named) == ("FileNotFoundError", "True")
    assert 1.4 <= float(seconds) < 10


def test_read_of_a_file_never_committed_times_out(workflow: Workflow) -> None:
    path = workflow.capio_dir / "slow.dat"
    created, release = workflow.marker("created"), workflow.marker("release")
    producer = workflow.start_step(HOLD_OPEN, "producer", str(path), str(created), str(release))
    assert wait_until(created.exists, 60), producer.stderr()
    workflow.env["PYCAPIO_WAIT_TIMEOUT"] = "1"
    start = time.monotonic()
    result = workflow.run_step(READ_UNCOMMITTED, "reader", str(path)).check()
    assert time.monotonic() - start < 30
    assert result.stdout.startswith("TimeoutError"), result.stdout
    assert "to be committed" in result.stdout
    release.write_text("go")
    producer.wait().check()


LIST_MISSING = """
    import errno, os, sys
    try:
        os.listdir(sys.argv[1])
    except FileNotFoundError as exc:
        print("FileNotFoundError", exc.errno == errno.ENOENT and "timeout" in str(exc))
"""


def test_a_listing_of_a_directory_nobody_makes_times_out_as_missing(workflow: Workflow) -> None:
    workflow.start_peer()  # a producer may still appear: the listing waits for the directory
    workflow.env["PYCAPIO_WAIT_TIMEOUT"] = "1"
    result = workflow.run_step(LIST_MISSING, "lister", str(workflow.capio_dir / "never")).check()
    assert result.stdout.split() == ["FileNotFoundError", "True"]
