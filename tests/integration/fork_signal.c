/*
 * Integration test: fork() from a signal handler that interrupted malloc
 * or free -- the scenario of glibc's tst-mallocfork2.
 *
 * A single-threaded process allocates and frees in a loop while an
 * interval timer keeps sending it SIGALRM; the handler forks, the child
 * allocates a little and exits, the handler waits for it.  POSIX does not
 * list fork() as async-signal-safe, but glibc makes it so for a
 * single-threaded process (it skips its own malloc locks there) and tests
 * that, and real programs (shells, daemons reaping and respawning from a
 * SIGCHLD handler) rely on it.  An allocator whose fork handlers take its
 * locks unconditionally deadlocks here as soon as a signal lands while
 * the interrupted call holds one of them.
 *
 * The loop runs in a process of its own (the "subject"), so that a
 * deadlock is seen from outside: the test waits for it with a generous
 * bound, and on expiry reports where the subject was stuck instead of
 * hanging until Check's timeout.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pattern.h"
#include "preloaded.h"

/* Forks made from the signal handler before the loop stops. */
#define HANDLER_FORKS 2000
/* Live blocks in the loop, and glibc's bound on their size. */
#define SLOTS 1009
#define MAX_SIZE 70000
/*
 * The child allocates only blocks of CHILD_SIZE, a size class the loop
 * never asks for (its sizes start at MIN_SIZE): the interrupted call may
 * have left the lists of its own class half updated, and no allocator,
 * glibc included, promises anything about those in the child.  What the
 * child does ask is that fork left the allocator usable: its locks free,
 * its thread state valid.
 */
#define CHILD_SIZE 16
#define CHILD_BLOCKS 4
#define MIN_SIZE 33
/* The loop forks itself on one iteration in this many. */
#define LOOP_FORK_EVERY 97
/* Timer period: several loop iterations between signals, so the signals
 * land all over the loop rather than always in the same call. */
#define TIMER_US 2000
/* A healthy subject needs a few seconds; this bounds a deadlocked one. */
#define SUBJECT_WAIT_MS 60000

/* Where the subject's main loop is; read by the handler. */
enum phase {
    PH_LOOP,   /* between allocator calls */
    PH_MALLOC, /* malloc, any size */
    PH_FREE,
    PH_REALLOC,
    PH_CALLOC,
    PH_MEMALIGN, /* posix_memalign */
    PH_FORK,     /* the loop's own fork() (glibc bug 24161) */
    PH_COUNT,
};
static const char *const phase_name[PH_COUNT] = {
    "between calls", "malloc", "free", "realloc", "calloc", "posix_memalign",
    "fork",
};

/* Where the handler is, for the report of a hang. */
enum stage {
    ST_LOOP,
    ST_HANDLER_FORK, /* inside fork() called by the handler */
    ST_HANDLER_WAIT, /* waiting for the handler's child */
    ST_LOOP_FORK,    /* inside the loop's own fork() */
    ST_LOOP_WAIT,
    ST_DONE,
};
static const char *const stage_name[] = {
    "in the main loop",
    "inside fork() called from the signal handler",
    "in the signal handler, waiting for its child",
    "inside fork() called from the main loop",
    "in the main loop, waiting for its child",
    "done",
};

/* Subject exit codes. */
enum {
    SUBJECT_OK = 0,
    SUBJECT_SETUP = 20,
    SUBJECT_ALLOC_NULL = 21,
    SUBJECT_CORRUPT = 22,
    SUBJECT_FORK_FAILED = 23,
    SUBJECT_BAD_CHILD = 24,
};

/* Child exit codes. */
enum {
    CHILD_MALLOC_NULL = 11,
    CHILD_CORRUPT = 12,
};

/* Shared between the test process and the subject (MAP_SHARED). */
struct shared {
    atomic_int handler_forks;
    atomic_int loop_forks;
    atomic_int stage;
    atomic_int phase_at_signal;  /* phase of the latest signal */
    atomic_int child_pid;        /* the child being waited for */
    atomic_int bad_child_status; /* raw wait status of a failed child */
    atomic_int bad_child_phase;  /* phase its fork interrupted */
    atomic_long iterations;
    atomic_int interrupted[PH_COUNT]; /* handler forks per phase */
};

static struct shared *sh;
static volatile sig_atomic_t phase = PH_LOOP;

