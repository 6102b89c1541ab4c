/*
 * Shared by the integration tests: a position-dependent fill pattern for
 * heap blocks, so a test can tell whether a block kept its contents while
 * it was handed between threads, realloc'ed, or inherited across fork().
 */
#ifndef HAKMEM_TESTS_INTEGRATION_PATTERN_H
#define HAKMEM_TESTS_INTEGRATION_PATTERN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define PAT_NONE ((size_t)-1)

/* splitmix64 finaliser: keys of neighbouring blocks must not look alike. */
static inline uint64_t pat_mix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/*
 * Mixing the address in means two live blocks that wrongly overlap carry
 * different patterns, so the overlap is seen when either is verified.
 */
static inline uint64_t pat_key(const void *p, size_t n, uint64_t seed)
{
    return pat_mix((uint64_t)(uintptr_t)p ^ pat_mix((uint64_t)n ^ pat_mix(seed)));
}

/*
 * The value of a byte depends only on (key, offset), not on where the block
 * lives, so a block moved by realloc can be checked with its old key.
 */
static inline uint64_t pat_word(uint64_t key, size_t word_index)
{
    return key ^ ((uint64_t)word_index * 0xD6E8FEB86659FD93ull);
}

static inline void pat_fill(void *block, size_t from, size_t to, uint64_t key)
{
    unsigned char *b = block;
    size_t o = from;

    while (o < to) {
        size_t off = o & 7;
        size_t len = 8 - off;
        uint64_t w = pat_word(key, o >> 3);

        if (len > to - o)
            len = to - o;
        if (len == 8)
            memcpy(b + o, &w, 8);
        else
            memcpy(b + o, (unsigned char *)&w + off, len);
        o += len;
    }
}

/* Returns the offset of the first wrong byte, or PAT_NONE. */
static inline size_t pat_check(const void *block, size_t from, size_t to,
                               uint64_t key)
{
    const unsigned char *b = block;
    size_t o = from;

    while (o < to) {
        size_t off = o & 7;
        size_t len = 8 - off;
        uint64_t w = pat_word(key, o >> 3);
        const unsigned char *want = (const unsigned char *)&w + off;

        if (len > to - o)
            len = to - o;
        if (memcmp(b + o, want, len) != 0) {
            for (size_t i = 0; i < len; i++)
                if (b[o + i] != want[i])
                    return o + i;
        }
        o += len;
    }
    return PAT_NONE;
}

/* Small deterministic PRNG (xorshift64*), one state per thread. */
static inline uint64_t pat_rand(uint64_t *state)
{
    uint64_t x = *state;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

#endif
