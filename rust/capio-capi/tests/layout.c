/* Prints the layout of the C API's structs as the C compiler sees them: "name offset size" lines. */
#define PYCAPIO_CAPI_NO_PYTHON
#include "pycapio_capi.h"
#include <stdio.h>

#define FIELD(T, f) printf("%s.%s %zu %zu\n", #T, #f, offsetof(T, f), sizeof(((T *)0)->f))
#define SIZE(T) printf("%s %zu %zu\n", #T, (size_t)0, sizeof(T))

int main(void)
{
    SIZE(pycapio_stat);
    FIELD(pycapio_stat, size);
    FIELD(pycapio_stat, mtime_ns);
    FIELD(pycapio_stat, mode);
    FIELD(pycapio_stat, kind);
    FIELD(pycapio_stat, committed);
    FIELD(pycapio_stat, reserved);

    SIZE(pycapio_capi_header);
    FIELD(pycapio_capi_header, magic);
    FIELD(pycapio_capi_header, abi_major);
    FIELD(pycapio_capi_header, abi_minor);
    FIELD(pycapio_capi_header, struct_size);
    FIELD(pycapio_capi_header, reserved);

    SIZE(pycapio_capi);
    FIELD(pycapio_capi, header);
    FIELD(pycapio_capi, is_initialized);
    FIELD(pycapio_capi, get_capio_dir);
    FIELD(pycapio_capi, open);
    FIELD(pycapio_capi, close);
    FIELD(pycapio_capi, read);
    FIELD(pycapio_capi, write);
    FIELD(pycapio_capi, pread);
    FIELD(pycapio_capi, pwrite);
    FIELD(pycapio_capi, lseek);
    FIELD(pycapio_capi, fstat);
    FIELD(pycapio_capi, stat);
    FIELD(pycapio_capi, mkdir);
    FIELD(pycapio_capi, unlink);
    FIELD(pycapio_capi, rename);
    FIELD(pycapio_capi, listdir);
    FIELD(pycapio_capi, ftruncate);
    FIELD(pycapio_capi, rmdir);

    printf("PYCAPIO_CAPI_MAGIC 0 %u\n", (unsigned)PYCAPIO_CAPI_MAGIC);
    printf("PYCAPIO_CAPI_ABI_MAJOR 0 %u\n", (unsigned)PYCAPIO_CAPI_ABI_MAJOR);
    printf("PYCAPIO_CAPI_ABI_MINOR 0 %u\n", (unsigned)PYCAPIO_CAPI_ABI_MINOR);
    printf("PYCAPIO_KIND_FILE 0 %u\n", (unsigned)PYCAPIO_KIND_FILE);
    printf("PYCAPIO_KIND_DIR 0 %u\n", (unsigned)PYCAPIO_KIND_DIR);
    return 0;
}
