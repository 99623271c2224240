"""Text files written through the stdlib's own ``FileIO`` (issue 14): a text file a step creates,
whose readers wait for its commit, is written by CPython's exact ``TextIOWrapper`` /
``BufferedWriter`` / ``FileIO`` on a plain fd of its memory object, and its close commits it.
Steps are separate processes on one real server; nothing reaches the disk before the commit.
"""

from __future__ import annotations

import signal
import textwrap
from pathlib import Path

from test_capio_cl import config, reader_rule, start, step_rule
from test_faults import status_json

from conftest import Step, Workflow, wait_until

LINES = 20_000


def update_rules(wf: Workflow, mode: str = "update") -> Path:
    """Every file committed on close; readers wait for the commit (``update``), or stream."""
    rule = {"name": ["*"], "committed": "on_close", "mode": mode}
    graph = [step_rule("writer", ["*"], [rule]), reader_rule("reader", ["*"])]
    return config(wf, {"IO_Graph": graph}, f"{wf.name}-{mode}.json")


def step(wf: Workflow, cl: Path, body: str, app: str, *args: str) -> Step:
    return start(wf, cl, textwrap.dedent(body), app, *args)


def lines_text(n: int = LINES) -> str:
    return "".join(f"{i:07d},alpha,{i * 7 % 1000}\n" for i in range(n))


READER = """
path, out = sys.argv[1:3]
with open(path, encoding="utf-8") as f:  # waits for the commit
    text = f.read()
with open(out + ".part", "w", encoding="utf-8") as f:  # outside the CAPIO directory
    f.write(text)
os.replace(out + ".part", out)
"""


def started_reader(wf: Workflow, cl: Path, path: Path) -> tuple[Step, Path]:
    out = wf.marker("reader-out")
    return step(wf, cl, READER, "reader", str(path), str(out)), out


def read_result(reader: Step, out: Path) -> str:
    """What the reader read."""
    result = reader.wait(60)
    assert result.returncode == 0, result.stderr
    return out.read_text(encoding="utf-8")


WRITER = """
import io, stat
path, half, go = sys.argv[1:4]
raw_type = type(open(sys.executable, "rb", buffering=0))  # the real FileIO (the patch stands in)
f = open(path, "w", encoding="utf-8")
assert type(f) is io.TextIOWrapper and type(f.buffer) is io.BufferedWriter, (type(f), type(f.buffer))
assert type(f.buffer.raw) is raw_type, type(f.buffer.raw)
assert f.name == path and f.buffer.raw.name == path and f.mode == "w", (f.name, f.mode)
n = int(sys.argv[4])
for i in range(n // 2):
    f.write(f"{i:07d},alpha,{i * 7 % 1000}\\n")
f.flush()
st, fst = os.stat(path), os.fstat(f.fileno())
assert os.path.samestat(st, fst) and st.st_size == fst.st_size > 0, (st, fst)
assert stat.S_ISREG(st.st_mode) and st.st_nlink == 1, st
touch(half)
wait_for(go, 60)
for i in range(n // 2, n):
    f.write(f"{i:07d},alpha,{i * 7 % 1000}\\n")
f.close()
f.close()  # closing twice commits once
assert f.closed and f.buffer.raw.closed
print("ok")
"""


def test_a_text_file_written_by_the_stdlib_fileio_reaches_a_reader_waiting_for_it(workflow: Workflow) -> None:
    cl = update_rules(workflow)
    path = workflow.capio_dir / "lines.csv"
    reader, out = started_reader(workflow, cl, path)
    half, go = workflow.marker("half"), workflow.marker("go")
    writer = step(workflow, cl, WRITER, "writer", str(path), str(half), str(go), str(LINES))
    assert wait_until(lambda: half.exists() or not writer.running(), 60), writer.stderr()
    assert half.exists(), writer.stderr()
    # Half written: only in memory, and the reader still waits for the commit.
    assert not path.exists()
    assert reader.running() and not out.exists()
    go.write_text("go")
    result = writer.wait(60)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
    assert read_result(reader, out) == lines_text()


LEFT_OPEN = """
path, how = sys.argv[1:3]
f = open(path, "w", encoding="utf-8")
f.write("".join(f"{i:07d},alpha,{i * 7 % 1000}\\n" for i in range(int(sys.argv[3]))))
if how == "dropped":
    import gc, warnings
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        del f
        gc.collect()
    assert [w.category for w in seen] == [ResourceWarning], seen
    assert "unclosed file" in str(seen[0].message), seen[0].message
# "exit": left open; the interpreter's exit flushes it, as it would a built-in file
"""


def test_a_text_file_left_open_or_dropped_is_flushed_and_committed(workflow: Workflow) -> None:
    cl = update_rules(workflow)
    for how in ("exit", "dropped"):
        path = workflow.capio_dir / f"{how}.csv"
        reader, out = started_reader(workflow, cl, path)
        writer = step(workflow, cl, LEFT_OPEN, "writer", str(path), how, "5000")
        result = writer.wait(60)
        assert result.returncode == 0, result.stderr
        assert read_result(reader, out) == lines_text(5000), how
        out.unlink()


