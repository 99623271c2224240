"""The public surface fixed by the seeds: names, signatures, defaults; no server needed."""

from __future__ import annotations

import inspect
import io
import os
import posixpath
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

import pycapio
import pycapio.internals
from pycapio import _pycapio

SEED_INTERNALS = [
    "CAPIO_DEFAULT_APP_NAME",
    "CAPIO_DEFAULT_WORKFLOW_NAME",
    "pycapio_get_capio_dir",
    "pycapio_init",
    "pycapio_mkdir",
    "pycapio_open",
    "pycapio_teardown",
    "DirEntry",
    "PyCapioBinaryIOWrapper",
    "PyCapioScandirWrapper",
    "PyCapioTextIOWrapper",
    "FILE_MODES",
]

REPO = Path(__file__).resolve().parent.parent


def test_internals_all_is_exactly_the_seed() -> None:
    assert sorted(pycapio.internals.__all__) == sorted(SEED_INTERNALS)
    assert len(pycapio.internals.__all__) == 12
    for name in SEED_INTERNALS:
        assert hasattr(pycapio.internals, name), name
    namespace: dict[str, object] = {}
    exec("from pycapio.internals import *", namespace)
    assert sorted(k for k in namespace if k != "__builtins__") == sorted(SEED_INTERNALS)


def test_package_all_lists_public_names_only() -> None:
    public = set(pycapio.__all__)
    for name in (
        "CapioContext",
        "open_proxy",
        "mkdir_proxy",
        "makedirs_proxy",
        "scandir_proxy",
        "listdir_proxy",
        "PyCapioPath",
        "PyCAPIOException",
        "FILE_MODES",
        "get_include",
        *SEED_INTERNALS,
    ):
        assert name in public, name
    for name in public:
        assert not name.startswith("_"), name
        assert hasattr(pycapio, name), name
        assert not inspect.ismodule(getattr(pycapio, name)), name
    for stray in ("io", "os", "Any", "wraps", "atexit", "builtins", "path"):
        assert stray not in public


def test_seed_classes_are_importable_from_the_native_module() -> None:
    from pycapio._pycapio import (  # type: ignore[attr-defined]
        DirEntry,
        PyCapioBinaryIOWrapper,
        PyCapioPath,
        PyCapioScandirWrapper,
        PyCapioTextIOWrapper,
    )

    assert PyCapioTextIOWrapper is pycapio.PyCapioTextIOWrapper
    assert PyCapioBinaryIOWrapper is pycapio.internals.PyCapioBinaryIOWrapper
    assert PyCapioScandirWrapper is pycapio.PyCapioScandirWrapper
    assert DirEntry is pycapio.DirEntry
    assert PyCapioPath is pycapio.PyCapioPath


def test_constants() -> None:
    assert pycapio.CAPIO_DEFAULT_APP_NAME == "default_app"
    assert pycapio.CAPIO_DEFAULT_WORKFLOW_NAME == "CAPIO"
    for flag in ("O_RDONLY", "O_WRONLY", "O_RDWR", "O_CREAT", "O_APPEND", "O_TRUNC", "O_EXCL"):
        assert pycapio.FILE_MODES[flag] == getattr(os, flag)


def test_exception_is_an_oserror() -> None:
    assert issubclass(pycapio.PyCAPIOException, OSError)


def test_capio_context_signature() -> None:
    sig = inspect.signature(pycapio.CapioContext)
    expected = {
        "capio_dir": ".",
        "app_name": "default_app",
        "workflow_name": "CAPIO",
        "silent": True,
        "server_exec_path": "capio_server",
        "capio_cl_configuration_file": "",
        "await_server_timeout_seconds": 2,
        "teardown_server": True,
    }
    assert list(sig.parameters) == list(expected)
    for name, default in expected.items():
        param = sig.parameters[name]
        assert param.kind is inspect.Parameter.KEYWORD_ONLY, name
        assert param.default == default, name
    with pytest.raises(TypeError):
        pycapio.CapioContext(".")  # type: ignore[misc]


