"""The server's namespace as real programs meet it: directories on disk from the moment they are
made, directories that were on disk before the run under their ``dirname`` rules, opens of
directories, publishing by rename, files changed on disk behind a long-lived server, and the one
rule for "missing now: wait, or FileNotFoundError?"."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from test_capio_cl import config, no_server_left, reader_rule, report, start, step_rule, wait_for_marker

from conftest import InProcess, Workflow, wait_until

# -- directories on disk at once ----------------------------------------------------------------

MAKER = """
    capio, = sys.argv[1:]
    d = os.path.join(capio, "work")
    os.makedirs(os.path.join(d, "sub"))
    os.chdir(d)  # the kernel's chdir: the directory must be on disk
    with open("sub/rel.txt", "w") as f:  # relative to a cwd inside the CAPIO directory
        f.write("via cwd")
    # A program pycapio does not intercept (no site: no start-up hook; no context in its env).
    env = {k: v for k, v in os.environ.items() if k != "PYCAPIO_CONTEXT"}
    code = "import sys; open(sys.argv[1], 'w').write(sys.argv[2])"
    import subprocess
    subprocess.run([sys.executable, "-S", "-c", code, "by_os.txt", "from the OS"],
                   cwd=os.path.join(d, "sub"), env=env, check=True)
    os.mkfifo(os.path.join(d, "sub", "fifo"))  # what CAPIO does not serve still has its place
    with open("sub/by_os.txt") as f:  # served by CAPIO from the disk
        by_os = f.read()
    print(json.dumps({"cwd": os.getcwd(), "sub": sorted(os.listdir("sub")), "by_os": by_os}))
"""


def test_a_made_directory_is_on_disk_for_chdir_cwd_and_programs_pycapio_does_not_intercept(
    workflow: Workflow,
) -> None:
    wf = workflow
    out = report(start(wf, None, MAKER, "maker", str(wf.capio_dir)).wait())
    work = wf.capio_dir / "work"
    assert out == {"cwd": str(work), "sub": ["by_os.txt", "fifo", "rel.txt"], "by_os": "from the OS"}
    assert no_server_left(wf)
    assert (work / "sub" / "rel.txt").read_text() == "via cwd", "persisted into it"
    assert (work / "sub" / "by_os.txt").read_text() == "from the OS"


TILE_PRODUCER = """
    d, scratch, made, checked, seen = sys.argv[1:6]
    os.makedirs(d, exist_ok=True)  # made now, or there before the run
    os.mkdir(scratch)
    with open(os.path.join(scratch, "tmp.bin"), "wb") as f:  # neither permanent
        f.write(b"scratch")
    with open(os.path.join(d, "t0"), "w") as f:
        f.write("tile 0")
    touch(made)
    wait_for(checked, 30)  # the test has looked at the disk
    streamed = wait_for(seen, 30)  # the consumer has t0 before t1 exists
    for i in range(1, 4):
        with open(os.path.join(d, "t%d" % i), "w") as f:
            f.write("tile %d" % i)
    print(json.dumps({"streamed": streamed}))
"""

TILE_CONSUMER = """
    d, seen = sys.argv[1:3]
    names = []
    for entry in os.scandir(d):  # waits for d, then streams until its rule commits it
        names.append(entry.name)
        if entry.name == "t0":
            touch(seen)
    print(json.dumps(names))
