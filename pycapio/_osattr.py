"""CAPIO-aware ``os`` functions of attributes: mode, owner, times, size, extended attributes.

``chmod``/``fchmod``/``umask``, ``chown`` and friends, ``utime``, ``truncate`` and the xattr
family. As in ``_ospatch``: only CAPIO's calls are handled, everything else reaches the original
with the same arguments."""

from __future__ import annotations

import errno
import math
import operator
import os
import stat as _stat
import threading
from collections.abc import Callable
from typing import Any

from . import _pycapio
from ._route import capio_fd as _capio_fd
from ._route import changed_through_fd, originals
from ._route import follow as _follow
from ._route import fspath_or_self as _fspath
from ._route import keywords_ok as _keywords
from ._route import mode_of as _mode
from ._route import oserror as _oserror
from ._route import stat_of as _stat_of
from ._route import target as _target


def _check_exists(target: str, path: Any, named: bool = True) -> None:
    if named:
        _stat_of(target, path)
        return
    try:
        _pycapio._stat(target)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror) from None


def _set_attrs(target: Any, path: Any, named: bool = True, **attrs: Any) -> None:
    """``_set_attrs`` with the built-in's errors: naming ``path`` (or no file, for ``utime``)."""
    if isinstance(target, str) and "follow_symlinks" in attrs:
        attrs["follow_symlinks"] = _follow(target, path, attrs["follow_symlinks"], named)
    try:
        _pycapio._set_attrs(target, **attrs)
    except OSError as exc:
        if isinstance(exc, _pycapio.PyCAPIOException) or exc.errno is None:
            raise
        if named and not isinstance(target, int):
            raise _oserror(exc, _fspath(path)) from None
        raise OSError(exc.errno, exc.strerror) from None


def _is_mode(mode: Any) -> bool:
    return type(mode) is int and 0 <= mode <= 0xFFFFFFFF


def _nofollow_chmod_of_files() -> bool:
    """Whether the C library's ``fchmodat(AT_SYMLINK_NOFOLLOW)`` changes a path that is not a link:
    glibc does it (through ``O_PATH``) from 2.32 on, as musl does; an older glibc fails every such
    call with ``ENOTSUP``, which ``os.chmod`` reports as ``NotImplementedError``."""
    try:
        libc = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError):
        return True
    name, _, version = libc.partition(" ")
    if name != "glibc":
        return True
    try:
        major, minor = (int(part) for part in version.split(".")[:2])
    except ValueError:
        return True
    return (major, minor) >= (2, 32)


_NOFOLLOW_CHMOD_OF_FILES = _nofollow_chmod_of_files()


def _chmod_nofollow_unsupported(dir_fd: Any) -> Exception:
    """What ``os.chmod(..., follow_symlinks=False)`` raises where the C library cannot do it."""
    if dir_fd is not None:
        return ValueError("chmod: cannot use dir_fd and follow_symlinks together")
    return NotImplementedError("chmod: follow_symlinks unavailable on this platform")


def chmod_proxy(path: Any, mode: Any, *args: Any, **kwargs: Any) -> None:
    """``os.chmod`` of a CAPIO path or fd: the file's mode bits change, as on a file system
    (set-id bits as the kernel allows). ``follow_symlinks=False`` on a symbolic link goes to the
    OS (links live on disk), which cannot change a link's mode on Linux: ``NotImplementedError``."""
    if not args and _is_mode(mode) and _keywords(kwargs, frozenset({"dir_fd", "follow_symlinks"})):
        follow = bool(kwargs.get("follow_symlinks", True))
        if _capio_fd(path) and kwargs.get("dir_fd") is None and follow:
            _set_attrs(path, path, mode=mode)
            return
        target = _target(path, kwargs.get("dir_fd"))
        if target is not None:
            if not follow and not _NOFOLLOW_CHMOD_OF_FILES:
                raise _chmod_nofollow_unsupported(kwargs.get("dir_fd"))
            follow = _follow(target, path, follow)
            link = _mode(target, False)
            if follow or link is None or not _stat.S_ISLNK(link):
                _set_attrs(target, path, mode=mode, follow_symlinks=follow)
                return
    originals["os.chmod"](path, mode, *args, **kwargs)
    changed_through_fd(path)


