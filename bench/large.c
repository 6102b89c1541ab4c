/*
 * large.c - large blocks (256 KiB .. 32 MiB) allocated, touched and freed,
 * written from scratch for hakmem.
 *
 *   large [iterations [live]]
 *         defaults: 1000 4
 *
 * A ring of `live` slots; each iteration replaces the block in the next
 * slot with a new one of a log-uniform size in 256 KiB .. 32 MiB, and
 * writes one word in every 4 KiB page of it, as a program filling a buffer
 * would.  The written words are checked before the block is freed.
 *
 * This is the large tier: every allocation is an mmap unless the allocator
 * keeps freed large blocks around, and every touched page is a page fault
 * unless the memory it hands out is already resident.  A cache that is too
 * small pays for mmap, munmap and faults; one that is too big shows in RSS.
 *
 * ops = blocks allocated.  Exit 3 on corruption.
 */
#define _GNU_SOURCE
#include "bench.h"

#define PAGE 4096
#define MAX_LIVE 64

struct big {
    unsigned char *p;
    size_t n;
    uint64_t key;
};

static void touch_all(struct big *b)
{
    /* o + 16 <= n: a page word never overlaps the tail word. */
    for (size_t o = 0; o + 16 <= b->n; o += PAGE) {
        uint64_t v = b->key + o;
        memcpy(b->p + o, &v, 8);
    }
    uint64_t v = ~b->key;
    memcpy(b->p + b->n - 8, &v, 8);
}

static void check_all(const struct big *b)
{
    for (size_t o = 0; o + 16 <= b->n; o += PAGE) {
        uint64_t v;
        memcpy(&v, b->p + o, 8);
        if (v != b->key + o)
            bench_corrupt("block %p (%zu bytes): page at offset %zu changed", (void *)b->p, b->n,
                          o);
    }
    uint64_t v;
    memcpy(&v, b->p + b->n - 8, 8);
    if (v != ~b->key)
        bench_corrupt("block %p (%zu bytes): last word changed", (void *)b->p, b->n);
}

int main(int argc, char **argv)
{
    bench_name = "large";
    if (argc > 3)
        bench_die(BENCH_EXIT_USAGE, "usage: large [iterations [live]]");
    uint64_t iterations = bench_arg(argc, argv, 1, "iterations", 1000, 1, UINT64_C(1) << 32);
    unsigned live = (unsigned)bench_arg(argc, argv, 2, "live", 4, 1, MAX_LIVE);
    uint64_t rng = bench_rng_seed(256);
    struct big ring[MAX_LIVE] = {{0}};
    uint64_t touched = 0;

    double t0 = bench_now();
    for (uint64_t i = 0; i < iterations; i++) {
        struct big *b = &ring[i % live];
        if (b->p != NULL) {
            check_all(b);
            free(b->p);
        }
        b->n = bench_logsize(&rng, (size_t)256 << 10, (size_t)32 << 20);
        b->p = bench_malloc(b->n);
        b->key = bench_rand(&rng);
        touch_all(b);
        touched += b->n;
    }
    for (unsigned k = 0; k < live; k++)
        if (ring[k].p != NULL) {
            check_all(&ring[k]);
            free(ring[k].p);
        }
    double t1 = bench_now();

    bench_result(t1 - t0, iterations, "touched_mib=%" PRIu64, touched >> 20);
    return 0;
}
