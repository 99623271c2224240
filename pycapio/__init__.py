"""pycapio: transparent, in-memory, streaming file I/O for file-based Python workflows.

Files written under a *CAPIO directory* are served from memory by a node-local server, and a
consumer may open a file before (and read it while) its producer writes it. Python code needs no
change: :class:`CapioContext` (a decorator and a context manager) or the ``pycapio`` launcher swap
``open``, ``io.open``, ``os.path``, the directory, stat, remove, rename and fd functions of ``os``
and ``shutil.rmtree`` for CAPIO-aware proxies that route only paths inside the CAPIO directory
(and CAPIO fds) to CAPIO::

    from pycapio import CapioContext

    @CapioContext(capio_dir="./data", app_name="reader", workflow_name="example")
    def read(path):
        with open(path) as f:
            return f.read()

:mod:`pycapio.internals` has the raw primitives for custom I/O modules.
"""

from __future__ import annotations

import os
from multiprocessing import util as _mp_util
from pathlib import Path

try:
    from . import _pycapio
except ImportError as exc:  # pragma: no cover - depends on how the package was reached
    if not list(Path(__file__).parent.glob("_pycapio*.so")):
        raise ImportError(
            f"pycapio was imported from {Path(__file__).parent}, which has no compiled extension: "
            "this is the source checkout shadowing the installed package (the current directory "
            "comes first on sys.path). Run from another directory, or install in place with "
            "`pip install -e .`."
        ) from exc
    raise
# _context loads the patch registry, which dresses the proxies: the *_proxy names below are the
# objects that get installed.
from . import _lifecycle
from ._context import CapioContext
from ._dirs import DirEntry, PyCapioScandirWrapper
from ._open import open_proxy
from ._ospatch import listdir_proxy, makedirs_proxy, mkdir_proxy, scandir_proxy
from ._path import PyCapioPath
from ._pycapio import (
    CAPIO_DEFAULT_APP_NAME,
    CAPIO_DEFAULT_WORKFLOW_NAME,
    FILE_MODES,
    PyCAPIOException,
    pycapio_get_capio_dir,
    pycapio_init,
    pycapio_mkdir,
    pycapio_open,
    pycapio_teardown,
)
from ._rawio import CapioFileIO
from ._seed import PyCapioBinaryIOWrapper, PyCapioTextIOWrapper

__version__: str = _pycapio.__version__

__all__ = [
    "CAPIO_DEFAULT_APP_NAME",
    "CAPIO_DEFAULT_WORKFLOW_NAME",
    "FILE_MODES",
    "CapioContext",
    "CapioFileIO",
    "DirEntry",
    "PyCAPIOException",
    "PyCapioBinaryIOWrapper",
    "PyCapioPath",
    "PyCapioScandirWrapper",
    "PyCapioTextIOWrapper",
    "get_include",
    "listdir_proxy",
    "makedirs_proxy",
    "mkdir_proxy",
    "open_proxy",
    "pycapio_get_capio_dir",
    "pycapio_init",
    "pycapio_mkdir",
    "pycapio_open",
    "pycapio_teardown",
    "scandir_proxy",
]


def get_include() -> str:
    """The directory holding ``pycapio_capi.h``, for compiling extensions against the C API."""
    return str(Path(__file__).resolve().parent / "include")


# The seeds document these classes as names of the native module; they are written in Python on
# top of its primitives, and published there too so ``from pycapio._pycapio import ...`` works.
for _cls in (PyCapioBinaryIOWrapper, PyCapioTextIOWrapper, PyCapioScandirWrapper, DirEntry, PyCapioPath):
    setattr(_pycapio, _cls.__name__, _cls)
del _cls

# A forked child (multiprocessing) must not reuse its parent's connection to the server, and a
# multiprocessing child must detach (committing its files) before its os._exit.
os.register_at_fork(after_in_child=_lifecycle.after_fork_in_child)
_mp_util.register_after_fork(_lifecycle, _lifecycle.setup_multiprocessing_child)
