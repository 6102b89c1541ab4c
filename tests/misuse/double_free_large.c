/* Misuse case: an 8 MiB block, served by the large (mmap) tier, is freed
 * twice.  After the first free() the mapping may be cached or already
 * returned to the OS, so the driver accepts either a "double free" or an
 * "invalid pointer" report; a crash or a silent return is a failure. */
#include <stdlib.h>

static void *volatile hidden;

__attribute__((noinline)) static void release(void *p)
{
    /* Opaque to the optimiser and to -fanalyzer alike. */
    __asm__ volatile("" : "+r"(p));
    free(p);
}

int main(void)
{
    hidden = malloc((size_t)8 << 20);
    if (hidden == NULL)
        return 2;
    release(hidden);
    release(hidden);
    return 0;
}
