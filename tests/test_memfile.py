"""The MemFile interface of binary CAPIO files: pread/pwrite, readinto any buffer, zero-copy views.

Raw CAPIO files (``buffering=0``) have them as methods, buffered binary files from ``open()`` as
attributes (they stay the stdlib's BufferedReader/Writer/Random), PyCapioBinaryIOWrapper as
methods. In-process against a real server, except the cross-process wait at the end.
"""

from __future__ import annotations

import array
import errno
import io
import mmap
import os

import numpy as np
import pytest

import pycapio
from pycapio import CapioFileIO, open_proxy

from conftest import InProcess, Workflow, wait_until

DATA = bytes(range(256)) * 64  # 16 KiB


def make(capio: InProcess, name: str, data: bytes = DATA) -> str:
    path = capio.path(name)
    with open_proxy(path, "wb") as f:
        f.write(data)
    return path


@pytest.mark.parametrize("buffering", [0, -1, 100])
def test_pread_and_pwrite(capio: InProcess, buffering: int) -> None:
    path = make(capio, "pp.bin")
    with open_proxy(path, "r+b", buffering=buffering) as f:
        if buffering:
            assert type(f) is io.BufferedRandom
        else:
            assert isinstance(f, CapioFileIO)
        f.seek(7)
        assert f.pread(10, 5) == (5, DATA[10:15])
        assert f.pread(len(DATA) - 2, 10) == (2, DATA[-2:])
        assert f.pread(len(DATA) + 5, 10) == (0, b"")
        assert f.pread(0, 0) == (0, b"")
        buf = bytearray(8)
        n, out = f.pread(100, 8, buf)
        assert (n, out) == (8, buf) and out is buf and bytes(buf) == DATA[100:108]
        assert f.pwrite(3, b"XYZ") == 3
        assert f.pwrite(len(DATA) + 2, memoryview(b"end")) == 3  # past the end: a zero gap
        assert f.tell() == 7  # neither call moved the position
        assert f.read(4) == DATA[7:11]
    with open_proxy(path, "rb") as f:
        data = f.read()
    assert data == DATA[:3] + b"XYZ" + DATA[6:] + b"\0\0end"


def test_any_buffer_and_readinto(capio: InProcess) -> None:
    path = make(capio, "buffers.bin")
    with open_proxy(path, "rb") as f:
        arr = array.array("I", bytes(16))
        assert f.pread(4, 16, arr) == (16, arr) and arr.tobytes() == DATA[4:20]
        nd = np.zeros(8, dtype=np.uint8)
        assert f.pread(0, 8, nd)[0] == 8 and bytes(nd) == DATA[:8]
        big = bytearray(32)
        with memoryview(big) as view:
            assert f.pread(0, 4, view[10:20])[0] == 4
        assert big[10:14] == DATA[:4] and big[14:] == bytes(18)
        with mmap.mmap(-1, 64) as anon:
            assert f.pread(1, 64, anon)[0] == 64 and anon[:] == DATA[1:65]
        # readinto: any writable buffer, on every layer.
        floats = np.zeros(4, dtype=np.float64)
        assert f.readinto(floats) == 32 and floats.tobytes() == DATA[:32]
        assert f.readinto(memoryview(bytearray(3))) == 3
    with open_proxy(path, "rb", buffering=0) as raw:
        target = array.array("b", bytes(10))
        assert raw.readinto(target) == 10 and target.tobytes() == DATA[:10]


def test_memfile_errors(capio: InProcess, tmp_path: object) -> None:
    path = make(capio, "errors.bin")
    for buffering in (0, -1):
        with open_proxy(path, "rb", buffering=buffering) as f:
            with pytest.raises(OSError) as info:
                f.pwrite(0, b"x")
            assert isinstance(info.value, io.UnsupportedOperation)
            assert str(info.value) == "File not open for writing"
            with pytest.raises(ValueError, match="too small"):
                f.pread(0, 10, bytearray(9))
            with pytest.raises(TypeError, match="read-write bytes-like object"):
                f.pread(0, 1, b"x")
            for call in (lambda: f.pread(-1, 1), lambda: f.pread(0, -1), lambda: f.view(-1)):
                with pytest.raises(OSError) as info:
                    call()
                assert info.value.errno == errno.EINVAL
        with pytest.raises(ValueError, match="closed file"):
            f.pread(0, 1)
        with open_proxy(path, "ab", buffering=buffering) as f:
            with pytest.raises(io.UnsupportedOperation, match="File not open for reading"):
                f.pread(0, 1)
            with pytest.raises(io.UnsupportedOperation, match="File not open for reading"):
                f.view()


