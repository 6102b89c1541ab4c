/*
 * Integration test: forks from several threads while others read long
 * lines with getline() and one keeps calling fflush(NULL) -- the shape of
 * glibc's malloc/tst-malloc-fork-deadlock, under which hakmem's fork
 * handlers once deadlocked fork against stdio (tests/integration/
 * fork_stdio.c stages that chain step by step).  Here nothing is staged: the threads race freely and the
 * test counts on the number of collisions.
 *
 * Every reader has its own stream on a file holding a single long line,
 * and reads it again and again (rewind, getline, free): getline grows its
 * buffer with realloc while holding the stream's lock.  Half the readers
 * read a line of the medium tier, half one past it, so the reallocs reach
 * the large tier too.  The forkers fork until FORKS children in all have
 * exited with the expected status; the work is counted, not timed.  The
 * readers yield between lines: glibc's locks are not fair, and with eight
 * readers relocking at once on two cores fflush(NULL) -- and so fork,
 * which queues behind it for the list lock -- can starve for seconds,
 * under glibc's malloc as under ours.
 *
 * A deadlock is caught by a watchdog: no fork completing in STALL_SECONDS
 * makes SIGALRM print the counts, kill the children of the moment and end
 * the test with a failure, instead of hanging the run.
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
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "preloaded.h"

#define FORKERS 4
#define READERS 8
/* Children in all, shared by the forkers. */
#define FORKS 600
/* Line lengths: in the medium tier, and past it (256 KiB). */
#define SHORT_LINE 50000
#define LONG_LINE (300 * 1024)
#ifndef STALL_SECONDS
#define STALL_SECONDS 10
#endif
#define CHILD_STATUS 42

static atomic_bool stop;
static atomic_int forks_started, forks_done;
static atomic_long lines_read, flushes;
static atomic_int child_pids[FORKERS];

static atomic_int failed;
static char failure[200];

