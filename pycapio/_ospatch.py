"""CAPIO-aware ``os`` and ``shutil`` functions beyond ``open`` and directory listing.

Paths: the ``stat``, ``remove``/``unlink``, ``rename``/``replace``, ``rmdir``, ``access``, ``chmod``,
``chown``, ``utime``, ``truncate`` and xattr families, ``symlink``/``link``/``readlink``/``mkfifo``,
``os.open`` and ``shutil.rmtree``. Fds: ``close``, ``read``/``write``, ``pread``/``pwrite``,
``lseek``, ``fstat``, ``fchmod``/``fchown``, ``ftruncate``, ``fsync`` and ``sendfile`` on CAPIO
fds (what ``os.open`` returns for a CAPIO path, and ``fileno()`` of a CAPIO file open for reading).

Every proxy takes its arguments as given and handles the call only when it is CAPIO's: a path
inside the CAPIO directory (absolute, or relative without ``dir_fd``) or a CAPIO fd, with arguments
it understands. Anything else — other paths and fds, ``dir_fd`` with a relative path, an unknown
keyword, a wrong type — goes to the original function with exactly the same arguments, so the
built-in raises its own error. Errors for CAPIO paths name the caller's path as the built-in does.
"""

from __future__ import annotations

import errno
import math
import operator
import os
import posixpath
import stat as _stat
import sys
import threading
from collections.abc import Callable
from typing import Any

from . import _pycapio
from ._dirs import capio_stat_result
from ._fileio import check_trailing_slash, ends_in_slash
from ._path import capio_target

__all__ = ["PROXIES", "originals"]

# The functions in place when the patch went in (see _context); proxies fall back to them.
originals: dict[str, Any] = {}

# Flags that mean something to CAPIO; the rest (O_CLOEXEC, O_NOFOLLOW, O_NOCTTY, ...) do not
# apply to a CAPIO file (its fd is close-on-exec and it is never a symlink or a terminal).
_OPEN_FLAGS = os.O_ACCMODE | os.O_CREAT | os.O_EXCL | os.O_TRUNC | os.O_APPEND
# Bytes moved per emulated sendfile() call: the caller loops, like with a short sendfile.
_SENDFILE_CHUNK = 8 << 20


def _oserror(exc: OSError, filename: Any, filename2: Any = None) -> OSError:
    """``exc`` as the built-in reports it: with the caller's path(s) as ``filename``."""
    if exc.errno is None or isinstance(exc, _pycapio.PyCAPIOException):
        return exc
    if filename2 is None:
        return OSError(exc.errno, exc.strerror, filename)
    return OSError(exc.errno, exc.strerror, filename, None, filename2)


def _fspath(path: Any) -> Any:
    try:
        return os.fspath(path)
    except TypeError:
        return path


def _target(path: Any, dir_fd: Any = None) -> str | None:
    """The CAPIO path ``path`` names, or None. With ``dir_fd`` only an absolute path (for which
    the OS ignores ``dir_fd``) can be CAPIO's."""
    if isinstance(path, int):
        return None
    if dir_fd is not None:
        fspath = _fspath(path)
        if not isinstance(fspath, (str, bytes)) or not posixpath.isabs(fspath):
            return None
    return capio_target(path)


def _capio_fd(fd: Any) -> bool:
    return type(fd) is int and fd >= 0 and _pycapio._is_capio_fd(fd)


def _keywords(kwargs: dict[str, Any], allowed: frozenset[str]) -> bool:
    return kwargs.keys() <= allowed


def _fd_stat(fd: int) -> os.stat_result:
    return capio_stat_result(_pycapio._fd_path(fd), _pycapio._fstat_ex(fd))


def _not_a_directory(filename: Any = None, filename2: Any = None) -> OSError:
    code = errno.ENOTDIR
    if filename is None:
        return NotADirectoryError(code, os.strerror(code))
    return NotADirectoryError(code, os.strerror(code), _fspath(filename), None, filename2)


def _mode(target: str, follow_symlinks: bool) -> int | None:
    """``st_mode`` of a CAPIO path (a final link itself unless following), None if missing."""
    try:
        return _pycapio._stat_ex(target, follow_symlinks)[0]
    except (OSError, ValueError):
        return None


