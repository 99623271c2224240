"""The proxies are indistinguishable from what they replace (type, binding, name, module,
signature, docstring, pickling, warning locations), the standard library's own aliases of open()
are patched with the rest, and a few POSIX and lifecycle answers match the built-ins."""

from __future__ import annotations

import _io
import builtins
import gc
import inspect
import io
import os
import pickle
import posix
import shutil
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

import pycapio
from pycapio import _patch

from conftest import InProcess, ServerTracker, Workflow, pid_alive, wait_until

_REAL_FILEIO = io.FileIO

# -- 1. no binding; 2. the originals' attributes ---------------------------------------------------


def _signature(obj: Any) -> Any:
    try:
        return inspect.signature(obj)
    except ValueError as exc:  # os.utime's cannot be expressed, for the built-in too
        return type(exc)


def _originals() -> dict[str, Any]:
    assert not _patch.is_patched()
    return {f"{m.__name__}.{n}": getattr(m, n) for m, n in _patch._PATCHED}


def test_proxies_stored_as_class_attributes_do_not_bind(capio: InProcess, tmp_path: Path) -> None:
    class A:
        open = io.open
        unlink = os.unlink

    with capio.context():

        class B:
            open = io.open
            unlink = os.unlink
            stat = os.stat
            makedirs = os.makedirs
            rmtree = shutil.rmtree

        for obj in (A(), B()):
            for path in (capio.path("x.txt"), str(tmp_path / "x.txt")):
                with obj.open(path, "w") as f:
                    f.write("x")
                if isinstance(obj, B):
                    assert obj.stat(path).st_size == 1
                obj.unlink(path)
                assert not os.path.exists(path)
        # A Python original binds as a method, and so does its double.
        assert inspect.ismethod(B().rmtree) and inspect.ismethod(B().makedirs)
        assert not inspect.ismethod(B().open) and not inspect.ismethod(B().stat)


def test_every_proxy_looks_like_its_original(capio: InProcess) -> None:
    before = _originals()
    with capio.context():
        after = {f"{m.__name__}.{n}": getattr(m, n) for m, n in _patch._PATCHED}
    checked = 0
    for key, original in before.items():
        proxy = after[key]
        if key == "os.path":
            continue  # a namespace class standing in for the posixpath module (see the README)
        assert type(proxy) is type(original) or isinstance(original, type), key
        for attr in ("__name__", "__qualname__", "__module__", "__doc__", "__text_signature__"):
            assert getattr(proxy, attr, None) == getattr(original, attr, None), (key, attr)
        if isinstance(original, types.BuiltinFunctionType):
            assert proxy.__self__ is original.__self__, key
            assert _signature(proxy) == _signature(original), key
            checked += 1
        elif isinstance(original, type) and original is io.FileIO:
            assert _signature(proxy) == _signature(original), key
        elif isinstance(original, types.FunctionType):
            assert _signature(proxy) == _signature(original), key
            assert proxy.__dict__ == original.__dict__, key
            assert proxy.__defaults__ is original.__defaults__, key
            checked += 1
    assert checked >= 30


def test_patched_names_agree_across_modules_and_pickle_by_name(capio: InProcess) -> None:
    with capio.context():
        assert os.unlink is posix.unlink and os.stat is posix.stat
        assert builtins.open is io.open is _io.open
        assert io.FileIO is _io.FileIO and os.DirEntry is posix.DirEntry
        for obj in (os.unlink, os.open, open, shutil.rmtree, os.makedirs, io.FileIO, os.DirEntry):
            assert pickle.loads(pickle.dumps(obj)) is obj, obj
        assert shutil.rmtree.avoids_symlink_attacks is True
        assert repr(os.unlink) == "<built-in function unlink>"
        assert repr(io.FileIO) == "<class '_io.FileIO'>"
    assert os.unlink is posix.unlink and type(os.unlink) is types.BuiltinFunctionType


