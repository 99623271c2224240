"""CapioContext: initialisation rules and exact, re-entrant patching (in-process, real server)."""

from __future__ import annotations

import asyncio
import builtins
import errno
import io
import os
import posixpath
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import pycapio
from pycapio import CapioContext, PyCapioPath, _patch

from conftest import InProcess, Workflow

ORIGINAL = {
    "open": builtins.open,
    "io.open": io.open,
    "mkdir": os.mkdir,
    "makedirs": os.makedirs,
    "scandir": os.scandir,
    "listdir": os.listdir,
    "path": os.path,
}


def current() -> dict[str, Any]:
    return {
        "open": builtins.open,
        "io.open": io.open,
        "mkdir": os.mkdir,
        "makedirs": os.makedirs,
        "scandir": os.scandir,
        "listdir": os.listdir,
        "path": os.path,
    }


def assert_unpatched() -> None:
    assert current() == ORIGINAL
    assert os.path is posixpath


def assert_patched() -> None:
    assert builtins.open is pycapio.open_proxy and io.open is pycapio.open_proxy
    assert os.mkdir is pycapio.mkdir_proxy and os.makedirs is pycapio.makedirs_proxy
    assert os.scandir is pycapio.scandir_proxy and os.listdir is pycapio.listdir_proxy
    assert os.path is PyCapioPath


def test_context_manager_patches_and_restores(capio: InProcess) -> None:
    assert_unpatched()
    with capio.context() as ctx:
        assert isinstance(ctx, CapioContext)
        assert_patched()
    assert_unpatched()


def test_restores_on_exception(capio: InProcess) -> None:
    @capio.context()
    def boom() -> None:
        assert_patched()
        raise KeyError("x")

    with pytest.raises(KeyError):
        boom()
    assert_unpatched()
    with pytest.raises(ZeroDivisionError), capio.context():
        1 / 0  # noqa: B018
    assert_unpatched()


def test_nested_and_reentrant(capio: InProcess) -> None:
    ctx = capio.context()

    @ctx
    def inner() -> str:
        assert_patched()
        return "inner"

    with ctx:
        with ctx:
            assert inner() == "inner"
            assert_patched()
        assert_patched()
        with capio.context():
            assert_patched()
        assert_patched()
    assert_unpatched()


def test_restores_what_was_there_before(capio: InProcess) -> None:
    def my_open(*args: Any, **kwargs: Any) -> Any:
        return ORIGINAL["open"](*args, **kwargs)

    builtins.open = my_open
    try:
        with capio.context():
            assert builtins.open is pycapio.open_proxy
        assert builtins.open is my_open
    finally:
        builtins.open = ORIGINAL["open"]


def test_decorator_keeps_metadata_and_result(capio: InProcess) -> None:
    @capio.context()
    def documented(a: int, *, b: int = 2) -> int:
        """Doc."""
        return a + b

    assert documented.__name__ == "documented"
    assert documented.__doc__ == "Doc."
    assert documented(1, b=3) == 4


def test_generator_body_runs_patched_and_suspension_is_unpatched(capio: InProcess) -> None:
    seen = []

    @capio.context()
    def gen() -> Iterator[int]:
        seen.append(os.path is PyCapioPath)
        received = yield 1
        seen.append((received, os.path is PyCapioPath))
        try:
            yield 2
        except ValueError:
            seen.append(("thrown", os.path is PyCapioPath))
            yield 3
        return

    g = gen()
    assert_unpatched()
    assert next(g) == 1
    assert_unpatched()  # suspended: the caller's code is not intercepted
    assert g.send("hi") == 2
    assert g.throw(ValueError()) == 3
    with pytest.raises(StopIteration):
        next(g)
    assert seen == [True, ("hi", True), ("thrown", True)]
    assert_unpatched()


def test_generator_close_runs_finally_patched(capio: InProcess) -> None:
    seen = []

    @capio.context()
    def gen() -> Iterator[int]:
        try:
            yield 1
        finally:
            seen.append(os.path is PyCapioPath)

    g = gen()
    next(g)
    g.close()
    assert seen == [True]
    assert_unpatched()


def test_generator_return_value(capio: InProcess) -> None:
    @capio.context()
    def gen() -> Iterator[int]:
        yield 1
        return 42  # type: ignore[misc]

    def outer() -> Iterator[int]:
        result = yield from gen()
        assert result == 42

    assert list(outer()) == [1]


def test_async_function_body_runs_patched(capio: InProcess) -> None:
    seen = []

    @capio.context()
    async def work(x: int) -> int:
        seen.append(os.path is PyCapioPath)
        await asyncio.sleep(0)
        seen.append(os.path is PyCapioPath)
        with open(capio.path("async.txt"), "w") as f:
            f.write("async")
        return x * 2

    async def other() -> None:
        await asyncio.sleep(0)
        seen.append(("other", os.path is PyCapioPath))

    async def main() -> int:
        results = await asyncio.gather(work(21), other())
        return results[0]

    assert asyncio.iscoroutinefunction(work)
    assert asyncio.run(main()) == 42
    assert seen[0] is True and seen.count(True) == 2
    assert ("other", False) in seen
    assert_unpatched()


