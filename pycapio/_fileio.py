"""File objects over CAPIO fds, built the way CPython's ``open()`` builds them over ``FileIO``."""

from __future__ import annotations

import _io
import errno
import io
import mmap
import operator
import os
import sys
import warnings
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import _pycapio

if TYPE_CHECKING:
    from typing_extensions import Buffer  # collections.abc.Buffer from 3.12 on

__all__ = [
    "CapioFileIO",
    "PyCapioBinaryIOWrapper",
    "PyCapioTextIOWrapper",
    "close_open_files",
    "forget_open_files",
    "open_capio",
    "open_fast",
]

# The buffer size the upper layers use when ``buffering`` is negative. FileIO reports st_blksize
# (4 KiB on tmpfs); every raw call here crosses into the extension, so a larger buffer keeps small
# reads and writes cheap while large ones still bypass the buffer entirely.
_CAPIO_BLKSIZE = 128 * 1024

# What TextIOWrapper does with encoding=None, said explicitly: the proxies warn about the missing
# encoding themselves (-X warn_default_encoding), at the caller's line, as the built-in open does.
DEFAULT_TEXT_ENCODING = "utf-8" if sys.flags.utf8_mode else "locale"
WARN_DEFAULT_ENCODING = bool(sys.flags.warn_default_encoding)


def warn_default_encoding(stacklevel: int) -> None:
    """The built-in open()'s EncodingWarning, ``stacklevel`` frames up from the caller."""
    warnings.warn("'encoding' argument not specified", EncodingWarning, stacklevel=stacklevel + 1)


_KIND_FILE = 1

_BAD_RAW_MODE = "Must have exactly one of create/read/write/append mode and at most one plus"

_RAW_MODE_FLAGS = {
    # (reading, writing, appending, creating, updating) -> os.open flags
    "r": os.O_RDONLY,
    "r+": os.O_RDWR,
    "w": os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
    "w+": os.O_RDWR | os.O_CREAT | os.O_TRUNC,
    "a": os.O_WRONLY | os.O_CREAT | os.O_APPEND,
    "a+": os.O_RDWR | os.O_CREAT | os.O_APPEND,
    "x": os.O_WRONLY | os.O_CREAT | os.O_EXCL,
    "x+": os.O_RDWR | os.O_CREAT | os.O_EXCL,
}


def ends_in_slash(name: object) -> bool:
    """Whether ``name`` (``str``, ``bytes`` or path-like) ends in ``/``. The kernel then looks its
    last component up as a directory, through a final symbolic link; CAPIO's normalised path has
    lost the slash, so the proxies check it themselves."""
    try:
        name = os.fspath(name)  # type: ignore[call-overload]
    except TypeError:
        return False
    if isinstance(name, bytes):
        return name.endswith(b"/")
    return isinstance(name, str) and name.endswith("/")


def check_trailing_slash(name: str | bytes, flags: int) -> None:
    """What the kernel says to open(2) of a CAPIO path ending in ``/``, which CAPIO's own path
    normalisation would drop: with ``O_CREAT`` always ``IsADirectoryError`` (a name ending in a
    slash can only be a directory, and open(2) does not create one); without it, an existing
    file is ``NotADirectoryError``. Other cases get the same answer either way."""
    if not (name.endswith(b"/") if isinstance(name, bytes) else name.endswith("/")):
        return
    try:
        target = _pycapio._capio_path(name)
    except (TypeError, ValueError):
        return
    if target is None:
        return
    if flags & os.O_CREAT:
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), name)
    try:
        kind: int | None = _pycapio._stat(target)[0]
    except (OSError, ValueError):
        kind = None
    if kind == _KIND_FILE:
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), name)


def raw_mode_key(mode: str) -> str:
    """FileIO's mode (one of ``rwax``, optional ``+``, optional ``b``, any order) as a key of
    _RAW_MODE_FLAGS (``r``, ``w+``, ...); ValueError with FileIO's messages if invalid."""
    kind = ""
    updating = False
    for ch in mode:
        if ch in "rwax":
            if kind:
                raise ValueError(_BAD_RAW_MODE)
            kind = ch
        elif ch == "+":
            if updating:
                raise ValueError(_BAD_RAW_MODE)
            updating = True
        elif ch != "b":
            raise ValueError(f"invalid mode: {mode}")
    if not kind:
        raise ValueError(_BAD_RAW_MODE)
    return kind + ("+" if updating else "")


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

_open_files: weakref.WeakSet[Any] = weakref.WeakSet()


def _track(f: Any) -> Any:
    _open_files.add(f)
    return f


def _layer(f: Any) -> int:
    return 0 if isinstance(f, io.TextIOBase) else 1 if isinstance(f, io.BufferedIOBase) else 2


