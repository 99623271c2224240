"""Type stubs for the native extension ``pycapio._pycapio`` (Rust, pyo3-ffi).

The public names follow the PyCAPIO API; the underscore-prefixed primitives are what the Python
file, directory and path layers of :mod:`pycapio` are built on. Paths accept ``str``, ``bytes`` or
``os.PathLike``. Every CAPIO "fd" is a real kernel file descriptor (the file's shared-memory object,
or the on-disk file for a committed input), so ``os.fstat``/``mmap`` on it behave.

Errors: failures raise ``OSError`` subclasses with ``errno``/``strerror``/``filename`` set as the
built-ins would (``FileNotFoundError``, ``FileExistsError``, ``IsADirectoryError``, ...). Problems with
the CAPIO runtime itself (server cannot start, server gone, not initialised) raise
``PyCAPIOException``, a subclass of ``OSError``. Blocking waits release the GIL and are
interruptible (``KeyboardInterrupt``).
"""

import os
import pathlib
from collections.abc import Callable, Iterable
from typing import Any, Final, Literal, NoReturn, overload

from typing_extensions import Buffer

# Written in Python and attached to this module by ``import pycapio``, as the PyCAPIO API has them.
from ._dirs import DirEntry as DirEntry
from ._dirs import PyCapioScandirWrapper as PyCapioScandirWrapper
from ._path import PyCapioPath as PyCapioPath
from ._seed import PyCapioBinaryIOWrapper as PyCapioBinaryIOWrapper
from ._seed import PyCapioTextIOWrapper as PyCapioTextIOWrapper

_Path = str | bytes | os.PathLike[str] | os.PathLike[bytes]

FILE_MODES: Final[dict[str, int]]
"""POSIX open flags: O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_APPEND, O_TRUNC, O_EXCL."""
CAPIO_DEFAULT_APP_NAME: Final[str]  # "default_app"
CAPIO_DEFAULT_WORKFLOW_NAME: Final[str]  # "CAPIO"
__version__: Final[str]
C_API: Final[object]
"""The C API: a capsule named ``"pycapio._pycapio.C_API"`` holding pycapio's function table, for
native extensions (``pycapio_import_capi()`` in ``pycapio_capi.h``, see ``pycapio.get_include()``;
the ``capio-capi`` crate for Rust)."""

class PyCAPIOException(OSError): ...

def pycapio_init(
    CAPIO_DIR: _Path = ".",
    CAPIO_APP_NAME: str = "default_app",
    CAPIO_WORKFLOW_NAME: str = "CAPIO",
    capio_server_exec_path: str = "capio_server",
    capio_cl_configuration_file: str = "",
    await_server_timeout_seconds: float = 2,
) -> int:
    """Attach this process to the workflow's server, starting it if none runs.

    Returns the pid of the server if this call started it, else -1. Calling it again while
    initialised with the same arguments returns the same value; with different ones it raises
    PyCAPIOException. ``capio_server_exec_path == "capio_server"`` means the server shipped inside
    the package (then ``$PATH``). The CAPIO directory must exist (FileNotFoundError /
    NotADirectoryError otherwise).
    """

def _attach(**settings: Any) -> bool:
    """``pycapio_init`` for ``CapioContext`` (the same keywords); the one place deciding whether
    an attached process may go on. True when the process now runs with exactly these settings;
    False when it is attached to the same directory, app and workflow with other start-up
    settings (server path, timeout, CAPIO-CL file), which it keeps; PyCAPIOException for another
    directory, app or workflow."""

def pycapio_teardown(teardown_server: bool = False) -> None:
    """Detach cleanly: the server commits this process's ``on_termination`` files (and persists
    them) before this returns. With ``teardown_server`` the server stops once no client is left.
    A no-op when not initialised."""

def pycapio_get_capio_dir() -> pathlib.Path:
    """The CAPIO directory (its real path). PyCAPIOException if not initialised."""

def pycapio_open(path: _Path, flags: int, mode: int = 0o666) -> int:
    """Open a CAPIO file; returns its fd. Reading a path that does not exist yet blocks until a
    producer creates it. PyCAPIOException if the path is outside the CAPIO directory."""

def pycapio_mkdir(path: _Path, flags: int = 0o777) -> int:
    """Create a directory inside the CAPIO directory; returns 0 (FileExistsError if it exists)."""

# ---- primitives for the Python layer ----------------------------------------------------------

def _is_initialized() -> bool: ...
def _capio_path(path: _Path) -> str | None:
    """The absolute, normalised path (rooted at the real CAPIO directory) if ``path`` lies inside
    the CAPIO directory, else None. Relative paths resolve against the current working directory.
    Component-wise: ``/data2/x`` is not inside ``/data``; ``capio/../x`` is outside. None when
    not initialised."""

