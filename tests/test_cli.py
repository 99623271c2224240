"""The ``pycapio`` launcher: targets, argv, sys.path, exit codes, and a clean stdout."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import Workflow, wait_until

REPO = Path(__file__).resolve().parent.parent

CONSOLE_SCRIPT = Path(sys.executable).parent / "pycapio"


def run_cli(
    workflow: Workflow, *args: str, cwd: Path | None = None, launcher: str = "module"
) -> subprocess.CompletedProcess[str]:
    if launcher == "module":
        head = [sys.executable, "-m", "pycapio"]
    else:
        head = [str(CONSOLE_SCRIPT)]
    cmd = [
        *head,
        "--capio-dir",
        str(workflow.capio_dir),
        "--app-name",
        "cli",
        "--workflow-name",
        workflow.name,
        *args,
    ]
    return subprocess.run(
        cmd, capture_output=True, text=True, env=workflow.env, cwd=cwd or workflow.root, timeout=90
    )


@pytest.mark.parametrize("launcher", ["module", "console-script"])
def test_runs_a_script_with_its_argv_and_prints_nothing_of_its_own(workflow: Workflow, launcher: str) -> None:
    script = workflow.script(
        """
        import os, sys
        print("argv", sys.argv)
        print("name", __name__)
        print("path0", sys.path[0])
        with open(sys.argv[1] + "/f.txt", "w") as f:
            f.write("x")
        print("patched", type(open(sys.argv[1] + "/f.txt").buffer.raw).__name__)
        """
    )
    result = run_cli(workflow, str(script), str(workflow.capio_dir), "--app-name", "-x", launcher=launcher)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"argv [{str(script)!r}, {str(workflow.capio_dir)!r}, '--app-name', '-x']",
        "name __main__",
        f"path0 {script.parent}",
        "patched CapioFileIO",
    ]
    assert result.stderr == ""
    assert (workflow.capio_dir / "f.txt").read_text() == "x"


def test_verbose_messages_go_to_stderr(workflow: Workflow) -> None:
    script = workflow.script("print('only this')")
    env = dict(workflow.env, SILENT="OFF")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pycapio",
            "--capio-dir",
            str(workflow.capio_dir),
            "--workflow-name",
            workflow.name,
            str(script),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=90,
        cwd=workflow.root,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "only this\n"
    assert "[pycapio]" in result.stderr


@pytest.mark.parametrize(
    ("body", "code", "stderr_has"),
    [
        ("pass", 0, None),
        ("import sys; sys.exit(7)", 7, None),
        ("import sys; sys.exit(None)", 0, None),
        ("import sys; sys.exit('fatal message')", 1, "fatal message"),
        ("raise ValueError('boom')", 1, "ValueError: boom"),
        ("raise KeyboardInterrupt", 130, "KeyboardInterrupt"),
    ],
)
def test_exit_code_mirrors_the_target(
    workflow: Workflow, body: str, code: int, stderr_has: str | None
) -> None:
    script = workflow.script(body)
    result = run_cli(workflow, str(script))
    assert result.returncode == code, result.stderr
    assert result.stdout == ""
    if stderr_has:
        assert stderr_has in result.stderr
    if "ValueError" in body:
        # The traceback is the script's, without the launcher's frames.
        assert str(script) in result.stderr
        assert "runpy" not in result.stderr and "pycapio/__main__.py" not in result.stderr


def test_a_failed_script_is_not_run_again(workflow: Workflow) -> None:
    counter = workflow.marker("runs")
    script = workflow.script(
        f"""
        with open({str(counter)!r}, "a") as f:
            f.write("run\\n")
        raise RuntimeError("half-way")
        """
    )
    result = run_cli(workflow, str(script))
    assert result.returncode == 1
    assert counter.read_text() == "run\n"


def test_runs_a_module_by_name(workflow: Workflow) -> None:
    pkg = workflow.root / "modroot"
    pkg.mkdir()
    (pkg / "stepmod.py").write_text(
        "import sys\nprint(__name__, sys.argv[1:])\nraise SystemExit(int(sys.argv[1]))\n"
    )
    result = run_cli(workflow, "stepmod", "5", "x", cwd=pkg)
    assert result.returncode == 5, result.stderr
    assert result.stdout == "__main__ ['5', 'x']\n"


def test_runs_a_directory_with_main(workflow: Workflow) -> None:
    app = workflow.root / "app"
    app.mkdir()
    (app / "__main__.py").write_text("import sys\nprint('dir main', sys.argv[1:])\n")
    result = run_cli(workflow, str(app), "a")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "dir main ['a']\n"


def test_missing_target_is_a_launcher_error(workflow: Workflow) -> None:
    result = run_cli(workflow, "no_such_module_or_script_xyz")
    assert result.returncode == 1
    assert result.stdout == ""
    assert "no_such_module_or_script_xyz" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_capio_dir_is_a_launcher_error(workflow: Workflow) -> None:
    script = workflow.script("print('must not run')")
    result = subprocess.run(
        [sys.executable, "-m", "pycapio", "--capio-dir", str(workflow.root / "nope"), str(script)],
        capture_output=True,
        text=True,
        env=workflow.env,
        timeout=90,
        cwd=workflow.root,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert "nope" in result.stderr


def test_defaults_are_the_native_constants() -> None:
    from pycapio.__main__ import _parser

    args = _parser().parse_args(["script.py"])
    assert (args.capio_dir, args.workflow_name, args.app_name, args.capio_cl) == (
        ".",
        "CAPIO",
        "default_app",
        "",
    )
    assert args.script_args == []


def test_help_documents_the_flags(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pycapio", "--help"], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 0
    for flag in ("--capio-dir", "--workflow-name", "--app-name", "--capio-cl", "script_path", "script_args"):
        assert flag in result.stdout
    # The subcommands are named too, each with what it does.
    for command in (
        "pycapio validate",
        "pycapio server status",
        "pycapio server start",
        "pycapio server stop",
    ):
        assert command in result.stdout, result.stdout


def test_ctrl_c_exits_130(workflow: Workflow) -> None:
    started = workflow.marker("started")
    step = workflow.start_step(
        f"""
        import time
        with open({str(started)!r}, "w") as f:
            f.write("started")
        time.sleep(60)
        """,
        "sleeper",
    )
    assert wait_until(started.exists, 60), step.stderr()
    step.proc.send_signal(signal.SIGINT)
    result = step.wait(30)
    assert result.returncode == 130
    assert result.stdout == ""
    assert "KeyboardInterrupt" in result.stderr


def test_ctrl_c_interrupts_a_blocked_open(workflow: Workflow) -> None:
    workflow.start_peer()  # so that the open waits for a producer
    started = workflow.marker("started")
    step = workflow.start_step(
        f"""
        with open({str(started)!r}, "w") as f:
            f.write("started")
        open({str(workflow.capio_dir / "never-produced")!r}).read()
        """,
        "blocked",
    )
    assert wait_until(started.exists, 60), step.stderr()
    time.sleep(0.5)
    assert step.running()
    step.proc.send_signal(signal.SIGINT)
    result = step.wait(30)
    assert result.returncode == 130, result.stderr


def test_an_mpi_build_without_mpi_stops_with_what_to_install(tmp_path: Path) -> None:
    # PATH without mpicc, and no libclang where the build looks: the message names the packages.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python").symlink_to(sys.executable)
    env = {**os.environ, "PYCAPIO_MPI": "1", "PATH": str(bindir), "LIBCLANG_PATH": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "setup.py", "--name"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "PYCAPIO_MPI=1 builds capio_server with MPI support, which needs" in result.stderr, result.stderr
    assert "mpicc" in result.stderr
    assert "apt-get install libopenmpi-dev openmpi-bin libclang-dev" in result.stderr


def test_a_step_can_launch_a_step_of_another_app(workflow: Workflow) -> None:
    # The child first joins its parent's app (PYCAPIO_CONTEXT), then its own context for app B
    # replaces that: it once deadlocked on the initialisation lock it already held.
    inner = workflow.script(
        """
        import sys
        from pycapio import _pycapio
        with open(sys.argv[1], "w") as f:
            f.write("from b")
        print("inner", type(f).__name__, _pycapio.pycapio_get_capio_dir())
        """,
        "inner.py",
    )
    result = workflow.run_step(
        f"""
        import subprocess, sys
        with open(sys.argv[1] + "/a.txt", "w") as f:
            f.write("from a")
        cmd = [sys.executable, "-m", "pycapio", "--capio-dir", sys.argv[1], "--app-name", "b",
               "--workflow-name", {workflow.name!r}, {str(inner)!r}, sys.argv[1] + "/b.txt"]
        child = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        print(child.returncode, child.stdout.strip(), child.stderr.strip())
        """,
        "a",
        str(workflow.capio_dir),
    ).check()
    assert result.stdout.split() == ["0", "inner", "TextIOWrapper", str(workflow.capio_dir.resolve())]
    assert (workflow.capio_dir / "b.txt").read_text() == "from b"
    assert (workflow.capio_dir / "a.txt").read_text() == "from a"
