"""The raw file over a CAPIO fd: ``CapioFileIO``, the CAPIO counterpart of ``io.FileIO``.

Also the one parser of mode strings, and the registry of CAPIO files still open at exit."""

from __future__ import annotations

import errno
import io
import mmap
import operator
import os
import sys
import warnings
import weakref
from typing import TYPE_CHECKING, Any, NamedTuple

from . import _pycapio
from ._route import check_trailing_slash, ends_in_slash

if TYPE_CHECKING:
    from collections.abc import Callable

    from typing_extensions import Buffer  # collections.abc.Buffer from 3.12 on

__all__ = [
    "BLKSIZE",
    "BufferedMemFile",
    "CapioFileIO",
    "Mode",
    "NotServed",
    "attach_memfile",
    "close_open_files",
    "forget_open_files",
    "open_by_name",
    "open_files",
    "open_named",
    "parse_mode",
    "track",
]

# The buffer size the upper layers use when ``buffering`` is negative. FileIO reports st_blksize
# (4 KiB on tmpfs); every raw call here crosses into the extension, so a larger buffer keeps small
# reads and writes cheap while large ones still bypass the buffer entirely.
BLKSIZE = 128 * 1024

BAD_RAW_MODE = "Must have exactly one of create/read/write/append mode and at most one plus"

_KIND_FLAGS = {"r": os.O_RDONLY, "w": os.O_CREAT | os.O_TRUNC, "a": os.O_CREAT | os.O_APPEND}
_KIND_FLAGS["x"] = os.O_CREAT | os.O_EXCL


class Mode(NamedTuple):
    """One mode string, parsed once for both of its readers: ``open()`` and ``FileIO``. The two
    validate differently (``open`` rejects any unknown or repeated character first, ``FileIO``
    reads left to right), so each error is kept, in its reader's words. Everything a file needs
    of its mode is computed here, once per distinct string."""

    open_error: str | None  # what open() says, None if open() accepts the mode
    raw_error: str | None  # what FileIO says of it as a raw mode, None if FileIO accepts it
    kind: str  # "r", "w", "a", "x", or "" when there is not exactly one
    updating: bool
    text: bool
    binary: bool
    readable: bool
    writable: bool
    flags: int  # os.open flags of the raw file (0 without a kind)
    rawmode: str  # what open() hands to the raw file: "r", "w+", ...
    raw_name: str  # FileIO.mode: "rb", "rb+", "wb", "ab+", ...
    buffered: Callable[[Any, int], Any]  # the class of open()'s buffer: BufferedReader, ...Writer, ...Random


def _parse(mode: str) -> Mode:
    kinds = [ch for ch in mode if ch in "rwax"]
    updating, text, binary = "+" in mode, "t" in mode, "b" in mode
    open_error = None
    if any(ch not in "xrwa+tb" or ch in mode[i + 1 :] for i, ch in enumerate(mode)):
        open_error = f"invalid mode: '{mode}'"
    elif text and binary:
        open_error = "can't have text and binary mode at once"
    elif len(kinds) > 1:
        open_error = "must have exactly one of create/read/write/append mode"
    raw_error = None
    seen_kind = seen_plus = False
    for ch in mode:  # FileIO's reading: left to right, the first fault wins
        if ch in "rwax":
            if seen_kind:
                raw_error = BAD_RAW_MODE
                break
            seen_kind = True
        elif ch == "+":
            if seen_plus:
                raw_error = BAD_RAW_MODE
                break
            seen_plus = True
        elif ch != "b":
            raw_error = f"invalid mode: {mode}"
            break
    else:
        if not seen_kind:
            raw_error = BAD_RAW_MODE
    kind = kinds[0] if len(kinds) == 1 else ""
    readable = kind == "r" or updating
    writable = kind != "r" or updating
    flags = 0
    if kind:
        access = os.O_RDWR if updating else os.O_RDONLY if kind == "r" else os.O_WRONLY
        flags = access | _KIND_FLAGS[kind]
    if kind in ("r", "w") and updating:
        raw_name = "rb+"
    elif kind == "r":
        raw_name = "rb"
    else:
        raw_name = kind + ("b+" if updating else "b")
    rawmode = kind + ("+" if updating else "")
    buffered = io.BufferedRandom if updating else io.BufferedReader if kind == "r" else io.BufferedWriter
    return Mode(
        open_error,
        raw_error,
        kind,
        updating,
        text,
        binary,
        readable,
        writable,
        flags,
        rawmode,
        raw_name,
        buffered,
    )


