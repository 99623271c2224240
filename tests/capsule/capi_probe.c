/*
 * capi_probe: a test-only extension over pycapio's C API (tests/test_capsule.py builds it with cc
 * from the installed header). It exposes each table function with raw return codes (-errno), the
 * header as C sees it, and doctored capsules for the import helper's version checks.
 */
#include "pycapio_capi.h"

#include <stdlib.h>
#include <string.h>

static const pycapio_capi *api(void)
{
    static const pycapio_capi *cached;
    if (cached == NULL) {
        cached = pycapio_import_capi();
    }
    return cached;
}

#define API_OR_NULL()                                                                              \
    const pycapio_capi *capi = api();                                                              \
    if (capi == NULL) {                                                                            \
        return NULL;                                                                               \
    }

/* A path argument: bytes, str (fs-encoded) or None (a NULL pointer). */
static int path_conv(PyObject *obj, void *out)
{
    PyObject **p = out;
    if (obj == NULL) { /* cleanup call */
        Py_CLEAR(*p);
        return 1;
    }
    if (obj == Py_None) {
        *p = Py_NewRef(Py_None);
        return 1;
    }
    if (!PyUnicode_FSConverter(obj, p)) {
        return 0;
    }
    return Py_CLEANUP_SUPPORTED;
}

static const char *path_ptr(PyObject *p)
{
    return p == Py_None ? NULL : PyBytes_AS_STRING(p);
}

static PyObject *stat_tuple(const pycapio_stat *st)
{
    return Py_BuildValue("(KLIII)", (unsigned long long)st->size, (long long)st->mtime_ns,
                         (unsigned)st->mode, (unsigned)st->kind, (unsigned)st->committed);
}

static PyObject *p_header(PyObject *self, PyObject *args)
{
    (void)self;
    (void)args;
    PyObject *cap = PyImport_ImportModule("pycapio._pycapio");
    if (cap == NULL) {
        return NULL;
    }
    PyObject *capsule = PyObject_GetAttrString(cap, "C_API");
    Py_DECREF(cap);
    if (capsule == NULL) {
        return NULL;
    }
    const pycapio_capi_header *h = PyCapsule_GetPointer(capsule, PYCAPIO_CAPSULE_NAME);
    Py_DECREF(capsule);
    if (h == NULL) {
        return NULL;
    }
    return Py_BuildValue("(IIII)", (unsigned)h->magic, (unsigned)h->abi_major, (unsigned)h->abi_minor,
                         (unsigned)h->struct_size);
}

static PyObject *p_sizes(PyObject *self, PyObject *args)
{
    (void)self;
    (void)args;
    return Py_BuildValue("{s:n,s:n,s:n}", "pycapio_capi", (Py_ssize_t)sizeof(pycapio_capi), "pycapio_stat",
                         (Py_ssize_t)sizeof(pycapio_stat), "pycapio_capi_header",
                         (Py_ssize_t)sizeof(pycapio_capi_header));
}

static void free_doctored(PyObject *capsule)
{
    free(PyCapsule_GetPointer(capsule, PyCapsule_GetName(capsule)));
    free(PyCapsule_GetContext(capsule));
}

/* doctored(magic, major, minor, struct_size, name=PYCAPIO_CAPSULE_NAME): a capsule holding a copy
 * of the real table with its header changed. */
static PyObject *p_doctored(PyObject *self, PyObject *args)
{
    unsigned magic, major, minor, size;
    const char *name = PYCAPIO_CAPSULE_NAME;
    (void)self;
    if (!PyArg_ParseTuple(args, "IIII|s", &magic, &major, &minor, &size, &name)) {
        return NULL;
    }
    API_OR_NULL();
    pycapio_capi *copy = malloc(sizeof *copy);
    char *name_copy = strdup(name);
    if (copy == NULL || name_copy == NULL) {
        free(copy);
        free(name_copy);
        return PyErr_NoMemory();
    }
    memcpy(copy, capi, sizeof *copy);
    copy->header.magic = magic;
    copy->header.abi_major = (uint16_t)major;
    copy->header.abi_minor = (uint16_t)minor;
    copy->header.struct_size = size;
    PyObject *capsule = PyCapsule_New(copy, name_copy, free_doctored);
    if (capsule == NULL || PyCapsule_SetContext(capsule, name_copy) != 0) {
        Py_XDECREF(capsule);
        return NULL;
    }
    return capsule;
}

