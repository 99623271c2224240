"""``CapioContext``: CAPIO interception for a block, function, generator or coroutine.

Also joining a parent's app at start-up (``start_inherited``)."""

from __future__ import annotations

import functools
import inspect
import os
import sys
from collections.abc import Callable, Generator
from typing import Any, TypeVar

from . import _lifecycle, _patch, _pycapio

__all__ = ["CapioContext", "start_inherited"]

_F = TypeVar("_F", bound=Callable[..., Any])


def start_inherited(settings: dict[str, Any]) -> None:
    """Make this (new) process a client of the app described by ``settings`` (what a parent's
    active context exported), patched until it exits, committing its files at exit."""
    ctx = CapioContext(**settings, teardown_server=False)
    ctx._initialise()
    _lifecycle.inherited = True
    _patch.activate()
    if "--multiprocessing-fork" in sys.orig_argv:
        # A spawned multiprocessing child: multiprocessing runs no after-fork hooks for those.
        _lifecycle.commit_on_sigterm()


def _leave_inherited() -> None:
    """An explicit CapioContext with other settings replaces the inherited one (a child that is
    itself a ``pycapio`` step of another app)."""
    _lifecycle.inherited = False
    _patch.deactivate()
    _lifecycle.detach(False)


class CapioContext:
    """Run code with CAPIO interception: as a decorator or as a (re-entrant) context manager.

    On first use in a process it initialises CAPIO — attaching to the workflow's server, starting
    it if none runs — and registers :func:`pycapio_teardown` (with ``teardown_server``) at exit.
    Later uses with the same ``capio_dir``/``app_name``/``workflow_name`` reuse that; different
    ones raise :class:`PyCAPIOException` until ``pycapio_teardown()`` is called.

    While active, ``open``, ``io.open``, ``io.FileIO``, ``os.mkdir``, ``os.makedirs``,
    ``os.scandir``, ``os.listdir``, ``os.DirEntry`` and ``os.path`` — and the stat, remove, rename,
    rmdir, access, fd-level and xattr functions of ``os`` and ``shutil.rmtree`` (see
    :mod:`pycapio._ospatch`, :mod:`pycapio._osfd` and :mod:`pycapio._osattr`) — are replaced by
    CAPIO-aware proxies that look like the originals (see :mod:`pycapio._disguise`); paths outside
    the CAPIO directory behave exactly as before. Decorated generator and ``async`` functions are
    patched while their body runs (not while they are suspended). The patch is process-wide: other
    threads see it while any context is active, and Python child processes started meanwhile join
    the same app (``PYCAPIO_CONTEXT``).
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
        os.environ["SILENT"] = "ON" if self.silent else "OFF"
        with _lifecycle.init_lock:
            while True:
                was_initialised = _pycapio._is_initialized()
                try:
                    # Attaches (starting the server if needed). Whether an attached process may go
                    # on is the extension's decision: same settings, or the same directory, app
                    # and workflow (False: its own start-up settings stay); anything else raises.
                    own = _pycapio._attach(
                        CAPIO_DIR=self.capio_dir,
                        CAPIO_APP_NAME=self.app_name,
                        CAPIO_WORKFLOW_NAME=self.workflow_name,
                        capio_server_exec_path=self.server_exec_path,
                        capio_cl_configuration_file=self.capio_cl_configuration_file,
                        await_server_timeout_seconds=self.await_server_timeout_seconds,
                    )
                    break
                except _pycapio.PyCAPIOException as exc:
                    if not was_initialised:
                        raise
                    if _lifecycle.inherited:
                        # Detached now: the next pass attaches with this context's settings,
                        # still under the lock (a recursive call would wait for it forever).
                        _leave_inherited()
                        continue
                    refused = _pycapio.PyCAPIOException(
                        f"{self!r} cannot be used: {exc}"
                        " (a process belongs to one CAPIO directory, app and workflow at a time)"
                    )
                    refused.errno = exc.errno  # the native error's, as the C API reports it
                    raise refused from exc
            if own:
                real_dir = os.path.realpath(os.fspath(self.capio_dir))
                teardown = None if was_initialised else self.teardown_server
                _lifecycle.attached(_lifecycle.settings_json(self, real_dir), teardown)

    # -- context manager ---------------------------------------------------------------------------

    def __enter__(self) -> CapioContext:
        self._initialise()
        _patch.activate()
        return self

    def __exit__(self, *exc: object) -> None:
        _patch.deactivate()

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
            _patch.activate()
            try:
                value = gen.send(sent) if thrown is None else gen.throw(thrown)
            except StopIteration as stop:
                return stop.value
            finally:
                _patch.deactivate()
            try:
                sent = yield value
                thrown = None
            except GeneratorExit:
                _patch.activate()
                try:
                    gen.close()
                finally:
                    _patch.deactivate()
                raise
            except BaseException as exc:
                thrown = exc


class _Awaitable:
    def __init__(self, ctx: CapioContext, awaitable: Any) -> None:
        self._ctx = ctx
        self._awaitable = awaitable

    def __await__(self) -> Generator[Any, Any, Any]:
        return (yield from _Stepper(self._ctx, self._awaitable.__await__()))
