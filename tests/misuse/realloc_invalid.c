/* Misuse case: realloc() of a stack address.  realloc must perform the
 * same ownership check as free() and name itself in the report. */
#include <stdlib.h>
#include <string.h>

static void *volatile hidden;
static void *volatile result;

__attribute__((noinline)) static void *resize(void *p, size_t n)
{
    /* Opaque to the optimiser and to -fanalyzer alike. */
    __asm__ volatile("" : "+r"(p));
    return realloc(p, n);
}

int main(void)
{
    char buf[128];

    memset(buf, 0, sizeof buf);
    hidden = buf;
    result = resize(hidden, 512);
    return buf[0];
}