APPEND = """
path, who, ready, go = sys.argv[1:5]
f = open(path, "a", encoding="utf-8", buffering=1)  # a line per write(2), as a log is
assert type(f.buffer.raw) is type(open(sys.executable, "rb", buffering=0)), type(f.buffer.raw)
touch(ready)
wait_for(go, 60)
for i in range(2000):
    f.write(f"{who} {i:05d}\\n")
if who == "forker":
    pid = os.fork()
    if pid == 0:
        f.close()  # the child's copy: closing it must not commit the parent's file
        os._exit(0)
    os.waitpid(pid, 0)
    f.write(f"{who} after fork\\n")
f.close()
"""


def test_appenders_writing_one_new_file_directly_lose_no_line(workflow: Workflow) -> None:
    # Two steps append lines to one new text file at once, one forking a child that closes its
    # copy; the file commits after both closed (on_close:2), holding every line whole.
    rule = {"name": ["log.txt"], "committed": "on_close:2", "mode": "update"}
    cl = config(workflow, {"IO_Graph": [step_rule("writer", ["*"], [rule]), reader_rule("reader", ["*"])]})
    path = workflow.capio_dir / "log.txt"
    reader, out = started_reader(workflow, cl, path)
    go = workflow.marker("go")
    writers = []
    for who in ("plain", "forker"):
        ready = workflow.marker(f"ready-{who}")
        writers.append(step(workflow, cl, APPEND, "writer", str(path), who, str(ready), str(go)))
        assert wait_until(lambda r=ready: r.exists(), 60), writers[-1].stderr()
    go.write_text("go")
    for w in writers:
        result = w.wait(60)
        assert result.returncode == 0, result.stderr
    lines = read_result(reader, out).splitlines()
    want = {f"{who} {i:05d}" for who in ("plain", "forker") for i in range(2000)} | {"forker after fork"}
    assert len(lines) == len(want) and set(lines) == want


def test_a_writer_killed_mid_file_never_commits_it(workflow: Workflow) -> None:
    cl = update_rules(workflow)
    path = workflow.capio_dir / "killed.csv"
    half, go = workflow.marker("half"), workflow.marker("never")
    reader = step(workflow, cl, FAILING_READER, "reader", str(path))
    writer = step(workflow, cl, WRITER, "writer", str(path), str(half), str(go), str(LINES))
    assert wait_until(lambda: half.exists() or not writer.running(), 60), writer.stderr()
    writer.proc.send_signal(signal.SIGKILL)
    writer.proc.wait(30)
    result = reader.wait(60)
    assert result.returncode == 0 and result.stdout.strip() == "failed", (result.stdout, result.stderr)
    assert not path.exists()


FAILING_READER = """
import pycapio
try:
    with open(sys.argv[1], encoding="utf-8") as f:
        f.read()
except (OSError, pycapio.PyCAPIOException) as e:
    print("failed")
else:
    print("read a file whose writer was killed")
"""


STREAMED = """
path = sys.argv[1]
f = open(path, "w", encoding="utf-8")
raw_type = type(open(sys.executable, "rb", buffering=0))
# Readers see its lines as written (no_update): its writes must reach CAPIO one by one.
assert type(f.buffer.raw) is not raw_type, type(f.buffer.raw)
f.write("streamed\\n")
f.close()
print("ok")
"""


def test_a_file_whose_readers_stream_it_is_not_written_directly(workflow: Workflow) -> None:
    cl = update_rules(workflow, mode="no_update")
    writer = step(workflow, cl, STREAMED, "writer", str(workflow.capio_dir / "s.txt"))
    result = writer.wait(60)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


REFUSED = """
import pycapio._open as opening
path, checked = sys.argv[1:3]
real = opening._FileIO

def refused(*args, **kwargs):
    raise MemoryError("no file object today")

opening._FileIO = refused
try:
    open(path, "w", encoding="utf-8")
except MemoryError:
    pass
else:
    raise AssertionError("open() succeeded without its file object")
opening._FileIO = real
touch(checked + ".ready")
wait_for(checked, 60)
with open(path, "w", encoding="utf-8") as f:  # now written, and committed by its close
    f.write("written")
"""


def state_of(wf: Workflow, path: Path) -> str:
    (f,) = [f for f in status_json(wf)["files"] if f["path"] == str(path)]  # type: ignore[union-attr]
    return f["state"]  # type: ignore[no-any-return]


def test_an_open_whose_file_object_cannot_be_made_never_commits_the_file(workflow: Workflow) -> None:
    # The server counted the open (and a producer) before the step could make its file object:
    # the open is undone without counting as a writer's close, which would commit it empty.
    cl = update_rules(workflow)
    path = workflow.capio_dir / "refused.txt"
    checked = workflow.marker("checked")
    writer = step(workflow, cl, REFUSED, "writer", str(path), str(checked))
    ready = Path(str(checked) + ".ready")
    assert wait_until(lambda: ready.exists() or not writer.running(), 60), writer.stderr()
    assert ready.exists(), writer.stderr()
    assert state_of(workflow, path) == "open"
    checked.write_text("go")
    result = writer.wait(60)
    assert result.returncode == 0, result.stderr
