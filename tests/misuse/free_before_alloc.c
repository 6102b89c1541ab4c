/* Misuse case: the program's very first allocator call is a free() of a
 * global address, so it may reach hakmem before the program has
 * allocated anything (the loader or libc may have; that is fine).  The
 * lazy initialisation path must still classify the pointer correctly. */
#include <stdlib.h>

static char global_buf[64];
static void *volatile hidden;

__attribute__((noinline)) static void release(void *p)
{
    /* Opaque to the optimiser and to -fanalyzer alike. */
    __asm__ volatile("" : "+r"(p));
    free(p);
}

int main(void)
{
    hidden = global_buf;
    release(hidden);
    return 0;
}
