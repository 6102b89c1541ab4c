/* Misuse case: free() of a wild address that no mapping covers.  The
 * ownership lookup must answer "not ours" without touching the address,
 * so this must end in a report and abort(), never in SIGSEGV.  The
 * driver checks the exact address in the message. */
#include <stdint.h>
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
    hidden = (void *)(uintptr_t)0x1234567890abULL;
    release(hidden);
    return 0;
}
