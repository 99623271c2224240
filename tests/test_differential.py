"""Differential tests: the same scripted file operations on a plain directory and in CAPIO.

A deterministic generator builds a few hundred scripts over open modes, buffering, file sizes,
seeks, newlines, encodings and error handlers. Each script runs twice in this process, under one
active CapioContext: once on a plain temporary directory (the patched ``open`` passes those paths to
the built-in) and once inside the CAPIO directory. Every observation — return values, file
attributes, exception types and messages (with the directory name replaced), and the bytes the
file holds afterwards — must be identical.

``fileno()`` is the one documented difference (a CAPIO file open for writing has no OS fd to write
through) and is checked in test_files.py; ``peek``/``read1``/``readinto1`` results depend on the
buffer size, so they are generated only with an explicit ``buffering``.
"""

from __future__ import annotations

import io
import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from conftest import InProcess

SEED = 20240617
CASES_PER_MODE = 22

BINARY_MODES = ["rb", "r+b", "wb", "w+b", "ab", "a+b", "xb", "x+b"]
TEXT_MODES = ["r", "rt", "r+", "w", "w+t", "a", "a+", "x", "x+"]
SIZES = [0, 1, 17, 4095, 4097, 70_000, 140_000]
BINARY_BUFFERING = [-1, 0, 7, 64, 4096, 65536]
TEXT_BUFFERING = [-1, 1, 16, 4096]
ENCODINGS = [None, "utf-8", "latin-1", "ascii", "utf-16", "utf-8-sig", "cp1252"]
ERRORS = [None, "strict", "replace", "ignore", "surrogateescape", "backslashreplace"]
NEWLINES = [None, "", "\n", "\r", "\r\n"]
TEXT_PIECES = ["abc", "\n", "\r\n", "\r", "é", "\u20ac", "\U0001f600", "line two", "\t", "x" * 50]


@dataclass
class Case:
    mode: str
    kwargs: dict[str, Any]
    initial: bytes | None
    ops: list[tuple[Any, ...]] = field(default_factory=list)

    def describe(self) -> str:
        size = None if self.initial is None else len(self.initial)
        return f"open(mode={self.mode!r}, {self.kwargs}) initial={size} ops={self.ops}"


def _text(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(TEXT_PIECES) for _ in range(n))