def close_open_files() -> None:
    """Flush and close every CAPIO file object still open: text and buffered layers first, so
    their data reaches the raw files, then raw files opened on their own."""
    files = sorted(_open_files, key=_layer)
    _open_files.clear()
    for f in files:
        try:
            f.close()
        except Exception as exc:  # report each, keep closing the others
            print(f"pycapio: could not flush and close {f!r} at exit: {exc!r}", file=sys.stderr)


def forget_open_files() -> None:
    """In a forked child: the files still open are the parent's; the child must not close them."""
    _open_files.clear()


class _NotServed(OSError):
    """The path is something on disk CAPIO does not serve (a FIFO, a device): the OS opened it,
    and ``fd`` is an ordinary fd for a built-in file."""

    def __init__(self, fd: int) -> None:
        super().__init__(errno.EOPNOTSUPP, "not served by CAPIO")
        self.fd = fd


def _os_file(fd: int, name: str, mode: str, encoding: str | None) -> Any:
    """The built-in file object over an OS fd the client opened for a path CAPIO does not
    serve, named as ``open(name)`` names it."""
    f: Any = _io.open(fd, mode, encoding=encoding)
    raw: Any = f if isinstance(f, io.RawIOBase) else getattr(f, "buffer", f).raw
    raw.name = name
    return f


class CapioFileIO(io.RawIOBase):
    """A raw binary file over a CAPIO fd: the CAPIO counterpart of :class:`io.FileIO`.

    ``file`` is either an fd returned by :func:`pycapio_open` or a path inside the CAPIO
    directory; ``mode`` is parsed as ``FileIO`` parses it (``r``, ``w``, ``a``, ``x``, optional
    ``+``, optional ``b``). Reads wait as the file's CAPIO-CL rule says (by default until the
    producer commits it). ``fileno()`` gives the OS fd of a file open only for reading (``fstat``,
    ``mmap``, ``sendfile`` from it work) and raises ``io.UnsupportedOperation`` for a file open
    for writing, whose writes must go through :meth:`write`.
    """

    _blksize = _CAPIO_BLKSIZE
    # Set by IOBase's finaliser just before it calls close() on a file still open: close() then
    # warns as FileIO's does (a Python ``__del__`` would cost every file object a finaliser call).
    _finalizing = False
    # ``closed`` is a plain slot, not a property: the buffered and text layers read it on every
    # call, and a slot is read in C, while a property runs Python code (text line I/O ~1.6x faster).
    __slots__ = ("closed",)
    closed: bool

    def __init__(
        self, file: int | str | bytes | os.PathLike[Any], mode: str = "r", closefd: bool = True
    ) -> None:
        self._fd = -1
        self.closed = True
        if isinstance(file, float):
            raise TypeError("integer argument expected, got float")
        fd = -1
        if isinstance(file, int):
            fd = file
            if fd < 0:
                raise ValueError("negative file descriptor")
        if not isinstance(mode, str):
            raise TypeError(f"CapioFileIO() argument 'mode' must be str, not {type(mode).__name__}")
        key = raw_mode_key(mode)
        updating = key.endswith("+")
        appending, creating = key[0] == "a", key[0] == "x"
        self._readable = key[0] == "r" or updating
        self._writable = key[0] != "r" or updating
        self._appending = appending
        self._created = creating
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
            check_trailing_slash(name, _RAW_MODE_FLAGS[key])
            fd = _pycapio.pycapio_open(name, _RAW_MODE_FLAGS[key], 0o666)
            if not _pycapio._is_capio_fd(fd):
                raise _NotServed(fd)
        self._fd = fd
        self.closed = False
        if appending:
            # Like FileIO: the position starts at the end, so tell() is truthful before a write.
            _pycapio._seek(fd, 0, os.SEEK_END)
        _open_files.add(self)

    # -- state -----------------------------------------------------------------------------------

    @property
    def closefd(self) -> bool:
        return self._closefd

    @property
    def mode(self) -> str:
        if self._created:
            return "xb+" if self._readable else "xb"
        if self._appending:
            return "ab+" if self._readable else "ab"
        if self._readable:
            return "rb+" if self._writable else "rb"
        return "wb"

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
        fd = self._fd
        if buffer is None:
            if size == 0:
                return 0, b""
            end = _pycapio._wait_readable(fd, offset, size)
            data = _pycapio._read_bytes(fd, max(0, min(size, end - offset)), offset)
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
                _pycapio._wait_readable(fd, offset, size)
                n = 0
                while n < size:
                    got = _pycapio._read(fd, target[n:], offset + n)
                    if got == 0:
                        break
                    n += got
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