def _follow(target: str, path: Any, follow_symlinks: bool, named: bool = True) -> bool:
    """``follow_symlinks`` as the kernel applies it to ``path``. A name ending in ``/`` is looked up
    through a final link and must be a directory: ``NotADirectoryError`` (naming ``path`` if
    ``named``) when it is something else; missing, the call's own error follows."""
    if not ends_in_slash(path):
        return follow_symlinks
    mode = _mode(target, True)
    if mode is not None and not _stat.S_ISDIR(mode):
        raise _not_a_directory(path if named else None)
    return True


def _own_entry(target: str, path: Any) -> None:
    """For calls that act on the name itself (unlink, rmdir): with a trailing ``/`` the name must
    be a directory, not a file nor a link to anything (``NotADirectoryError``)."""
    if ends_in_slash(path):
        mode = _mode(target, False)
        if mode is not None and not _stat.S_ISDIR(mode):
            raise _not_a_directory(path)


def _stat_of(target: str, path: Any, follow_symlinks: bool = True) -> os.stat_result:
    follow_symlinks = _follow(target, path, follow_symlinks)
    try:
        return capio_stat_result(target, follow_symlinks=follow_symlinks)
    except OSError as exc:
        raise _oserror(exc, _fspath(path)) from None


def _lexists(target: str) -> bool:
    try:
        _pycapio._stat_ex(target, False)
    except OSError:
        return False
    return True


# -- stat family ----------------------------------------------------------------------------------

_STAT_KW = frozenset({"dir_fd", "follow_symlinks"})