"""


def tile_config(wf: Workflow) -> Path:
    rules = [
        {"dirname": ["tiles"], "committed": "on_n_files", "n_files": 4, "mode": "no_update"},
        {"name": ["tiles/*"], "committed": "on_close"},
    ]
    graph = [
        step_rule("producer", ["tiles", "tiles/*", "scratch", "scratch/*"], rules),
        reader_rule("consumer", ["tiles"]),
    ]
    return config(wf, {"IO_Graph": graph, "permanent": ["tiles/*"]})


@pytest.mark.parametrize("before", [False, True], ids=["made", "on-disk-before"])
def test_a_tiles_directory_streams_under_its_rule_and_empty_scratch_goes_at_shutdown(
    workflow: Workflow, before: bool
) -> None:
    wf = workflow
    cl = tile_config(wf)
    tiles, scratch = wf.capio_dir / "tiles", wf.capio_dir / "scratch"
    if before:
        tiles.mkdir()  # empty: its entries made during the run are what n_files counts
    made, checked, seen = wf.marker("made"), wf.marker("checked"), wf.marker("seen")
    consumer = start(wf, cl, TILE_CONSUMER, "consumer", str(tiles), str(seen))
    producer = start(
        wf, cl, TILE_PRODUCER, "producer", str(tiles), str(scratch), str(made), str(checked), str(seen)
    )
    wait_for_marker(made, producer)
    # While the producer runs, a plain process (this one) sees both directories.
    assert tiles.is_dir() and scratch.is_dir()
    checked.write_text("x")
    assert report(producer.wait()) == {"streamed": True}
    assert report(consumer.wait()) == ["t0", "t1", "t2", "t3"]
    assert no_server_left(wf)
    assert not scratch.exists(), "made, not permanent and empty on disk: removed at shutdown"
    assert sorted(p.name for p in tiles.iterdir()) == ["t0", "t1", "t2", "t3"]


def test_rerunning_only_the_consumer_lists_a_complete_preexisting_tiles_dir(workflow: Workflow) -> None:
    # A previous run left tiles/ complete on disk; its entries count toward n_files, so the
    # listing does not wait for the declared producer app, which does not run this time.
    wf = workflow
    cl = tile_config(wf)
    tiles = wf.capio_dir / "tiles"
    tiles.mkdir()
    for i in range(4):
        (tiles / f"t{i}").write_text(f"tile {i}")
    wf.env["PYCAPIO_WAIT_TIMEOUT"] = "5"
    consumer = start(wf, cl, TILE_CONSUMER, "consumer", str(tiles), str(wf.marker("seen")))
    result = consumer.wait(60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(report(result)) == ["t0", "t1", "t2", "t3"]


def test_the_capio_directory_itself_follows_its_dirname_rule(workflow: Workflow) -> None:
    wf = workflow
    rules = [{"dirname": [str(wf.capio_dir)], "committed": "on_n_files", "n_files": 2, "mode": "no_update"}]
    # Declared as the producer's output: the consumer, alone at first, waits for it.
    graph = [step_rule("producer", [str(wf.capio_dir), "*"], rules), reader_rule("consumer", ["*"])]
    cl = config(wf, {"IO_Graph": graph})
    seen = wf.marker("seen")
    consumer = start(wf, cl, TILE_CONSUMER.replace('"t0"', '"a"'), "consumer", str(wf.capio_dir), str(seen))
    producer = start(
        wf,
        cl,
        """
        d, seen = sys.argv[1:3]
        open(os.path.join(d, "a"), "w").close()
        streamed = wait_for(seen, 30)
        open(os.path.join(d, "b"), "w").close()
        print(json.dumps({"streamed": streamed}))
        """,
        "producer",
        str(wf.capio_dir),
        str(seen),
    )
    assert report(producer.wait()) == {"streamed": True}
    assert report(consumer.wait()) == ["a", "b"]


# -- opens of directories -----------------------------------------------------------------------


def _errors(path: str) -> list[str]:
    out = []
    for flags in (
        os.O_RDWR | os.O_CREAT | os.O_EXCL,
        os.O_WRONLY | os.O_CREAT | os.O_EXCL,
        os.O_RDONLY | os.O_CREAT | os.O_EXCL,
        os.O_RDWR | os.O_CREAT,
        os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
        os.O_RDONLY | os.O_CREAT,
        os.O_RDWR,
        os.O_WRONLY,
        os.O_RDONLY,  # the kernel opens a directory for reading: the OS answers for CAPIO
        os.O_RDONLY | os.O_DIRECTORY,
    ):
        try:
            os.close(os.open(path, flags, 0o600))
            out.append("ok")
        except OSError as exc:
            out.append(f"{type(exc).__name__} {errno.errorcode[exc.errno]}")
    return out


def test_opening_a_directory_fails_as_the_kernel_says_and_mkstemp_retries(
    capio: InProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    kernel = _errors(str(plain))
    assert kernel[0] == "FileExistsError EEXIST"
    with capio.context():
        os.mkdir(capio.path("made"))
        assert _errors(capio.path("made")) == kernel
        # tempfile.mkstemp goes on to the next name when one is taken, also by a directory.
        os.mkdir(capio.path("tmptaken"))
        names = iter(["taken", "free"])
        monkeypatch.setattr(tempfile, "_get_candidate_names", lambda: names)
        fd, name = tempfile.mkstemp(dir=capio.path())
        os.close(fd)
        assert name == capio.path("tmpfree")
    os.mkdir(capio.path("disk"))
    with capio.context():
        assert _errors(capio.path("disk")) == kernel


# -- publishing by rename -----------------------------------------------------------------------


def test_a_temp_file_replaced_over_an_on_close_name_is_published_while_the_producer_runs(
    workflow: Workflow,
) -> None:
    wf = workflow
    rules = [{"name": ["result.json"], "committed": "on_close"}]
    graph = [
        step_rule("producer", ["result.json", "result.json.*"], rules),
        reader_rule("consumer", ["result.json"]),
    ]
    cl = config(wf, {"IO_Graph": graph})
    path, got = wf.capio_dir / "result.json", wf.marker("got")
    consumer = start(
        wf,
        cl,
        """
        path, got = sys.argv[1:3]
        with open(path) as f:  # waits for the declared producer, then for the commit
            data = json.load(f)
        touch(got)
        print(json.dumps(data))
        """,
        "consumer",
        str(path),
        str(got),
    )
    producer = start(
        wf,
        cl,
        """
        path, got = sys.argv[1:3]
        with open(path + ".tmp", "w") as f:
            json.dump({"status": "done"}, f)
        os.replace(path + ".tmp", path)  # the close happened under the temp name
        print(json.dumps({"consumer_read_it_while_we_ran": wait_for(got, 30)}))
        """,
        "producer",
        str(path),
        str(got),
    )
    assert report(producer.wait()) == {"consumer_read_it_while_we_ran": True}
    assert report(consumer.wait()) == {"status": "done"}


# -- a long-lived server and the disk -----------------------------------------------------------


def server_cli(wf: Workflow, *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "pycapio", "server", *args],
        env=wf.env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=wf.root,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


WRITE = """
import sys
with open(sys.argv[1], "w") as f:
    f.write(sys.argv[2])