def test_async_generator_body_runs_patched(capio: InProcess) -> None:
    seen = []

    @capio.context()
    async def agen() -> AsyncIterator[int]:
        for i in range(3):
            seen.append(os.path is PyCapioPath)
            await asyncio.sleep(0)
            yield i

    async def main() -> list[int]:
        out = []
        async for i in agen():
            out.append(i)
            seen.append(("caller", os.path is PyCapioPath))
        return out

    assert asyncio.run(main()) == [0, 1, 2]
    assert [s for s in seen if s is True] == [True, True, True]
    assert all(s == ("caller", False) for s in seen if s is not True)
    assert_unpatched()


def test_async_with(capio: InProcess) -> None:
    async def main() -> bool:
        async with capio.context():
            return os.path is PyCapioPath

    assert asyncio.run(main())
    assert_unpatched()


def test_threads_entering_and_leaving_in_any_order(capio: InProcess) -> None:
    ctx = capio.context()
    entered = threading.Barrier(4)
    release = [threading.Event() for _ in range(4)]

    def worker(i: int) -> None:
        with ctx:
            entered.wait()
            release[i].wait(10)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for i in (2, 0, 3):
        release[i].set()
    threads[2].join()
    threads[0].join()
    threads[3].join()
    assert_patched()  # one thread still inside
    release[1].set()
    threads[1].join()
    assert_unpatched()


def test_same_arguments_reuse_and_different_ones_raise(capio: InProcess, tmp_path: Any) -> None:
    with capio.context():
        pass
    with capio.context(silent=False):
        assert os.environ["SILENT"] == "OFF"
    with capio.context():
        assert os.environ["SILENT"] == "ON"
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    for bad in (
        {"capio_dir": str(other_dir)},
        {"app_name": "another-app"},
        {"workflow_name": capio.workflow + "-x"},
    ):
        with pytest.raises(pycapio.PyCAPIOException, match="already initialised"), capio.context(**bad):
            pass
        assert_unpatched()
    # A relative spelling of the same directory is the same directory.
    cwd = os.getcwd()
    try:
        os.chdir(capio.capio_dir.parent)
        with capio.context(capio_dir="capio"):
            pass
    finally:
        os.chdir(cwd)


def test_only_a_context_s_attach_is_reused_with_other_start_up_settings(workflow: Workflow) -> None:
    # A plain pycapio_init exports nothing to children and registers no exit: a context that
    # silently reused it with other settings would skip both, so it is refused, as it always was.
    # Once a context attached the process, other start-up settings no longer matter.
    script = workflow.script(
        f"""
        import json, os, subprocess, sys
        import pycapio

        capio_dir, wf = sys.argv[1], {workflow.name!r}
        pycapio.pycapio_init(capio_dir, "app", wf)
        slower = dict(capio_dir=capio_dir, app_name="app", workflow_name=wf, await_server_timeout_seconds=5)
        try:
            with pycapio.CapioContext(**slower):
                print("reused")
        except pycapio.PyCAPIOException as exc:
            print("refused", exc.errno, "cannot be used" in str(exc))
        with pycapio.CapioContext(capio_dir=capio_dir, app_name="app", workflow_name=wf):
            pass
        with pycapio.CapioContext(**slower):
            child = "import json, os; print(json.loads(os.environ['PYCAPIO_CONTEXT'])['app_name'])"
            out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True).stdout
            print("child", out)
            with open(os.path.join(capio_dir, "out.txt"), "w") as f:
                f.write("done")
        """
    )
    r = subprocess.run(
        [sys.executable, str(script), str(workflow.capio_dir)],
        env=workflow.env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["refused", str(errno.EBUSY), "True", "child", "app"]
    # The context registered the exit, which committed (and persisted) the file.
    assert (workflow.capio_dir / "out.txt").read_text() == "done"


def test_first_use_initialises(tmp_path: Any, runtime_dir: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYCAPIO_RUNTIME_DIR", str(runtime_dir))
    monkeypatch.setenv("SILENT", "ON")
    capio_dir = tmp_path / "capio"
    capio_dir.mkdir()
    assert not pycapio._pycapio._is_initialized()
    try:
        with CapioContext(capio_dir=str(capio_dir), app_name="first", workflow_name=f"first-{os.getpid()}"):
            assert pycapio._pycapio._is_initialized()
            assert pycapio.pycapio_get_capio_dir() == capio_dir.resolve()
            with open(capio_dir / "x.txt", "w") as f:
                f.write("x")
    finally:
        pycapio.pycapio_teardown(True)
    assert not pycapio._pycapio._is_initialized()
    # Committed and persisted at teardown.
    assert (capio_dir / "x.txt").read_text() == "x"
    assert_unpatched()


def test_missing_capio_dir_is_an_error_and_leaves_nothing_patched(
    tmp_path: Any, runtime_dir: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYCAPIO_RUNTIME_DIR", str(runtime_dir))
    monkeypatch.setenv("SILENT", "ON")
    with pytest.raises(OSError), CapioContext(capio_dir=str(tmp_path / "nope"), workflow_name="missing-dir"):
        pass
    assert_unpatched()
    assert not pycapio._pycapio._is_initialized()


def test_patch_depth_is_zero_after_all_this() -> None:
    assert not _patch.is_patched()
    assert_unpatched()
