"""Files opened inside the CAPIO directory behave like built-in files (in-process, real server)."""

from __future__ import annotations

import _io
import errno
import io
import os
from pathlib import Path
from typing import Any

import pytest

import pycapio
from pycapio import CapioFileIO, open_proxy

from conftest import InProcess


def write_through(capio: InProcess, name: str, data: bytes) -> str:
    path = capio.path(name)
    with open_proxy(path, "wb") as f:
        f.write(data)
    return path


def test_capio_files_are_not_os_files(capio: InProcess) -> None:
    path = capio.path("a.txt")
    with open_proxy(path, "w") as f:
        assert isinstance(f, io.TextIOWrapper)
        assert isinstance(f.buffer, io.BufferedWriter)
        # A new text file is written by the stdlib's own FileIO, through its memory object.
        assert type(f.buffer.raw) is _io.FileIO
        assert isinstance(f, io.IOBase)
        f.write("hello")
    with open_proxy(capio.path("a.bin"), "wb") as b:
        assert isinstance(b.raw, CapioFileIO)
        b.write(b"hello")
    # The bytes are in CAPIO, not on disk (they are persisted when the file commits).
    assert not os.path.exists(path) and not os.path.exists(capio.path("a.bin"))
    with open_proxy(path) as f:
        assert f.read() == "hello"


def test_w_truncates(capio: InProcess) -> None:
    path = write_through(capio, "t.bin", b"0123456789")
    with open_proxy(path, "wb") as f:
        f.write(b"ab")
    with open_proxy(path, "rb") as f:
        assert f.read() == b"ab"


def test_a_appends(capio: InProcess) -> None:
    path = write_through(capio, "ap.txt", b"one\n")
    with open_proxy(path, "a") as f:
        assert f.tell() == 4
        f.write("two\n")
    with open_proxy(path, "ab") as f:
        f.write(b"three\n")
    with open_proxy(path, "a+b") as f:
        f.seek(0)
        assert f.read() == b"one\ntwo\nthree\n"
        f.seek(0)
        f.write(b"four\n")  # O_APPEND: still at the end
        f.seek(0)
        assert f.read() == b"one\ntwo\nthree\nfour\n"


def test_a_creates(capio: InProcess) -> None:
    path = capio.path("new-append.txt")
    with open_proxy(path, "a") as f:
        f.write("x")
    with open_proxy(path) as f:
        assert f.read() == "x"


def test_x_refuses_an_existing_file(capio: InProcess) -> None:
    path = capio.path("excl.txt")
    with open_proxy(path, "x") as f:
        f.write("first")
    with pytest.raises(FileExistsError):
        open_proxy(path, "x")
    with pytest.raises(FileExistsError):
        open_proxy(path, "xb+")
    with open_proxy(path) as f:
        assert f.read() == "first"


def test_closed_is_a_property(capio: InProcess) -> None:
    f = open_proxy(capio.path("c.txt"), "w")
    assert f.closed is False
    assert f.buffer.closed is False and f.buffer.raw.closed is False
    f.close()
    assert f.closed is True
    assert f.buffer.raw.closed is True
    f.close()  # idempotent


@pytest.mark.parametrize(
    "mode", ["r", "rb", "rt", "r+", "r+b", "w", "wb", "w+", "w+b", "a", "ab", "a+", "ab+", "x", "xb", "x+b"]
)
def test_file_objects_equal_the_builtin(capio: InProcess, tmp_path: Path, mode: str) -> None:
    ref = tmp_path / "ref"
    ours = capio.path("mode-file")
    if not mode.startswith("x"):
        ref.write_bytes(b"x")
        write_through(capio, "mode-file", b"x")
    with open(ref, mode) as a, open_proxy(ours, mode) as b:
        assert type(a) is type(b)
        assert a.mode == b.mode
        assert (a.readable(), a.writable(), a.seekable()) == (b.readable(), b.writable(), b.seekable())
        raw_a = a.buffer.raw if hasattr(a, "buffer") else a.raw
        raw_b = b.buffer.raw if hasattr(b, "buffer") else b.raw
        if mode == "x":  # a new text file: the stdlib's own FileIO writes its memory object
            assert type(raw_b) is type(raw_a)
        else:
            assert isinstance(raw_b, CapioFileIO)
        assert raw_a.mode == raw_b.mode
        assert b.name == ours
        assert a.tell() == b.tell()


