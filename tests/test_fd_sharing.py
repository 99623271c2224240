"""Each open of a CAPIO file for reading has its own, read-only file description, as with the
kernel: reading through one file's ``fileno()`` never moves another's offset, and a reader's fd
cannot write into the producer's data."""

from __future__ import annotations

import fcntl
import gc
import os
import subprocess
import warnings

from pycapio import _pycapio, open_proxy

from conftest import InProcess

DATA = b"0123456789" * 100


def test_readers_have_private_read_only_descriptions(capio: InProcess) -> None:
    path = capio.path("shared.bin")
    with open_proxy(path, "wb") as f:
        f.write(DATA)
    with open_proxy(path, "rb") as f1, open_proxy(path, "rb") as f2:
        assert fcntl.fcntl(f1.fileno(), fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY
        # Unpatched os.read moves only f1's kernel offset...
        assert os.read(f1.fileno(), 36) == DATA[:36]
        # ...so a child reading f2's fd from its own offset still sees the whole file.
        out = subprocess.run(["cat"], stdin=f2, capture_output=True, check=True).stdout
        assert out == DATA
        try:
            os.write(f1.fileno(), b"X")
        except OSError as exc:
            assert exc.errno == 9  # EBADF: not open for writing
        else:
            raise AssertionError("a reader's fd could write into the file")
    with open_proxy(path, "rb") as f:
        assert f.read() == DATA


def test_an_unbuffered_file_dropped_under_warnings_as_errors_is_still_closed(capio: InProcess) -> None:
    path = capio.path("dropped.bin")
    with open_proxy(path, "wb") as f:
        f.write(DATA)
    f = open_proxy(path, "rb", buffering=0)
    fd = f.fileno()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        del f
        gc.collect()
    assert not _pycapio._is_capio_fd(fd)
