"""The C API capsule ``pycapio._pycapio.C_API``: the header shipped with the installed package, the
import helper's version checks, ``-errno`` results for bad input, and the two example extensions
(C, and Rust over the ``capio-capi`` crate) writing a file from a native thread while a Python
consumer process streams it.

Everything native is compiled here, from the *installed* header (``pycapio.get_include()``): the C
example with its setuptools ``setup.py``, the Rust example with cargo, and a test probe
(``tests/capsule/capi_probe.c``) with the system C compiler.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_wait_timeout import HOLD_OPEN

import pycapio
from pycapio import _pycapio

from conftest import InProcess, Step, Workflow, wait_until

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "capsule" / "examples"
PROBE_SOURCE = Path(__file__).resolve().parent / "capsule" / "capi_probe.c"
EXT_SUFFIX = sysconfig.get_config_var("EXT_SUFFIX")

MAGIC = 0x50434150
ABI = (1, 0)

# -- building the native code -------------------------------------------------------------------


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 600) -> None:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"


@pytest.fixture(scope="session")
def native_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the compiled modules go; step processes put it on ``sys.path``."""
    return tmp_path_factory.mktemp("capsule-native")


@pytest.fixture(scope="session")
def probe_module(native_dir: Path) -> Path:
    cc = os.environ.get("CC", "cc")
    out = native_dir / f"capi_probe{EXT_SUFFIX}"
    _run(
        [
            cc, "-shared", "-fPIC", "-O1", "-Wall", "-Wextra", "-Werror",
            "-I", pycapio.get_include(), "-I", sysconfig.get_paths()["include"],
            str(PROBE_SOURCE), "-o", str(out),
        ],
        cwd=native_dir,
    )  # fmt: skip
    return out


@pytest.fixture(scope="session")
def c_writer(native_dir: Path) -> Path:
    """The C example, built by its own setup.py (which takes the header from the installed pycapio)."""
    src = native_dir / "c_writer-src"
    shutil.copytree(EXAMPLES / "c_writer", src)
    _run([sys.executable, "setup.py", "-q", "build_ext", "--build-lib", str(native_dir)], cwd=src)
    built = list(native_dir.glob("c_writer*.so"))
    assert built, "setup.py built no c_writer module"
    return built[0]


@pytest.fixture(scope="session")
def rust_writer(native_dir: Path) -> Path:
    """The Rust example, built by cargo as a cdylib and installed as an abi3 module."""
    target = native_dir / "rust-target"
    env = dict(os.environ, PYO3_PYTHON=sys.executable, PYO3_BUILD_EXTENSION_MODULE="1")
    manifest = EXAMPLES / "rust_writer" / "Cargo.toml"
    _run(
        ["cargo", "build", "--release", "--manifest-path", str(manifest), "--target-dir", str(target)],
        cwd=native_dir,
        env=env,
    )
    out = native_dir / "rust_writer.abi3.so"
    shutil.copyfile(target / "release" / "librust_writer.so", out)
    return out


def load(path: Path) -> types.ModuleType:
    """Import a compiled module from its file (it imports pycapio's C API in its init)."""
    import importlib.util

    name = path.name.split(".")[0]
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[name] = module
    return module


@pytest.fixture(scope="session")
def probe(probe_module: Path) -> Any:
    return load(probe_module)


# -- the capsule itself -------------------------------------------------------------------------


def test_the_capsule_is_an_attribute_of_the_module_with_its_full_name() -> None:
    cap = _pycapio.C_API
    assert type(cap).__name__ == "PyCapsule"
    assert '"pycapio._pycapio.C_API"' in repr(cap)
    is_valid = ctypes.pythonapi.PyCapsule_IsValid
    is_valid.argtypes, is_valid.restype = [ctypes.py_object, ctypes.c_char_p], ctypes.c_int
    assert is_valid(cap, b"pycapio._pycapio.C_API") == 1
    assert is_valid(cap, b"pycapio.C_API") == 0
    assert cap is _pycapio.C_API, "created once, at module exec"