def test_file_keyword_and_pathlike_and_bytes(capio: InProcess) -> None:
    path = Path(capio.path("kw.txt"))
    with open_proxy(file=path, mode="w") as f:
        assert f.name == str(path)
        f.write("kw")
    with open_proxy(os.fsencode(path), "rb") as f:
        assert f.read() == b"kw"
        assert f.name == os.fsencode(path)


def test_relative_paths_resolve_against_the_cwd(capio: InProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(capio.capio_dir)
    with open_proxy("rel.txt", "w") as f:
        f.write("rel")
        assert f.name == "rel.txt"
    assert not Path(capio.capio_dir, "rel.txt").exists()
    with open_proxy(capio.path("rel.txt")) as f:
        assert f.read() == "rel"


def test_text_features(capio: InProcess) -> None:
    path = capio.path("text.txt")
    with open_proxy(path, "w", encoding="latin-1", newline="\r\n") as f:
        assert f.encoding == "latin-1"
        f.write("é\nline2\n")
    with open_proxy(path, "rb") as f:
        assert f.read() == "é\r\nline2\r\n".encode("latin-1")
    with open_proxy(path, encoding="latin-1") as f:
        assert f.readline() == "é\n"
        assert list(f) == ["line2\n"]
    with open_proxy(path, encoding="latin-1", newline="") as f:
        assert f.readlines() == ["é\r\n", "line2\r\n"]
    with open_proxy(path, "r", encoding="ascii", errors="replace") as f:
        assert f.read(1) == "\ufffd"


def test_binary_features(capio: InProcess) -> None:
    data = bytes(range(256)) * 1000
    path = write_through(capio, "bin.dat", data)
    with open_proxy(path, "rb") as f:
        assert f.read(10) == data[:10]
        assert f.tell() == 10
        assert f.seek(-6, os.SEEK_END) == len(data) - 6
        assert f.read() == data[-6:]
        f.seek(100)
        buf = bytearray(50)
        assert f.readinto(buf) == 50 and bytes(buf) == data[100:150]
        assert f.seekable() and f.readable() and not f.writable()
        assert not f.isatty()
        assert os.pread(f.fileno(), 4, 0) == data[:4]  # a real OS fd for reading
        assert os.fstat(f.fileno()).st_size == len(data)
    with open_proxy(path, "r+b") as f:
        f.seek(10)
        f.write(b"XYZ")
        assert f.truncate(20) == 20
        f.seek(0)
        assert f.read() == data[:10] + b"XYZ" + data[13:20]
    with open_proxy(path, "rb", buffering=0) as f:
        assert isinstance(f, CapioFileIO)
        assert f.readall() == data[:10] + b"XYZ" + data[13:20]
    with open_proxy(path, "rb") as f:
        with memoryview(bytearray(8)) as view:
            assert f.readinto(view) == 8


def test_writes_accept_buffers_and_writelines_takes_iterables(capio: InProcess) -> None:
    path = capio.path("lines.bin")
    with open_proxy(path, "wb") as f:
        f.write(memoryview(b"ab"))
        f.write(bytearray(b"cd"))
        f.writelines(bytes([c]) for c in b"ef")
        with pytest.raises(TypeError):
            f.write("str")  # type: ignore[arg-type]
    with open_proxy(path, "rb") as f:
        assert f.read() == b"abcdef"


def test_large_write_and_read(capio: InProcess) -> None:
    chunk = os.urandom(1 << 20)
    path = capio.path("big.bin")
    with open_proxy(path, "wb") as f:
        for _ in range(8):
            f.write(chunk)
    with open_proxy(path, "rb") as f:
        assert f.read() == chunk * 8
    with open_proxy(path, "rb") as f:
        assert len(f.read(3 << 20)) == 3 << 20


@pytest.mark.parametrize(
    "mode", ["rw", "rr", "", "b", "+", "tb", "rb+b", "r'", "U", "rU", "wa", "xr", "z", "r++", "bt"]
)
def test_bad_mode_errors_equal_the_builtin(capio: InProcess, tmp_path: Path, mode: str) -> None:
    with pytest.raises(Exception) as builtin_error:
        open(tmp_path / "whatever", mode)
    with pytest.raises(Exception) as ours:
        open_proxy(capio.path("whatever"), mode)
    assert type(ours.value) is type(builtin_error.value)
    assert str(ours.value) == str(builtin_error.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mode": 5},
        {"buffering": "x"},
        {"buffering": 1.5},
        {"encoding": 5},
        {"errors": 5},
        {"newline": 5},
        {"mode": "rb", "encoding": "utf-8"},
        {"mode": "rb", "errors": "strict"},
        {"mode": "rb", "newline": ""},
        {"mode": "w", "buffering": 0},
        {"mode": "w", "newline": "x"},
        {"mode": "w", "encoding": "no-such-codec"},
        {"mode": "w", "closefd": False},
        {"mode": "r", "closefd": False},
    ],
)
def test_argument_errors_equal_the_builtin(
    capio: InProcess, tmp_path: Path, kwargs: dict[str, object]
) -> None:
    ref = tmp_path / "ref.txt"
    ref.write_text("ref")
    ours_path = write_through(capio, "args.txt", b"ref")
    with pytest.raises(Exception) as builtin_error:
        open(ref, **kwargs)  # type: ignore[call-overload]
    with pytest.raises(Exception) as ours:
        open_proxy(ours_path, **kwargs)  # type: ignore[arg-type]
    assert type(ours.value) is type(builtin_error.value)
    assert str(ours.value) == str(builtin_error.value)


