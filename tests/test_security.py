"""Security: the runtime directory and socket are private to the user, another uid is refused (by
the directory's permissions and, if those are loosened, by the server's peer-credential check),
and no path reaches a file outside the CAPIO directory through CAPIO (symlinks, ``..``, sibling
prefixes). The control protocol itself is fuzzed by ``rust/capio-server/tests/fuzz_control.rs``."""

from __future__ import annotations

import errno
import json
import os
import socket
import stat
import struct
import subprocess
import sys
import traceback
from pathlib import Path

import pytest

from pycapio import _pycapio

from conftest import InProcess, Workflow, info_pids, wait_until

NOBODY = 65534


def mode(p: Path) -> int:
    return stat.S_IMODE(os.lstat(p).st_mode)


def test_runtime_dir_socket_and_files_are_private(workflow: Workflow) -> None:
    wf = workflow
    wf.runtime_dir.chmod(0o755)  # loosened by someone: the next client or server tightens it
    wf.run_step("print('hi')", "a").check()
    assert mode(wf.runtime_dir) == 0o700
    ready = wf.marker("ready")
    step = wf.start_step(
        "import sys, time\nopen(sys.argv[1], 'w').write('x')\ntime.sleep(60)\n", "holder", str(ready)
    )
    assert wait_until(ready.exists, 60), step.stderr()
    (sock,) = wf.runtime_dir.glob("*.sock")
    assert stat.S_ISSOCK(os.lstat(sock).st_mode) and mode(sock) == 0o600
    for suffix in ("info", "log", "lock", "start"):
        for p in wf.runtime_dir.glob(f"*.{suffix}"):
            assert mode(p) == 0o600, (p, oct(mode(p)))
    step.proc.kill()
    step.proc.wait()


