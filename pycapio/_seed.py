"""The seed API's file objects over an fd from ``pycapio_open``.

``PyCapioBinaryIOWrapper`` and ``PyCapioTextIOWrapper``: their interface is fixed by the PyCAPIO
API."""

from __future__ import annotations

import io
import operator
from typing import TYPE_CHECKING, Any

from ._rawio import BufferedMemFile, CapioFileIO, track

if TYPE_CHECKING:
    from typing_extensions import Buffer  # collections.abc.Buffer from 3.12 on

__all__ = ["PyCapioBinaryIOWrapper", "PyCapioTextIOWrapper"]


def _finalize_reporting(f: io.BufferedIOBase | io.TextIOBase, buffered: Any) -> None:
    """Finaliser of the seed API's wrappers. io's own finaliser drops an exception from close()
    (Python 3.11 and 3.12 outside development mode), so a final flush that fails — bytes the
    program wrote that never reach CAPIO — would go unnoticed. Here it propagates out of
    ``__del__``, which CPython reports through ``sys.unraisablehook``."""
    try:
        if f.closed:
            return
    except Exception:  # never initialised
        return
    try:
        # "unclosed file", as io's finaliser warns (a warning turned error does not stop the close).
        buffered._dealloc_warn(f)
    except Exception:
        pass
    f.close()


def _raw_over_fd(fd: int) -> CapioFileIO:
    if isinstance(fd, bool) or not isinstance(fd, int):
        raise TypeError(f"an integer CAPIO fd is required, not {type(fd).__name__}")
    return CapioFileIO(fd, "r+", closefd=True)


def _chunk(chunk_size: int) -> int:
    chunk_size = operator.index(chunk_size)
    if chunk_size <= 0:
        raise ValueError("chunk_size must be positive")
    return chunk_size


class PyCapioBinaryIOWrapper(io.BufferedRandom):
    """A binary file object over an fd returned by :func:`pycapio_open`; closing it closes the fd.

    A ``BufferedRandom`` over :class:`CapioFileIO` with a ``chunk_size`` buffer: ``read(size=-1)``,
    ``readline(size=-1)``, ``readlines``, iteration, ``write`` (any bytes-like object),
    ``writelines`` (any iterable), ``seek``/``tell``/``truncate``/``flush``/``close``/``fileno``,
    ``closed`` (a property) and the context-manager protocol, all as on a built-in binary file.
    """

    def __init__(self, fd: int, chunk_size: int = 16384) -> None:
        raw = _raw_over_fd(fd)
        super().__init__(raw, _chunk(chunk_size))
        self._memfile = BufferedMemFile(self, raw)
        track(self)

    def __del__(self) -> None:
        _finalize_reporting(self, self)

    def pread(self, offset: int, size: int, buffer: Buffer | None = None) -> tuple[int, Any]:
        """:meth:`CapioFileIO.pread`, after flushing buffered writes."""
        return self._memfile.pread(offset, size, buffer)

    def pwrite(self, offset: int, data: Buffer) -> int:
        """:meth:`CapioFileIO.pwrite`, after flushing buffered writes."""
        return self._memfile.pwrite(offset, data)

    def view(self, offset: int = 0, size: int = -1) -> memoryview:
        """:meth:`CapioFileIO.view`, after flushing buffered writes."""
        return self._memfile.view(offset, size)


class PyCapioTextIOWrapper(io.TextIOWrapper):
    """A UTF-8 text file object over an fd returned by :func:`pycapio_open`; closing it closes the fd.

    A ``TextIOWrapper`` (universal newlines, strict errors) over a ``BufferedRandom`` of
    :class:`CapioFileIO` with a ``chunk_size`` buffer; every method of a built-in text file works.
    """

    def __init__(self, fd: int, chunk_size: int = 4096) -> None:
        raw = _raw_over_fd(fd)
        try:
            buffer = io.BufferedRandom(raw, _chunk(chunk_size))
        except BaseException:
            raw.close()
            raise
        super().__init__(buffer, encoding="utf-8")
        track(self)

    def __del__(self) -> None:
        _finalize_reporting(self, self.buffer)