def test_binary_line_buffering_warns_like_the_builtin(capio: InProcess, tmp_path: Path) -> None:
    with pytest.warns(RuntimeWarning) as builtin_warning:
        open(tmp_path / "lb", "wb", buffering=1).close()
    with pytest.warns(RuntimeWarning) as ours:
        open_proxy(capio.path("lb"), "wb", buffering=1).close()
    assert str(ours[0].message) == str(builtin_warning[0].message)


def test_unbuffered_binary_is_the_raw_file(capio: InProcess) -> None:
    with open_proxy(capio.path("raw.bin"), "wb", buffering=0) as f:
        assert isinstance(f, CapioFileIO)
        assert f.write(b"abc") == 3


def test_closed_and_unsupported_errors_equal_the_builtin(capio: InProcess, tmp_path: Path) -> None:
    ref_path = tmp_path / "ref.bin"
    ref_path.write_bytes(b"data")
    ours_path = write_through(capio, "ops.bin", b"data")

    def errors(opener: object, path: object) -> list[tuple[type, str]]:
        found = []
        for mode, buffering, op in [
            ("rb", -1, lambda f: f.write(b"x")),
            ("rb", 0, lambda f: f.write(b"x")),
            ("r", -1, lambda f: f.write("x")),
            ("wb", -1, lambda f: f.read()),
            ("wb", 0, lambda f: f.read()),
            ("w", -1, lambda f: f.read()),
            ("rb", 0, lambda f: f.truncate()),
        ]:
            f = opener(path, mode, buffering)  # type: ignore[operator]
            try:
                op(f)
            except Exception as e:
                found.append((type(e), str(e)))
            finally:
                f.close()
        for mode, buffering in [("rb", 0), ("rb", -1), ("r", -1), ("wb", -1)]:
            f = opener(path, mode, buffering)  # type: ignore[operator]
            f.close()
            for op in (
                lambda f: f.read(),
                lambda f: f.write(b"x"),
                lambda f: f.seek(0),
                lambda f: f.fileno(),
            ):
                try:
                    op(f)
                except Exception as e:
                    found.append((type(e), str(e)))
        return found

    assert errors(open_proxy, ours_path) == errors(open, ref_path)


