/*
 * cache-thrash.c - active false sharing benchmark (the cache-thrash pattern
 * from the Hoard papers), written from scratch for hakmem.
 *
 *   cache-thrash [threads [iterations [object_size [repetitions]]]]
 *                defaults: 2 5000000 8 100
 *
 * Each thread, on its own, repeatedly allocates one small object, writes
 * every byte of it `repetitions` times, checks it and frees it.  No data is
 * shared, so the threads should scale perfectly -- unless the allocator
 * hands objects that sit in the same cache line to different threads (a
 * single shared free list, or slabs shared between threads does that).
 * Then every write bounces the line between cores and the run slows down
 * by an order of magnitude.  Per-thread heaps with per-thread slabs avoid
 * it by construction; this benchmark proves they do.
 *
 * ops = objects allocated (threads * iterations).  Exit 3 on corruption.
 */
#define _GNU_SOURCE
#include "bench.h"

#define MAX_THREADS 256

static uint64_t iterations, repetitions;
static size_t object_size;

struct worker {
    pthread_t tid;
    unsigned id;
};

static void *thrash(void *arg)
{
    struct worker *w = arg;

    for (uint64_t i = 0; i < iterations; i++) {
        /* volatile: every write must reach the cache line, as a real
         * program's stores to its own object would; otherwise the compiler
         * folds the repetitions into one store. */
        volatile unsigned char *p = bench_malloc(object_size);
        for (uint64_t r = 0; r < repetitions; r++)
            for (size_t k = 0; k < object_size; k++)
                p[k] = (unsigned char)(k + r + w->id);
        unsigned char want = (unsigned char)(repetitions - 1 + w->id);
        for (size_t k = 0; k < object_size; k++)
            if (p[k] != (unsigned char)(want + k))
                bench_corrupt("thread %u: object %p byte %zu is 0x%02x, expected 0x%02x",
                              w->id, (void *)p, k, p[k], (unsigned char)(want + k));
        free((void *)p);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    bench_name = "cache-thrash";
    if (argc > 5)
        bench_die(BENCH_EXIT_USAGE,
                  "usage: cache-thrash [threads [iterations [object_size [repetitions]]]]");
    unsigned threads = (unsigned)bench_arg(argc, argv, 1, "threads", 2, 1, MAX_THREADS);
    iterations = bench_arg(argc, argv, 2, "iterations", 5000000, 1, UINT64_C(1) << 40);
    object_size = bench_arg(argc, argv, 3, "object_size", 8, 1, 1 << 20);
    repetitions = bench_arg(argc, argv, 4, "repetitions", 100, 1, UINT64_C(1) << 30);

    struct worker w[MAX_THREADS];
    double t0 = bench_now();
    for (unsigned i = 0; i < threads; i++) {
        w[i].id = i;
        bench_thread_create(&w[i].tid, thrash, &w[i]);
    }
    for (unsigned i = 0; i < threads; i++)
        bench_thread_join(w[i].tid);
    double t1 = bench_now();

    bench_result(t1 - t0, iterations * threads, "threads=%u object_size=%zu", threads,
                 object_size);
    return 0;
}
