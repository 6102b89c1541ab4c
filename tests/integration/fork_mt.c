/*
 * Integration test: fork() while other threads are inside the allocator.
 * The child inherits the heap in whatever state those threads left it and
 * must still allocate, free blocks that threads absent from the child had
 * allocated, and start threads of its own.  The classic failure is a child
 * deadlocked on an allocator lock held by a thread that does not exist in
 * it; a bounded wait turns that into a reported failure, not a hung run.
 *
 * 1,000 forks in all: FORKS_FROM_MAIN from the main thread while two
 * workers allocate, free, and free each other's blocks, then
 * FORKS_FROM_THREAD from a secondary thread while the main thread joins
 * in.  Every child checks and frees what it inherited, allocates tiny,
 * medium and large blocks of its own and exits with _exit(); the parent
 * checks every child's exit status.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pattern.h"
#include "preloaded.h"

#define NWORKERS 2
#define FORKS_FROM_MAIN 800
#define FORKS_FROM_THREAD 200
_Static_assert(FORKS_FROM_MAIN + FORKS_FROM_THREAD >= 1000,
               "the requirement is 1,000 forks");
#define INHERITED_PER_WORKER 32
#define WORKER_SLOTS 64
/* Forks begin only once every worker is well into its loop. */
#define WARM_OPS 1000
/* Per child; far above any healthy child, well below the tcase timeout. */
#define CHILD_WAIT_MS 30000

struct block {
    unsigned char *p;
    size_t n;
    uint64_t key;
};

/* Exit codes a child uses to say what went wrong. */
enum {
    CHILD_OK = 0,
    CHILD_INHERITED_CORRUPT = 10,
    CHILD_MALLOC_NULL = 11,
    CHILD_CORRUPT = 12,
    CHILD_PTHREAD_CREATE = 13,
    CHILD_THREAD_FAILED = 14,
    CHILD_REALLOC_NULL = 15,
};

static atomic_bool stop_workers;
static atomic_ulong worker_ops[NWORKERS + 1];
/* Text is read only after join; the flag may be polled while running. */
static char worker_err[NWORKERS + 1][160];
static atomic_bool worker_failed[NWORKERS + 1];
static pthread_barrier_t start_barrier;
/* Written before start_barrier, read-only afterwards, in parent and child. */
static struct block inherited[NWORKERS * INHERITED_PER_WORKER];

/*
 * Cross-thread frees: allocating thread `id` deposits blocks in
 * mailbox[id], and its peer takes them out and frees them.  A block in a
 * mailbox describes itself (struct parcel at its start, the pattern after
 * it), so whoever takes it can check it.  A child inherits the mailboxes
 * as the fork found them: every block still in one is complete (published
 * by the exchange after it was filled) and belongs to a thread the child
 * does not have.
 */
#define MAILBOX_SLOTS 16
struct parcel {
    uint64_t n;   /* bytes of the whole block */
    uint64_t key; /* pat_key(block, n, PARCEL_SEED) */
};
#define PARCEL_SEED 0x9A4CE1
static _Atomic(struct parcel *) mailbox[NWORKERS + 1][MAILBOX_SLOTS];

static int fill_new(struct block *b, size_t n, uint64_t seed)
{
    b->p = malloc(n);
    if (b->p == NULL)
        return 0;
    b->n = n;
    b->key = pat_key(b->p, n, seed);
    pat_fill(b->p, 0, n, b->key);
    return 1;
}

static int intact(const struct block *b)
{
    return pat_check(b->p, 0, b->n, b->key) == PAT_NONE;
}

static void worker_fail(int id, const char *fmt, ...)
{
    if (atomic_load(&worker_failed[id]))
        return;
    int len = snprintf(worker_err[id], sizeof(worker_err[id]), "thread %d: ",
                       id);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(worker_err[id] + len, sizeof(worker_err[id]) - (size_t)len, fmt,
              ap);
    va_end(ap);
    atomic_store(&worker_failed[id], true);
}

static struct parcel *parcel_new(size_t n)
{
    struct parcel *p;

    if (n < sizeof(*p))
        n = sizeof(*p);
    p = malloc(n);
    if (p == NULL)
        return NULL;
    p->n = n;
    p->key = pat_key(p, n, PARCEL_SEED);
    pat_fill(p, sizeof(*p), n, p->key);
    return p;
}

