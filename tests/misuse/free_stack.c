/* Misuse case: free() of an address on the stack, which no allocator
 * owns.  hakmem must report "invalid pointer", not hand it to libc. */
#include <stdlib.h>
#include <string.h>

static void *volatile hidden;

__attribute__((noinline)) static void release(void *p)
{
    /* Opaque to the optimiser and to -fanalyzer alike. */
    __asm__ volatile("" : "+r"(p));
    free(p);
}

int main(void)
{
    char buf[256];

    memset(buf, 0, sizeof buf);
    hidden = buf;
    release(hidden);
    return buf[0];
}
