/* Misuse case: realloc() of an interior pointer, 64 bytes into a
 * 256-byte block that hakmem owns. */
#include <stdlib.h>

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
    char *p = malloc(256);

    if (p == NULL)
        return 2;
    hidden = p + 64;
    result = resize(hidden, 512);
    return 0;
}