def test_the_header_ships_in_the_package_and_get_include_finds_it() -> None:
    include = Path(pycapio.get_include())
    header = include / "pycapio_capi.h"
    assert header.is_file()
    assert (REPO / "capsule" / "pycapio_capi.h").read_bytes() == header.read_bytes()


def test_the_live_table_has_the_headers_magic_version_and_size(probe: Any) -> None:
    magic, major, minor, size = probe.header()
    assert (magic, (major, minor)) == (MAGIC, ABI)
    assert size == probe.sizes()["pycapio_capi"], "the producer's table and the C header disagree"
    assert probe.sizes()["pycapio_stat"] == 40
    assert probe.sizes()["pycapio_capi_header"] == 16
    assert probe.check(_pycapio.C_API) == ABI
    assert probe.import_capi() == probe.import_capi() != 0, "one static table"


# -- version checks of the import helper --------------------------------------------------------


def test_a_table_with_another_major_version_is_a_clear_import_error(probe: Any) -> None:
    size = probe.sizes()["pycapio_capi"]
    with pytest.raises(ImportError) as e:
        probe.check(probe.doctored(MAGIC, 2, 0, size))
    assert str(e.value).startswith(
        "pycapio C API version 2.0 is incompatible with this extension, built for 1.0"
    ), e.value
    assert "rebuild the extension" in str(e.value)


def test_a_table_smaller_than_the_extension_expects_is_a_clear_import_error(probe: Any) -> None:
    size = probe.sizes()["pycapio_capi"]
    with pytest.raises(ImportError) as e:
        probe.check(probe.doctored(MAGIC, 1, 0, size - 8))
    assert str(e.value) == (
        "pycapio C API version 1.0 is incompatible with this extension, built for 1.0: "
        f"its function table has {size - 8} bytes, the extension needs {size} (upgrade pycapio)"
    )


def test_a_newer_minor_version_with_a_longer_table_is_accepted(probe: Any) -> None:
    size = probe.sizes()["pycapio_capi"]
    assert probe.check(probe.doctored(MAGIC, 1, 7, size + 64)) == (1, 7)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p, size: p.doctored(0xDEADBEEF, 1, 0, size), "bad magic 0xdeadbeef"),
        (lambda p, size: p.doctored(MAGIC, 1, 0, size, "other.C_API"), 'is not a capsule named "pycapio'),
        (lambda p, size: object(), 'is not a capsule named "pycapio._pycapio.C_API"'),
    ],
    ids=["magic", "capsule-name", "not-a-capsule"],
)
def test_other_impostors_are_import_errors(probe: Any, make: Callable[..., object], message: str) -> None:
    with pytest.raises(ImportError, match=message):
        probe.check(make(probe, probe.sizes()["pycapio_capi"]))


# -- return codes -------------------------------------------------------------------------------


