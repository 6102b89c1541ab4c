/*
 * Integration test: fork() while one thread is in getline() and another
 * in fflush(NULL) -- the deadlock that glibc's malloc avoids by taking its
 * stdio list lock before its malloc locks.
 *
 * Each round stages the whole chain, in this order, and checks it came
 * undone:
 *   1. the reader calls getline() on a fopencookie() stream; the stream's
 *      read function runs with the FILE lock held and waits there;
 *   2. the flusher calls fflush(NULL): it takes the stdio list lock and
 *      blocks on the reader's FILE lock;
 *   3. the forker calls fork(), which blocks on the list lock;
 *   4. only then does the read function return: getline goes on copying a
 *      line longer than the medium tier, so its reallocs end in the large
 *      tier, still under the FILE lock.
 * An allocator whose fork handler holds its locks by step 3 leaves the
 * reader waiting in realloc for the forker, the forker for the flusher
 * and the flusher for the reader.  A correct one lets the reader finish,
 * then the flusher, then the fork.
 *
 * Steps 2 and 3 are observed, not waited out: a thread counts as blocked
 * when /proc says it sleeps (state S), which the flusher and the forker
 * can only do on the lock named above.  The polling uses no stdio: fopen
 * would need the list lock the flusher holds.
 *
 * A deadlock is caught by a watchdog: no round completing in STALL_SECONDS
 * makes SIGALRM print what was pending, kill the child if there is one and
 * end the test with a failure, instead of hanging the run.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "preloaded.h"

#define ROUNDS 100
/* Past the medium tier's largest block (256 KiB): getline's last
 * realloc needs the large tier. */
#define LINE_LEN (300 * 1024)
/* Far above a healthy round (milliseconds), small enough for CI. */
#ifndef STALL_SECONDS
#define STALL_SECONDS 10
#endif

/* Exit codes of a child. */
enum {
    CHILD_OK = 0,
    CHILD_MALLOC = 20,
    CHILD_CORRUPT = 21,
    CHILD_MEMSTREAM = 22,
    CHILD_GETLINE = 23,
    CHILD_FLUSH = 24,
};

/* What the forker is doing in the current round. */
enum { FORK_IDLE, FORK_CALLING, FORK_RETURNED };
/* What the flusher is doing in the current round. */
enum { FLUSH_IDLE, FLUSH_CALLING, FLUSH_RETURNED };

static pthread_barrier_t round_start, round_end;
static atomic_int flusher_tid, forker_tid;
static atomic_int reader_in_read;      /* step 1 reached */
static atomic_int flush_state;         /* FLUSH_* */
static atomic_int fork_state;          /* FORK_* */
static atomic_int staged_flush, staged_fork; /* rounds that reached 2, 3 */
static atomic_int rounds_done;
static atomic_int child_pid;

/* First failure, written once by whichever thread saw it. */
static atomic_int failed;
static char failure[200];

