"""``CapioContext`` and the proxies it installs in place of Python's file-system entry points."""

from __future__ import annotations

import _io
import atexit
import builtins
import errno
import functools
import inspect
import io
import json
import os
import posix
import shutil
import signal
import stat
import sys
import threading
import types
import warnings
from collections.abc import Callable, Generator
from typing import Any, TypeVar

from . import _disguise, _ospatch, _pycapio
from ._dirs import DirEntry, PyCapioScandirWrapper
from ._fileio import (
    _FAST_MODES,
    DEFAULT_TEXT_ENCODING,
    WARN_DEFAULT_ENCODING,
    CapioFileIO,
    close_open_files,
    forget_open_files,
    open_capio,
    open_fast,
    open_with_opener,
    raw_mode_key,
    warn_default_encoding,
)
from ._path import PyCapioPath, capio_target

__all__ = [
    "CapioContext",
    "listdir_proxy",
    "makedirs_proxy",
    "mkdir_proxy",
    "open_proxy",
    "scandir_proxy",
]

_F = TypeVar("_F", bound=Callable[..., Any])

# -- patching -------------------------------------------------------------------------------------
#
# The patch is process-wide (builtins and the os module are), so it is reference-counted rather than
# stacked: it goes in when the first active context starts and comes out, restoring exactly what was
# there before, when the last one ends, in whatever order threads and generators enter and leave.

_MODULES = {"builtins": builtins, "io": io, "os": os, "shutil": shutil}

