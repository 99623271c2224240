"""Build of pycapio: the pyo3-ffi extension ``pycapio._pycapio`` and the ``capio_server`` binary.

Both come from the Cargo workspace; the server is installed inside the package
(``pycapio/capio_server``) so the extension finds it without PATH tricks. The version is the
workspace's (Cargo.toml, ``[workspace.package]``): one source of truth.
"""

import shutil
import stat
import tomllib
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools_rust import Binding, RustExtension
from setuptools_rust.build import build_rust

ROOT = Path(__file__).resolve().parent
HEADER = ROOT / "capsule" / "pycapio_capi.h"
# Installed at the top of site-packages, so every new interpreter runs it: a Python child of a CAPIO
# step (multiprocessing spawn, subprocess) joins the step's app (pycapio/_startup.py). Cheap when
# PYCAPIO_CONTEXT is unset: one dictionary look-up.
STARTUP_PTH = "pycapio_startup.pth"
STARTUP_LINE = (
    'import os; os.environ.get("PYCAPIO_CONTEXT") and '
    '__import__("pycapio._startup", fromlist=["start"]).start()\n'
)


def workspace_version() -> str:
    with open(ROOT / "Cargo.toml", "rb") as f:
        return str(tomllib.load(f)["workspace"]["package"]["version"])


class BuildPy(build_py):
    """Also ship capsule/pycapio_capi.h as pycapio/include/pycapio_capi.h (see get_include()), and
    the start-up hook ``pycapio_startup.pth`` at the top of the wheel (site-packages)."""

    def run(self) -> None:
        super().run()
        (Path(self.build_lib) / STARTUP_PTH).write_text(STARTUP_LINE)
        if HEADER.is_file():
            dest = Path(self.build_lib) / "pycapio" / "include"
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(HEADER, dest / HEADER.name)


class BuildRust(build_rust):
    """setuptools-rust copies ``capio_server`` into the package; make sure it stays executable."""

    def run(self) -> None:
        super().run()
        build_ext = self.get_finalized_command("build_ext")
        for base in {Path(build_ext.build_lib), ROOT}:
            server = base / "pycapio" / "capio_server"
            if server.is_file():
                server.chmod(server.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


setup(
    version=workspace_version(),
    rust_extensions=[
        RustExtension(
            "pycapio._pycapio",
            path="rust/pycapio-ext/Cargo.toml",
            binding=Binding.NoBinding,
            py_limited_api=True,
            debug=False,
        ),
        RustExtension(
            {"capio_server": "pycapio.capio_server"},
            path="rust/capio-server/Cargo.toml",
            binding=Binding.Exec,
            debug=False,
        ),
    ],
    options={"bdist_wheel": {"py_limited_api": "cp311"}},
    cmdclass={"build_py": BuildPy, "build_rust": BuildRust},
)
