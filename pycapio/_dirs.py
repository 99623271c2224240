"""Directory listing inside the CAPIO directory: ``os.DirEntry`` and ``os.scandir`` look-alikes."""

from __future__ import annotations

import os
import posixpath
from collections import deque
from typing import Any, AnyStr, Generic

from . import _pycapio

__all__ = ["DirEntry", "PyCapioScandirWrapper"]


class DirEntry(Generic[AnyStr]):
    """One entry yielded by :class:`PyCapioScandirWrapper`, with the interface of ``os.DirEntry``."""

    __slots__ = ("_capio_path", "_dir", "_file", "_link", "_lstat", "_stat", "name", "path")

    name: AnyStr
    path: AnyStr

    def __init__(
        self, name: AnyStr, path: AnyStr, capio_path: str, is_file: bool, is_dir: bool, is_symlink: bool
    ) -> None:
        self.name = name
        self.path = path
        self._capio_path = capio_path
        self._file = is_file  # what the entry is (its target, for a link): the extension decoded it
        self._dir = is_dir
        self._link = is_symlink
        self._stat: os.stat_result | None = None
        self._lstat: os.stat_result | None = None

    def inode(self) -> int:
        # The entry's own (a link's, not its target's), as os.stat(follow_symlinks=False) says.
        return self.stat(follow_symlinks=False).st_ino

    def is_dir(self, *, follow_symlinks: bool = True) -> bool:
        return self._dir and (follow_symlinks or not self._link)

    def is_file(self, *, follow_symlinks: bool = True) -> bool:
        return self._file and (follow_symlinks or not self._link)

    def is_symlink(self) -> bool:
        return self._link

    def is_junction(self) -> bool:
        return False

    def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
        if not follow_symlinks and self.is_symlink():
            if self._lstat is None:
                self._lstat = _pycapio._stat(self._capio_path, False)
            return self._lstat
        if self._stat is None:
            self._stat = _pycapio._stat(self._capio_path)
        return self._stat

    def __fspath__(self) -> AnyStr:
        return self.path

    def __repr__(self) -> str:
        return f"<DirEntry {self.name!r}>"

    def __reduce__(self) -> Any:
        raise TypeError(f"cannot pickle {type(self).__name__!r} object")


class PyCapioScandirWrapper(Generic[AnyStr]):
    """Iterator over a directory inside the CAPIO directory, like the one ``os.scandir`` returns.

    Yields :class:`DirEntry` objects (``.`` and ``..`` excluded): files known to CAPIO in creation
    order, then files that exist only on disk. ``path`` may be ``str``, ``bytes`` or
    ``os.PathLike``; entry paths are joined to it as given, and are ``bytes`` if it is ``bytes``.
    Also a context manager; ``close()`` ends the iteration.

    Under CAPIO-CL a directory that is still being produced is not listed until it is committed
    (fire rule ``update``), or is streamed: entries are yielded as they are created, and the
    iteration ends when the directory commits (``no_update``, e.g. with ``on_n_files``). The
    directory's producer never waits.
    """

    def __init__(self, path: AnyStr | os.PathLike[AnyStr] = ".") -> None:  # type: ignore[assignment]
        fspath = os.fspath(path)
        capio_dir = _pycapio._capio_path(fspath)
        if capio_dir is None:
            # Not CAPIO's: the extension says why (outside the CAPIO directory, or pycapio not
            # attached), with the errno of its one table. stat raises it and never waits.
            _pycapio._stat(fspath)
            raise _pycapio.PyCAPIOException(f"not inside the CAPIO directory: {fspath!r}")
        self._base: AnyStr = fspath
        self._capio_dir = capio_dir
        self._seen: set[str] = set()
        self._pending: deque[tuple[str, bool, bool, bool]] = deque()
        self._complete = False
        self._closed = False
        # The first batch now, so that a missing directory raises here, as with os.scandir.
        self._fetch()

    def _fetch(self) -> None:
        entries, self._complete = _pycapio._list_new(self._capio_dir, self._seen)
        for entry in entries:
            self._seen.add(entry[0])
            if entry[0] not in (".", ".."):
                self._pending.append(entry)

    def __iter__(self) -> PyCapioScandirWrapper[AnyStr]:
        return self

    def __next__(self) -> DirEntry[AnyStr]:
        while not self._closed:
            if self._pending:
                name, is_file, is_dir, is_link = self._pending.popleft()
                capio_path = posixpath.join(self._capio_dir, name)
                if isinstance(self._base, bytes):
                    bname = os.fsencode(name)
                    path = posixpath.join(self._base, bname)
                    return DirEntry(bname, path, capio_path, is_file, is_dir, is_link)
                return DirEntry(name, posixpath.join(self._base, name), capio_path, is_file, is_dir, is_link)
            if self._complete:
                break
            self._fetch()
        self.close()
        raise StopIteration

    def close(self) -> None:
        self._closed = True
        self._pending.clear()

    def __enter__(self) -> PyCapioScandirWrapper[AnyStr]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __reduce__(self) -> Any:
        raise TypeError(f"cannot pickle {type(self).__name__!r} object")
