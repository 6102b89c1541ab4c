/* Misuse case: free() of p+1 for p = malloc(100), an off-by-one that is
 * not even aligned.  The driver also checks that the reported address is
 * odd, i.e. that hakmem prints the pointer as passed, not a rounded one. */
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
    char *p = malloc(100);

    if (p == NULL)
        return 2;
    hidden = p + 1;
    release(hidden);
    return 0;
}
