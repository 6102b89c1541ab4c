/*
 * idle-threads.c - what threads that went idle keep resident, written from
 * scratch for hakmem.
 *
 *   idle-threads [threads [blocks [kib [wait_ms]]]]
 *             defaults: 4 60 200 300
 *
 * Each worker allocates `blocks` blocks of `kib` KiB, writes them, frees
 * them all and then stays alive and idle (blocked on a condition variable)
 * until the end.  Meanwhile the main thread:
 *   1. reads VmRSS once every worker is idle (freed_kb);
 *   2. waits `wait_ms` -- longer than the allocator's purge delay, so that
 *      memory kept "for a while" should be back -- then makes a few
 *      allocator calls of its own (an allocator without a background thread
 *      can do delayed work only when some thread calls it) and reads VmRSS
 *      (idle_kb);
 *   3. calls malloc_trim(0) and reads VmRSS (trim_kb).
 * base_kb is VmRSS before the workers start; the program's live bytes
 * after phase 1 are nil, so idle_kb - base_kb is what the idle threads pin
 * (their stacks included, a few KiB each).
 */
#define _GNU_SOURCE
#include "bench.h"

#include <malloc.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static unsigned idle, done;
static size_t blocks, block_bytes;

static void *worker(void *arg)
{
    (void)arg;
    void **p = bench_malloc(blocks * sizeof *p);
    for (size_t i = 0; i < blocks; i++) {
        p[i] = bench_malloc(block_bytes);
        memset(p[i], (int)i, block_bytes);
    }
    for (size_t i = 0; i < blocks; i++)
        free(p[i]);
    free(p);
    pthread_mutex_lock(&lock);
    idle++;
    pthread_cond_broadcast(&cond);
    while (!done)
        pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
    return NULL;
}

int main(int argc, char **argv)
{
    bench_name = "idle-threads";
    if (argc > 5)
        bench_die(BENCH_EXIT_USAGE, "usage: idle-threads [threads [blocks [kib [wait_ms]]]]");
    unsigned nthreads = (unsigned)bench_arg(argc, argv, 1, "threads", 4, 1, 1024);
    blocks = bench_arg(argc, argv, 2, "blocks", 60, 1, 1 << 20);
    block_bytes = bench_arg(argc, argv, 3, "kib", 200, 1, 1 << 20) << 10;
    uint64_t wait_ms = bench_arg(argc, argv, 4, "wait_ms", 300, 0, 600000);

    pthread_t *t = calloc(nthreads, sizeof *t);
    if (t == NULL)
        bench_die(1, "calloc failed");
    uint64_t base_kb = bench_status_kb("VmRSS");
    double t0 = bench_now();
    for (unsigned i = 0; i < nthreads; i++)
        bench_thread_create(&t[i], worker, NULL);
    pthread_mutex_lock(&lock);
    while (idle < nthreads)
        pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
    double t1 = bench_now();
    uint64_t freed_kb = bench_status_kb("VmRSS");

    struct timespec ts = {(time_t)(wait_ms / 1000), (long)(wait_ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    /* The main thread's own work after the wait: one block of the workers'
     * size and one small one. */
    for (int i = 0; i < 2; i++) {
        void *a = bench_malloc(block_bytes), *b = bench_malloc(64);
        bench_escape(a);
        bench_escape(b);
        free(b);
        free(a);
    }
    uint64_t idle_kb = bench_status_kb("VmRSS");
    malloc_trim(0);
    uint64_t trim_kb = bench_status_kb("VmRSS");

    pthread_mutex_lock(&lock);
    done = 1;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
    for (unsigned i = 0; i < nthreads; i++)
        bench_thread_join(t[i]);
    free(t);
    bench_result(t1 - t0, (uint64_t)nthreads * blocks,
                 "base_kb=%" PRIu64 " freed_kb=%" PRIu64 " idle_kb=%" PRIu64
                 " trim_kb=%" PRIu64,
                 base_kb, freed_kb, idle_kb, trim_kb);
    return 0;
}
