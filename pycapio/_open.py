"""``open()`` and ``io.FileIO`` while patched: CPython's ``_io.open`` over ``CapioFileIO``.

One native call (``_open_path``) decides whether a path is CAPIO's and opens it; the fast path
lives in ``open_proxy``'s own frame and owns its eligibility, the slow path takes the rest."""

from __future__ import annotations

import _io
import contextlib
import gc
import io
import operator
import os
import sys
import warnings
import weakref
from collections.abc import Callable
from typing import Any

from . import _pycapio
from ._rawio import (
    _MODES,
    BAD_RAW_MODE,
    BLKSIZE,
    CapioFileIO,
    Mode,
    NotServed,
    attach_memfile,
    open_by_name,
    open_named,
    parse_mode,
    track,
)
from ._route import capio_target, originals

__all__ = ["DEFAULT_TEXT_ENCODING", "new_fileio", "open_proxy", "open_with_opener", "warn_default_encoding"]

# The stdlib's own raw file, as imported (while patched, `_io.FileIO` is a stand-in that routes).
_FileIO = _io.FileIO
_fileio_close = _FileIO.close

# What TextIOWrapper does with encoding=None, said explicitly: the proxies warn about the missing
# encoding themselves (-X warn_default_encoding), at the caller's line, as the built-in open does.
DEFAULT_TEXT_ENCODING = "utf-8" if sys.flags.utf8_mode else "locale"
WARN_DEFAULT_ENCODING = bool(sys.flags.warn_default_encoding)


def warn_default_encoding(stacklevel: int) -> None:
    """The built-in open()'s EncodingWarning, ``stacklevel`` frames up from the caller."""
    warnings.warn("'encoding' argument not specified", EncodingWarning, stacklevel=stacklevel + 1)


def open_proxy(
    file: Any,
    mode: str = "r",
    buffering: int = -1,
    encoding: str | None = None,
    errors: str | None = None,
    newline: str | None = None,
    closefd: bool = True,
    opener: Callable[[str, int], int] | None = None,
) -> Any:
    """``open()`` that serves paths inside the CAPIO directory (and CAPIO fds) from CAPIO.

    Same signature, validation, error messages and file objects as the built-in. An ``opener`` is
    called as the built-in calls it; the fd it returns is served by CAPIO if it is a CAPIO fd
    (``os.open`` of a CAPIO path, while patched) and by the OS otherwise. Anything else — paths
    outside the CAPIO directory, other fds — goes to the original ``open`` with the same arguments.
    """
    # The fast path, in this frame (no call more than the built-in's): a str path not ending in
    # "/", a valid mode, every other argument at its default (encoding: a str in text mode).
    if (
        type(file) is str
        and type(mode) is str
        and type(buffering) is int
        and buffering == -1
        and closefd is True
        and opener is None
        and errors is None
        and newline is None
        and not file.endswith("/")
    ):
        m = _MODES.get(mode) or parse_mode(mode)
        if (
            m.open_error is None
            and m.kind
            and (encoding is None or (type(encoding) is str and not m.binary and "\0" not in encoding))
        ):
            try:
                # A text file read once committed, or written anew, can be read or written by the
                # stdlib's own FileIO through the file's memory object: CPython checks an exact
                # FileIO in C on every line.
                fd = _pycapio._open_path(file, m.flags, 0o666, not m.binary)
            except (ValueError, TypeError):  # embedded NUL: the OS says it in its own words
                fd = None
            if fd is None:
                return _original((file, mode, buffering, encoding, errors, newline, closefd, opener), 3)
            if isinstance(fd, tuple):
                return _plain_writer(file, fd, m, (mode, -1, encoding, None, None), 3)
            raw: CapioFileIO | io.FileIO
            if fd < 0:
                raw = _FileIO(~fd, m.rawmode, closefd=True)
            else:
                raw = CapioFileIO(fd, m.rawmode)
                raw.name = file
                if m.binary:  # the commonest CAPIO open, built here: one Python call fewer
                    try:
                        buffer = m.buffered(raw, BLKSIZE)
                    except BaseException:
                        raw.close()
                        raise
                    attach_memfile(buffer, raw)
                    return buffer
            raw.name = file
            return _layers(raw, m, mode, -1, encoding, None, None, 3)
    return _open_slow(file, mode, buffering, encoding, errors, newline, closefd, opener)