def stat_proxy(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
    """``os.stat``: CAPIO files and directories (and CAPIO fds) answered by the CAPIO server."""
    if not args and _keywords(kwargs, _STAT_KW):
        if _capio_fd(path):
            if kwargs.get("dir_fd") is None and kwargs.get("follow_symlinks", True):
                return _fd_stat(path)
        else:
            target = _target(path, kwargs.get("dir_fd"))
            if target is not None:
                return _stat_of(target, path, bool(kwargs.get("follow_symlinks", True)))
    return originals["os.stat"](path, *args, **kwargs)  # type: ignore[no-any-return]


def lstat_proxy(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
    """``os.lstat``: symbolic links (which live on disk) reported themselves, CAPIO files as by
    ``os.stat``."""
    if not args and _keywords(kwargs, frozenset({"dir_fd"})):
        target = _target(path, kwargs.get("dir_fd"))
        if target is not None:
            return _stat_of(target, path, follow_symlinks=False)
    return originals["os.lstat"](path, *args, **kwargs)  # type: ignore[no-any-return]


def fstat_proxy(fd: Any, *args: Any, **kwargs: Any) -> os.stat_result:
    """``os.fstat``: a CAPIO fd reports its file's CAPIO size and state, not its memory object's."""
    if not args and not kwargs and _capio_fd(fd):
        return _fd_stat(fd)
    return originals["os.fstat"](fd, *args, **kwargs)  # type: ignore[no-any-return]


def _access(target: str, mode: int, effective_ids: bool, follow_symlinks: bool) -> bool:
    try:
        st_mode, _size, st_uid, st_gid, *_ = _pycapio._stat_ex(target, follow_symlinks)
    except (OSError, ValueError):
        return False
    if mode & ~(os.R_OK | os.W_OK | os.X_OK):
        return False  # EINVAL
    uid = os.geteuid() if effective_ids else os.getuid()
    if uid == 0:
        # root reads and writes anything, and executes what anyone may execute.
        return not mode & os.X_OK or _stat.S_ISDIR(st_mode) or bool(st_mode & 0o111)
    # The owner's bits, else the group's for a member of the file's group, else the others'.
    gid = os.getegid() if effective_ids else os.getgid()
    shift = 6 if uid == st_uid else 3 if st_gid == gid or st_gid in os.getgroups() else 0
    bits = {os.R_OK: 0o4, os.W_OK: 0o2, os.X_OK: 0o1}
    return all(st_mode & (bit << shift) for flag, bit in bits.items() if mode & flag)


def access_proxy(path: Any, mode: Any, *args: Any, **kwargs: Any) -> bool:
    """``os.access`` for CAPIO paths: existence and the owner's permission bits."""
    if (
        not args
        and type(mode) is int
        and _keywords(kwargs, frozenset({"dir_fd", "effective_ids", "follow_symlinks"}))
    ):
        target = _target(path, kwargs.get("dir_fd"))
        if target is not None:
            try:
                follow = _follow(target, path, bool(kwargs.get("follow_symlinks", True)))
            except OSError:
                return False
            return _access(target, mode, bool(kwargs.get("effective_ids", False)), follow)
    return originals["os.access"](path, mode, *args, **kwargs)  # type: ignore[no-any-return]


# -- namespace ------------------------------------------------------------------------------------


def _path_call(name: str, primitive: Callable[[str], None]) -> Callable[..., None]:
    def proxy(path: Any, *args: Any, **kwargs: Any) -> None:
        if not args and _keywords(kwargs, frozenset({"dir_fd"})):
            target = _target(path, kwargs.get("dir_fd"))
            if target is not None:
                _own_entry(target, path)
                try:
                    primitive(target)
                except OSError as exc:
                    raise _oserror(exc, _fspath(path)) from None
                return
        originals[name](path, *args, **kwargs)

    proxy.__name__ = proxy.__qualname__ = f"{name.rsplit('.', 1)[1]}_proxy"
    proxy.__doc__ = f"``{name}`` for paths inside the CAPIO directory, through CAPIO."
    return proxy


remove_proxy = _path_call("os.remove", _pycapio._unlink)
unlink_proxy = _path_call("os.unlink", _pycapio._unlink)
rmdir_proxy = _path_call("os.rmdir", _pycapio._rmdir)


def _exists(target: str | None, path: Any) -> bool:
    if target is not None:
        try:
            _pycapio._stat(target)
        except OSError:
            return False
        return True
    try:
        originals["os.lstat"](path)
    except OSError:
        return False
    return True


def _slashed_rename(from_: str, to: str, src: Any, dst: Any) -> None:
    """rename(2) with a trailing ``/`` on either name moves directories only: ``ENOTDIR`` when the
    source, or an existing destination named with the slash, is anything else."""
    if not (ends_in_slash(src) or ends_in_slash(dst)):
        return
    mode = _mode(from_, False)
    if mode is None:
        return  # the rename itself reports the missing source
    if not _stat.S_ISDIR(mode):
        raise _not_a_directory(src, _fspath(dst))
    if ends_in_slash(dst):
        mode = _mode(to, False)
        if mode is not None and not _stat.S_ISDIR(mode):
            raise _not_a_directory(src, _fspath(dst))


def _rename_call(name: str) -> Callable[..., None]:
    def proxy(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        if not args and _keywords(kwargs, frozenset({"src_dir_fd", "dst_dir_fd"})):
            from_ = _target(src, kwargs.get("src_dir_fd"))
            to = _target(dst, kwargs.get("dst_dir_fd"))
            if from_ is not None and to is not None:
                _slashed_rename(from_, to, src, dst)
                try:
                    _pycapio._rename(from_, to)
                except OSError as exc:
                    raise _oserror(exc, _fspath(src), _fspath(dst)) from None
                return
            if (from_ is None) != (to is None) and kwargs.get("src_dir_fd") is None:
                # One end in CAPIO, one on disk: two file systems, as rename(2) sees them. A
                # missing source is reported first, as the kernel does.
                code = errno.EXDEV if _exists(from_, src) else errno.ENOENT
                raise OSError(code, os.strerror(code), _fspath(src), None, _fspath(dst))
        originals[name](src, dst, *args, **kwargs)

    proxy.__name__ = proxy.__qualname__ = f"{name.rsplit('.', 1)[1]}_proxy"
    proxy.__doc__ = (
        f"``{name}`` inside the CAPIO directory through CAPIO (waiting readers of the target see the "
        "moved file); ``OSError(EXDEV)`` when one end is inside and the other outside, as between "
        "two file systems (``shutil.move`` then copies)."
    )
    return proxy


rename_proxy = _rename_call("os.rename")
replace_proxy = _rename_call("os.replace")


def _exists_error(src: Any, dst: Any) -> OSError:
    return FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), _fspath(src), None, _fspath(dst))


def symlink_proxy(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
    """``os.symlink`` into the CAPIO directory: the link is made on disk by the OS (CAPIO's
    look-ups follow it, to CAPIO files too), unless a CAPIO file already has the name."""
    if len(args) <= 1 and _keywords(kwargs, frozenset({"target_is_directory", "dir_fd"})):
        target = _target(dst, kwargs.get("dir_fd"))
        if target is not None and _lexists(target):
            raise _exists_error(src, dst)
    originals["os.symlink"](src, dst, *args, **kwargs)


def mkfifo_proxy(path: Any, *args: Any, **kwargs: Any) -> None:
    """``os.mkfifo`` in the CAPIO directory: the FIFO is made on disk by the OS (pycapio never
    serves a FIFO), unless a CAPIO file already has the name."""
    if len(args) <= 1 and _keywords(kwargs, frozenset({"mode", "dir_fd"})):
        target = _target(path, kwargs.get("dir_fd"))
        if target is not None and _lexists(target):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST))  # names no file, as the built-in
    originals["os.mkfifo"](path, *args, **kwargs)


