/*
 * cache-scratch.c - passive false sharing benchmark (the cache-scratch
 * pattern from the Hoard papers), written from scratch for hakmem.
 *
 *   cache-scratch [threads [iterations [object_size [repetitions]]]]
 *                 defaults: 2 5000000 8 100
 *
 * The main thread allocates one small object per thread back to back, so
 * they very likely share a cache line, and hands one to each thread.  Each
 * thread frees the object it was given and then, like cache-thrash,
 * repeatedly allocates an object of the same size, writes every byte of it
 * `repetitions` times, checks it and frees it.
 *
 * The trap: an allocator that puts a freed block on the *freeing* thread's
 * list hands that very block straight back to the thread, so all threads
 * keep writing into the main thread's shared cache line for the whole run.
 * An allocator that returns a remote free to the owning slab (hakmem does)
 * gives each thread objects from its own slab instead.
 *
 * ops = objects allocated by the workers (threads * iterations).
 * Exit 3 on corruption.
 */
#define _GNU_SOURCE
#include "bench.h"

#define MAX_THREADS 256

static uint64_t iterations, repetitions;
static size_t object_size;

struct worker {
    pthread_t tid;
    unsigned id;
    unsigned char *gift; /* allocated by main, freed by this thread */
};

static void *scratch(void *arg)
{
    struct worker *w = arg;

    for (size_t k = 0; k < object_size; k++)
        if (w->gift[k] != (unsigned char)(w->id * 7 + k))
            bench_corrupt("thread %u: object from main %p byte %zu changed", w->id,
                          (void *)w->gift, k);
    free(w->gift);

    for (uint64_t i = 0; i < iterations; i++) {
        /* volatile so that each repetition really stores to the line. */
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
    bench_name = "cache-scratch";
    if (argc > 5)
        bench_die(BENCH_EXIT_USAGE,
                  "usage: cache-scratch [threads [iterations [object_size [repetitions]]]]");
    unsigned threads = (unsigned)bench_arg(argc, argv, 1, "threads", 2, 1, MAX_THREADS);
    iterations = bench_arg(argc, argv, 2, "iterations", 5000000, 1, UINT64_C(1) << 40);
    object_size = bench_arg(argc, argv, 3, "object_size", 8, 1, 1 << 20);
    repetitions = bench_arg(argc, argv, 4, "repetitions", 100, 1, UINT64_C(1) << 30);

    struct worker w[MAX_THREADS];
    /* Allocated back to back before any thread starts: adjacent blocks of
     * one slab, the setup that invites passive false sharing. */
    for (unsigned i = 0; i < threads; i++) {
        w[i].id = i;
        w[i].gift = bench_malloc(object_size);
        for (size_t k = 0; k < object_size; k++)
            w[i].gift[k] = (unsigned char)(i * 7 + k);
    }

    double t0 = bench_now();
    for (unsigned i = 0; i < threads; i++)
        bench_thread_create(&w[i].tid, scratch, &w[i]);
    for (unsigned i = 0; i < threads; i++)
        bench_thread_join(w[i].tid);
    double t1 = bench_now();

    bench_result(t1 - t0, iterations * threads, "threads=%u object_size=%zu", threads,
                 object_size);
    return 0;
}