_WARNINGS_SCRIPT = """\
import os, sys, warnings
from pycapio import CapioContext
capio_dir, plain_dir, workflow = sys.argv[1:4]
with CapioContext(capio_dir=capio_dir, app_name="warner", workflow_name=workflow):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        open(os.path.join(capio_dir, "a.txt"), "w").close()  # line 7
        open(os.path.join(capio_dir, "a.txt"), "a", newline="").close()  # line 8
        open(os.path.join(plain_dir, "b.txt"), "w").close()  # line 9
        open(os.path.join(plain_dir, "b.txt"), "rb", buffering=1).close()  # line 10
        open(os.path.join(capio_dir, "a.txt"), "rb", buffering=1).close()  # line 11
        open(os.path.join(capio_dir, "a.txt"), "r", encoding="utf-8").close()  # no warning
    for w in caught:
        print(w.category.__name__, os.path.basename(w.filename), w.lineno)
"""


def test_warnings_of_an_intercepted_open_name_the_callers_line(workflow: Workflow) -> None:
    script = workflow.script(_WARNINGS_SCRIPT)
    plain = workflow.root / "plain"
    plain.mkdir()
    args = [str(workflow.capio_dir), str(plain), workflow.name]
    result = subprocess.run(
        [sys.executable, "-X", "warn_default_encoding", str(script), *args],
        env=workflow.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    name = script.name
    assert result.stdout.splitlines() == [
        f"EncodingWarning {name} 7",
        f"EncodingWarning {name} 8",
        f"EncodingWarning {name} 9",
        f"RuntimeWarning {name} 10",
        f"RuntimeWarning {name} 11",
    ]


# -- 3. the standard library's own aliases of open() ------------------------------------------------

_ARCHIVE_WRITER = """\
import bz2, gzip, io, lzma, os, sys, tarfile
d = sys.argv[1]
for mode, name in (("w", "p.tar"), ("w:gz", "p.tgz"), ("w:bz2", "p.tbz"), ("w:xz", "p.txz")):
    with tarfile.open(os.path.join(d, name), mode) as tar:
        data = ("member of " + name).encode()
        info = tarfile.TarInfo("member.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
for module, name in ((bz2, "f.bz2"), (gzip, "f.gz"), (lzma, "f.xz")):
    with module.open(os.path.join(d, name), "wb") as f:
        f.write(("content of " + name).encode())
"""

# A program that imports the archive modules before its CapioContext starts (pycapio's own
# import had loaded bz2 and lzma anyway): their captured open() must be CAPIO's while active.
_ARCHIVE_READER = """\
import bz2, gzip, lzma, os, sys, tarfile
from pycapio import CapioContext
d, workflow = sys.argv[1:3]
with CapioContext(capio_dir=d, app_name="reader", workflow_name=workflow):
    for name in ("p.tar", "p.tgz", "p.tbz", "p.txz"):
        with tarfile.open(os.path.join(d, name)) as tar:
            print(name, tar.extractfile("member.txt").read().decode())
    for module, name in ((bz2, "f.bz2"), (gzip, "f.gz"), (lzma, "f.xz")):
        with module.open(os.path.join(d, name)) as f:
            print(name, f.read().decode())
import builtins
print(tarfile.bltn_open is builtins.open is bz2._builtin_open)
"""


def test_archives_written_in_capio_read_back_in_another_process(workflow: Workflow) -> None:
    d = workflow.capio_dir
    # The reader starts first and waits for each archive; the writer step imports the archive
    # modules while patched (the launcher's context is active).
    reader = workflow.script(_ARCHIVE_READER)
    workflow.start_peer()  # attached: the reader started first waits for the writer
    with open(workflow.root / "reader.out", "wb") as out, open(workflow.root / "reader.err", "wb") as err:
        consumer = subprocess.Popen(
            [sys.executable, str(reader), str(d), workflow.name], env=workflow.env, stdout=out, stderr=err
        )
    try:
        workflow.run_step(_ARCHIVE_WRITER, "writer", str(d)).check()
        assert consumer.wait(90) == 0, (workflow.root / "reader.err").read_text()
    finally:
        if consumer.poll() is None:
            consumer.kill()
            consumer.wait()
    lines = (workflow.root / "reader.out").read_text().splitlines()
    assert lines == [
        "p.tar member of p.tar",
        "p.tgz member of p.tgz",
        "p.tbz member of p.tbz",
        "p.txz member of p.txz",
        "f.bz2 content of f.bz2",
        "f.gz content of f.gz",
        "f.xz content of f.xz",
        "True",
    ]


def test_an_alias_captured_while_patched_is_the_original_again_after(capio: InProcess) -> None:
    saved = sys.modules.pop("tarfile", None)
    try:
        with capio.context():
            import tarfile

            assert tarfile.bltn_open is builtins.open is pycapio.open_proxy
        assert tarfile.bltn_open is builtins.open
        assert type(builtins.open) is types.BuiltinFunctionType and builtins.open.__self__ is _io
    finally:
        if saved is not None:
            sys.modules["tarfile"] = saved


# -- 4. io.FileIO and io.open_code ------------------------------------------------------------------


def test_fileio_and_open_code_of_a_capio_path(capio: InProcess, tmp_path: Path) -> None:
    path = capio.path("raw.bin")
    plain = tmp_path / "raw.bin"
    with capio.context():

        class Mine(io.FileIO):
            pass

        for p in (path, str(plain)):
            with io.FileIO(p, "w") as f:
                assert isinstance(f, io.FileIO) and isinstance(f, io.RawIOBase)
                assert f.write(b"raw bytes") == 9
            with io.open_code(p) as f:
                assert f.read() == b"raw bytes"
        with io.FileIO(str(plain)) as f:
            assert type(f) is _REAL_FILEIO
        with io.FileIO(path) as f:
            assert isinstance(f, pycapio.CapioFileIO)
        assert issubclass(_io.FileIO, io.FileIO) and issubclass(Mine, io.FileIO)
        with Mine(str(plain)) as m:
            assert isinstance(m, Mine) and isinstance(m, _REAL_FILEIO) and m.read() == b"raw bytes"
        assert not isinstance(io.BytesIO(), io.FileIO)
        # With an opener, as FileIO calls it: os.open (CAPIO's while patched) gives a CAPIO fd.
        for p in (path, str(plain)):
            with io.FileIO(p, mode="wb", opener=os.open) as f:
                assert isinstance(f, pycapio.CapioFileIO) == (p == path) and f.name == p
                f.write(b"via opener")
            with open(p, "rb") as f:
                assert f.read() == b"via opener"
    assert io.FileIO is _io.FileIO


def _opener(name: Any, flags: int) -> int:
    return os.open(name, flags)  # os.open's proxy while patched: a CAPIO fd for a CAPIO path


# Every way of passing FileIO's arguments (file, mode, closefd, opener), valid or not.
FILEIO_FORMS: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
    ((), {}),
    (("<p>",), {}),
    ((), {"file": "<p>"}),
    (("<p>", "rb"), {}),
    (("<p>",), {"mode": "r"}),
    ((), {"file": "<p>", "mode": "r"}),
    ((), {"mode": "r", "file": "<p>"}),
    (("<p>", "r", True), {}),
    (("<p>", "r"), {"closefd": True}),
    ((), {"file": "<p>", "closefd": True}),
    (("<p>", "r", True, _opener), {}),
    (("<p>",), {"opener": _opener}),
    ((), {"file": "<p>", "opener": _opener}),
    ((), {"file": "<p>", "mode": "rb", "closefd": True, "opener": _opener}),
    (("<p>", "r+"), {"opener": _opener}),
    (("<p>",), {"closefd": False}),
    ((), {"file": "<p>", "closefd": False}),
    ((), {"file": "<p>", "closefd": False, "opener": _opener}),
    (("<p>",), {"file": "<p>"}),
    (("<p>", "r"), {"mode": "r"}),
    (("<p>", "r", True, None, 1), {}),
    ((), {"file": "<p>", "bogus": 1}),
    ((), {"mode": "r"}),
    ((), {"file": "<p>", "mode": 3}),
    ((), {"file": "<p>", "mode": "rw"}),
    ((), {"file": "<p>", "opener": 5}),
    ((), {"file": "<missing>"}),
    ((), {"file": "<fd>"}),
    ((), {"file": "<fd>", "closefd": False}),
    (("<fd>", "r", False), {}),
]


