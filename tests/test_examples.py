"""The example workflow in examples/ runs with one command and checks itself."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_streaming_workflow_example(tmp_path: Path, runtime_dir: Path) -> None:
    env = dict(os.environ, PYCAPIO_RUNTIME_DIR=str(runtime_dir), PYTHON=sys.executable)
    result = subprocess.run(
        ["bash", str(EXAMPLES / "streaming_workflow.sh"), str(tmp_path / "work")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK: streamed and persisted" in result.stdout
    assert (tmp_path / "work" / "capio" / "measurements.csv").stat().st_size > 1_000_000


def test_example_steps_do_not_import_pycapio() -> None:
    for step in ("producer.py", "consumer.py"):
        source = (EXAMPLES / step).read_text()
        assert "import pycapio" not in source and "from pycapio" not in source


def test_multinode_example_streams_between_two_simulated_nodes(tmp_path: Path, mpi_server: Path) -> None:
    """examples/multinode/run.sh with the MPI build of the server: a consumer on node 1 reads what
    a producer on node 0 writes, and the MPI job stops cleanly (the script waits for it)."""
    env = dict(os.environ, PYTHON=sys.executable, CAPIO_SERVER_EXEC=str(mpi_server))
    result = subprocess.run(
        ["bash", str(EXAMPLES / "multinode" / "run.sh"), str(tmp_path / "work")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK: streamed across nodes and persisted" in result.stdout
    assert "from node 0 (committed there" in result.stdout, result.stdout
    assert (tmp_path / "work" / "capio" / "measurements.csv").stat().st_size > 1_000_000