/* Checks a parcel's header before trusting its size, then its bytes. */
static int parcel_intact(const struct parcel *p)
{
    return p->n >= sizeof(*p) && p->n <= 2 * 1024 * 1024 &&
           p->key == pat_key(p, p->n, PARCEL_SEED) &&
           pat_check(p, sizeof(*p), p->n, p->key) == PAT_NONE;
}

/* Mostly small, some medium, now and then a block big enough to be mapped. */
static size_t pick_size(uint64_t *rng)
{
    uint64_t r = pat_rand(rng);
    unsigned bucket = (unsigned)(r % 100);

    r >>= 8;
    if (bucket == 0)
        return 256 * 1024 + (size_t)(r % (768 * 1024));
    if (bucket < 10)
        return 2048 + (size_t)(r % (62 * 1024));
    return 8 + (size_t)(r % 2040);
}

/* The allocation traffic that forks land in the middle of. */
static void alloc_loop(int id)
{
    struct block slots[WORKER_SLOTS];
    uint64_t rng = pat_mix(0xF0F0u + (uint64_t)id) | 1;
    /* Whose parcels this thread frees: the other worker's; the main
     * thread (id NWORKERS) takes worker 1's. */
    int peer = (id + 1) % NWORKERS;

    memset(slots, 0, sizeof(slots));
    while (!atomic_load_explicit(&stop_workers, memory_order_relaxed) &&
           !atomic_load_explicit(&worker_failed[id], memory_order_relaxed)) {
        uint64_t r = pat_rand(&rng);
        struct block *s = &slots[r % WORKER_SLOTS];
        if (r % 4 == 0) {
            /* One op in four goes through the mailboxes: deposit a new
             * block (freeing our own that it replaces), then take and free
             * one of the peer's. */
            unsigned k = (unsigned)(r >> 16) % MAILBOX_SLOTS;
            size_t n = pick_size(&rng);
            struct parcel *mine = parcel_new(n);
            if (mine == NULL) {
                worker_fail(id, "malloc(%zu) returned NULL", n);
                break;
            }
            struct parcel *old = atomic_exchange(&mailbox[id][k], mine);
            struct parcel *theirs = atomic_exchange(&mailbox[peer][k], NULL);
            if (old != NULL && !parcel_intact(old))
                worker_fail(id, "own %zu-byte parcel corrupted",
                            (size_t)old->n);
            if (theirs != NULL && !parcel_intact(theirs))
                worker_fail(id, "thread %d's parcel corrupted", peer);
            free(old);
            free(theirs);
        } else if (s->p != NULL) {
            if (!intact(s))
                worker_fail(id, "%zu-byte block corrupted", s->n);
            free(s->p);
            s->p = NULL;
        } else {
            size_t n = pick_size(&rng);
            if (!fill_new(s, n, rng))
                worker_fail(id, "malloc(%zu) returned NULL", n);
        }
        atomic_fetch_add_explicit(&worker_ops[id], 1, memory_order_relaxed);
    }
    for (int i = 0; i < WORKER_SLOTS; i++)
        free(slots[i].p);
}

static void *worker(void *arg)
{
    int id = (int)(intptr_t)arg;

    for (int i = 0; i < INHERITED_PER_WORKER; i++) {
        struct block *b = &inherited[id * INHERITED_PER_WORKER + i];
        size_t n = (size_t)16 << (i % 14); /* 16 B .. 128 KiB */
        if (!fill_new(b, n + (size_t)i, (uint64_t)id * 1000 + (uint64_t)i))
            worker_fail(id, "malloc(%zu) for an inherited block failed",
                        n + (size_t)i);
    }
    pthread_barrier_wait(&start_barrier);
    alloc_loop(id);
    return NULL;
}

/* Takes every parcel out of the mailboxes and frees it; 0 if one was bad. */
static int drain_mailboxes(void)
{
    int ok = 1;

    for (int id = 0; id <= NWORKERS; id++)
        for (int k = 0; k < MAILBOX_SLOTS; k++) {
            struct parcel *p = atomic_exchange(&mailbox[id][k], NULL);
            if (p != NULL && !parcel_intact(p))
                ok = 0;
            free(p);
        }
    return ok;
}

/* ------------------------------------------------------------------ */
/* What every child does.  Only _exit() codes leave it: no ck_assert,  */
/* no stdio, so nothing interferes with the parent's test runner.      */

