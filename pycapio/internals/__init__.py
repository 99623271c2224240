"""Low-level CAPIO primitives for custom I/O modules.

The raw building blocks the :mod:`pycapio` proxies are made of: initialisation, CAPIO fds, file
objects over them and directory scanning inside the CAPIO directory::

    from pycapio.internals import *

    pycapio_init("/tmp/capio", "producer", "my_workflow")
    fd = pycapio_open("/tmp/capio/out.txt", FILE_MODES["O_WRONLY"] | FILE_MODES["O_CREAT"])
    with PyCapioTextIOWrapper(fd) as f:
        f.write("hello\\n")
"""

from .._dirs import DirEntry, PyCapioScandirWrapper
from .._pycapio import (
    CAPIO_DEFAULT_APP_NAME,
    CAPIO_DEFAULT_WORKFLOW_NAME,
    FILE_MODES,
    pycapio_get_capio_dir,
    pycapio_init,
    pycapio_mkdir,
    pycapio_open,
    pycapio_teardown,
)
from .._seed import PyCapioBinaryIOWrapper, PyCapioTextIOWrapper

__all__ = [
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
