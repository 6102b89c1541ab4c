/*
 * mstress.c - a working set of mixed sizes with random lifetimes (in the
 * spirit of mstress and alloc-test), written from scratch for hakmem.
 *
 *   mstress [threads [steps_per_thread [slots_per_thread]]]
 *           defaults: 1 20000000 8192
 *
 * Each thread owns `slots` slots.  A step picks a random slot, frees the
 * block in it (after checking its tags) and allocates a new one.  Sizes are
 * drawn from 8 B .. 64 KiB: seven in eight log-uniform in 8..1024, the
 * rest log-uniform in 1 KiB..64 KiB, so both the tiny and the medium tier
 * are exercised and a thread's working set is a few tens of MiB.  Random
 * replacement gives blocks geometrically distributed lifetimes, from one
 * step to the whole run.
 *
 * Two things keep it from being a steady state:
 *   - phases: every PHASE steps a thread frees a run of a quarter of its
 *     slots at once, as a program does when it drops a data structure, and
 *     refills them over the following steps;
 *   - migration: one block in 32 is not freed but swapped into a shared
 *     exchange table, and whatever was there (possibly another thread's
 *     block) is freed instead, so some frees are remote frees.
 * With 1 thread the exchange still happens, only without a second thread.
 *
 * ops = blocks allocated.  Exit 3 on corruption.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <stdatomic.h>

#define MAX_THREADS 256
#define EXCHANGE 1024
#define PHASE 65536

static uint64_t steps;
static uint32_t slots;
static _Atomic(void *) exchange[EXCHANGE];

struct worker {
    pthread_t tid;
    unsigned id;
    uint64_t allocs;
};

static size_t pick_size(uint64_t *rng)
{
    if (bench_below(rng, 8) != 0)
        return bench_logsize(rng, 8, 1024);
    return bench_logsize(rng, 1025, 65536);
}

static void *new_block(uint64_t *rng)
{
    size_t n = pick_size(rng);
    void *p = bench_malloc(n);
    bench_tag(p, n);
    return p;
}

/* Free a block, or now and then trade it for whatever sits in a random
 * exchange slot and free that instead. */
static void retire(void *p, uint64_t *rng)
{
    bench_tag_check(p, "retire");
    if (bench_below(rng, 32) == 0) {
        p = atomic_exchange_explicit(&exchange[bench_below(rng, EXCHANGE)], p,
                                     memory_order_acq_rel);
        if (p == NULL)
            return;
        bench_tag_check(p, "exchange");
    }
    free(p);
}

static void *stress(void *arg)
{
    struct worker *w = arg;
    uint64_t rng = bench_rng_seed(0x5EED0000u + w->id);
    void **slot = calloc(slots, sizeof(void *));
    if (slot == NULL)
        bench_die(1, "calloc of %u slots failed", slots);
    uint64_t allocs = 0;

    for (uint64_t s = 0; s < steps; s++) {
        if (s % PHASE == PHASE - 1) {
            uint32_t quarter = slots / 4;
            uint32_t from = bench_below(&rng, slots - quarter + 1);
            for (uint32_t i = from; i < from + quarter; i++)
                if (slot[i] != NULL) {
                    retire(slot[i], &rng);
                    slot[i] = NULL;
                }
        }
        uint32_t i = bench_below(&rng, slots);
        if (slot[i] != NULL)
            retire(slot[i], &rng);
        slot[i] = new_block(&rng);
        allocs++;
    }
    for (uint32_t i = 0; i < slots; i++)
        if (slot[i] != NULL) {
            bench_tag_check(slot[i], "final");
            free(slot[i]);
        }
    free(slot);
    w->allocs = allocs;
    return NULL;
}

int main(int argc, char **argv)
{
    bench_name = "mstress";
    if (argc > 4)
        bench_die(BENCH_EXIT_USAGE, "usage: mstress [threads [steps_per_thread [slots_per_thread]]]");
    unsigned threads = (unsigned)bench_arg(argc, argv, 1, "threads", 1, 1, MAX_THREADS);
    steps = bench_arg(argc, argv, 2, "steps_per_thread", 20000000, 1, UINT64_C(1) << 40);
    slots = (uint32_t)bench_arg(argc, argv, 3, "slots_per_thread", 8192, 4, 1u << 24);

    struct worker w[MAX_THREADS];
    double t0 = bench_now();
    for (unsigned i = 0; i < threads; i++) {
        w[i].id = i;
        w[i].allocs = 0;
        bench_thread_create(&w[i].tid, stress, &w[i]);
    }
    uint64_t allocs = 0;
    for (unsigned i = 0; i < threads; i++) {
        bench_thread_join(w[i].tid);
        allocs += w[i].allocs;
    }
    /* Blocks still parked in the exchange belong to nobody now. */
    for (unsigned i = 0; i < EXCHANGE; i++) {
        void *p = atomic_load_explicit(&exchange[i], memory_order_acquire);
        if (p != NULL) {
            bench_tag_check(p, "exchange at exit");
            free(p);
        }
    }
    double t1 = bench_now();

    bench_result(t1 - t0, allocs, "threads=%u", threads);
    return 0;
}
