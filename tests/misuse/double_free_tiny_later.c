/* Misuse case: a 32-byte block is freed, the program keeps allocating,
 * then frees it again.  Two things could make the second free() valid
 * and the test meaningless, so both are ruled out: a later 32-byte (or
 * smaller) malloc() could hand the same slot back, so the churn only uses
 * larger sizes; and a slab left empty could be given back or reused for
 * another class, so a second 32-byte block stays live beside the first. */
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
    /* All above 32 bytes: none of these can be served from a 32-byte slot. */
    static const size_t other_sizes[] = { 40, 96, 200, 512, 1000, 4096, 70000 };
    enum { ROUNDS = 64, N = sizeof other_sizes / sizeof other_sizes[0] };
    void *live[N];
    void *keeper = malloc(32);

    hidden = malloc(32);
    if (keeper == NULL || hidden == NULL)
        return 2;
    release(hidden);

    /* Churn: live blocks and freed blocks, so free lists and slabs move. */
    for (int r = 0; r < ROUNDS; r++) {
        for (size_t i = 0; i < N; i++) {
            live[i] = malloc(other_sizes[i]);
            if (live[i] == NULL)
                return 2;
            memset(live[i], 0x5a, other_sizes[i]);
        }
        for (size_t i = 0; i < N; i++)
            free(live[(i + (size_t)r) % N]);
    }

    release(hidden);
    free(keeper);
    return 0;
}