def test_a_runtime_dir_owned_by_someone_else_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to make a directory owned by another uid")
    foreign = tmp_path / "rt"
    foreign.mkdir(mode=0o700)
    os.chown(foreign, NOBODY, NOBODY)
    capio_dir = tmp_path / "capio"
    capio_dir.mkdir()
    code = "import pycapio, sys; pycapio.pycapio_init(sys.argv[1], 'x', 'wf-foreign')"
    env = dict(os.environ, PYCAPIO_RUNTIME_DIR=str(foreign))
    out = subprocess.run(
        [sys.executable, "-c", code, str(capio_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,  # not the checkout, whose pycapio/ has no extension
    )
    assert out.returncode != 0
    assert f"runtime directory {foreign} is owned by uid {NOBODY}, not by this user" in out.stderr
    assert os.listdir(foreign) == []


HELLO = 1  # Kind::Hello
REPLY_BIT = 0x8000


def protocol_version(workflow: str) -> int:
    """The protocol version the running server speaks, from its status report: never a stale copy."""
    return int(json.loads(_pycapio._server_status(workflow))["server"]["protocol_version"])


def hello_frame(version: int, pid: int, app: str, capio_dir: str) -> bytes:
    """A client ``Hello`` as rust/capio-proto/src/wire lays it out: header (magic 'CPIO', protocol
    version, kind, body length, reserved), body (pid, flags), tail (app, NUL, CAPIO directory)."""
    tail = app.encode() + b"\0" + capio_dir.encode()
    body = struct.pack("<II", pid, 0) + tail
    magic = int.from_bytes(b"CPIO", "little")
    return struct.pack("<IHHII", magic, version, HELLO, len(body), 0) + body


def as_nobody(fn) -> int:  # type: ignore[no-untyped-def]
    """Run ``fn`` in a forked child with uid/gid nobody; its return value is the exit status."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 99
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            code = fn()
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_another_uid_cannot_attach(capio: InProcess) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to act as another uid")
    (sock,) = capio.runtime_dir.glob("*.sock")
    version = protocol_version(capio.workflow)

    def hello(app: str) -> bytes:
        """Connect and say ``Hello``; the reply's first bytes, b"" if the server hung up."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(str(sock))
            try:
                s.sendall(hello_frame(version, os.getpid(), app, str(capio.capio_dir)))
                return s.recv(64)
            except (BrokenPipeError, ConnectionResetError):
                return b""

    # The frame is one the server accepts: from this uid it answers with a Hello reply, status 0.
    # So below, where the same frame from another uid is hung up on, only the uid check refused it.
    reply = hello("control")
    magic, _, kind, _, _, status = struct.unpack_from("<IHHIIi", reply)
    assert (magic, kind, status) == (int.from_bytes(b"CPIO", "little"), HELLO | REPLY_BIT, 0)

    def connect() -> int:
        try:
            return 0 if hello("intruder") else 3
        except PermissionError:
            return 13
        except OSError:
            return 4

    # The private runtime directory stops it before the socket.
    assert as_nobody(connect) == 13
    # Loosened by mistake, the socket is reachable: the server checks the peer's uid and hangs up.
    capio.runtime_dir.chmod(0o755)
    sock.chmod(0o777)
    try:
        assert as_nobody(connect) == 3
    finally:
        capio.runtime_dir.chmod(0o700)
        sock.chmod(0o600)
    logs = "".join(p.read_text() for p in capio.runtime_dir.glob("*.log"))
    assert f"refused a connection from uid {NOBODY}" in logs
    # The server is unharmed: this process still works with it.
    with open(capio.path("after.txt"), "w") as f:
        f.write("ok")
    assert info_pids(capio.runtime_dir) == [capio.server_pid]


@pytest.fixture
def escape(tmp_path: Path, capio: InProcess) -> tuple[InProcess, Path]:
    """An outside directory with a secret, reachable from the CAPIO directory only by symlinks."""
    outside = tmp_path / "outside"
    (outside / "sub").mkdir(parents=True)
    (outside / "secret.txt").write_text("secret")
    os.symlink(outside, capio.path("link_out"))
    os.symlink(outside / "secret.txt", capio.path("link_file"))
    os.symlink("../outside", capio.path("link_rel"))
    return capio, outside


def snapshot(root: Path) -> dict[str, tuple[int, int, bytes]]:
    out = {}
    for p in sorted(root.rglob("*")):
        st = os.lstat(p)
        data = p.read_bytes() if p.is_file() and not p.is_symlink() else b""
        out[str(p)] = (st.st_mode, st.st_mtime_ns, data)
    return out


def test_symlinks_out_of_the_capio_dir_never_reach_the_outside(escape: tuple[InProcess, Path]) -> None:
    capio, outside = escape
    before = snapshot(outside)
    with capio.context():
        attempts = {
            "read": lambda: open(capio.path("link_out", "secret.txt")).read(),
            "read file link": lambda: open(capio.path("link_file")).read(),
            "read relative link": lambda: open(capio.path("link_rel", "secret.txt")).read(),
            "write": lambda: open(capio.path("link_out", "new.txt"), "w").write("x"),
            "overwrite": lambda: open(capio.path("link_file"), "w").write("pwned"),
            "append": lambda: open(capio.path("link_rel", "secret.txt"), "a").write("pwned"),
            "mkdir": lambda: os.mkdir(capio.path("link_out", "d")),
            "makedirs": lambda: os.makedirs(capio.path("link_out", "a", "b")),
            "listdir": lambda: os.listdir(capio.path("link_out")),
            "stat": lambda: os.stat(capio.path("link_out", "secret.txt")),
            "remove": lambda: os.remove(capio.path("link_out", "secret.txt")),
            "rename out": lambda: os.rename(capio.path("link_out", "secret.txt"), capio.path("stolen")),
            "rename in": lambda: os.replace(capio.path("mine"), capio.path("link_out", "planted")),
            "rmdir": lambda: os.rmdir(capio.path("link_out", "sub")),
        }
        with open(capio.path("mine"), "w") as f:
            f.write("mine")
        results = {}
        for name, attempt in attempts.items():
            try:
                results[name] = ("ok", attempt())
            except OSError as e:
                results[name] = ("error", e.errno)
    for name, (kind, value) in results.items():
        assert kind == "error", f"{name} succeeded: {value!r}"
        assert value in (errno.EXDEV, errno.ENOENT), (name, value)
    assert snapshot(outside) == before
    assert not os.path.exists(capio.path("stolen"))
    # Removing the link itself is fine: it is an entry of the CAPIO directory, not its target.
    with capio.context():
        os.remove(capio.path("link_file"))
    assert (outside / "secret.txt").read_text() == "secret"


def test_dotdot_and_sibling_prefixes_are_not_capio_paths(
    escape: tuple[InProcess, Path], tmp_path: Path
) -> None:
    capio, outside = escape
    sibling = Path(str(capio.capio_dir) + "2")
    sibling.mkdir()
    with capio.context():
        # Lexically outside: plain OS files, exactly as without pycapio.
        with open(capio.path("..", "outside", "via_dotdot.txt"), "w") as f:
            f.write("os")
        with open(sibling / "x.txt", "w") as f:
            f.write("sibling")
        # '..' that stays inside is CAPIO's.
        with open(capio.path("sub_missing", "..", "inside.txt"), "w") as f:
            f.write("inside")
        assert open(capio.path("inside.txt")).read() == "inside"
        assert os.path.exists(capio.path("inside.txt"))
    assert (outside / "via_dotdot.txt").read_text() == "os"
    assert (sibling / "x.txt").read_text() == "sibling"
    # The sibling file never entered CAPIO's namespace: it was on disk at once.
    pycapio_files = os.listdir(capio.capio_dir)
    assert "x.txt" not in pycapio_files