"""

READ = """
import sys
with open(sys.argv[1]) as f:
    print(f.read())
"""


def test_a_managed_server_never_serves_a_file_removed_or_replaced_on_disk_between_runs(
    workflow: Workflow,
) -> None:
    wf = workflow
    server_cli(wf, "start", "--capio-dir", str(wf.capio_dir), "--workflow-name", wf.name)
    try:
        data = wf.capio_dir / "data.bin"
        wf.run_step(WRITE, "producer", str(data), "run one").check()
        assert data.read_text() == "run one"
        assert wf.run_step(READ, "consumer", str(data)).check().stdout == "run one\n"

        # Between runs: `rm -f data.bin`, then the next run, its consumer first.
        data.unlink()
        release = wf.start_peer("scheduler")
        consumer = wf.start_step(READ, "consumer", str(data))
        wf.run_step(WRITE, "producer", str(data), "run two").check()
        assert consumer.wait().check().stdout == "run two\n", "not the previous run's bytes"
        release.write_text("go")

        # Replaced by another program: the disk's version is what is served.
        data.with_suffix(".new").write_text("edited by hand")
        data.with_suffix(".new").replace(data)
        assert wf.run_step(READ, "consumer", str(data)).check().stdout == "edited by hand\n"
        data.unlink()
        lone = wf.run_step(
            "import sys\ntry:\n    open(sys.argv[1])\nexcept FileNotFoundError:\n    print('missing')\n",
            "prober",
            str(data),
        )
        assert lone.check().stdout == "missing\n"
    finally:
        server_cli(wf, "stop", "--workflow-name", wf.name)


# -- missing now: wait, or FileNotFoundError? -----------------------------------------------------

PROBE = """
import errno, os, sys
for call in (lambda: open(sys.argv[1]), lambda: os.listdir(sys.argv[2])):
    try:
        call()
        print("found")
    except FileNotFoundError as exc:
        print("missing", exc.errno == errno.ENOENT)