@pytest.mark.parametrize("mode", ["wb", "r+b", "ab", "xb"])
def test_writable_files_have_no_fd_to_write_through(capio: InProcess, mode: str) -> None:
    # Writes through an OS fd would bypass CAPIO and be lost; refusing makes shutil fall back.
    path = capio.path("nofd.bin")
    if mode[0] == "r":
        write_through(capio, "nofd.bin", b"")
    with open_proxy(path, mode) as f:
        with pytest.raises(io.UnsupportedOperation):
            f.fileno()


@pytest.mark.parametrize("mode", ["w", "a", "x", "w+"])
def test_a_new_text_file_has_an_fd_that_writes_into_capio(capio: InProcess, mode: str) -> None:
    # Written directly, its fd is its memory object's: what goes through it is the file's.
    path = capio.path(f"fd-{mode}.txt")
    with open_proxy(path, mode) as f:
        f.write("text ")
        f.flush()
        os.write(f.fileno(), b"and fd")
        assert os.fstat(f.fileno()).st_size == 11
    assert not os.path.exists(path)
    with open_proxy(path) as f:
        assert f.read() == "text and fd"


def test_opener_falls_back_to_the_os(capio: InProcess) -> None:
    # An opener returns an OS fd, which CAPIO cannot serve: the call goes to the built-in open.
    path = capio.path("opened-by-opener.txt")
    with open_proxy(path, "w", opener=lambda p, flags: os.open(p, flags, 0o666)) as f:
        assert not isinstance(f.buffer.raw, CapioFileIO)
        f.write("os")
    assert Path(path).read_text() == "os"


def test_int_fds_go_to_the_builtin(capio: InProcess, tmp_path: Path) -> None:
    fd = os.open(tmp_path / "fd.txt", os.O_RDWR | os.O_CREAT)
    with open_proxy(fd, "w") as f:
        assert isinstance(f.buffer.raw, io.FileIO)
        f.write("fd")
    assert (tmp_path / "fd.txt").read_text() == "fd"


def test_capio_file_io_directly(capio: InProcess) -> None:
    path = capio.path("direct.bin")
    with CapioFileIO(path, "w") as raw:
        assert raw.mode == "wb" and raw.name == path and raw.closefd
        assert raw.write(b"direct") == 6
        assert "CapioFileIO" in repr(raw)
    assert "closed" in repr(raw)
    with CapioFileIO(path) as raw:
        assert raw.read() == b"direct"
    with pytest.raises(ValueError, match="Must have exactly one"):
        CapioFileIO(path, "")


def test_unclosed_file_warns_like_the_builtin(capio: InProcess) -> None:
    f = open_proxy(capio.path("unclosed.bin"), "wb", buffering=0)
    with pytest.warns(ResourceWarning, match="unclosed file"):
        del f


def test_internals_wrappers(capio: InProcess) -> None:
    flags = pycapio.FILE_MODES
    path = capio.path("internals.txt")
    fd = pycapio.pycapio_open(path, flags["O_WRONLY"] | flags["O_CREAT"] | flags["O_TRUNC"])
    with pycapio.PyCapioTextIOWrapper(fd) as f:
        assert f.closed is False
        assert f.write("héllo\n") == 6
        f.writelines(iter(["a\n", "b\n"]))
    assert f.closed is True
    fd = pycapio.pycapio_open(path, flags["O_RDONLY"])
    with pycapio.PyCapioTextIOWrapper(fd, chunk_size=2) as f:
        assert f.readline() == "héllo\n"
        assert f.readline(1) == "a"
        assert f.read() == "\nb\n"
        f.seek(0)
        assert f.readlines() == ["héllo\n", "a\n", "b\n"]
        f.seek(0)
        assert list(f) == ["héllo\n", "a\n", "b\n"]
    fd = pycapio.pycapio_open(path, flags["O_RDONLY"])
    with pycapio.PyCapioBinaryIOWrapper(fd) as b:
        assert b.read(2) == b"h\xc3"
        assert b.readline() == b"\xa9llo\n"
        assert b.tell() == 7
        assert b.read() == b"a\nb\n"
    with pytest.raises(ValueError):
        b.read()
    fd = pycapio.pycapio_open(path, flags["O_WRONLY"] | flags["O_APPEND"])
    with pycapio.PyCapioBinaryIOWrapper(fd, chunk_size=4) as b:
        b.writelines([b"c\n", memoryview(b"d\n")])
    with open_proxy(path, "rb") as f:
        assert f.read().endswith(b"b\nc\nd\n")
    with pytest.raises(OSError):
        pycapio.PyCapioBinaryIOWrapper(12345678)