def _plain_writer(
    name: str | bytes,
    fds: tuple[int, int],
    m: Mode,
    layers: tuple[str, int, str | None, str | None, str | None],
    depth: int,
) -> Any:
    """The text file ``open()`` gives over a plain fd of a file written directly (see
    ``_open_path``): the stdlib's own layers (``layers``: open()'s mode, buffering, encoding,
    errors, newline) over its own ``FileIO``, whose ``close`` also closes the CAPIO fd standing
    for it, which commits the file. ``depth``: the stack level of open()'s caller seen from here."""
    plain, closes_with = fds
    try:
        raw = _FileIO(plain, m.rawmode, closefd=True)
    except BaseException:
        os.close(plain)
        _pycapio._abandon(closes_with)
        raise
    raw.name = name
    _commit_on_close(raw, closes_with)
    mode, buffering, encoding, errors, newline = layers
    return track(_layers(raw, m, mode, buffering, encoding, errors, newline, depth + 1))


# Text files written directly that the collector found in reference cycles, as (plain fd, CAPIO
# fd, owner pid): closed once the collection is over, after every finaliser in it (which may
# still flush into the file) has run.
_orphans: list[tuple[int, int, int]] = []


def _close_orphans(phase: str, _info: dict[str, int]) -> None:
    while phase == "stop" and _orphans:
        plain, closes_with, owner = _orphans.pop()
        with contextlib.suppress(OSError):
            os.close(plain)
        if os.getpid() == owner:
            with contextlib.suppress(OSError):
                _pycapio._close(closes_with)


gc.callbacks.append(_close_orphans)


def _commit_on_close(raw: io.FileIO, closes_with: int) -> None:
    """Make ``raw.close()`` close the CAPIO fd ``closes_with`` too, once, after the plain one.

    The buffered layer closes its raw file by looking ``close`` up on it, where the instance's own
    attribute comes before the type's; the type stays the exact ``FileIO`` (what CPython's text
    layer checks), and its finaliser closes through the same look-up. Holds the file weakly."""
    ref = weakref.ref(raw)
    owner = os.getpid()
    pending = [(raw.fileno(), closes_with)]

    def close() -> None:
        f = ref()
        if f is None:
            # Collected in a reference cycle: the collector clears weak references before it
            # finalises, so the file is out of reach; its fd, still open, is closed after the
            # collection (another finaliser of the cycle may still write through it).
            with contextlib.suppress(IndexError):
                plain, fd = pending.pop()
                _orphans.append((plain, fd, owner))
            return
        try:
            _fileio_close(f)
        finally:
            try:
                _, fd = pending.pop()
            except IndexError:  # closed already (by another thread, too)
                fd = -1
            # A forked child's copy is not its own to commit: the parent still writes it.
            if fd >= 0 and os.getpid() == owner:
                _pycapio._close(fd)

    raw.close = close  # type: ignore[method-assign]


def _open_slow(
    file: Any,
    mode: Any,
    buffering: Any,
    encoding: Any,
    errors: Any,
    newline: Any,
    closefd: Any,
    opener: Any,
) -> Any:
    """``open()`` with any arguments: fds, bytes and path-like names, openers, odd modes."""
    args = (file, mode, buffering, encoding, errors, newline, closefd, opener)
    raw: CapioFileIO | io.FileIO
    if isinstance(file, int) and not isinstance(file, bool):
        if not (file >= 0 and _pycapio._is_capio_fd(file)):
            return _original(args, 4)
        m, buffering, closefd = _check_args(mode, buffering, encoding, errors, newline, closefd)
        buffering = _binary_line_buffering(m, buffering)
        raw = CapioFileIO(file, m.rawmode, closefd)
        return _layers(raw, m, mode, buffering, encoding, errors, newline, 4)
    if opener is not None:
        if capio_target(file) is None:
            return _original(args, 4)
        m, buffering, closefd = _check_args(mode, buffering, encoding, errors, newline, closefd)
        buffering = _binary_line_buffering(m, buffering)
        if not m.kind or not closefd:
            raise ValueError(_raw_refusal(m, closefd))
        raw = open_with_opener(file, m.rawmode, closefd, opener)
        return _layers(raw, m, mode, buffering, encoding, errors, newline, 4)
    try:
        m, buffering, closefd = _check_args(mode, buffering, encoding, errors, newline, closefd)
    except (TypeError, ValueError):
        # Only for a bad call is it asked whose error this is: the OS's for a path not CAPIO's.
        if capio_target(file) is None:
            return _original(args, 4)
        raise
    buffering = _binary_line_buffering(m, buffering)
    if not m.kind or not closefd:  # what the raw file refuses, after the warning
        if capio_target(file) is None:
            return _original((file, mode, buffering, encoding, errors, newline, closefd, opener), 4)
        raise ValueError(_raw_refusal(m, closefd))
    try:
        name = file if isinstance(file, (str, bytes)) else os.fspath(file)
        fd = open_by_name(name, m.flags, not m.binary)
    except NotServed as exc:  # a FIFO or a device in the CAPIO directory: a built-in file
        os_raw = _FileIO(exc.fd, m.rawmode, closefd=True)
        os_raw.name = name
        return _layers(os_raw, m, mode, buffering, encoding, errors, newline, 4)
    except (TypeError, ValueError):  # not a path the OS would take: it says so itself
        fd = None
    if fd is None:
        return _original((file, mode, buffering, encoding, errors, newline, closefd, opener), 4)
    if isinstance(fd, tuple):
        return _plain_writer(name, fd, m, (mode, buffering, encoding, errors, newline), 4)
    raw = CapioFileIO(fd, m.rawmode)
    raw.name = name  # as FileIO names itself: the path as os.fspath gives it
    return _layers(raw, m, mode, buffering, encoding, errors, newline, 4)