@overload
def _open_path(path: _Path, flags: int, mode: int = 0o666, plain: Literal[False] = False) -> int | None: ...
@overload
def _open_path(path: _Path, flags: int, mode: int = 0o666, plain: bool = ...) -> int | tuple[int, int] | None:
    """The one call that decides whether ``path`` is CAPIO's and opens it (``open(2)`` flags and
    mode): a CAPIO fd; ``~fd`` (negative) for an fd the OS opened because CAPIO does not serve the
    node (a FIFO, a device in the CAPIO directory) or, with ``plain``, a committed file opened
    read-only from its memory object (the OS's own reads read it as CAPIO would); with ``plain``,
    ``(plain fd, CAPIO fd)`` for a new file written directly through its memory object (close
    the plain fd, then ``_close`` the CAPIO fd, which commits it); None, with nothing opened,
    when the path is not CAPIO's (outside the CAPIO directory, excluded, or pycapio not
    initialised)."""

def _read(fd: int, buffer: Buffer, offset: int = -1, fill: bool = False) -> int:
    """readinto: fill ``buffer`` (writable) from the fd's position (advancing it), or from
    ``offset`` when >= 0 (position untouched). Waits once per the file's fire rule: for any byte,
    or with ``fill`` for the whole buffer (less only where the file's end is final); 0 means EOF."""

def _read_bytes(fd: int, size: int = -1, offset: int = -1, fill: bool = False) -> bytes:
    """read(size) into a new ``bytes``, filled in place (no intermediate buffer). ``size < 0``
    reads to the end of the file, waiting for its commit per the fire rule; otherwise it returns
    what is readable (at most ``size`` bytes; with ``fill`` it waits for all of them unless the
    file ends first), like ``_read``. From the position (advancing it), or from ``offset`` when
    >= 0. One wait, then one copy. b"" only at EOF."""

def _wait_readable(fd: int, offset: int = -1, size: int = -1) -> int:
    """Wait per the fire rule until ``size`` bytes from ``offset`` (the position when < 0) are
    readable, or the file's end is final first (``size < 0``: wait for the final end). Returns the
    end of the readable bytes, which may be before ``offset`` past the end of the file."""

def _write(fd: int, data: Buffer, offset: int = -1) -> int:
    """Write all of ``data`` at the position (advancing it; at the end for O_APPEND), or at
    ``offset`` when >= 0. Returns len(data)."""

def _seek(fd: int, offset: int, whence: int = 0) -> int: ...
def _truncate(fd: int, size: int) -> int: ...
def _pin(fd: int, offset: int) -> None:
    """The file of a CAPIO fd is mapped from ``offset``, or its OS fd handed out (0): none of its
    bytes may be released early any more. ``OSError(ENODATA)`` if bytes from ``offset`` on were
    released already."""

def _close(fd: int) -> None:
    """Close a CAPIO fd (no server round trip). OSError(EBADF) if it is not an open CAPIO fd."""

def _is_capio_fd(fd: int) -> bool: ...
def _track_umask(on: bool) -> None: ...
def _umask_changed(mask: int) -> None: ...
def _fstat(fd: int) -> os.stat_result:
    """``os.stat_result`` of an open CAPIO fd: its file's CAPIO size, mode, owner and times."""

def _stat(path: _Path, follow_symlinks: bool = True) -> os.stat_result:
    """``os.stat_result`` of a path in the CAPIO directory; never blocks. FileNotFoundError if
    missing. With ``follow_symlinks`` False a final symbolic link (links live on disk) is reported
    itself. ``st_ino``/``st_dev`` identify the file: its disk node, or a CAPIO file's data object
    (the same for every name and every fd of the file)."""

def _plain_fstat(fd: int) -> os.stat_result | None:
    """``os.stat_result`` of a plain fd ``_open_path(..., plain=True)`` gave, as its CAPIO path
    reports the file; None for any other fd."""

def _abandon(fd: int) -> None:
    """Undo the open of CAPIO fd ``fd`` whose file object could not be made (nothing was written
    through it): closed, and never counted as a writer's close, which could commit the file."""

def _plain_changed(fd: int) -> None:
    """After the OS changed a file through a plain fd ``_open_path(..., plain=True)`` gave (its
    mode, times, size): ``stat`` by path reads the file again. Nothing for any other fd."""

def _stat_path(path: _Path, follow_symlinks: bool = True) -> os.stat_result | None:
    """``os.stat_result`` of any path in one call (errors name the path as given); None when the
    path is not CAPIO's (the OS answers)."""

def _path_mode(path: _Path, follow_symlinks: bool = True) -> int | None:
    """``st_mode`` of any path for the ``os.path`` predicates, in one call: None where a stat of a
    CAPIO path would fail, -1 when the path is not CAPIO's (the OS answers)."""

def _set_attrs(
    path: _Path | int,
    mode: int = ...,
    uid: int = ...,
    gid: int = ...,
    atime_ns: int = ...,
    mtime_ns: int = ...,
    now: bool = False,
    follow_symlinks: bool = True,
) -> None:
    """``chmod``/``chown``/``utime`` of a CAPIO path or fd: what is given changes (``uid``/``gid``
    -1: unchanged; ``now``: both times to the current time), by the kernel's permission rules.
    A file's mode, owner and times are persisted with it."""

