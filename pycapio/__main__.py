"""The ``pycapio`` launcher: run an unmodified Python script or module under CAPIO interception.

Usage::

    pycapio [--capio-dir DIR] [--workflow-name WF] [--app-name APP] [--capio-cl FILE]
            script_path [script_args ...]
    pycapio validate [--capio-dir DIR] FILE [PATH ...]

``script_path`` is a ``.py`` file, a directory with ``__main__.py``, or (if no such path exists)
a module name, as with ``python -m``. The target runs as ``__main__`` with ``sys.argv`` set to
``[script_path, *script_args]``; the exit status is the target's (its ``SystemExit`` code, 1 with
a traceback on stderr for an uncaught exception, 130 for ``KeyboardInterrupt``). The launcher
prints nothing on stdout; with ``SILENT=OFF`` in the environment it logs to stderr.
"""

from __future__ import annotations

import argparse
import logging
import os
import runpy
import sys
import traceback
from collections.abc import Sequence
from types import TracebackType

from . import CapioContext, _pycapio
from ._pycapio import CAPIO_DEFAULT_APP_NAME, CAPIO_DEFAULT_WORKFLOW_NAME

__all__ = ["main"]

logger = logging.getLogger("pycapio")

_LAUNCHER_DIR = os.path.dirname(os.path.abspath(__file__))
_RUNPY_FILE = os.path.abspath(runpy.__file__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pycapio",
        description="Run a Python script or module with its I/O inside the CAPIO directory served by CAPIO.",
    )
    parser.add_argument("--capio-dir", default=".", help="the CAPIO directory (default: %(default)s)")
    parser.add_argument(
        "--workflow-name",
        default=CAPIO_DEFAULT_WORKFLOW_NAME,
        help="CAPIO workflow name (default: %(default)s)",
    )
    parser.add_argument(
        "--app-name", default=CAPIO_DEFAULT_APP_NAME, help="CAPIO application name (default: %(default)s)"
    )
    parser.add_argument("--capio-cl", default="", help="CAPIO-CL configuration file (default: none)")
    parser.add_argument("script_path", help="a .py file, a directory with __main__.py, or a module name")
    parser.add_argument("script_args", nargs=argparse.REMAINDER, help="arguments passed to the target")
    return parser


def _verbose() -> bool:
    return os.environ.get("SILENT", "ON").upper() == "OFF"


def _setup_logging(verbose: bool) -> None:
    if verbose and not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("[pycapio] %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def _user_traceback(tb: TracebackType | None) -> TracebackType | None:
    """Drop the launcher's and runpy's frames, as the interpreter does when it runs a script."""
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.startswith("<frozen "):
            # runpy and importlib are frozen modules in 3.11+.
            if not filename.startswith(("<frozen runpy", "<frozen importlib")):
                break
        else:
            filename = os.path.abspath(filename)
            if filename != _RUNPY_FILE and os.path.dirname(filename) != _LAUNCHER_DIR:
                break
        tb = tb.tb_next
    return tb


def _run_target(script_path: str, script_args: list[str], context: CapioContext) -> None:
    # Decide what the target is before interception starts, on the real file system.
    is_path = os.path.exists(script_path)
    sys.argv = [script_path, *script_args]
    if is_path:
        target_dir = script_path if os.path.isdir(script_path) else os.path.dirname(script_path)
        sys.path[0] = os.path.abspath(target_dir)
        logger.info("running %s as __main__ with argv %r", script_path, sys.argv)
        with context:
            runpy.run_path(script_path, run_name="__main__")
    else:
        sys.path[0] = os.getcwd()
        logger.info("running module %s as __main__ with argv %r", script_path, sys.argv)
        with context:
            runpy.run_module(script_path, run_name="__main__", alter_sys=True)


def _validate(argv: Sequence[str]) -> int:
    """``pycapio validate``: check a CAPIO-CL file and show the rules the given paths get."""
    parser = argparse.ArgumentParser(
        prog="pycapio validate",
        description="Check a CAPIO-CL configuration file and print the rules each PATH would get.",
    )
    parser.add_argument(
        "--capio-dir", default=".", help="what relative paths resolve against (default: %(default)s)"
    )
    parser.add_argument("file", help="the CAPIO-CL (JSON) file")
    parser.add_argument("paths", nargs="*", help="paths to describe")
    args = parser.parse_args(argv)
    try:
        report = _pycapio._validate_config(args.file, args.capio_dir, args.paths)
    except (ValueError, OSError) as exc:
        print(f"pycapio validate: {exc}", file=sys.stderr)
        return 1
    print(report, end="")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``pycapio`` and ``python -m pycapio``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # A subcommand, unless a script of that name is what the user means to run.
    if argv[:1] == ["validate"] and not os.path.exists("validate"):
        return _validate(argv[1:])
    args = _parser().parse_args(argv)
    verbose = _verbose()
    _setup_logging(verbose)
    logger.info(
        "capio_dir=%s app_name=%s workflow_name=%s capio_cl=%s",
        args.capio_dir,
        args.app_name,
        args.workflow_name,
        args.capio_cl or "(none)",
    )
    context = CapioContext(
        capio_dir=args.capio_dir,
        app_name=args.app_name,
        workflow_name=args.workflow_name,
        capio_cl_configuration_file=args.capio_cl,
        silent=not verbose,
        teardown_server=True,
    )
    try:
        _run_target(args.script_path, list(args.script_args), context)
    except SystemExit as exc:
        code = exc.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code
        print(code, file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        traceback.print_exception(type(exc), exc, _user_traceback(exc.__traceback__), file=sys.stderr)
        return 130
    except BaseException as exc:
        user_tb = _user_traceback(exc.__traceback__)
        if user_tb is None:
            # Raised before the target ran (no such module, the server could not start, ...).
            print(f"pycapio: {type(exc).__name__}: {exc}", file=sys.stderr)
        else:
            traceback.print_exception(type(exc), exc, user_tb, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