def readlink_proxy(path: Any, *args: Any, **kwargs: Any) -> Any:
    """``os.readlink`` of a CAPIO path: a symbolic link's target (links live on disk); a CAPIO
    file or directory is not a link (``EINVAL``), as ``readlink(2)`` says."""
    if not args and _keywords(kwargs, frozenset({"dir_fd"})):
        target = _target(path, kwargs.get("dir_fd"))
        if target is not None:
            st = _stat_of(target, path, follow_symlinks=False)
            if not _stat.S_ISLNK(st.st_mode):
                raise OSError(errno.EINVAL, os.strerror(errno.EINVAL), _fspath(path))
    return originals["os.readlink"](path, *args, **kwargs)


def _on_disk(path: Any) -> bool:
    try:
        originals["os.lstat"](path)
    except OSError:
        return False
    return True


def link_proxy(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
    """``os.link``: a file CAPIO holds in memory cannot get a second name (``EPERM``, as
    ``link(2)`` answers on a file system without hard links; ``EXDEV`` to a path outside the
    CAPIO directory); what is on disk in the CAPIO directory is linked by the OS."""
    if not args and _keywords(kwargs, frozenset({"src_dir_fd", "dst_dir_fd", "follow_symlinks"})):
        from_ = _target(src, kwargs.get("src_dir_fd"))
        to = _target(dst, kwargs.get("dst_dir_fd"))
        if from_ is not None and ends_in_slash(src):
            mode = _mode(from_, True)
            if mode is not None and not _stat.S_ISDIR(mode):
                raise _not_a_directory(src, _fspath(dst))
        if from_ is not None and not _on_disk(src):
            try:
                _pycapio._stat_ex(from_, bool(kwargs.get("follow_symlinks", True)))
            except OSError as exc:
                raise _oserror(exc, _fspath(src), _fspath(dst)) from None
            if to is not None and _lexists(to):
                raise _exists_error(src, dst)
            if ends_in_slash(dst) and (to is not None or not _on_disk(dst)):
                # The new name is looked up before anything is linked: missing, it cannot end in "/".
                raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), _fspath(src), None, _fspath(dst))
            code = errno.EPERM if to is not None else errno.EXDEV
            raise OSError(code, os.strerror(code), _fspath(src), None, _fspath(dst))
        if to is not None and _lexists(to):
            raise _exists_error(src, dst)
    originals["os.link"](src, dst, *args, **kwargs)


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


def _truncate_fd(fd: int, length: int) -> None:
    _pycapio._truncate(fd, length)


def truncate_proxy(path: Any, length: Any, *args: Any, **kwargs: Any) -> None:
    """``os.truncate`` of a CAPIO path or fd."""
    if not args and not kwargs and type(length) is int:
        if _capio_fd(path):
            _truncate_fd(path, length)
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
                _truncate_fd(fd, length)
            finally:
                _pycapio._close(fd)
            return
    originals["os.truncate"](path, length, *args, **kwargs)


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


# -- fds ------------------------------------------------------------------------------------------


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
        target = _target(path, kwargs.get("dir_fd"))
        if target is not None:
            mode = args[0] if args else kwargs.get("mode", 0o777)
            if type(mode) is int:
                try:
                    check_trailing_slash(_fspath(path), flags)
                    directory = flags & os.O_DIRECTORY
                    # O_NONBLOCK matters to what CAPIO does not serve (a FIFO), which the OS opens.
                    kept = _OPEN_FLAGS | os.O_NONBLOCK | directory
                    return _pycapio.pycapio_open(target, flags & kept, mode & 0o7777)
                except IsADirectoryError as exc:
                    if flags & os.O_ACCMODE != os.O_RDONLY:
                        raise _oserror(exc, _fspath(path)) from None
                except OSError as exc:
                    # O_DIRECTORY: only CAPIO knows a file (which the disk lacks) is in the way;
                    # anything else about a directory the disk answers.
                    if not flags & os.O_DIRECTORY or exc.errno == errno.ENOTDIR:
                        raise _oserror(exc, _fspath(path)) from None
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
        _truncate_fd(fd, length)
        return
    originals["os.ftruncate"](fd, length, *args, **kwargs)


def _capio_file_object(fd: Any) -> bool:
    from ._fileio import CapioFileIO

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


