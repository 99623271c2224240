"""mkdir/makedirs/listdir/scandir/os.path on CAPIO paths, and paths outside left to the OS."""

from __future__ import annotations

import errno
import glob
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import pycapio
from pycapio import PyCapioPath, _pycapio, open_proxy

from conftest import InProcess, Workflow


def make_file(path: str, data: bytes = b"") -> None:
    with open_proxy(path, "wb") as f:
        f.write(data)


def test_mkdir(capio: InProcess) -> None:
    d = capio.path("d")
    assert pycapio.mkdir_proxy(d) is None
    assert PyCapioPath.isdir(d) and PyCapioPath.exists(d) and not PyCapioPath.isfile(d)
    with pytest.raises(FileExistsError):
        pycapio.mkdir_proxy(d)
    with pytest.raises(FileNotFoundError):
        pycapio.mkdir_proxy(capio.path("missing", "child"))
    assert pycapio.pycapio_mkdir(capio.path("e")) == 0
    with pytest.raises(FileExistsError):
        pycapio.pycapio_mkdir(capio.path("e"))


def test_makedirs(capio: InProcess) -> None:
    deep = capio.path("a", "b", "c")
    pycapio.makedirs_proxy(deep)
    for level in ("a", "a/b", "a/b/c"):
        assert PyCapioPath.isdir(capio.path(level)), level
    pycapio.makedirs_proxy(deep, exist_ok=True)
    with pytest.raises(FileExistsError):
        pycapio.makedirs_proxy(deep)
    pycapio.makedirs_proxy(capio.path("a", "b", "d") + "/", exist_ok=False)
    assert PyCapioPath.isdir(capio.path("a", "b", "d"))
    make_file(capio.path("a", "file"))
    with pytest.raises(FileExistsError):
        pycapio.makedirs_proxy(capio.path("a", "file"), exist_ok=True)


def test_makedirs_inside_goes_to_capio_outside_to_disk(capio: InProcess, tmp_path: Path) -> None:
    with capio.context():
        os.makedirs(tmp_path / "outside" / "x" / "y")
        os.makedirs(capio.capio_dir / "in" / "side")
        assert (tmp_path / "outside" / "x" / "y").is_dir()
        assert os.path.isdir(capio.capio_dir / "in" / "side")
        assert os.path.isdir(capio.capio_dir / "in")


def test_listdir_and_scandir(capio: InProcess) -> None:
    make_file(capio.path("f1"), b"1")
    pycapio.mkdir_proxy(capio.path("sub"))
    make_file(capio.path("sub", "inner"), b"22")
    make_file(capio.path("f2"), b"333")
    (capio.capio_dir / "on-disk").write_bytes(b"disk")  # an input file already on disk

    names = pycapio.listdir_proxy(capio.path())
    assert sorted(names) == ["f1", "f2", "on-disk", "sub"]
    # CAPIO files in creation order come first.
    assert names[:3] == ["f1", "sub", "f2"]
    assert pycapio.listdir_proxy(os.fsencode(capio.path("sub"))) == [b"inner"]

    with pycapio.scandir_proxy(capio.path()) as it:
        entries = {e.name: e for e in it}
    assert set(entries) == {"f1", "f2", "on-disk", "sub"}
    sub, f2 = entries["sub"], entries["f2"]
    assert sub.is_dir() and not sub.is_file() and not sub.is_symlink()
    assert f2.is_file() and not f2.is_dir(follow_symlinks=False)
    assert f2.path == os.path.join(capio.path(), "f2")
    assert os.fspath(f2) == f2.path
    assert repr(f2) == "<DirEntry 'f2'>"
    assert f2.stat().st_size == 3
    again = {e.name: e for e in pycapio.scandir_proxy(capio.path())}
    assert again["f2"].inode() == f2.inode() != sub.inode()
    assert entries["on-disk"].stat().st_size == 4
    assert isinstance(f2.inode(), int)

    bentries = list(pycapio.scandir_proxy(os.fsencode(capio.path("sub"))))
    assert [e.name for e in bentries] == [b"inner"]
    assert bentries[0].path == os.fsencode(capio.path("sub", "inner"))

    with pytest.raises(FileNotFoundError):
        pycapio.listdir_proxy(capio.path("nope"))


