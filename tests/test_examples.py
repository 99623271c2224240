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