"""


def test_a_lone_step_probing_for_an_optional_file_gets_file_not_found_at_once(workflow: Workflow) -> None:
    wf = workflow
    result = wf.run_step(
        PROBE, "prober", str(wf.capio_dir / ".pdbrc"), str(wf.capio_dir / "nodir"), timeout=60
    )
    assert result.check().stdout.split() == ["missing", "True", "missing", "True"]


def test_a_reader_waits_for_a_file_and_a_directory_while_another_step_is_attached(workflow: Workflow) -> None:
    wf = workflow
    release = wf.start_peer()
    d = wf.capio_dir / "later"
    ready = wf.marker("reader-started")
    reader = wf.start_step(
        """
        import os, sys
        d, ready = sys.argv[1:3]
        open(ready, "w").close()
        names = os.listdir(d)  # not made yet: waits for it (and for its commit)
        with open(os.path.join(d, "f.txt")) as f:
            print(sorted(names), f.read())
        """,
        "reader",
        str(d),
        str(ready),
    )
    assert wait_until(ready.exists, 60), reader.stderr()
    wf.run_step(
        "import os, sys\nos.mkdir(sys.argv[1])\nopen(os.path.join(sys.argv[1], 'f.txt'), 'w').write('hi')\n",
        "producer",
        str(d),
    ).check()
    assert reader.wait().check().stdout.split() == ["['f.txt']", "hi"]
    release.write_text("go")


def test_a_declared_producers_file_is_waited_for_until_that_app_ends_then_missing(workflow: Workflow) -> None:
    wf = workflow
    graph = [step_rule("producer", ["maybe.txt"]), reader_rule("consumer", ["maybe.txt"])]
    cl = config(wf, {"IO_Graph": graph})
    go = wf.marker("go")
    consumer = start(
        wf,
        cl,
        """
        try:
            open(sys.argv[1])
            print(json.dumps("found"))
        except FileNotFoundError as exc:
            print(json.dumps(["missing", exc.errno]))
        """,
        "consumer",
        str(wf.capio_dir / "maybe.txt"),
    )
    producer = start(wf, cl, "wait_for(sys.argv[1], 60)\nprint(json.dumps('done'))\n", "producer", str(go))
    assert consumer.running(), "waits while its declared producer runs"
    go.write_text("go")
    assert report(producer.wait()) == "done"
    assert report(consumer.wait()) == ["missing", errno.ENOENT]


# -- a step and its Python children are one step --------------------------------------------------

PROBE_IN_A_CHILD = """
    import os, subprocess, sys
    optional = os.path.join(sys.argv[1], "optional.cfg")
    try:
        open(optional)
    except FileNotFoundError:
        print("parent: FileNotFoundError")
    code = (
        "import sys\\ntry:\\n    open(sys.argv[1])\\n"
        "except FileNotFoundError:\\n    print('child: FileNotFoundError')"
    )
    try:
        r = subprocess.run([sys.executable, "-c", code, optional], timeout=15, capture_output=True, text=True)
        print(r.stdout.strip())
    except subprocess.TimeoutExpired:
        print("child: hung")