/* Runs in the child forked by the handler: a little allocation, checked. */
static int child_work(void)
{
    unsigned char *b[CHILD_BLOCKS];

    for (int i = 0; i < CHILD_BLOCKS; i++) {
        b[i] = malloc(CHILD_SIZE);
        if (b[i] == NULL)
            return CHILD_MALLOC_NULL;
        pat_fill(b[i], 0, CHILD_SIZE, (uint64_t)i + 1);
    }
    for (int i = 0; i < CHILD_BLOCKS; i++) {
        if (pat_check(b[i], 0, CHILD_SIZE, (uint64_t)i + 1) != PAT_NONE)
            return CHILD_CORRUPT;
        free(b[i]);
    }
    return 0;
}

/* waitpid without giving up on EINTR; -1 on a real error. */
static int reap(pid_t pid, int *status)
{
    while (waitpid(pid, status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return 0;
}

static void on_alarm(int sig)
{
    int saved_errno = errno;
    int ph = phase;
    int prev_stage = atomic_load(&sh->stage);

    (void)sig;
    if (atomic_load(&sh->handler_forks) >= HANDLER_FORKS)
        goto out;
    atomic_store(&sh->phase_at_signal, ph);
    atomic_store(&sh->stage, ST_HANDLER_FORK);
    pid_t pid = fork();
    if (pid == 0)
        _exit(child_work());
    if (pid < 0) {
        atomic_store(&sh->bad_child_status, -errno);
        atomic_store(&sh->bad_child_phase, ph);
        goto out;
    }
    atomic_store(&sh->child_pid, pid);
    atomic_store(&sh->stage, ST_HANDLER_WAIT);
    int status = 0;
    if (reap(pid, &status) != 0 || status != 0) {
        atomic_store(&sh->bad_child_status, status ? status : -ECHILD);
        atomic_store(&sh->bad_child_phase, ph);
    }
    atomic_fetch_add(&sh->interrupted[ph], 1);
    atomic_fetch_add(&sh->handler_forks, 1);
out:
    /* Back to whatever the interrupted loop was doing. */
    atomic_store(&sh->stage, prev_stage);
    errno = saved_errno;
}

/* The key a block's first bytes carry, checked before it is freed. */
static uint64_t block_key(int slot, size_t n)
{
    return pat_mix(((uint64_t)slot << 32) ^ n);
}

#define TAG_BYTES 64

struct slot {
    unsigned char *p;
    size_t n;
};

static void tag(struct slot *s, int slot)
{
    size_t len = s->n < TAG_BYTES ? s->n : TAG_BYTES;
    pat_fill(s->p, 0, len, block_key(slot, s->n));
}

static int tag_ok(const struct slot *s, int slot)
{
    size_t len = s->n < TAG_BYTES ? s->n : TAG_BYTES;
    return pat_check(s->p, 0, len, block_key(slot, s->n)) == PAT_NONE;
}

static size_t pick_size(uint64_t *rng)
{
    uint64_t r = pat_rand(rng);

    /* One in twenty is big enough for the large tier. */
    if (r % 20 == 0)
        return 256 * 1024 + (size_t)((r >> 8) % (768 * 1024));
    return MIN_SIZE + (size_t)((r >> 8) % (MAX_SIZE - MIN_SIZE));
}

/* The subject: returns its exit code. */
static int subject(void)
{
    static struct slot slots[SLOTS];
    uint64_t rng = 0x5EED5EEDu;

    /* The child's size class gets a slab (a tcache bin on glibc) now, so
     * the child's few blocks come from there. */
    void *warm[2 * CHILD_BLOCKS];
    for (int i = 0; i < 2 * CHILD_BLOCKS; i++)
        if ((warm[i] = malloc(CHILD_SIZE)) == NULL)
            return SUBJECT_SETUP;
    for (int i = 0; i < 2 * CHILD_BLOCKS; i++)
        free(warm[i]);

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_alarm;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGALRM, &sa, NULL) != 0)
        return SUBJECT_SETUP;
    struct itimerval it = {{0, TIMER_US}, {0, TIMER_US}};
    if (setitimer(ITIMER_REAL, &it, NULL) != 0)
        return SUBJECT_SETUP;

    int rc = SUBJECT_OK;
    while (atomic_load(&sh->handler_forks) < HANDLER_FORKS &&
           atomic_load(&sh->bad_child_status) == 0) {
        atomic_fetch_add_explicit(&sh->iterations, 1, memory_order_relaxed);
        uint64_t r = pat_rand(&rng);
        int i = (int)(r % SLOTS);
        r >>= 16;

        /*
         * Now and then the loop forks itself, so that some signals land
         * in fork (glibc bug 24161).  Rarely: a fork takes as long as
         * hundreds of allocator calls, and most signals should land in
         * those.
         */
        if (r % LOOP_FORK_EVERY == 0) {
            atomic_store(&sh->stage, ST_LOOP_FORK);
            phase = PH_FORK;
            pid_t pid = fork();
            phase = PH_LOOP;
            if (pid == 0)
                _exit(0);
            if (pid < 0) {
                rc = SUBJECT_FORK_FAILED;
                break;
            }
            atomic_store(&sh->child_pid, pid);
            atomic_store(&sh->stage, ST_LOOP_WAIT);
            int status = 0;
            if (reap(pid, &status) != 0 || status != 0) {
                rc = SUBJECT_BAD_CHILD;
                break;
            }
            atomic_store(&sh->stage, ST_LOOP);
            atomic_fetch_add(&sh->loop_forks, 1);
        }
        r >>= 8;

        struct slot *s = &slots[i];
        if (s->p != NULL && !tag_ok(s, i)) {
            rc = SUBJECT_CORRUPT;
            break;
        }
        unsigned op = (unsigned)(r % 10);
        size_t n = pick_size(&rng);
        if (op == 0 && s->p != NULL) {
            phase = PH_REALLOC;
            unsigned char *q = realloc(s->p, n);
            phase = PH_LOOP;
            if (q == NULL) {
                rc = SUBJECT_ALLOC_NULL;
                break;
            }
            /* realloc keeps the first min(old, new) bytes. */
            size_t keep = s->n < n ? s->n : n;
            size_t len = keep < TAG_BYTES ? keep : TAG_BYTES;
            if (pat_check(q, 0, len, block_key(i, s->n)) != PAT_NONE) {
                rc = SUBJECT_CORRUPT;
                break;
            }
            s->p = q;
        } else {
            phase = PH_FREE;
            free(s->p);
            phase = PH_LOOP;
            s->p = NULL;
            if (op == 1) {
                phase = PH_CALLOC;
                s->p = calloc(1, n);
            } else if (op == 2) {
                void *q = NULL;
                phase = PH_MEMALIGN;
                if (posix_memalign(&q, (size_t)64 << (r % 7), n) == 0)
                    s->p = q;
            } else {
                phase = PH_MALLOC;
                s->p = malloc(n);
            }
            phase = PH_LOOP;
            if (s->p == NULL) {
                rc = SUBJECT_ALLOC_NULL;
                break;
            }
        }
        s->n = n;
        tag(s, i);
    }

    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    signal(SIGALRM, SIG_IGN);
    /* The parent's own heap came through all those forks intact. */
    for (int i = 0; i < SLOTS; i++) {
        if (slots[i].p != NULL && !tag_ok(&slots[i], i) && rc == SUBJECT_OK)
            rc = SUBJECT_CORRUPT;
        free(slots[i].p);
    }
    if (rc == SUBJECT_OK && atomic_load(&sh->bad_child_status) != 0)
        rc = SUBJECT_BAD_CHILD;
    atomic_store(&sh->stage, ST_DONE);
    return rc;
}

