"""``PyCapioPath``: ``os.path`` that answers file-system queries for CAPIO paths from the server."""

from __future__ import annotations

import errno
import os
import posixpath
import stat
from typing import Any

from . import _pycapio
from ._route import capio_target, ends_in_slash, mode_of

__all__ = ["PyCapioPath"]


def _exists(path: Any) -> bool:
    if type(path) is str and path[-1:] != "/":  # the common call, in one native call
        mode = _pycapio._path_mode(path)
        return posixpath.exists(path) if mode == -1 else mode is not None
    target = capio_target(path)
    if target is None:
        return posixpath.exists(path)
    if ends_in_slash(path):  # the kernel's look-up: only a directory (through links) ends in "/"
        return _isdir(path)
    return mode_of(target) is not None


def _lexists(path: Any) -> bool:
    target = capio_target(path)
    if target is None:
        return posixpath.lexists(path)
    if ends_in_slash(path):
        return _isdir(path)
    return mode_of(target, False) is not None


def _islink(path: Any) -> bool:
    target = capio_target(path)
    if target is None:
        return posixpath.islink(path)
    if ends_in_slash(path):
        return False  # a final link is followed
    mode = mode_of(target, False)
    return mode is not None and stat.S_ISLNK(mode)


def _isfile(path: Any) -> bool:
    if type(path) is str and path[-1:] != "/":  # the common call, in one native call
        mode = _pycapio._path_mode(path)
        if mode == -1:
            return posixpath.isfile(path)
        return mode is not None and stat.S_ISREG(mode)
    target = capio_target(path)
    if target is None:
        return posixpath.isfile(path)
    if ends_in_slash(path):
        return False
    mode = mode_of(target)
    return mode is not None and stat.S_ISREG(mode)


def _isdir(s: Any) -> bool:
    if type(s) is str:  # the common call, in one native call (a final "/" changes nothing here)
        mode = _pycapio._path_mode(s)
        if mode == -1:
            return posixpath.isdir(s)
        return mode is not None and stat.S_ISDIR(mode)
    target = capio_target(s)
    if target is None:
        return posixpath.isdir(s)
    mode = mode_of(target)
    return mode is not None and stat.S_ISDIR(mode)


def _stat(path: Any) -> os.stat_result:
    """os.stat, answered by CAPIO for CAPIO paths."""
    target = capio_target(path)
    if target is None:
        return os.stat(path)
    if ends_in_slash(path):
        mode = mode_of(target)
        if mode is not None and not stat.S_ISDIR(mode):
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), os.fspath(path))
    try:
        return _pycapio._stat(target)
    except OSError as exc:
        if isinstance(exc, _pycapio.PyCAPIOException) or exc.errno is None:
            raise
        raise OSError(exc.errno, exc.strerror, os.fspath(path)) from None  # named as by os.stat


def _getsize(filename: Any) -> int:
    return _stat(filename).st_size


def _getmtime(filename: Any) -> float:
    return _stat(filename).st_mtime


def _getatime(filename: Any) -> float:
    return _stat(filename).st_atime


def _getctime(filename: Any) -> float:
    return _stat(filename).st_ctime


def _samefile(f1: Any, f2: Any) -> bool:
    # A CAPIO file's st_ino/st_dev are its data object's, whatever name (or link) reached it.
    return posixpath.samestat(_stat(f1), _stat(f2))


class PyCapioPath:
    """A drop-in for ``os.path`` (``posixpath``) that knows the CAPIO directory.

    Every public name of ``posixpath`` is here with its signature. Pure path arithmetic and every
    path outside the CAPIO directory go to ``posixpath`` unchanged; for CAPIO paths, ``exists``,
    ``lexists``, ``islink``, ``isfile``, ``isdir``, ``getsize``, ``getmtime``, ``getatime``, ``getctime`` and
    ``samefile`` are answered by the CAPIO server. They never block: a missing CAPIO file is
    ``False`` or ``FileNotFoundError``, as ``posixpath`` says for a missing file.
    """

    # constants
    curdir = posixpath.curdir
    pardir = posixpath.pardir
    extsep = posixpath.extsep
    sep = posixpath.sep
    pathsep = posixpath.pathsep
    defpath = posixpath.defpath
    altsep = posixpath.altsep
    devnull = posixpath.devnull
    supports_unicode_filenames = posixpath.supports_unicode_filenames

    # pure path arithmetic (and cwd / symlink look-ups on the real file system)
    normcase = staticmethod(posixpath.normcase)
    isabs = staticmethod(posixpath.isabs)
    join = staticmethod(posixpath.join)
    splitdrive = staticmethod(posixpath.splitdrive)
    split = staticmethod(posixpath.split)
    splitext = staticmethod(posixpath.splitext)
    basename = staticmethod(posixpath.basename)
    dirname = staticmethod(posixpath.dirname)
    commonprefix = staticmethod(posixpath.commonprefix)
    commonpath = staticmethod(posixpath.commonpath)
    expanduser = staticmethod(posixpath.expanduser)
    expandvars = staticmethod(posixpath.expandvars)
    normpath = staticmethod(posixpath.normpath)
    abspath = staticmethod(posixpath.abspath)
    realpath = staticmethod(posixpath.realpath)
    relpath = staticmethod(posixpath.relpath)
    samestat = staticmethod(posixpath.samestat)
    sameopenfile = staticmethod(posixpath.sameopenfile)
    # CAPIO has no mount points: for CAPIO paths the answer is the disk's.
    ismount = staticmethod(posixpath.ismount)

    # file-system queries, CAPIO-aware
    exists = staticmethod(_exists)
    lexists = staticmethod(_lexists)
    islink = staticmethod(_islink)
    isfile = staticmethod(_isfile)
    isdir = staticmethod(_isdir)
    getsize = staticmethod(_getsize)
    getmtime = staticmethod(_getmtime)
    getatime = staticmethod(_getatime)
    getctime = staticmethod(_getctime)
    samefile = staticmethod(_samefile)

    def __init__(self) -> None:
        raise TypeError("PyCapioPath is a namespace like os.path; use its functions directly")


# Names that newer Pythons add to posixpath (isjunction, splitroot, isdevdrive, ...) come along.
def _add_missing_names() -> None:
    for name in posixpath.__all__:
        if not hasattr(PyCapioPath, name):
            value = getattr(posixpath, name)
            setattr(PyCapioPath, name, staticmethod(value) if callable(value) else value)


_add_missing_names()
