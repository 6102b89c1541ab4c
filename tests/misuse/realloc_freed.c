/* Misuse case: realloc() of a 32-byte block that was already freed, to a
 * size it still fits: no new block is needed, so only a check of the
 * block itself can tell the program is using freed memory. */
#include <stdlib.h>

static void *volatile hidden;
static void *volatile result;

__attribute__((noinline)) static void *resize(void *p, size_t n)
{
    /* Opaque to the optimiser and to -fanalyzer alike. */
    __asm__ volatile("" : "+r"(p));
    return realloc(p, n);
}

__attribute__((noinline)) static void release(void *p)
{
    __asm__ volatile("" : "+r"(p));
    free(p);
}

int main(void)
{
    hidden = malloc(32);
    if (hidden == NULL)
        return 2;
    release(hidden);
    result = resize(hidden, 24);
    return 0;
}