def _initial_bytes(rng: random.Random, size: int, text: bool) -> bytes:
    if not text:
        return rng.randbytes(size)
    # Mostly valid UTF-8 text with every kind of line ending, sometimes with invalid bytes.
    data = _text(rng, size // 4 + 1).encode("utf-8")
    if rng.random() < 0.3 and data:
        pos = rng.randrange(len(data))
        data = data[:pos] + bytes([rng.choice([0x80, 0xFF, 0xC3])]) + data[pos:]
    return data[:size] if size else b""


def _binary_op(rng: random.Random, explicit_buffer: bool) -> tuple[Any, ...]:
    choices = ["read", "read", "readinto", "readline", "readlines", "write", "writelines", "seek", "seek"]
    choices += ["tell", "truncate", "flush", "next", "attrs"]
    if explicit_buffer:
        choices += ["read1", "readinto1", "peek"]
    kind = rng.choice(choices)
    if kind in ("read", "read1"):
        return (kind, rng.choice([-1, 0, 1, 10, 5000, 100_000, None]))
    if kind in ("readinto", "readinto1", "peek"):
        return (kind, rng.choice([0, 1, 13, 5000]))
    if kind == "readline":
        return (kind, rng.choice([-1, 0, 5, 200]))
    if kind == "readlines":
        return (kind, rng.choice([-1, 0, 10, 3000]))
    if kind == "write":
        return (kind, rng.randbytes(rng.choice([0, 1, 10, 300, 9000])))
    if kind == "writelines":
        return (kind, [rng.randbytes(rng.choice([1, 5, 70])) for _ in range(rng.randint(0, 4))])
    if kind == "seek":
        return (kind, rng.choice([0, 3, -2, 10, 6000, 200_000]), rng.choice([0, 0, 1, 2]))
    if kind == "truncate":
        return (kind, rng.choice([None, 0, 5, 5000]))
    return (kind,)


def _text_op(rng: random.Random) -> tuple[Any, ...]:
    kind = rng.choice(
        [
            *("read", "read", "readline", "readlines", "write", "writelines", "seek", "tellseek", "tell"),
            *("truncate", "flush", "next", "attrs", "cur_seek"),
        ]
    )
    if kind == "read":
        return (kind, rng.choice([-1, 0, 1, 7, 3000, None]))
    if kind == "readline":
        return (kind, rng.choice([-1, 0, 3, 100]))
    if kind == "readlines":
        return (kind, rng.choice([-1, 5, 2000]))
    if kind == "write":
        return (kind, _text(rng, rng.choice([0, 1, 5, 40])))
    if kind == "writelines":
        return (kind, [_text(rng, 2) for _ in range(rng.randint(0, 3))])
    if kind == "seek":
        return (kind, 0, rng.choice([0, 2]))
    if kind == "cur_seek":
        return ("seek", rng.choice([0, 4]), 1)
    if kind == "truncate":
        return (kind, rng.choice([None, 0, 3]))
    return (kind,)


AFTER_CLOSE = [("read", 1), ("write", None), ("seek", 0, 0), ("tell",), ("flush",), ("attrs",)]


def generate(mode: str) -> list[Case]:
    rng = random.Random(f"{SEED}-{mode}")
    text = "b" not in mode
    cases = []
    for _ in range(CASES_PER_MODE):
        kwargs: dict[str, Any] = {}
        if text:
            kwargs["buffering"] = rng.choice(TEXT_BUFFERING)
            kwargs["encoding"] = rng.choice(ENCODINGS)
            kwargs["errors"] = rng.choice(ERRORS)
            kwargs["newline"] = rng.choice(NEWLINES)
        else:
            kwargs["buffering"] = rng.choice(BINARY_BUFFERING)
        explicit = kwargs["buffering"] > 1
        size = rng.choice(SIZES)
        if mode.startswith("r"):
            initial: bytes | None = _initial_bytes(rng, size, text)  # a missing file would wait
        elif mode.startswith("x"):
            initial = _initial_bytes(rng, size, text) if rng.random() < 0.15 else None
        else:
            initial = _initial_bytes(rng, size, text) if rng.random() < 0.7 else None
        ops = [_text_op(rng) if text else _binary_op(rng, explicit) for _ in range(rng.randint(3, 10))]
        cases.append(Case(mode, kwargs, initial, ops))
    return cases


# -- running one script -------------------------------------------------------------------------


def _observe(value: Any) -> Any:
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, list):
        return [_observe(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_observe(v) for v in value)
    return value


def _attrs(f: Any) -> tuple[Any, ...]:
    def get(fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception as e:
            return (type(e).__name__, _message(e, "\0"))

    layer = "raw" if isinstance(f, io.RawIOBase) else type(f).__name__
    return (
        layer,
        f.closed,
        get(lambda: f.mode),
        get(f.readable),
        get(f.writable),
        get(f.seekable),
        get(f.isatty),
        get(lambda: f.encoding),
        get(lambda: f.errors),
        get(lambda: f.newlines),
        get(lambda: f.line_buffering),
        isinstance(f, io.IOBase),
        isinstance(f, (io.RawIOBase, io.BufferedIOBase, io.TextIOBase)),
    )


def _apply(f: Any, op: tuple[Any, ...]) -> Any:
    kind, *args = op
    if kind in ("readinto", "readinto1"):
        buf = bytearray(args[0])
        n = getattr(f, kind)(buf)
        return n, bytes(buf)
    if kind == "next":
        return next(f)
    if kind == "attrs":
        return _attrs(f)
    if kind == "tellseek":
        cookie = f.tell()
        first = f.read(3)
        f.seek(cookie)
        return first, f.read(3)
    if kind == "write" and args[0] is None:
        return f.write(b"x" if isinstance(f, (io.RawIOBase, io.BufferedIOBase)) else "x")
    return getattr(f, kind)(*args)


def _message(e: BaseException, root: str) -> str:
    # The raw layer's class is the one intended difference ("'_io.FileIO' object has no ...").
    return (
        str(e).replace(root, "<DIR>").replace("'_io.FileIO'", "'<raw>'").replace("'CapioFileIO'", "'<raw>'")
    )


def run(case: Case, path: str, root: str) -> list[tuple[Any, ...]]:
    """Every observation of ``case`` on ``path``; ``root`` is masked out of messages and names."""
    seen: list[tuple[Any, ...]] = []

    def record(label: str, fn: Callable[[], Any]) -> None:
        try:
            value = fn()
        except Exception as e:
            seen.append((label, "raises", type(e).__name__, _message(e, root)))
        else:
            if isinstance(value, str):
                value = value.replace(root, "<DIR>")
            seen.append((label, "->", _observe(value)))

    if case.initial is not None:
        with open(path, "wb") as f:
            f.write(case.initial)
    try:
        f = open(path, case.mode, **case.kwargs)
    except Exception as e:
        seen.append(("open", "raises", type(e).__name__, _message(e, root)))
    else:
        with f:
            record("name", lambda: f.name)
            for i, op in enumerate(case.ops):
                record(f"{i}:{op[0]}", lambda op=op: _apply(f, op))  # type: ignore[misc]
        for op in AFTER_CLOSE:
            record(f"closed:{op[0]}", lambda op=op: _apply(f, op))  # type: ignore[misc]
    if case.initial is not None or os.path.exists(path):
        with open(path, "rb") as g:
            seen.append(("content", g.read()))
    return seen


ALL_MODES = BINARY_MODES + TEXT_MODES


def test_the_generator_is_deterministic_and_large_enough() -> None:
    cases = [c for mode in ALL_MODES for c in generate(mode)]
    assert len(cases) >= 300
    assert [c.describe() for c in cases[:20]] == [c.describe() for c in generate(ALL_MODES[0])[:20]]
    combos = {(c.mode, c.kwargs.get("encoding"), c.kwargs.get("newline")) for c in cases}
    assert len(combos) > 100


@pytest.mark.parametrize("mode", ALL_MODES)
def test_files_behave_like_the_builtin(capio: InProcess, tmp_path: Path, mode: str) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    mismatches = []
    with capio.context():
        for i, case in enumerate(generate(mode)):
            name = f"case-{mode.replace('+', 'plus')}-{i}"
            want = run(case, str(plain / name), str(plain))
            got = run(case, capio.path(name), str(capio.capio_dir))
            if got != want:
                diff = next((w, g) for w, g in zip([*want, None], [*got, None], strict=False) if w != g)
                mismatches.append(f"{case.describe()}\n  built-in: {diff[0]!r}\n  CAPIO:    {diff[1]!r}")
    assert not mismatches, f"{len(mismatches)} scripts differ:\n" + "\n".join(mismatches[:5])
