"""A workflow with more live files than the common soft open-file limit (the server keeps one fd
per live file, so it raises its soft limit to the hard one at start)."""

from __future__ import annotations

import resource
import subprocess

from conftest import Workflow

MANY_FILES = """
    import os, sys
    root, n = sys.argv[1], int(sys.argv[2])
    for i in range(n):
        with open(os.path.join(root, f"f{i:04d}.txt"), "w") as f:
            f.write(str(i))
    print(len(os.listdir(root)))
"""


def _low_fd_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))


def test_more_live_files_than_the_soft_fd_limit(workflow: Workflow) -> None:
    n = 600
    script = workflow.script(MANY_FILES)
    cmd = workflow.command(script, "many", [str(workflow.capio_dir), str(n)])
    # The step (and the server it starts) inherit a soft limit of 256 open files.
    result = subprocess.run(
        cmd,
        env=workflow.env,
        cwd=workflow.root,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_low_fd_limit,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(n)]
    files = sorted(p.name for p in workflow.capio_dir.iterdir())
    assert files == [f"f{i:04d}.txt" for i in range(n)]
    assert (workflow.capio_dir / "f0599.txt").read_text() == "599"
