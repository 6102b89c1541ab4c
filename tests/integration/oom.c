/*
 * Integration test: running out of address space.
 *
 * Under a lowered RLIMIT_AS every allocation function, in one thread and in
 * four, is called until it fails.  The failure must be the documented one
 * (NULL with errno ENOMEM; posix_memalign returns ENOMEM), nothing may
 * crash or corrupt a live block on the way there -- a failed realloc must
 * leave its block intact -- and once everything is freed the same
 * allocations must succeed again, up to the limit once more: an allocator
 * that wedges itself, leaks its own bookkeeping or keeps the freed memory
 * out of reach after hitting the limit fails here.
 *
 * Every test runs in its own process (Check forks), so the limit set in it
 * dies with it.  The soft limit is restored before anything is asserted,
 * so Check can still allocate to report a failure.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "pattern.h"
#include "preloaded.h"

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)

/* Address space granted above what the process already uses. */
#define HEADROOM (256 * MiB)
#define NTHREADS 4
#define ROUNDS 2
/* Far more units than HEADROOM can hold: reaching it means no NULL came. */
#define MAX_UNITS ((size_t)100 * 1000 * 1000)
/* Bytes checked at each end of a block; checking whole blocks would make
 * a run touch the entire headroom for no extra insight. */
#define WIN 128
/* Growth cases start here and double up to the case's size. */
#define GROW_START ((size_t)32)
/*
 * After everything is freed the second round must get at least this share
 * of what the first got.  Not all of it: what the first round left mapped
 * (the large-block cache, the partly used SuperSlabs of the size classes)
 * shifts where the last request fails, so the two rounds may differ by a
 * few blocks at the margin.
 */
#define ROUND2_MIN_PERCENT 90

/* Through volatile pointers: the compiler must not elide or fold calls. */
static void *(*volatile const call_malloc)(size_t) = malloc;
static void *(*volatile const call_calloc)(size_t, size_t) = calloc;
static void *(*volatile const call_realloc)(void *, size_t) = realloc;
static void *(*volatile const call_reallocarray)(void *, size_t, size_t) =
    reallocarray;
static void (*volatile const call_free)(void *) = free;
static int (*volatile const call_posix_memalign)(void **, size_t, size_t) =
    posix_memalign;
static void *(*volatile const call_aligned_alloc)(size_t, size_t) =
    aligned_alloc;
static void *(*volatile const call_memalign)(size_t, size_t) = memalign;
static void *(*volatile const call_valloc)(size_t) = valloc;
static void *(*volatile const call_pvalloc)(size_t) = pvalloc;

enum kind {
    K_MALLOC,
    K_CALLOC,
    K_REALLOC,
    K_REALLOCARRAY,
    K_POSIX_MEMALIGN,
    K_ALIGNED_ALLOC,
    K_MEMALIGN,
    K_VALLOC,
    K_PVALLOC,
};

struct alloc_case {
    const char *name;
    enum kind kind;
    size_t size;  /* bytes; for the growth cases the final size */
    size_t align; /* for the aligned functions; 0 = the page size */
};

/*
 * Sizes reach every tier: tiny (<= 1 KiB) and medium (<= 256 KiB) size
 * classes, and the large tier, which blocks above 256 KiB or with more
 * than 4 KiB of alignment get.  The growth cases walk through all three.
 */
static const struct alloc_case cases[] = {
    {"malloc small", K_MALLOC, 48, 0},
    {"malloc medium", K_MALLOC, 40000, 0},
    {"malloc large", K_MALLOC, 1536 * KiB, 0},
    {"calloc small", K_CALLOC, 112, 0},
    {"calloc large", K_CALLOC, 600 * KiB, 0},
    {"realloc growth", K_REALLOC, 1 * MiB, 0},
    {"reallocarray growth", K_REALLOCARRAY, 1 * MiB, 0},
    {"posix_memalign", K_POSIX_MEMALIGN, 3000, 64},
    {"posix_memalign 64 KiB alignment", K_POSIX_MEMALIGN, 20000, 64 * KiB},
    {"aligned_alloc", K_ALIGNED_ALLOC, 8192, 4096},
    {"memalign", K_MEMALIGN, 100000, 8192},
    {"valloc", K_VALLOC, 5000, 0},
    {"pvalloc", K_PVALLOC, 70000, 0},
};
#define NCASES ((int)(sizeof(cases) / sizeof(cases[0])))

