/* Misuse case: malloc_usable_size() of a global address.  Returning a
 * made-up size here would let callers overrun memory they do not own, so
 * hakmem must refuse like free() does. */
#include <malloc.h>
#include <stdlib.h>

static char global_buf[256];
static void *volatile hidden;
static volatile size_t result;

__attribute__((noinline)) static size_t query(void *p)
{
    /* Opaque to the optimiser and to -fanalyzer alike. */
    __asm__ volatile("" : "+r"(p));
    return malloc_usable_size(p);
}

int main(void)
{
    void *warm = malloc(64);

    hidden = global_buf;
    result = query(hidden);
    free(warm);
    return 0;
}