_umask_lock = threading.Lock()


def umask_proxy(mask: Any, *args: Any, **kwargs: Any) -> int:
    """``os.umask``, which also tells CAPIO the new mask: files and directories CAPIO creates get
    it without asking the kernel on every create (see ``current_umask`` in capio-proto)."""
    with _umask_lock:  # the kernel's mask and the one CAPIO is told change together
        old: int = originals["os.umask"](mask, *args, **kwargs)
        _pycapio._umask_changed(operator.index(mask) & 0o777)
    return old


def fchmod_proxy(fd: Any, mode: Any, *args: Any, **kwargs: Any) -> None:
    """``os.fchmod`` of a CAPIO fd."""
    if not args and not kwargs and _is_mode(mode) and _capio_fd(fd):
        _set_attrs(fd, fd, mode=mode)
        return
    originals["os.fchmod"](fd, mode, *args, **kwargs)
    changed_through_fd(fd)


def _id(value: Any) -> bool:
    # What the built-in accepts without an error of its own: -1 (unchanged) or a valid id.
    return type(value) is int and -1 <= value < 0xFFFFFFFF


def _chown_call(name: str, follow: bool) -> Callable[..., None]:
    def proxy(path: Any, uid: Any, gid: Any, *args: Any, **kwargs: Any) -> None:
        allowed = frozenset({"dir_fd", "follow_symlinks"} if name == "os.chown" else ())
        if not args and _id(uid) and _id(gid) and _keywords(kwargs, allowed):
            follows = follow and bool(kwargs.get("follow_symlinks", True))
            if name != "os.lchown" and _capio_fd(path) and kwargs.get("dir_fd") is None and follows:
                _set_attrs(path, path, uid=uid, gid=gid)
                return
            target = _target(path, kwargs.get("dir_fd"))
            if target is not None:
                _set_attrs(target, path, uid=uid, gid=gid, follow_symlinks=follows)
                return
        originals[name](path, uid, gid, *args, **kwargs)
        changed_through_fd(path)

    proxy.__name__ = proxy.__qualname__ = f"{name.rsplit('.', 1)[1]}_proxy"
    proxy.__doc__ = (
        f"``{name}`` of a CAPIO path: owner and group change by ``chown(2)``'s rules (root may set "
        "both; the owner may only choose one of its groups, else ``PermissionError``; -1 keeps one)."
    )
    return proxy


chown_proxy = _chown_call("os.chown", True)
lchown_proxy = _chown_call("os.lchown", False)


def fchown_proxy(fd: Any, uid: Any, gid: Any, *args: Any, **kwargs: Any) -> None:
    """``os.fchown`` of a CAPIO fd."""
    if not args and not kwargs and _id(uid) and _id(gid) and _capio_fd(fd):
        _set_attrs(fd, fd, uid=uid, gid=gid)
        return
    originals["os.fchown"](fd, uid, gid, *args, **kwargs)
    changed_through_fd(fd)