static void note_failure(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static void note_failure(const char *fmt, ...)
{
    int expected = 0;
    if (!atomic_compare_exchange_strong(&failed, &expected, 1))
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(failure, sizeof failure, fmt, ap);
    va_end(ap);
    atomic_store(&stop, true);
}

/* ------------------------------------------------------------------ */
/* The watchdog: async-signal-safe output only.                        */

static void put_str(char *buf, size_t *at, size_t cap, const char *s)
{
    while (*s && *at + 1 < cap)
        buf[(*at)++] = *s++;
}

static void put_uint(char *buf, size_t *at, size_t cap, unsigned long v)
{
    char d[24];
    int n = 0;
    do
        d[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    while (n > 0 && *at + 1 < cap)
        buf[(*at)++] = d[--n];
}

static void on_stall(int sig)
{
    char line[300];
    size_t at = 0;
    (void)sig;
    put_str(line, &at, sizeof line, "fork_stdio_storm: no fork completed in ");
    put_uint(line, &at, sizeof line, STALL_SECONDS);
    put_str(line, &at, sizeof line, " s after ");
    put_uint(line, &at, sizeof line, (unsigned long)atomic_load(&forks_done));
    put_str(line, &at, sizeof line, " of ");
    put_uint(line, &at, sizeof line, FORKS);
    put_str(line, &at, sizeof line, " forks (");
    put_uint(line, &at, sizeof line, (unsigned long)atomic_load(&lines_read));
    put_str(line, &at, sizeof line, " lines read, ");
    put_uint(line, &at, sizeof line, (unsigned long)atomic_load(&flushes));
    put_str(line, &at, sizeof line,
            " flushes): fork deadlocked against getline and fflush(NULL)\n");
    if (write(2, line, at) < 0) {
        /* Nothing left to tell it with. */
    }
    for (int i = 0; i < FORKERS; i++) {
        int pid = atomic_load(&child_pids[i]);
        if (pid > 0)
            kill(pid, SIGKILL);
    }
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

static void *forker(void *arg)
{
    int id = (int)(intptr_t)arg;

    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        if (atomic_fetch_add(&forks_started, 1) >= FORKS)
            break;
        pid_t pid = fork();
        if (pid == 0) {
            signal(SIGALRM, SIG_DFL);
            alarm(STALL_SECONDS);
            /* The allocator works in the child. */
            void *p = malloc(100), *q = malloc(LONG_LINE);
            if (p == NULL || q == NULL)
                _exit(1);
            free(q);
            free(p);
            _exit(CHILD_STATUS);
        }
        if (pid < 0) {
            note_failure("fork: %s", strerror(errno));
            break;
        }
        atomic_store(&child_pids[id], pid);
        int status;
        pid_t w;
        do
            w = waitpid(pid, &status, 0);
        while (w < 0 && errno == EINTR);
        atomic_store(&child_pids[id], 0);
        if (w < 0) {
            note_failure("waitpid: %s", strerror(errno));
            break;
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != CHILD_STATUS) {
            note_failure("child: status 0x%x, not exit code %d%s", status,
                         CHILD_STATUS,
                         WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM
                             ? " (hung in the child)"
                             : "");
            break;
        }
        atomic_fetch_add(&forks_done, 1);
        alarm(STALL_SECONDS); /* progress: the watchdog starts again */
    }
    return NULL;
}

struct reader_arg {
    int fd;
    size_t len; /* of the line, without its newline */
};

static void *reader(void *argp)
{
    struct reader_arg *a = argp;
    FILE *f = fdopen(a->fd, "r");
    if (f == NULL) {
        note_failure("fdopen: %s", strerror(errno));
        return NULL;
    }
    /* Every reader reads at least once, however quick the forkers. */
    do {
        rewind(f);
        char *line = NULL;
        size_t cap = 0;
        ssize_t got = getline(&line, &cap, f);
        if (got < 0 || (size_t)got != a->len + 1) {
            note_failure("getline returned %zd, not %zu", got, a->len + 1);
            free(line);
            break;
        }
        if (line[a->len] != '\n' || line[0] != 'x' || line[a->len - 1] != 'x') {
            note_failure("getline's %zu-byte line is corrupted", a->len);
            free(line);
            break;
        }
        free(line);
        atomic_fetch_add_explicit(&lines_read, 1, memory_order_relaxed);
        /* Between lines the stream is unlocked: let the flusher in. */
        sched_yield();
    } while (!atomic_load_explicit(&stop, memory_order_relaxed));
    fclose(f);
    return NULL;
}

static void *flusher(void *arg)
{
    (void)arg;
    do {
        if (fflush(NULL) != 0) {
            note_failure("fflush(NULL): %s", strerror(errno));
            break;
        }
        atomic_fetch_add_explicit(&flushes, 1, memory_order_relaxed);
    } while (!atomic_load_explicit(&stop, memory_order_relaxed));
    return NULL;
}

/* A file holding one line of `len` x's; one descriptor on it per reader,
 * its name unlinked. */
static void open_line_file(size_t len, int *fds, int nfds)
{
    const char *dir = getenv("TMPDIR");
    char buf[256];
    if (dir == NULL || *dir == '\0' || strlen(dir) > sizeof buf - 32)
        dir = "/tmp";
    snprintf(buf, sizeof buf, "%s/hakmem-fork-stdio-XXXXXX", dir);
    int fd = mkstemp(buf);
    ck_assert_msg(fd >= 0, "mkstemp(%s): %s", buf, strerror(errno));
    char *text = malloc(len + 1);
    ck_assert_ptr_nonnull(text);
    memset(text, 'x', len);
    text[len] = '\n';
    size_t off = 0;
    while (off < len + 1) {
        ssize_t n = write(fd, text + off, len + 1 - off);
        ck_assert_msg(n > 0, "write: %s", strerror(errno));
        off += (size_t)n;
    }
    free(text);
    for (int i = 0; i < nfds; i++) {
        fds[i] = open(buf, O_RDONLY | O_CLOEXEC);
        ck_assert_msg(fds[i] >= 0, "open(%s): %s", buf, strerror(errno));
    }
    unlink(buf);
    close(fd);
}

START_TEST(preloaded)
{
    assert_hakmem_preloaded();
}
END_TEST

START_TEST(fork_storm_with_getline_and_fflush)
{
    pthread_t forkers[FORKERS], readers[READERS], flush_thread;
    struct reader_arg args[READERS];
    int short_fds[READERS / 2], long_fds[READERS - READERS / 2];

    open_line_file(SHORT_LINE, short_fds, READERS / 2);
    open_line_file(LONG_LINE, long_fds, READERS - READERS / 2);
    for (int i = 0; i < READERS; i++) {
        args[i].fd = i % 2 ? long_fds[i / 2] : short_fds[i / 2];
        args[i].len = i % 2 ? LONG_LINE : SHORT_LINE;
    }
    fflush(stdout);
    fflush(stderr);
    watchdog_arm();
    for (int i = 0; i < READERS; i++)
        ck_assert_int_eq(pthread_create(&readers[i], NULL, reader, &args[i]),
                         0);
    ck_assert_int_eq(pthread_create(&flush_thread, NULL, flusher, NULL), 0);
    for (int i = 0; i < FORKERS; i++)
        ck_assert_int_eq(pthread_create(&forkers[i], NULL, forker,
                                        (void *)(intptr_t)i),
                         0);
    for (int i = 0; i < FORKERS; i++)
        ck_assert_int_eq(pthread_join(forkers[i], NULL), 0);
    atomic_store(&stop, true);
    alarm(STALL_SECONDS); /* joining the others is progress too */
    ck_assert_int_eq(pthread_join(flush_thread, NULL), 0);
    for (int i = 0; i < READERS; i++)
        ck_assert_int_eq(pthread_join(readers[i], NULL), 0);
    alarm(0);

    ck_assert_msg(!atomic_load(&failed), "%s", failure);
    ck_assert_int_eq(atomic_load(&forks_done), FORKS);
}
END_TEST

static Suite *fork_stdio_storm_suite(void)
{
    Suite *s = suite_create("fork_stdio_storm");
    TCase *tc = tcase_create("fork_stdio_storm");

    /* The watchdog catches a deadlock; this only bounds a pathological
     * machine. */
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, preloaded);
    tcase_add_test(tc, fork_storm_with_getline_and_fflush);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(fork_stdio_storm_suite());

    srunner_run_all(sr, CK_NORMAL);
    int failed_tests = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed_tests == 0 ? 0 : 1;
}
