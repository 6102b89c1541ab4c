/*
 * thread-request.c - a thread-per-request server: every request gets a
 * thread of its own that makes about a thousand allocations of mixed sizes
 * up to 16 KiB and exits.  Written from scratch for hakmem.
 *
 *   thread-request [requests [concurrent [allocs_per_request [max_size [seed]]]]]
 *                  defaults: 8000 2 1000 16384 1
 *
 * The main thread plays the acceptor.  It keeps `concurrent` request
 * threads in flight: it joins the oldest, frees the response that thread
 * left behind and starts the next request in its place, so threads are
 * created and torn down as a steady stream rather than in lock-step
 * groups.  Before starting a request it allocates a small "connection"
 * record (64..512 bytes) that the request thread frees, so every request
 * also makes one free into the acceptor's heap and leaves one block (its
 * response, up to max_size) for the acceptor to free after it has exited.
 *
 * A request thread keeps a working set of WORKING_SET slots: each of its
 * allocs_per_request steps picks a random slot, frees the block there (if
 * any) after checking its tags, and puts a new block in it, of a size drawn
 * log-uniformly from 16..max_size (so each power of two from 16 B to 8 KiB
 * gets the same share).  When its allocations are done it frees what it
 * still holds and returns.
 *
 * A thread lives for a thousand allocations only, so what this measures is
 * how cheaply an allocator sets up a thread's heap on its first malloc and
 * gives it back when the thread exits, as much as malloc and free
 * themselves.  Every request draws its sizes from its own seed, so a run
 * is the same whatever order the threads are scheduled in.
 *
 * ops = requests served.  Exit 3 on corruption, 1 when a thread cannot be
 * created or joined.
 */
#define _GNU_SOURCE
#include "bench.h"

#define MAX_CONCURRENT 256
#define WORKING_SET 64

static uint32_t allocs_per_request;
static size_t max_size;

struct request {
    pthread_t tid;
    uint64_t seed;
    void *connection; /* allocated by main, freed by the request thread */
    void *response;   /* allocated by the request thread, freed by main */
};

static void *new_block(uint64_t *rng, size_t lo, size_t hi)
{
    size_t n = bench_logsize(rng, lo, hi);
    void *p = bench_malloc(n);
    bench_tag(p, n);
    return p;
}

static void *serve(void *arg)
{
    struct request *rq = arg;
    uint64_t rng = bench_rng_seed(rq->seed);
    void *live[WORKING_SET] = {NULL};

    bench_tag_check(rq->connection, "request thread, connection from main");
    free(rq->connection);
    rq->connection = NULL;

    for (uint32_t i = 0; i < allocs_per_request; i++) {
        unsigned s = bench_below(&rng, WORKING_SET);
        if (live[s] != NULL) {
            bench_tag_check(live[s], "request thread");
            free(live[s]);
        }
        live[s] = new_block(&rng, 16, max_size);
    }
    for (unsigned s = 0; s < WORKING_SET; s++) {
        if (live[s] != NULL) {
            bench_tag_check(live[s], "request thread, at exit");
            free(live[s]);
        }
    }
    rq->response = new_block(&rng, 64, max_size);
    return NULL;
}

static void start(struct request *rq, uint64_t seed, uint64_t *main_rng)
{
    rq->seed = seed;
    rq->response = NULL;
    rq->connection = new_block(main_rng, 64, 512);
    bench_thread_create(&rq->tid, serve, rq);
}

static void finish(struct request *rq)
{
    bench_thread_join(rq->tid);
    if (rq->connection != NULL || rq->response == NULL)
        bench_die(BENCH_EXIT_CORRUPT, "a request thread returned without doing its work");
    bench_tag_check(rq->response, "main, response of an exited thread");
    free(rq->response);
    rq->response = NULL;
}

int main(int argc, char **argv)
{
    bench_name = "thread-request";
    if (argc > 6)
        bench_die(BENCH_EXIT_USAGE, "usage: thread-request [requests [concurrent "
                  "[allocs_per_request [max_size [seed]]]]]");
    uint64_t requests = bench_arg(argc, argv, 1, "requests", 8000, 1, UINT64_C(1) << 32);
    unsigned concurrent =
        (unsigned)bench_arg(argc, argv, 2, "concurrent", 2, 1, MAX_CONCURRENT);
    allocs_per_request =
        (uint32_t)bench_arg(argc, argv, 3, "allocs_per_request", 1000, 1, 1u << 24);
    max_size = (size_t)bench_arg(argc, argv, 4, "max_size", 16384, 64, 1u << 26);
    uint64_t seed = bench_arg(argc, argv, 5, "seed", 1, 0, UINT64_MAX);

    static struct request rq[MAX_CONCURRENT];
    uint64_t main_rng = bench_rng_seed(seed);
    uint64_t started = 0, done = 0;
    unsigned inflight = concurrent < requests ? concurrent : (unsigned)requests;

    double t0 = bench_now();
    for (unsigned i = 0; i < inflight; i++, started++)
        start(&rq[i], seed * 0x100000001B3ull + started, &main_rng);
    /* Oldest first: slot done % inflight always holds the oldest thread. */
    while (done < requests) {
        struct request *r = &rq[done % inflight];
        finish(r);
        done++;
        if (started < requests) {
            start(r, seed * 0x100000001B3ull + started, &main_rng);
            started++;
        }
    }
    double t1 = bench_now();

    bench_result(t1 - t0, requests, "concurrent=%u allocs=%" PRIu32, inflight,
                 allocs_per_request);
    return 0;
}