def test_buffered_writes_are_flushed_and_read_ahead_dropped(capio: InProcess) -> None:
    path = make(capio, "order.bin", b"0123456789")
    with open_proxy(path, "r+b") as f:
        assert f.read(1) == b"0"  # the buffer now holds the whole file
        f.pwrite(1, b"A")
        assert f.read(1) == b"A"  # not the stale read-ahead
        f.seek(0, os.SEEK_END)
        f.write(b"tail")  # still in the buffer
        assert f.pread(10, 4) == (4, b"tail")
        f.pwrite(0, b"Z")
    with open_proxy(path, "wb") as w:
        w.write(b"abc")
        w.pwrite(0, b"X")  # after the buffered "abc", as the calls were made
    with open_proxy(path, "rb") as f:
        assert f.read() == b"Xbc"


def test_view_is_zero_copy(capio: InProcess) -> None:
    path = make(capio, "view.bin")
    with open_proxy(path, "r+b") as f:
        whole = f.view()
        assert whole.readonly and whole.nbytes == len(DATA) and whole == DATA
        part = f.view(5000, 100)  # not page-aligned
        assert part.tobytes() == DATA[5000:5100]
        assert f.view(len(DATA) - 10, 1000).tobytes() == DATA[-10:]
        assert f.view(len(DATA) + 10).nbytes == 0
        with pytest.raises(TypeError):
            whole[0] = 1  # type: ignore[index]
        arr = np.frombuffer(whole, dtype=np.uint8)
        assert not arr.flags.writeable and not arr.flags.owndata
        # The view maps the file's memory: a later write shows through, nothing was copied.
        f.pwrite(0, b"\xff\xfe")
        assert arr[0] == 0xFF and part[0] == DATA[5000] and whole[1] == 0xFE
    assert whole[:2] == b"\xff\xfe"  # still valid after close
    with open_proxy(path, "rb", buffering=0) as raw:
        assert np.frombuffer(raw.view(256, 256), dtype=np.uint8).tolist() == list(range(256))


def test_numpy_arrays_straight_from_a_view(capio: InProcess) -> None:
    values = np.arange(100_000, dtype=np.float64)
    path = make(capio, "floats.f64", values.tobytes())
    with open_proxy(path, "rb") as f:
        loaded = np.frombuffer(f.view(), dtype=np.float64)
    assert np.array_equal(loaded, values)
    assert loaded.base is not None  # backed by the mapping, not a private copy


def test_pycapio_binary_wrapper_has_memfile(capio: InProcess) -> None:
    flags = pycapio.FILE_MODES
    fd = pycapio.pycapio_open(capio.path("wrapped.bin"), flags["O_RDWR"] | flags["O_CREAT"])
    with pycapio.PyCapioBinaryIOWrapper(fd) as f:
        f.write(b"hello world")
        assert f.pread(6, 5) == (5, b"world")
        assert f.pwrite(0, b"J") == 1
        assert f.view().tobytes() == b"Jello world"


def test_a_view_waits_for_the_commit(workflow: Workflow) -> None:
    workflow.start_peer()  # attached: a consumer started first waits for the producer
    consumer = workflow.start_step(
        """
        import sys
        import numpy as np
        path, marker = sys.argv[1], sys.argv[2]
        with open(marker, "w"):
            pass
        with open(path, "rb") as f:
            values = np.frombuffer(f.view(), dtype=np.int64)
        print(len(values), int(values.sum()))
        """,
        "viewer",
        str(workflow.capio_dir / "ints.i64"),
        str(workflow.marker("viewer-started")),
    )
    assert wait_until(lambda: workflow.marker("viewer-started").exists(), 30)
    producer = workflow.run_step(
        """
        import sys, time
        import numpy as np
        with open(sys.argv[1], "wb") as f:
            for block in range(10):
                f.write(np.arange(block * 1000, (block + 1) * 1000, dtype=np.int64).tobytes())
                f.flush()
                time.sleep(0.02)
        """,
        "producer",
        str(workflow.capio_dir / "ints.i64"),
    )
    producer.check()
    result = consumer.wait(60).check()
    assert result.stdout.split() == ["10000", str(sum(range(10000)))]


def test_read_primitives(capio: InProcess) -> None:
    from pycapio import _pycapio

    path = make(capio, "prims.bin")
    with open_proxy(path, "rb", buffering=0) as f:
        fd = f.fileno()
        assert _pycapio._read_bytes(fd, 10, 100) == DATA[100:110]
        assert f.tell() == 0  # an offset leaves the position alone
        assert _pycapio._read_bytes(fd, 0) == b""
        assert _pycapio._read_bytes(fd, 5) == DATA[:5] and f.tell() == 5
        assert _pycapio._read_bytes(fd) == DATA[5:] and f.tell() == len(DATA)
        assert _pycapio._read_bytes(fd) == b""
        assert _pycapio._read_bytes(fd, -1, len(DATA) + 100) == b""
        assert _pycapio._wait_readable(fd, 0, 10) >= 10
        assert _pycapio._wait_readable(fd, 0) == len(DATA)
    with pytest.raises(OSError) as info:
        _pycapio._read_bytes(fd)
    assert info.value.errno == errno.EBADF
    with open_proxy(path, "ab", buffering=0) as w:
        with pytest.raises(OSError) as info:
            _pycapio._read_bytes(w._fd)
        assert info.value.errno == errno.EBADF