def test_proxy_signatures_match_the_builtins() -> None:
    assert params(pycapio.open_proxy) == params(io.open)
    assert params(pycapio.mkdir_proxy) == params(os.mkdir)
    assert params(pycapio.makedirs_proxy) == params(os.makedirs)
    assert [p[0] for p in params(pycapio.scandir_proxy)] == ["path"]
    assert [p[0] for p in params(pycapio.listdir_proxy)] == ["path"]


def params(fn: object) -> list[tuple[str, object, object]]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]  # type: ignore[arg-type]


def test_pycapio_path_is_a_complete_os_path() -> None:
    for name in posixpath.__all__:
        assert hasattr(pycapio.PyCapioPath, name), name
        ours, theirs = getattr(pycapio.PyCapioPath, name), getattr(posixpath, name)
        if callable(theirs):
            assert params(ours) == params(theirs), name
        else:
            assert ours == theirs, name


def test_pycapio_path_pure_helpers_are_posixpath() -> None:
    P = pycapio.PyCapioPath
    cases = [
        ("join", ("a", "b", "c")),
        ("join", ("a", "")),
        ("join", (b"a", b"b")),
        ("splitext", ("/tmp/a/b.txt",)),
        ("normpath", ("a/b/",)),
        ("normpath", ("",)),
        ("dirname", ("//a",)),
        ("abspath", ("a/../b",)),
        ("relpath", ("x", ".")),
        ("basename", ("/tmp/a/",)),
        ("split", ("/tmp/a",)),
        ("commonpath", (["/a/b", "/a/c"],)),
    ]
    for name, args in cases:
        assert getattr(P, name)(*args) == getattr(posixpath, name)(*args), (name, args)


def test_pycapio_path_outside_capio_uses_the_disk(tmp_path: Path) -> None:
    # Not initialised: every query goes to posixpath, PathLike and bytes included.
    f = tmp_path / "f.bin"
    f.write_bytes(b"12345")
    P = pycapio.PyCapioPath
    assert P.exists(f) and P.isfile(f) and not P.isdir(f)
    assert P.exists(os.fsencode(f))
    assert P.isdir(tmp_path) and P.lexists(tmp_path)
    assert P.getsize(f) == 5
    assert P.getmtime(f) == os.path.getmtime(f)
    assert not P.exists(tmp_path / "missing") and not P.isfile(tmp_path / "missing")
    with pytest.raises(FileNotFoundError):
        P.getsize(tmp_path / "missing")
    assert P.samefile(f, str(f))
    assert not P.exists("bad\0path")


def test_not_initialised_means_no_interception(tmp_path: Path) -> None:
    assert _pycapio._capio_path(str(tmp_path)) is None
    # The proxies are usable without CAPIO: everything goes to the OS.
    p = tmp_path / "plain.txt"
    with pycapio.open_proxy(p, "w") as f:
        f.write("plain")
    assert p.read_text() == "plain"
    pycapio.makedirs_proxy(tmp_path / "a" / "b")
    pycapio.mkdir_proxy(tmp_path / "c")
    assert sorted(pycapio.listdir_proxy(tmp_path)) == ["a", "c", "plain.txt"]
    assert sorted(e.name for e in pycapio.scandir_proxy(tmp_path)) == ["a", "c", "plain.txt"]


def test_version_has_one_source() -> None:
    with open(REPO / "Cargo.toml", "rb") as f:
        cargo = tomllib.load(f)["workspace"]["package"]["version"]
    assert pycapio.__version__ == cargo
    assert metadata.version("pycapio") == cargo
    assert _pycapio.__version__ == cargo


def test_get_include_and_typing_files() -> None:
    package = Path(pycapio.__file__).parent
    assert Path(pycapio.get_include()) == package / "include"
    assert (package / "py.typed").is_file()
    assert (package / "_pycapio.pyi").is_file()
    if (REPO / "capsule" / "pycapio_capi.h").is_file():
        assert (Path(pycapio.get_include()) / "pycapio_capi.h").is_file()


def test_server_binary_ships_inside_the_package() -> None:
    server = Path(pycapio.__file__).parent / "capio_server"
    assert server.is_file()
    assert os.access(server, os.X_OK)


def test_import_in_a_fresh_interpreter_is_quiet(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-W", "error", "-c", "import pycapio, pycapio.internals, pycapio.__main__"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert out.stdout == "" and out.stderr == ""
