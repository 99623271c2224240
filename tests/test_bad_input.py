"""Bad input gets the error a built-in would give: every case runs on a plain directory without
pycapio and on the CAPIO directory, and the outcomes (result, or exception type and errno) must
match. Covers paths that are too long, odd names (spaces, newlines, non-UTF-8 bytes), relative and
``..`` paths, bad ``open`` flags and arguments, negative and huge sizes and offsets, closed and
foreign file descriptors, and a CAPIO directory that is missing or a file. (Malformed CAPIO-CL
files are covered in ``test_capio_cl.py`` and the ``capio-cl`` crate; escapes in ``test_security``.)
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import pycapio
from pycapio import _pycapio

from conftest import InProcess


def outcome(fn: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return ("ok", fn())
    except (OSError, ValueError, TypeError, OverflowError) as e:
        # PyCAPIOException is an OSError subclass: compare what a caller would catch.
        kind = OSError if isinstance(e, OSError) else type(e)
        sub = type(e) if isinstance(e, OSError) and type(e) is not _pycapio.PyCAPIOException else kind
        return ("error", (sub.__name__, getattr(e, "errno", None)))


@pytest.fixture
def both(capio: InProcess, tmp_path: Path) -> tuple[InProcess, Path]:
    plain = tmp_path / "plain"
    plain.mkdir()
    return capio, plain


def same(capio: InProcess, plain: Path, case: Callable[[str], Any]) -> tuple[str, Any]:
    """Run ``case(root)`` on the plain directory, then inside CAPIO; the outcomes must match."""
    expected = outcome(lambda: case(str(plain)))
    with capio.context():
        got = outcome(lambda: case(str(capio.capio_dir)))
    assert got == expected, f"CAPIO gave {got}, the built-in {expected}"
    return got


LONG_NAME = "n" * 256
DEEP = "/".join(["d" * 200] * 21)  # > PATH_MAX (4096)


@pytest.mark.parametrize(
    "case",
    [
        lambda r: open(os.path.join(r, LONG_NAME), "w"),
        lambda r: open(os.path.join(r, LONG_NAME)),
        lambda r: os.mkdir(os.path.join(r, LONG_NAME)),
        lambda r: os.stat(os.path.join(r, LONG_NAME)),
        lambda r: os.path.exists(os.path.join(r, LONG_NAME)),
        lambda r: open(os.path.join(r, DEEP), "w"),
        lambda r: os.makedirs(os.path.join(r, DEEP)),
        lambda r: open(os.path.join(r, "n" * 255), "w").close(),  # NAME_MAX itself is fine
    ],
    ids=["create", "read", "mkdir", "stat", "exists", "deep-create", "deep-makedirs", "name-max"],
)
def test_names_too_long_are_enametoolong(both: tuple[InProcess, Path], case: Callable[[str], Any]) -> None:
    capio, plain = both
    kind, value = same(capio, plain, case)
    if kind == "error":
        assert value[1] == errno.ENAMETOOLONG


ODD_NAMES = ["with space.txt", "new\nline.txt", "tab\tand 'quote'.txt", "ünï©ødé.txt", " leading", "-dash"]


def test_odd_names_and_non_utf8_bytes_round_trip_like_the_os(both: tuple[InProcess, Path]) -> None:
    capio, plain = both

    def case(root: str) -> tuple[list[str], list[bytes], list[bytes]]:
        for i, name in enumerate(ODD_NAMES):
            with open(os.path.join(root, name), "w") as f:
                f.write(str(i))
        raw = os.fsencode(root) + b"/bad-\xff\xfe-\x80.bin"
        with open(raw, "wb") as f:
            f.write(b"raw")
        with open(raw, "rb") as f:
            back = f.read()
        texts = []
        for n in ODD_NAMES:
            with open(os.path.join(root, n)) as f:
                texts.append(f.read())
        return (
            sorted(os.listdir(root)),
            sorted(os.listdir(os.fsencode(root))),
            [back, *map(str.encode, texts)],
        )

    kind, value = same(capio, plain, case)
    assert kind == "ok" and b"bad-\xff\xfe-\x80.bin" in value[1]


def test_relative_and_dotdot_paths_resolve_like_the_os(both: tuple[InProcess, Path]) -> None:
    capio, plain = both

    # The working directory must exist on disk (os.chdir is the kernel's): a directory made through
    # CAPIO reaches the disk only when it commits, so the tree is made beforehand, as an input.
    for root in (plain, capio.capio_dir):
        (root / "a" / "b").mkdir(parents=True)

    def case(root: str) -> tuple[str, bool, bool]:
        old = os.getcwd()
        os.chdir(os.path.join(root, "a"))
        try:
            with open("b/../rel.txt", "w") as f:
                f.write("rel")
            with open("./b/./x.txt", "w") as f:
                f.write("x")
            with open(os.path.join(root, "a", "rel.txt")) as f:
                text = f.read()
            return text, os.path.exists("../a/b/x.txt"), os.path.isdir("b/..")
        finally:
            os.chdir(old)

    assert same(capio, plain, case) == ("ok", ("rel", True, True))


FLAG_CASES = {
    "O_DIRECTORY on a file": os.O_RDONLY | os.O_DIRECTORY,
    "O_DIRECTORY|O_CREAT": os.O_WRONLY | os.O_CREAT | os.O_DIRECTORY,
    "O_TMPFILE": os.O_RDWR | getattr(os, "O_TMPFILE", 0o20200000),
    "O_EXCL on existing": os.O_WRONLY | os.O_CREAT | os.O_EXCL,
    "missing without O_CREAT": os.O_WRONLY,
}


@pytest.mark.parametrize("name", FLAG_CASES)
def test_open_flags_fail_like_os_open(both: tuple[InProcess, Path], name: str) -> None:
    capio, plain = both
    flags = FLAG_CASES[name]
    target = "missing" if "missing" in name else "f"
    (plain / "f").write_bytes(b"")
    with capio.context():
        open(capio.path("f"), "w").close()

    def os_open(root: str) -> None:
        fd = os.open(os.path.join(root, target), flags)
        os.close(fd)

    expected = outcome(lambda: os_open(str(plain)))
    got = outcome(lambda: _pycapio._close(_pycapio.pycapio_open(capio.path(target), flags)))
    assert expected[0] == "error", expected
    assert got == expected, f"pycapio_open gave {got}, os.open {expected}"


@pytest.mark.parametrize("flags", [0x7FFFFFFF, -1, -2, 0x7FFFFFFF & ~os.O_CREAT], ids=hex)
def test_open_flags_with_every_bit_set_fail_and_create_nothing(capio: InProcess, flags: int) -> None:
    # Which of the conflicting bits the kernel reports first varies (ENOTDIR, EINVAL, EEXIST, ENOENT);
    # CAPIO must fail with one of them and leave nothing behind.
    with capio.context():
        open(capio.path("f"), "w").close()
    for target in ("f", "new"):
        with pytest.raises(OSError) as info:
            _pycapio.pycapio_open(capio.path(target), flags)
        assert info.value.errno in (errno.ENOTDIR, errno.EINVAL, errno.EEXIST, errno.ENOENT), info.value
    with capio.context():
        assert not os.path.exists(capio.path("new"))
        assert sorted(os.listdir(capio.capio_dir)) == ["f"]


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("x", 1 << 40), OverflowError),
        (("x", "r"), TypeError),
        (("x", 0.5), TypeError),
        ((None, os.O_RDONLY), TypeError),
        ((3, os.O_RDONLY), TypeError),
        (("x", os.O_RDONLY, "0o644"), TypeError),
    ],
    ids=["huge flags", "str flags", "float flags", "None path", "int path", "str mode"],
)
def test_wrong_argument_types_raise_like_os_open(
    capio: InProcess, args: tuple[Any, ...], error: type
) -> None:
    args = (capio.path(args[0]) if isinstance(args[0], str) else args[0], *args[1:])
    with pytest.raises(error):
        _pycapio.pycapio_open(*args)
    with pytest.raises(error):
        os.open(*args)


@pytest.mark.parametrize(
    "case",
    [
        lambda f: f.seek(-1),
        lambda f: f.seek(-1, os.SEEK_CUR),
        lambda f: f.truncate(-1),
        lambda f: f.read(-5),
        lambda f: f.seek(1 << 64),
        lambda f: (f.seek((1 << 63) - 2), f.write(b"abc"), f.flush()),
        lambda f: f.seek(0, 7),
        lambda f: f.read("3"),
    ],
    ids=[
        "seek-1",
        "seek-cur-1",
        "truncate-1",
        "read-5",
        "seek-2^64",
        "write-at-2^63",
        "whence",
        "str",
    ],
)
def test_negative_and_huge_sizes_and_offsets(
    both: tuple[InProcess, Path], case: Callable[[Any], Any]
) -> None:
    capio, plain = both

    def run(root: str) -> Any:
        with open(os.path.join(root, "s.bin"), "w+b") as f:
            f.write(b"0123456789")
            try:
                return case(f)
            finally:
                f.seek(0)
                f.truncate(0)

    same(capio, plain, run)


def test_closed_and_foreign_file_descriptors(both: tuple[InProcess, Path]) -> None:
    capio, plain = both

    def closed_file(root: str) -> Any:
        f = open(os.path.join(root, "c.txt"), "w")
        f.close()
        return f.write("x")

    def closed_fd(root: str) -> Any:
        fd = os.open(os.path.join(root, "c.bin"), os.O_WRONLY | os.O_CREAT)
        os.close(fd)
        return os.write(fd, b"x")

    def closed_fd_read(root: str) -> Any:
        fd = os.open(os.path.join(root, "c.bin"), os.O_RDONLY)
        os.close(fd)
        return os.read(fd, 1)

    def double_close(root: str) -> Any:
        fd = os.open(os.path.join(root, "d.bin"), os.O_WRONLY | os.O_CREAT)
        os.close(fd)
        return os.close(fd)

    for case in (closed_file, closed_fd, closed_fd_read, double_close):
        kind, _ = same(capio, plain, case)
        assert kind == "error", case.__name__
    # The raw primitives refuse an fd that is not a CAPIO fd instead of touching it.
    r, w = os.pipe()
    try:
        for call in (
            lambda: _pycapio._read(r, bytearray(4)),
            lambda: _pycapio._write(w, b"x"),
            lambda: _pycapio._close(r),
            lambda: _pycapio._fstat(r),
        ):
            with pytest.raises(OSError) as info:
                call()
            assert info.value.errno == errno.EBADF
        os.write(w, b"ok")
        assert os.read(r, 2) == b"ok", "the foreign fds still work"
    finally:
        os.close(r)
        os.close(w)


@pytest.mark.parametrize("what", ["missing", "a file"])
def test_a_capio_dir_that_is_missing_or_a_file(
    tmp_path: Path, runtime_dir: Path, monkeypatch: pytest.MonkeyPatch, what: str
) -> None:
    monkeypatch.setenv("PYCAPIO_RUNTIME_DIR", str(runtime_dir))
    target = tmp_path / "capio"
    if what == "a file":
        target.write_text("not a dir")
    with pytest.raises(OSError) as builtin:
        os.listdir(target)
    with pytest.raises(OSError) as got:
        pycapio.pycapio_init(str(target), "x", "wf-bad-dir")
    assert (type(got.value), got.value.errno, got.value.filename) == (
        type(builtin.value),
        builtin.value.errno,
        builtin.value.filename,
    )
    with (
        pytest.raises(type(builtin.value)),
        pycapio.CapioContext(capio_dir=str(target), workflow_name="wf-bad-2"),
    ):
        pass
    assert not _pycapio._is_initialized()
    assert list(runtime_dir.glob("*.sock")) == [], "no server was started"


def test_negative_offsets_of_the_primitives_are_einval(capio: InProcess) -> None:
    fd = _pycapio.pycapio_open(capio.path("offsets.bin"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        assert _pycapio._write(fd, b"abcdef") == 6
        for call in (
            lambda: _pycapio._write(fd, b"ZZ", -3),
            lambda: _pycapio._read(fd, bytearray(2), -2),
            lambda: _pycapio._read_bytes(fd, 2, -5),
        ):
            with pytest.raises(OSError) as info:
                call()
            assert info.value.errno == errno.EINVAL
        # -1 is the documented "at the position": the position moved by the first write only.
        assert _pycapio._seek(fd, 0, os.SEEK_CUR) == 6
        assert _pycapio._read_bytes(fd, -1, 0) == b"abcdef"
    finally:
        _pycapio._close(fd)
