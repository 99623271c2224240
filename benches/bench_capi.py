"""Case 6: the C API's ``pwrite``/``pread`` against raw ``pwrite(2)``/``pread(2)`` on a ``/dev/shm``
file, 1 GiB (quick: 128 MiB) in 1 MiB blocks, from C.

A small C extension, compiled here against the installed header (``pycapio.get_include()``), runs
each timed loop in C with the GIL released: the same loop body once through pycapio's function table
(``capio->pwrite(fd, ...)`` on a CAPIO file of this process) and once through libc on a file in
``/dev/shm``. Three variants: ``pwrite`` into a new file (both pay first-touch page allocation),
``pwrite`` over the same bytes again (pages already there: the per-call cost shows), and ``pread`` of
the whole file into a buffer whose pages are already faulted in. CAPIO-CL commits ``on_close`` and
persists nothing, so neither side reaches a disk. Target (DESIGN §4): 0.9x of the raw syscalls.

    python benches/bench_capi.py [--quick]      # prints the rows; benches/run.py shows them in its table
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import sysconfig
import zlib
from pathlib import Path
from types import ModuleType

from _common import (
    GiB,
    Isolated,
    MiB,
    Row,
    alternate,
    check,
    in_process_capio,
    median,
    row,
    seeded_pool,
    shm_free_check,
)

POOL = 64 * MiB
BLOCK = MiB

HELPER_C = r"""
#include "pycapio_capi.h"
#include <errno.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

static const pycapio_capi *capio;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* loop(api, write, fd, buffer, total, block) -> seconds: pwrite (write=1) or pread (write=0) of
 * `total` bytes in `block`-sized calls at consecutive offsets, the buffer cycled through. api=1 calls
 * the C API table, api=0 libc. Runs without the GIL. */
static PyObject *loop(PyObject *self, PyObject *args)
{
    int api, write, fd;
    Py_buffer buf;
    long long total, block;
    long long off, err = 0;
    double t0, t1;
    (void)self;
    if (!PyArg_ParseTuple(args, "ppiw*LL", &api, &write, &fd, &buf, &total, &block)) {
        return NULL;
    }
    if (block <= 0 || buf.len < block || buf.len % block != 0) {
        PyBuffer_Release(&buf);
        PyErr_SetString(PyExc_ValueError, "the buffer must be a positive multiple of block");
        return NULL;
    }
    char *base = buf.buf;
    long long span = (long long)buf.len;
    Py_BEGIN_ALLOW_THREADS
    t0 = now();
    for (off = 0; off < total; off += block) {
        char *p = base + off % span;
        long long n = block < total - off ? block : total - off;
        long long r;
        if (api) {
            r = write ? capio->pwrite(fd, p, (size_t)n, off) : capio->pread(fd, p, (size_t)n, off);
        } else {
            r = write ? pwrite(fd, p, (size_t)n, off) : pread(fd, p, (size_t)n, off);
            if (r < 0) {
                r = -errno;
            }
        }
        if (r != n) {
            err = r < 0 ? r : -EIO;
            break;
        }
    }
    t1 = now();
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&buf);
    if (err < 0) {
        errno = (int)-err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return PyFloat_FromDouble(t1 - t0);
}

static PyObject *capi_open(PyObject *self, PyObject *args)
{
    const char *path;
    int flags, fd;
    (void)self;
    if (!PyArg_ParseTuple(args, "si", &path, &flags)) {
        return NULL;
    }
    fd = capio->open(path, flags, 0644);
    if (fd < 0) {
        errno = -fd;
        return PyErr_SetFromErrnoWithFilename(PyExc_OSError, path);
    }
    return PyLong_FromLong(fd);
}