/* Every block is threaded onto its allocator's list through this header,
 * so the test needs no memory of its own to remember its blocks. */
struct node {
    struct node *next;
    size_t size;
    uint64_t key;
};
#define HDR sizeof(struct node)

struct worker {
    const struct alloc_case *c;
    unsigned id;
    unsigned nworkers;
    struct node *list;
    size_t count[ROUNDS];   /* units obtained per round */
    bool got_null[ROUNDS];  /* the round ended with a failed call */
    int fail_code[ROUNDS];  /* its errno, or posix_memalign's return */
    char err[240];          /* the first integrity failure, if any */
};

static struct worker workers[NTHREADS];
static pthread_barrier_t start_barrier;
static pthread_barrier_t round_barrier;

static size_t page_size(void)
{
    return (size_t)sysconf(_SC_PAGESIZE);
}

static size_t case_align(const struct alloc_case *c)
{
    switch (c->kind) {
    case K_POSIX_MEMALIGN:
    case K_ALIGNED_ALLOC:
    case K_MEMALIGN:
        return c->align;
    case K_VALLOC:
    case K_PVALLOC:
        return page_size();
    default:
        return 16; /* malloc's guarantee on x86-64 and aarch64 */
    }
}

static void worker_fail(struct worker *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Records the first failure only; the rest would be its consequences. */
static void worker_fail(struct worker *w, const char *fmt, ...)
{
    if (w->err[0] != '\0')
        return;
    int len = snprintf(w->err, sizeof(w->err), "thread %u: ", w->id);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->err + len, sizeof(w->err) - (size_t)len, fmt, ap);
    va_end(ap);
}

/* Writes the header and the pattern into both ends of a block. */
static void mark(void *p, size_t n, uint64_t key)
{
    struct node *nd = p;
    size_t head_end = n < HDR + WIN ? n : HDR + WIN;
    size_t tail_start = n > HDR + WIN ? n - WIN : HDR;

    nd->next = NULL;
    nd->size = n;
    nd->key = key;
    pat_fill(p, HDR, head_end, key);
    pat_fill(p, tail_start, n, key);
}

/* Checks what mark(p, n, key) wrote; the header only for key and size. */
static bool intact(const void *p, size_t n, uint64_t key)
{
    const struct node *nd = p;
    size_t head_end = n < HDR + WIN ? n : HDR + WIN;
    size_t tail_start = n > HDR + WIN ? n - WIN : HDR;

    return nd->size == n && nd->key == key &&
           pat_check(p, HDR, head_end, key) == PAT_NONE &&
           pat_check(p, tail_start, n, key) == PAT_NONE;
}

static void push(struct worker *w, void *p)
{
    struct node *nd = p;

    nd->next = w->list;
    w->list = nd;
}

static bool is_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0)
            return false;
    return true;
}

/*
 * One growth unit: a block started small and doubled by realloc (or
 * reallocarray) to the case's size.  When a growth step fails, the old
 * block must be untouched and still ours; it joins the list like any
 * other block.  Returns false when a call failed.
 */
static bool grow_unit(struct worker *w, uint64_t key, int round)
{
    const struct alloc_case *c = w->c;
    bool arr = c->kind == K_REALLOCARRAY;
    size_t n = GROW_START;

    errno = 0;
    void *p = arr ? call_reallocarray(NULL, n / 16, 16) : call_realloc(NULL, n);
    if (p == NULL) {
        w->fail_code[round] = errno;
        return false;
    }
    mark(p, n, key);
    while (n < c->size) {
        size_t m = 2 * n;
        errno = 0;
        void *q = arr ? call_reallocarray(p, m / 16, 16) : call_realloc(p, m);
        if (q == NULL) {
            w->fail_code[round] = errno;
            if (!intact(p, n, key))
                worker_fail(w,
                            "%s to %zu bytes failed and damaged the "
                            "%zu-byte block",
                            arr ? "reallocarray" : "realloc", m, n);
            push(w, p);
            return false;
        }
        if (((uintptr_t)q & 15) != 0)
            worker_fail(w, "realloc to %zu bytes returned misaligned %p", m,
                        q);
        if (!intact(q, n, key))
            worker_fail(w, "realloc from %zu to %zu bytes lost the contents",
                        n, m);
        p = q;
        n = m;
        mark(p, n, key);
    }
    push(w, p);
    return true;
}