struct child_thread_arg {
    struct block *from_main; /* allocated by the child's main thread */
    size_t n;
    int rc;
};

static int churn(uint64_t seed)
{
    static const size_t sizes[] = {16,   24,    100,   500,    1000,
                                   4000, 10000, 40000, 100000, 300000};
    enum { N = sizeof(sizes) / sizeof(sizes[0]) };
    struct block b[2 * N];

    for (int i = 0; i < 2 * N; i++)
        if (!fill_new(&b[i], sizes[i % N], seed + (uint64_t)i))
            return CHILD_MALLOC_NULL;
    for (int i = 0; i < 2 * N; i++) {
        if (!intact(&b[i]))
            return CHILD_CORRUPT;
        free(b[i].p);
    }
    return CHILD_OK;
}

static void *child_thread(void *argp)
{
    struct child_thread_arg *a = argp;

    a->rc = churn(0xC41D);
    if (a->rc != CHILD_OK)
        return NULL;
    /* Cross-thread frees inside the child. */
    for (size_t i = 0; i < a->n; i++) {
        if (!intact(&a->from_main[i])) {
            a->rc = CHILD_CORRUPT;
            return NULL;
        }
        free(a->from_main[i].p);
    }
    return NULL;
}

static int child_main(void)
{
    /*
     * The inherited blocks were allocated by threads that do not exist in
     * the child: half are grown with realloc, all end up freed here.
     */
    for (size_t i = 0; i < NWORKERS * INHERITED_PER_WORKER; i++) {
        struct block b = inherited[i];
        if (!intact(&b))
            return CHILD_INHERITED_CORRUPT;
        if (i % 2 == 0) {
            unsigned char *q = realloc(b.p, b.n * 3);
            if (q == NULL)
                return CHILD_REALLOC_NULL;
            if (pat_check(q, 0, b.n, b.key) != PAT_NONE)
                return CHILD_INHERITED_CORRUPT;
            b.p = q;
        }
        free(b.p);
    }
    /* So are the parcels the workers had left in the mailboxes. */
    if (!drain_mailboxes())
        return CHILD_INHERITED_CORRUPT;

    int rc = churn(0xC0FFEE);
    if (rc != CHILD_OK)
        return rc;

    enum { HANDOFF = 32 };
    struct block handoff[HANDOFF];
    for (size_t i = 0; i < HANDOFF; i++)
        if (!fill_new(&handoff[i], 24 + 200 * i, i))
            return CHILD_MALLOC_NULL;

    struct child_thread_arg arg = {handoff, HANDOFF, -1};
    pthread_t t;
    if (pthread_create(&t, NULL, child_thread, &arg) != 0)
        return CHILD_PTHREAD_CREATE;
    if (pthread_join(t, NULL) != 0 || arg.rc != CHILD_OK)
        return CHILD_THREAD_FAILED;

    /* The child's main thread still allocates after its thread is gone. */
    return churn(0xD0D0);
}

/* ------------------------------------------------------------------ */
/* Parent side.                                                        */

/*
 * Waits for the child without sleeping: a pidfd becomes readable when the
 * child exits, and poll() bounds the wait so a deadlocked child is killed
 * and reported instead of hanging the run.  Returns 0, -1 on timeout, or
 * -2 if waitpid failed (errno says why).
 */
static int wait_child(pid_t pid, int *status)
{
#ifdef SYS_pidfd_open
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd >= 0) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int r;
        do
            r = poll(&pfd, 1, CHILD_WAIT_MS);
        while (r < 0 && errno == EINTR);
        close(fd);
        if (r == 0) {
            kill(pid, SIGKILL);
            waitpid(pid, status, 0);
            return -1;
        }
    }
#endif
    /* Without pidfds, the tcase timeout is the only bound left. */
    while (waitpid(pid, status, 0) < 0)
        if (errno != EINTR)
            return -2;
    return 0;
}

