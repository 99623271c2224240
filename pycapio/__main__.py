"""The ``pycapio`` launcher: run an unmodified Python script or module under CAPIO interception.

Usage::

    pycapio [--capio-dir DIR] [--workflow-name WF] [--app-name APP] [--capio-cl FILE]
            script_path [script_args ...]
    pycapio validate [--capio-dir DIR] FILE [PATH ...]
    pycapio server status [--workflow-name WF] [--json]
    pycapio server start --capio-dir DIR [--workflow-name WF] [--capio-cl FILE] [--memory-limit SIZE]
    pycapio server run --capio-dir DIR [--workflow-name WF] [--capio-cl FILE] [--memory-limit SIZE]
    pycapio server stop [--workflow-name WF | --all] [--timeout SECONDS]

``script_path`` is a ``.py`` file, a directory with ``__main__.py``, or (if no such path exists)
a module name, as with ``python -m``. The target runs as ``__main__`` with ``sys.argv`` set to
``[script_path, *script_args]``; the exit status is the target's (its ``SystemExit`` code, 1 with
a traceback on stderr for an uncaught exception, 130 for ``KeyboardInterrupt``). The launcher
prints nothing on stdout; with ``SILENT=OFF`` in the environment it logs to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import runpy
import sys
import traceback
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from . import CapioContext, _pycapio
from ._pycapio import CAPIO_DEFAULT_APP_NAME, CAPIO_DEFAULT_WORKFLOW_NAME

__all__ = ["main"]

logger = logging.getLogger("pycapio")

_LAUNCHER_DIR = os.path.dirname(os.path.abspath(__file__))
_RUNPY_FILE = os.path.abspath(runpy.__file__)


_SUBCOMMANDS = """other commands (each has its own --help):
  pycapio validate [--capio-dir DIR] FILE [PATH ...]
                        check a CAPIO-CL file and show the rules each PATH gets
  pycapio server status [--workflow-name WF] [--json]
                        what each workflow's server holds: clients, files, waits, memory
  pycapio server start --capio-dir DIR [--workflow-name WF] [--capio-cl FILE] [--memory-limit SIZE]
                        start a workflow's server that outlives its steps
  pycapio server run --capio-dir DIR [--workflow-name WF] [--capio-cl FILE] [--memory-limit SIZE]
                        the same server, in the foreground (for job scripts)
  pycapio server stop [--workflow-name WF | --all] [--timeout SECONDS]
                        persist and stop a workflow's server
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pycapio",
        description="Run a Python script or module with its I/O inside the CAPIO directory served by CAPIO.",
        epilog=_SUBCOMMANDS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _who(ref: dict[str, Any]) -> str:
    return f"{ref.get('app', '?')}[{ref.get('pid', '?')}]"


