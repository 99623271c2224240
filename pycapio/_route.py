"""What every proxy shares: the originals, which paths and fds are CAPIO's, errors' names.

The originals are what a proxy falls back to; errors name the caller's path as the built-ins
do."""

from __future__ import annotations

import errno
import os
import posixpath
import stat
from typing import Any

from . import _pycapio

__all__ = [
    "as_reported",
    "beside_dir_fd",
    "capio_fd",
    "capio_target",
    "changed_through_fd",
    "check_trailing_slash",
    "ends_in_slash",
    "follow",
    "fspath_or_self",
    "keywords_ok",
    "lexists",
    "mode_of",
    "not_a_directory",
    "oserror",
    "originals",
    "stat_of",
    "target",
]

# "module.name" -> the function in place when the patch went in (import time until then), so code
# that had already wrapped one (a debugger, a test mock) keeps working. Filled by the patch
# registry (_patch), read by every proxy.
originals: dict[str, Any] = {}


def capio_target(path: object) -> str | None:
    """The resolved CAPIO path for ``path``, or None when it goes to the OS.

    None for anything that is not ``str``/``bytes``/``os.PathLike`` (fds included), for paths
    outside the CAPIO directory, when pycapio is not initialised, and for paths the OS would
    reject anyway (embedded NUL): those reach the original function, which raises its own error.
    """
    if isinstance(path, int):
        return None
    try:
        fspath = os.fspath(path)  # type: ignore[call-overload]
    except TypeError:
        return None
    try:
        return _pycapio._capio_path(fspath)
    except (ValueError, TypeError):
        return None


def beside_dir_fd(fspath: object, dir_fd: Any) -> bool:
    """Whether a name given with ``dir_fd`` is located by it, and so is not CAPIO's: with
    ``dir_fd`` only an absolute path (for which the OS ignores ``dir_fd``) can be CAPIO's."""
    return dir_fd is not None and not (isinstance(fspath, (str, bytes)) and posixpath.isabs(fspath))


def target(path: Any, dir_fd: Any = None) -> str | None:
    """The CAPIO path ``path`` names, or None (see ``beside_dir_fd`` for ``dir_fd``)."""
    if isinstance(path, int) or beside_dir_fd(fspath_or_self(path), dir_fd):
        return None
    return capio_target(path)


def capio_fd(fd: Any) -> bool:
    return type(fd) is int and fd >= 0 and _pycapio._is_capio_fd(fd)


def as_reported(fd: Any, st: Any) -> Any:
    """``st``, the OS's stat of ``fd``, or, for a plain fd of a committed CAPIO file (a text file
    open for reading reads through one), the file as its CAPIO path reports it: its memory object
    has no name (no link) and lives on the kernel's internal device."""
    if type(fd) is int and type(st) is os.stat_result and st.st_nlink == 0:
        return _pycapio._plain_fstat(fd) or st
    return st


def keywords_ok(kwargs: dict[str, Any], allowed: frozenset[str]) -> bool:
    return kwargs.keys() <= allowed


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


def fspath_or_self(path: Any) -> Any:
    try:
        return os.fspath(path)
    except TypeError:
        return path


def oserror(exc: OSError, filename: Any, filename2: Any = None) -> OSError:
    """``exc`` as the built-in reports it: with the caller's path(s) as ``filename``."""
    if exc.errno is None or isinstance(exc, _pycapio.PyCAPIOException):
        return exc
    if filename2 is None:
        return OSError(exc.errno, exc.strerror, filename)
    return OSError(exc.errno, exc.strerror, filename, None, filename2)


def not_a_directory(filename: Any = None, filename2: Any = None) -> OSError:
    code = errno.ENOTDIR
    if filename is None:
        return NotADirectoryError(code, os.strerror(code))
    return NotADirectoryError(code, os.strerror(code), fspath_or_self(filename), None, filename2)


def mode_of(capio_path: str, follow_symlinks: bool = True) -> int | None:
    """``st_mode`` of a CAPIO path (a final link itself unless following), None if missing."""
    try:
        mode = _pycapio._path_mode(capio_path, follow_symlinks)
    except (OSError, ValueError):
        return None
    return None if mode == -1 else mode


def lexists(capio_path: str) -> bool:
    return mode_of(capio_path, False) is not None


def check_trailing_slash(name: str | bytes, capio_path: str, flags: int) -> None:
    """What the kernel says to open(2) of a CAPIO path ending in ``/``, which CAPIO's own path
    normalisation would drop: with ``O_CREAT`` always ``IsADirectoryError`` (a name ending in a
    slash can only be a directory, and open(2) does not create one); without it, an existing
    file is ``NotADirectoryError``. Other cases get the same answer either way."""
    if not (name.endswith(b"/") if isinstance(name, bytes) else name.endswith("/")):
        return
    if flags & os.O_CREAT:
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), name)
    mode = mode_of(capio_path)
    if mode is not None and not stat.S_ISDIR(mode):
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), name)


def follow(target: str, path: Any, follow_symlinks: bool, named: bool = True) -> bool:
    """``follow_symlinks`` as the kernel applies it to ``path``. A name ending in ``/`` is looked up
    through a final link and must be a directory: ``NotADirectoryError`` (naming ``path`` if
    ``named``) when it is something else; missing, the call's own error follows."""
    if not ends_in_slash(path):
        return follow_symlinks
    mode = mode_of(target, True)
    if mode is not None and not stat.S_ISDIR(mode):
        raise not_a_directory(path if named else None)
    return True


def stat_of(target: str, path: Any, follow_symlinks: bool = True) -> os.stat_result:
    follow_symlinks = follow(target, path, follow_symlinks)
    try:
        return _pycapio._stat(target, follow_symlinks)
    except OSError as exc:
        raise oserror(exc, fspath_or_self(path)) from None


def changed_through_fd(fd: Any) -> None:
    """The OS changed a file through ``fd``: if a plain fd of a CAPIO file (a text file's), what
    ``stat`` by path answers from is read again."""
    if type(fd) is int:
        _pycapio._plain_changed(fd)