/* Forks `count` times; on the first failure returns -1 and says why. */
static int fork_children(int count, char *why, size_t why_len)
{
    for (int i = 0; i < count; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            snprintf(why, why_len, "fork #%d failed: %s", i, strerror(errno));
            return -1;
        }
        if (pid == 0)
            _exit(child_main());

        int status = 0;
        int w = wait_child(pid, &status);
        if (w == -2) {
            snprintf(why, why_len, "waitpid for child #%d: %s", i,
                     strerror(errno));
            return -1;
        }
        if (w != 0) {
            snprintf(why, why_len,
                     "child #%d did not exit within %d ms (deadlock after "
                     "fork?)",
                     i, CHILD_WAIT_MS);
            return -1;
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            if (WIFSIGNALED(status))
                snprintf(why, why_len, "child #%d killed by signal %d", i,
                         WTERMSIG(status));
            else
                snprintf(why, why_len, "child #%d exited with code %d", i,
                         WEXITSTATUS(status));
            return -1;
        }
    }
    return 0;
}

static void start_workers(pthread_t *t)
{
    atomic_store(&stop_workers, false);
    memset(worker_err, 0, sizeof(worker_err));
    for (int i = 0; i <= NWORKERS; i++) {
        atomic_store(&worker_ops[i], 0);
        atomic_store(&worker_failed[i], false);
    }
    pthread_barrier_init(&start_barrier, NULL, NWORKERS + 1);
    for (int i = 0; i < NWORKERS; i++)
        ck_assert_int_eq(
            pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i), 0);
    pthread_barrier_wait(&start_barrier);
    /* Spin, not sleep: wait for proof that both workers are allocating. */
    for (int i = 0; i < NWORKERS; i++)
        while (atomic_load(&worker_ops[i]) < WARM_OPS &&
               !atomic_load(&worker_failed[i]))
            sched_yield();
}

static void stop_and_check_workers(pthread_t *t)
{
    atomic_store(&stop_workers, true);
    for (int i = 0; i < NWORKERS; i++)
        ck_assert_int_eq(pthread_join(t[i], NULL), 0);
    pthread_barrier_destroy(&start_barrier);
    for (int i = 0; i <= NWORKERS; i++)
        ck_assert_msg(worker_err[i][0] == '\0', "%s", worker_err[i]);
    /* Freed here, by a thread that did not allocate them, after their
     * owners exited. */
    ck_assert_msg(drain_mailboxes(), "a parcel in a mailbox was corrupted");
    /* The parent's copies are untouched by what the children did. */
    for (size_t i = 0; i < NWORKERS * INHERITED_PER_WORKER; i++) {
        ck_assert_msg(intact(&inherited[i]),
                      "parent's inherited block %zu corrupted", i);
        free(inherited[i].p);
    }
}

START_TEST(preloaded)
{
    assert_hakmem_preloaded();
}
END_TEST

START_TEST(fork_while_allocating)
{
    pthread_t t[NWORKERS];
    char why[200] = "";

    start_workers(t);
    int rc = fork_children(FORKS_FROM_MAIN, why, sizeof(why));
    /* Workers are stopped before asserting, so a failure exits cleanly. */
    stop_and_check_workers(t);
    ck_assert_msg(rc == 0, "%s", why);

    /* And the parent's allocator is still healthy afterwards. */
    ck_assert_int_eq(churn(0xAF7E), CHILD_OK);
}
END_TEST

struct forker_arg {
    int count;
    int rc;
    char why[200];
};

static void *forker(void *argp)
{
    struct forker_arg *a = argp;

    a->rc = fork_children(a->count, a->why, sizeof(a->why));
    atomic_store(&stop_workers, true);
    return NULL;
}

START_TEST(fork_from_secondary_thread)
{
    pthread_t t[NWORKERS], f;
    struct forker_arg arg = {FORKS_FROM_THREAD, -1, ""};

    start_workers(t);
    ck_assert_int_eq(pthread_create(&f, NULL, forker, &arg), 0);
    /* The main thread allocates too, until the forker is done. */
    alloc_loop(NWORKERS);
    ck_assert_int_eq(pthread_join(f, NULL), 0);
    stop_and_check_workers(t);
    ck_assert_msg(arg.rc == 0, "%s", arg.why);
}
END_TEST

static Suite *fork_suite(void)
{
    Suite *s = suite_create("fork_mt");
    TCase *tc = tcase_create("fork");

    /* A deadlocked parent is the failure this bound catches (a deadlocked
     * child is caught by CHILD_WAIT_MS); the 1,000 forks take seconds,
     * but a shared, busy machine can stretch that many times over. */
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, preloaded);
    tcase_add_test(tc, fork_while_allocating);
    tcase_add_test(tc, fork_from_secondary_thread);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(fork_suite());

    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
