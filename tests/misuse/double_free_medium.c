/* Misuse case: a medium-tier block (20000 bytes: above the tiny tier,
 * far below the mmap-served large tier) is freed twice in a row. */
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
    hidden = malloc(20000);
    if (hidden == NULL)
        return 2;
    release(hidden);
    release(hidden);
    return 0;
}
