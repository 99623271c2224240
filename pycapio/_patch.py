"""The patch registry: one table of what is replaced, and putting it in and taking it out.

The patch is reference-counted and process-wide; the stdlib's aliases, ``os.supports_*`` sets
and bound defaults, and the public ``*_proxy`` names, are all derived from the table."""

from __future__ import annotations

import _io
import builtins
import io
import os
import posix
import shutil
import sys
import threading
import types
from typing import Any

from . import _disguise, _lifecycle, _open, _osattr, _osfd, _ospatch, _pycapio
from ._dirs import DirEntry
from ._path import PyCapioPath
from ._rawio import CapioFileIO
from ._route import originals

__all__ = ["TABLE", "activate", "deactivate", "is_patched"]

# -- installing -------------------------------------------------------------------------------------
#
# The patch is process-wide (builtins and the os module are), so it is reference-counted rather than
# stacked: it goes in when the first active context starts and comes out, restoring exactly what was
# there before, when the last one ends, in whatever order threads and generators enter and leave.

_MODULES = {"builtins": builtins, "io": io, "os": os, "shutil": shutil}

# THE table: what is replaced, as "module.name" -> the CAPIO-aware implementation. Everything that
# lists proxies (what is installed and restored, the homes and aliases, the os.supports_* sets,
# the public *_proxy names) is derived from it.
TABLE: dict[str, Any] = {
    "builtins.open": _open.open_proxy,
    "io.open": _open.open_proxy,
    # CAPIO raw files and directory entries pass isinstance checks against the real classes.
    "io.FileIO": _disguise.class_proxy(io.FileIO, (CapioFileIO,), _open.new_fileio, subclass=True),
    "os.DirEntry": _disguise.class_proxy(os.DirEntry, (DirEntry,), os.DirEntry, subclass=False),
    "os.path": PyCapioPath,
    "os.mkdir": _ospatch.mkdir_proxy,
    "os.makedirs": _ospatch.makedirs_proxy,
    "os.scandir": _ospatch.scandir_proxy,
    "os.listdir": _ospatch.listdir_proxy,
    "os.stat": _ospatch.stat_proxy,
    "os.lstat": _ospatch.lstat_proxy,
    "os.fstat": _osfd.fstat_proxy,
    "os.access": _ospatch.access_proxy,
    "os.remove": _ospatch.remove_proxy,
    "os.unlink": _ospatch.unlink_proxy,
    "os.rmdir": _ospatch.rmdir_proxy,
    "os.rename": _ospatch.rename_proxy,
    "os.replace": _ospatch.replace_proxy,
    "os.chmod": _osattr.chmod_proxy,
    "os.fchmod": _osattr.fchmod_proxy,
    "os.umask": _osattr.umask_proxy,
    "os.chown": _osattr.chown_proxy,
    "os.lchown": _osattr.lchown_proxy,
    "os.fchown": _osattr.fchown_proxy,
    "os.utime": _osattr.utime_proxy,
    "os.symlink": _ospatch.symlink_proxy,
    "os.link": _ospatch.link_proxy,
    "os.readlink": _ospatch.readlink_proxy,
    "os.mkfifo": _ospatch.mkfifo_proxy,
    "os.truncate": _osattr.truncate_proxy,
    "os.listxattr": _osattr.listxattr_proxy,
    "os.getxattr": _osattr.getxattr_proxy,
    "os.setxattr": _osattr.setxattr_proxy,
    "os.removexattr": _osattr.removexattr_proxy,
    "os.open": _osfd.open_fd_proxy,
    "os.close": _osfd.close_proxy,
    "os.read": _osfd.read_proxy,
    "os.pread": _osfd.pread_proxy,
    "os.write": _osfd.write_proxy,
    "os.pwrite": _osfd.pwrite_proxy,
    "os.lseek": _osfd.lseek_proxy,
    "os.ftruncate": _osfd.ftruncate_proxy,
    "os.fsync": _osfd.fsync_proxy,
    "os.fdatasync": _osfd.fdatasync_proxy,
    "os.sendfile": _osfd.sendfile_proxy,
    "shutil.rmtree": _ospatch.rmtree_proxy,
}