"""


def test_a_child_of_a_lone_step_probing_an_optional_file_does_not_hang(workflow: Workflow) -> None:
    # The child is a client of its parent's app: not "another step" that could still make it.
    result = workflow.run_step(PROBE_IN_A_CHILD, "solo", str(workflow.capio_dir)).check()
    assert result.stdout.split("\n")[:2] == ["parent: FileNotFoundError", "child: FileNotFoundError"]


LIST_IN_A_CHILD = """
    import os, subprocess, sys
    d = os.path.join(sys.argv[1], "work")
    os.makedirs(d)
    with open(os.path.join(d, "a.txt"), "w") as f:
        f.write("a")
    code = "import os, sys\\nprint(sorted(os.listdir(sys.argv[1])))"
    try:
        r = subprocess.run([sys.executable, "-c", code, d], timeout=15, capture_output=True, text=True)
        print(r.stdout.strip() or r.stderr.strip()[-300:])
    except subprocess.TimeoutExpired:
        print("child: hung")
"""


def test_a_child_lists_a_directory_its_parent_made(workflow: Workflow) -> None:
    # The directory commits when its producer (the parent) ends, and the parent waits for the
    # child: the child lists it as its producer would, without waiting.
    result = workflow.run_step(LIST_IN_A_CHILD, "solo", str(workflow.capio_dir)).check()
    assert result.stdout.strip() == "['a.txt']"


READ_IN_A_CHILD = """
    import os, subprocess, sys
    cfg = os.path.join(sys.argv[1], "input.json")
    with open(cfg, "w") as f:
        f.write("{}")
    code = "import sys\\nprint(open(sys.argv[1]).read())"
    try:
        r = subprocess.run([sys.executable, "-c", code, cfg], timeout=15, capture_output=True, text=True)
        print(r.stdout.strip() or r.stderr.strip()[-300:])
    except subprocess.TimeoutExpired:
        print("child: hung")