def test_not_initialised_is_enotconn_and_the_extensions_still_import(
    probe_module: Path, c_writer: Path, rust_writer: Path, tmp_path: Path
) -> None:
    script = textwrap.dedent(
        f"""
        import json, os, sys
        sys.path.insert(0, {str(probe_module.parent)!r})
        import capi_probe as p, c_writer, rust_writer
        import pycapio
        inside = os.path.join({str(tmp_path)!r}, "x")
        try:
            pycapio.pycapio_open(inside, os.O_RDONLY)
        except OSError as exc:
            python_error = [type(exc).__name__, exc.errno]
        print(json.dumps({{
            "python": python_error,
            "is_initialized": p.is_initialized(),
            "open": p.open(inside, os.O_RDONLY),
            "stat": p.stat(inside)[0],
            "dir": p.get_capio_dir(4096)[0],
            "close": p.close(0),
            "c": list(c_writer.capi_version()),
            "rust": list(rust_writer.capi_version()),
        }}))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    enotconn = -errno.ENOTCONN
    assert got["is_initialized"] == 0
    assert (got["open"], got["stat"], got["dir"], got["close"]) == (enotconn,) * 4
    # One errno table: the same failure raised in Python carries the errno C callers get.
    assert got["python"] == ["PyCAPIOException", errno.ENOTCONN]
    assert got["c"] == got["rust"] == [1, 0, got["c"][2], False]


def test_bad_input_gives_negative_errno(probe: Any, capio: InProcess, tmp_path: Path) -> None:
    p = probe
    inside = capio.path("f.bin")
    assert p.is_initialized() == 1
    # get_capio_dir: the real path, or ERANGE when the buffer cannot hold it and its NUL.
    real = os.fsencode(os.path.realpath(capio.capio_dir))
    assert p.get_capio_dir(4096) == (len(real), real)
    assert p.get_capio_dir(len(real))[0] == -errno.ERANGE
    assert p.get_capio_dir(len(real) + 1) == (len(real), real)

    fd = p.open(inside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    assert fd >= 0
    assert p.close(fd) == 0
    assert p.close(fd) == -errno.EBADF, "closed fd"
    assert p.read(fd, 10)[0] == -errno.EBADF
    assert p.write(fd, b"x") == -errno.EBADF
    assert p.fstat(fd)[0] == -errno.EBADF
    assert p.close(-1) == -errno.EBADF

    assert p.open(capio.path("missing", "f"), os.O_WRONLY | os.O_CREAT) == -errno.ENOENT, "missing parent"
    assert p.mkdir(capio.path("missing", "d")) == -errno.ENOENT
    assert p.stat(capio.path("nope"))[0] == -errno.ENOENT, "stat never waits"
    assert p.unlink(capio.path("nope")) == -errno.ENOENT
    outside = str(tmp_path / "outside.bin")
    assert p.open(outside, os.O_WRONLY | os.O_CREAT) == -errno.EXDEV
    assert p.stat(outside)[0] == -errno.EXDEV
    assert p.mkdir(str(tmp_path / "d")) == -errno.EXDEV
    assert p.listdir(str(tmp_path), 100)[0] == -errno.EXDEV
    assert p.rename(inside, outside) == -errno.EXDEV
    assert p.rename(outside, inside) == -errno.EXDEV
    assert not os.path.exists(outside)

    assert p.open(None, os.O_RDONLY) == -errno.EFAULT
    assert p.stat(inside, True)[0] == -errno.EFAULT, "NULL stat buffer"
    assert p.open("", os.O_RDONLY) == -errno.ENOENT

    fd = p.open(inside, os.O_RDWR)
    assert fd >= 0
    assert p.read(fd, 4, -1)[0] == -errno.EINVAL, "negative offset"
    assert p.write(fd, b"x", -5) == -errno.EINVAL
    assert p.lseek(fd, 0, 99) == -errno.EINVAL
    assert p.lseek(fd, -1, os.SEEK_SET) == -errno.EINVAL
    assert p.ftruncate(fd, -1) == -errno.EINVAL
    assert p.read(fd, 4, None, True)[0] == -errno.EFAULT, "NULL buffer"
    assert p.fstat(fd, True)[0] == -errno.EFAULT
    assert p.close(fd) == 0
    assert p.mkdir(capio.path("d")) == 0
    assert p.mkdir(capio.path("d")) == -errno.EEXIST


def test_every_function_round_trips_through_the_table(probe: Any, capio: InProcess) -> None:
    p = probe
    assert p.mkdir(capio.path("out"), 0o755) == 0
    path = capio.path("out", "data.bin")
    fd = p.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    assert fd >= 0
    assert p.write(fd, b"hello ") == 6
    assert p.write(fd, b"world") == 5
    assert p.write(fd, b"W", 6) == 1, "pwrite"
    assert p.lseek(fd, 0, os.SEEK_CUR) == 11, "pwrite leaves the position"
    assert p.lseek(fd, 0, os.SEEK_SET) == 0
    assert p.read(fd, 5) == (5, b"hello")
    assert p.read(fd, 100) == (6, b" World"), "a producer never waits on its own file"
    assert p.read(fd, 100) == (0, b"")
    assert p.read(fd, 3, 6) == (3, b"Wor"), "pread"
    assert p.lseek(fd, -5, os.SEEK_END) == 6
    rc, (size, mtime_ns, _mode, kind, committed) = p.fstat(fd)
    assert (rc, size, kind, committed) == (0, 11, 1, 0)
    assert mtime_ns > 0
    assert p.ftruncate(fd, 5) == 0
    assert p.fstat(fd)[1][0] == 5
    assert p.close(fd) == 0

    rc, (size, _, _, kind, _) = p.stat(path)
    assert (rc, size, kind) == (0, 5, 1)
    assert p.stat(capio.path("out"))[1][3] == 2, "a directory"
    # The Python layer sees what the C API wrote.
    fd = _pycapio.pycapio_open(path, os.O_RDONLY)
    try:
        assert _pycapio._read_bytes(fd) == b"hello"
    finally:
        _pycapio._close(fd)

    assert p.mkdir(capio.path("out", "sub")) == 0
    need, _ = p.listdir(capio.path("out"), 0)
    assert need == len(b"data.bin\0sub/\0")
    assert p.listdir(capio.path("out"), need - 1) == (need, b""), "too small: sized, not copied"
    rc, listing = p.listdir(capio.path("out"), need)
    assert rc == need
    assert sorted(listing.split(b"\0")[:-1]) == [b"data.bin", b"sub/"]

    moved = capio.path("out", "sub", "moved.bin")
    assert p.rename(path, moved) == 0
    assert p.stat(path)[0] == -errno.ENOENT
    assert p.stat(moved)[1][0] == 5
    assert p.rmdir(capio.path("out", "sub")) == -errno.ENOTEMPTY
    assert p.unlink(moved) == 0
    assert p.rmdir(capio.path("out", "sub")) == 0
    assert _pycapio._listdir(capio.path("out")) == []

    # Relative paths resolve against the current directory.
    cwd = os.getcwd()
    os.chdir(capio.capio_dir)
    try:
        assert p.mkdir("rel", 0o755) == 0
        assert p.stat(capio.path("rel"))[0] == 0
    finally:
        os.chdir(cwd)


def test_a_c_api_wait_honours_pycapio_wait_timeout(probe_module: Path, workflow: Workflow) -> None:
    wf = workflow
    wf.env["PYCAPIO_WAIT_TIMEOUT"] = "0.5"
    wf.start_peer()  # a producer may still appear: the open waits
    result = wf.run_step(
        f"""
        import os, sys, time
        sys.path.insert(0, {str(probe_module.parent)!r})
        import capi_probe
        start = time.monotonic()
        rc = capi_probe.open({str(wf.capio_dir / "never.bin")!r}, os.O_RDONLY)
        print(rc, round(time.monotonic() - start, 2))
        """,
        "waiter",
    ).check()
    rc, waited = result.stdout.split()
    # A file that never appeared is missing, timed out or not.
    assert int(rc) == -errno.ENOENT
    assert 0.4 <= float(waited) < 10


def _python_error(call: Callable[[], object]) -> list[object]:
    """The type and errno of the exception `call` raises (it must fail)."""
    try:
        call()
    except OSError as exc:
        return [type(exc).__name__, exc.errno]
    raise AssertionError("the call did not fail")


def test_one_failure_has_one_errno_in_python_and_in_c(probe: Any, capio: InProcess, tmp_path: Path) -> None:
    # One errno table (`ClientError::errno`): the same failing call raises in Python with the errno
    # that C callers get negated.
    outside, outside_dir = str(tmp_path / "outside.bin"), str(tmp_path / "d")
    missing_parent = capio.path("missing", "f")
    assert pycapio.pycapio_mkdir(capio.path("d")) == 0
    cases = {
        "outside": (
            lambda: pycapio.pycapio_open(outside, os.O_WRONLY | os.O_CREAT),
            probe.open(outside, os.O_WRONLY | os.O_CREAT),
            ["PyCAPIOException", errno.EXDEV],
        ),
        "outside mkdir": (
            lambda: pycapio.pycapio_mkdir(outside_dir),
            probe.mkdir(outside_dir),
            ["PyCAPIOException", errno.EXDEV],
        ),
        "missing parent": (
            lambda: pycapio.pycapio_open(missing_parent, os.O_WRONLY | os.O_CREAT),
            probe.open(missing_parent, os.O_WRONLY | os.O_CREAT),
            ["FileNotFoundError", errno.ENOENT],
        ),
        "exists": (
            lambda: pycapio.pycapio_mkdir(capio.path("d")),
            probe.mkdir(capio.path("d")),
            ["FileExistsError", errno.EEXIST],
        ),
    }
    for name, (python_call, c_result, expected) in cases.items():
        python_error = _python_error(python_call)
        assert python_error == expected, name
        assert c_result == -python_error[1], name
    assert not os.path.exists(outside) and not os.path.exists(outside_dir)


SAME_ERRNO_AFTER_A_WAIT = """
    import errno, json, os, sys
    sys.path.insert(0, {native!r})
    import capi_probe as p
    never, slow = sys.argv[1], sys.argv[2]

    def python_error(call):
        try:
            call()
        except OSError as exc:
            return [type(exc).__name__, exc.errno]
        return None

    def read_all(path):
        with open(path, "rb") as f:
            return f.read()

    fd = p.open(slow, os.O_RDONLY)
    print(json.dumps({{
        "never": [python_error(lambda: read_all(never)), p.open(never, os.O_RDONLY)],
        "uncommitted": [python_error(lambda: read_all(slow)), fd >= 0 and p.read(fd, 10)[0]],
    }}))
"""


def test_a_timed_out_wait_has_one_errno_in_python_and_in_c(probe_module: Path, workflow: Workflow) -> None:
    # A file nobody creates is missing once the wait times out (ENOENT), a file never committed
    # times out (ETIMEDOUT): the same through `open()` in Python and through the C API.
    wf = workflow
    slow = wf.capio_dir / "slow.dat"
    created, release = wf.marker("created"), wf.marker("release")
    producer = wf.start_step(HOLD_OPEN, "producer", str(slow), str(created), str(release))
    assert wait_until(created.exists, 60), producer.stderr()
    wf.env["PYCAPIO_WAIT_TIMEOUT"] = "0.5"
    script = SAME_ERRNO_AFTER_A_WAIT.format(native=str(probe_module.parent))
    result = wf.run_step(script, "reader", str(wf.capio_dir / "never.bin"), str(slow)).check()
    release.write_text("go")
    producer.wait().check()
    got = json.loads(result.stdout)
    assert got["never"] == [["FileNotFoundError", errno.ENOENT], -errno.ENOENT]
    assert got["uncommitted"] == [["TimeoutError", errno.ETIMEDOUT], -errno.ETIMEDOUT]


# -- native writers streaming to a Python consumer ----------------------------------------------

CHUNK = 1 << 20
CHUNKS = 6
SEED = 4242

PRODUCER = """
import json, random, sys, time
sys.path.insert(0, {native!r})
import {module} as writer

path, gate = sys.argv[1], sys.argv[2]
data = random.Random({seed}).randbytes({chunk} * {chunks})
written, saw_gate = writer.write_file(path, data, block={chunk}, gate=gate, gate_timeout=30.0)
print(json.dumps({{"written": written, "saw_gate": saw_gate}}))
"""

CONSUMER = """
import hashlib, json, os, sys

path, gate, started = sys.argv[1], sys.argv[2], sys.argv[3]
open(started, "w").close()  # the launcher attached this process before running it
digest, total, before_gate = hashlib.sha256(), 0, 0
with open(path, "rb", buffering=0) as f:  # waits for the file, then streams it (no_update)
    while data := f.read(1 << 16):
        digest.update(data)
        total += len(data)
        if total >= {chunk} and not os.path.exists(gate):
            before_gate = total
            open(gate, "w").close()
print(json.dumps({{"total": total, "sha256": digest.hexdigest(), "before_gate": before_gate}}))
"""


def streaming_config(wf: Workflow, name: str, producer: str = "native") -> Path:
    rule = {"name": [name], "committed": "on_termination", "mode": "no_update"}
    cl = {
        "name": wf.name,
        "IO_Graph": [
            {"name": producer, "input_stream": [], "output_stream": [name], "streaming": [rule]},
            {"name": "consumer", "input_stream": [name], "output_stream": []},
        ],
    }
    path = wf.root / "capio_cl.json"
    path.write_text(json.dumps(cl))
    return path


def start(wf: Workflow, cl: Path, body: str, app: str, *args: str) -> Step:
    script = wf.script(body)
    cmd = wf.command(script, app, args)
    cmd[3:3] = ["--capio-cl", str(cl)]  # after "python -m pycapio"
    logs = wf.root / "logs"
    logs.mkdir(exist_ok=True)
    n = len(wf.steps) + 1
    out_path, err_path = logs / f"{n}-{app}.out", logs / f"{n}-{app}.err"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=wf.env, cwd=wf.root)
    step = Step(proc, out_path, err_path)
    wf.steps.append(step)
    return step


def last_json(step: Step) -> Any:
    result = step.wait(120).check()
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("lang", ["c", "rust"])
def test_a_native_thread_writes_a_file_that_a_python_consumer_streams(
    lang: str, request: pytest.FixtureRequest, workflow: Workflow
) -> None:
    module_path: Path = request.getfixturevalue(f"{lang}_writer")
    wf = workflow
    name = "native.bin"
    cl = streaming_config(wf, name)
    data, gate, started = str(wf.capio_dir / name), wf.marker("gate"), wf.marker("consumer-started")
    consumer = start(wf, cl, CONSUMER.format(chunk=CHUNK), "consumer", data, str(gate), str(started))
    assert wait_until(lambda: started.exists() or not consumer.running(), 60), "consumer did not start"
    assert started.exists(), consumer.stderr()
    producer = start(
        wf,
        cl,
        PRODUCER.format(
            native=str(module_path.parent),
            module=module_path.name.split(".")[0],
            seed=SEED,
            chunk=CHUNK,
            chunks=CHUNKS,
        ),
        "native",
        data,
        str(gate),
    )
    produced = last_json(producer)
    consumed = last_json(consumer)
    expected = random.Random(SEED).randbytes(CHUNK * CHUNKS)
    assert produced == {"written": len(expected), "saw_gate": True}, (
        "the consumer did not get the first block while the native thread was writing"
    )
    assert consumed["total"] == len(expected)
    assert consumed["sha256"] == hashlib.sha256(expected).hexdigest()
    assert CHUNK <= consumed["before_gate"] < len(expected)


PY_PRODUCER = """
import json, os, random, sys, time

path, gate = sys.argv[1], sys.argv[2]
data = random.Random({seed}).randbytes({chunk} * {chunks})
with open(path, "wb") as f:
    f.write(data[:{chunk}])
    f.flush()
    deadline = time.monotonic() + 30
    while not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.01)
    saw_gate = os.path.exists(gate)
    f.write(data[{chunk}:])