/* One unit of the case's allocation; false when the call failed. */
static bool get_unit(struct worker *w, uint64_t key, int round)
{
    const struct alloc_case *c = w->c;
    size_t n = c->size;
    void *p = NULL;
    int rc;

    errno = 0;
    switch (c->kind) {
    case K_MALLOC:
        p = call_malloc(n);
        break;
    case K_CALLOC:
        p = call_calloc(n / 16, 16);
        break;
    case K_REALLOC:
    case K_REALLOCARRAY:
        return grow_unit(w, key, round);
    case K_POSIX_MEMALIGN:
        rc = call_posix_memalign(&p, c->align, n);
        if (rc != 0) {
            w->fail_code[round] = rc;
            return false;
        }
        if (p == NULL) {
            worker_fail(w, "posix_memalign returned 0 but no block");
            w->fail_code[round] = 0;
            return false;
        }
        break;
    case K_ALIGNED_ALLOC:
        p = call_aligned_alloc(c->align, n);
        break;
    case K_MEMALIGN:
        p = call_memalign(c->align, n);
        break;
    case K_VALLOC:
        p = call_valloc(n);
        break;
    case K_PVALLOC:
        p = call_pvalloc(n);
        break;
    }
    if (p == NULL) {
        w->fail_code[round] = errno;
        return false;
    }
    size_t align = case_align(c);
    if (((uintptr_t)p & (align - 1)) != 0)
        worker_fail(w, "%s(%zu) returned %p, not aligned to %zu", c->name, n,
                    p, align);
    /* Round 2 gets blocks round 1 dirtied: calloc must zero them. */
    if (c->kind == K_CALLOC && !is_zero(p, n))
        worker_fail(w, "calloc(%zu, 16) returned a block that is not zeroed",
                    n / 16);
    mark(p, n, key);
    push(w, p);
    return true;
}

static void fill(struct worker *w, int round)
{
    size_t count = 0;

    for (;;) {
        if (count == MAX_UNITS) {
            worker_fail(w,
                        "%zu units and still no failure: is RLIMIT_AS "
                        "ignored?",
                        count);
            break;
        }
        uint64_t key = pat_mix(((uint64_t)w->id << 48) ^
                               ((uint64_t)round << 40) ^ count);
        if (!get_unit(w, key, round)) {
            w->got_null[round] = true;
            break;
        }
        count++;
        if (w->err[0] != '\0')
            break;
    }
    w->count[round] = count;
}

/* Frees another worker's blocks (itself when alone): in the threaded
 * runs every block goes back from a thread that did not allocate it. */
static void free_list(struct worker *w, struct worker *owner)
{
    struct node *nd = owner->list;

    owner->list = NULL;
    while (nd != NULL) {
        struct node *next = nd->next;
        if (!intact(nd, nd->size, nd->key))
            worker_fail(w,
                        "a %zu-byte block of thread %u was damaged before "
                        "free",
                        nd->size, owner->id);
        call_free(nd);
        nd = next;
    }
}

static void work(struct worker *w)
{
    for (int round = 0; round < ROUNDS; round++) {
        fill(w, round);
        /* Everyone fills to the limit before anyone frees. */
        pthread_barrier_wait(&round_barrier);
        free_list(w, &workers[(w->id + 1) % w->nworkers]);
        pthread_barrier_wait(&round_barrier);
    }
}

static void *worker_thread(void *arg)
{
    struct worker *w = arg;

    pthread_barrier_wait(&start_barrier);
    work(w);
    return NULL;
}

/* VmSize of this process in bytes, read without stdio. */
static size_t vm_size(void)
{
    char buf[4096];
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    ck_assert_msg(fd >= 0, "open /proc/self/status: %s", strerror(errno));
    ssize_t len = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    ck_assert_msg(len > 0, "read /proc/self/status failed");
    buf[len] = '\0';
    const char *v = strstr(buf, "\nVmSize:");
    ck_assert_msg(v != NULL, "no VmSize in /proc/self/status");
    return (size_t)strtoull(v + 8, NULL, 10) * KiB;
}