_MODES: dict[str, Mode] = {}


def parse_mode(mode: str) -> Mode:
    """The parsed ``mode``: each distinct string is parsed once (the cache stays small: a program
    uses a handful of modes, and odd ones beyond the bound are parsed each time)."""
    m = _MODES.get(mode)
    if m is None:
        m = _parse(mode)
        if len(_MODES) < 64:
            _MODES[mode] = m
    return m


def _unsupported(what: str) -> io.UnsupportedOperation:
    return io.UnsupportedOperation(f"File not open for {what}")


def _einval() -> OSError:
    return OSError(errno.EINVAL, os.strerror(errno.EINVAL))


# -- files still open at exit ---------------------------------------------------------------------
#
# A CAPIO file's bytes reach CAPIO only through write(): data still in a buffered or text layer
# when the process detaches (atexit) would be lost, where the interpreter would have flushed a
# built-in file on its way out. Every CAPIO file object is tracked (weakly) so that exit can flush
# and close the ones the program left open, before pycapio_teardown commits them.

# Weak references whose callback drops them from the set: a WeakSet does the same in Python code,
# and every open pays for it (twice: raw file and buffer).
_tracked: set[weakref.ref[Any]] = set()


def track(f: Any) -> Any:
    _tracked.add(weakref.ref(f, _tracked.discard))
    return f


def open_files() -> list[Any]:
    """The CAPIO file objects not yet collected (closed ones included)."""
    return [f for f in (r() for r in list(_tracked)) if f is not None]


def _layer(f: Any) -> int:
    return 0 if isinstance(f, io.TextIOBase) else 1 if isinstance(f, io.BufferedIOBase) else 2


def close_open_files() -> None:
    """Flush and close every CAPIO file object still open: text and buffered layers first, so
    their data reaches the raw files, then raw files opened on their own."""
    files = sorted(open_files(), key=_layer)
    _tracked.clear()
    for f in files:
        try:
            f.close()
        except Exception as exc:  # report each, keep closing the others
            print(f"pycapio: could not flush and close {f!r} at exit: {exc!r}", file=sys.stderr)


def forget_open_files() -> None:
    """In a forked child: the files still open are the parent's; the child must not close them."""
    _tracked.clear()


class NotServed(OSError):
    """The path is something on disk CAPIO does not serve (a FIFO, a device): the OS opened it,
    and ``fd`` is an ordinary fd for a built-in file."""

    def __init__(self, fd: int) -> None:
        super().__init__(errno.EOPNOTSUPP, "not served by CAPIO")
        self.fd = fd


