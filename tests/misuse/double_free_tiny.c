/* Misuse case: a tiny (32-byte) block is freed twice in a row.
 * The block still sits at the head of its thread-cache free list, the
 * easiest double free there is to catch; hakmem must report it and abort. */
#include <stdlib.h>

/* The pointer goes through a volatile so the compiler can neither drop
 * the second free() nor diagnose it at compile time. */
static void *volatile hidden;

__attribute__((noinline)) static void release(void *p)
{
    /* Opaque to the optimiser and to -fanalyzer alike. */
    __asm__ volatile("" : "+r"(p));
    free(p);
}

int main(void)
{
    hidden = malloc(32);
    if (hidden == NULL)
        return 2;
    release(hidden);
    release(hidden);
    return 0;
}
