/*
 * pycapio_capi.h — the C API of pycapio for native extensions (C and C++).
 *
 * pycapio's extension module publishes one immutable function table behind the capsule
 * "pycapio._pycapio.C_API". Import it once, with the GIL held (typically in your module's init),
 * then call its functions from any thread, with or without the GIL:
 *
 *     #include <Python.h>
 *     #include "pycapio_capi.h"       // directory: pycapio.get_include()
 *
 *     static const pycapio_capi *capio;
 *     ...in PyInit_/exec:  capio = pycapio_import_capi();  if (capio == NULL) return NULL;
 *     ...anywhere:         int fd = capio->open("/capio/out.dat", O_WRONLY | O_CREAT | O_TRUNC, 0644);
 *                          int64_t n = capio->write(fd, buf, len);  capio->close(fd);
 *
 * CONVENTIONS
 *   - Every function returns a negative errno on failure (-ENOENT, -EBADF, ...), never sets errno
 *     and never touches Python objects; none needs the GIL. Beyond the usual errnos:
 *       -ENOTCONN    CAPIO is not initialised in this process (pycapio_init / CapioContext / the
 *                    `pycapio` launcher attach it; is_initialized() tells);
 *       -EXDEV       the path is outside the CAPIO directory, or CAPIO-CL excludes it: do that I/O
 *                    with the operating system instead (rename across the boundary, too);
 *       -ETIMEDOUT   a wait exceeded PYCAPIO_WAIT_TIMEOUT (seconds, read at initialisation);
 *                    a wait for a file that was never created gives -ENOENT instead;
 *       -EIO         the producer of a file terminated before committing it; or an internal error;
 *       -ECONNRESET  the workflow's CAPIO server is gone;
 *       -EPROTO      the server's answer breaks the protocol (e.g. a server of another version);
 *       -EFAULT      a NULL pointer where a buffer or path was required.
 *   - Paths are NUL-terminated byte strings, absolute or relative to the current directory.
 *   - fds are the process's real file descriptors (a CAPIO file's shared-memory object, or the file
 *     on disk for an existing input), but only the table's functions keep CAPIO's bookkeeping
 *     (published length, streaming wake-ups, close counts): write and close through the table.
 *   - Streaming follows CAPIO-CL exactly as for Python code: open() for reading of a file that
 *     does not exist yet waits until a producer creates it while one may still appear (a declared
 *     producer app has not ended, or another step is attached), else is -ENOENT at once (README,
 *     Semantics); read()/pread() wait per the file's
 *     fire rule (update: until it is committed; no_update: until there are bytes past the offset)
 *     and return 0 only at the end of a committed file; a producer never waits on its own file.
 *     Waits are not interruptible by signals here; they end on data, on the producer's death
 *     (-EIO), on the server's death (-ECONNRESET) or after PYCAPIO_WAIT_TIMEOUT (-ETIMEDOUT).
 *
 * VERSIONING (the ABI)
 *   The table starts with a header {magic, abi_major, abi_minor, struct_size}. Functions are only
 *   ever appended at the end (abi_minor grows, struct_size grows); removing or changing one bumps
 *   abi_major. pycapio_import_capi() accepts a table whose magic and abi_major match this header's
 *   and whose struct_size is at least sizeof(pycapio_capi) as this header declares it; otherwise
 *   it raises ImportError. A function of ABI 1.x, once there, is never NULL.
 *
 * Define PYCAPIO_CAPI_NO_PYTHON before including this header to get the declarations only (no
 * Python.h, no import helper).
 */
#ifndef PYCAPIO_CAPI_H
#define PYCAPIO_CAPI_H

#ifndef PYCAPIO_CAPI_NO_PYTHON
/* Python.h must come before any standard header (it sets feature-test macros). */
#  ifndef PY_SSIZE_T_CLEAN
#    define PY_SSIZE_T_CLEAN
#  endif
#  include <Python.h>
#endif

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PYCAPIO_CAPSULE_NAME "pycapio._pycapio.C_API"
#define PYCAPIO_CAPI_MODULE "pycapio._pycapio"
#define PYCAPIO_CAPI_ATTR "C_API"
#define PYCAPIO_CAPI_MAGIC 0x50434150u /* 'PCAP' */
#define PYCAPIO_CAPI_ABI_MAJOR 1
#define PYCAPIO_CAPI_ABI_MINOR 0

