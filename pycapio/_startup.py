"""Start-up hook: a Python process started by a CAPIO step joins the step's CAPIO app.

``pycapio_startup.pth`` (installed in site-packages with pycapio) calls :func:`start` in every new
interpreter when ``PYCAPIO_CONTEXT`` is set, which an active :class:`~pycapio.CapioContext` does
for its children: ``multiprocessing`` workers started with ``spawn`` or ``forkserver``, and Python
programs run with ``subprocess``. The process then initialises CAPIO with the parent's settings,
is patched for its whole life and commits its files when it exits.
"""

from __future__ import annotations

import json
import os
import sys

__all__ = ["start"]


def start() -> None:
    value = os.environ.get("PYCAPIO_CONTEXT")
    if not value:
        return
    try:
        settings = json.loads(value)
        from . import _context

        _context.start_inherited(settings)
    except Exception as exc:
        # Never stop an unrelated program from starting; say why its I/O is not CAPIO's.
        print(
            f"pycapio: this process could not join the CAPIO app of its parent "
            f"(PYCAPIO_CONTEXT={value}): {type(exc).__name__}: {exc}",
            file=sys.stderr,
        )