# What is replaced, as "module.name" -> the CAPIO-aware implementation.
_IMPLEMENTATIONS: dict[str, Any] = {
    "builtins.open": None,  # open_proxy, filled in below (defined further down)
    "io.open": None,
    "os.mkdir": None,
    "os.makedirs": None,
    "os.scandir": None,
    "os.listdir": None,
    "os.path": PyCapioPath,
    "io.FileIO": None,
    "os.DirEntry": None,
    **_ospatch.PROXIES,
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


_HOME_OF: dict[str, str] = {home: key for key in _IMPLEMENTATIONS for home in _home_keys(key)}

# Every name replaced, as (module, name), and its key ("module.name"; _io calls itself io).
_KEYS = tuple(
    key
    for key in (*_IMPLEMENTATIONS, *_HOME_OF)
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


# What the proxies fall back to: the callables in place when the patch went in (import time until
# then), so code that had already wrapped open() (a debugger, a test mock) keeps working. One dict,
# shared with the os/shutil proxies and refreshed in place.
_originals: dict[str, Any] = _ospatch.originals
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


def _activate() -> None:
    global _patch_depth
    with _patch_lock:
        if _patch_depth == 0:
            _originals.update(_snapshot())
            proxies = _proxies()
            _install(proxies)
            _patch_aliases(proxies)
            _list_in_supports(proxies)
            _rebind_defaults(proxies)
            _export_context()
            # After os.umask's proxy is in: from now on it reports every change.
            _pycapio._track_umask(True)
        _patch_depth += 1


def _deactivate() -> None:
    global _patch_depth
    with _patch_lock:
        _patch_depth -= 1
        if _patch_depth == 0:
            _pycapio._track_umask(False)
            _unexport_context()
            _restore_defaults()
            _unlist_from_supports()
            _restore_aliases(_proxies())
            _install(_originals)


def _is_patched() -> bool:
    return _patch_depth > 0


# -- proxies --------------------------------------------------------------------------------------


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
    if (
        type(file) is str
        and type(mode) is str
        and mode in _FAST_MODES
        and not file.endswith("/")
        and type(buffering) is int
        and buffering == -1
        and closefd is True
        and opener is None
        and errors is None
        and newline is None
        and (encoding is None or (type(encoding) is str and "b" not in mode and "\0" not in encoding))
    ):
        f = open_fast(file, mode, encoding)
        if f is not None:
            return f
        if WARN_DEFAULT_ENCODING:
            return _open_warning_here(file, mode, buffering, encoding, errors, newline, closefd, opener)
        return _originals["builtins.open"](file, mode, buffering, encoding, errors, newline, closefd, opener)
    if isinstance(file, int) and not isinstance(file, bool):
        target = "" if file >= 0 and _pycapio._is_capio_fd(file) else None
    else:
        target = capio_target(file)
    if target is None:
        if WARN_DEFAULT_ENCODING or (type(buffering) in (int, bool) and buffering == 1):
            return _open_warning_here(file, mode, buffering, encoding, errors, newline, closefd, opener)
        return _originals["builtins.open"](file, mode, buffering, encoding, errors, newline, closefd, opener)
    return open_capio(file, mode, buffering, encoding, errors, newline, closefd, opener)


def _binary_mode(mode: object) -> bool:
    """Whether open() accepts ``mode`` and it is binary (as _io.open validates it)."""
    if type(mode) is not str or "b" not in mode or "t" in mode:
        return False
    if len(set(mode)) != len(mode) or not set(mode) <= set("xrwa+b"):
        return False
    return sum(ch in mode for ch in "xrwa") == 1


def _open_warning_here(
    file: Any,
    mode: Any,
    buffering: Any,
    encoding: Any,
    errors: Any,
    newline: Any,
    closefd: Any,
    opener: Any,
) -> Any:
    """The original open() where it would warn: the warnings it gives from C name the innermost
    Python frame, which would be open_proxy's; given here, they name open()'s caller."""
    original = _originals["builtins.open"]
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
            stacklevel=3,  # _open_warning_here <- open_proxy <- caller
        )
        buffering = -1
    if not (WARN_DEFAULT_ENCODING and encoding is None and type(mode) is str and "b" not in mode):
        return original(file, mode, buffering, encoding, errors, newline, closefd, opener)
    f = original(file, mode, buffering, DEFAULT_TEXT_ENCODING, errors, newline, closefd, opener)
    try:
        warn_default_encoding(3)  # _open_warning_here <- open_proxy <- caller
    except BaseException:
        f.close()
        raise
    return f


def mkdir_proxy(path: Any, mode: int = 0o777, *, dir_fd: int | None = None) -> None:
    """``os.mkdir`` that creates directories inside the CAPIO directory in CAPIO.

    Raises ``FileExistsError`` (and the other ``OSError`` subclasses) as ``os.mkdir`` does. Calls
    with ``dir_fd`` and paths outside the CAPIO directory go to the original ``os.mkdir``.
    """
    target = capio_target(path) if dir_fd is None else None
    if target is None:
        _originals["os.mkdir"](path, mode, dir_fd=dir_fd)
        return
    try:
        _pycapio.pycapio_mkdir(target, mode)
    except OSError as exc:
        # Named as the caller named it ("d/" stays "d/"), as os.mkdir does.
        raise _ospatch._oserror(exc, os.fspath(path)) from None


def makedirs_proxy(name: Any, mode: int = 0o777, exist_ok: bool = False) -> None:
    """``os.makedirs``: every missing level is created, inside CAPIO for levels in the CAPIO
    directory and by the original ``os.mkdir`` above it; ``exist_ok`` as in ``os.makedirs``."""
    if capio_target(name) is None:
        _originals["os.makedirs"](name, mode, exist_ok)
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
            mode = _ospatch._mode(target, True)
            if mode is not None and not stat.S_ISDIR(mode):
                raise _ospatch._not_a_directory(path) from None
        raise _ospatch._oserror(exc, os.fspath(path)) from None


def scandir_proxy(path: Any = ".") -> Any:
    """``os.scandir``: a :class:`PyCapioScandirWrapper` for directories inside the CAPIO directory."""
    if path is None:
        path = "."
    if capio_target(path) is None:
        return _originals["os.scandir"](path)
    return _capio_listing(path)


def listdir_proxy(path: Any = ".") -> list[Any]:
    """``os.listdir``: names (``bytes`` if ``path`` is ``bytes``) of a directory inside CAPIO."""
    if path is None:
        path = "."
    if capio_target(path) is None:
        return _originals["os.listdir"](path)  # type: ignore[no-any-return]
    with _capio_listing(path) as entries:
        return [entry.name for entry in entries]


def _new_fileio(*args: Any, **kwargs: Any) -> Any:
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
        if type(file) is int:
            capio = opener is None and file >= 0 and _pycapio._is_capio_fd(file)
        else:
            capio = capio_target(file) is not None
        if capio and type(mode) is str:
            if opener is None:
                return CapioFileIO(file, mode, closefd)
            return open_with_opener(file, raw_mode_key(mode), bool(closefd), opener)
    return _originals["io.FileIO"](*args, **kwargs)


_IMPLEMENTATIONS.update(
    {
        "builtins.open": open_proxy,
        "io.open": open_proxy,
        "os.mkdir": mkdir_proxy,
        "os.makedirs": makedirs_proxy,
        "os.scandir": scandir_proxy,
        "os.listdir": listdir_proxy,
        # CAPIO raw files and directory entries pass isinstance checks against the real classes.
        "io.FileIO": _disguise.class_proxy(io.FileIO, (CapioFileIO,), _new_fileio, subclass=True),
        "os.DirEntry": _disguise.class_proxy(os.DirEntry, (DirEntry,), os.DirEntry, subclass=False),
    }
)


def _dress() -> None:
    """Make the installed proxies: each implementation dressed as the original it replaces (see
    _disguise), once, from the originals of import time. The public names (``open_proxy``,
    ``pycapio._ospatch.stat_proxy``, ...) are rebound to them: they are what gets installed."""
    made: dict[int, Any] = {}
    for key, impl in _IMPLEMENTATIONS.items():
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
        for namespace in (globals(), vars(_ospatch)):
            for name, value in list(namespace.items()):
                if value is impl and name.endswith("_proxy"):
                    namespace[name] = proxy
        if key in _ospatch.PROXIES:
            _ospatch.PROXIES[key] = proxy
    for home, key in _HOME_OF.items():
        if key in _disguised:
            _disguised[home] = _disguised[key]


_dress()


# -- initialisation -------------------------------------------------------------------------------

_init_lock = threading.Lock()
_init_key: tuple[str, str, str] | None = None
_teardown_server = True
_atexit_registered = False


_detach_lock = threading.RLock()


def _detach(teardown_server: bool) -> None:
    """Flush and close the CAPIO files the program left open, then detach (committing them).
    One at a time: a SIGTERM's helper thread waits for an exit already under way."""
    with _detach_lock:
        close_open_files()
        _pycapio.pycapio_teardown(teardown_server)


def _atexit_teardown() -> None:
    _detach(_teardown_server)


def _child_teardown_server() -> bool:
    """Whether a multiprocessing child stops the server as it detaches: only if the child started
    pycapio itself (a decorated target in a child of a process without CAPIO, or an explicit
    CapioContext there), as a process that started it does at exit. A child forked from a CAPIO
    process, or joined to its parent's app at start-up, is one more client of the parent's."""
    return _teardown_server and not _forked_from_capio and not _inherited


def _teardown_multiprocessing_child() -> None:
    _detach(_child_teardown_server())


def _after_fork_in_child() -> None:
    global _forked_from_capio
    _forked_from_capio = _pycapio._is_initialized()
    _pycapio._after_fork_in_child()
    # The files still open are the parent's: the child neither flushes nor closes them at exit.
    forget_open_files()


# SIGTERM in a multiprocessing child: Pool.terminate() — which ``with Pool(...)`` calls on exit —
# stops idle workers with it. Dying at once would abort the files they wrote (the server cannot tell
# SIGTERM from a crash), so the child commits first, unless it is still writing a file (then it dies
# like any killed producer and the server aborts its files), and then dies by the signal.
#
# A Python-level handler alone is not enough: it runs in the main thread between bytecodes, and a
# signal that lands just before the main thread blocks (a pool worker waits for tasks on a
# semaphore) would be noticed only when the wait ends — never, for a terminated pool. So the
# signal's wake-up byte (signal.set_wakeup_fd) is watched by a helper thread, which does the work
# whatever the main thread is blocked on.

_sigterm_lock = threading.Lock()


def _commit_then_die(signum: int = signal.SIGTERM, frame: object = None) -> None:
    if not _sigterm_lock.acquire(blocking=False):
        return  # the other thread is on it
    try:
        if not any(f.writable() for f in _fileio_open_files() if not f.closed):
            _detach(_child_teardown_server())
    except BaseException:  # dying anyway; the server aborts what it must
        pass
    _pycapio._die_by_signal(signal.SIGTERM)


def _fileio_open_files() -> list[Any]:
    from ._fileio import _open_files

    return list(_open_files)


def _watch_sigterm(fd: int) -> None:
    read = _originals["os.read"]
    while True:
        try:
            woken = read(fd, 64)
        except InterruptedError:
            continue
        except OSError:
            return
        if not woken:
            return
        if signal.SIGTERM in woken:
            _commit_then_die()


def _commit_on_sigterm() -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return  # the program handles SIGTERM itself
    r, w = os.pipe()
    os.set_blocking(w, False)
    try:
        previous = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
    except ValueError:
        previous = -2
    if previous != -1:  # someone else watches signals this way (an event loop): leave SIGTERM be
        if previous >= 0:
            signal.set_wakeup_fd(previous)
        os.close(r)
        os.close(w)
        return
    signal.signal(signal.SIGTERM, _commit_then_die)
    threading.Thread(target=_watch_sigterm, args=(r,), name="pycapio-sigterm", daemon=True).start()


_forked_from_capio = False


def _setup_multiprocessing_child(_: object) -> None:
    """Run in a multiprocessing child (every start method): detach cleanly when it ends.

    A forked child ends with ``os._exit`` (no ``atexit``), which the server cannot tell from a
    crash, so the files it wrote would be aborted instead of committed. multiprocessing runs its
    own finalizers before that exit; this registers one (the registry is cleared just before this
    runs). A pool's workers are stopped with SIGTERM when the pool is terminated: that commits too.
    """
    from multiprocessing import util

    util.Finalize(None, _teardown_multiprocessing_child, exitpriority=-100)
    if _forked_from_capio or _pycapio._is_initialized():
        _commit_on_sigterm()


# -- child processes ------------------------------------------------------------------------------
#
# A spawned multiprocessing worker, or any Python program a step starts, is a fresh interpreter
# that knows nothing of this process's CapioContext. While a context is active its settings are in
# the environment (CONTEXT_ENV, JSON); pycapio's .pth file (installed in site-packages) runs
# pycapio._startup in every new interpreter, which, when the variable is set, makes the process a
# client of the same app, patched for its whole life (see start_inherited).

CONTEXT_ENV = "PYCAPIO_CONTEXT"
_exported: str | None = None
_saved_env: str | None = None
_env_exported = False
_inherited = False


def _export_context() -> None:
    global _saved_env, _env_exported
    if _exported is None:
        return
    if not _env_exported:
        _saved_env = os.environ.get(CONTEXT_ENV)
        _env_exported = True
    os.environ[CONTEXT_ENV] = _exported


def _unexport_context() -> None:
    global _env_exported
    if not _env_exported:
        return
    _env_exported = False
    if _saved_env is None:
        os.environ.pop(CONTEXT_ENV, None)
    else:
        os.environ[CONTEXT_ENV] = _saved_env


def _settings_json(ctx: CapioContext, real_dir: str) -> str:
    def absolute(p: str) -> str:
        return os.path.abspath(p) if p and ("/" in p or p == ".") else p

    return json.dumps(
        {
            "capio_dir": real_dir,
            "app_name": ctx.app_name,
            "workflow_name": ctx.workflow_name,
            "silent": ctx.silent,
            "server_exec_path": absolute(os.fspath(ctx.server_exec_path)),
            "capio_cl_configuration_file": absolute(os.fspath(ctx.capio_cl_configuration_file)),
            "await_server_timeout_seconds": ctx.await_server_timeout_seconds,
        },
        sort_keys=True,
    )


def start_inherited(settings: dict[str, Any]) -> None:
    """Make this (new) process a client of the app described by ``settings`` (what a parent's
    active context exported), patched until it exits, committing its files at exit."""
    global _inherited
    ctx = CapioContext(**settings, teardown_server=False)
    ctx._initialise()
    _inherited = True
    _activate()
    if "--multiprocessing-fork" in sys.orig_argv:
        # A spawned multiprocessing child: multiprocessing runs no after-fork hooks for those.
        _commit_on_sigterm()


def _leave_inherited() -> None:
    """An explicit CapioContext with other settings replaces the inherited one (a child that is
    itself a ``pycapio`` step of another app)."""
    global _inherited
    _inherited = False
    _deactivate()
    _detach(False)


def _set_exported(value: str) -> None:
    global _exported
    with _patch_lock:
        _exported = value
        if _patch_depth > 0:
            _export_context()


def _same_dir(real_dir: str) -> bool:
    try:
        return os.path.realpath(_pycapio.pycapio_get_capio_dir()) == real_dir
    except OSError:
        return False


class CapioContext:
    """Run code with CAPIO interception: as a decorator or as a (re-entrant) context manager.

    On first use in a process it initialises CAPIO — attaching to the workflow's server, starting
    it if none runs — and registers :func:`pycapio_teardown` (with ``teardown_server``) at exit.
    Later uses with the same ``capio_dir``/``app_name``/``workflow_name`` reuse that; different
    ones raise :class:`PyCAPIOException` until ``pycapio_teardown()`` is called.

    While active, ``open``, ``io.open``, ``io.FileIO``, ``os.mkdir``, ``os.makedirs``,
    ``os.scandir``, ``os.listdir``, ``os.DirEntry`` and ``os.path`` — and the stat, remove, rename,
    rmdir, access, fd-level and xattr functions of ``os`` and ``shutil.rmtree`` (see
    :mod:`pycapio._ospatch`) — are replaced by CAPIO-aware proxies that look like the originals
    (see :mod:`pycapio._disguise`); paths outside the CAPIO directory behave exactly as before. Decorated
    generator and ``async`` functions are patched while their body runs (not while they are
    suspended). The patch is process-wide: other threads see it while any context is active, and
    Python child processes started meanwhile join the same app (``PYCAPIO_CONTEXT``).
    """

    def __init__(
        self,
        *,
        capio_dir: str | os.PathLike[str] = ".",
        app_name: str = _pycapio.CAPIO_DEFAULT_APP_NAME,
        workflow_name: str = _pycapio.CAPIO_DEFAULT_WORKFLOW_NAME,
        silent: bool = True,
        server_exec_path: str = "capio_server",
        capio_cl_configuration_file: str = "",
        await_server_timeout_seconds: float = 2,
        teardown_server: bool = True,
    ) -> None:
        self.capio_dir = capio_dir
        self.app_name = app_name
        self.workflow_name = workflow_name
        self.silent = silent
        self.server_exec_path = server_exec_path
        self.capio_cl_configuration_file = capio_cl_configuration_file
        self.await_server_timeout_seconds = await_server_timeout_seconds
        self.teardown_server = teardown_server

    def __repr__(self) -> str:
        return (
            f"CapioContext(capio_dir={self.capio_dir!r}, app_name={self.app_name!r}, "
            f"workflow_name={self.workflow_name!r})"
        )

    def _initialise(self) -> None:
        global _init_key, _teardown_server, _atexit_registered
        os.environ["SILENT"] = "ON" if self.silent else "OFF"
        key = (os.path.realpath(os.fspath(self.capio_dir)), self.app_name, self.workflow_name)
        with _init_lock:
            was_initialised = _pycapio._is_initialized()
            try:
                # Attaches (starting the server if needed); when already initialised it returns at
                # once if every setting is the same and raises PyCAPIOException otherwise.
                _pycapio.pycapio_init(
                    CAPIO_DIR=self.capio_dir,
                    CAPIO_APP_NAME=self.app_name,
                    CAPIO_WORKFLOW_NAME=self.workflow_name,
                    capio_server_exec_path=self.server_exec_path,
                    capio_cl_configuration_file=self.capio_cl_configuration_file,
                    await_server_timeout_seconds=self.await_server_timeout_seconds,
                )
            except _pycapio.PyCAPIOException as exc:
                if not was_initialised:
                    raise
                if key == _init_key and _same_dir(key[0]):
                    # Same directory, app and workflow; only start-up settings (server path,
                    # timeout, CAPIO-CL file) differ, and those no longer matter: reuse.
                    return
                if _inherited:
                    _leave_inherited()
                    _init_key = None
                    return self._initialise()
                raise _pycapio.PyCAPIOException(
                    f"{self!r} cannot be used: {exc}"
                    " (a process belongs to one CAPIO directory, app and workflow at a time)"
                ) from exc
            if not was_initialised:
                _teardown_server = self.teardown_server
            _init_key = key
            _set_exported(_settings_json(self, key[0]))
            if not _atexit_registered:
                atexit.register(_atexit_teardown)
                _atexit_registered = True

    # -- context manager ---------------------------------------------------------------------------

    def __enter__(self) -> CapioContext:
        self._initialise()
        _activate()
        return self

    def __exit__(self, *exc: object) -> None:
        _deactivate()

    async def __aenter__(self) -> CapioContext:
        return self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self.__exit__(*exc)

    # -- decorator ---------------------------------------------------------------------------------

    def __call__(self, func: _F) -> _F:
        if inspect.isasyncgenfunction(func):
            return self._wrap_asyncgen(func)  # type: ignore[return-value]
        if inspect.iscoroutinefunction(func):
            return self._wrap_coroutine(func)  # type: ignore[return-value]
        if inspect.isgeneratorfunction(func):
            return self._wrap_generator(func)  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self:
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    def _wrap_generator(self, func: Callable[..., Generator[Any, Any, Any]]) -> Callable[..., Any]:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
            with self:
                gen = func(*args, **kwargs)
            return (yield from _Stepper(self, gen))

        return wrapper

    def _wrap_coroutine(self, func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self:
                coro = func(*args, **kwargs)
            return await _Awaitable(self, coro)

        return wrapper

    def _wrap_asyncgen(self, func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self:
                agen = func(*args, **kwargs)
            sent: Any = None
            thrown: BaseException | None = None
            try:
                while True:
                    step = agen.asend(sent) if thrown is None else agen.athrow(thrown)
                    try:
                        value = await _Awaitable(self, step)
                    except StopAsyncIteration:
                        return
                    try:
                        sent = yield value
                        thrown = None
                    except GeneratorExit:
                        raise
                    except BaseException as exc:  # delivered into the wrapped generator
                        thrown = exc
            finally:
                await _Awaitable(self, agen.aclose())

        return wrapper


class _Stepper:
    """Drives a generator (or an ``__await__`` iterator) with the patch active only while it runs."""

    def __init__(self, ctx: CapioContext, gen: Any) -> None:
        self._ctx = ctx
        self._gen = gen

    def __iter__(self) -> Generator[Any, Any, Any]:
        gen = self._gen
        sent: Any = None
        thrown: BaseException | None = None
        while True:
            # The context was entered (and CAPIO initialised) when the generator was created;
            # each step only needs the patch.
            _activate()
            try:
                value = gen.send(sent) if thrown is None else gen.throw(thrown)
            except StopIteration as stop:
                return stop.value
            finally:
                _deactivate()
            try:
                sent = yield value
                thrown = None
            except GeneratorExit:
                _activate()
                try:
                    gen.close()
                finally:
                    _deactivate()
                raise
            except BaseException as exc:
                thrown = exc


class _Awaitable:
    def __init__(self, ctx: CapioContext, awaitable: Any) -> None:
        self._ctx = ctx
        self._awaitable = awaitable

    def __await__(self) -> Generator[Any, Any, Any]:
        return (yield from _Stepper(self._ctx, self._awaitable.__await__()))
