/*
 * Integration test: several threads use the allocator at once with random
 * sizes across all of its tiers, check every block's contents before it is
 * freed, and free about half of the blocks in a thread other than the one
 * that allocated them.  A second case grows blocks with realloc while they
 * migrate between threads.  Corruption, overlap between live blocks, or a
 * block lost in a cross-thread free shows up as a pattern mismatch or crash.
 */
#define _GNU_SOURCE
#include <check.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pattern.h"
#include "preloaded.h"

#define NTHREADS 4
#define RING 512

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)

struct block {
    unsigned char *p;
    size_t n;
    uint64_t key;
};

/* A bounded mailbox: other threads post blocks here for this one to free. */
struct inbox {
    pthread_mutex_t mu;
    size_t head;
    size_t count;
    struct block ring[RING];
};

struct worker {
    int id;
    uint64_t rng;
    struct inbox in;
    unsigned long allocs;
    unsigned long local_frees;
    unsigned long remote_frees;
    /* First failure seen by this thread; the main thread asserts on it. */
    char err[256];
};

static struct worker workers[NTHREADS];
static pthread_barrier_t done_barrier;

static void worker_fail(struct worker *w, const char *fmt, ...)
{
    if (w->err[0] != '\0')
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->err, sizeof(w->err), fmt, ap);
    va_end(ap);
}

static void workers_init(uint64_t seed)
{
    memset(workers, 0, sizeof(workers));
    for (int i = 0; i < NTHREADS; i++) {
        workers[i].id = i;
        workers[i].rng = pat_mix(seed + (uint64_t)i) | 1;
        pthread_mutex_init(&workers[i].in.mu, NULL);
    }
    pthread_barrier_init(&done_barrier, NULL, NTHREADS);
}

static void workers_destroy(void)
{
    for (int i = 0; i < NTHREADS; i++)
        pthread_mutex_destroy(&workers[i].in.mu);
    pthread_barrier_destroy(&done_barrier);
}

static int inbox_post(struct worker *to, struct block b)
{
    int ok = 0;

    pthread_mutex_lock(&to->in.mu);
    if (to->in.count < RING) {
        to->in.ring[(to->in.head + to->in.count) % RING] = b;
        to->in.count++;
        ok = 1;
    }
    pthread_mutex_unlock(&to->in.mu);
    return ok;
}

/* Takes everything out under the lock so blocks are checked without it. */
static size_t inbox_take(struct worker *w, struct block *out)
{
    pthread_mutex_lock(&w->in.mu);
    size_t n = w->in.count;
    for (size_t i = 0; i < n; i++)
        out[i] = w->in.ring[(w->in.head + i) % RING];
    w->in.head = 0;
    w->in.count = 0;
    pthread_mutex_unlock(&w->in.mu);
    return n;
}

static struct worker *random_peer(struct worker *w)
{
    int off = 1 + (int)(pat_rand(&w->rng) % (NTHREADS - 1));
    return &workers[(w->id + off) % NTHREADS];
}

static void verify_block(struct worker *w, const struct block *b,
                         const char *where)
{
    size_t bad = pat_check(b->p, 0, b->n, b->key);
    if (bad != PAT_NONE)
        worker_fail(w, "thread %d, %s: %zu-byte block %p corrupted at offset %zu",
             w->id, where, b->n, (void *)b->p, bad);
}

/* ------------------------------------------------------------------ */
/* Case 1: random malloc/free with cross-thread frees.                 */

#define OPS 200000
#define SLOTS 1024

/* Mostly small, some medium, a few large: every tier sees traffic. */
static size_t pick_size(uint64_t *rng)
{
    uint64_t r = pat_rand(rng);
    unsigned bucket = (unsigned)(r % 1000);

    r >>= 10;
    if (bucket < 2)
        return 256 * KiB + (size_t)(r % (4 * MiB - 256 * KiB + 1));
    if (bucket < 100)
        return 1 * KiB + (size_t)(r % (63 * KiB + 1));
    return 8 + (size_t)(r % (1024 - 8 + 1));
}

static void drain_and_free(struct worker *w)
{
    struct block got[RING];
    size_t n = inbox_take(w, got);

    for (size_t i = 0; i < n; i++) {
        verify_block(w, &got[i], "remote free");
        free(got[i].p);
        w->remote_frees++;
    }
}

