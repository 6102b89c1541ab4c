/*
 * realloc-grow.c - growing vectors with realloc, written from scratch for
 * hakmem.
 *
 *   realloc-grow [rounds]
 *                default: 150
 *
 * Each round grows two kinds of vector, several at a time and interleaved
 * so that a vector's neighbour is usually in the way of growing in place:
 *   - DOUBLE_VECS vectors doubling from 16 bytes to 4 MiB: the classic
 *     amortised growth of a dynamic array, crossing every tier from tiny
 *     through medium to large (mmap) blocks, where an allocator that can
 *     grow in place or remap avoids the copy;
 *   - STEP_VECS vectors growing by 8..64 bytes at a time up to 64 KiB: a
 *     string builder or a naive push_back, where realloc is called for
 *     nearly every element and almost every call should be "still fits in
 *     the block" or "grow within the size class".
 * Doubling vectors get one word written per 512 bytes of new space (and
 * their last word), so the copy is what costs, not the fill; stepping
 * vectors are filled completely.  After every realloc the last word
 * written before it is checked, and at the end of a round every written
 * word of every vector is checked before it is freed.
 *
 * ops = realloc calls.  Exit 3 on corruption.
 */
#define _GNU_SOURCE
#include "bench.h"

#define DOUBLE_VECS 2
#define DOUBLE_MAX ((size_t)4 << 20)
#define STEP_VECS 8
#define STEP_MAX ((size_t)64 << 10)
#define SAMPLE_WORDS 64 /* one word in 64 (512 bytes) of a doubling vector */

struct vec {
    uint64_t *w;
    size_t bytes; /* allocated size, a multiple of 8 */
    uint64_t id;
};

static uint64_t reallocs;

static inline uint64_t word_value(uint64_t id, size_t index)
{
    return (id * 0x9E3779B97F4A7C15ull) ^ (index * 0xD6E8FEB86659FD93ull) ^ 0x5A5A;
}

static void grow(struct vec *v, size_t bytes)
{
    void *p = realloc(v->w, bytes);
    if (p == NULL)
        bench_die(1, "realloc(%zu) failed", bytes);
    reallocs++;
    v->w = p;
}

static void check_word(const struct vec *v, size_t i, const char *where)
{
    if (v->w[i] != word_value(v->id, i))
        bench_corrupt("%s: vector %" PRIu64 " (%zu bytes at %p): word %zu is 0x%016" PRIx64
                      ", expected 0x%016" PRIx64, where, v->id, v->bytes, (void *)v->w, i,
                      v->w[i], word_value(v->id, i));
}

static void round_doubling(uint64_t round)
{
    struct vec v[DOUBLE_VECS];
    for (unsigned k = 0; k < DOUBLE_VECS; k++) {
        v[k] = (struct vec){.w = NULL, .bytes = 0, .id = round * 64 + k};
    }
    for (size_t bytes = 16; bytes <= DOUBLE_MAX; bytes *= 2) {
        for (unsigned k = 0; k < DOUBLE_VECS; k++) {
            size_t old_words = v[k].bytes / 8, new_words = bytes / 8;
            grow(&v[k], bytes);
            if (old_words > 0)
                check_word(&v[k], old_words - 1, "after doubling");
            for (size_t i = (old_words + SAMPLE_WORDS - 1) / SAMPLE_WORDS * SAMPLE_WORDS;
                 i < new_words; i += SAMPLE_WORDS)
                v[k].w[i] = word_value(v[k].id, i);
            v[k].w[new_words - 1] = word_value(v[k].id, new_words - 1);
            v[k].bytes = bytes;
        }
    }
    for (unsigned k = 0; k < DOUBLE_VECS; k++) {
        for (size_t i = 0; i < v[k].bytes / 8; i += SAMPLE_WORDS)
            check_word(&v[k], i, "doubling, final");
        free(v[k].w);
    }
}

static void round_stepping(uint64_t round, uint64_t *rng)
{
    struct vec v[STEP_VECS];
    unsigned growing = STEP_VECS;
    for (unsigned k = 0; k < STEP_VECS; k++)
        v[k] = (struct vec){.w = NULL, .bytes = 0, .id = round * 64 + 32 + k};
    while (growing > 0) {
        growing = 0;
        for (unsigned k = 0; k < STEP_VECS; k++) {
            if (v[k].bytes >= STEP_MAX)
                continue;
            growing++;
            size_t old_words = v[k].bytes / 8;
            size_t new_words = old_words + 1 + bench_below(rng, 8); /* +8..64 bytes */
            grow(&v[k], new_words * 8);
            if (old_words > 0)
                check_word(&v[k], old_words - 1, "after step");
            for (size_t i = old_words; i < new_words; i++)
                v[k].w[i] = word_value(v[k].id, i);
            v[k].bytes = new_words * 8;
        }
    }
    for (unsigned k = 0; k < STEP_VECS; k++) {
        for (size_t i = 0; i < v[k].bytes / 8; i++)
            check_word(&v[k], i, "stepping, final");
        free(v[k].w);
    }
}

int main(int argc, char **argv)
{
    bench_name = "realloc-grow";
    if (argc > 2)
        bench_die(BENCH_EXIT_USAGE, "usage: realloc-grow [rounds]");
    uint64_t rounds = bench_arg(argc, argv, 1, "rounds", 150, 1, UINT64_C(1) << 32);
    uint64_t rng = bench_rng_seed(7);

    double t0 = bench_now();
    for (uint64_t r = 0; r < rounds; r++) {
        round_doubling(r);
        round_stepping(r, &rng);
    }
    double t1 = bench_now();
    bench_result(t1 - t0, reallocs, "rounds=%" PRIu64, rounds);
    return 0;
}