def _utime_args(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Validate ``os.utime``'s times/ns as the built-in does; False to leave the call to it."""
    if len(args) > 1 or not _keywords(kwargs, frozenset({"times", "ns", "dir_fd", "follow_symlinks"})):
        return False
    if args and "times" in kwargs:
        return False
    times = args[0] if args else kwargs.get("times")
    ns = kwargs.get("ns")
    if times is not None and ns is not None:
        raise ValueError("utime: you may specify either 'times' or 'ns' but not both")
    if times is not None and not (
        isinstance(times, tuple) and len(times) == 2 and all(isinstance(t, (int, float)) for t in times)
    ):
        raise TypeError("utime: 'times' must be either a tuple of two ints or None")
    if ns is not None and not (isinstance(ns, tuple) and len(ns) == 2 and all(type(t) is int for t in ns)):
        raise TypeError("utime: 'ns' must be a tuple of two ints")
    return True


def _seconds_to_ns(t: float) -> int:
    """A ``times`` entry in nanoseconds, rounded towards minus infinity as the built-in does."""
    if isinstance(t, int):
        return t * 1_000_000_000
    if math.isnan(t):
        raise ValueError("Invalid value NaN (not a number)")
    if not -(2.0**63) <= t < 2.0**63:
        raise OverflowError("timestamp out of range for platform time_t")
    frac, whole = math.modf(t)
    nsec = math.floor(frac * 1e9)
    if nsec >= 1_000_000_000:
        nsec -= 1_000_000_000
        whole += 1
    elif nsec < 0:
        nsec += 1_000_000_000
        whole -= 1
    return int(whole) * 1_000_000_000 + nsec


def utime_proxy(path: Any, *args: Any, **kwargs: Any) -> None:
    """``os.utime`` of a CAPIO path or fd: access and modification times set to ``times`` (seconds)
    or ``ns`` (nanoseconds), or to now; ``follow_symlinks=False`` sets a symbolic link's own."""
    capio_fd = _capio_fd(path) and kwargs.get("dir_fd") is None
    target = None if capio_fd else _target(path, kwargs.get("dir_fd"))
    if (capio_fd or target is not None) and _utime_args(args, kwargs):
        times = args[0] if args else kwargs.get("times")
        ns = kwargs.get("ns")
        follow = bool(kwargs.get("follow_symlinks", True))
        attrs: dict[str, Any] = {}
        if ns is not None:
            attrs = {"atime_ns": ns[0], "mtime_ns": ns[1]}
        elif times is not None:
            attrs = {"atime_ns": _seconds_to_ns(times[0]), "mtime_ns": _seconds_to_ns(times[1])}
        else:
            attrs = {"now": True}
        if capio_fd:
            if follow:
                _set_attrs(path, path, named=False, **attrs)
                return
        else:
            # os.utime's errors name no file.
            _set_attrs(target, path, named=False, follow_symlinks=follow, **attrs)
            return
    originals["os.utime"](path, *args, **kwargs)
    changed_through_fd(path)


def truncate_proxy(path: Any, length: Any, *args: Any, **kwargs: Any) -> None:
    """``os.truncate`` of a CAPIO path or fd."""
    if not args and not kwargs and type(length) is int:
        if _capio_fd(path):
            _pycapio._truncate(path, length)
            return
        target = _target(path)
        if target is not None:
            if length < 0:
                raise OSError(errno.EINVAL, os.strerror(errno.EINVAL), _fspath(path))
            _check_exists(target, path)
            try:
                fd = _pycapio.pycapio_open(target, os.O_WRONLY)
            except OSError as exc:
                raise _oserror(exc, _fspath(path)) from None
            try:
                _pycapio._truncate(fd, length)
            finally:
                _pycapio._close(fd)
            return
    originals["os.truncate"](path, length, *args, **kwargs)
    changed_through_fd(path)


def _xattr_call(name: str, nargs: int) -> Callable[..., Any]:
    def proxy(path: Any = None, *args: Any, **kwargs: Any) -> Any:
        if len(args) <= nargs and _keywords(kwargs, frozenset({"follow_symlinks", "flags"})):
            if _capio_fd(path):
                raise OSError(errno.ENOTSUP, os.strerror(errno.ENOTSUP))
            target = None if path is None else _target(path)
            if target is not None:
                follow = bool(kwargs.get("follow_symlinks", True))
                st = _stat_of(target, path, follow)
                if not _stat.S_ISLNK(st.st_mode):
                    # CAPIO keeps no extended attributes: a file system without xattr support.
                    raise OSError(errno.ENOTSUP, os.strerror(errno.ENOTSUP), _fspath(path))
                # A symbolic link itself (follow_symlinks=False) lives on disk: the OS answers.
        if path is None:
            return originals[name](*args, **kwargs)
        return originals[name](path, *args, **kwargs)

    proxy.__name__ = proxy.__qualname__ = f"{name.rsplit('.', 1)[1]}_proxy"
    proxy.__doc__ = f"``{name}``: ENOTSUP for CAPIO paths (CAPIO keeps no extended attributes)."
    return proxy


listxattr_proxy = _xattr_call("os.listxattr", 0)
getxattr_proxy = _xattr_call("os.getxattr", 1)
setxattr_proxy = _xattr_call("os.setxattr", 3)
removexattr_proxy = _xattr_call("os.removexattr", 1)