/* Half of the releases go to another thread, unless its mailbox is full. */
static void release(struct worker *w, struct block *b)
{
    if ((pat_rand(&w->rng) & 1) && inbox_post(random_peer(w), *b)) {
        b->p = NULL;
        return;
    }
    verify_block(w, b, "local free");
    free(b->p);
    w->local_frees++;
    b->p = NULL;
}

static void *stress_thread(void *arg)
{
    struct worker *w = arg;
    struct block slots[SLOTS];

    memset(slots, 0, sizeof(slots));
    for (unsigned long op = 0; op < OPS && w->err[0] == '\0'; op++) {
        if ((op & 15) == 0)
            drain_and_free(w);
        struct block *s = &slots[pat_rand(&w->rng) % SLOTS];
        if (s->p != NULL) {
            release(w, s);
            continue;
        }
        size_t n = pick_size(&w->rng);
        s->p = malloc(n);
        if (s->p == NULL) {
            worker_fail(w, "thread %d: malloc(%zu) returned NULL", w->id, n);
            break;
        }
        if (n >= 16 && ((uintptr_t)s->p & 15) != 0)
            worker_fail(w, "thread %d: malloc(%zu) = %p not 16-byte aligned",
                 w->id, n, (void *)s->p);
        s->n = n;
        s->key = pat_key(s->p, n, ((uint64_t)w->id << 32) ^ op);
        pat_fill(s->p, 0, n, s->key);
        w->allocs++;
    }
    for (size_t i = 0; i < SLOTS; i++)
        if (slots[i].p != NULL)
            release(w, &slots[i]);
    /* After this no thread posts any more, so one last drain empties all. */
    pthread_barrier_wait(&done_barrier);
    drain_and_free(w);
    return NULL;
}

static void run_workers(void *(*fn)(void *))
{
    pthread_t t[NTHREADS];

    for (int i = 0; i < NTHREADS; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, fn, &workers[i]), 0);
    for (int i = 0; i < NTHREADS; i++)
        ck_assert_int_eq(pthread_join(t[i], NULL), 0);
    for (int i = 0; i < NTHREADS; i++)
        ck_assert_msg(workers[i].err[0] == '\0', "%s", workers[i].err);
}

START_TEST(preloaded)
{
    assert_hakmem_preloaded();
}
END_TEST

START_TEST(cross_thread_free)
{
    workers_init(0x5EED0001);
    run_workers(stress_thread);

    unsigned long allocs = 0, local = 0, remote = 0;
    for (int i = 0; i < NTHREADS; i++) {
        allocs += workers[i].allocs;
        local += workers[i].local_frees;
        remote += workers[i].remote_frees;
    }
    /* Every block was freed exactly once, somewhere. */
    ck_assert_uint_eq(allocs, local + remote);
    /* Guards the test itself: cross-thread frees really were exercised. */
    ck_assert_msg(remote * 10 >= allocs * 3,
                  "only %lu of %lu blocks were freed by another thread",
                  remote, allocs);
    workers_destroy();
}
END_TEST

/* ------------------------------------------------------------------ */
/* Case 2: realloc chains whose blocks move between threads.           */

#define ROPS 30000
#define RSLOTS 64
/* Prefixes longer than this are checked in windows, to bound the run time. */
#define FULL_CHECK_LIMIT (64 * KiB)
#define WINDOW (4 * KiB)

struct rblock {
    struct block b;
    size_t cap; /* the chain restarts once it would outgrow this */
};

/*
 * The key depends on the chain, not the address, because realloc may move
 * the block: the preserved prefix must still read back with the same key.
 */
static void check_prefix(struct worker *w, const struct block *b, size_t kept,
                         size_t old_n)
{
    size_t bad = PAT_NONE;

    if (kept <= FULL_CHECK_LIMIT) {
        bad = pat_check(b->p, 0, kept, b->key);
    } else {
        size_t mid = (size_t)(pat_rand(&w->rng) % (kept - WINDOW));
        bad = pat_check(b->p, 0, WINDOW, b->key);
        if (bad == PAT_NONE)
            bad = pat_check(b->p, mid, mid + WINDOW, b->key);
        if (bad == PAT_NONE)
            bad = pat_check(b->p, kept - WINDOW, kept, b->key);
    }
    if (bad != PAT_NONE)
        worker_fail(w, "thread %d: realloc %zu -> %zu lost contents at offset %zu",
             w->id, old_n, b->n, bad);
}