def _listdir(path: _Path) -> list[tuple[str, bool, bool, bool]]:
    """``(name, is_file, is_dir, is_symlink)`` for each entry (file and directory as following a
    symbolic link: its target's; a dangling link is neither), CAPIO entries in creation order
    then on-disk ones. Waits until the directory is committed unless the caller produces it
    (CAPIO-CL)."""

def _list_new(path: _Path, seen: Iterable[str | bytes]) -> tuple[list[tuple[str, bool, bool, bool]], bool]:
    """The entries not in ``seen`` and whether the directory is complete. For a ``no_update``
    directory this returns as soon as a new entry appears (streaming ``os.scandir``); otherwise it
    waits for the commit, like ``_listdir``."""

def _validate_config(file: _Path, capio_dir: _Path = ".", paths: Iterable[_Path] = ()) -> str:
    """Check a CAPIO-CL file; ValueError (with the JSON path of the problem) if it is invalid.
    Returns a report: the workflow name, then the rule each of ``paths`` gets."""

def _unlink(path: _Path) -> None:
    """Remove a file (like ``os.unlink``), from the namespace and from disk. fds already open on it
    keep working; its commit releases readers but never persists it. IsADirectoryError for a
    directory, FileNotFoundError if missing."""

def _rename(src: _Path, dst: _Path | None) -> None:
    """Move a file or directory like ``os.replace``: an existing ``dst`` file is replaced
    atomically, in the namespace and on disk. Readers waiting for ``dst`` to appear find the moved
    file with its commit state. ``OSError(EXDEV)`` when one end is outside the CAPIO directory
    (fall back to copy and delete, like ``shutil.move``), after ``FileNotFoundError`` for a
    missing source, as ``rename(2)`` checks; ``dst`` None is a name outside the CAPIO directory
    that only a ``dir_fd`` locates. IsADirectoryError, NotADirectoryError,
    ``OSError(ENOTEMPTY)`` and ``OSError(EINVAL)`` (a directory into itself) as ``rename(2)``."""

def _link_check(src: _Path | None, dst: _Path | None, follow_symlinks: bool = True) -> None:
    """Whether ``os.link(src, dst)`` may go to the OS (a file on disk to a name CAPIO does not
    hold); otherwise raises ``link(2)``'s error: the source's own, ``FileExistsError``, then for a
    file CAPIO holds in memory ``PermissionError`` (``EPERM``: no hard links in CAPIO) or
    ``OSError(EXDEV)`` to a name outside. None: a name outside the CAPIO directory that only a
    ``dir_fd`` locates."""

def _rmdir(path: _Path) -> None:
    """Remove an empty directory (like ``os.rmdir``), from the namespace and from disk.
    ``OSError(ENOTEMPTY)`` if not empty, NotADirectoryError, FileNotFoundError, and
    ``OSError(EBUSY)`` for the CAPIO directory itself."""

def _die_by_signal(signum: int) -> NoReturn:
    """End the process by ``signum`` with the signal's default action (restored first), from any
    thread; ValueError for a number that is not a catchable signal."""

def _server_list() -> list[tuple[str, int, str, bool]]:
    """``(workflow, pid, capio_dir, alive)`` for each server of this user that the runtime
    directory has an info file of; ``alive`` is False for one that was killed (a stale file)."""

def _server_status(workflow: str) -> str:
    """The state of ``workflow``'s server as JSON text (see ``pycapio server status``).
    PyCAPIOException when no server of that workflow is running."""

def _server_start(
    capio_dir: _Path,
    workflow: str,
    capio_cl_configuration_file: _Path | None = None,
    capio_server_exec_path: str = "capio_server",
    await_server_timeout_seconds: float = 10,
) -> tuple[int, bool]:
    """Start ``workflow``'s server (detached, it runs until stopped) unless one runs already;
    returns ``(pid, started)``."""

def _server_stop(workflow: str, timeout: float = 60) -> int:
    """Ask ``workflow``'s server to shut down (after persisting what must persist) and wait up to
    ``timeout`` seconds for it to exit; returns its pid. PyCAPIOException when none runs."""

def _after_fork_in_child() -> None:
    """Forget the parent's connection in a forked child; the child attaches as a new client of
    the same app on its next CAPIO call."""

def _builtin_proxy(
    impl: Callable[..., Any], name: str, doc: str | None, self: object, module: str
) -> Callable[..., Any]:
    """A built-in function object (``builtin_function_or_method``: it does not bind as a method)
    named ``name``, with ``__self__`` ``self``, ``__module__`` ``module`` and docstring ``doc`` (which
    may start with CPython's ``name(signature)\\n--\\n\\n`` header), that calls ``impl`` with its
    arguments unchanged. Lives for the whole process."""