def _describe(st: dict[str, Any]) -> list[str]:
    """A server's ``Status`` JSON as the lines ``pycapio server status`` prints."""
    srv = st["server"]
    limit = st.get("memory_limit")
    memory = _size(st["memory_used"]) + (f" of {_size(limit)}" if limit is not None else " (no limit)")
    memory += f", {_size(st.get('memory_pooled', 0))} pooled for new files"
    if st.get("memory_released"):
        memory += f", {_size(st['memory_released'])} of streams released after being read"
    if st.get("memory_spilled"):
        memory += f", {_size(st['memory_spilled'])} spilled to {st.get('spill_dir')}"
    lines = [
        f"workflow '{srv['workflow']}': capio_server pid {srv['pid']}, up {st['uptime_seconds']:.1f} s"
        + (" (stopping)" if srv.get("stopping") else ""),
        f"  CAPIO dir {srv['capio_dir']}; CAPIO-CL {srv.get('config') or 'none'}; memory {memory}",
        f"  log: {srv.get('log') or 'stderr'}; MPI support: "
        + (f"built in ({srv['mpi']})" if srv.get("mpi") else "not built in"),
    ]
    cluster = srv.get("cluster")
    if cluster:
        nodes = cluster["nodes"]
        lines.append(
            f"  node {cluster['rank']} of {len(nodes)} (MPI job): "
            + ", ".join(f"{rank}: {host}" for rank, host in enumerate(nodes))
        )
        lines.append(
            f"  moved between nodes: {_size(cluster.get('bytes_sent', 0))} sent, "
            f"{_size(cluster.get('bytes_received', 0))} received"
        )
    clients = st["clients"]
    lines.append(f"  clients ({st['live_clients']} attached):")
    for c in clients:
        state = "exited" if c["exited"] else f"producing {c['producing']}, {c['open_files']} open"
        lines.append(f"    {_who(c)} client {c['id']}: {state}  [{c['capio_dir']}]")
    if not clients:
        lines.append("    none")
    files = st["files"]
    shown = f"{len(files)} of {st['files_total']}" if len(files) < st["files_total"] else str(len(files))
    lines.append(f"  files ({shown}):")
    for f in files + st.get("unlinked_open_files", []):
        extra = []
        if f["producers"]:
            extra.append("producers " + ", ".join(_who(p) for p in f["producers"]))
        if f["readers"]:
            extra.append("readers " + ", ".join(_who(r) for r in f["readers"]))
        if f["state"] == "open" and f["readers"]:
            extra.append(f"{len(f['readers'])} reader(s) may be waiting for data or the commit")
        home = f.get("home")
        if home:
            written = (
                ""
                if home.get("writer", home["node"]) == home["node"]
                else f", written on node {home['writer']}"
            )
            extra.append(
                f"from node {home['node']} ({home['state']} there, {_size(home['size'])}{written}); "
                f"{_size(f['size'])} cached here"
                + (", kept here for the other nodes" if home.get("kept_here") else "")
            )
        if f.get("kept_on") is not None:
            extra.append(f"kept on node {f['kept_on']} for the other nodes' readers")
        if f["sleeping"]:
            extra.append(f"{f['sleeping']} thread(s) blocked on it now")
        if f["state"] == "committed" and f["permanent"]:
            extra.append("persisted" if f["persisted"] else "persisting")
        if f.get("released"):
            extra.append(f"its first {_size(f['released'])} released (read by every declared consumer)")
        extra.append("spilled to disk" if f.get("spilled") else f"{_size(f['memory_charged'])} in memory")
        name = f["path"] if f["path"] is not None else "(unlinked, still open)"
        rule = f"{f['commit']}, {f['fire']}" + (", storage fs" if f["storage"] == "fs" else "")
        lines.append(f"    {name}  {_size(f['size'])}  {f['state']} ({rule})")
        if extra:
            lines.append("      " + "; ".join(extra))
    if not files:
        lines.append("    none")
    for d in st.get("uncommitted_dirs", []):
        producers = ", ".join(_who(p) for p in d["producers"]) or "no producer left"
        lines.append(
            f"  directory {d['path']}: not committed ({d['commit']}, {d['entries']} entries; {producers})"
        )
    waits = st.get("waiting_opens", [])
    if waits:
        lines.append("  waiting to open a file nobody has created:")
    for w in waits:
        declared = w.get("declared_producers") or []
        note = f" (declared producers: {', '.join(declared)})" if declared else ""
        lines.append(f"    {w['path']}  {_who(w['client'])} for {w['seconds']:.1f} s{note}")
    return lines


def _server_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pycapio server",
        description="Look at and control this user's CAPIO servers (one per workflow on this node).",
    )
    sub = parser.add_subparsers(dest="action", required=True)
    status = sub.add_parser(
        "status", help="show running servers: clients, files (size, commit state, readers), waits"
    )
    status.add_argument("--workflow-name", help="only this workflow's server (default: all)")
    status.add_argument("--json", action="store_true", help="print the servers' raw JSON status")
    start = sub.add_parser("start", help="start a workflow's server (it runs until 'pycapio server stop')")
    run = sub.add_parser(
        "run",
        help="run a workflow's server in the foreground, logging to stderr, until 'pycapio server stop' "
        "or a signal (for job scripts and workflow managers)",
    )
    for command in (start, run):
        command.add_argument("--capio-dir", default=".", help="the CAPIO directory (default: %(default)s)")
        command.add_argument("--workflow-name", default=CAPIO_DEFAULT_WORKFLOW_NAME)
        command.add_argument("--capio-cl", default="", help="CAPIO-CL configuration file (default: none)")
        command.add_argument(
            "--memory-limit",
            help="budget for in-memory file bytes, e.g. 512M or 2G (default: $PYCAPIO_MEMORY_LIMIT)",
        )
    start.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for readiness")
    stop = sub.add_parser("stop", help="stop a workflow's server after it persisted what must persist")
    which = stop.add_mutually_exclusive_group()
    which.add_argument("--workflow-name", default=CAPIO_DEFAULT_WORKFLOW_NAME)
    which.add_argument("--all", action="store_true", help="stop every running server of this user")
    stop.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for it to exit")
    return parser


