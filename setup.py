"""Build of pycapio: the pyo3-ffi extension ``pycapio._pycapio`` and the ``capio_server`` binary.

Both come from the Cargo workspace; the server is installed inside the package
(``pycapio/capio_server``) so the extension finds it without PATH tricks. The version is the
workspace's (Cargo.toml, ``[workspace.package]``): one source of truth.
"""

import glob
import os
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


# `PYCAPIO_MPI=1 pip install .` builds the server with MPI support (one server per node, joined by
# MPI), as `HDF5_MPI=ON pip install h5py` does; a plain install needs no MPI.
WITH_MPI = os.environ.get("PYCAPIO_MPI", "").strip().lower() in {"1", "on", "yes", "true"}
MPI_PACKAGES = "libopenmpi-dev openmpi-bin libclang-dev"


def mpi_prerequisites_missing() -> list[str]:
    """What the MPI build lacks: the MPI compiler wrapper (rsmpi asks it for the flags) and libclang
    (bindgen generates the MPI bindings with it)."""
    missing = []
    if shutil.which("mpicc") is None:
        missing.append("an MPI implementation with its compiler wrapper (mpicc)")
    libclang = os.environ.get("LIBCLANG_PATH")
    patterns = [f"{libclang}/libclang*.so*"] if libclang else []
    patterns += ["/usr/lib/llvm-*/lib/libclang*.so*", "/usr/lib/*/libclang*.so*", "/usr/lib64/libclang*.so*"]
    if not any(glob.glob(p) for p in patterns):
        missing.append("libclang (or LIBCLANG_PATH pointing at its directory)")
    return missing


def server_features() -> list[str]:
    if not WITH_MPI:
        return []
    missing = mpi_prerequisites_missing()
    if missing:
        raise SystemExit(
            "PYCAPIO_MPI=1 builds capio_server with MPI support, which needs "
            + " and ".join(missing)
            + f". On Debian or Ubuntu: apt-get install {MPI_PACKAGES}. "
            "Without PYCAPIO_MPI, pip install . builds the single-node server, which needs neither."
        )
    return ["mpi"]


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
            features=server_features(),
        ),
    ],
    options={"bdist_wheel": {"py_limited_api": "cp311"}},
    cmdclass={"build_py": BuildPy, "build_rust": BuildRust},
)