static void note_failure(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note_failure(const char *fmt, ...)
{
    int expected = 0;
    if (!atomic_compare_exchange_strong(&failed, &expected, 1))
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(failure, sizeof failure, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------ */
/* The watchdog.                                                        */

static void put_str(char *buf, size_t *at, size_t cap, const char *s)
{
    while (*s && *at + 1 < cap)
        buf[(*at)++] = *s++;
}

static void put_uint(char *buf, size_t *at, size_t cap, unsigned v)
{
    char d[16];
    int n = 0;
    do
        d[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    while (n > 0 && *at + 1 < cap)
        buf[(*at)++] = d[--n];
}

static void on_stall(int sig)
{
    static const char *const fork_names[] = {"not yet called", "in fork()",
                                             "returned"};
    static const char *const flush_names[] = {"not yet called",
                                              "in fflush(NULL)", "returned"};
    char line[400];
    size_t at = 0;
    (void)sig;
    put_str(line, &at, sizeof line, "fork_stdio: round ");
    put_uint(line, &at, sizeof line, (unsigned)atomic_load(&rounds_done));
    put_str(line, &at, sizeof line, " made no progress in ");
    put_uint(line, &at, sizeof line, STALL_SECONDS);
    put_str(line, &at, sizeof line,
            " s: fork, fflush(NULL) and getline deadlocked (reader ");
    put_str(line, &at, sizeof line,
            atomic_load(&reader_in_read) ? "in getline" : "starting");
    put_str(line, &at, sizeof line, ", flusher ");
    put_str(line, &at, sizeof line, flush_names[atomic_load(&flush_state)]);
    put_str(line, &at, sizeof line, ", forker ");
    put_str(line, &at, sizeof line, fork_names[atomic_load(&fork_state)]);
    put_str(line, &at, sizeof line, ")\n");
    if (write(2, line, at) < 0) {
        /* Nothing left to tell it with. */
    }
    int pid = atomic_load(&child_pid);
    if (pid > 0)
        kill(pid, SIGKILL);
    _exit(1);
}

static void watchdog_arm(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stall;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    alarm(STALL_SECONDS);
}

/* ------------------------------------------------------------------ */
/* Thread states from /proc, without stdio or malloc.                  */

static int gettid_(void) { return (int)syscall(SYS_gettid); }

/* The state letter of thread `tid` of this process, or '?' on error. */
static char thread_state(int tid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return '?';
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return '?';
    buf[n] = '\0';
    /* "tid (comm) S ...": comm may hold anything, so the last ')'. */
    char *p = strrchr(buf, ')');
    return p && p[1] == ' ' ? p[2] : '?';
}

static int blocked(int tid) { return thread_state(tid) == 'S'; }

/* ------------------------------------------------------------------ */
/* The reader: getline on a stream whose read function stalls once.   */

struct line_source {
    size_t served;
    int first;
};

static ssize_t source_read(void *cookie, char *buf, size_t size)
{
    struct line_source *src = cookie;

    if (src->first) {
        src->first = 0;
        /* Step 1: this runs under the stream's FILE lock. */
        atomic_store(&reader_in_read, 1);
        /* Step 4 waits for step 3: the forker blocked in fork(). */
        for (;;) {
            int st = atomic_load(&fork_state);
            if (st == FORK_RETURNED)
                break;
            if (st == FORK_CALLING && blocked(atomic_load(&forker_tid))) {
                atomic_fetch_add(&staged_fork, 1);
                break;
            }
            sched_yield();
        }
    }
    size_t left = LINE_LEN + 1 - src->served;
    size_t n = size < left ? size : left;
    for (size_t i = 0; i < n; i++)
        buf[i] = src->served + i == LINE_LEN ? '\n' : 'x';
    src->served += n;
    return (ssize_t)n;
}

static void read_one_line(int round)
{
    struct line_source src = {0, 1};
    cookie_io_functions_t io = {.read = source_read};
    FILE *fp = fopencookie(&src, "r", io);
    if (fp == NULL) {
        note_failure("round %d: fopencookie: %s", round, strerror(errno));
        /* Let the others through this round. */
        atomic_store(&reader_in_read, 1);
        return;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t got = getline(&line, &cap, fp);
    if (got != LINE_LEN + 1)
        note_failure("round %d: getline returned %zd, not %d", round, got,
             LINE_LEN + 1);
    else if (line[LINE_LEN] != '\n' || line[0] != 'x' ||
             line[LINE_LEN - 1] != 'x' ||
             memchr(line, '\n', LINE_LEN) != NULL)
        note_failure("round %d: getline's line is corrupted", round);
    free(line);
    fclose(fp);
}

static void *reader(void *arg)
{
    (void)arg;
    for (int r = 0; r < ROUNDS; r++) {
        /* Between the barriers nobody reads the round's flags. */
        atomic_store(&reader_in_read, 0);
        atomic_store(&flush_state, FLUSH_IDLE);
        atomic_store(&fork_state, FORK_IDLE);
        pthread_barrier_wait(&round_start);
        read_one_line(r);
        pthread_barrier_wait(&round_end);
    }
    return NULL;
}

/* ------------------------------------------------------------------ */
/* The flusher.                                                         */

static void *flusher(void *arg)
{
    (void)arg;
    atomic_store(&flusher_tid, gettid_());
    for (int r = 0; r < ROUNDS; r++) {
        pthread_barrier_wait(&round_start);
        while (!atomic_load(&reader_in_read))
            sched_yield();
        atomic_store(&flush_state, FLUSH_CALLING);
        /* Step 2. */
        if (fflush(NULL) != 0)
            note_failure("round %d: fflush(NULL): %s", r, strerror(errno));
        atomic_store(&flush_state, FLUSH_RETURNED);
        pthread_barrier_wait(&round_end);
    }
    return NULL;
}

/* ------------------------------------------------------------------ */
/* The forker and its children.                                        */

/* In the child: the allocator and stdio both work, with the child's
 * locks reset by fork, and with the reader's FILE still in the list. */
static int child_main(void)
{
    signal(SIGALRM, SIG_DFL);
    alarm(STALL_SECONDS);

    static const size_t sizes[] = {24, 1000, 40000, 200000, 600000};
    enum { N = sizeof sizes / sizeof sizes[0] };
    unsigned char *b[N];
    for (int i = 0; i < N; i++) {
        b[i] = malloc(sizes[i]);
        if (b[i] == NULL)
            return CHILD_MALLOC;
        memset(b[i], 0x40 + i, sizes[i]);
    }
    for (int i = 0; i < N; i++) {
        if (b[i][0] != 0x40 + i || b[i][sizes[i] - 1] != 0x40 + i)
            return CHILD_CORRUPT;
        free(b[i]);
    }

    /* open_memstream: the list lock, and reallocs under a FILE lock. */
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    if (m == NULL)
        return CHILD_MEMSTREAM;
    for (int i = 0; i < 20000; i++)
        fputs("child line\n", m);
    if (fclose(m) != 0 || len != 20000 * 11)
        return CHILD_MEMSTREAM;

    /* getline from it, through fmemopen. */
    FILE *in = fmemopen(text, len, "r");
    if (in == NULL)
        return CHILD_GETLINE;
    char *line = NULL;
    size_t cap = 0;
    int lines = 0;
    ssize_t got;
    while ((got = getline(&line, &cap, in)) > 0) {
        if (got != 11 || strcmp(line, "child line\n") != 0)
            return CHILD_GETLINE;
        lines++;
    }
    free(line);
    fclose(in);
    free(text);
    if (lines != 20000)
        return CHILD_GETLINE;
    if (fflush(NULL) != 0)
        return CHILD_FLUSH;
    return CHILD_OK;
}

static void fork_one(int round)
{
    pid_t pid = fork();
    if (pid == 0)
        _exit(child_main());
    atomic_store(&fork_state, FORK_RETURNED);
    if (pid < 0) {
        note_failure("round %d: fork: %s", round, strerror(errno));
        return;
    }
    atomic_store(&child_pid, pid);
    int status;
    pid_t w;
    do
        w = waitpid(pid, &status, 0);
    while (w < 0 && errno == EINTR);
    atomic_store(&child_pid, 0);
    if (w < 0)
        note_failure("round %d: waitpid: %s", round, strerror(errno));
    else if (WIFSIGNALED(status))
        note_failure("round %d: child killed by signal %d%s", round,
             WTERMSIG(status),
             WTERMSIG(status) == SIGALRM ? " (hung in the child)" : "");
    else if (!WIFEXITED(status) || WEXITSTATUS(status) != CHILD_OK)
        note_failure("round %d: child exited with code %d", round,
             WEXITSTATUS(status));
}

static void *forker(void *arg)
{
    (void)arg;
    atomic_store(&forker_tid, gettid_());
    for (int r = 0; r < ROUNDS; r++) {
        pthread_barrier_wait(&round_start);
        /* Step 3 waits for step 2: the flusher blocked on the FILE lock,
         * holding the list lock.  (A libc whose fflush(NULL) passed the
         * reader by would return instead; the chain then cannot form.) */
        for (;;) {
            int st = atomic_load(&flush_state);
            if (st == FLUSH_RETURNED)
                break;
            if (st == FLUSH_CALLING && blocked(atomic_load(&flusher_tid))) {
                atomic_fetch_add(&staged_flush, 1);
                break;
            }
            sched_yield();
        }
        atomic_store(&fork_state, FORK_CALLING);
        fork_one(r);
        pthread_barrier_wait(&round_end);
        atomic_fetch_add(&rounds_done, 1);
        alarm(STALL_SECONDS); /* progress: the watchdog starts again */
    }
    return NULL;
}

/* ------------------------------------------------------------------ */

START_TEST(preloaded)
{
    assert_hakmem_preloaded();
}
END_TEST

START_TEST(fork_during_getline_and_fflush)
{
    pthread_t t[3];

    /* Nothing buffered for the flusher to write out. */
    fflush(stdout);
    fflush(stderr);
    watchdog_arm();
    pthread_barrier_init(&round_start, NULL, 3);
    pthread_barrier_init(&round_end, NULL, 3);
    ck_assert_int_eq(pthread_create(&t[0], NULL, flusher, NULL), 0);
    ck_assert_int_eq(pthread_create(&t[1], NULL, forker, NULL), 0);
    ck_assert_int_eq(pthread_create(&t[2], NULL, reader, NULL), 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(pthread_join(t[i], NULL), 0);

    /* The list lock is free again: another thread than the forker can
     * open and close a stream (the watchdog still runs). */
    FILE *f = fopen("/dev/null", "w");
    ck_assert_ptr_nonnull(f);
    fputs("x", f);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_int_eq(fflush(NULL), 0);
    alarm(0);
    pthread_barrier_destroy(&round_start);
    pthread_barrier_destroy(&round_end);

    ck_assert_msg(!atomic_load(&failed), "%s", failure);
    /* The test proves something only if the chain formed each round. */
    ck_assert_msg(atomic_load(&staged_flush) == ROUNDS &&
                      atomic_load(&staged_fork) == ROUNDS,
                  "the chain formed in only %d (fflush blocked) and %d "
                  "(fork blocked) of %d rounds",
                  atomic_load(&staged_flush), atomic_load(&staged_fork),
                  ROUNDS);
}
END_TEST

static Suite *fork_stdio_suite(void)
{
    Suite *s = suite_create("fork_stdio");
    TCase *tc = tcase_create("fork_stdio");

    /* The watchdog catches a deadlock; this only bounds a pathological
     * machine. */
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, preloaded);
    tcase_add_test(tc, fork_during_getline_and_fflush);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(fork_stdio_suite());

    srunner_run_all(sr, CK_NORMAL);
    int failed_tests = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed_tests == 0 ? 0 : 1;
}