def _named(key: str) -> tuple[Any, str]:
    mod, name = key.split(".", 1)
    return _MODULES[mod], name


# Built-in originals also live in the module their __module__ or __self__ names (posix.unlink is
# os.unlink, _io.open is io.open; io.open_code opens through _io.open): that name is replaced by
# the same proxy, so pickle (which finds a built-in by module and name, and checks it is the same
# object) and code using those modules directly see one function. Same for the classes.
_HOMES = {"posix": posix, "_io": _io}


def _home_keys(key: str) -> list[str]:
    mod, name = _named(key)
    if not hasattr(mod, name):
        return []
    original = getattr(mod, name)
    homes = []
    for home_name, home in _HOMES.items():
        if getattr(home, name, None) is original and (
            getattr(original, "__self__", None) is home or getattr(original, "__module__", None) == home_name
        ):
            homes.append(f"{home_name}.{name}")
    return homes


_HOME_OF: dict[str, str] = {home: key for key in TABLE for home in _home_keys(key)}

# Every name replaced, as (module, name), and its key ("module.name"; _io calls itself io).
_KEYS = tuple(
    key
    for key in (*TABLE, *_HOME_OF)
    if hasattr({**_MODULES, **_HOMES}[key.split(".", 1)[0]], key.split(".", 1)[1])  # e.g. no xattrs
)
_PATCHED = tuple(({**_MODULES, **_HOMES}[key.split(".", 1)[0]], key.split(".", 1)[1]) for key in _KEYS)

# Standard-library modules that captured an original under another name when imported (tarfile's
# bltn_open is the built-in open): while patched they get the proxy too. Module, attribute, key.
_ALIASES = (
    ("bz2", "_builtin_open", "builtins.open"),
    ("tarfile", "bltn_open", "builtins.open"),
    ("tokenize", "_builtin_open", "builtins.open"),
)
_aliased: list[tuple[types.ModuleType, str, Any, Any]] = []

# The os.supports_* sets list the functions that take dir_fd, an fd, follow_symlinks or
# effective_ids; code checks membership at call time (shutil.copystat does), so while patched a
# proxy is listed wherever the function it replaces is.
_SUPPORTS = tuple(
    getattr(os, name)
    for name in ("supports_dir_fd", "supports_fd", "supports_follow_symlinks", "supports_effective_ids")
)

_patch_lock = threading.RLock()
_patch_depth = 0
_listed: list[tuple[set[Any], Any]] = []


def _snapshot() -> dict[str, Any]:
    return {key: getattr(mod, name) for (mod, name), key in zip(_PATCHED, _KEYS, strict=True)}


# What the proxies fall back to (see _route.originals): refreshed in place when the patch goes in.
_originals: dict[str, Any] = originals
_originals.update(_snapshot())

_disguised: dict[str, Any] = {}


def _proxies() -> dict[str, Any]:
    """key -> the object installed there (see _dress)."""
    return _disguised


def _install(values: dict[str, Any]) -> None:
    for (mod, name), key in zip(_PATCHED, _KEYS, strict=True):
        setattr(mod, name, values[key])


def _patch_aliases(proxies: dict[str, Any]) -> None:
    for modname, attr, key in _ALIASES:
        module = sys.modules.get(modname)
        if module is not None and getattr(module, attr, None) is _originals[key]:
            setattr(module, attr, proxies[key])
            _aliased.append((module, attr, _originals[key], proxies[key]))