static struct rlimit lower_limit(void)
{
    struct rlimit saved, lim;

    ck_assert_int_eq(getrlimit(RLIMIT_AS, &saved), 0);
    lim = saved;
    lim.rlim_cur = (rlim_t)(vm_size() + HEADROOM);
    ck_assert_msg(saved.rlim_max == RLIM_INFINITY ||
                      lim.rlim_cur <= saved.rlim_max,
                  "the hard RLIMIT_AS (%llu) leaves no room for the test",
                  (unsigned long long)saved.rlim_max);
    /* Only the soft limit moves, so it can be raised again afterwards. */
    ck_assert_int_eq(setrlimit(RLIMIT_AS, &lim), 0);
    return saved;
}

static void run_case(const struct alloc_case *c, unsigned nthreads)
{
    pthread_t t[NTHREADS];

    memset(workers, 0, sizeof(workers));
    for (unsigned i = 0; i < nthreads; i++) {
        workers[i].c = c;
        workers[i].id = i;
        workers[i].nworkers = nthreads;
    }
    ck_assert_int_eq(pthread_barrier_init(&round_barrier, NULL, nthreads), 0);
    /* Threads and their stacks come before the limit: they need address
     * space the test is not about. */
    if (nthreads > 1) {
        ck_assert_int_eq(
            pthread_barrier_init(&start_barrier, NULL, nthreads + 1), 0);
        for (unsigned i = 0; i < nthreads; i++)
            ck_assert_int_eq(
                pthread_create(&t[i], NULL, worker_thread, &workers[i]), 0);
    }

    struct rlimit saved = lower_limit();
    if (nthreads > 1) {
        pthread_barrier_wait(&start_barrier);
        for (unsigned i = 0; i < nthreads; i++)
            pthread_join(t[i], NULL);
    } else {
        work(&workers[0]);
    }
    ck_assert_int_eq(setrlimit(RLIMIT_AS, &saved), 0);

    size_t total[ROUNDS] = {0, 0};
    for (unsigned i = 0; i < nthreads; i++) {
        struct worker *w = &workers[i];
        ck_assert_msg(w->err[0] == '\0', "%s, %u thread(s): %s", c->name,
                      nthreads, w->err);
        for (int r = 0; r < ROUNDS; r++) {
            ck_assert_msg(w->got_null[r],
                          "%s, thread %u, round %d: no allocation failed",
                          c->name, i, r + 1);
            ck_assert_msg(w->fail_code[r] == ENOMEM,
                          "%s, thread %u, round %d: the failing call gave "
                          "%d (%s), not ENOMEM",
                          c->name, i, r + 1, w->fail_code[r],
                          strerror(w->fail_code[r]));
            total[r] += w->count[r];
        }
    }
    ck_assert_msg(total[0] > 0, "%s, %u thread(s): not one allocation "
                  "succeeded under the limit", c->name, nthreads);
    ck_assert_msg(total[1] * 100 >= total[0] * ROUND2_MIN_PERCENT,
                  "%s, %u thread(s): after freeing everything only %zu "
                  "allocations succeeded, against %zu the first time",
                  c->name, nthreads, total[1], total[0]);
    pthread_barrier_destroy(&round_barrier);
    if (nthreads > 1)
        pthread_barrier_destroy(&start_barrier);
    fprintf(stderr, "# %s, %u thread(s): %zu then %zu units to ENOMEM\n",
            c->name, nthreads, total[0], total[1]);
}

START_TEST(preloaded)
{
    assert_hakmem_preloaded();
}
END_TEST

START_TEST(one_thread)
{
    run_case(&cases[_i], 1);
}
END_TEST

START_TEST(four_threads)
{
    run_case(&cases[_i], NTHREADS);
}
END_TEST

static Suite *oom_suite(void)
{
    Suite *s = suite_create("oom");
    TCase *tc = tcase_create("oom");

    /* Filling 256 MiB takes well under a second; the bound is for a hang. */
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, preloaded);
    tcase_add_loop_test(tc, one_thread, 0, NCASES);
    tcase_add_loop_test(tc, four_threads, 0, NCASES);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(oom_suite());

    /* Each test lowers RLIMIT_AS for its own process only. */
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
