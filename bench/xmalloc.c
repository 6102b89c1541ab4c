/*
 * xmalloc.c - producer/consumer benchmark (in the spirit of Lever and
 * Boreham's xmalloc-test), written from scratch for hakmem.
 *
 *   xmalloc [threads [blocks [batch]]]
 *           defaults: 2 20000000 256
 *
 * `blocks` is the total over all producers, so runs with different thread
 * counts do the same work and their times compare directly.
 *
 * Half of the threads only allocate, the other half only free: producers
 * malloc batches of small blocks (16..512 bytes, mostly small), tag them and
 * push each batch onto a shared queue; consumers pop batches, check every
 * block and free it.  Every free is therefore a remote free of a block
 * another thread allocated, which is the pattern that breaks allocators
 * whose per-thread caches assume a block comes back to the thread that
 * allocated it: remote frees must flow back to the producer's heap without
 * a global lock, and without the consumer's cache growing forever.
 *
 * The queue is bounded (QUEUE_CAP batches), so a producer that runs ahead
 * waits and the live heap stays small; the queue's mutex is taken once per
 * batch, not per block, so it is not what is being measured.
 *
 * ops = blocks allocated (each is also freed).  Exit 3 on corruption.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <stdbool.h>

#define QUEUE_CAP 64
#define MAX_THREADS 256
#define MAX_BATCH 65536

struct batch {
    uint32_t count;
    void *blocks[]; /* count entries, each tagged */
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t not_empty;
    pthread_cond_t not_full;
    struct batch *ring[QUEUE_CAP];
    unsigned head, len;
    unsigned producers_left;
} q = {
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .not_empty = PTHREAD_COND_INITIALIZER,
    .not_full = PTHREAD_COND_INITIALIZER,
};

static uint64_t total_blocks;
static unsigned pairs;
static uint32_t batch_size;

struct worker {
    pthread_t tid;
    unsigned id;
    uint64_t freed;
};

static void queue_push(struct batch *b)
{
    pthread_mutex_lock(&q.mu);
    while (q.len == QUEUE_CAP)
        pthread_cond_wait(&q.not_full, &q.mu);
    q.ring[(q.head + q.len) % QUEUE_CAP] = b;
    q.len++;
    pthread_cond_signal(&q.not_empty);
    pthread_mutex_unlock(&q.mu);
}

/* NULL once the queue is empty and every producer has finished. */
static struct batch *queue_pop(void)
{
    struct batch *b = NULL;

    pthread_mutex_lock(&q.mu);
    while (q.len == 0 && q.producers_left > 0)
        pthread_cond_wait(&q.not_empty, &q.mu);
    if (q.len > 0) {
        b = q.ring[q.head];
        q.head = (q.head + 1) % QUEUE_CAP;
        q.len--;
        pthread_cond_signal(&q.not_full);
    }
    pthread_mutex_unlock(&q.mu);
    return b;
}

static void *producer(void *arg)
{
    struct worker *w = arg;
    uint64_t rng = bench_rng_seed(0x9A0D ^ w->id);
    uint64_t left = total_blocks / pairs + (w->id < total_blocks % pairs);

    while (left > 0) {
        uint32_t n = left < batch_size ? (uint32_t)left : batch_size;
        struct batch *b = bench_malloc(sizeof *b + n * sizeof(void *));
        b->count = n;
        for (uint32_t i = 0; i < n; i++) {
            /* Three in four blocks of 16..128 bytes, the rest up to 512:
             * the small-object mix of a message-passing server. */
            size_t sz = bench_below(&rng, 4) ? bench_range(&rng, 16, 128)
                                             : bench_range(&rng, 129, 512);
            void *p = bench_malloc(sz);
            bench_tag(p, sz);
            b->blocks[i] = p;
        }
        queue_push(b);
        left -= n;
    }

    pthread_mutex_lock(&q.mu);
    if (--q.producers_left == 0)
        pthread_cond_broadcast(&q.not_empty); /* wake every idle consumer */
    pthread_mutex_unlock(&q.mu);
    return NULL;
}

static void *consumer(void *arg)
{
    struct worker *w = arg;
    struct batch *b;

    while ((b = queue_pop()) != NULL) {
        for (uint32_t i = 0; i < b->count; i++) {
            bench_tag_check(b->blocks[i], "consumer");
            free(b->blocks[i]);
        }
        w->freed += b->count;
        free(b);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    bench_name = "xmalloc";
    if (argc > 4)
        bench_die(BENCH_EXIT_USAGE, "usage: xmalloc [threads [blocks [batch]]]");
    unsigned threads = (unsigned)bench_arg(argc, argv, 1, "threads", 2, 2, MAX_THREADS);
    total_blocks = bench_arg(argc, argv, 2, "blocks", 20000000, 1, UINT64_C(1) << 40);
    batch_size = (uint32_t)bench_arg(argc, argv, 3, "batch", 256, 1, MAX_BATCH);
    if (threads % 2 != 0)
        bench_die(BENCH_EXIT_USAGE, "threads must be even (half produce, half consume)");

    pairs = threads / 2;
    struct worker w[MAX_THREADS];
    memset(w, 0, sizeof w);
    q.producers_left = pairs;

    double t0 = bench_now();
    for (unsigned i = 0; i < threads; i++) {
        w[i].id = i;
        bench_thread_create(&w[i].tid, i < pairs ? producer : consumer, &w[i]);
    }
    uint64_t freed = 0;
    for (unsigned i = 0; i < threads; i++) {
        bench_thread_join(w[i].tid);
        freed += w[i].freed;
    }
    double t1 = bench_now();

    uint64_t made = total_blocks;
    if (freed != made)
        bench_corrupt("%" PRIu64 " blocks allocated but %" PRIu64 " came back", made, freed);
    bench_result(t1 - t0, made, "threads=%u", threads);
    return 0;
}
