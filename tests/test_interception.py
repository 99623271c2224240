"""Interception beyond open(): os stat/remove/rename/rmdir/access/..., fd calls, pathlib, shutil.

In-process against a real server. Errors are compared with what the same call raises on a plain
directory (type and message, with the directory name masked).
"""

from __future__ import annotations

import errno
import io
import json
import os
import pathlib
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import pycapio
from pycapio import _lifecycle, _patch, _pycapio

from conftest import InProcess, Workflow


def make(path: str | Path, data: bytes = b"data") -> str:
    with open(path, "wb") as f:
        f.write(data)
    return os.fspath(path)


def read(path: str | Path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def outcome(fn: Callable[[], Any], *roots: str | Path) -> tuple[str, str]:
    try:
        value = fn()
    except Exception as e:
        text = str(e)
        for root in roots:
            text = text.replace(str(root), "<DIR>")
        return type(e).__name__, text
    return "ok", repr(value)


def both(
    plain: Path, capio: InProcess, call: Callable[[Path], Any]
) -> tuple[tuple[str, str], tuple[str, str]]:
    """The outcome of ``call(root)`` with a plain directory and with the CAPIO directory as root."""
    return (
        outcome(lambda: call(plain), plain),
        outcome(lambda: call(Path(capio.capio_dir)), capio.capio_dir),
    )


# -- patching -----------------------------------------------------------------------------------


def test_every_patched_name_is_restored_exactly(capio: InProcess) -> None:
    before = {f"{m.__name__}.{n}": getattr(m, n) for m, n in _patch._PATCHED}
    supports = [set(s) for s in _patch._SUPPORTS]
    assert {"os.stat", "os.rename", "os.open", "shutil.rmtree", "os.access"} <= before.keys()
    with capio.context():
        with capio.context():
            for m, n in _patch._PATCHED:
                assert getattr(m, n) is not before[f"{m.__name__}.{n}"], n
            # Code that checks os.supports_* at call time (shutil.copystat) sees the proxies.
            assert os.stat in os.supports_dir_fd and os.stat in os.supports_follow_symlinks
            assert os.stat in os.supports_fd and os.utime in os.supports_follow_symlinks
            assert os.access in os.supports_effective_ids
        assert os.stat is pycapio._ospatch.stat_proxy
    assert {f"{m.__name__}.{n}": getattr(m, n) for m, n in _patch._PATCHED} == before
    assert [set(s) for s in _patch._SUPPORTS] == supports


def test_other_paths_reach_the_originals_with_the_same_arguments(capio: InProcess, plain: Path) -> None:
    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    outside = plain / "f"
    inside_rel = "rel-name"
    watched = (outside, inside_rel, 3, b"/nonexistent/a", capio.path("x"))

    def spy(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def fn(*args: Any, **kwargs: Any) -> Any:
            if args[0] not in watched:  # pycapio's own calls (realpath of the CAPIO directory)
                return real(*args, **kwargs)
            calls.append((name, args, kwargs))
            return name

        return fn

    names = ("stat", "lstat", "remove", "rename", "replace", "rmdir", "access", "chmod", "utime", "open")
    saved = {name: getattr(os, name) for name in names}
    saved_rmtree = shutil.rmtree
    # The spies are what the patch finds in place, so they are the originals the proxies call.
    for name in names:
        setattr(os, name, spy(name, saved[name]))
    shutil.rmtree = spy("rmtree", saved_rmtree)
    try:
        with capio.context():
            os.stat(outside, follow_symlinks=False)
            os.stat(inside_rel, dir_fd=7)  # relative to a directory fd: the OS's business
            os.stat(3)
            os.lstat(outside)
            os.remove(outside, dir_fd=None)
            os.rename(outside, plain / "g", src_dir_fd=None)
            os.replace(b"/nonexistent/a", b"/nonexistent/b")
            os.rmdir(outside)
            os.access(outside, os.R_OK, effective_ids=True)
            os.chmod(outside, 0o600, follow_symlinks=False)
            os.utime(outside, ns=(1, 2))
            os.open(outside, os.O_RDONLY, 0o600, dir_fd=None)
            os.stat(capio.path("x"), "extra-positional")  # not a call the proxy understands
            shutil.rmtree(outside, True, None)
    finally:
        for name, fn in saved.items():
            setattr(os, name, fn)
        shutil.rmtree = saved_rmtree
    assert calls == [
        ("stat", (outside,), {"follow_symlinks": False}),
        ("stat", (inside_rel,), {"dir_fd": 7}),
        ("stat", (3,), {}),
        ("lstat", (outside,), {}),
        ("remove", (outside,), {"dir_fd": None}),
        ("rename", (outside, plain / "g"), {"src_dir_fd": None}),
        ("replace", (b"/nonexistent/a", b"/nonexistent/b"), {}),
        ("rmdir", (outside,), {}),
        ("access", (outside, os.R_OK), {"effective_ids": True}),
        ("chmod", (outside, 0o600), {"follow_symlinks": False}),
        ("utime", (outside,), {"ns": (1, 2)}),
        ("open", (outside, os.O_RDONLY, 0o600), {"dir_fd": None}),
        ("stat", (capio.path("x"), "extra-positional"), {}),
        ("rmtree", (outside, True, None), {}),
    ]


def test_excluded_paths_go_to_the_os(workflow: Workflow) -> None:
    cl = workflow.root / "cl.json"
    cl.write_text(json.dumps({"name": workflow.name, "IO_Graph": [], "exclude": ["*.log"]}))
    script = workflow.script(
        """
        import os, sys, shutil
        d = sys.argv[1]
        with open(os.path.join(d, "run.log"), "w") as f:
            f.write("log")
        with open(os.path.join(d, "data.txt"), "w") as f:
            f.write("data")
        os.rename(os.path.join(d, "run.log"), os.path.join(d, "old.log"))
        print(os.stat(os.path.join(d, "old.log")).st_size, os.path.exists(os.path.join(d, "run.log")))
        try:
            os.rename(os.path.join(d, "data.txt"), os.path.join(d, "data.log"))
        except OSError as e:
            print(e.errno == 18)
        """
    )
    cmd = workflow.command(script, "excluder", [str(workflow.capio_dir)])
    cmd[cmd.index("--app-name") : cmd.index("--app-name")] = ["--capio-cl", str(cl)]
    result = subprocess.run(
        cmd, env=workflow.env, cwd=workflow.root, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["3 False", "True"]
    # The excluded file was on disk all along, renamed by the OS.
    assert (workflow.capio_dir / "old.log").read_text() == "log"


# -- stat family ----------------------------------------------------------------------------------


def test_stat_lstat_fstat(patched: InProcess) -> None:
    path = make(patched.path("s.bin"), b"x" * 1234)
    os.mkdir(patched.path("sd"))
    st = os.stat(path)
    assert stat.S_ISREG(st.st_mode) and st.st_size == 1234 and st.st_uid == os.getuid()
    assert os.lstat(path) == st
    assert os.stat(Path(path)) == st and os.stat(os.fsencode(path)) == st
    assert stat.S_ISDIR(os.stat(patched.path("sd")).st_mode)
    with open(path, "rb") as f:
        fst = os.fstat(f.fileno())
        assert fst.st_size == 1234 and fst.st_ino == st.st_ino
        assert os.stat(f.fileno()).st_size == 1234
    # An absolute path with dir_fd is the path (the OS ignores dir_fd for it).
    assert os.stat(path, dir_fd=0).st_size == 1234
    assert not os.path.exists(path + ".on-disk")  # nothing of it on disk yet
    assert not Path(path).with_suffix(".missing").exists()


def test_stat_errors_equal_the_builtin(patched: InProcess, plain: Path) -> None:
    for call in (
        lambda root: os.stat(root / "missing"),
        lambda root: os.lstat(root / "missing"),
        lambda root: os.stat(os.fsencode(root / "missing")),
        lambda root: Path(root / "missing").stat(),
        lambda root: os.path.getsize(root / "missing"),
    ):
        want, got = both(plain, patched, call)
        assert got == want and want[0] == "FileNotFoundError"


def test_access(patched: InProcess, plain: Path) -> None:
    for root in (plain, Path(patched.capio_dir)):
        make(root / "acc")
        os.makedirs(root / "accdir", exist_ok=True)
    for name in ("acc", "accdir", "missing"):
        for mode in (os.F_OK, os.R_OK, os.W_OK, os.X_OK, os.R_OK | os.W_OK, 64):
            want, got = both(plain, patched, lambda root: os.access(root / name, mode))  # noqa: B023
            assert got == want, (name, mode)


# -- namespace ------------------------------------------------------------------------------------


def test_remove_unlink_rmdir(patched: InProcess, plain: Path) -> None:
    for root in (plain, Path(patched.capio_dir)):
        make(root / "r1")
        make(root / "r2")
        os.mkdir(root / "d")
        os.mkdir(root / "full")
        make(root / "full" / "x")
    for call in (
        lambda root: os.remove(root / "r1"),
        lambda root: os.unlink(os.fsencode(root / "r2")),
        lambda root: os.remove(root / "r1"),
        lambda root: os.unlink(root / "d"),
        lambda root: os.rmdir(root / "d"),
        lambda root: os.rmdir(root / "d"),
        lambda root: os.rmdir(root / "full"),
        lambda root: os.rmdir(root / "full" / "x"),
        lambda root: sorted(os.listdir(root)),
    ):
        want, got = both(plain, patched, call)
        assert got == want


def test_rename_and_replace(patched: InProcess, plain: Path) -> None:
    for root in (plain, Path(patched.capio_dir)):
        make(root / "a", b"A")
        make(root / "b", b"B")
        os.mkdir(root / "dir")
        make(root / "dir" / "inner", b"I")
        os.mkdir(root / "other")
    for call in (
        lambda root: os.rename(root / "a", root / "a2"),
        lambda root: read(root / "a2"),
        lambda root: os.replace(root / "a2", root / "b"),
        lambda root: read(root / "b"),
        lambda root: os.rename(root / "missing", root / "x"),
        lambda root: os.replace(root / "b", root / "dir"),
        lambda root: os.rename(root / "dir", root / "dir" / "sub"),
        lambda root: os.rename(root / "dir", root / "dir2"),
        lambda root: read(root / "dir2" / "inner"),
        lambda root: os.rename(root / "dir2", root / "other"),
        lambda root: sorted(os.listdir(root)),
    ):
        want, got = both(plain, patched, call)
        assert got == want


def test_rename_across_the_capio_boundary_is_exdev(patched: InProcess, plain: Path) -> None:
    inside = make(patched.path("in.txt"), b"in")
    outside = make(plain / "out.txt", b"out")
    for src, dst in ((inside, plain / "moved"), (outside, patched.path("moved"))):
        for fn in (os.rename, os.replace):
            with pytest.raises(OSError) as info:
                fn(src, dst)
            assert info.value.errno == errno.EXDEV
            assert str(info.value) == f"[Errno 18] Invalid cross-device link: {src!r} -> {os.fspath(dst)!r}"
    # A missing source is reported as missing, as the kernel checks it first.
    with pytest.raises(FileNotFoundError, match="No such file"):
        os.rename(patched.path("nope"), plain / "x")
    with pytest.raises(FileNotFoundError, match="No such file"):
        os.rename(plain / "nope", patched.path("x"))
    # shutil.move falls back to copy and delete, both ways.
    assert os.fspath(shutil.move(inside, plain / "moved.txt")) == str(plain / "moved.txt")
    assert (plain / "moved.txt").read_bytes() == b"in" and not os.path.exists(inside)
    shutil.move(outside, patched.path("moved-in.txt"))
    assert not os.path.exists(outside)
    with open(patched.path("moved-in.txt"), "rb") as f:
        assert f.read() == b"out"


def test_a_dangling_link_moves_out_of_the_capio_dir_as_across_file_systems(workflow: Workflow) -> None:
    # rename(2) looks the source up without following it: a dangling link exists, so moving it
    # out is EXDEV (shutil.move then re-creates the link), not ENOENT as for a missing source.
    outside = workflow.root / "out"
    outside.mkdir()
    step = workflow.run_step(
        """
        import errno, json, os, shutil, sys
        capio_dir, outside = sys.argv[1:]
        link = os.path.join(capio_dir, "dangling")
        os.symlink("nowhere", link)
        got = []
        try:
            os.rename(link, os.path.join(outside, "x"))
        except OSError as exc:
            got.append(errno.errorcode[exc.errno])
        try:
            os.rename(os.path.join(capio_dir, "missing"), os.path.join(outside, "y"))
        except OSError as exc:
            got.append(errno.errorcode[exc.errno])
        moved = shutil.move(link, os.path.join(outside, "moved"))
        got += [os.readlink(moved), os.path.lexists(link)]
        print(json.dumps(got))
        """,
        "mover",
        str(workflow.capio_dir),
        str(outside),
    ).check()
    assert json.loads(step.stdout) == ["EXDEV", "ENOENT", "nowhere", False]


def test_with_dir_fd_only_an_absolute_name_is_capio_s(workflow: Workflow) -> None:
    # One rule for every proxy: a name relative to a dir_fd is the OS's (here: a file on disk in
    # the CAPIO directory), an absolute one (the OS ignores dir_fd) is CAPIO's.
    step = workflow.run_step(
        """
        import json, os, sys
        from pycapio import _pycapio
        d = sys.argv[1]
        dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        rel = os.open("rel.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=dfd)
        ab = os.open(os.path.join(d, "abs.txt"), os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=dfd)
        got = [_pycapio._is_capio_fd(rel), _pycapio._is_capio_fd(ab)]
        os.write(ab, b"capio")
        os.close(rel)
        os.close(ab)
        got.append(os.stat("rel.txt", dir_fd=dfd).st_size)
        got.append(os.stat(os.path.join(d, "abs.txt"), dir_fd=dfd).st_size)
        print(json.dumps(got))
        """,
        "dirfd",
        str(workflow.capio_dir),
    ).check()
    assert json.loads(step.stdout) == [False, True, 0, 5]


def test_chmod_utime_truncate_xattr(patched: InProcess, plain: Path) -> None:
    path = make(patched.path("m.bin"), b"0123456789")
    os.chmod(path, 0o600)
    os.utime(path)
    os.utime(path, (1, 2))
    os.utime(path, ns=(1, 2))
    Path(path).touch()
    os.truncate(path, 4)
    assert os.stat(path).st_size == 4
    for call in (
        lambda root: os.chmod(root / "missing", 0o600),
        lambda root: os.utime(root / "missing"),
        lambda root: os.utime(root / "m.bin", (1, 2), ns=(1, 2)),
        lambda root: os.utime(root / "m.bin", 5),
        lambda root: os.utime(root / "m.bin", ns=5),
        lambda root: os.truncate(root / "missing", 0),
        lambda root: os.truncate(root / "m.bin", -1),
    ):
        make(plain / "m.bin", b"0123")
        want, got = both(plain, patched, call)
        assert got == want
    for call in (os.listxattr, lambda p: os.getxattr(p, "user.x"), lambda p: os.setxattr(p, "user.x", b"1")):
        with pytest.raises(OSError) as info:
            call(path)  # type: ignore[operator]
        assert info.value.errno == errno.ENOTSUP
    with pytest.raises(FileNotFoundError):
        os.listxattr(patched.path("missing"))


# -- fds --------------------------------------------------------------------------------------------


def test_os_open_and_fd_calls(patched: InProcess) -> None:
    path = patched.path("fd.bin")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    assert _pycapio._is_capio_fd(fd)
    assert os.write(fd, b"hello ") == 6
    assert os.pwrite(fd, b"world", 6) == 5
    assert os.lseek(fd, 0, os.SEEK_SET) == 0
    assert os.read(fd, 5) == b"hello"
    assert os.pread(fd, 5, 6) == b"world"
    assert os.fstat(fd).st_size == 11
    os.ftruncate(fd, 5)
    os.fsync(fd)
    os.fdatasync(fd)
    os.close(fd)
    assert not _pycapio._is_capio_fd(fd)
    with pytest.raises(FileExistsError):
        os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    fd = os.open(path, os.O_RDONLY)
    with os.fdopen(fd, "rb") as f:  # open(fd) of a CAPIO fd is a CAPIO file
        assert f.read() == b"hello"
        assert f.name == fd
    with pytest.raises(OSError) as info:
        os.close(fd)
    assert info.value.errno == errno.EBADF
    with open(path, "rb") as f:
        assert os.read(f.fileno(), 100) == b"hello"


def test_tempfile_then_rename(patched: InProcess) -> None:
    with tempfile.NamedTemporaryFile("w", dir=patched.capio_dir, suffix=".tmp", delete=False) as tmp:
        tmp.write("complete")
    os.replace(tmp.name, patched.path("final.txt"))
    with open(patched.path("final.txt")) as f:
        assert f.read() == "complete"
    fd, name = tempfile.mkstemp(dir=patched.capio_dir)
    os.write(fd, b"mk")
    os.close(fd)
    with open(name, "rb") as f:
        assert f.read() == b"mk"
    with tempfile.TemporaryFile(dir=patched.capio_dir) as t:  # O_TMPFILE goes to the OS
        t.write(b"t")
    with tempfile.NamedTemporaryFile(dir=patched.capio_dir) as t:  # deleted on close
        t.write(b"gone")
        t.flush()
        gone = t.name
    assert not os.path.exists(gone)
    assert sorted(os.listdir(patched.capio_dir)) == sorted(["final.txt", os.path.basename(name)])


def test_fsync_and_sendfile_of_capio_files(patched: InProcess, plain: Path) -> None:
    src = make(patched.path("src.bin"), os.urandom(100_000))
    with open(patched.path("w.bin"), "w+b") as f:
        f.write(b"x")
        os.fsync(f)  # the file object: nothing to do, no OS fd involved
    with open(src, "rb") as fin, open(plain / "copy.bin", "wb") as fout:
        sent = 0
        while n := os.sendfile(fout.fileno(), fin.fileno(), sent, 1 << 16):
            sent += n
    assert (plain / "copy.bin").read_bytes() == read(src)


# -- os.walk, pathlib, shutil ---------------------------------------------------------------------


def tree(root: Path) -> None:
    (root / "a" / "b").mkdir(parents=True)
    make(root / "top.txt", b"top")
    make(root / "a" / "one.txt", b"one")
    make(root / "a" / "b" / "two.bin", b"two")


def test_os_walk_both_orders(patched: InProcess, plain: Path) -> None:
    for root in (plain, Path(patched.capio_dir)):
        tree(root)
    for topdown in (True, False):
        want, got = both(
            plain,
            patched,
            lambda root: [
                (os.path.relpath(d, root), sorted(ds), sorted(fs))
                for d, ds, fs in os.walk(root, topdown=topdown)  # noqa: B023
            ],
        )
        assert got == want and want[0] == "ok"


def test_pathlib(patched: InProcess, plain: Path) -> None:
    def script(root: Path) -> list[Any]:
        p = root / "pl"
        out: list[Any] = []
        p.mkdir()
        out.append((p.exists(), p.is_dir(), p.is_file()))
        (p / "t.txt").write_text("text\n", encoding="utf-8")
        (p / "b.bin").write_bytes(b"\x00\x01")
        (p / "touched").touch()
        out.append(((p / "t.txt").read_text(), (p / "b.bin").read_bytes(), (p / "touched").stat().st_size))
        with (p / "t.txt").open("a") as f:
            f.write("more\n")
        out.append((p / "t.txt").read_text().splitlines())
        out.append(sorted(x.name for x in p.iterdir()))
        out.append(sorted(str(x.relative_to(root)) for x in root.glob("pl/*.txt")))
        out.append(sorted(str(x.relative_to(root)) for x in root.rglob("*")))
        (p / "t.txt").rename(p / "r.txt")
        (p / "b.bin").replace(p / "r.txt")
        out.append(((p / "r.txt").read_bytes(), (p / "t.txt").exists()))
        (p / "r.txt").unlink()
        (p / "touched").unlink()
        out.append(outcome(lambda: (p / "r.txt").unlink()))
        (p / "r.txt").unlink(missing_ok=True)
        out.append(outcome(lambda: p.mkdir()))
        p.mkdir(exist_ok=True)
        (p / "x" / "y").mkdir(parents=True)
        out.append(outcome(lambda: p.rmdir()))
        (p / "x" / "y").rmdir()
        (p / "x").rmdir()
        p.rmdir()
        out.append(p.exists())
        out.append(outcome(lambda: (root / "nothere").touch(exist_ok=False) or (root / "nothere").exists()))
        out.append(outcome(lambda: (root / "nothere").touch(exist_ok=False)))
        return [str(o).replace(str(root), "<DIR>") for o in out]

    want, got = both(plain, patched, script)
    assert got == want and want[0] == "ok"


def test_shutil_in_and_out(patched: InProcess, plain: Path) -> None:
    capio_root = Path(patched.capio_dir)
    tree(plain / "src")
    tree(capio_root / "src")
    # copyfile/copy/copy2 in all four directions.
    for a, b in ((plain, capio_root), (capio_root, plain), (capio_root, capio_root), (plain, plain)):
        for fn in (shutil.copyfile, shutil.copy, shutil.copy2):
            dst = b / f"{fn.__name__}-{a.name}.txt"
            assert os.fspath(fn(a / "src" / "top.txt", dst)) == os.fspath(dst)
            with open(dst, "rb") as f:
                assert f.read() == b"top"
    with pytest.raises(shutil.SameFileError):
        shutil.copyfile(capio_root / "src" / "top.txt", patched.path("src", "..", "src", "top.txt"))
    # copytree out of, into and within CAPIO.
    shutil.copytree(capio_root / "src", plain / "from-capio")
    shutil.copytree(plain / "src", capio_root / "from-plain")
    shutil.copytree(capio_root / "src", capio_root / "within")
    for root in (plain / "from-capio", capio_root / "from-plain", capio_root / "within"):
        found = sorted((os.path.relpath(d, root), sorted(fs)) for d, _, fs in os.walk(root))
        assert found == [(".", ["top.txt"]), ("a", ["one.txt"]), ("a/b", ["two.bin"])], root
        with open(root / "a" / "b" / "two.bin", "rb") as f:
            assert f.read() == b"two"
    # rmtree: the same results and errors as on disk.
    for call in (
        lambda root: shutil.rmtree(root / "src" / "a"),
        lambda root: sorted(os.listdir(root / "src")),
        lambda root: shutil.rmtree(root / "src" / "top.txt"),
        lambda root: shutil.rmtree(root / "missing"),
        lambda root: shutil.rmtree(root / "missing", ignore_errors=True),
    ):
        want, got = both(plain, patched, call)
        assert got == want
    errors: list[tuple[str, str]] = []
    shutil.rmtree(patched.path("missing"), onerror=lambda fn, p, info: errors.append((fn.__name__, p)))
    # The function reported is os.lstat, named as the built-in is (the proxy is its double).
    assert errors == [("lstat", patched.path("missing"))]
    shutil.rmtree(capio_root / "within")
    assert not os.path.exists(capio_root / "within")
    # move a directory out of and into CAPIO (copytree + rmtree fallback).
    shutil.move(os.fspath(capio_root / "from-plain"), plain / "moved-out")
    assert (plain / "moved-out" / "a" / "b" / "two.bin").read_bytes() == b"two"
    assert not os.path.exists(capio_root / "from-plain")
    shutil.move(os.fspath(plain / "moved-out"), capio_root / "moved-in")
    assert not (plain / "moved-out").exists()
    assert os.path.isfile(capio_root / "moved-in" / "a" / "one.txt")


def test_file_objects_in_text_io_registry(patched: InProcess) -> None:
    # Binary CAPIO files carry the MemFile interface while staying the built-in types.
    with open(patched.path("types.bin"), "w+b") as f:
        assert type(f) is io.BufferedRandom
        assert callable(f.pread) and callable(f.pwrite) and callable(f.view)
    with open(patched.path("types.bin")) as t:
        assert type(t) is io.TextIOWrapper and not hasattr(t, "pread")


def test_subprocess_children_join_the_app(patched: InProcess) -> None:
    # A Python child of a step becomes a client of the same app, patched, committing at exit.
    env = dict(os.environ)
    assert json.loads(env[_lifecycle.CONTEXT_ENV])["app_name"] == patched.app
    code = (
        "import os, sys; open(sys.argv[1], 'w').write('from child'); "
        "print(os.stat(sys.argv[1]).st_size, os.path.exists(sys.argv[1]))"
    )
    child = subprocess.run(
        [sys.executable, "-c", code, patched.path("child.txt")], capture_output=True, text=True, timeout=60
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout.split() == ["10", "True"]
    with open(patched.path("child.txt")) as f:
        assert f.read() == "from child"


def test_the_context_is_exported_only_while_active(capio: InProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(_lifecycle.CONTEXT_ENV, raising=False)
    with capio.context():
        value = os.environ[_lifecycle.CONTEXT_ENV]
        with capio.context():
            assert os.environ[_lifecycle.CONTEXT_ENV] == value
    assert _lifecycle.CONTEXT_ENV not in os.environ
    settings = json.loads(value)
    assert settings["capio_dir"] == os.path.realpath(capio.capio_dir)
    assert (settings["app_name"], settings["workflow_name"]) == (capio.app, capio.workflow)


def test_paths_api_round_trip(patched: InProcess) -> None:
    # pathlib.Path objects, bytes and str name the same CAPIO file everywhere.
    p = pathlib.Path(patched.path("rt.txt"))
    p.write_text("rt")
    assert os.path.getsize(os.fsencode(p)) == 2 and os.stat(str(p)).st_size == 2
    assert os.path.samefile(p, os.fsencode(p))


def test_opener_and_closefd_as_the_builtin(patched: InProcess, plain: Path) -> None:
    def os_opener(path: Any, flags: int) -> int:
        return os.open(path, flags, 0o644)

    # An opener's os.open of a CAPIO path gives a CAPIO fd, served by CAPIO; the name stays the path.
    path = patched.path("opened.txt")
    with open(path, "w", opener=os_opener) as f:
        assert isinstance(f.buffer.raw, pycapio.CapioFileIO) and f.name == path
        f.write("via opener")
    assert not os.path.exists(plain / "opened.txt")
    with open(path, opener=os_opener) as f:
        assert f.read() == "via opener"
    for bad in (lambda p, fl: -1, lambda p, fl: "fd"):
        want, got = both(plain, patched, lambda root: open(root / "x", "w", opener=bad))  # noqa: B023
        assert got == want and want[0] in ("ValueError", "TypeError")
    # closefd=False over a CAPIO fd leaves the fd open, as with an OS fd.
    fd = os.open(path, os.O_RDONLY)
    with open(fd, "rb", closefd=False) as f:
        assert f.read() == b"via opener" and f.raw.closefd is False
    assert os.read(fd, 3) == b""  # still open (at the end: the file object shared the position)
    os.lseek(fd, 0, os.SEEK_SET)
    assert os.read(fd, 3) == b"via"
    os.close(fd)
