"""CAPIO-aware ``os`` functions of fds, from ``os.open`` to ``os.sendfile``.

``os.open`` (which gives a CAPIO fd for a CAPIO path), ``close``, ``read``/``write``,
``pread``/``pwrite``, ``lseek``, ``ftruncate``, ``fstat``, ``fsync``/``fdatasync`` and
``sendfile``. A CAPIO fd is what ``os.open`` returns for a CAPIO path, or ``fileno()`` of a CAPIO
file open for reading; every other fd reaches the original."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from typing import Any

from . import _pycapio
from ._rawio import CapioFileIO
from ._route import (
    as_reported,
    beside_dir_fd,
    changed_through_fd,
    check_trailing_slash,
    ends_in_slash,
    originals,
)
from ._route import capio_fd as _capio_fd
from ._route import fspath_or_self as _fspath
from ._route import keywords_ok as _keywords
from ._route import oserror as _oserror
from ._route import target as _target

# Flags that mean something to CAPIO; the rest (O_CLOEXEC, O_NOFOLLOW, O_NOCTTY, ...) do not
# apply to a CAPIO file (its fd is close-on-exec and it is never a symlink or a terminal).
_OPEN_FLAGS = os.O_ACCMODE | os.O_CREAT | os.O_EXCL | os.O_TRUNC | os.O_APPEND
# Bytes moved per emulated sendfile() call: the caller loops, like with a short sendfile.
_SENDFILE_CHUNK = 8 << 20


def fstat_proxy(fd: Any, *args: Any, **kwargs: Any) -> os.stat_result:
    """``os.fstat``: a CAPIO fd reports its file's CAPIO size and state, not its memory object's."""
    if not args and not kwargs and _capio_fd(fd):
        return _pycapio._fstat(fd)
    return as_reported(fd, originals["os.fstat"](fd, *args, **kwargs))  # type: ignore[no-any-return]


def open_fd_proxy(path: Any, flags: Any, *args: Any, **kwargs: Any) -> int:
    """``os.open``: a CAPIO path gives a CAPIO fd, which the other fd proxies (and ``open(fd)``,
    ``os.fdopen``) serve through CAPIO. A CAPIO directory goes to the OS (its real directory)."""
    if (
        type(flags) is int
        and len(args) <= 1
        and _keywords(kwargs, frozenset({"mode", "dir_fd"}))
        and not (args and "mode" in kwargs)
        and not (flags & os.O_DIRECTORY and flags & os.O_CREAT)
    ):
        mode = args[0] if args else kwargs.get("mode", 0o777)
        fspath = _fspath(path)
        dir_fd = kwargs.get("dir_fd")
        if type(mode) is int and not beside_dir_fd(fspath, dir_fd):
            try:
                if ends_in_slash(fspath):  # rare: looked up first, as open(2) does
                    target = _target(path, dir_fd)
                    if target is None:
                        return originals["os.open"](path, flags, *args, **kwargs)  # type: ignore[no-any-return]
                    check_trailing_slash(fspath, target, flags)
                directory = flags & os.O_DIRECTORY
                # O_NONBLOCK matters to what CAPIO does not serve (a FIFO), which the OS opens.
                kept = _OPEN_FLAGS | os.O_NONBLOCK | directory
                try:
                    fd = _pycapio._open_path(fspath, flags & kept, mode & 0o7777)
                except (TypeError, ValueError):  # not a path the OS takes: it says so itself
                    fd = None
                if fd is not None:
                    return fd if fd >= 0 else ~fd
            except IsADirectoryError as exc:
                if flags & os.O_ACCMODE != os.O_RDONLY:
                    raise _oserror(exc, fspath) from None
            except OSError as exc:
                # O_DIRECTORY: only CAPIO knows a file (which the disk lacks) is in the way;
                # anything else about a directory the disk answers.
                if not flags & os.O_DIRECTORY or exc.errno == errno.ENOTDIR:
                    raise _oserror(exc, fspath) from None
    return originals["os.open"](path, flags, *args, **kwargs)  # type: ignore[no-any-return]


def close_proxy(fd: Any, *args: Any, **kwargs: Any) -> None:
    """``os.close``: a CAPIO fd is closed through CAPIO (which owns the kernel fd)."""
    if not args and not kwargs and _capio_fd(fd):
        _pycapio._close(fd)
        return
    originals["os.close"](fd, *args, **kwargs)


def _einval() -> OSError:
    return OSError(errno.EINVAL, os.strerror(errno.EINVAL))


def read_proxy(fd: Any, n: Any, *args: Any, **kwargs: Any) -> bytes:
    """``os.read`` of a CAPIO fd: waits per the fire rule, like ``read()`` of a CAPIO file."""
    if not args and not kwargs and type(n) is int and _capio_fd(fd):
        if n < 0:
            raise _einval()
        return _pycapio._read_bytes(fd, n)
    return originals["os.read"](fd, n, *args, **kwargs)  # type: ignore[no-any-return]


def pread_proxy(fd: Any, n: Any, offset: Any, *args: Any, **kwargs: Any) -> bytes:
    """``os.pread`` of a CAPIO fd."""
    if not args and not kwargs and type(n) is int and type(offset) is int and _capio_fd(fd):
        if n < 0 or offset < 0:
            raise _einval()
        return _pycapio._read_bytes(fd, n, offset)
    return originals["os.pread"](fd, n, offset, *args, **kwargs)  # type: ignore[no-any-return]


def write_proxy(fd: Any, data: Any, *args: Any, **kwargs: Any) -> int:
    """``os.write`` to a CAPIO fd: the bytes go to CAPIO (and readers see them)."""
    if not args and not kwargs and _capio_fd(fd) and not isinstance(data, str):
        return _pycapio._write(fd, data)
    return originals["os.write"](fd, data, *args, **kwargs)  # type: ignore[no-any-return]


def pwrite_proxy(fd: Any, data: Any, offset: Any, *args: Any, **kwargs: Any) -> int:
    """``os.pwrite`` to a CAPIO fd."""
    if not args and not kwargs and type(offset) is int and _capio_fd(fd) and not isinstance(data, str):
        if offset < 0:
            raise _einval()
        return _pycapio._write(fd, data, offset)
    return originals["os.pwrite"](fd, data, offset, *args, **kwargs)  # type: ignore[no-any-return]


def lseek_proxy(fd: Any, pos: Any, how: Any, *args: Any, **kwargs: Any) -> int:
    """``os.lseek`` of a CAPIO fd."""
    if not args and not kwargs and type(pos) is int and type(how) is int and _capio_fd(fd):
        return _pycapio._seek(fd, pos, how)
    return originals["os.lseek"](fd, pos, how, *args, **kwargs)  # type: ignore[no-any-return]


def ftruncate_proxy(fd: Any, length: Any, *args: Any, **kwargs: Any) -> None:
    """``os.ftruncate`` of a CAPIO fd."""
    if not args and not kwargs and type(length) is int and _capio_fd(fd):
        _pycapio._truncate(fd, length)
        return
    originals["os.ftruncate"](fd, length, *args, **kwargs)
    changed_through_fd(fd)


def _capio_file_object(fd: Any) -> bool:
    raw = getattr(getattr(fd, "buffer", fd), "raw", getattr(fd, "buffer", fd))
    return isinstance(raw, CapioFileIO)


def _sync_call(name: str) -> Callable[..., None]:
    def proxy(fd: Any, *args: Any, **kwargs: Any) -> None:
        if not args and not kwargs and (_capio_fd(fd) or _capio_file_object(fd)):
            # CAPIO data is in shared memory, durable for the workflow once written; the server
            # writes persistent files to disk atomically at commit.
            if not isinstance(fd, int) and fd.closed:
                raise ValueError("I/O operation on closed file")
            return
        originals[name](fd, *args, **kwargs)

    proxy.__name__ = proxy.__qualname__ = f"{name.rsplit('.', 1)[1]}_proxy"
    proxy.__doc__ = f"``{name}``: nothing to do for a CAPIO fd or file object."
    return proxy


fsync_proxy = _sync_call("os.fsync")
fdatasync_proxy = _sync_call("os.fdatasync")


def sendfile_proxy(out_fd: Any, in_fd: Any, offset: Any, count: Any, *args: Any, **kwargs: Any) -> int:
    """``os.sendfile`` with a CAPIO fd at either end: emulated with CAPIO reads and writes, so a
    copy out of a CAPIO file waits for its data (``shutil.copyfile`` uses this)."""
    capio_in, capio_out = _capio_fd(in_fd), _capio_fd(out_fd)
    if (
        (capio_in or capio_out)
        and not args
        and not kwargs
        and type(count) is int
        and (offset is None or type(offset) is int)
    ):
        if count < 0 or (offset is not None and offset < 0):
            raise _einval()
        count = min(count, _SENDFILE_CHUNK)
        if capio_in:
            data = _pycapio._read_bytes(in_fd, count, -1 if offset is None else offset)
        elif offset is None:
            data = originals["os.read"](in_fd, count)
        else:
            data = originals["os.pread"](in_fd, count, offset)
        if capio_out:
            return _pycapio._write(out_fd, data)
        view = memoryview(data)
        sent = 0
        while sent < len(data):
            sent += originals["os.write"](out_fd, view[sent:])
        return sent
    return originals["os.sendfile"](out_fd, in_fd, offset, count, *args, **kwargs)  # type: ignore[no-any-return]