def test_pycapio_open_errors_are_oserrors(capio: InProcess, tmp_path: Path) -> None:
    flags = pycapio.FILE_MODES
    path = write_through(capio, "exists.bin", b"")
    with pytest.raises(FileExistsError):
        pycapio.pycapio_open(path, flags["O_WRONLY"] | flags["O_CREAT"] | flags["O_EXCL"])
    with pytest.raises(pycapio.PyCAPIOException):
        pycapio.pycapio_open(str(tmp_path / "outside.bin"), flags["O_RDONLY"])
    assert pycapio.pycapio_get_capio_dir() == Path(os.path.realpath(capio.capio_dir))


def test_threads_do_capio_io(capio: InProcess) -> None:
    import threading

    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            data = bytes([i]) * (256 * 1024 + i)
            path = capio.path(f"thread-{i}.bin")
            for _ in range(5):
                with open_proxy(path, "wb") as f:
                    f.write(data)
                with open_proxy(path, "rb") as f:
                    assert f.read() == data
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_a_text_file_written_directly_reads_back_in_its_own_process_while_open(
    capio: InProcess, tmp_path: Path
) -> None:
    # Its length is its memory object's: what was flushed is there for its producer at once; and
    # other writers of it write through descriptions of their own, at the OS's offsets: each
    # step gives what it gives on a plain file.
    def steps(opener: Any, path: str) -> list[object]:
        seen: list[object] = []
        f = opener(path, "w")
        f.write("first\n")
        f.flush()
        with opener(path) as r:
            seen.append(r.read())
        with opener(path, "ab") as a:
            seen.append(a.tell())
            a.write(b"second\n")
            seen.append(a.tell())
        with opener(path, "r+b") as rw:
            seen.append(rw.seek(0, os.SEEK_END))
            rw.write(b"third\n")
            rw.seek(0)
            seen.append(rw.read())
        f.write("fourth\n")  # at its own position, over "second"
        f.close()
        with opener(path) as r:
            seen.append(r.read())
        return seen

    ours = steps(open_proxy, capio.path("own.txt"))
    assert ours == steps(open, str(tmp_path / "own.txt"))
    assert ours[0] == "first\n" and ours[-1] == "first\nfourth\nthird\n"


def test_a_text_file_in_a_reference_cycle_is_closed_and_committed(capio: InProcess) -> None:
    import gc

    path = capio.path("cycle.txt")
    f = open_proxy(path, "w")
    fd = f.fileno()
    f.write("kept")
    f.flush()  # what a cycle's finalisers flush depends on their order, for a built-in file too
    f.cycle = f  # type: ignore[attr-defined]  # only the collector can free it
    with pytest.warns(ResourceWarning):
        del f
        gc.collect()
    with pytest.raises(OSError) as e:
        os.fstat(fd)  # the collector's close closed it, as it closes a built-in file
    assert e.value.errno == errno.EBADF
    with open_proxy(path) as r:
        assert r.read() == "kept"


def test_a_path_like_name_is_a_str_as_the_builtin_gives(capio: InProcess) -> None:
    path = Path(capio.path("named.txt"))
    with open_proxy(path, "w", newline="") as f:
        assert f.name == str(path)
        f.write("n")
    with open_proxy(path, newline="") as f:
        assert f.name == str(path) and f.read() == "n"
