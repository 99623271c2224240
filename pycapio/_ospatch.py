"""CAPIO-aware ``os`` and ``shutil`` functions of paths and directories.

The ``stat`` family, ``access``, ``remove``/``unlink``/``rmdir``, ``rename``/``replace``, links
and FIFOs, ``mkdir``/``makedirs``, ``scandir``/``listdir`` and ``shutil.rmtree`` (attributes are
in ``_osattr``, fds in ``_osfd``).

Every proxy takes its arguments as given and handles the call only when it is CAPIO's: a path
inside the CAPIO directory (absolute, or relative without ``dir_fd``) or a CAPIO fd, with arguments
it understands. Anything else — other paths and fds, ``dir_fd`` with a relative path, an unknown
keyword, a wrong type — goes to the original function with exactly the same arguments, so the
built-in raises its own error. Errors for CAPIO paths name the caller's path as the built-in does.
"""

from __future__ import annotations

import errno
import os
import stat as _stat
import sys
from collections.abc import Callable
from typing import Any

from . import _pycapio
from ._dirs import PyCapioScandirWrapper
from ._path import PyCapioPath
from ._route import as_reported, capio_target, ends_in_slash, originals
from ._route import capio_fd as _capio_fd
from ._route import follow as _follow
from ._route import fspath_or_self as _fspath
from ._route import keywords_ok as _keywords
from ._route import lexists as _lexists
from ._route import mode_of as _mode
from ._route import not_a_directory as _not_a_directory
from ._route import oserror as _oserror
from ._route import stat_of as _stat_of
from ._route import target as _target


def _own_entry(target: str, path: Any) -> None:
    """For calls that act on the name itself (unlink, rmdir): with a trailing ``/`` the name must
    be a directory, not a file nor a link to anything (``NotADirectoryError``)."""
    if ends_in_slash(path):
        mode = _mode(target, False)
        if mode is not None and not _stat.S_ISDIR(mode):
            raise _not_a_directory(path)


# -- stat family ----------------------------------------------------------------------------------

_STAT_KW = frozenset({"dir_fd", "follow_symlinks"})