/* pycapio_stat.kind */
#define PYCAPIO_KIND_FILE 1u
#define PYCAPIO_KIND_DIR 2u

/* 40 bytes, 8-aligned, on every LP64 and ILP32 target. */
typedef struct pycapio_stat {
    uint64_t size;        /* bytes published so far (the final size once committed) */
    int64_t mtime_ns;     /* modification time, ns since the epoch */
    uint32_t mode;        /* permission bits (0o7777) */
    uint32_t kind;        /* PYCAPIO_KIND_FILE or PYCAPIO_KIND_DIR */
    uint32_t committed;   /* 1 once committed per CAPIO-CL (inputs on disk: always 1), else 0 */
    uint32_t reserved[3]; /* zeroed; room for later fields */
} pycapio_stat;

/* 16 bytes. */
typedef struct pycapio_capi_header {
    uint32_t magic;       /* PYCAPIO_CAPI_MAGIC */
    uint16_t abi_major;   /* incompatible changes */
    uint16_t abi_minor;   /* functions appended */
    uint32_t struct_size; /* sizeof the whole table as the provider built it */
    uint32_t reserved;    /* 0 */
} pycapio_capi_header;

typedef struct pycapio_capi {
    pycapio_capi_header header;

    /* ---- ABI 1.0 (append only below) ---- */

    /* 1 if this process is attached to a CAPIO server, else 0. Never fails. In a forked child
     * (multiprocessing) it attaches again first, as any other call does. */
    int (*is_initialized)(void);
    /* Copies the CAPIO directory (its real path) and a NUL into buf; returns its length without
     * the NUL. -ERANGE if len is too small for both. */
    int64_t (*get_capio_dir)(char *buf, size_t len);
    /* open(2): flags O_RDONLY/O_WRONLY/O_RDWR | O_CREAT/O_EXCL/O_TRUNC/O_APPEND; mode & 07777.
     * Returns the fd. Reading a path that does not exist yet waits until a producer creates it. */
    int (*open)(const char *path, int flags, unsigned int mode);
    /* Returns 0; -EBADF if fd is not an open CAPIO fd of this process. */
    int (*close)(int fd);
    /* From the fd's position (advancing it); waits per CAPIO-CL; returns bytes read, 0 at EOF. */
    int64_t (*read)(int fd, void *buf, size_t len);
    /* At the position (the end with O_APPEND), advancing it; writes all of buf; returns len. */
    int64_t (*write)(int fd, const void *buf, size_t len);
    /* Like read/write at offset (>= 0, else -EINVAL); the position does not move. */
    int64_t (*pread)(int fd, void *buf, size_t len, int64_t offset);
    int64_t (*pwrite)(int fd, const void *buf, size_t len, int64_t offset);
    /* whence: SEEK_SET, SEEK_CUR, SEEK_END; returns the new position. */
    int64_t (*lseek)(int fd, int64_t offset, int whence);
    /* Returns 0 and fills *st. */
    int (*fstat)(int fd, pycapio_stat *st);
    /* Never waits: a path not created yet is -ENOENT. Returns 0 and fills *st. */
    int (*stat)(const char *path, pycapio_stat *st);
    /* Returns 0; -EEXIST, -ENOENT (missing parent), ... as mkdir(2). */
    int (*mkdir)(const char *path, unsigned int mode);
    /* Returns 0; fds already open on the file keep working. */
    int (*unlink)(const char *path);
    /* Like rename(2), replacing dst; -EXDEV when exactly one end is outside the CAPIO directory. */
    int (*rename)(const char *src, const char *dst);
    /* The directory's entries, each a name followed by a NUL, directories with a '/' before it
     * ("a.dat\0sub/\0"), once the directory is complete (waits per CAPIO-CL unless this process
     * produces it). Returns the number of bytes the whole listing needs; the listing is copied
     * into buf only if it fits (len >= the result): call with len 0 to size, then again. */
    int64_t (*listdir)(const char *path, char *buf, size_t len);
    /* ftruncate(2) on a CAPIO fd opened for writing; returns 0. */
    int (*ftruncate)(int fd, int64_t size);
    /* Remove an empty directory; returns 0. */
    int (*rmdir)(const char *path);
} pycapio_capi;

