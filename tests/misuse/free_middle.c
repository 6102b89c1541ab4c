/* Misuse case: free() of an interior pointer, 64 bytes into a 256-byte
 * block.  The address lies inside memory hakmem owns, so a lookup by
 * region alone would accept it; the block boundary check must not. */
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
    char *p = malloc(256);

    if (p == NULL)
        return 2;
    hidden = p + 64;
    release(hidden);
    return 0;
}