"""


def test_a_child_reads_a_file_its_parent_wrote_and_closed(workflow: Workflow) -> None:
    # README: "A workflow step that shells out to Python therefore behaves as one step."
    result = workflow.run_step(READ_IN_A_CHILD, "solo", str(workflow.capio_dir)).check()
    assert result.stdout.strip() == "{}"


def test_o_directory_on_a_capio_file_is_not_a_directory(capio: InProcess, tmp_path: Path) -> None:
    # Every case as the kernel answers it for the same layout on disk.
    def outcome(path: str, flags: int) -> int:
        try:
            os.close(os.open(path, flags))
            return 0
        except OSError as exc:
            return exc.errno or -1

    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "f").write_text("x")
    (plain / "d").mkdir()
    cases = [("f",), ("f", "x"), ("d",), ("missing",), ("missing", "x")]
    modes = [os.O_RDONLY, os.O_WRONLY, os.O_RDWR]
    expected = {(c, m): outcome(str(plain.joinpath(*c)), m | os.O_DIRECTORY) for c in cases for m in modes}
    with capio.context():
        with open(capio.path("f"), "w") as fh:
            fh.write("x")
        os.mkdir(capio.path("d"))
        got = {(c, m): outcome(capio.path(*c), m | os.O_DIRECTORY) for c in cases for m in modes}
    assert got == expected
    assert expected[(("f",), os.O_RDONLY)] == errno.ENOTDIR


def test_a_made_directory_removed_on_disk_while_a_file_in_it_lives_in_memory(capio: InProcess) -> None:
    # It still holds a file only in memory, so it exists for CAPIO: it is made again on disk, and
    # stat, mkdir and listdir agree that it is there.
    with capio.context():
        os.makedirs(capio.path("out", "sub"), mode=0o750)
        f = open(capio.path("out", "sub", "f.txt"), "w")
        try:
            f.write("x")
            f.flush()
            env = {k: v for k, v in os.environ.items() if k != "PYCAPIO_CONTEXT"}
            subprocess.run(["rm", "-rf", capio.path("out")], env=env, check=True)  # another program
            assert os.listdir(capio.path("out", "sub")) == ["f.txt"]
            assert os.path.isdir(capio.path("out")) and os.path.isdir(capio.path("out", "sub"))
            os.makedirs(capio.path("out", "sub"), exist_ok=True)
            assert os.listdir(capio.path("out")) == ["sub"]
        finally:
            f.close()
        assert os.stat(capio.path("out", "sub")).st_mode & 0o777 == 0o750 & ~_umask()
        with open(capio.path("out", "sub", "f.txt")) as fh:
            assert fh.read() == "x"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_file_written_through_a_symlinked_directory_is_the_same_file(capio: InProcess) -> None:
    # The namespace knows a file by its real path: capio/dlink/f.txt and capio/real/f.txt are one
    # file, not two CAPIO files for one disk path (one of which would overwrite the other).
    with capio.context():
        os.mkdir(capio.path("real"))
        os.symlink("real", capio.path("dlink"))
        os.mkdir(capio.path("real", "sub"))
        with open(capio.path("dlink", "f.txt"), "w") as f:
            f.write("via link")
        assert sorted(os.listdir(capio.path("real"))) == ["f.txt", "sub"]
        assert sorted(os.listdir(capio.path("dlink"))) == ["f.txt", "sub"]
        with open(capio.path("real", "f.txt")) as f:
            assert f.read() == "via link"
        with pytest.raises(FileExistsError):
            open(capio.path("real", "f.txt"), "x")
        with open(capio.path("real", "f.txt"), "a") as f:
            f.write(" and direct")
        with open(capio.path("dlink", "f.txt")) as f:
            assert f.read() == "via link and direct"
        with open(capio.path("dlink", "sub", "g.txt"), "w") as f:
            f.write("g")
        assert os.listdir(capio.path("real", "sub")) == ["g.txt"]
        assert os.path.samefile(capio.path("dlink", "sub", "g.txt"), capio.path("real", "sub", "g.txt"))
        os.rename(capio.path("dlink", "sub", "g.txt"), capio.path("dlink", "h.txt"))
        assert sorted(os.listdir(capio.path("real"))) == ["f.txt", "h.txt", "sub"]
        os.unlink(capio.path("dlink", "h.txt"))
        assert not os.path.exists(capio.path("real", "h.txt"))
        os.mkdir(capio.path("dlink", "made"))
        with pytest.raises(FileExistsError):
            os.mkdir(capio.path("real", "made"))
        os.rmdir(capio.path("dlink", "made"))
        assert not os.path.exists(capio.path("real", "made"))


FIFO_WRITER = """
    import json, os, sys, time
    fifo, first_read = sys.argv[1:]
    with open(fifo, "w") as f:  # blocks until a reader opens it, as the OS does
        f.write("first")
    while not os.path.exists(first_read):  # the reader saw EOF: a new open is a new session
        time.sleep(0.05)
    with open(fifo, "w") as f:
        f.write("second")
    print(json.dumps("written"))
"""

FIFO_READER = """
    import json, sys
    fifo, first_read = sys.argv[1:]
    with open(fifo) as f:  # open()'s short way
        first = f.read()
    open(first_read, "w").close()
    with open(fifo, "rb", buffering=0) as f:  # the longer way through open()
        second = f.read().decode(), type(f).__name__, f.name == fifo
    print(json.dumps([first, *second]))