#ifndef PYCAPIO_CAPI_NO_PYTHON

/* Check a capsule and return its table, or NULL with ImportError set. GIL required. */
static inline const pycapio_capi *pycapio_capi_from_capsule(PyObject *capsule)
{
    const pycapio_capi *api;
    if (!PyCapsule_IsValid(capsule, PYCAPIO_CAPSULE_NAME)) {
        PyErr_Format(PyExc_ImportError,
                     "pycapio C API: %s is not a capsule named \"%s\"",
                     PYCAPIO_CAPI_MODULE "." PYCAPIO_CAPI_ATTR, PYCAPIO_CAPSULE_NAME);
        return NULL;
    }
    api = (const pycapio_capi *)PyCapsule_GetPointer(capsule, PYCAPIO_CAPSULE_NAME);
    if (api == NULL) {
        return NULL;
    }
    if (api->header.magic != PYCAPIO_CAPI_MAGIC) {
        PyErr_Format(PyExc_ImportError,
                     "pycapio C API: bad magic 0x%08x (expected 0x%08x): not a pycapio function table",
                     (unsigned int)api->header.magic, (unsigned int)PYCAPIO_CAPI_MAGIC);
        return NULL;
    }
    if (api->header.abi_major != PYCAPIO_CAPI_ABI_MAJOR) {
        PyErr_Format(PyExc_ImportError,
                     "pycapio C API version %u.%u is incompatible with this extension, built for "
                     "%u.%u (different major version): rebuild the extension against the installed pycapio",
                     (unsigned int)api->header.abi_major, (unsigned int)api->header.abi_minor,
                     (unsigned int)PYCAPIO_CAPI_ABI_MAJOR, (unsigned int)PYCAPIO_CAPI_ABI_MINOR);
        return NULL;
    }
    if (api->header.struct_size < sizeof(pycapio_capi)) {
        PyErr_Format(PyExc_ImportError,
                     "pycapio C API version %u.%u is incompatible with this extension, built for "
                     "%u.%u: its function table has %u bytes, the extension needs %u (upgrade pycapio)",
                     (unsigned int)api->header.abi_major, (unsigned int)api->header.abi_minor,
                     (unsigned int)PYCAPIO_CAPI_ABI_MAJOR, (unsigned int)PYCAPIO_CAPI_ABI_MINOR,
                     (unsigned int)api->header.struct_size, (unsigned int)sizeof(pycapio_capi));
        return NULL;
    }
    return api;
}

/* Import pycapio._pycapio and return its checked C API table, or NULL with an ImportError set
 * (in the style of numpy's import_array()). GIL required. The table is static in pycapio's
 * extension, which is never unloaded: keep the pointer for the life of the process. */
static inline const pycapio_capi *pycapio_import_capi(void)
{
    const pycapio_capi *api;
    PyObject *capsule;
    PyObject *module = PyImport_ImportModule(PYCAPIO_CAPI_MODULE);
    if (module == NULL) {
        return NULL; /* ImportError (ModuleNotFoundError) is set */
    }
    capsule = PyObject_GetAttrString(module, PYCAPIO_CAPI_ATTR);
    Py_DECREF(module);
    if (capsule == NULL) {
        if (PyErr_ExceptionMatches(PyExc_AttributeError)) {
            PyErr_Clear();
            PyErr_SetString(PyExc_ImportError,
                            "pycapio C API: " PYCAPIO_CAPI_MODULE " has no " PYCAPIO_CAPI_ATTR
                            " (this pycapio predates the C API: upgrade it)");
        }
        return NULL;
    }
    api = pycapio_capi_from_capsule(capsule);
    Py_DECREF(capsule);
    return api;
}

#endif /* PYCAPIO_CAPI_NO_PYTHON */

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* PYCAPIO_CAPI_H */