def _restore_aliases(proxies: dict[str, Any]) -> None:
    while _aliased:
        module, attr, original, proxy = _aliased.pop()
        if getattr(module, attr, None) is proxy:
            setattr(module, attr, original)
    # A module first imported while patched captured the proxy: it gets the original back too.
    for modname, attr, key in _ALIASES:
        loaded = sys.modules.get(modname)
        if loaded is not None and getattr(loaded, attr, None) is proxies[key]:
            setattr(loaded, attr, _originals[key])


def _list_in_supports(proxies: dict[str, Any]) -> None:
    for key, proxy in proxies.items():
        original = _originals.get(key)
        for supported in _SUPPORTS:
            if original in supported and proxy not in supported:
                supported.add(proxy)
                _listed.append((supported, proxy))


def _unlist_from_supports() -> None:
    while _listed:
        supported, proxy = _listed.pop()
        supported.discard(proxy)


# Functions that bound an os function as a default argument when their module was imported
# (tempfile's temporary-file closer binds os.unlink): while patched they get the proxy instead,
# or a NamedTemporaryFile in the CAPIO directory could not delete itself.
_DEFAULT_BINDERS = ("tempfile",)
_rebound: list[tuple[Any, tuple[Any, ...]]] = []


def _rebind_defaults(proxies: dict[str, Any]) -> None:
    by_original = {id(_originals[key]): proxy for key, proxy in proxies.items() if key in _originals}
    for name in _DEFAULT_BINDERS:
        module = sys.modules.get(name)
        if module is None:
            continue
        for cls in [v for v in vars(module).values() if isinstance(v, type)]:
            for func in vars(cls).values():
                defaults = getattr(func, "__defaults__", None)
                if not defaults or not any(id(d) in by_original for d in defaults):
                    continue
                _rebound.append((func, defaults))
                func.__defaults__ = tuple(by_original.get(id(d), d) for d in defaults)


def _restore_defaults() -> None:
    while _rebound:
        func, defaults = _rebound.pop()
        func.__defaults__ = defaults


def activate() -> None:
    global _patch_depth
    with _patch_lock:
        if _patch_depth == 0:
            _originals.update(_snapshot())
            proxies = _proxies()
            _install(proxies)
            _patch_aliases(proxies)
            _list_in_supports(proxies)
            _rebind_defaults(proxies)
            _lifecycle.export_context()
            # After os.umask's proxy is in: from now on it reports every change.
            _pycapio._track_umask(True)
        _patch_depth += 1


def deactivate() -> None:
    global _patch_depth
    with _patch_lock:
        _patch_depth -= 1
        if _patch_depth == 0:
            _pycapio._track_umask(False)
            _lifecycle.unexport_context()
            _restore_defaults()
            _unlist_from_supports()
            _restore_aliases(_proxies())
            _install(_originals)


def refresh_export() -> None:
    """The settings children inherit changed: put them in the environment now if patched."""
    with _patch_lock:
        if _patch_depth > 0:
            _lifecycle.export_context()


def is_patched() -> bool:
    return _patch_depth > 0


def _dress() -> None:
    """Make the installed proxies: each implementation dressed as the original it replaces (see
    _disguise), once, from the originals of import time. The public names (``open_proxy``,
    ``pycapio._ospatch.stat_proxy``, ...) in the implementations' modules are rebound to them:
    they are what gets installed."""
    made: dict[int, Any] = {}
    for key, impl in TABLE.items():
        original = _originals.get(key)
        if original is None:
            continue
        if id(original) not in made:
            if isinstance(original, types.BuiltinFunctionType):
                made[id(original)] = _disguise.as_builtin(impl, original)
            elif isinstance(original, types.FunctionType):
                made[id(original)] = _disguise.as_function(impl, original)
            else:
                made[id(original)] = impl
        proxy = _disguised[key] = made[id(original)]
        module = sys.modules[getattr(impl, "__module__", "")]
        for name, value in list(vars(module).items()):
            if value is impl and name.endswith("_proxy"):
                setattr(module, name, proxy)
    for home, key in _HOME_OF.items():
        if key in _disguised:
            _disguised[home] = _disguised[key]


_dress()