def test_fileio_binds_every_argument_form_as_the_real_one(capio: InProcess, tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with capio.context():
        for base in (plain, capio.capio_dir):
            with open(os.path.join(base, "f.bin"), "wb") as f:
                f.write(b"content")
        for args, kwargs in FILEIO_FORMS:
            results = []
            for base in (str(plain), str(capio.capio_dir)):
                fds: list[int] = []

                def value(v: Any, base: str = base, fds: list[int] = fds) -> Any:
                    if v == "<p>":
                        return os.path.join(base, "f.bin")
                    if v == "<missing>":
                        return os.path.join(base, "missing")
                    if v == "<fd>":
                        fds.append(os.open(os.path.join(base, "f.bin"), os.O_RDONLY))
                        return fds[-1]
                    return v

                try:
                    raw = io.FileIO(*map(value, args), **{k: value(v) for k, v in kwargs.items()})
                except Exception as exc:  # the real FileIO's error, masked
                    results.append((type(exc).__name__, str(exc).replace(base, "<DIR>")))
                else:
                    with raw:
                        capio_served = isinstance(raw, pycapio.CapioFileIO)
                        results.append(("ok", raw.read(), capio_served == (base == str(capio.capio_dir))))
                finally:
                    for fd in fds:
                        try:
                            os.close(fd)
                        except OSError:
                            pass  # FileIO closed it
            assert results[1] == results[0], (args, kwargs)
            assert results[0][0] == "ok" or results[0][0].endswith("Error"), (args, kwargs)


def test_fileio_and_direntry_are_stand_ins_for_every_caller_while_patched(
    capio: InProcess, tmp_path: Path
) -> None:
    # The documented limit (README): while a context is active io.FileIO and os.DirEntry name
    # stand-in classes, also for files and entries that are not CAPIO's. isinstance, issubclass
    # and subclassing keep working; an exact type comparison with the patched name does not.
    real_fileio, real_direntry = io.FileIO, os.DirEntry
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"x")
    with capio.context():
        with open(plain, "rb") as f:
            assert type(f.raw) is real_fileio and type(f.raw) is not io.FileIO
            assert isinstance(f.raw, io.FileIO) and issubclass(type(f.raw), io.FileIO)
        with os.scandir(tmp_path) as it:
            entries = list(it)
        assert entries and all(type(e) is real_direntry and type(e) is not os.DirEntry for e in entries)
        assert all(isinstance(e, os.DirEntry) for e in entries)
        with io.FileIO(capio.path("c.bin"), "w") as raw:  # the stand-in constructs through CAPIO
            assert isinstance(raw, pycapio.CapioFileIO) and isinstance(raw, io.FileIO)

        class Mine(io.FileIO):
            pass

        with Mine(str(plain)) as m:
            assert isinstance(m, real_fileio) and m.read() == b"x"
    with open(plain, "rb") as f:
        assert type(f.raw) is io.FileIO
    with os.scandir(tmp_path) as it:
        assert all(type(e) is os.DirEntry for e in it)


