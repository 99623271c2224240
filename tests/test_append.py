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
