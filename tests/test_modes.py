"""The one mode parser (pycapio._rawio.parse_mode) against CPython's own readers of a mode string:
``_io.open`` and ``_io.FileIO`` accept and refuse the same strings, with the same words."""

from __future__ import annotations

import _io
import itertools
import os
from pathlib import Path

import pytest

from pycapio._rawio import parse_mode

MODES = sorted({"".join(p) for n in range(4) for p in itertools.product("rwax+tbq", repeat=n)})


def _refusal(call: object) -> str | None:
    try:
        f = call()  # type: ignore[operator]
    except ValueError as exc:
        return str(exc)
    except OSError:  # accepted, then the open itself failed (x of an existing file)
        return None
    f.close()
    return None


@pytest.mark.parametrize("chunk", range(8))
def test_the_mode_parser_speaks_as_open_and_fileio(tmp_path: Path, chunk: int) -> None:
    target = tmp_path / "f"
    for mode in MODES[chunk::8]:
        m = parse_mode(mode)
        if target.exists():
            os.unlink(target)
        assert _refusal(lambda: _io.FileIO(target, mode)) == m.raw_error, mode  # noqa: B023
        if target.exists():
            os.unlink(target)
        # open(): its own reading first, then (no kind at all) the raw file's.
        want = m.open_error or (None if m.kind else parse_mode(m.rawmode).raw_error)
        assert _refusal(lambda: _io.open(target, mode, encoding=None if m.binary else "utf-8")) == want, mode  # noqa: B023
        if want is None and m.kind:
            flags = {
                "r": 0,
                "w": os.O_CREAT | os.O_TRUNC,
                "a": os.O_CREAT | os.O_APPEND,
                "x": os.O_CREAT | os.O_EXCL,
            }
            access = os.O_RDWR if m.updating else os.O_RDONLY if m.kind == "r" else os.O_WRONLY
            assert m.flags == access | flags[m.kind], mode
            if target.exists():
                os.unlink(target)
            if m.kind == "r":
                target.write_bytes(b"")
            with _io.FileIO(target, m.rawmode) as raw:
                assert raw.mode == m.raw_name and raw.readable() == m.readable, mode
                assert raw.writable() == m.writable, mode