def _type_error(arg: str, want: str, value: object) -> TypeError:
    return TypeError(f"open() argument '{arg}' must be {want}, not {type(value).__name__}")


def _check_args(
    mode: object, buffering: object, encoding: object, errors: object, newline: object, closefd: object
) -> tuple[Mode, int, bool]:
    """open()'s checks, in its order and words: argument types, then the mode, then what a
    binary mode refuses, then the raw file's own reading of the mode."""
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
    closefd = bool(operator.index(closefd))  # type: ignore[arg-type]
    m = parse_mode(mode)
    if m.open_error is not None:
        raise ValueError(m.open_error)
    if m.binary and encoding is not None:
        raise ValueError("binary mode doesn't take an encoding argument")
    if m.binary and errors is not None:
        raise ValueError("binary mode doesn't take an errors argument")
    if m.binary and newline is not None:
        raise ValueError("binary mode doesn't take a newline argument")
    return m, buffering, closefd


def _raw_refusal(m: Mode, closefd: bool) -> str:
    """What the raw file says of open()'s raw mode with no kind at all ("b", "+"), then of
    ``closefd=False`` with a name."""
    if not m.kind:
        return BAD_RAW_MODE
    return "Cannot use closefd=False with file name"


def _binary_line_buffering(m: Mode, buffering: int) -> int:
    """open()'s RuntimeWarning for ``buffering=1`` in binary mode, given before the file is
    opened (as the built-in does: under ``-W error`` nothing is created)."""
    if m.binary and buffering == 1:
        warnings.warn(
            "line buffering (buffering=1) isn't supported in binary mode, "
            "the default buffer size will be used",
            RuntimeWarning,
            stacklevel=4,  # _binary_line_buffering <- _open_slow <- open_proxy <- caller
        )
        return -1
    return buffering


def _layers(
    raw: CapioFileIO | io.FileIO,
    m: Mode,
    mode: str,
    buffering: int,
    encoding: str | None,
    errors: str | None,
    newline: str | None,
    depth: int,
) -> Any:
    """What ``_io.open`` builds over its raw file: a buffered layer, then a text layer, closing
    the raw file if either fails. ``depth``: the stack level of open()'s caller seen from here."""
    result: Any = raw
    capio = type(raw) is CapioFileIO
    try:
        line_buffering = False
        if buffering == 1 or (buffering < 0 and not capio and raw.isatty()):
            buffering = -1
            line_buffering = True
        if buffering < 0:
            buffering = BLKSIZE if capio else getattr(raw, "_blksize", io.DEFAULT_BUFFER_SIZE)
        if buffering == 0:
            if m.binary:
                return result
            raise ValueError("can't have unbuffered text I/O")
        buffer = m.buffered(raw, buffering)
        result = buffer
        if m.binary:
            if capio:  # else the OS opened it (a FIFO, an opener's OS fd): a built-in file
                attach_memfile(buffer, raw)  # type: ignore[arg-type]
            return buffer
        if encoding is None:
            if WARN_DEFAULT_ENCODING:
                warn_default_encoding(depth)
            encoding = DEFAULT_TEXT_ENCODING
        wrapper = io.TextIOWrapper(buffer, encoding, errors, newline, line_buffering)
        result = wrapper
        wrapper.mode = mode  # type: ignore[misc]
        return track(wrapper) if capio else wrapper
    except BaseException:
        result.close()
        raise


