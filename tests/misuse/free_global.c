/* Misuse case: free() of an address in the program's own .bss, which no
 * allocator owns. */
#include <stdlib.h>

static char global_buf[256];
static void *volatile hidden;

__attribute__((noinline)) static void release(void *p)
{
    /* Opaque to the optimiser and to -fanalyzer alike. */
    __asm__ volatile("" : "+r"(p));
    free(p);
}

int main(void)
{
    /* Allocate first so the heap exists and the lookup cannot take a
     * "nothing allocated yet" shortcut; free_before_alloc covers that. */
    void *warm = malloc(64);

    hidden = global_buf;
    release(hidden);
    free(warm);
    return 0;
}
