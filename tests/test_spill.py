"""Spilling under a memory limit (issue 13): when memory is full, committed files nobody holds
leave it — a persisted file is served from its real path, any other from an anonymous file in the
spill directory — and writes go on. Real steps, exact checksums, the spill directory private and
empty of names, and nothing left behind by a killed server.
"""

from __future__ import annotations

import hashlib
import os
import signal
import stat

from test_capio_cl import config, report, start, step_rule
from test_faults import server_pid, status_json

from conftest import Workflow, pid_alive, wait_until

MiB = 1 << 20

WRITER = """
import random
d, n, mib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
sums = {}
for i in range(n):
    data = random.Random(i).randbytes(mib << 20)
    with open(os.path.join(d, f"f{i}.bin"), "wb") as f:
        for off in range(0, len(data), 1 << 20):
            f.write(data[off : off + (1 << 20)])
    sums[f"f{i}.bin"] = hashlib.sha256(data).hexdigest()
print(json.dumps(sums))
"""

READER = """
d, n = sys.argv[1], int(sys.argv[2])
sums = {}
for i in range(n):
    with open(os.path.join(d, f"f{i}.bin"), "rb") as f:
        sums[f"f{i}.bin"] = hashlib.sha256(f.read()).hexdigest()
print(json.dumps(sums))
"""


def rules(wf: Workflow, permanent: bool) -> object:
    on_close = {"name": ["*.bin"], "committed": "on_close"}
    cl: dict[str, object] = {"IO_Graph": [step_rule("writer", ["*.bin"], [on_close])]}
    if permanent:
        cl["permanent"] = ["*.bin"]
    return config(wf, cl, f"{wf.name}.json")


def expected(n: int, mib: int) -> dict[str, str]:
    import random

    return {f"f{i}.bin": hashlib.sha256(random.Random(i).randbytes(mib * MiB)).hexdigest() for i in range(n)}


def test_permanent_files_four_times_the_limit_are_written_and_served_from_disk(workflow: Workflow) -> None:
    wf = workflow
    wf.env["PYCAPIO_MEMORY_LIMIT"] = "16M"
    cl = rules(wf, permanent=True)
    done = wf.marker("done")
    start(wf, cl, "wait_for(sys.argv[1], 600)\n", "keeper", str(done))  # type: ignore[arg-type]
    wrote = report(start(wf, cl, WRITER, "writer", str(wf.capio_dir), "8", "8").wait(300))  # type: ignore[arg-type]
    assert wrote == expected(8, 8)
    st = status_json(wf)
    assert st["memory_used"] <= 16 * MiB
    assert report(start(wf, cl, READER, "reader", str(wf.capio_dir), "8").wait()) == wrote  # type: ignore[arg-type]
    for name, sha in wrote.items():
        assert hashlib.sha256((wf.capio_dir / name).read_bytes()).hexdigest() == sha
    done.write_text("done")


def test_other_files_spill_to_a_private_directory_and_a_killed_server_leaves_nothing(
    workflow: Workflow,
) -> None:
    wf = workflow
    spill_parent = wf.root / "spill"
    spill_parent.mkdir()
    wf.env["PYCAPIO_MEMORY_LIMIT"] = "16M"
    wf.env["PYCAPIO_SPILL_DIR"] = str(spill_parent)
    cl = rules(wf, permanent=False)
    done = wf.marker("done")
    keeper = start(wf, cl, "wait_for(sys.argv[1], 600)\n", "keeper", str(done))  # type: ignore[arg-type]
    wrote = report(start(wf, cl, WRITER, "writer", str(wf.capio_dir), "6", "8").wait(300))  # type: ignore[arg-type]
    assert wrote == expected(6, 8)
    st = status_json(wf)
    assert st["memory_used"] <= 16 * MiB
    assert st["memory_spilled"] >= 32 * MiB, st["memory_spilled"]
    spill = spill_parent / f"pycapio-spill-{os.getuid()}"
    assert st["spill_dir"] == str(spill)
    assert stat.S_IMODE(spill.stat().st_mode) == 0o700
    assert os.listdir(spill) == [], "spilled files have no name"
    assert report(start(wf, cl, READER, "reader", str(wf.capio_dir), "6").wait()) == wrote  # type: ignore[arg-type]
    # Nothing reached the CAPIO directory: none of them is permanent.
    assert not [n for n in os.listdir(wf.capio_dir) if n.endswith(".bin")]

    pid = server_pid(wf)
    os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: not pid_alive(pid), 30)
    keeper.proc.kill()
    keeper.proc.wait()
    assert os.listdir(spill) == []
    # The next server of the workflow starts and serves as usual.
    again = start(wf, cl, WRITER, "writer", str(wf.capio_dir), "1", "1")  # type: ignore[arg-type]
    assert report(again.wait()) == expected(1, 1)


def test_an_input_opened_for_writing_makes_room_as_a_write_does(workflow: Workflow) -> None:
    wf = workflow
    wf.env["PYCAPIO_MEMORY_LIMIT"] = "16M"
    wf.env["PYCAPIO_SPILL_DIR"] = str(wf.root)
    (wf.capio_dir / "input.dat").write_bytes(b"i" * (8 * MiB))
    cl = rules(wf, permanent=False)
    done = wf.marker("done")
    start(wf, cl, "wait_for(sys.argv[1], 600)\n", "keeper", str(done))  # type: ignore[arg-type]
    wrote = report(start(wf, cl, WRITER, "writer", str(wf.capio_dir), "2", "6").wait())  # type: ignore[arg-type]
    # 12 MiB held; the 8 MiB input copied into memory needs room: a committed file leaves.
    out = start(
        wf,
        cl,  # type: ignore[arg-type]
        """
with open(sys.argv[1], "r+b") as f:
    f.seek(0, 2)
    f.write(b"more")
print(json.dumps({"size": os.path.getsize(sys.argv[1])}))
""",
        "writer",
        str(wf.capio_dir / "input.dat"),
    )
    assert report(out.wait()) == {"size": 8 * MiB + 4}
    assert status_json(wf)["memory_spilled"] >= 6 * MiB
    assert report(start(wf, cl, READER, "reader", str(wf.capio_dir), "2").wait()) == wrote  # type: ignore[arg-type]
    done.write_text("done")
