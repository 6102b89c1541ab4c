/*
 * thread-churn.c - thousands of short-lived threads, written from scratch
 * for hakmem.
 *
 *   thread-churn [threads_total [concurrent [allocs_per_thread]]]
 *                defaults: 30000 2 64
 *
 * Threads are started `concurrent` at a time and joined before the next
 * group starts.  Each allocates `allocs_per_thread` blocks of 16..512
 * bytes, frees three in four of them itself and leaves the rest to the main
 * thread, which frees them after the thread has been joined -- that is,
 * after its owner is dead.
 *
 * What this measures is an allocator's per-thread set-up and tear-down: a
 * thread heap created on the first malloc, its caches handed back when the
 * thread exits, and blocks freed into the heap of a thread that no longer
 * exists being reclaimed rather than leaked.  An allocator that does real
 * work per thread (mapping a heap, scanning all classes at exit) is slow
 * here; one that leaks dead heaps shows it in peak RSS.
 *
 * ops = threads run.  Exit 3 on corruption.
 */
#define _GNU_SOURCE
#include "bench.h"

#define MAX_CONCURRENT 256

static uint32_t allocs_per_thread;

struct worker {
    pthread_t tid;
    uint64_t seed;
    void **leftover; /* allocated by the thread, freed by main */
    uint32_t nleft;
};

static void *short_life(void *arg)
{
    struct worker *w = arg;
    uint64_t rng = bench_rng_seed(w->seed);
    void **blocks = bench_malloc(allocs_per_thread * sizeof(void *));

    for (uint32_t i = 0; i < allocs_per_thread; i++) {
        size_t n = bench_range(&rng, 16, 512);
        blocks[i] = bench_malloc(n);
        bench_tag(blocks[i], n);
    }
    /* Free three in four here; move the others to the front of the array,
     * which main frees along with them. */
    uint32_t kept = 0;
    for (uint32_t i = 0; i < allocs_per_thread; i++) {
        if (i % 4 == 3) {
            blocks[kept++] = blocks[i];
        } else {
            bench_tag_check(blocks[i], "worker");
            free(blocks[i]);
        }
    }
    w->leftover = blocks;
    w->nleft = kept;
    return NULL;
}

int main(int argc, char **argv)
{
    bench_name = "thread-churn";
    if (argc > 4)
        bench_die(BENCH_EXIT_USAGE,
                  "usage: thread-churn [threads_total [concurrent [allocs_per_thread]]]");
    uint64_t total = bench_arg(argc, argv, 1, "threads_total", 30000, 1, UINT64_C(1) << 32);
    unsigned concurrent =
        (unsigned)bench_arg(argc, argv, 2, "concurrent", 2, 1, MAX_CONCURRENT);
    allocs_per_thread = (uint32_t)bench_arg(argc, argv, 3, "allocs_per_thread", 64, 1, 1u << 20);

    struct worker w[MAX_CONCURRENT];
    uint64_t started = 0;

    double t0 = bench_now();
    while (started < total) {
        unsigned group = total - started < concurrent ? (unsigned)(total - started) : concurrent;
        for (unsigned i = 0; i < group; i++) {
            w[i].seed = started + i;
            w[i].leftover = NULL;
            bench_thread_create(&w[i].tid, short_life, &w[i]);
        }
        for (unsigned i = 0; i < group; i++) {
            bench_thread_join(w[i].tid);
            for (uint32_t k = 0; k < w[i].nleft; k++) {
                bench_tag_check(w[i].leftover[k], "main, after the owner exited");
                free(w[i].leftover[k]);
            }
            free(w[i].leftover);
        }
        started += group;
    }
    double t1 = bench_now();

    bench_result(t1 - t0, total, "concurrent=%u", concurrent);
    return 0;
}
