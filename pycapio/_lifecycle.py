"""The process lifecycle of a CAPIO client: exit, fork, multiprocessing, SIGTERM, children.

It detaches (committing its files) at exit, in multiprocessing children and on SIGTERM, forgets
the parent's connection after ``fork``, and puts in the environment what its children inherit."""

from __future__ import annotations

import atexit
import json
import os
import signal
import threading
from typing import TYPE_CHECKING

from . import _pycapio
from ._rawio import close_open_files, forget_open_files, open_files
from ._route import originals

if TYPE_CHECKING:
    from ._context import CapioContext

__all__ = [
    "CONTEXT_ENV",
    "after_fork_in_child",
    "attached",
    "commit_on_sigterm",
    "detach",
    "export_context",
    "init_lock",
    "setup_multiprocessing_child",
    "settings_json",
    "unexport_context",
]

# -- initialisation -------------------------------------------------------------------------------

init_lock = threading.Lock()
# Whether this process stops the server as it detaches at exit (what its first context said).
_teardown_server = True
_atexit_registered = False
# Whether this process joined its parent's app at start-up (PYCAPIO_CONTEXT; see _context).
inherited = False


_detach_lock = threading.RLock()


def detach(teardown_server: bool) -> None:
    """Flush and close the CAPIO files the program left open, then detach (committing them).
    One at a time: a SIGTERM's helper thread waits for an exit already under way."""
    with _detach_lock:
        close_open_files()
        _pycapio.pycapio_teardown(teardown_server)


def _atexit_teardown() -> None:
    detach(_teardown_server)


def _child_teardown_server() -> bool:
    """Whether a multiprocessing child stops the server as it detaches: only if the child started
    pycapio itself (a decorated target in a child of a process without CAPIO, or an explicit
    CapioContext there), as a process that started it does at exit. A child forked from a CAPIO
    process, or joined to its parent's app at start-up, is one more client of the parent's."""
    return _teardown_server and not _forked_from_capio and not inherited


def _teardown_multiprocessing_child() -> None:
    detach(_child_teardown_server())


def after_fork_in_child() -> None:
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
        if not any(f.writable() for f in open_files() if not f.closed):
            detach(_child_teardown_server())
    except BaseException:  # dying anyway; the server aborts what it must
        pass
    _pycapio._die_by_signal(signal.SIGTERM)


def _watch_sigterm(fd: int) -> None:
    read = originals["os.read"]
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


def commit_on_sigterm() -> None:
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


def setup_multiprocessing_child(_: object) -> None:
    """Run in a multiprocessing child (every start method): detach cleanly when it ends.

    A forked child ends with ``os._exit`` (no ``atexit``), which the server cannot tell from a
    crash, so the files it wrote would be aborted instead of committed. multiprocessing runs its
    own finalizers before that exit; this registers one (the registry is cleared just before this
    runs). A pool's workers are stopped with SIGTERM when the pool is terminated: that commits too.
    """
    from multiprocessing import util

    util.Finalize(None, _teardown_multiprocessing_child, exitpriority=-100)
    if _forked_from_capio or _pycapio._is_initialized():
        commit_on_sigterm()


# -- child processes ------------------------------------------------------------------------------
#
# A spawned multiprocessing worker, or any Python program a step starts, is a fresh interpreter
# that knows nothing of this process's CapioContext. While a context is active its settings are in
# the environment (CONTEXT_ENV, JSON); pycapio's .pth file (installed in site-packages) runs
# pycapio._startup in every new interpreter, which, when the variable is set, makes the process a
# client of the same app, patched for its whole life (see _context.start_inherited).

CONTEXT_ENV = "PYCAPIO_CONTEXT"
_exported: str | None = None
_saved_env: str | None = None
_env_exported = False


def export_context() -> None:
    global _saved_env, _env_exported
    if _exported is None:
        return
    if not _env_exported:
        _saved_env = os.environ.get(CONTEXT_ENV)
        _env_exported = True
    os.environ[CONTEXT_ENV] = _exported


def unexport_context() -> None:
    global _env_exported
    if not _env_exported:
        return
    _env_exported = False
    if _saved_env is None:
        os.environ.pop(CONTEXT_ENV, None)
    else:
        os.environ[CONTEXT_ENV] = _saved_env


def settings_json(ctx: CapioContext, real_dir: str) -> str:
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


def attached(settings: str, teardown_server: bool | None) -> None:
    """This process runs as a client with ``settings`` (the context's, as JSON): children started
    while a context is active inherit them, and the process detaches at exit (stopping the server
    if ``teardown_server``; None keeps what the first attach said)."""
    global _exported, _teardown_server, _atexit_registered
    if teardown_server is not None:
        _teardown_server = teardown_server
    _exported = settings
    from . import _patch  # the registry imports this module: no cycle at import time

    _patch.refresh_export()
    if not _atexit_registered:
        atexit.register(_atexit_teardown)
        _atexit_registered = True