def _server(argv: Sequence[str]) -> int:
    """``pycapio server status|start|stop``. None of them attaches as a workflow client."""
    args = _server_parser().parse_args(argv)
    if args.action == "run":
        return _server_run(args)
    try:
        if args.action == "start":
            if args.memory_limit is not None:
                os.environ["PYCAPIO_MEMORY_LIMIT"] = args.memory_limit
            pid, started = _pycapio._server_start(
                args.capio_dir,
                args.workflow_name,
                args.capio_cl or None,
                await_server_timeout_seconds=args.timeout,
            )
            verb = "started" if started else "already running:"
            print(f"{verb} capio_server pid {pid} for workflow '{args.workflow_name}'")
            return 0
        if args.action == "stop":
            names = (
                [w for w, _, _, alive in _pycapio._server_list() if alive]
                if args.all
                else [args.workflow_name]
            )
            for name in names:
                pid = _pycapio._server_stop(name, args.timeout)
                print(f"stopped capio_server pid {pid} of workflow '{name}'")
            return 0
        return _server_status(args.workflow_name, args.json)
    except (_pycapio.PyCAPIOException, OSError, ValueError) as exc:
        print(f"pycapio server {args.action}: {exc}", file=sys.stderr)
        return 1


# What mpirun/mpiexec (Open MPI, MPICH) and srun (its PMI/PMIx plugins) put in each rank's
# environment: the rank, and the size of the job.
_MPI_RANK_VARIABLES = ("OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK")
_MPI_SIZE_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS")


def _launched_by_mpi() -> bool:
    """Whether this process is a rank of a parallel job of more than one task: then ``server run``
    is that node's server of a multi-node workflow. A job of one task (``srun -n1`` just to place
    the server on a node) is one node. Only ``server run`` asks; a server a step starts on its own
    never joins a job."""
    if not any(os.environ.get(name) for name in _MPI_RANK_VARIABLES):
        return False
    sizes = [os.environ.get(name, "") for name in _MPI_SIZE_VARIABLES]
    return any(size.isdigit() and int(size) > 1 for size in sizes)


def _server_run(args: argparse.Namespace) -> int:
    """``pycapio server run``: become the workflow's server (exec), in the foreground. It is managed
    as one from ``pycapio server start`` is: steps attach and leave without stopping it; ``pycapio
    server stop`` or SIGTERM/SIGINT stop it after it persisted what must persist, exit status 0."""
    server = os.path.join(_LAUNCHER_DIR, "capio_server")
    argv = [server, "--capio-dir", args.capio_dir, "--workflow-name", args.workflow_name, "--managed"]
    if _launched_by_mpi():
        argv += ["--backend", "mpi"]
    argv += ["--config", args.capio_cl] if args.capio_cl else ["--no-config"]
    if args.memory_limit is not None:
        argv += ["--memory-limit", args.memory_limit]
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execv(server, argv)
    except OSError as exc:
        print(f"pycapio server run: cannot execute {server}: {exc}", file=sys.stderr)
        return 1


def _server_status(workflow: str | None, as_json: bool) -> int:
    servers = _pycapio._server_list()
    if workflow is not None:
        servers = [s for s in servers if s[0] == workflow]
        if not any(alive for *_, alive in servers):
            print(f"pycapio server status: no capio_server runs for workflow '{workflow}'", file=sys.stderr)
            return 1
    reports: list[dict[str, Any]] = []
    lines: list[str] = []
    for name, pid, capio_dir, alive in servers:
        if not alive:
            lines.append(f"workflow '{name}': stale info file (pid {pid} is gone; CAPIO dir {capio_dir})")
            continue
        try:
            report = json.loads(_pycapio._server_status(name))
        except _pycapio.PyCAPIOException as exc:  # it stopped between the listing and the question
            lines.append(f"workflow '{name}': {exc}")
            continue
        reports.append(report)
        lines.extend(_describe(report))
    if as_json:
        print(json.dumps(reports, indent=2))
    elif lines:
        print("\n".join(lines))
    else:
        print("no capio_server is running")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``pycapio`` and ``python -m pycapio``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # A subcommand, unless a script of that name is what the user means to run.
    if argv[:1] == ["validate"] and not os.path.exists("validate"):
        return _validate(argv[1:])
    if argv[:1] == ["server"] and not os.path.exists("server"):
        return _server(argv[1:])
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
