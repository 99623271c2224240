"""Several processes appending to one CAPIO file (a shared log): every line lands, none is
overwritten, as with O_APPEND on a plain file."""

from __future__ import annotations

from conftest import Workflow, wait_until

APPENDER = """
    import os, sys, time
    path, tag, n, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    deadline = time.monotonic() + 60
    while not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.01)
    with open(path, "a", buffering=1) as f:
        for i in range(n):
            f.write(f"{tag} {i:05d}\\n")
"""


def test_concurrent_appenders_lose_no_line(workflow: Workflow) -> None:
    log = workflow.capio_dir / "shared.log"
    go = workflow.marker("go")
    n = 3000
    steps = [
        workflow.start_step(APPENDER, f"appender{k}", str(log), f"w{k}", str(n), str(go)) for k in range(3)
    ]
    go.write_text("go")
    for step in steps:
        step.wait().check()
    assert wait_until(log.exists, 30)
    lines = log.read_text().splitlines()
    assert len(lines) == 3 * n
    assert sorted(lines) == sorted(f"w{k} {i:05d}" for k in range(3) for i in range(n))


TRUNCATER = """
    import os, sys, time
    path, go, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    deadline = time.monotonic() + 60
    while not (os.path.exists(go) and os.path.exists(path)) and time.monotonic() < deadline:
        time.sleep(0.005)
    with open(path, "r+b") as f:
        for _ in range(n):
            f.truncate(0)
            time.sleep(0.0005)
"""


def test_truncation_racing_appends_leaves_no_hole(workflow: Workflow) -> None:
    path = workflow.capio_dir / "racy.log"
    go = workflow.marker("go")
    appender = workflow.start_step(APPENDER, "appender", str(path), "a", "20000", str(go))
    truncater = workflow.start_step(TRUNCATER, "truncater", str(path), str(go), "300")
    go.write_text("go")
    appender.wait().check()
    truncater.wait().check()
    assert wait_until(path.exists, 30)
    data = path.read_bytes()
    # Whatever survived the truncations is whole lines appended after the last one: never the
    # zeros of an append that landed past a truncated end.
    assert b"\0" not in data
    assert len(data) % len(b"a 00000\n") == 0


FAILED_APPEND = """
    import sys
    path = sys.argv[1]
    with open(path, "ab", buffering=0) as f:
        f.write(b"hello\\n")
        try:
            f.write(b"x" * (4 << 20))  # past the 1 MiB memory budget
        except OSError as exc:
            print("refused", exc.errno)
        f.write(b"world\\n")
    with open(path, "rb") as f:
        print(f.read())
"""


def test_a_refused_append_does_not_break_the_next(workflow: Workflow) -> None:
    workflow.env["PYCAPIO_MEMORY_LIMIT"] = "1M"
    result = workflow.run_step(FAILED_APPEND, "appender", str(workflow.capio_dir / "small.log")).check()
    assert result.stdout.splitlines() == ["refused 28", "b'hello\\nworld\\n'"]