/* check(obj): pycapio_capi_from_capsule(obj) -> (major, minor) or ImportError. */
static PyObject *p_check(PyObject *self, PyObject *obj)
{
    (void)self;
    const pycapio_capi *t = pycapio_capi_from_capsule(obj);
    if (t == NULL) {
        return NULL;
    }
    return Py_BuildValue("(II)", (unsigned)t->header.abi_major, (unsigned)t->header.abi_minor);
}

static PyObject *p_import_capi(PyObject *self, PyObject *args)
{
    (void)self;
    (void)args;
    const pycapio_capi *t = pycapio_import_capi();
    if (t == NULL) {
        return NULL;
    }
    return PyLong_FromVoidPtr((void *)t);
}

/* Each call below runs without the GIL, as a native thread would. */

static PyObject *p_is_initialized(PyObject *self, PyObject *args)
{
    int r;
    (void)self;
    (void)args;
    API_OR_NULL();
    Py_BEGIN_ALLOW_THREADS
    r = capi->is_initialized();
    Py_END_ALLOW_THREADS
    return PyLong_FromLong(r);
}

static PyObject *p_get_capio_dir(PyObject *self, PyObject *args)
{
    Py_ssize_t len;
    int64_t r;
    (void)self;
    if (!PyArg_ParseTuple(args, "n", &len)) {
        return NULL;
    }
    API_OR_NULL();
    char *buf = malloc((size_t)len + 1);
    if (buf == NULL) {
        return PyErr_NoMemory();
    }
    Py_BEGIN_ALLOW_THREADS
    r = capi->get_capio_dir(buf, (size_t)len);
    Py_END_ALLOW_THREADS
    PyObject *out = Py_BuildValue("(Ly#)", (long long)r, buf, (Py_ssize_t)(r > 0 ? r : 0));
    free(buf);
    return out;
}