/* First line of /proc/PID/NAME, for the report of a hang. */
static void proc_line(pid_t pid, const char *name, char *out, size_t len)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, out, len - 1) : -1;
    if (fd >= 0)
        close(fd);
    if (n <= 0) {
        snprintf(out, len, "?");
        return;
    }
    out[n] = '\0';
    out[strcspn(out, "\n")] = '\0';
}

/* Waits for the subject; 0 when it exited, -1 when the bound expired. */
static int wait_subject(pid_t pid, int *status)
{
#ifdef SYS_pidfd_open
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd >= 0) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int r;
        do
            r = poll(&pfd, 1, SUBJECT_WAIT_MS);
        while (r < 0 && errno == EINTR);
        close(fd);
        if (r == 0)
            return -1;
    }
#endif
    /* Without pidfds, Check's timeout is the only bound left. */
    ck_assert_int_eq(reap(pid, status), 0);
    return 0;
}

START_TEST(preloaded)
{
    assert_hakmem_preloaded();
}
END_TEST

START_TEST(fork_in_signal_handler)
{
    sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(sh, MAP_FAILED);

    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        _exit(subject());

    int status = 0;
    if (wait_subject(pid, &status) != 0) {
        /* Deadlocked: say where, then clean up. */
        char wchan[64], sys[128], cwchan[64] = "-";
        int stage = atomic_load(&sh->stage);
        int ph = atomic_load(&sh->phase_at_signal);
        pid_t child = atomic_load(&sh->child_pid);
        proc_line(pid, "wchan", wchan, sizeof(wchan));
        proc_line(pid, "syscall", sys, sizeof(sys));
        if (stage == ST_HANDLER_WAIT || stage == ST_LOOP_WAIT)
            proc_line(child, "wchan", cwchan, sizeof(cwchan));
        kill(pid, SIGKILL);
        if (child > 0)
            kill(child, SIGKILL);
        reap(pid, &status);
        ck_abort_msg("the process hung %s after %d forks from the handler "
                     "and %d from the loop; the latest signal had "
                     "interrupted %s (wchan %s, syscall %s, child wchan %s)",
                     stage_name[stage], atomic_load(&sh->handler_forks),
                     atomic_load(&sh->loop_forks),
                     ph >= 0 && ph < PH_COUNT ? phase_name[ph] : "?", wchan,
                     sys, cwchan);
    }

    int bad = atomic_load(&sh->bad_child_status);
    int bad_ph = atomic_load(&sh->bad_child_phase);
    if (bad < 0)
        ck_abort_msg("fork or waitpid in the handler failed: %s (signal "
                     "interrupted %s)",
                     strerror(-bad), phase_name[bad_ph]);
    if (bad > 0) {
        if (WIFSIGNALED(bad))
            ck_abort_msg("a child forked in the handler was killed by "
                         "signal %d (signal interrupted %s)",
                         WTERMSIG(bad), phase_name[bad_ph]);
        ck_abort_msg("a child forked in the handler exited with %d "
                     "(signal interrupted %s)",
                     WEXITSTATUS(bad), phase_name[bad_ph]);
    }
    ck_assert_msg(WIFEXITED(status),
                  "the process was killed by signal %d after %d forks",
                  WTERMSIG(status), atomic_load(&sh->handler_forks));
    ck_assert_msg(WEXITSTATUS(status) == SUBJECT_OK,
                  "the process exited with %d (21: allocation failed, 22: "
                  "a live block corrupted, 23: fork failed, 24: a child of "
                  "the loop failed)",
                  WEXITSTATUS(status));
    ck_assert_int_eq(atomic_load(&sh->handler_forks), HANDLER_FORKS);

    /* The test means something only if signals did land in the allocator. */
    int in_alloc = 0;
    for (int p = PH_MALLOC; p <= PH_MEMALIGN; p++)
        in_alloc += atomic_load(&sh->interrupted[p]);
    fprintf(stderr,
            "# %ld iterations, %d loop forks; handler forks by interrupted "
            "call: loop %d, malloc %d, free %d, realloc %d, calloc %d, "
            "posix_memalign %d, fork %d\n",
            (long)atomic_load(&sh->iterations), atomic_load(&sh->loop_forks),
            atomic_load(&sh->interrupted[PH_LOOP]),
            atomic_load(&sh->interrupted[PH_MALLOC]),
            atomic_load(&sh->interrupted[PH_FREE]),
            atomic_load(&sh->interrupted[PH_REALLOC]),
            atomic_load(&sh->interrupted[PH_CALLOC]),
            atomic_load(&sh->interrupted[PH_MEMALIGN]),
            atomic_load(&sh->interrupted[PH_FORK]));
    /* How many land there depends on timing (7.8% on a loaded CI machine,
     * more when idle); 1% still shows that the scenario was exercised. */
    ck_assert_msg(in_alloc >= HANDLER_FORKS / 100,
                  "only %d of %d signals interrupted an allocator call",
                  in_alloc, HANDLER_FORKS);
    munmap(sh, sizeof(*sh));
}
END_TEST

static Suite *fork_signal_suite(void)
{
    Suite *s = suite_create("fork_signal");
    TCase *tc = tcase_create("fork_signal");

    /* Above SUBJECT_WAIT_MS, so a hang is reported by the test itself. */
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, preloaded);
    tcase_add_test(tc, fork_in_signal_handler);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(fork_signal_suite());

    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