def _offset_size(offset: int, size: int, negative_size_ok: bool = False) -> tuple[int, int]:
    offset = operator.index(offset)
    size = operator.index(size)
    if offset < 0 or (size < 0 and not negative_size_ok):
        raise _einval()
    return offset, size


class _BufferedMemFile:
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


def _add_memfile(buffer: io.BufferedIOBase, raw: CapioFileIO) -> None:
    ops = _BufferedMemFile(buffer, raw)
    buffer.pread = ops.pread  # type: ignore[attr-defined]
    buffer.pwrite = ops.pwrite  # type: ignore[attr-defined]
    buffer.view = ops.view  # type: ignore[attr-defined]


def _type_error(arg: str, want: str, value: object) -> TypeError:
    return TypeError(f"open() argument '{arg}' must be {want}, not {type(value).__name__}")


def _check_open_args(
    mode: object, buffering: object, encoding: object, errors: object, newline: object, closefd: object
) -> tuple[str, int, bool]:
    """Type checks of ``open()``'s argument parser, with the built-in's messages."""
    if not isinstance(mode, str):
        raise _type_error("mode", "str", mode)
    for arg, value in (("encoding", encoding), ("errors", errors), ("newline", newline)):
        if value is not None and not isinstance(value, str):
            raise _type_error(arg, "str or None", value)
        if isinstance(value, str) and "\0" in value:
            raise ValueError("embedded null character")
    if "\0" in mode:
        raise ValueError("embedded null character")
    if isinstance(buffering, float):
        raise TypeError("'float' object cannot be interpreted as an integer")
    buffering = operator.index(buffering)  # type: ignore[arg-type]
    if isinstance(closefd, float):
        raise TypeError("'float' object cannot be interpreted as an integer")
    return mode, buffering, bool(operator.index(closefd))  # type: ignore[arg-type]


def open_with_opener(
    file: Any, rawmode: str, closefd: bool, opener: Callable[[Any, int], int]
) -> CapioFileIO | io.FileIO:
    """FileIO's opener protocol: ``opener(file, flags)`` returns the fd. A CAPIO fd (``os.open``
    is CAPIO's while patched) gets a CAPIO raw file, any other fd the built-in ``FileIO``; either
    way ``name`` is ``file``, as with the built-in."""
    if not closefd:
        raise ValueError("Cannot use closefd=False with file name")
    key = rawmode.replace("b", "")
    fd = opener(file, _RAW_MODE_FLAGS[key] | os.O_CLOEXEC)
    if not isinstance(fd, int):
        raise TypeError("expected integer from opener")
    if fd < 0:
        raise ValueError(f"opener returned {fd}")
    raw: CapioFileIO | io.FileIO
    if _pycapio._is_capio_fd(fd):
        raw = CapioFileIO(fd, rawmode, closefd=True)
    else:
        raw = io.FileIO(fd, rawmode, closefd=True)
    raw.name = file
    return raw


