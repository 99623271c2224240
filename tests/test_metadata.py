"""File metadata like a real file system (issue 10): creation modes under the umask, chmod/utime/
chown and what they do to ``st_mode``/times/owner, links and FIFOs inside the CAPIO directory, and
metadata reaching the persisted copy. Every behaviour is compared with the same calls on a plain
directory (type, errno, message, with the directory name masked).
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import pycapio
from pycapio import _ospatch

from conftest import RUNTIME_ENV, InProcess, ServerTracker, Workflow, unique_workflow


def make(path: str | Path, data: bytes = b"data") -> str:
    with open(path, "wb") as f:
        f.write(data)
    return os.fspath(path)


def outcome(fn: Callable[[], Any], *roots: str | Path) -> tuple[str, str]:
    try:
        value = fn()
    except Exception as e:
        text = str(e)
        for root in roots:
            text = text.replace(str(root), "<DIR>")
        return type(e).__name__, text
    text = repr(value)
    for root in roots:
        text = text.replace(str(root), "<DIR>")
    return "ok", text


def roots(plain: Path, capio: InProcess) -> tuple[Path, Path]:
    return plain, Path(capio.capio_dir)


def same(plain: Path, capio: InProcess, call: Callable[[Path], Any]) -> tuple[str, str]:
    """``call(root)`` on the plain directory and on the CAPIO directory: the same outcome."""
    want = outcome(lambda: call(plain), plain)
    got = outcome(lambda: call(Path(capio.capio_dir)), capio.capio_dir)
    assert got == want
    return got


def mode_of(path: str | Path, follow: bool = True) -> int:
    return (os.stat(path) if follow else os.lstat(path)).st_mode


# -- creation modes -------------------------------------------------------------------------------


@pytest.mark.parametrize("mask", [0, 0o027, 0o777])
def test_new_files_and_directories_get_the_mode_less_the_umask(
    patched: InProcess, plain: Path, mask: int
) -> None:
    old = os.umask(mask)
    try:
        for root in roots(plain, patched):
            make(root / "open")
            os.close(os.open(root / "osopen", os.O_WRONLY | os.O_CREAT, 0o4775))
            os.close(os.open(root / "osopen0", os.O_WRONLY | os.O_CREAT, 0))
            os.mkdir(root / "dir", 0o1777)
            os.makedirs(root / "deep" / "er", 0o750)
            Path(root / "touched").touch(0o640)
    finally:
        os.umask(old)
    for name in ("open", "osopen", "osopen0", "dir", "deep", "deep/er", "touched"):
        want, got = (mode_of(r / name) for r in roots(plain, patched))
        assert oct(got) == oct(want), (name, mask)


def test_a_umask_set_between_two_contexts_or_by_the_program_is_honoured(capio: InProcess) -> None:
    # CAPIO keeps the umask while patched (os.umask's proxy reports changes) and reads it again
    # when a context starts, so a change made while unpatched is not missed.
    old = os.umask(0o077)
    try:
        with capio.context():
            make(capio.path("a"))
            assert os.umask(0o027) == 0o077, "the proxy returns the previous mask"
            make(capio.path("b"))
        os.umask(0o007)
        with capio.context():
            make(capio.path("c"))
    finally:
        os.umask(old)
    with capio.context():
        modes = [oct(stat.S_IMODE(os.stat(capio.path(n)).st_mode)) for n in "abc"]
    assert modes == ["0o600", "0o640", "0o660"]


# -- chmod / utime --------------------------------------------------------------------------------


def test_chmod_and_fchmod_change_the_mode_bits(patched: InProcess, plain: Path) -> None:
    for root in roots(plain, patched):
        make(root / "f")
        os.mkdir(root / "d")
    for mode in (0o600, 0o4755, 0o2711, 0o1777, 0o0, 0o100644):
        same(plain, patched, lambda root: os.chmod(root / "f", mode))  # noqa: B023
        same(plain, patched, lambda root: oct(mode_of(root / "f")))
        same(plain, patched, lambda root: os.chmod(os.fsencode(root / "d"), mode))  # noqa: B023
        same(plain, patched, lambda root: oct(mode_of(root / "d")))
    same(plain, patched, lambda root: os.chmod(root / "missing", 0o600))
    same(plain, patched, lambda root: os.chmod(root / "f", "x"))  # type: ignore[arg-type]
    same(plain, patched, lambda root: Path(root / "f").chmod(0o751))
    same(plain, patched, lambda root: oct(mode_of(root / "f")))
    for root in roots(plain, patched):
        fd = os.open(root / "fd", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            os.fchmod(fd, 0o640)
            assert oct(stat.S_IMODE(os.fstat(fd).st_mode)) == "0o640"
            os.chmod(fd, 0o604)
            assert oct(stat.S_IMODE(os.fstat(fd).st_mode)) == "0o604"
        finally:
            os.close(fd)
        assert oct(stat.S_IMODE(os.stat(root / "fd").st_mode)) == "0o604"


def test_chmod_moves_ctime_and_writes_move_mtime(patched: InProcess) -> None:
    path = make(patched.path("t"), b"1")
    os.utime(path, ns=(10**9, 2 * 10**9))
    before = os.stat(path)
    time.sleep(0.01)  # the clock must tick between the two changes (not a timed assertion)
    os.chmod(path, 0o600)
    after = os.stat(path)
    assert after.st_ctime_ns > before.st_ctime_ns
    assert (after.st_atime_ns, after.st_mtime_ns) == (10**9, 2 * 10**9)
    with open(path, "ab") as f:
        f.write(b"2")
    assert os.stat(path).st_mtime_ns > 2 * 10**9, "a write moves mtime"
    assert os.stat(path).st_size == 2


def test_utime_sets_times_like_the_builtin(patched: InProcess, plain: Path) -> None:
    for root in roots(plain, patched):
        make(root / "u")
    for args, kwargs in (
        (((1, 2),), {}),
        (((1.25, -2.75),), {}),
        ((), {"times": (1_700_000_000.123456, 3)}),
        ((), {"ns": (5, 1_600_000_000_123_456_789)}),
        ((), {"ns": (-1, -(10**9) - 1)}),
        (((1, 2),), {"ns": (1, 2)}),
        ((5,), {}),
        (((float("nan"), 1),), {}),
        (((1e300, 1),), {}),
    ):
        same(plain, patched, lambda root: os.utime(root / "u", *args, **kwargs))  # noqa: B023
        same(
            plain,
            patched,
            lambda root: (os.stat(root / "u").st_atime_ns, os.stat(root / "u").st_mtime_ns),
        )
    same(plain, patched, lambda root: os.utime(root / "missing"))
    same(plain, patched, lambda root: os.utime(root / "missing", ns=(1, 1)))
    # None means now: at or after a time taken before the call.
    for root in roots(plain, patched):
        start = time.time_ns()
        os.utime(root / "u")
        st = os.stat(root / "u")
        assert st.st_mtime_ns >= start - 10**7 and st.st_atime_ns == st.st_mtime_ns
        fd = os.open(root / "u", os.O_RDONLY)
        try:
            os.utime(fd, ns=(7, 8))
        finally:
            os.close(fd)
        assert (os.stat(root / "u").st_atime_ns, os.stat(root / "u").st_mtime_ns) == (7, 8)


def test_touch_copy2_access_and_which_see_what_was_set(patched: InProcess, plain: Path) -> None:
    tool = patched.path("tool")
    make(tool, b"#!/bin/sh\necho hi\n")
    assert not os.access(tool, os.X_OK) and shutil.which("tool", path=patched.capio_dir) is None
    os.chmod(tool, 0o755)
    assert os.access(tool, os.X_OK)
    assert shutil.which("tool", path=patched.capio_dir) == tool
    os.utime(tool, (1000, 2000))
    Path(tool).touch()
    assert os.stat(tool).st_mtime > 2000, "touch() of an existing file moves its times"
    os.utime(tool, ns=(3 * 10**9 + 5, 4 * 10**9 + 7))
    # copy2 out of CAPIO and back in keeps mode and times, as between two directories.
    out = shutil.copy2(tool, plain / "tool")
    st = os.stat(out)
    assert (oct(stat.S_IMODE(st.st_mode)), st.st_mtime_ns) == ("0o755", 4 * 10**9 + 7)
    os.chmod(out, 0o700)
    os.utime(out, ns=(11, 12))
    back = shutil.copy2(out, patched.path("back"))
    st = os.stat(back)
    # The copy read the source, which moved its access time: copy2 copies that one.
    src_atime = os.stat(out).st_atime_ns
    assert (oct(stat.S_IMODE(st.st_mode)), st.st_atime_ns, st.st_mtime_ns) == ("0o700", src_atime, 12)
    shutil.copystat(out, patched.path("tool"))
    assert os.stat(tool).st_mtime_ns == 12


def test_archivers_record_modes_and_mtimes(patched: InProcess, plain: Path) -> None:
    for root in roots(plain, patched):
        make(root / "run.sh", b"#!/bin/sh\n")
        os.chmod(root / "run.sh", 0o750)
        os.utime(root / "run.sh", (1_500_000_000, 1_500_000_000))
    members = []
    for root in roots(plain, patched):
        with tarfile.open(root.parent / f"{root.name}.tar", "w") as tar:
            # tarfile.add() opens with the open() bound when tarfile was imported, which pycapio
            # does not replace; what it records comes from gettarinfo (os.lstat), tested here.
            info = tar.gettarinfo(root / "run.sh", arcname="run.sh")
            with open(root / "run.sh", "rb") as f:
                tar.addfile(info, f)
        with tarfile.open(root.parent / f"{root.name}.tar") as tar:
            info = tar.getmember("run.sh")
        with zipfile.ZipFile(root.parent / f"{root.name}.zip", "w") as z:
            z.write(root / "run.sh", "run.sh")
        with zipfile.ZipFile(root.parent / f"{root.name}.zip") as z:
            zinfo = z.getinfo("run.sh")
        members.append(
            (oct(info.mode), info.mtime, info.uid, oct(zinfo.external_attr >> 16), zinfo.date_time)
        )
    assert members[1] == members[0]
    assert members[0][0] == "0o750"


# -- chown ------------------------------------------------------------------------------------------


def test_chown_changes_owner_and_group(patched: InProcess, plain: Path) -> None:
    uid, gid = os.getuid(), os.getgid()
    for root in roots(plain, patched):
        make(root / "o")
    same(plain, patched, lambda root: os.chown(root / "o", -1, -1))
    same(plain, patched, lambda root: (os.stat(root / "o").st_uid, os.stat(root / "o").st_gid))
    same(plain, patched, lambda root: os.chown(root / "o", uid, gid))
    same(plain, patched, lambda root: shutil.chown(root / "o", group=gid))
    same(plain, patched, lambda root: os.chown(root / "missing", uid, gid))
    same(plain, patched, lambda root: os.lchown(root / "missing", uid, gid))
    same(plain, patched, lambda root: os.chown(root / "o", -2, gid))
    same(plain, patched, lambda root: os.chown(root / "o", "x", gid))  # type: ignore[arg-type]
    if os.geteuid() == 0:
        # root may give the file to anyone; a regular file loses its set-id bits as the kernel
        # clears them.
        for root in roots(plain, patched):
            os.chmod(root / "o", 0o6755)
        same(plain, patched, lambda root: os.chown(root / "o", 1234, 5678))
        same(plain, patched, lambda root: os.lchown(root / "o", -1, 4321))
        same(
            plain,
            patched,
            lambda root: (os.stat(root / "o").st_uid, os.stat(root / "o").st_gid, oct(mode_of(root / "o"))),
        )
        for root in roots(plain, patched):
            fd = os.open(root / "o", os.O_RDONLY)
            try:
                os.fchown(fd, 99, -1)
                assert os.fstat(fd).st_uid == 99
            finally:
                os.close(fd)
            assert os.stat(root / "o").st_uid == 99
    else:
        same(plain, patched, lambda root: os.chown(root / "o", 0, -1))
        same(plain, patched, lambda root: os.chown(root / "o", -1, 0))


NON_ROOT_CHOWN = """
import os, sys
capio_dir, plain, workflow, server = sys.argv[1:5]
import pycapio
os.setgroups([])
os.setgid(65534)
os.setuid(65534)
out = []
ctx = pycapio.CapioContext(
    capio_dir=capio_dir, app_name="nobody", workflow_name=workflow, server_exec_path=server
)
with ctx:
    for root in (plain, capio_dir):
        path = os.path.join(root, "mine")
        with open(path, "wb") as f:
            f.write(b"x")
        for uid, gid in ((-1, 0), (0, -1), (-1, 65534), (65534, -1)):
            try:
                os.chown(path, uid, gid)
                out.append("ok")
            except OSError as e:
                out.append(f"{type(e).__name__}: {e}".replace(root, "<DIR>"))
        st = os.stat(path)
        out.append((st.st_uid, st.st_gid))