class CapioFileIO(io.RawIOBase):
    """A raw binary file over a CAPIO fd: the CAPIO counterpart of :class:`io.FileIO`.

    ``file`` is either an fd returned by :func:`pycapio_open` or a path inside the CAPIO
    directory; ``mode`` is parsed as ``FileIO`` parses it (``r``, ``w``, ``a``, ``x``, optional
    ``+``, optional ``b``). Reads wait as the file's CAPIO-CL rule says (by default until the
    producer commits it). ``fileno()`` gives the OS fd of a file open only for reading (``fstat``,
    ``mmap``, ``sendfile`` from it work) and raises ``io.UnsupportedOperation`` for a file open
    for writing, whose writes must go through :meth:`write`.
    """

    _blksize = BLKSIZE
    # Set by IOBase's finaliser just before it calls close() on a file still open: close() then
    # warns as FileIO's does (a Python ``__del__`` would cost every file object a finaliser call).
    _finalizing = False
    # ``closed`` is a plain slot, not a property: the buffered and text layers read it on every
    # call, and a slot is read in C, while a property runs Python code (text line I/O ~1.6x faster).
    __slots__ = ("_closefd", "_fd", "_mode", "_readable", "_writable", "closed")
    closed: bool

    def __init__(
        self, file: int | str | bytes | os.PathLike[Any], mode: str = "r", closefd: bool = True
    ) -> None:
        self._fd = -1
        self.closed = True
        fd = -1
        if isinstance(file, int):
            fd = file
            if fd < 0:
                raise ValueError("negative file descriptor")
        elif isinstance(file, float):
            raise TypeError("integer argument expected, got float")
        m = _MODES.get(mode) if type(mode) is str else None
        if m is None:
            if not isinstance(mode, str):
                raise TypeError(f"CapioFileIO() argument 'mode' must be str, not {type(mode).__name__}")
            m = parse_mode(mode)
        if m.raw_error is not None:
            raise ValueError(m.raw_error)
        self._mode = m
        self._readable = m.readable
        self._writable = m.writable
        if fd >= 0:
            if not _pycapio._is_capio_fd(fd):
                raise OSError(9, "Bad file descriptor: not an open CAPIO fd")
            self._closefd = bool(closefd)
            self.name: Any = fd
        else:
            if not closefd:
                raise ValueError("Cannot use closefd=False with file name")
            name = os.fspath(file)  # type: ignore[arg-type]  # not an int here
            self._closefd = True
            self.name = name
            try:
                opened = open_named(name, m.flags)
            except NotServed as exc:  # a FIFO cannot be a CAPIO file: refused, without a leak
                os.close(exc.fd)
                raise
            # Not CAPIO's: the seed API's error (PyCAPIOException, not inside the CAPIO directory).
            fd = _pycapio.pycapio_open(name, m.flags) if opened is None else opened
        self._fd = fd
        self.closed = False
        if m.kind == "a":
            # Like FileIO: the position starts at the end, so tell() is truthful before a write.
            _pycapio._seek(fd, 0, os.SEEK_END)
        _tracked.add(weakref.ref(self, _tracked.discard))

    # -- state -----------------------------------------------------------------------------------

    @property
    def closefd(self) -> bool:
        return self._closefd

    @property
    def mode(self) -> str:
        return self._mode.raw_name

    def _check_closed(self) -> None:
        if self._fd < 0:
            raise ValueError("I/O operation on closed file")

    def _check_readable(self) -> None:
        self._check_closed()
        if not self._readable:
            raise _unsupported("reading")

    def _check_writable(self) -> None:
        self._check_closed()
        if not self._writable:
            raise _unsupported("writing")

    def readable(self) -> bool:
        self._check_closed()
        return self._readable

    def writable(self) -> bool:
        self._check_closed()
        return self._writable

    def seekable(self) -> bool:
        self._check_closed()
        return True

    def isatty(self) -> bool:
        self._check_closed()
        return False

    def fileno(self) -> int:
        self._check_closed()
        if self._writable:
            # Bytes written through the OS fd (os.write, os.sendfile — which shutil.copyfile uses —
            # or a C library's fdopen) never reach CAPIO and are silently lost. Refusing makes
            # such callers fall back to write() (shutil does) or fail loudly.
            raise io.UnsupportedOperation(
                "fileno: a CAPIO file open for writing has no OS file descriptor to write through"
            )
        # Whatever reads through it (a mapping, sendfile) is not seen: keep every byte.
        _pycapio._pin(self._fd, 0)
        return self._fd

    def __repr__(self) -> str:
        cls = f"{type(self).__module__}.{type(self).__qualname__}"
        if self._fd < 0:
            return f"<{cls} [closed]>"
        return f"<{cls} name={self.name!r} mode={self.mode!r} closefd={self._closefd!r}>"

    def __getstate__(self) -> None:
        raise TypeError(f"cannot pickle {type(self).__name__!r} object")

    # -- I/O -------------------------------------------------------------------------------------

    def readinto(self, buffer: Buffer) -> int:
        self._check_readable()
        return _pycapio._read(self._fd, buffer)

    def read(self, size: int | None = -1) -> bytes:
        self._check_readable()
        if size is None or size < 0:
            return self.readall()
        return _pycapio._read_bytes(self._fd, operator.index(size))

    def readall(self) -> bytes:
        self._check_readable()
        # One native call: it waits for the end of the file (per the fire rule), then reads the
        # rest straight into a bytes object of the right size.
        return _pycapio._read_bytes(self._fd, -1)

    def write(self, data: Buffer) -> int:
        self._check_writable()
        return _pycapio._write(self._fd, data)

    def seek(self, pos: int, whence: int = os.SEEK_SET) -> int:
        self._check_closed()
        if isinstance(pos, float):
            raise TypeError("an integer is required")
        return _pycapio._seek(self._fd, pos, whence)

    def tell(self) -> int:
        self._check_closed()
        return _pycapio._seek(self._fd, 0, os.SEEK_CUR)

    def truncate(self, size: int | None = None) -> int:
        self._check_writable()
        if size is None:
            size = self.tell()
        size = operator.index(size)
        _pycapio._truncate(self._fd, size)
        return size

    # -- the MemFile interface: positional I/O and zero-copy views --------------------------------

    def pread(self, offset: int, size: int, buffer: Buffer | None = None) -> tuple[int, Any]:
        """Read up to ``size`` bytes at ``offset`` without moving the position; returns
        ``(n, buffer)``. ``buffer`` (any writable bytes-like object, at least ``size`` bytes long)
        receives the data; without it a new ``bytes`` is returned. Waits like ``read`` until the
        ``size`` bytes are there or the file ends; ``n < size`` only at the end of the file.

        Raises ``OSError`` (``io.UnsupportedOperation``) if the file is not readable,
        ``OSError(EINVAL)`` for a negative offset or size and ``ValueError`` if ``buffer`` is too
        small."""
        self._check_readable()
        offset, size = _offset_size(offset, size)
        if buffer is None:
            if size == 0:
                return 0, b""
            # One native call, one wait: for all `size` bytes (fill) or the file's final end.
            data = _pycapio._read_bytes(self._fd, size, offset, True)
            return len(data), data
        with memoryview(buffer) as view:
            if view.readonly:
                raise TypeError(
                    f"pread() argument 'buffer' must be read-write bytes-like object, "
                    f"not {type(buffer).__name__}"
                )
            if view.nbytes < size:
                raise ValueError(f"pread() buffer is too small: {view.nbytes} bytes for size {size}")
            if size == 0:
                return 0, buffer
            with view.cast("B") as flat, flat[:size] as target:
                n = _pycapio._read(self._fd, target, offset, True)
        return n, buffer

    def pwrite(self, offset: int, data: Buffer) -> int:
        """Write all of ``data`` (any bytes-like object) at ``offset`` without moving the position,
        also in append mode; returns the number of bytes written. Raises ``OSError``
        (``io.UnsupportedOperation``) if the file is not writable, ``OSError(EINVAL)`` for a
        negative offset."""
        self._check_writable()
        offset = operator.index(offset)
        if offset < 0:
            raise _einval()
        return _pycapio._write(self._fd, data, offset)

    def view(self, offset: int = 0, size: int = -1) -> memoryview:
        """A read-only, zero-copy ``memoryview`` of ``size`` bytes at ``offset`` (to the end of the
        file when ``size < 0``), shorter if the file ends first.

        The view maps the file's shared memory (or its file on disk) directly: ``numpy.frombuffer``
        and friends use the bytes in place. It waits, like ``read``, until the range is readable —
        with the default fire rule, until the file is committed — and stays valid after the file
        is closed (the mapping holds the memory). A producer must not shrink a file others map.
        """
        self._check_readable()
        offset, size = _offset_size(offset, size, negative_size_ok=True)
        fd = self._fd
        end = _pycapio._wait_readable(fd, offset, size)
        stop = end if size < 0 else min(end, offset + size)
        if stop <= offset:
            return memoryview(b"")
        start = offset - offset % mmap.ALLOCATIONGRANULARITY
        # A mapping must never see bytes released under it.
        _pycapio._pin(fd, start)
        mapping = mmap.mmap(fd, stop - start, prot=mmap.PROT_READ, offset=start)
        with memoryview(mapping) as whole:
            return whole[offset - start : stop - start]

    def close(self) -> None:
        fd = getattr(self, "_fd", -1)
        if fd < 0:
            return
        if self._finalizing and self._closefd:
            # As FileIO does: a warning turned into an error (-W error) must not keep the file
            # open; it is dropped and the close goes on.
            try:
                warnings.warn(f"unclosed file {self!r}", ResourceWarning, stacklevel=2, source=self)
            except Exception:
                pass
        try:
            super().close()
        finally:
            self._fd = -1
            self.closed = True
            if self._closefd:
                _pycapio._close(fd)

    def _dealloc_warn(self, source: object) -> None:
        # Called by the buffered and text layers from their finalisers, as FileIO's is.
        if getattr(self, "_fd", -1) >= 0 and self._closefd:
            warnings.warn(f"unclosed file {source!r}", ResourceWarning, stacklevel=2, source=source)