print(json.dumps({{"saw_gate": saw_gate}}))
"""

C_READER = """
import hashlib, json, os, sys
sys.path.insert(0, {native!r})
import capi_probe as p

path, gate, started = sys.argv[1], sys.argv[2], sys.argv[3]
open(started, "w").close()
fd = p.open(path, os.O_RDONLY)  # waits in the C API until the producer creates it
assert fd >= 0, fd
digest, total = hashlib.sha256(), 0
while True:
    rc, data = p.read(fd, 1 << 16)  # each call waits in the C API for more bytes or the commit
    assert rc >= 0, rc
    if rc == 0:
        break
    digest.update(data)
    total += rc
    if total >= {chunk} and not os.path.exists(gate):
        open(gate, "w").close()
rc, st = p.fstat(fd)
assert p.close(fd) == 0
print(json.dumps({{"total": total, "sha256": digest.hexdigest(), "committed": st[4]}}))
"""

RUST_READER = """
import hashlib, json, sys
sys.path.insert(0, {native!r})
import rust_writer

path, gate, started = sys.argv[1], sys.argv[2], sys.argv[3]
open(started, "w").close()
data = rust_writer.read_file(path, gate=gate, gate_after={chunk})  # Read::read on a native thread
print(json.dumps({{"total": len(data), "sha256": hashlib.sha256(data).hexdigest(), "committed": 1}}))
"""


@pytest.mark.parametrize("lang", ["c", "rust"])
def test_a_native_reader_streams_a_python_producers_file(
    lang: str, request: pytest.FixtureRequest, workflow: Workflow
) -> None:
    """Reads through the C API wait per CAPIO-CL like Python's: the reader gets the first chunk
    while the producer is still writing (no_update), and EOF only at the commit."""
    module_path: Path = request.getfixturevalue("probe_module" if lang == "c" else "rust_writer")
    wf = workflow
    name = "from_python.bin"
    cl = streaming_config(wf, name, producer="producer")
    data, gate, started = str(wf.capio_dir / name), wf.marker("gate"), wf.marker("reader-started")
    body = (C_READER if lang == "c" else RUST_READER).format(native=str(module_path.parent), chunk=CHUNK)
    reader = start(wf, cl, body, "consumer", data, str(gate), str(started))
    assert wait_until(lambda: started.exists() or not reader.running(), 60), "reader did not start"
    assert started.exists(), reader.stderr()
    producer = start(
        wf, cl, PY_PRODUCER.format(seed=SEED, chunk=CHUNK, chunks=CHUNKS), "producer", data, str(gate)
    )
    assert last_json(producer) == {"saw_gate": True}, "the native reader did not stream the file"
    consumed = last_json(reader)
    expected = random.Random(SEED).randbytes(CHUNK * CHUNKS)
    assert consumed == {
        "total": len(expected),
        "sha256": hashlib.sha256(expected).hexdigest(),
        "committed": 1,
    }


def test_native_threads_write_concurrently_without_the_gil(c_writer: Path, capio: InProcess) -> None:
    from concurrent.futures import ThreadPoolExecutor

    writer = load(c_writer)
    blobs = {capio.path(f"t{i}.bin"): random.Random(i).randbytes(3 * CHUNK + i) for i in range(6)}
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda kv: writer.write_file(kv[0], kv[1], block=CHUNK // 4), blobs.items()))
    assert results == [(len(b), False) for b in blobs.values()]
    for path, blob in blobs.items():
        fd = _pycapio.pycapio_open(path, os.O_RDONLY)
        try:
            assert _pycapio._read_bytes(fd) == blob
        finally:
            _pycapio._close(fd)


def test_a_forked_child_uses_the_c_api_after_attaching_again(probe_module: Path, workflow: Workflow) -> None:
    wf = workflow
    result = wf.run_step(
        f"""
        import json, os, sys
        sys.path.insert(0, {str(probe_module.parent)!r})
        import capi_probe as p

        path = {str(wf.capio_dir / "from_child.bin")!r}
        pid = os.fork()
        if pid == 0:
            ok = p.is_initialized() == 1
            fd = p.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            ok = ok and fd >= 0 and p.write(fd, b"child data") == 10 and p.close(fd) == 0
            import pycapio

            pycapio.pycapio_teardown()  # a clean exit commits the child's file (os._exit would not)
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        fd = p.open(path, os.O_RDONLY)
        rc, data = p.read(fd, 100)
        p.close(fd)
        print(json.dumps({{"child": os.waitstatus_to_exitcode(status), "data": data.decode()}}))
        """,
        "forker",
    ).check()
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"child": 0, "data": "child data"}