def open_capio(
    file: str | bytes | os.PathLike[Any] | int,
    mode: str = "r",
    buffering: int = -1,
    encoding: str | None = None,
    errors: str | None = None,
    newline: str | None = None,
    closefd: bool = True,
    opener: Callable[[Any, int], int] | None = None,
) -> Any:
    """``open()`` for a path inside the CAPIO directory, or for an open CAPIO fd.

    Mirrors CPython 3.11's ``_io.open`` step by step — the same validation order and messages,
    the raw file wrapped in ``BufferedReader/Writer/Random`` and ``TextIOWrapper`` — so the
    result is indistinguishable from a built-in file except for where its bytes live. Binary
    buffered files also carry ``pread``/``pwrite``/``view`` (see :class:`CapioFileIO`).
    """
    mode, buffering, closefd = _check_open_args(mode, buffering, encoding, errors, newline, closefd)
    modes = set(mode)
    for i, ch in enumerate(mode):
        if ch not in "xrwa+tb" or ch in mode[i + 1 :]:
            raise ValueError(f"invalid mode: '{mode}'")
    creating = "x" in modes
    reading = "r" in modes
    writing = "w" in modes
    appending = "a" in modes
    updating = "+" in modes
    text = "t" in modes
    binary = "b" in modes
    if text and binary:
        raise ValueError("can't have text and binary mode at once")
    if creating + reading + writing + appending > 1:
        raise ValueError("must have exactly one of create/read/write/append mode")
    if binary and encoding is not None:
        raise ValueError("binary mode doesn't take an encoding argument")
    if binary and errors is not None:
        raise ValueError("binary mode doesn't take an errors argument")
    if binary and newline is not None:
        raise ValueError("binary mode doesn't take a newline argument")
    if binary and buffering == 1:
        warnings.warn(
            "line buffering (buffering=1) isn't supported in binary mode, "
            "the default buffer size will be used",
            RuntimeWarning,
            stacklevel=3,
        )
    rawmode = ("x" if creating else "") + ("r" if reading else "") + ("w" if writing else "")
    rawmode += ("a" if appending else "") + ("+" if updating else "")
    raw: CapioFileIO | io.FileIO
    if opener is None or isinstance(file, int):
        try:
            raw = CapioFileIO(file, rawmode, closefd)
        except _NotServed as exc:
            raw = _io.FileIO(exc.fd, rawmode, closefd=True)
            raw.name = file
    else:
        raw = open_with_opener(file, rawmode, closefd, opener)
    result: Any = raw
    try:
        line_buffering = False
        if buffering == 1 or (buffering < 0 and raw.isatty()):
            buffering = -1
            line_buffering = True
        if buffering < 0:
            buffering = getattr(raw, "_blksize", io.DEFAULT_BUFFER_SIZE)
        if buffering < 0:
            raise ValueError("invalid buffering size")
        if buffering == 0:
            if binary:
                return result
            raise ValueError("can't have unbuffered text I/O")
        buffer: io.BufferedIOBase
        if updating:
            buffer = io.BufferedRandom(raw, buffering)
        elif creating or writing or appending:
            buffer = io.BufferedWriter(raw, buffering)
        else:
            buffer = io.BufferedReader(raw, buffering)
        result = buffer
        if binary:
            if isinstance(raw, CapioFileIO):  # else an opener gave an OS fd: a built-in file
                _add_memfile(buffer, raw)
                _track(result)
            return result
        if encoding is None:
            if WARN_DEFAULT_ENCODING:
                warn_default_encoding(3)  # the caller of open(): open_capio <- open_proxy <- caller
            encoding = DEFAULT_TEXT_ENCODING
        wrapper = io.TextIOWrapper(buffer, encoding, errors, newline, line_buffering)
        result = wrapper
        wrapper.mode = mode  # type: ignore[misc]
        return _track(result) if isinstance(raw, CapioFileIO) else result
    except BaseException:
        result.close()
        raise


# open()'s common calls — a str path, one of these modes, default buffering, closefd, no opener —
# take a short way to the same file objects. mode -> (os.open flags, raw readable, buffered class).
_FAST_MODES: dict[str, tuple[int, bool, type[io.BufferedReader] | type[io.BufferedWriter]]] = {
    "rb": (os.O_RDONLY, True, io.BufferedReader),
    "r": (os.O_RDONLY, True, io.BufferedReader),
    "wb": (_RAW_MODE_FLAGS["w"], False, io.BufferedWriter),
    "w": (_RAW_MODE_FLAGS["w"], False, io.BufferedWriter),
}


def open_fast(file: str, mode: str, encoding: str | None) -> Any:
    """``open(file, mode, encoding=encoding)`` for a mode in ``_FAST_MODES`` (other arguments at
    their defaults; ``encoding`` None or a str without NUL in text mode): resolves and opens in one
    native call, then builds what :func:`open_capio` builds. None (nothing opened) when the path
    is not CAPIO's, or not one the OS would accept: the OS then gives its own error."""
    flags, reading, buffered = _FAST_MODES[mode]
    try:
        fd = _pycapio._open_path(file, flags)
    except (ValueError, TypeError):
        fd = None
    if fd is None:
        return None
    if not _pycapio._is_capio_fd(fd):
        return _os_file(fd, file, mode, encoding)
    raw = CapioFileIO.__new__(CapioFileIO)
    raw._fd = fd
    raw._readable = reading
    raw._writable = not reading
    raw._appending = raw._created = False
    raw._closefd = True
    raw.name = file
    raw.closed = False
    _open_files.add(raw)
    result: Any = raw
    try:
        buffer = buffered(raw, _CAPIO_BLKSIZE)
        result = buffer
        if "b" in mode:
            _add_memfile(buffer, raw)
            _open_files.add(buffer)
            return buffer
        if encoding is None:
            if WARN_DEFAULT_ENCODING:
                warn_default_encoding(3)  # the caller of open(): open_fast <- open_proxy <- caller
            encoding = DEFAULT_TEXT_ENCODING
        wrapper = io.TextIOWrapper(buffer, encoding, None, None, False)
        result = wrapper
        wrapper.mode = mode  # type: ignore[misc]
        _open_files.add(wrapper)
        return wrapper
    except BaseException:
        result.close()
        raise


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
        self._memfile = _BufferedMemFile(self, raw)
        _open_files.add(self)

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
        _open_files.add(self)

    def __del__(self) -> None:
        _finalize_reporting(self, self.buffer)