# -- shutil ---------------------------------------------------------------------------------------


def _rmtree_walk(path: Any, report: Callable[[Any, Any, BaseException], object]) -> None:
    try:
        with os.scandir(path) as it:
            entries = list(it)
    except OSError as exc:
        report(os.scandir, path, exc)
        entries = []
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            _rmtree_walk(entry.path, report)
        else:
            try:
                os.unlink(entry.path)
            except OSError as exc:
                report(os.unlink, entry.path, exc)
    try:
        os.rmdir(path)
    except OSError as exc:
        report(os.rmdir, path, exc)


def rmtree_proxy(path: Any, *args: Any, **kwargs: Any) -> None:
    """``shutil.rmtree`` of a CAPIO directory: the directory-fd walk the built-in prefers cannot
    see CAPIO, so CAPIO trees are removed path by path (CAPIO has no symlinks to race with).
    ``ignore_errors``/``onerror`` (and ``onexc`` where the Python has it) as in ``shutil``, called
    for the same failures with the same functions and paths as the built-in's walk."""
    allowed = {"ignore_errors", "onerror", "dir_fd"} | ({"onexc"} if sys.version_info >= (3, 12) else set())
    target = None
    if len(args) <= 2 and _keywords(kwargs, frozenset(allowed)) and kwargs.get("dir_fd") is None:
        if not (len(args) >= 1 and "ignore_errors" in kwargs) and not (
            len(args) == 2 and "onerror" in kwargs
        ):
            target = _target(path)
    if target is None:
        originals["shutil.rmtree"](path, *args, **kwargs)
        return
    ignore_errors = args[0] if args else kwargs.get("ignore_errors", False)
    onerror = args[1] if len(args) > 1 else kwargs.get("onerror")
    onexc = kwargs.get("onexc")
    # No DeprecationWarning for onerror: shutil documents it as deprecated from 3.12 on but
    # does not warn (3.12, 3.13): a -W error program must not fail here when it does not there.
    sys.audit("shutil.rmtree", path, None)

    def report(func: Any, where: Any, exc: BaseException) -> None:
        if ignore_errors:
            return
        if onexc is not None:
            onexc(func, where, exc)
        elif onerror is not None:
            onerror(func, where, (type(exc), exc, exc.__traceback__))
        else:
            raise exc

    # As the built-in's directory-fd walk: a bytes path is decoded first, and reported so.
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    try:
        st = os.lstat(path)
    except OSError as exc:
        report(os.lstat, path, exc)
        return
    if not _stat.S_ISDIR(st.st_mode):
        # The built-in opens the path, fails to list it, then fails to remove it as a directory:
        # two reports, both ENOTDIR naming the path.
        for func in (os.scandir, os.rmdir):
            try:
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
            except OSError as exc:
                report(func, path, exc)
        return
    _rmtree_walk(path, report)


# name -> proxy, in the order they are installed.
PROXIES: dict[str, Any] = {
    "os.stat": stat_proxy,
    "os.lstat": lstat_proxy,
    "os.fstat": fstat_proxy,
    "os.access": access_proxy,
    "os.remove": remove_proxy,
    "os.unlink": unlink_proxy,
    "os.rmdir": rmdir_proxy,
    "os.rename": rename_proxy,
    "os.replace": replace_proxy,
    "os.chmod": chmod_proxy,
    "os.fchmod": fchmod_proxy,
    "os.umask": umask_proxy,
    "os.chown": chown_proxy,
    "os.lchown": lchown_proxy,
    "os.fchown": fchown_proxy,
    "os.utime": utime_proxy,
    "os.symlink": symlink_proxy,
    "os.link": link_proxy,
    "os.readlink": readlink_proxy,
    "os.mkfifo": mkfifo_proxy,
    "os.truncate": truncate_proxy,
    "os.listxattr": listxattr_proxy,
    "os.getxattr": getxattr_proxy,
    "os.setxattr": setxattr_proxy,
    "os.removexattr": removexattr_proxy,
    "os.open": open_fd_proxy,
    "os.close": close_proxy,
    "os.read": read_proxy,
    "os.pread": pread_proxy,
    "os.write": write_proxy,
    "os.pwrite": pwrite_proxy,
    "os.lseek": lseek_proxy,
    "os.ftruncate": ftruncate_proxy,
    "os.fsync": fsync_proxy,
    "os.fdatasync": fdatasync_proxy,
    "os.sendfile": sendfile_proxy,
    "shutil.rmtree": rmtree_proxy,
}