def test_scandir_relative_path(capio: InProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    make_file(capio.path("r1"))
    monkeypatch.chdir(capio.capio_dir)
    with capio.context():
        assert [e.path for e in os.scandir()] == ["./r1"]
        assert [e.path for e in os.scandir(".")] == ["./r1"]
        assert os.listdir() == ["r1"]


def test_os_path_queries(capio: InProcess) -> None:
    make_file(capio.path("sized"), b"x" * 1234)
    missing = capio.path("missing")
    with capio.context():
        assert os.path is PyCapioPath
        assert os.path.exists(capio.path("sized")) and os.path.lexists(capio.path("sized"))
        assert os.path.isfile(capio.path("sized")) and not os.path.isdir(capio.path("sized"))
        assert os.path.getsize(capio.path("sized")) == 1234
        assert os.path.isdir(capio.path())
        assert not os.path.islink(capio.path("sized"))
        mtime = os.path.getmtime(capio.path("sized"))
        assert abs(mtime - os.path.getctime(capio.path("sized"))) < 5
        assert abs(mtime - time.time()) < 300
        # Never blocks; a missing CAPIO path answers like a missing file.
        assert not os.path.exists(missing) and not os.path.isfile(missing) and not os.path.isdir(missing)
        with pytest.raises(FileNotFoundError):
            os.path.getsize(missing)
        assert os.path.samefile(capio.path("sized"), capio.path(".", "sized"))
        # PathLike and bytes work.
        assert os.path.exists(Path(capio.path("sized")))
        assert os.path.exists(os.fsencode(capio.path("sized")))
        # Pure helpers are posixpath's.
        assert os.path.join("a", "b", "c") == "a/b/c"
        assert os.path.splitext("/x/a.tar.gz") == ("/x/a.tar", ".gz")
        assert os.path.sep == "/"


def test_stdlib_helpers_work_while_patched(capio: InProcess, tmp_path: Path) -> None:
    (tmp_path / "tree" / "a").mkdir(parents=True)
    (tmp_path / "tree" / "a" / "f.txt").write_text("f")
    make_file(capio.path("g1.txt"), b"g1")
    pycapio.mkdir_proxy(capio.path("gdir"))
    make_file(capio.path("gdir", "g2.txt"), b"g2")
    with capio.context():
        # Outside CAPIO: os.walk, glob, shutil as usual.
        walked = [
            (Path(d).relative_to(tmp_path), sorted(ds), sorted(fs))
            for d, ds, fs in os.walk(tmp_path / "tree")
        ]
        assert walked == [(Path("tree"), ["a"], []), (Path("tree/a"), [], ["f.txt"])]
        assert glob.glob(str(tmp_path / "tree" / "*" / "*.txt")) == [str(tmp_path / "tree" / "a" / "f.txt")]
        shutil.copytree(tmp_path / "tree", tmp_path / "copy")
        assert (tmp_path / "copy" / "a" / "f.txt").read_text() == "f"
        shutil.rmtree(tmp_path / "copy")
        # Inside CAPIO.
        walked = sorted((d, sorted(ds), sorted(fs)) for d, ds, fs in os.walk(capio.path()))
        assert walked == [(capio.path(), ["gdir"], ["g1.txt"]), (capio.path("gdir"), [], ["g2.txt"])]
        assert sorted(glob.glob(capio.path("**", "*.txt"), recursive=True)) == [
            capio.path("g1.txt"),
            capio.path("gdir", "g2.txt"),
        ]
        shutil.copyfile(capio.path("g1.txt"), capio.path("g1-copy.txt"))
        with open(capio.path("g1-copy.txt"), "rb") as f:
            assert f.read() == b"g1"
        shutil.copyfile(capio.path("gdir", "g2.txt"), tmp_path / "g2-out.txt")
        assert (tmp_path / "g2-out.txt").read_bytes() == b"g2"
        assert Path(capio.path("g1.txt")).read_text() == "g1"


def test_paths_outside_go_to_the_os_untouched(capio: InProcess) -> None:
    sibling = Path(str(capio.capio_dir) + "-sibling")
    sibling.mkdir()
    dotdot = os.path.join(str(capio.capio_dir), "..", "outside.txt")
    for p in (sibling, sibling / "f.txt", dotdot, str(capio.capio_dir) + "2"):
        assert _pycapio._capio_path(os.fspath(p)) is None, p
    assert _pycapio._capio_path(capio.path("in.txt")) == os.path.join(
        os.path.realpath(capio.capio_dir), "in.txt"
    )
    with capio.context():
        with open(sibling / "f.txt", "w") as f:
            f.write("sibling")
        with open(dotdot, "w") as f:
            f.write("dotdot")
        os.mkdir(sibling / "d")
        os.makedirs(sibling / "e" / "f")
        with open(capio.path("in.txt"), "w") as f:
            f.write("in")
        assert sorted(os.listdir(sibling)) == ["d", "e", "f.txt"]
        assert [e.name for e in os.scandir(sibling / "e")] == ["f"]
        assert os.path.exists(sibling / "f.txt")
    # Already on disk, byte for byte, while the CAPIO file is not yet.
    assert (sibling / "f.txt").read_text() == "sibling"
    assert (capio.capio_dir.parent / "outside.txt").read_text() == "dotdot"
    assert (sibling / "e" / "f").is_dir()
    assert not Path(capio.path("in.txt")).exists()


def test_the_scandir_wrapper_refuses_paths_not_capio_s_with_the_one_errno(workflow: Workflow) -> None:
    # The wrapper itself (the os.scandir proxy sends such paths to the OS): not attached is
    # ENOTCONN, outside the directory EXDEV, both with the extension's one message.
    script = workflow.script(
        f"""
        import sys
        import pycapio
        from pycapio import PyCapioScandirWrapper

        def show(path):
            try:
                PyCapioScandirWrapper(path)
            except Exception as exc:
                print(type(exc).__name__, exc.errno, str(exc), sep="|")

        show(sys.argv[2])
        pycapio.pycapio_init(sys.argv[1], "lister", {workflow.name!r})
        show(sys.argv[2])
        pycapio.pycapio_teardown(True)
        """
    )
    outside = workflow.root / "outside"
    outside.mkdir()
    r = subprocess.run(
        [sys.executable, str(script), str(workflow.capio_dir), str(outside)],
        env=workflow.env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert r.returncode == 0, r.stderr
    real = workflow.capio_dir.resolve()
    assert r.stdout.splitlines() == [
        f"PyCAPIOException|{errno.ENOTCONN}|CAPIO is not initialised in this process"
        " (call pycapio_init first)",
        f"PyCAPIOException|{errno.EXDEV}|{str(outside)!r} is not inside the CAPIO directory {str(real)!r}",
    ]


_KINDS = """
import json, os, sys
root = sys.argv[1]
with open(os.path.join(root, "file"), "w") as f:
    f.write("x")
os.mkdir(os.path.join(root, "dir"))
os.symlink("file", os.path.join(root, "to-file"))
os.symlink("dir", os.path.join(root, "to-dir"))
os.symlink("missing", os.path.join(root, "dangling"))
os.mkfifo(os.path.join(root, "fifo"))
kinds = {}
for e in os.scandir(root):
    kinds[e.name] = [e.is_file(), e.is_dir(), e.is_symlink(),
                     e.is_file(follow_symlinks=False), e.is_dir(follow_symlinks=False)]
print(json.dumps(kinds, sort_keys=True))
if len(sys.argv) > 2:  # the native listing gives the decoded kinds, never the wire's bits
    from pycapio import _pycapio
    print(json.dumps(sorted(_pycapio._listdir(root))))
"""


def test_scandir_entry_kinds_are_the_os_s(workflow: Workflow, plain: Path) -> None:
    # Files, directories, links to each, a dangling link and a FIFO: the same answers from a
    # CAPIO step as from a plain directory without pycapio.
    script = workflow.script(_KINDS)
    want = subprocess.run(
        [sys.executable, str(script), str(plain)], capture_output=True, text=True, timeout=60
    )
    assert want.returncode == 0, want.stderr
    got = workflow.run_step(_KINDS, "kinds", str(workflow.capio_dir), "native").check()
    scandir, native = got.stdout.splitlines()
    assert scandir == want.stdout.strip()
    assert [tuple(e) for e in json.loads(native)] == [
        ("dangling", False, False, True),
        ("dir", False, True, False),
        ("fifo", False, False, False),
        ("file", True, False, False),
        ("to-dir", False, True, True),
        ("to-file", True, False, True),
    ]