# -- 5. POSIX answers ------------------------------------------------------------------------------


def _outcome(call: Any, *args: Any) -> Any:
    try:
        result = call(*args)
    except OSError as exc:
        return type(exc), exc.errno, exc.strerror
    if isinstance(result, int):
        os.close(result)
    else:
        result.close()
    return "ok"


def test_a_trailing_slash_is_answered_as_the_kernel_does(capio: InProcess, tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with capio.context():
        results = []
        for base in (str(plain), str(capio.capio_dir)):
            with open(os.path.join(base, "f"), "w") as f:
                f.write("x")
            missing, file = os.path.join(base, "missing/"), os.path.join(base, "f/")
            row = []
            for mode in ("w", "wb", "x", "a", "w+", "a+"):
                row.append(_outcome(open, missing, mode))
                row.append(_outcome(open, file, mode))
            for mode in ("r", "rb", "r+"):
                row.append(_outcome(open, file, mode))
            row.append(_outcome(os.open, os.path.join(base, "m2/"), os.O_WRONLY | os.O_CREAT))
            row.append(_outcome(os.open, file, os.O_RDONLY))
            row.append(os.path.exists(os.path.join(base, "missing")))
            results.append(row)
        assert results[1] == results[0]
        assert results[0][0][0] is IsADirectoryError and results[0][12][0] is NotADirectoryError


def test_rmtree_of_a_file_reports_like_the_builtin(capio: InProcess, tmp_path: Path) -> None:
    with capio.context():
        reports = []
        for base in (tmp_path, capio.capio_dir):
            target = os.path.join(base, "file")
            with open(target, "w") as f:
                f.write("x")
            calls: list[tuple[Any, ...]] = []

            def onerror(fn: Any, p: Any, info: Any, calls: list[tuple[Any, ...]] = calls) -> None:
                calls.append((fn, p, info[0], info[1].errno))

            shutil.rmtree(target, onerror=onerror)
            reports.append([(fn, os.path.relpath(p, base), t, e) for fn, p, t, e in calls])
            assert os.path.exists(target)
        assert reports[1] == reports[0]
        assert [r[0] for r in reports[0]] == [os.scandir, os.rmdir]


RMTREE_HANDLERS = """
import json, os, shutil, sys, tempfile, uuid, warnings
warnings.simplefilter("error")  # a program run with -W error (or pytest's filterwarnings=error)
import pycapio
plain, capio_dir = tempfile.mkdtemp(), tempfile.mkdtemp()
results = []
with pycapio.CapioContext(capio_dir=capio_dir, app_name="a", workflow_name="wf-" + uuid.uuid4().hex[:8]):
    for base in (plain, capio_dir):
        row = []
        for i, handlers in enumerate(("onerror", "onexc", "both")):
            if handlers != "onerror" and sys.version_info < (3, 12):
                continue
            os.makedirs(os.path.join(base, f"t{i}", "sub"))
            with open(os.path.join(base, f"t{i}", "sub", "f"), "w") as f:
                f.write("x")
            with open(os.path.join(base, f"file{i}"), "w") as f:
                f.write("x")
            for name in (f"missing{i}", f"file{i}", f"t{i}"):
                calls = []
                kw = {}
                if handlers != "onexc":
                    kw["onerror"] = lambda fn, p, i: calls.append(("onerror", fn.__name__, p, i[1].errno))
                if handlers != "onerror":
                    kw["onexc"] = lambda fn, p, exc: calls.append(("onexc", fn.__name__, p, exc.errno))
                shutil.rmtree(os.path.join(base, name), **kw)
                row.append([(h, fn, os.path.relpath(p, base), e) for h, fn, p, e in calls])
            row.append(sorted(os.listdir(base)))
        results.append(row)
print(json.dumps(results))
"""


def _pythons() -> list[tuple[str, dict[str, str]]]:
    """This Python, and the 3.12/3.13 of this machine where there are (pyenv's shims pick the
    version from PYENV_VERSION): the abi3 extension loads in each."""
    found = [(sys.executable, {})]
    for name, version in (("python3.12", "3.12.1"), ("python3.13", "3.13.0")):
        exe = shutil.which(name)
        if exe is not None:
            found.append((exe, {"PYENV_VERSION": version}))
    return found


def test_rmtree_handlers_as_the_builtin_without_warnings_on_every_python(
    runtime_dir: Path, tmp_path: Path
) -> None:
    # shutil.rmtree of 3.12/3.13 takes onerror (deprecated in the docs) without a warning, and
    # onexc over onerror: the proxy, inside CAPIO and out, warns nowhere the built-in does not and
    # calls the handlers the built-in calls.
    # The installed package alone on the path (not the checkout, which has no extension in a
    # regular install, nor the rest of site-packages, built for this Python).
    root = tmp_path / "path"
    root.mkdir()
    (root / "pycapio").symlink_to(Path(pycapio.__file__).resolve().parent)
    checked = []
    for python, extra in _pythons():
        env = {**os.environ, "PYCAPIO_RUNTIME_DIR": str(runtime_dir), "SILENT": "ON", **extra}
        env["PYTHONPATH"] = str(root)
        env.pop("PYCAPIO_CONTEXT", None)
        if not extra:
            env.pop("PYENV_VERSION", None)
        result = subprocess.run(
            [python, "-c", RMTREE_HANDLERS],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,  # not the checkout, whose pycapio/ would come first on the path
        )
        if extra and "No module named" in result.stderr:
            continue  # a Python without what pycapio needs installed
        assert result.returncode == 0, (python, result.stderr[-2000:])
        import json

        plain, capio = json.loads(result.stdout)
        assert capio == plain, python
        assert plain[0] == [["onerror", "lstat", "missing0", 2]]
        checked.append(python)
    assert checked, checked


def test_capio_scandir_entries_are_dir_entries_while_patched(capio: InProcess) -> None:
    with capio.context():
        with open(capio.path("e.txt"), "w") as f:
            f.write("e")
        entries = list(os.scandir(capio.capio_dir))
        assert entries and all(isinstance(e, os.DirEntry) for e in entries)
        assert all(isinstance(e, os.DirEntry) for e in os.scandir("/"))
        assert issubclass(pycapio.DirEntry, os.DirEntry)
        assert os.DirEntry[str] == posix.DirEntry[str]
        with pytest.raises(TypeError, match=r"cannot create 'posix\.DirEntry' instances"):
            os.DirEntry()
    assert os.DirEntry is posix.DirEntry


# -- 6. the seed API: an O_CREAT-only fd, and a flush that fails in a finaliser --------------------


def test_seed_fd_opened_with_o_creat_alone_takes_writes(capio: InProcess) -> None:
    path = capio.path("seed.txt")
    fd = pycapio.pycapio_open(path, pycapio.FILE_MODES["O_CREAT"])
    w = pycapio.PyCapioTextIOWrapper(fd)
    assert w.write("written through an O_CREAT fd") == 29
    del w
    gc.collect()
    fd = pycapio.pycapio_open(path, pycapio.FILE_MODES["O_RDONLY"])
    with pycapio.PyCapioTextIOWrapper(fd) as r:
        assert r.read() == "written through an O_CREAT fd"


def test_a_flush_failing_in_a_finaliser_is_reported(
    capio: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = capio.path("ro.txt")
    fd = pycapio.pycapio_open(path, pycapio.FILE_MODES["O_WRONLY"] | pycapio.FILE_MODES["O_CREAT"])
    pycapio.PyCapioBinaryIOWrapper(fd).close()
    seen: list[tuple[type[BaseException], str]] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: seen.append((u.exc_type, str(u.exc_value))))
    for wrapper, data in ((pycapio.PyCapioTextIOWrapper, "lost"), (pycapio.PyCapioBinaryIOWrapper, b"lost")):
        fd = pycapio.pycapio_open(path, pycapio.FILE_MODES["O_RDONLY"])  # a read-only fd
        w = wrapper(fd)
        w.write(data)  # type: ignore[arg-type]
        del w
        gc.collect()
        assert not pycapio._pycapio._is_capio_fd(fd)
    assert [t for t, _ in seen] == [OSError, OSError], seen
    assert all("Bad file descriptor" in m for _, m in seen)


# -- 7. a multiprocessing child that started pycapio stops its server ------------------------------

_CHILD_STARTS_CAPIO = """\
import multiprocessing as mp, os, sys
from pycapio import CapioContext

def work(d, workflow, out):
    @CapioContext(capio_dir=d, app_name="child", workflow_name=workflow)
    def produce():
        with open(os.path.join(d, "from-child.txt"), "w") as f:
            f.write("child wrote this")
        from pycapio import _pycapio
        with open(out, "w") as f:
            f.write(str([s[1] for s in _pycapio._server_list() if s[0] == workflow][0]))
    produce()

if __name__ == "__main__":
    d, workflow, method, out = sys.argv[1:5]
    p = mp.get_context(method).Process(target=work, args=(d, workflow, out))
    p.start()
    p.join()
    sys.exit(p.exitcode)
"""


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_multiprocessing_child_that_started_the_server_stops_it(workflow: Workflow, method: str) -> None:
    script = workflow.script(_CHILD_STARTS_CAPIO)
    out = workflow.marker(f"server-pid-{method}")
    result = subprocess.run(
        [sys.executable, str(script), str(workflow.capio_dir), workflow.name, method, str(out)],
        env=workflow.env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, result.stderr
    pid = int(out.read_text())
    assert wait_until(lambda: not pid_alive(pid), 30), "the server started by the child is still running"
    assert not ServerTracker(workflow.runtime_dir).live()
    # It committed and persisted the child's file on the way out.
    assert (workflow.capio_dir / "from-child.txt").read_text() == "child wrote this"