static PyObject *capi_close(PyObject *self, PyObject *arg)
{
    int r;
    (void)self;
    r = capio->close((int)PyLong_AsLong(arg));
    if (r < 0) {
        errno = -r;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
}

static PyObject *capi_unlink(PyObject *self, PyObject *args)
{
    const char *path;
    int r;
    (void)self;
    if (!PyArg_ParseTuple(args, "s", &path)) {
        return NULL;
    }
    r = capio->unlink(path);
    if (r < 0) {
        errno = -r;
        return PyErr_SetFromErrnoWithFilename(PyExc_OSError, path);
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"loop", loop, METH_VARARGS, NULL},
    {"capi_open", capi_open, METH_VARARGS, NULL},
    {"capi_close", capi_close, METH_O, NULL},
    {"capi_unlink", capi_unlink, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_capi_bench", NULL, -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__capi_bench(void)
{
    capio = pycapio_import_capi();
    if (capio == NULL) {
        return NULL;
    }
    return PyModule_Create(&module);
}
"""


def build_helper(where: Path) -> ModuleType:
    """Compile the C helper with the system C compiler against the installed header; import it."""
    import pycapio

    src = where / "_capi_bench.c"
    src.write_text(HELPER_C)
    out = where / f"_capi_bench{sysconfig.get_config_var('EXT_SUFFIX')}"
    cmd = [
        os.environ.get("CC", "cc"), "-O2", "-shared", "-fPIC", "-Wall", "-Werror",
        "-I", pycapio.get_include(), "-I", sysconfig.get_paths()["include"],
        str(src), "-o", str(out),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True)
    check(proc.returncode == 0, f"compiling the C helper failed:\n{proc.stderr}")
    spec = importlib.util.spec_from_file_location("_capi_bench", out)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _crc_file(fd: int, total: int) -> int:
    """CRC-32 of the file's first ``total`` bytes (untimed; the fd is real: the CAPIO file's
    memory, or the /dev/shm file)."""
    crc = 0
    for off in range(0, total, BLOCK):
        crc = zlib.crc32(os.pread(fd, min(BLOCK, total - off), off), crc)
    return crc


def run(quick: bool) -> list[Row]:
    total = 128 * MiB if quick else 1 * GiB
    repeats = 1 if quick else 3
    shm_free_check(2 * total + 2 * POOL)
    pool = bytearray(seeded_pool(POOL, 6))
    expected = 0
    for off in range(0, total, BLOCK):
        p = off % POOL
        expected = zlib.crc32(pool[p : p + BLOCK], expected)
    dst = bytearray(POOL)  # the read target, pre-faulted
    for off in range(0, POOL, 4096):
        dst[off] = 1
    gib = total / GiB

    with Isolated("capi") as iso, in_process_capio(iso, "bench") as (capio_dir, _ctx):
        helper = build_helper(iso.root)
        count = 0

        def capio() -> tuple[float, float, float]:
            nonlocal count
            count += 1
            path = str(capio_dir / f"capi{count}.bin")
            fd = helper.capi_open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
            try:
                fresh = helper.loop(True, True, fd, pool, total, BLOCK)
                again = helper.loop(True, True, fd, pool, total, BLOCK)
                if count == 1:
                    dst[:] = bytes(POOL)
                read = helper.loop(True, False, fd, dst, total, BLOCK)
                if count == 1:
                    check(_crc_file(fd, total) == expected, "C API pwrite: checksum mismatch")
                    check(dst == pool, "C API pread: wrong bytes")
            finally:
                helper.capi_close(fd)
            helper.capi_unlink(path)
            return gib / fresh, gib / again, gib / read

        def raw() -> tuple[float, float, float]:
            path = str(iso.shm / "raw.bin")
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                fresh = helper.loop(False, True, fd, pool, total, BLOCK)
                again = helper.loop(False, True, fd, pool, total, BLOCK)
                first = not hasattr(raw, "checked")
                if first:
                    dst[:] = bytes(POOL)
                read = helper.loop(False, False, fd, dst, total, BLOCK)
                if first:
                    check(_crc_file(fd, total) == expected, "raw pwrite: checksum mismatch")
                    check(dst == pool, "raw pread: wrong bytes")
                    raw.checked = True  # type: ignore[attr-defined]
            finally:
                os.close(fd)
            os.remove(path)
            return gib / fresh, gib / again, gib / read

        res = alternate(repeats, {"capi": capio, "raw": raw})

    def med(name: str, i: int) -> float:
        return median([r[i] for r in res[name]])

    size = f"{total // MiB} MiB in 1 MiB calls, C loop without the GIL"
    return [
        row("capi pwrite 1 MiB (new file)", med("capi", 0), med("raw", 0), "GiB/s", True, 0.9,
            f"{size}; C API pwrite into a new CAPIO file vs pwrite(2) into a new /dev/shm file"),
        row("capi pwrite 1 MiB (overwrite)", med("capi", 1), med("raw", 1), "GiB/s", True, 0.9,
            f"{size}; the same bytes again (pages already allocated): per-call overhead shows"),
        row("capi pread 1 MiB", med("capi", 2), med("raw", 2), "GiB/s", True, 0.9,
            f"{size}; C API pread of this process's CAPIO file vs pread(2) of the /dev/shm file"),
    ]  # fmt: skip


if __name__ == "__main__":
    for r in run("--quick" in sys.argv[1:]):
        ratio = r["pycapio"] / r["baseline"]
        target = r["target"] or 0.0
        print(
            f"{r['case']:<32} C API {r['pycapio']:6.2f} {r['unit']}   raw {r['baseline']:6.2f} {r['unit']}"
            f"   ratio {ratio:.2f}x   target >={target:.2f}x   {'met' if ratio >= target else 'MISSED'}"
        )