static PyObject *p_open(PyObject *self, PyObject *args)
{
    PyObject *path = NULL;
    int flags, r;
    unsigned mode = 0644;
    (void)self;
    if (!PyArg_ParseTuple(args, "O&i|I", path_conv, &path, &flags, &mode)) {
        return NULL;
    }
    const pycapio_capi *capi = api();
    if (capi == NULL) {
        Py_DECREF(path);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    r = capi->open(path_ptr(path), flags, mode);
    Py_END_ALLOW_THREADS
    Py_DECREF(path);
    return PyLong_FromLong(r);
}

static PyObject *p_close(PyObject *self, PyObject *args)
{
    int fd, r;
    (void)self;
    if (!PyArg_ParseTuple(args, "i", &fd)) {
        return NULL;
    }
    API_OR_NULL();
    Py_BEGIN_ALLOW_THREADS
    r = capi->close(fd);
    Py_END_ALLOW_THREADS
    return PyLong_FromLong(r);
}

/* read(fd, n, offset=None, null=False) -> (rc, bytes); offset selects pread. */
static PyObject *p_read(PyObject *self, PyObject *args)
{
    int fd, null = 0;
    Py_ssize_t n;
    PyObject *offset = Py_None;
    int64_t r;
    (void)self;
    if (!PyArg_ParseTuple(args, "in|Op", &fd, &n, &offset, &null)) {
        return NULL;
    }
    API_OR_NULL();
    long long off = offset == Py_None ? -1 : PyLong_AsLongLong(offset);
    if (off == -1 && PyErr_Occurred()) {
        return NULL;
    }
    char *buf = malloc((size_t)n + 1);
    if (buf == NULL) {
        return PyErr_NoMemory();
    }
    char *target = null ? NULL : buf;
    Py_BEGIN_ALLOW_THREADS
    r = offset == Py_None ? capi->read(fd, target, (size_t)n) : capi->pread(fd, target, (size_t)n, off);
    Py_END_ALLOW_THREADS
    PyObject *out = Py_BuildValue("(Ly#)", (long long)r, buf, (Py_ssize_t)(r > 0 ? r : 0));
    free(buf);
    return out;
}

/* write(fd, data, offset=None) -> rc; offset selects pwrite. */
static PyObject *p_write(PyObject *self, PyObject *args)
{
    int fd;
    Py_buffer data;
    PyObject *offset = Py_None;
    int64_t r;
    (void)self;
    if (!PyArg_ParseTuple(args, "iy*|O", &fd, &data, &offset)) {
        return NULL;
    }
    const pycapio_capi *capi = api();
    long long off = offset == Py_None || capi == NULL ? -1 : PyLong_AsLongLong(offset);
    if (capi == NULL || (off == -1 && PyErr_Occurred())) {
        PyBuffer_Release(&data);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    r = offset == Py_None ? capi->write(fd, data.buf, (size_t)data.len)
                          : capi->pwrite(fd, data.buf, (size_t)data.len, off);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&data);
    return PyLong_FromLongLong(r);
}

static PyObject *p_lseek(PyObject *self, PyObject *args)
{
    int fd, whence;
    long long off;
    int64_t r;
    (void)self;
    if (!PyArg_ParseTuple(args, "iLi", &fd, &off, &whence)) {
        return NULL;
    }
    API_OR_NULL();
    Py_BEGIN_ALLOW_THREADS
    r = capi->lseek(fd, off, whence);
    Py_END_ALLOW_THREADS
    return PyLong_FromLongLong(r);
}

static PyObject *p_ftruncate(PyObject *self, PyObject *args)
{
    int fd, r;
    long long size;
    (void)self;
    if (!PyArg_ParseTuple(args, "iL", &fd, &size)) {
        return NULL;
    }
    API_OR_NULL();
    Py_BEGIN_ALLOW_THREADS
    r = capi->ftruncate(fd, size);
    Py_END_ALLOW_THREADS
    return PyLong_FromLong(r);
}

/* fstat(fd, null=False) -> (rc, (size, mtime_ns, mode, kind, committed) or None) */
static PyObject *p_fstat(PyObject *self, PyObject *args)
{
    int fd, r, null = 0;
    pycapio_stat st;
    (void)self;
    if (!PyArg_ParseTuple(args, "i|p", &fd, &null)) {
        return NULL;
    }
    API_OR_NULL();
    memset(&st, 0xab, sizeof st);
    Py_BEGIN_ALLOW_THREADS
    r = capi->fstat(fd, null ? NULL : &st);
    Py_END_ALLOW_THREADS
    if (r != 0) {
        return Py_BuildValue("(iO)", r, Py_None);
    }
    if (st.reserved[0] || st.reserved[1] || st.reserved[2]) {
        PyErr_SetString(PyExc_AssertionError, "pycapio_stat.reserved not zeroed");
        return NULL;
    }
    PyObject *t = stat_tuple(&st);
    return t == NULL ? NULL : Py_BuildValue("(iN)", r, t);
}

static PyObject *p_stat(PyObject *self, PyObject *args)
{
    PyObject *path = NULL;
    int r, null = 0;
    pycapio_stat st;
    (void)self;
    if (!PyArg_ParseTuple(args, "O&|p", path_conv, &path, &null)) {
        return NULL;
    }
    const pycapio_capi *capi = api();
    if (capi == NULL) {
        Py_DECREF(path);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    r = capi->stat(path_ptr(path), null ? NULL : &st);
    Py_END_ALLOW_THREADS
    Py_DECREF(path);
    if (r != 0) {
        return Py_BuildValue("(iO)", r, Py_None);
    }
    PyObject *t = stat_tuple(&st);
    return t == NULL ? NULL : Py_BuildValue("(iN)", r, t);
}

/* One-path calls: mkdir(path, mode), unlink(path), rmdir(path). */
static PyObject *p_mkdir(PyObject *self, PyObject *args)
{
    PyObject *path = NULL;
    unsigned mode = 0777;
    int r;
    (void)self;
    if (!PyArg_ParseTuple(args, "O&|I", path_conv, &path, &mode)) {
        return NULL;
    }
    const pycapio_capi *capi = api();
    if (capi == NULL) {
        Py_DECREF(path);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    r = capi->mkdir(path_ptr(path), mode);
    Py_END_ALLOW_THREADS
    Py_DECREF(path);
    return PyLong_FromLong(r);
}

static PyObject *path_call(PyObject *args, int which)
{
    PyObject *path = NULL;
    int r;
    if (!PyArg_ParseTuple(args, "O&", path_conv, &path)) {
        return NULL;
    }
    const pycapio_capi *capi = api();
    if (capi == NULL) {
        Py_DECREF(path);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    r = which == 0 ? capi->unlink(path_ptr(path)) : capi->rmdir(path_ptr(path));
    Py_END_ALLOW_THREADS
    Py_DECREF(path);
    return PyLong_FromLong(r);
}

static PyObject *p_unlink(PyObject *self, PyObject *args)
{
    (void)self;
    return path_call(args, 0);
}

static PyObject *p_rmdir(PyObject *self, PyObject *args)
{
    (void)self;
    return path_call(args, 1);
}

static PyObject *p_rename(PyObject *self, PyObject *args)
{
    PyObject *src = NULL, *dst = NULL;
    int r;
    (void)self;
    if (!PyArg_ParseTuple(args, "O&O&", path_conv, &src, path_conv, &dst)) {
        return NULL;
    }
    const pycapio_capi *capi = api();
    if (capi != NULL) {
        Py_BEGIN_ALLOW_THREADS
        r = capi->rename(path_ptr(src), path_ptr(dst));
        Py_END_ALLOW_THREADS
    }
    Py_DECREF(src);
    Py_DECREF(dst);
    return capi == NULL ? NULL : PyLong_FromLong(r);
}

/* listdir(path, len) -> (rc, bytes copied: the first min(rc, len) bytes when they fit, else b"") */
static PyObject *p_listdir(PyObject *self, PyObject *args)
{
    PyObject *path = NULL;
    Py_ssize_t len;
    int64_t r;
    (void)self;
    if (!PyArg_ParseTuple(args, "O&n", path_conv, &path, &len)) {
        return NULL;
    }
    const pycapio_capi *capi = api();
    char *buf = malloc((size_t)len + 1);
    if (capi == NULL || buf == NULL) {
        free(buf);
        Py_DECREF(path);
        return capi == NULL ? NULL : PyErr_NoMemory();
    }
    Py_BEGIN_ALLOW_THREADS
    r = capi->listdir(path_ptr(path), len ? buf : NULL, (size_t)len);
    Py_END_ALLOW_THREADS
    Py_DECREF(path);
    PyObject *out = Py_BuildValue("(Ly#)", (long long)r, buf, (Py_ssize_t)(r > 0 && r <= len ? r : 0));
    free(buf);
    return out;
}

static PyMethodDef methods[] = {
    {"header", p_header, METH_NOARGS, "(magic, abi_major, abi_minor, struct_size) of the live table."},
    {"sizes", p_sizes, METH_NOARGS, "sizeof the header's structs, as this C compiler lays them out."},
    {"doctored", p_doctored, METH_VARARGS, "A capsule with a copy of the table and a doctored header."},
    {"check", p_check, METH_O, "pycapio_capi_from_capsule(obj) -> (major, minor)."},
    {"import_capi", p_import_capi, METH_NOARGS, "pycapio_import_capi() -> the table's address."},
    {"is_initialized", p_is_initialized, METH_NOARGS, NULL},
    {"get_capio_dir", p_get_capio_dir, METH_VARARGS, NULL},
    {"open", p_open, METH_VARARGS, NULL},
    {"close", p_close, METH_VARARGS, NULL},
    {"read", p_read, METH_VARARGS, NULL},
    {"write", p_write, METH_VARARGS, NULL},
    {"lseek", p_lseek, METH_VARARGS, NULL},
    {"ftruncate", p_ftruncate, METH_VARARGS, NULL},
    {"fstat", p_fstat, METH_VARARGS, NULL},
    {"stat", p_stat, METH_VARARGS, NULL},
    {"mkdir", p_mkdir, METH_VARARGS, NULL},
    {"unlink", p_unlink, METH_VARARGS, NULL},
    {"rmdir", p_rmdir, METH_VARARGS, NULL},
    {"rename", p_rename, METH_VARARGS, NULL},
    {"listdir", p_listdir, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "capi_probe", "Test probe over pycapio's C API.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_capi_probe(void)
{
    return PyModule_Create(&module);
}