def stat_proxy(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
    """``os.stat``: CAPIO files and directories (and CAPIO fds) answered by the CAPIO server."""
    if type(path) is str and not args and not kwargs and path[-1:] != "/":
        # The common call, in one native call: a plain name, every default.
        st = _pycapio._stat_path(path)
        return originals["os.stat"](path) if st is None else st
    if not args and _keywords(kwargs, _STAT_KW):
        if _capio_fd(path):
            if kwargs.get("dir_fd") is None and kwargs.get("follow_symlinks", True):
                return _pycapio._fstat(path)
        else:
            target = _target(path, kwargs.get("dir_fd"))
            if target is not None:
                return _stat_of(target, path, bool(kwargs.get("follow_symlinks", True)))
    return as_reported(path, originals["os.stat"](path, *args, **kwargs))  # type: ignore[no-any-return]


def lstat_proxy(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
    """``os.lstat``: symbolic links (which live on disk) reported themselves, CAPIO files as by
    ``os.stat``."""
    if type(path) is str and not args and not kwargs and path[-1:] != "/":
        st = _pycapio._stat_path(path, False)  # the common call, in one native call
        return originals["os.lstat"](path) if st is None else st
    if not args and _keywords(kwargs, frozenset({"dir_fd"})):
        target = _target(path, kwargs.get("dir_fd"))
        if target is not None:
            return _stat_of(target, path, follow_symlinks=False)
    return originals["os.lstat"](path, *args, **kwargs)  # type: ignore[no-any-return]


def _access(target: str, mode: int, effective_ids: bool, follow_symlinks: bool) -> bool:
    try:
        st = _pycapio._stat(target, follow_symlinks)
        st_mode, st_uid, st_gid = st.st_mode, st.st_uid, st.st_gid
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


def _named(path: Any, capio_path: str | None, dir_fd: Any) -> Any:
    """What the extension is given for a name: the name itself, unless only ``dir_fd`` locates
    it (then None: outside the CAPIO directory, as ``target`` decided)."""
    return _fspath(path) if capio_path is not None or dir_fd is None else None


def _rename_call(name: str) -> Callable[..., None]:
    def proxy(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        if not args and _keywords(kwargs, frozenset({"src_dir_fd", "dst_dir_fd"})):
            src_fd, dst_fd = kwargs.get("src_dir_fd"), kwargs.get("dst_dir_fd")
            from_, to = _target(src, src_fd), _target(dst, dst_fd)
            both = from_ is not None and to is not None
            # Across the boundary only without src_dir_fd: with one the OS moves it, as before.
            if both or ((from_ is None) != (to is None) and src_fd is None):
                if from_ is not None and to is not None:
                    _slashed_rename(from_, to, src, dst)
                try:
                    # Both in CAPIO, or EXDEV across the boundary (ENOENT first): the extension's.
                    _pycapio._rename(from_ or _fspath(src), _named(dst, to, dst_fd))
                except OSError as exc:
                    raise _oserror(exc, _fspath(src), _fspath(dst)) from None
                return
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


def link_proxy(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
    """``os.link``: a file CAPIO holds in memory cannot get a second name (``EPERM``, as
    ``link(2)`` answers on a file system without hard links; ``EXDEV`` to a path outside the
    CAPIO directory); what is on disk in the CAPIO directory is linked by the OS."""
    if not args and _keywords(kwargs, frozenset({"src_dir_fd", "dst_dir_fd", "follow_symlinks"})):
        src_fd, dst_fd = kwargs.get("src_dir_fd"), kwargs.get("dst_dir_fd")
        from_, to = _target(src, src_fd), _target(dst, dst_fd)
        if from_ is not None and ends_in_slash(src):
            mode = _mode(from_, True)
            if mode is not None and not _stat.S_ISDIR(mode):
                raise _not_a_directory(src, _fspath(dst))
        if from_ is not None or to is not None:
            follow = bool(kwargs.get("follow_symlinks", True))
            try:
                _pycapio._link_check(_named(src, from_, src_fd), _named(dst, to, dst_fd), follow)
            except OSError as exc:
                raise _oserror(exc, _fspath(src), _fspath(dst)) from None
    originals["os.link"](src, dst, *args, **kwargs)


# -- directories ----------------------------------------------------------------------------------


def mkdir_proxy(path: Any, mode: int = 0o777, *, dir_fd: int | None = None) -> None:
    """``os.mkdir`` that creates directories inside the CAPIO directory in CAPIO.

    Raises ``FileExistsError`` (and the other ``OSError`` subclasses) as ``os.mkdir`` does. Calls
    with ``dir_fd`` and paths outside the CAPIO directory go to the original ``os.mkdir``.
    """
    target = capio_target(path) if dir_fd is None else None
    if target is None:
        originals["os.mkdir"](path, mode, dir_fd=dir_fd)
        return
    try:
        _pycapio.pycapio_mkdir(target, mode)
    except OSError as exc:
        # Named as the caller named it ("d/" stays "d/"), as os.mkdir does.
        raise _oserror(exc, os.fspath(path)) from None


def makedirs_proxy(name: Any, mode: int = 0o777, exist_ok: bool = False) -> None:
    """``os.makedirs``: every missing level is created, inside CAPIO for levels in the CAPIO
    directory and by the original ``os.mkdir`` above it; ``exist_ok`` as in ``os.makedirs``."""
    if capio_target(name) is None:
        originals["os.makedirs"](name, mode, exist_ok)
        return
    # The algorithm of os.makedirs, over CAPIO-aware primitives.
    head, tail = PyCapioPath.split(name)
    if not tail:
        head, tail = PyCapioPath.split(head)
    if head and tail and not PyCapioPath.exists(head):
        try:
            makedirs_proxy(head, exist_ok=exist_ok)
        except FileExistsError:
            pass  # another process created it meanwhile
        cdir: str | bytes = os.curdir
        if isinstance(tail, bytes):
            cdir = bytes(os.curdir, "ASCII")
        if tail == cdir:  # xxx/newdir/. exists if xxx/newdir exists
            return
    try:
        mkdir_proxy(name, mode)
    except OSError:
        if not exist_ok or not PyCapioPath.isdir(name):
            raise


def _capio_listing(path: Any) -> PyCapioScandirWrapper[Any]:
    """A CAPIO directory's listing, failing as os.scandir fails: naming ``path`` as the caller
    named it (``d/`` stays ``d/``), and ``ENOTDIR`` for a file reached through a link."""
    try:
        return PyCapioScandirWrapper(path)
    except OSError as exc:
        target = capio_target(path)
        if exc.errno == errno.ENOENT and target is not None:
            mode = _mode(target, True)
            if mode is not None and not _stat.S_ISDIR(mode):
                raise _not_a_directory(path) from None
        raise _oserror(exc, os.fspath(path)) from None


def scandir_proxy(path: Any = ".") -> Any:
    """``os.scandir``: a :class:`PyCapioScandirWrapper` for directories inside the CAPIO directory."""
    if path is None:
        path = "."
    if capio_target(path) is None:
        return originals["os.scandir"](path)
    return _capio_listing(path)


def listdir_proxy(path: Any = ".") -> list[Any]:
    """``os.listdir``: names (``bytes`` if ``path`` is ``bytes``) of a directory inside CAPIO."""
    if path is None:
        path = "."
    if capio_target(path) is None:
        return originals["os.listdir"](path)  # type: ignore[no-any-return]
    with _capio_listing(path) as entries:
        return [entry.name for entry in entries]


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