"""


def test_a_fifo_made_in_the_capio_dir_opens_as_the_os_opens_it(capio: InProcess, workflow: Workflow) -> None:
    # CAPIO does not serve a FIFO: every open of it goes to the OS, so it works as without pycapio.
    with capio.context():
        fifo = capio.path("fifo")
        os.mkfifo(fifo)
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # an fd at once, no writer needed
        try:
            assert os.read(fd, 10) == b""
        finally:
            os.close(fd)
        with pytest.raises(OSError) as exc:  # O_NONBLOCK for writing without a reader: ENXIO
            os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        assert exc.value.errno == errno.ENXIO
    pipe = workflow.capio_dir / "pipe"
    os.mkfifo(pipe)
    first_read = workflow.marker("first-read")
    writer = workflow.start_step(FIFO_WRITER, "writer", str(pipe), str(first_read))
    reader = workflow.run_step(FIFO_READER, "reader", str(pipe), str(first_read)).check()
    assert report(reader) == ["first", "second", "FileIO", True]
    assert report(writer.wait(60).check()) == "written"


def test_io_fileio_of_a_fifo_in_the_capio_dir_is_the_os_s_file(workflow: Workflow) -> None:
    # io.FileIO by name (not through open()) of what CAPIO does not serve: the real FileIO over
    # the fd the OS opened, named as given; a CapioFileIO of it is refused without leaking that fd.
    fifo = workflow.capio_dir / "fifo"
    os.mkfifo(fifo)
    step = workflow.run_step(
        """
        import io, json, os, sys
        from pycapio import CapioFileIO
        fds = len(os.listdir("/proc/self/fd"))
        f = io.FileIO(sys.argv[1], "r+")  # read-write: a FIFO opens without a peer
        f.write(b"through the fifo")
        got = [type(f).__name__, f.name == sys.argv[1], f.read(16).decode()]
        f.close()
        try:
            CapioFileIO(sys.argv[1], "r+")
        except OSError as exc:
            got.append(exc.errno)
        got.append(len(os.listdir("/proc/self/fd")) - fds)
        print(json.dumps(got))
        """,
        "fifo-user",
        str(fifo),
    ).check()
    assert report(step) == ["FileIO", True, "through the fifo", errno.EOPNOTSUPP, 0]


# -- siblings of one app are two steps; only a step's own children read it as their producer -------

_SIBLING_PRODUCER = """
import os, sys, time
path, ready, release = sys.argv[1:4]
f = open(path, "wb", buffering=0)
f.write(b"A" * 1000)
open(ready, "w").close()
while not os.path.exists(release):
    time.sleep(0.02)
f.write(b"B" * 1000)
f.close()
"""

_SIBLING_READER = """
import sys
open(sys.argv[2], "w").close()
try:
    print(len(open(sys.argv[1], "rb").read()))
except FileNotFoundError:
    print("ENOENT")
"""


@pytest.mark.parametrize("reader_app", ["worker", "other"])
def test_a_sibling_of_the_same_app_waits_for_the_commit_like_any_reader(
    workflow: Workflow, reader_app: str
) -> None:
    # Two ranks of one step (one --app-name): the reader must not get the 1000 bytes written so
    # far, but the whole file at its commit, as a reader of another app does.
    wf = workflow
    target = wf.capio_dir / "data.bin"
    ready, release, started = wf.marker("ready"), wf.marker("release"), wf.marker("started")
    producer = wf.start_step(_SIBLING_PRODUCER, "worker", str(target), str(ready), str(release))
    assert wait_until(ready.exists, 60), producer.stderr()
    reader = wf.start_step(_SIBLING_READER, reader_app, str(target), str(started))
    assert wait_until(started.exists, 60), reader.stderr()
    release.write_text("")
    producer.wait(60).check()
    assert reader.wait(60).check().stdout.strip() == "2000"


_LATE_PRODUCER = """
import os, sys, time
path, attached, release = sys.argv[1:4]
open(attached, "w").close()
while not os.path.exists(release):
    time.sleep(0.02)
with open(path, "wb") as f:
    f.write(b"x" * 10)
"""


@pytest.mark.parametrize("reader_app", ["worker", "other"])
def test_a_reader_waits_for_a_file_a_sibling_of_its_own_app_will_make(
    workflow: Workflow, reader_app: str
) -> None:
    wf = workflow
    target = wf.capio_dir / "late.bin"
    attached, release, started = wf.marker("attached"), wf.marker("release"), wf.marker("started")
    producer = wf.start_step(_LATE_PRODUCER, "worker", str(target), str(attached), str(release))
    assert wait_until(attached.exists, 60), producer.stderr()
    reader = wf.start_step(_SIBLING_READER, reader_app, str(target), str(started))
    assert wait_until(started.exists, 60), reader.stderr()
    release.write_text("")
    producer.wait(60).check()
    assert reader.wait(60).check().stdout.strip() == "10"