def open_named(name: str | bytes, flags: int) -> int | None:
    """The CAPIO fd for a raw file opened by name: one native call routes and opens (a name ending
    in "/" is looked up first, as open(2) does). None, with nothing opened, when the name is not
    CAPIO's; :class:`NotServed` for a node the OS opened because CAPIO does not serve it."""
    fd = open_by_name(name, flags, False)
    assert not isinstance(fd, tuple)  # only given to who asks
    return fd


def open_by_name(name: str | bytes, flags: int, plain: bool) -> int | tuple[int, int] | None:
    """``open_named``, where with ``plain`` (for a text file) the OS's own calls may read or
    write the file: :class:`NotServed` also for a committed file they read as CAPIO would, and
    ``(plain fd, CAPIO fd)`` for a new file written directly (see ``_open_path``)."""
    if ends_in_slash(name):
        target = _pycapio._capio_path(name)
        if target is None:
            return None
        check_trailing_slash(name, target, flags)
    fd = _pycapio._open_path(name, flags, 0o666, plain)
    if type(fd) is int and fd < 0:
        raise NotServed(~fd)
    return fd


def _offset_size(offset: int, size: int, negative_size_ok: bool = False) -> tuple[int, int]:
    offset = operator.index(offset)
    size = operator.index(size)
    if offset < 0 or (size < 0 and not negative_size_ok):
        raise _einval()
    return offset, size


