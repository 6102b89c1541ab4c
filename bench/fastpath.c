/*
 * fastpath.c - malloc/free fast-path loops (built as bench/fastpath-loop),
 * written from scratch for hakmem.
 *
 *   fastpath-loop mix   [rounds]            default rounds: 800000
 *   fastpath-loop pair  SIZE ITERATIONS
 *   fastpath-loop batch SIZE ITERATIONS     ITERATIONS a multiple of 100
 *   fastpath-loop none  SIZE ITERATIONS
 *
 * mix: the timing benchmark.  Each round does one malloc+free pair for
 *   every size of a ladder that covers the small size classes (8..1024 in
 *   8-byte steps) and the medium ones (1 KiB..32 KiB, 16 steps per power of
 *   two): nothing survives a pair, so this is the cost of the fast path
 *   itself across many classes, including the class lookup, with the caches
 *   warm.  ops = malloc+free pairs.
 *
 * pair, batch and none: the instruction-count probes driven by bench/fastpath
 *   under callgrind.  pair does ITERATIONS back-to-back malloc(SIZE)/free
 *   pairs (a free list that is pushed and popped at its head); batch
 *   allocates 100 blocks and then frees them in allocation order (FIFO, so
 *   the free list is walked in the other direction and the thread cache
 *   has to hold 100 blocks), ITERATIONS/100 times; none is the same loop
 *   with a static buffer instead of malloc, so the loop's own instructions
 *   can be subtracted.  bench/fastpath runs each with N and 2N iterations
 *   and divides the difference by N, which cancels start-up and the
 *   first-touch slow paths.  ops = malloc+free pairs.
 *
 * Every block gets a byte written at its start and checked before it is
 * freed: one store, so the probe measures the allocator, not memset.
 * Exit 3 on corruption.
 */
#define _GNU_SOURCE
#include "bench.h"

#define BATCH 100
#define LADDER_MAX 256

static size_t ladder[LADDER_MAX];
static unsigned ladder_len;

static void build_ladder(void)
{
    for (size_t s = 8; s <= 1024; s += 8)
        ladder[ladder_len++] = s;
    for (size_t base = 1024; base < 32768; base *= 2)
        for (size_t k = 1; k <= 16; k++)
            ladder[ladder_len++] = base + base * k / 16;
}

static inline void touch(void *p, unsigned char v)
{
    *(volatile unsigned char *)p = v;
}

static inline void check(void *p, unsigned char v)
{
    if (*(volatile unsigned char *)p != v)
        bench_corrupt("block %p lost its first byte", p);
}

static uint64_t run_mix(uint64_t rounds)
{
    uint64_t pairs = 0;
    for (uint64_t r = 0; r < rounds; r++) {
        for (unsigned i = 0; i < ladder_len; i++) {
            void *p = malloc(ladder[i]);
            if (p == NULL)
                bench_die(1, "malloc(%zu) failed", ladder[i]);
            touch(p, (unsigned char)i);
            bench_escape(p);
            check(p, (unsigned char)i);
            free(p);
        }
        pairs += ladder_len;
    }
    return pairs;
}

static void run_pair(size_t size, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++) {
        void *p = malloc(size);
        if (p == NULL)
            bench_die(1, "malloc(%zu) failed", size);
        touch(p, (unsigned char)i);
        bench_escape(p);
        check(p, (unsigned char)i);
        free(p);
    }
}

static void run_batch(size_t size, uint64_t n)
{
    void *blocks[BATCH];
    for (uint64_t i = 0; i < n / BATCH; i++) {
        for (unsigned k = 0; k < BATCH; k++) {
            void *p = malloc(size);
            if (p == NULL)
                bench_die(1, "malloc(%zu) failed", size);
            touch(p, (unsigned char)k);
            blocks[k] = p;
        }
        bench_escape(blocks);
        for (unsigned k = 0; k < BATCH; k++) {
            check(blocks[k], (unsigned char)k);
            free(blocks[k]);
        }
    }
}

/* The pair loop with the allocator taken out: what is left is the loop,
 * the store and the check, to be subtracted from pair's count. */
static void run_none(size_t size, uint64_t n)
{
    static unsigned char buf[65536];
    (void)size;
    for (uint64_t i = 0; i < n; i++) {
        void *p = buf + (i & 1);
        touch(p, (unsigned char)i);
        bench_escape(p);
        check(p, (unsigned char)i);
    }
}

int main(int argc, char **argv)
{
    bench_name = "fastpath";
    const char *usage = "usage: fastpath-loop mix [rounds] | {pair|batch|none} SIZE ITERATIONS";
    if (argc < 2)
        bench_die(BENCH_EXIT_USAGE, "%s", usage);
    const char *mode = argv[1];
    uint64_t ops;
    double t0, t1;

    if (strcmp(mode, "mix") == 0) {
        if (argc > 3)
            bench_die(BENCH_EXIT_USAGE, "%s", usage);
        uint64_t rounds = bench_arg(argc, argv, 2, "rounds", 800000, 1, UINT64_C(1) << 40);
        build_ladder();
        t0 = bench_now();
        ops = run_mix(rounds);
        t1 = bench_now();
        bench_name = "fastpath-mix";
        bench_result(t1 - t0, ops, "sizes=%u", ladder_len);
        return 0;
    }

    if (argc != 4)
        bench_die(BENCH_EXIT_USAGE, "%s", usage);
    size_t size = bench_arg(argc, argv, 2, "SIZE", 0, 1, 1 << 20);
    uint64_t n = bench_arg(argc, argv, 3, "ITERATIONS", 0, 1, UINT64_C(1) << 40);
    t0 = bench_now();
    if (strcmp(mode, "pair") == 0) {
        run_pair(size, n);
        bench_name = "fastpath-pair";
    } else if (strcmp(mode, "batch") == 0) {
        if (n % BATCH != 0)
            bench_die(BENCH_EXIT_USAGE, "batch: ITERATIONS must be a multiple of %d", BATCH);
        run_batch(size, n);
        bench_name = "fastpath-batch";
    } else if (strcmp(mode, "none") == 0) {
        run_none(size, n);
        bench_name = "fastpath-none";
    } else {
        bench_die(BENCH_EXIT_USAGE, "unknown mode '%s'; %s", mode, usage);
    }
    t1 = bench_now();
    ops = n;
    bench_result(t1 - t0, ops, "size=%zu", size);
    return 0;
}
