#!/usr/bin/env python3
"""Run every benchmark case and print one table: pycapio vs its baseline, side by side.

    python benches/run.py [--quick] [--json OUT.json] [--png OUT.png] [--case NAME ...]

Cases are the modules ``benches/bench_*.py``; each has ``run(quick: bool) -> list[dict]``
returning rows (see ``benches/README.md``). Every case runs in its own interpreter, so one that
crashes cannot take the others down and none inherits another's CAPIO state. The machine's
memory-copy limit is measured first, in this process.

Exit status: 0 when every case ran and verified its data; 1 when a case failed (a crash, a
checksum mismatch, a malformed row). A missed target is reported, never an error.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import GiB, MiB, Row, median, memcpy_rate, ratio, seeded_pool  # noqa: E402

# Table order: the cases of issue 6, then any other bench_*.py alphabetically.
ORDER = [
    "bench_sequential",
    "bench_pipeline",
    "bench_smallfiles",
    "bench_latency",
    "bench_text",
    "bench_capi",
    "bench_memory",
    "bench_stream",
    "bench_limits",
]
ROW_KEYS: dict[str, type | tuple[type, ...]] = {
    "case": str,
    "pycapio": (int, float),
    "baseline": (int, float),
    "unit": str,
    "higher_is_better": bool,
    "target": (int, float, type(None)),
    "note": str,
}


def discover() -> list[str]:
    found = sorted(p.stem for p in HERE.glob("bench_*.py"))
    return [m for m in ORDER if m in found] + [m for m in found if m not in ORDER]


def validate(rows: Any, module: str) -> list[Row]:
    if not isinstance(rows, list):
        raise ValueError(f"{module}.run() returned {type(rows).__name__}, not a list of rows")
    for r in rows:
        if not isinstance(r, dict) or set(r) != set(ROW_KEYS):
            raise ValueError(f"{module}: a row must have exactly the keys {sorted(ROW_KEYS)}: {r!r}")
        for key, types in ROW_KEYS.items():
            if not isinstance(r[key], types):
                raise ValueError(f"{module}: row {r['case']!r}: {key} is {type(r[key]).__name__}")
        for key in ("pycapio", "baseline"):
            if not (math.isfinite(r[key]) and r[key] > 0):
                raise ValueError(f"{module}: row {r['case']!r}: {key} = {r[key]!r} is not a positive number")
    return rows


# -- child: one case --------------------------------------------------------------------------------


def child(module: str, quick: bool, out: str) -> int:
    try:
        mod = __import__(module)
        rows = validate(mod.run(quick), module)
    except BaseException:
        traceback.print_exc()
        return 1
    Path(out).write_text(json.dumps(rows))
    return 0


def run_case(module: str, quick: bool, timeout: float) -> tuple[list[Row], str | None, float]:
    """Rows, error (None if it ran and verified), seconds."""
    t = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pcb-run-") as tmp:
        out = Path(tmp) / "rows.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--_child", module, str(out)]
        if quick:
            cmd.append("--quick")
        try:
            # In a directory of its own: never in a checkout whose pycapio/ would shadow the
            # installed package.
            proc = subprocess.run(cmd, cwd=tmp, timeout=timeout, stderr=subprocess.PIPE, text=True)
        except subprocess.TimeoutExpired:
            return [], f"timed out after {timeout:.0f} s", time.perf_counter() - t
        elapsed = time.perf_counter() - t
        if proc.stderr:
            sys.stderr.write(proc.stderr)
        if proc.returncode != 0:
            last = proc.stderr.strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
            return [], last[0], elapsed
        return json.loads(out.read_text()), None, elapsed


# -- report -----------------------------------------------------------------------------------------


def fmt(v: float | None) -> str:
    if v is None:
        return "-"
    a = abs(v)
    if a >= 10000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def verdict(r: Row) -> str:
    if r["target"] is None:
        return ""
    return "met" if ratio(r) >= r["target"] else "MISSED"


def table(rows: list[Row]) -> str:
    head = ["case", "pycapio", "baseline", "unit", "better", "ratio", "target", ""]
    body = [
        [
            r["case"],
            fmt(r["pycapio"]),
            fmt(r["baseline"]),
            r["unit"],
            "higher" if r["higher_is_better"] else "lower",
            f"{ratio(r):.2f}x",
            "-" if r["target"] is None else f">={r['target']:.2f}x",
            verdict(r),
        ]
        for r in rows
    ]
    widths = [max(len(str(x[i])) for x in [head, *body]) for i in range(len(head))]
    right = {1, 2, 5, 6}

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    rule = "-" * len(line(head))
    return "\n".join([line(head), rule, *(line(b) for b in body)])


def machine() -> dict[str, Any]:
    shm_fs = "?"
    try:
        for mount in Path("/proc/mounts").read_text().splitlines():
            parts = mount.split()
            if parts[1] == "/dev/shm":
                shm_fs = parts[2]
    except OSError:
        pass
    mem = 0
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        pass
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        load = "?"
    return {
        "load_at_start": load,
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(mem / GiB, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "dev_shm": shm_fs,
    }


LO, HI = 1 / 8, 16  # the chart's ratio axis


def chart(rows: list[Row], path: str, title: str) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install '.[bench]'): no PNG written"
    names = [r["case"] for r in rows][::-1]
    ratios = [ratio(r) for r in rows][::-1]
    colors = []
    for r in rows[::-1]:
        v = verdict(r)
        colors.append("#2a9d55" if v == "met" else "#d1495b" if v == "MISSED" else "#8d99ae")
    fig, ax = plt.subplots(figsize=(10, 0.42 * len(rows) + 1.6))
    # Bars grow from 1.0 (parity with the baseline): right when pycapio is better, left when worse.
    ax.barh(names, [r - 1.0 for r in ratios], left=1.0, color=colors)
    for i, r in enumerate(rows[::-1]):
        if r["target"] is not None:
            ax.plot([r["target"]] * 2, [i - 0.4, i + 0.4], color="black", linewidth=2)
        # Ratios beyond the axis (memory rows: bytes streamed / a few MiB) are clipped; the label
        # still gives the value.
        x = min(max(ratios[i], LO * 1.05), HI / 1.6)
        ax.text(x, i, f" {ratios[i]:.2f}x", va="center", fontsize=8)
    ax.axvline(1.0, color="black", linewidth=0.8, linestyle="--")
    ax.set_xscale("log", base=2)
    ax.set_xlim(LO, HI)
    ax.set_xlabel("pycapio vs baseline (>1: pycapio better); black tick: target; green met, red missed")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes, one repeat (CI)")
    ap.add_argument("--json", metavar="OUT.json", help="write the results as JSON")
    ap.add_argument("--png", metavar="OUT.png", help="write a chart of the ratios (needs matplotlib)")
    ap.add_argument("--case", action="append", metavar="NAME", help="run only this case (e.g. bench_text)")
    ap.add_argument("--_child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._child:
        return child(args._child[0], args.quick, args._child[1])

    start = time.perf_counter()
    mode = "quick" if args.quick else "full"
    command = "python benches/run.py" + " ".join(["", *sys.argv[1:]]).rstrip()
    modules = discover()
    if args.case:
        unknown = [c for c in args.case if c not in modules]
        if unknown:
            ap.error(f"no such case: {', '.join(unknown)} (cases: {', '.join(modules)})")
        modules = [m for m in modules if m in args.case]
    info = machine()
    print(
        f"pycapio benchmarks ({mode}): {info['cores']} cores, {info['cpu']}, {info['memory_gib']} GiB, "
        f"Python {info['python']}, Linux {info['kernel']}, /dev/shm on {info['dev_shm']}, "
        f"load average {info['load_at_start']}",
        flush=True,
    )
    pool = seeded_pool(64 * MiB, 0)
    limit = median([memcpy_rate((256 * MiB) if args.quick else GiB, MiB, pool) for _ in range(3)])
    del pool
    print(f"memory-copy limit (in-process copy, 1 MiB pieces, pre-faulted): {limit:.1f} GiB/s", flush=True)

    rows: list[Row] = []
    cases: list[dict[str, Any]] = []
    timeout = 180 if args.quick else 1800
    for module in modules:
        got, error, secs = run_case(module, args.quick, timeout)
        status = "error" if error else "ok" if got else "skipped"
        print(f"  {module}: {status} in {secs:.1f} s" + (f": {error}" if error else ""), flush=True)
        cases.append({"module": module, "status": status, "error": error, "seconds": round(secs, 2)})
        rows += got

    print()
    print(
        "ratio = pycapio / baseline, or baseline / pycapio where lower is better: > 1 means pycapio is better"
    )
    print(table(rows))
    missed = [r["case"] for r in rows if verdict(r) == "MISSED"]
    errors = [c for c in cases if c["status"] == "error"]
    total = time.perf_counter() - start
    print(f"\nmemory-copy limit: {limit:.1f} GiB/s; {len(rows)} rows, {len(missed)} targets missed")
    for r in rows:
        if r["note"]:
            print(f"  {r['case']}: {r['note']}")

    date = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    if args.json:
        result = {
            "mode": mode,
            "command": command,
            "date": date,
            "machine": info,
            "memcpy_limit_gib_s": limit,
            "seconds": round(total, 1),
            "cases": cases,
            "rows": [dict(r, ratio=ratio(r), met=verdict(r) or None) for r in rows],
        }
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    if args.png:
        title = f"pycapio benchmarks ({mode}), {info['cores']} cores, Python {info['python']}, {date[:10]}"
        problem = chart(rows, args.png, title)
        print(problem or f"wrote {args.png}")
    if errors:
        print(f"FAILED: {', '.join(c['module'] for c in errors)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