pycapio.pycapio_teardown(True)
half = len(out) // 2
print(out[:half] == out[half:], out)
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")
def test_chown_by_a_non_root_owner_follows_the_kernel_rules() -> None:
    # A process that is not root may keep the owner and pick one of its groups, nothing else.
    base = Path(tempfile.mkdtemp(prefix="pcnobody-"))
    base.chmod(0o755)
    for d in (base, base / "capio", base / "plain", base / "rt"):
        d.mkdir(exist_ok=True)
        os.chown(d, 65534, 65534)
    (base / "rt").chmod(0o700)
    env = dict(os.environ, SILENT="ON", **{RUNTIME_ENV: str(base / "rt")})
    script = base / "chown.py"
    script.write_text(NON_ROOT_CHOWN)
    # The package's own server may sit where the other user cannot reach it (CI's virtualenv is in
    # a private temporary directory): that user starts a copy.
    server = base / "capio_server"
    shutil.copy(Path(pycapio.__file__).parent / "capio_server", server)
    server.chmod(0o755)
    tracker = ServerTracker(base / "rt")
    args = [str(base / "capio"), str(base / "plain"), unique_workflow(), str(server)]
    try:
        out = subprocess.run(
            [sys.executable, str(script), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        tracker.stop_all()
        shutil.rmtree(base, ignore_errors=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("True "), out.stdout
    assert "PermissionError: [Errno 1] Operation not permitted" in out.stdout


# -- links and FIFOs --------------------------------------------------------------------------------


def test_symlinks_inside_the_capio_directory(patched: InProcess, plain: Path) -> None:
    for root in roots(plain, patched):
        make(root / "target", b"12345")
        os.mkdir(root / "sub")
    for call in (
        lambda root: os.symlink("target", root / "ln"),
        lambda root: os.symlink("sub", root / "lnd", target_is_directory=True),
        lambda root: os.symlink("nowhere", root / "dangling"),
        lambda root: os.symlink("x", root / "target"),
        lambda root: os.symlink("x", root / "ln"),
        lambda root: os.readlink(root / "ln"),
        lambda root: os.readlink(os.fsencode(root / "ln")),
        lambda root: os.readlink(root / "target"),
        lambda root: os.readlink(root / "sub"),
        lambda root: os.readlink(root / "missing"),
        lambda root: [os.path.islink(root / n) for n in ("ln", "lnd", "dangling", "target", "sub", "no")],
        lambda root: [os.path.lexists(root / n) for n in ("ln", "dangling", "target", "no")],
        lambda root: [os.path.exists(root / n) for n in ("ln", "dangling", "target", "no")],
        lambda root: [os.path.isfile(root / n) for n in ("ln", "lnd", "dangling")],
        lambda root: [os.path.isdir(root / n) for n in ("ln", "lnd", "dangling")],
        lambda root: stat.filemode(os.lstat(root / "ln").st_mode),
        lambda root: os.lstat(root / "ln").st_size,
        lambda root: stat.filemode(os.stat(root / "ln", follow_symlinks=False).st_mode),
        lambda root: (stat.filemode(os.stat(root / "ln").st_mode), os.stat(root / "ln").st_size),
        lambda root: stat.filemode(os.lstat(root / "target").st_mode),
        lambda root: os.stat(root / "dangling"),
        lambda root: stat.filemode(os.lstat(root / "dangling").st_mode),
        lambda root: Path(root / "ln").read_bytes(),
        lambda root: Path(root / "ln").is_symlink(),
        lambda root: Path(root / "ln").resolve().name,
        lambda root: sorted(
            (e.name, e.is_symlink(), e.is_dir(), e.is_dir(follow_symlinks=False), e.is_file())
            for e in os.scandir(root)
        ),
        lambda root: sorted(os.listdir(root)),
        lambda root: os.open(root / "dangling", os.O_WRONLY | os.O_CREAT | os.O_EXCL),
        lambda root: Path(root / "dangling").write_bytes(b"through the link"),
        lambda root: (Path(root / "nowhere").read_bytes(), os.path.exists(root / "dangling")),
        lambda root: os.unlink(root / "ln"),
        lambda root: os.path.lexists(root / "ln"),
        lambda root: os.path.exists(root / "target"),
    ):
        same(plain, patched, call)


def test_a_symlink_to_a_capio_file_made_elsewhere(patched: InProcess, plain: Path) -> None:
    # A link inside the CAPIO directory to a file CAPIO holds in memory reaches that file.
    os.mkdir(patched.path("d"))
    make(patched.path("d", "data"), b"in memory")
    os.symlink("d/data", patched.path("alias"))
    assert not os.path.exists(os.path.join(patched.capio_dir, "d", "data") + ".x")
    with open(patched.path("alias"), "rb") as f:
        assert f.read() == b"in memory"
    assert os.stat(patched.path("alias")).st_size == 9
    os.chmod(patched.path("alias"), 0o600)  # through the link, to the file
    assert stat.S_IMODE(os.stat(patched.path("d", "data")).st_mode) == 0o600
    assert stat.S_ISLNK(os.lstat(patched.path("alias")).st_mode)
    with open(patched.path("alias"), "ab") as f:
        f.write(b"!")
    with open(patched.path("d", "data"), "rb") as f:
        assert f.read() == b"in memory!"


def test_hard_links_and_fifos(patched: InProcess, plain: Path) -> None:
    for root in roots(plain, patched):
        make(root / "f")
        os.mkdir(root / "d")
    for call in (
        lambda root: os.mkfifo(root / "fifo"),
        lambda root: os.mkfifo(root / "fifo"),
        lambda root: os.mkfifo(root / "f"),
        lambda root: stat.filemode(os.stat(root / "fifo").st_mode),
        lambda root: [os.path.isfile(root / "fifo"), os.path.exists(root / "fifo")],
        lambda root: os.link(root / "missing", root / "l"),
        lambda root: os.link(root / "f", root / "fifo"),
        lambda root: os.link(root / "d", root / "l"),
    ):
        same(plain, patched, call)
    # A file CAPIO holds in memory cannot get a second name: EPERM, as from link(2) on a file
    # system without hard links (see the README); out of the CAPIO directory, EXDEV.
    src = patched.path("f")
    with pytest.raises(PermissionError) as info:
        os.link(src, patched.path("l"))
    assert str(info.value) == f"[Errno 1] Operation not permitted: {src!r} -> {patched.path('l')!r}"
    with pytest.raises(OSError) as info2:
        os.link(src, plain / "l")
    assert info2.value.errno == errno.EXDEV
    # What is on disk in the CAPIO directory is linked by the OS.
    os.link(patched.path("fifo"), patched.path("fifo2"))
    assert os.stat(patched.path("fifo2")).st_nlink == 2


# -- trailing slashes -------------------------------------------------------------------------------

# A name ending in "/" is looked up as a directory (through a final link): a file, a link to one
# or a dangling link so named is ENOTDIR or ENOENT, and unlink/rmdir/rename act on a directory
# only. CAPIO normalises the slash away, so the proxies check it: each call on each kind of name
# gives the kernel's answer (type, errno, message).
SLASHED_NAMES = ("f", "d", "ld", "lf", "dl", "m")


def slash_tree(root: Path, case: str) -> str:
    """A fresh directory with a file, a directory, links to both, a dangling link (and no "m")."""
    base = root / case
    os.mkdir(base)
    make(base / "f")
    os.mkdir(base / "d")
    os.symlink("d", base / "ld")
    os.symlink("f", base / "lf")
    os.symlink("nowhere", base / "dl")
    return str(base)


def kind(st: os.stat_result) -> str:
    return stat.filemode(st.st_mode)[0]


def rmtree_reports(path: str) -> list[tuple[str, str, str]]:
    reports: list[tuple[str, str, str]] = []

    def onerror(func: Any, where: str, info: Any) -> None:
        reports.append((func.__name__, where, info[1].strerror))

    shutil.rmtree(path, onerror=onerror)
    return reports


SLASH_CALLS: dict[str, Callable[[str], Any]] = {
    "stat": lambda p: kind(os.stat(p)),
    "stat_nofollow": lambda p: kind(os.stat(p, follow_symlinks=False)),
    "lstat": lambda p: kind(os.lstat(p)),
    "lstat_bytes": lambda p: kind(os.lstat(os.fsencode(p))),
    "access": lambda p: os.access(p, os.F_OK),
    "access_nofollow": lambda p: os.access(p, os.R_OK, follow_symlinks=False),
    "unlink": lambda p: os.unlink(p),
    "remove_bytes": lambda p: os.remove(os.fsencode(p)),
    "rmdir": lambda p: os.rmdir(p),
    "chmod": lambda p: os.chmod(p, 0o755),
    "chmod_nofollow": lambda p: os.chmod(p, 0o755, follow_symlinks=False),
    "chown": lambda p: os.chown(p, -1, -1),
    "lchown": lambda p: os.lchown(p, -1, -1),
    "utime": lambda p: os.utime(p),
    "utime_nofollow": lambda p: os.utime(p, ns=(1, 2), follow_symlinks=False),
    "truncate": lambda p: os.truncate(p, 0),
    "readlink": lambda p: os.readlink(p),
    "symlink": lambda p: os.symlink("x", p),
    "mkfifo": lambda p: os.mkfifo(p),
    "mkdir": lambda p: os.mkdir(p),
    "link_from": lambda p: os.link(p, os.path.join(os.path.dirname(p.rstrip("/")), "new")),
    "link_to": lambda p: os.link(os.path.join(os.path.dirname(p.rstrip("/")), "f"), p),
    "open_read": lambda p: os.close(os.open(p, os.O_RDONLY)),
    "open_write": lambda p: os.close(os.open(p, os.O_WRONLY)),
    "open_create": lambda p: os.close(os.open(p, os.O_WRONLY | os.O_CREAT)),
    "builtin_open": lambda p: open(p, "rb").close(),
    "listdir": lambda p: os.listdir(p),
    "scandir": lambda p: [e.name for e in os.scandir(p)],
    "makedirs": lambda p: os.makedirs(p, exist_ok=True),
    "open_append": lambda p: open(p, "ab").close(),
    "samefile": lambda p: os.path.samefile(p, p),
    "walk": lambda p: [x[1:] for x in os.walk(p)],
    "exists": lambda p: [os.path.exists(p), os.path.lexists(p), os.path.isfile(p), os.path.isdir(p)],
    "islink": lambda p: os.path.islink(p),
    "getsize": lambda p: os.path.getsize(p) >= 0,
    "rmtree": lambda p: rmtree_reports(p),
}
if hasattr(os, "listxattr"):
    # Not on directories: the plain directory's file system keeps xattrs, CAPIO keeps none.
    SLASH_CALLS["listxattr"] = lambda p: os.listxattr(p) if not os.path.isdir(p) else "dir"
    SLASH_CALLS["listxattr_nofollow"] = lambda p: (
        os.listxattr(p, follow_symlinks=False) if not os.path.isdir(p) else "dir"
    )


@pytest.mark.parametrize("call", sorted(SLASH_CALLS))
def test_a_name_ending_in_a_slash_is_looked_up_as_a_directory(
    patched: InProcess, plain: Path, call: str
) -> None:
    fn = SLASH_CALLS[call]
    for name in SLASHED_NAMES:
        for suffix in ("/", "//"):
            case = f"{name}{len(suffix)}"
            same(plain, patched, lambda root: fn(os.path.join(slash_tree(root, case), name) + suffix))  # noqa: B023
            # What is left afterwards is the same too (nothing removed, moved or made wrongly).
            same(plain, patched, lambda root: sorted(os.listdir(root / case)))  # noqa: B023
            same(plain, patched, lambda root: os.path.getsize(root / case / "f"))  # noqa: B023


def test_rename_with_a_trailing_slash_moves_directories_only(patched: InProcess, plain: Path) -> None:
    for src in SLASHED_NAMES:
        for dst in SLASHED_NAMES:
            for slash_src, slash_dst in (("/", ""), ("", "/"), ("/", "/")):
                case = f"{src}{slash_src and 's'}-{dst}{slash_dst and 's'}"

                def rename(root: Path) -> list[str]:
                    base = slash_tree(root, case)  # noqa: B023
                    os.rename(os.path.join(base, src) + slash_src, os.path.join(base, dst) + slash_dst)  # noqa: B023
                    return sorted(os.listdir(base))

                same(plain, patched, rename)
                same(plain, patched, lambda root: sorted(os.listdir(root / case)))  # noqa: B023
    # os.replace and bytes paths take the same look-up.
    same(
        plain,
        patched,
        lambda root: os.replace(os.fsencode(slash_tree(root, "r2")) + b"/f/", os.fsencode(root / "r2" / "x")),
    )


def test_chmod_without_following_links_fails_as_the_builtin(patched: InProcess, plain: Path) -> None:
    # The built-in on Linux cannot change a link's own mode: NotImplementedError (or ValueError
    # with dir_fd), whatever fchmodat answers; a file that is not a link may change, as the C
    # library allows. Each kind of name, against a plain directory.
    fd = os.open(plain, os.O_RDONLY)
    try:
        for name in SLASHED_NAMES:
            for call in (
                lambda p: os.chmod(p, 0o600, follow_symlinks=False),
                lambda p: os.chmod(os.fsencode(p), 0o640, follow_symlinks=False),
                lambda p: os.chmod(p, 0o600, dir_fd=fd, follow_symlinks=False),  # absolute: fd ignored
            ):
                case = f"nofollow-{name}"
                same(plain, patched, lambda root: call(os.path.join(slash_tree(root, case), name)))  # noqa: B023
                same(plain, patched, lambda root: stat.filemode(os.lstat(root / case / name).st_mode))  # noqa: B023
                shutil.rmtree(plain / case)
                shutil.rmtree(patched.path(case))
    finally:
        os.close(fd)
    # Listed where the original is listed (shutil.copystat asks), and nowhere else.
    for supports in (os.supports_follow_symlinks, os.supports_dir_fd, os.supports_fd):
        assert (os.chmod in supports) == (_ospatch.originals["os.chmod"] in supports)


def test_xattrs_of_a_link_itself_are_asked_without_following_it(patched: InProcess, plain: Path) -> None:
    # A link lives on disk: asked about itself, the OS answers. (CAPIO files keep no xattrs:
    # ENOTSUP, see the README; the plain directory's file system keeps them, so those differ.)
    for name in ("lf", "ld", "dl", "m"):
        for call in (
            lambda p: os.listxattr(p, follow_symlinks=False),
            lambda p: os.getxattr(p, "user.x", follow_symlinks=False),
            lambda p: os.removexattr(p, "user.x", follow_symlinks=False),
            lambda p: os.listxattr(p) if name in ("dl", "m") else "skip",  # noqa: B023
        ):
            case = f"xattr-{name}"
            same(plain, patched, lambda root: call(os.path.join(slash_tree(root, case), name)))  # noqa: B023
            shutil.rmtree(plain / case)
            shutil.rmtree(patched.path(case))
    make(patched.path("f"))
    for follow in (True, False):
        with pytest.raises(OSError) as info:
            os.listxattr(patched.path("f"), follow_symlinks=follow)
        assert info.value.errno == errno.ENOTSUP
    # shutil.copystat(follow_symlinks=False) asks for a dangling link's own xattrs: copytree with
    # symlinks=True copies such a link.
    src = patched.path("src")
    os.mkdir(src)
    os.symlink("nowhere", os.path.join(src, "dangling"))
    make(os.path.join(src, "f"))
    shutil.copytree(src, patched.path("dst"), symlinks=True)
    assert os.readlink(patched.path("dst", "dangling")) == "nowhere"
    assert sorted(os.listdir(patched.path("dst"))) == ["dangling", "f"]


# -- persistence ----------------------------------------------------------------------------------

PERSIST = """
import os, sys
out = sys.argv[1]
with open(out, "wb") as f:
    f.write(b"payload")
os.chmod(out, 0o640)
os.utime(out, ns=(1_234_567_890_123_456_789, 1_111_111_111_222_333_444))
if os.geteuid() == 0:
    os.chown(out, 4242, 2424)
os.mkdir(os.path.join(os.path.dirname(out), "made"), 0o701)
"""


def test_a_persisted_file_has_its_mode_times_and_owner_on_disk(workflow: Workflow) -> None:
    wf = workflow
    out = wf.capio_dir / "result.bin"
    wf.run_step(PERSIST, "producer", str(out)).check()
    st = os.stat(out)
    assert out.read_bytes() == b"payload"
    assert oct(stat.S_IMODE(st.st_mode)) == "0o640"
    assert (st.st_atime_ns, st.st_mtime_ns) == (1_234_567_890_123_456_789, 1_111_111_111_222_333_444)
    if os.geteuid() == 0:
        assert (st.st_uid, st.st_gid) == (4242, 2424)
    assert oct(stat.S_IMODE(os.stat(wf.capio_dir / "made").st_mode)) == "0o701"


def test_rmtree_removes_a_link_to_a_directory_not_what_it_points_at(patched: InProcess, plain: Path) -> None:
    for root in roots(plain, patched):
        os.mkdir(root / "keep")
        make(root / "keep" / "precious", b"p")
        # On disk already (an input directory), so the OS can make the link in it.
        _ospatch.originals["os.mkdir"](root / "tree")
        os.symlink(root / "keep", root / "tree" / "link")
        make(root / "tree" / "f")
    same(plain, patched, lambda root: shutil.rmtree(root / "tree"))
    same(
        plain, patched, lambda root: (sorted(os.listdir(root)), Path(root / "keep" / "precious").read_bytes())
    )


def test_a_link_and_its_target_are_the_same_file(capio: InProcess) -> None:
    # st_ino/st_dev identify the file (its data object), not the name it was reached by.
    with capio.context():
        with open(capio.path("f.txt"), "w") as fh:
            fh.write("precious")
        os.symlink("f.txt", capio.path("link"))
        os.mkdir(capio.path("d"))
        os.symlink("d", capio.path("dlink"))
        assert os.path.samefile(capio.path("link"), capio.path("f.txt"))
        assert os.path.samefile(capio.path("dlink"), capio.path("d"))
        assert not os.path.samefile(capio.path("link"), capio.path("d"))
        with pytest.raises(shutil.SameFileError):
            shutil.copyfile(capio.path("f.txt"), capio.path("link"))
        with open(capio.path("f.txt")) as fh:
            assert fh.read() == "precious"
        st, lst = os.stat(capio.path("link")), os.lstat(capio.path("link"))
        assert lst.st_ino != st.st_ino
        fds = [os.open(capio.path("f.txt"), os.O_RDONLY), os.open(capio.path("link"), os.O_RDWR)]
        try:
            stats = [os.fstat(fd) for fd in fds]
        finally:
            for fd in fds:
                os.close(fd)
        assert {(s.st_dev, s.st_ino) for s in stats} == {(st.st_dev, st.st_ino)}
        entries = {e.name: e for e in os.scandir(capio.path())}
        assert entries["f.txt"].inode() == st.st_ino
        assert entries["link"].inode() == lst.st_ino
        # Not a mount point: reported on the CAPIO directory's device.
        assert st.st_dev == os.stat(capio.path()).st_dev
        assert not os.path.ismount(capio.path("f.txt"))
        with open(capio.path("g.txt"), "w") as fh:
            fh.write("other")
        assert not os.path.samefile(capio.path("g.txt"), capio.path("f.txt"))
