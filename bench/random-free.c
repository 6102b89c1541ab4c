/*
 * random-free.c - a million small blocks allocated, then freed in random
 * order, so that consecutive frees land nowhere near each other.  Written
 * from scratch for hakmem.
 *
 *   random-free [blocks [rounds [max_size [seed]]]]
 *               defaults: 1000000 6 256 1
 *
 * Each round allocates `blocks` blocks of 16..max_size bytes (log-uniform:
 * each power of two gets the same share), tagging each, then shuffles the
 * array of pointers (Fisher-Yates, from the fixed seed) and frees them in
 * that order, checking each block's tags first.  The shuffle is not timed.
 * From the second round on, the allocations are served from memory freed
 * in random order, so their addresses are scattered too.
 *
 * Frees in allocation order walk memory sequentially and find the slab or
 * page metadata they need already in the cache; random order defeats that.
 * What this measures is how many cache lines and pages (TLB entries) a
 * free touches beyond the block itself, and how an allocator copes with
 * free lists whose order has no locality.
 *
 * time_s = allocation plus free time, summed over the rounds; alloc_s and
 * free_s are the two parts.  ops = blocks freed (blocks x rounds).  Exit 3
 * on corruption.
 */
#define _GNU_SOURCE
#include "bench.h"

int main(int argc, char **argv)
{
    bench_name = "random-free";
    if (argc > 5)
        bench_die(BENCH_EXIT_USAGE, "usage: random-free [blocks [rounds [max_size [seed]]]]");
    uint32_t blocks = (uint32_t)bench_arg(argc, argv, 1, "blocks", 1000000, 1, 1u << 28);
    uint64_t rounds = bench_arg(argc, argv, 2, "rounds", 6, 1, 1u << 20);
    size_t max_size = (size_t)bench_arg(argc, argv, 3, "max_size", 256, 16, 1u << 20);
    uint64_t seed = bench_arg(argc, argv, 4, "seed", 1, 0, UINT64_MAX);

    void **blk = bench_malloc((size_t)blocks * sizeof(void *));
    uint64_t rng = bench_rng_seed(seed);
    double alloc_s = 0, free_s = 0;

    for (uint64_t r = 0; r < rounds; r++) {
        double t0 = bench_now();
        for (uint32_t i = 0; i < blocks; i++) {
            size_t n = bench_logsize(&rng, 16, max_size);
            void *p = bench_malloc(n);
            bench_tag(p, n);
            blk[i] = p;
        }
        double t1 = bench_now();

        for (uint32_t i = blocks - 1; i > 0; i--) {
            uint32_t j = bench_below(&rng, i + 1);
            void *t = blk[i];
            blk[i] = blk[j];
            blk[j] = t;
        }

        double t2 = bench_now();
        for (uint32_t i = 0; i < blocks; i++) {
            bench_tag_check(blk[i], "random-order free");
            free(blk[i]);
        }
        double t3 = bench_now();
        alloc_s += t1 - t0;
        free_s += t3 - t2;
    }
    free(blk);

    bench_result(alloc_s + free_s, (uint64_t)blocks * rounds, "alloc_s=%.6f free_s=%.6f",
                 alloc_s, free_s);
    return 0;
}