class BufferedMemFile:
    """``pread``/``pwrite``/``view`` of a buffered binary CAPIO file, as attributes of the stdlib
    ``BufferedReader/Writer/Random`` that ``open()`` returns (its type stays the built-in's).

    Writes still in the buffer are flushed first, which for a read-write file also drops the
    read-ahead, so the positional call and the buffered stream see the same bytes. Holds the
    buffered object weakly: no reference cycle keeps an unclosed file alive.
    """

    __slots__ = ("_buffer", "_raw")

    def __init__(self, buffer: io.BufferedIOBase, raw: CapioFileIO) -> None:
        self._buffer = weakref.ref(buffer)
        self._raw = raw

    def _sync(self) -> CapioFileIO:
        raw = self._raw
        raw._check_closed()
        buffer = self._buffer()
        if buffer is not None and raw._writable:
            buffer.flush()
        return raw

    def pread(self, offset: int, size: int, buffer: Buffer | None = None) -> tuple[int, Any]:
        return self._sync().pread(offset, size, buffer)

    def pwrite(self, offset: int, data: Buffer) -> int:
        return self._sync().pwrite(offset, data)

    def view(self, offset: int = 0, size: int = -1) -> memoryview:
        return self._sync().view(offset, size)


def attach_memfile(buffer: io.BufferedIOBase, raw: CapioFileIO) -> None:
    """Give ``buffer`` (the stdlib object ``open()`` returns over ``raw``) ``pread``/``pwrite``/
    ``view``, and track it for exit."""
    ops = BufferedMemFile(buffer, raw)
    buffer.pread = ops.pread  # type: ignore[attr-defined]
    buffer.pwrite = ops.pwrite  # type: ignore[attr-defined]
    buffer.view = ops.view  # type: ignore[attr-defined]
    _tracked.add(weakref.ref(buffer, _tracked.discard))