def _original(args: tuple[Any, ...], depth: int) -> Any:
    """The original open() with the caller's arguments. Where it would warn, the warnings it gives
    from C would name the innermost Python frame, a proxy's: they are given here, naming open()'s
    caller (``depth``: its stack level seen from here). ``args``: open()'s eight, in order."""
    file, mode, buffering, encoding, errors, newline, closefd, opener = args
    original = originals["builtins.open"]
    if not WARN_DEFAULT_ENCODING and not (type(buffering) in (int, bool) and buffering == 1):
        return original(file, mode, buffering, encoding, errors, newline, closefd, opener)
    if (
        type(buffering) in (int, bool)
        and buffering == 1
        and _binary_mode(mode)
        and encoding is None
        and errors is None
        and newline is None
        and type(closefd) in (int, bool)
    ):
        warnings.warn(
            "line buffering (buffering=1) isn't supported in binary mode, "
            "the default buffer size will be used",
            RuntimeWarning,
            stacklevel=depth,
        )
        buffering = -1
    if not (WARN_DEFAULT_ENCODING and encoding is None and type(mode) is str and "b" not in mode):
        return original(file, mode, buffering, encoding, errors, newline, closefd, opener)
    f = original(file, mode, buffering, DEFAULT_TEXT_ENCODING, errors, newline, closefd, opener)
    try:
        warn_default_encoding(depth)
    except BaseException:
        f.close()
        raise
    return f


def _binary_mode(mode: object) -> bool:
    """Whether open() accepts ``mode`` and it is binary."""
    if type(mode) is not str:
        return False
    m = parse_mode(mode)
    return m.open_error is None and m.binary and bool(m.kind)


def open_with_opener(
    file: Any, rawmode: str, closefd: bool, opener: Callable[[Any, int], int]
) -> CapioFileIO | io.FileIO:
    """FileIO's opener protocol: ``opener(file, flags)`` returns the fd. A CAPIO fd (``os.open``
    is CAPIO's while patched) gets a CAPIO raw file, any other fd the built-in ``FileIO``; either
    way ``name`` is ``file``, as with the built-in."""
    if not closefd:
        raise ValueError("Cannot use closefd=False with file name")
    fd = opener(file, parse_mode(rawmode).flags | os.O_CLOEXEC)
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


def new_fileio(*args: Any, **kwargs: Any) -> Any:
    """``io.FileIO(...)`` while patched: a :class:`CapioFileIO` for a CAPIO path or fd (with an
    opener, what the opener's fd is: see open_with_opener), the real ``FileIO`` for anything else
    (and for arguments it must judge: odd keywords or types)."""
    names = ("file", "mode", "closefd", "opener")
    # Bound as FileIO binds them (each positionally or by keyword, once); anything else, or no
    # file, goes to the real FileIO, which raises its own TypeError.
    if len(args) <= 4 and kwargs.keys() <= set(names[len(args) :]) and (args or "file" in kwargs):
        bound = dict(zip(names, args, strict=False)) | kwargs
        file, mode = bound["file"], bound.get("mode", "r")
        closefd, opener = bound.get("closefd", True), bound.get("opener")
        if type(file) is not int and opener is None and type(mode) is str and closefd:
            m = parse_mode(mode)
            if m.raw_error is None:
                # The common case: one native call decides whether the name is CAPIO's and opens.
                try:
                    name = os.fspath(file)
                    fd = open_named(name, m.flags)
                except NotServed as exc:  # a FIFO or a device in the CAPIO directory: its own fd
                    os_raw = originals["io.FileIO"](exc.fd, mode, closefd=True)
                    os_raw.name = name
                    return os_raw
                except (TypeError, ValueError):  # not a name the OS takes: FileIO says so itself
                    fd = None
                if fd is None:
                    return originals["io.FileIO"](*args, **kwargs)
                raw = CapioFileIO(fd, mode)
                raw.name = name
                return raw
        if type(file) is int:
            capio = opener is None and file >= 0 and _pycapio._is_capio_fd(file)
        else:
            capio = capio_target(file) is not None  # a bad call: whose error is it?
        if capio and type(mode) is str:
            if opener is None:
                return CapioFileIO(file, mode, closefd)
            m = parse_mode(mode)
            if m.raw_error is not None:
                raise ValueError(m.raw_error)
            return open_with_opener(file, m.rawmode, bool(closefd), opener)
    return originals["io.FileIO"](*args, **kwargs)
