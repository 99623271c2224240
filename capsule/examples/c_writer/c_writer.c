/*
 * c_writer: an example extension that writes a CAPIO file through pycapio's C API from a native
 * thread (pthread) while the calling Python thread has released the GIL.
 *
 *     import c_writer
 *     written, saw_gate = c_writer.write_file(path, data, block=1 << 20, gate=None, gate_timeout=0.0)
 *
 * The thread writes `data` in blocks of `block` bytes. With `gate` (a path outside the CAPIO
 * directory), it pauses after the first block until that file exists (at most `gate_timeout`
 * seconds): a consumer that creates it after reading the first block proves the file streams.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "pycapio_capi.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <time.h>

/* Imported once at module init, like numpy's import_array(); immutable, usable from any thread. */
static const pycapio_capi *capio;

struct job {
    const char *path;
    const char *data;
    size_t len;
    size_t block;
    const char *gate;
    double gate_timeout;
    int64_t result; /* bytes written, or -errno */
    int saw_gate;
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A plain stat(2) of a marker outside the CAPIO directory: no Python, no CAPIO. */
static int wait_gate(const char *gate, double timeout)
{
    struct stat st;
    struct timespec pause = {0, 10 * 1000 * 1000};
    double deadline = now() + timeout;
    while (stat(gate, &st) != 0) {
        if (now() > deadline) {
            return 0;
        }
        nanosleep(&pause, NULL);
    }
    return 1;
}

static void *writer(void *arg)
{
    struct job *j = arg;
    size_t off = 0;
    int rc;
    int fd = capio->open(j->path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        j->result = fd;
        return NULL;
    }
    while (off < j->len) {
        size_t n = j->len - off < j->block ? j->len - off : j->block;
        int64_t w = capio->write(fd, j->data + off, n);
        if (w < 0) {
            j->result = w;
            capio->close(fd);
            return NULL;
        }
        if (off == 0 && j->gate != NULL) {
            j->saw_gate = wait_gate(j->gate, j->gate_timeout);
        }
        off += (size_t)w;
    }
    rc = capio->close(fd);
    j->result = rc < 0 ? rc : (int64_t)off;
    return NULL;
}

static PyObject *write_file(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"path", "data", "block", "gate", "gate_timeout", NULL};
    PyObject *path = NULL, *gate = NULL, *result = NULL;
    Py_buffer data;
    Py_ssize_t block = 1 << 20;
    double gate_timeout = 0.0;
    pthread_t thread;
    struct job job;
    int err;
    (void)self;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O&y*|nO&d", names, PyUnicode_FSConverter, &path,
                                     &data, &block, PyUnicode_FSConverter, &gate, &gate_timeout)) {
        Py_XDECREF(path);
        return NULL;
    }
    if (block <= 0) {
        PyErr_SetString(PyExc_ValueError, "block must be positive");
        goto done;
    }
    job.path = PyBytes_AS_STRING(path);
    job.data = data.buf;
    job.len = (size_t)data.len;
    job.block = (size_t)block;
    job.gate = gate != NULL ? PyBytes_AS_STRING(gate) : NULL;
    job.gate_timeout = gate_timeout;
    job.result = 0;
    job.saw_gate = 0;

    /* The native thread never holds the GIL; this one gives it up while it waits. */
    Py_BEGIN_ALLOW_THREADS
    err = pthread_create(&thread, NULL, writer, &job);
    if (err == 0) {
        pthread_join(thread, NULL);
    }
    Py_END_ALLOW_THREADS

    if (err != 0) {
        errno = err;
        PyErr_SetFromErrno(PyExc_OSError);
    } else if (job.result < 0) {
        errno = (int)-job.result;
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path);
    } else {
        result = Py_BuildValue("(LO)", (long long)job.result, job.saw_gate ? Py_True : Py_False);
    }
done:
    PyBuffer_Release(&data);
    Py_DECREF(path);
    Py_XDECREF(gate);
    return result;
}

static PyObject *capi_version(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    return Py_BuildValue("(IIIO)", (unsigned)capio->header.abi_major, (unsigned)capio->header.abi_minor,
                         (unsigned)capio->header.struct_size, capio->is_initialized() ? Py_True : Py_False);
}

static PyMethodDef methods[] = {
    {"write_file", (PyCFunction)(void (*)(void))write_file, METH_VARARGS | METH_KEYWORDS,
     "write_file(path, data, block=1 MiB, gate=None, gate_timeout=0.0) -> (written, saw_gate)\n"
     "Write data to a CAPIO file from a native thread, with the GIL released."},
    {"capi_version", capi_version, METH_NOARGS,
     "(abi_major, abi_minor, struct_size, is_initialized) of the pycapio C API in use."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "c_writer", "Writes CAPIO files from a native thread through pycapio's C API.",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_c_writer(void)
{
    capio = pycapio_import_capi();
    if (capio == NULL) {
        return NULL;
    }
    return PyModule_Create(&module);
}