static void adopt_or_free(struct worker *w, struct rblock *slots)
{
    struct block got[RING];
    size_t n = inbox_take(w, got);

    for (size_t i = 0; i < n; i++) {
        verify_block(w, &got[i], "adopted block");
        size_t s = (size_t)(pat_rand(&w->rng) % RSLOTS);
        if (slots[s].b.p == NULL) {
            slots[s].b = got[i];
            slots[s].cap = got[i].n * 4;
        } else {
            free(got[i].p);
            w->remote_frees++;
        }
    }
}

static void *realloc_thread(void *arg)
{
    struct worker *w = arg;
    struct rblock slots[RSLOTS];

    memset(slots, 0, sizeof(slots));
    for (unsigned long op = 0; op < ROPS && w->err[0] == '\0'; op++) {
        if ((op & 7) == 0)
            adopt_or_free(w, slots);
        struct rblock *s = &slots[pat_rand(&w->rng) % RSLOTS];
        uint64_t r = pat_rand(&w->rng);

        if (s->b.p == NULL) {
            /* A new chain; its cap spreads chains over every size tier. */
            size_t n = 1 + (size_t)(r % 256);
            s->b.p = realloc(NULL, n);
            if (s->b.p == NULL) {
                worker_fail(w, "thread %d: realloc(NULL, %zu) returned NULL",
                     w->id, n);
                break;
            }
            s->b.n = n;
            s->b.key = pat_mix(((uint64_t)w->id << 40) ^ op);
            s->cap = (size_t)1 << (8 + (r >> 8) % 14);
            pat_fill(s->b.p, 0, n, s->b.key);
            w->allocs++;
            continue;
        }
        if (r % 8 == 0) {
            /* Another thread continues (and eventually frees) this chain. */
            if (inbox_post(random_peer(w), s->b))
                s->b.p = NULL;
            continue;
        }
        size_t old_n = s->b.n;
        size_t new_n;
        if (r % 8 == 1) {
            new_n = 1 + (size_t)((r >> 8) % old_n); /* shrink */
        } else {
            new_n = old_n + old_n / 2 + 1 + (size_t)((r >> 8) % 64);
            if (new_n > s->cap) {
                verify_block(w, &s->b, "chain end");
                free(s->b.p);
                w->local_frees++;
                s->b.p = NULL;
                continue;
            }
        }
        unsigned char *q = realloc(s->b.p, new_n);
        if (q == NULL) {
            worker_fail(w, "thread %d: realloc(%zu -> %zu) returned NULL", w->id,
                 old_n, new_n);
            break;
        }
        if (new_n >= 16 && ((uintptr_t)q & 15) != 0)
            worker_fail(w, "thread %d: realloc to %zu gave misaligned %p", w->id,
                 new_n, (void *)q);
        s->b.p = q;
        s->b.n = new_n;
        check_prefix(w, &s->b, old_n < new_n ? old_n : new_n, old_n);
        if (new_n > old_n)
            pat_fill(q, old_n, new_n, s->b.key);
    }
    for (size_t i = 0; i < RSLOTS; i++) {
        if (slots[i].b.p != NULL) {
            verify_block(w, &slots[i].b, "final free");
            free(slots[i].b.p);
            w->local_frees++;
            slots[i].b.p = NULL;
        }
    }
    pthread_barrier_wait(&done_barrier);
    /* Nothing is posted after the barrier; free what is still in transit. */
    struct block got[RING];
    size_t n = inbox_take(w, got);
    for (size_t i = 0; i < n; i++) {
        verify_block(w, &got[i], "final remote free");
        free(got[i].p);
        w->remote_frees++;
    }
    return NULL;
}

START_TEST(realloc_migrating)
{
    workers_init(0x5EED0002);
    run_workers(realloc_thread);

    unsigned long allocs = 0, frees = 0, remote = 0;
    for (int i = 0; i < NTHREADS; i++) {
        allocs += workers[i].allocs;
        frees += workers[i].local_frees + workers[i].remote_frees;
        remote += workers[i].remote_frees;
    }
    ck_assert_uint_eq(allocs, frees);
    ck_assert_msg(remote > 0, "no chain was freed by another thread");
    workers_destroy();
}
END_TEST

static Suite *stress_suite(void)
{
    Suite *s = suite_create("stress_mt");
    TCase *tc = tcase_create("stress");

    /* A hang (lost wakeup, deadlock) is what this bound is for, not speed. */
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, preloaded);
    tcase_add_test(tc, cross_thread_free);
    tcase_add_test(tc, realloc_migrating);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(stress_suite());

    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
