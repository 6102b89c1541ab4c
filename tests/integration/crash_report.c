/*
 * Integration test: the crash report.  A SIGSEGV or SIGBUS inside hakmem
 * prints one line naming the address, hakmem's version and the faulting
 * instruction, and the process still dies of the original signal; a fault
 * in the program itself, a signal sent with kill(), and a program's own
 * handler or SIG_IGN all end exactly as they would without hakmem.
 *
 * Each case runs in a "subject": this program re-executed with
 * `--subject NAME`, with the library preloaded through the inherited
 * LD_PRELOAD and its stdout and stderr on pipes.  Re-executing, rather
 * than forking, gives every subject a fresh hakmem whose knobs come from
 * an environment the test controls: a knob that made hakmem notice the
 * corruption itself (HAKMEM_HARDENED) or print at start-up
 * (HAKMEM_VERBOSE) would change what the subject says.
 */
#define _GNU_SOURCE
#include <check.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <link.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "preloaded.h"

/* A subject that has said nothing for this long is reported as hung. */
#define SUBJECT_WAIT_MS 60000

/* Through volatile pointers, so the compiler can neither drop the calls
 * nor reason about the block after free(). */
static void *(*volatile const call_malloc)(size_t) = malloc;
static void (*volatile const call_free)(void *) = free;
static void *volatile sink;

/* ------------------------------------------------------------------ */
/* The subjects.  They report what the parent needs to know on stdout */
/* with write(2): a subject that dies of a signal loses stdio buffers. */

static void say(int fd, const char *s)
{
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

struct text_range {
    uintptr_t addr, lo, hi;
};

static int find_text(struct dl_phdr_info *info, size_t size, void *argp)
{
    struct text_range *r = argp;
    (void)size;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X) && r->addr >= lo &&
            r->addr - lo < ph->p_memsz) {
            r->lo = lo;
            r->hi = lo + ph->p_memsz;
            return 1;
        }
    }
    return 0;
}

/* Tells the parent where the code of the malloc we call (hakmem's) lies,
 * so that it can check the pc in the report. */
static void say_allocator_text(void)
{
    struct text_range r = {(uintptr_t)call_malloc, 0, 0};
    char line[80];

    dl_iterate_phdr(find_text, &r);
    snprintf(line, sizeof(line), "text %" PRIxPTR " %" PRIxPTR "\n", r.lo,
             r.hi);
    say(1, line);
}

/*
 * The corruption the report is about. Free-list links live out of band,
 * so no write into a block can make hakmem fault; a wild write over the
 * metadata at the start of a SuperSlab (the first page of the 2 MiB
 * region holding a tiny block, src/base/types.h) still can: filled
 * with `wild`, the slab of the block's class says its links are at
 * `wild` and its first free block is the low 16 bits of `wild`, so with
 * those zero the next malloc of the size reads `wild` itself.
 */
#define WILD ((uintptr_t)0x20000) /* 128 KiB: nothing is mapped there */
static void corrupt_free_list(uintptr_t wild)
{
    unsigned char *p = call_malloc(32);

    if (p == NULL)
        _exit(2);
    volatile uintptr_t *header =
        (volatile uintptr_t *)((uintptr_t)p & ~(uintptr_t)((2u << 20) - 1));
    for (size_t i = 0; i < 4096 / sizeof *header; i++)
        header[i] = wild;
    sink = call_malloc(32);
    sink = call_malloc(32);
}

/* A page of a file that has no byte there: touching it raises SIGBUS. */
static void *page_past_eof(void)
{
    int fd = memfd_create("crash_report", MFD_CLOEXEC);
    void *map = MAP_FAILED;

    /* 64 KiB-aligned, for corrupt_free_list (every page is past EOF). */
    if (fd >= 0)
        map = mmap(NULL, 128 << 10, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED)
        _exit(2);
    return (void *)(((uintptr_t)map + 0xffff) & ~(uintptr_t)0xffff);
}

static volatile uintptr_t program_wild_address = 16;

static void own_handler(int sig)
{
    (void)sig;
    say(2, "the program's own handler\n");
    _exit(42);
}

static struct sigaction hakmem_action;

/* A program that chains to the handler it found (as crash reporters do). */
static void chaining_handler(int sig, siginfo_t *si, void *ctx)
{
    hakmem_action.sa_sigaction(sig, si, ctx);
}

static int subject(const char *name)
{
    say_allocator_text();
    if (strcmp(name, "hakmem-segv") == 0) {
        corrupt_free_list(WILD);
    } else if (strcmp(name, "hakmem-sigbus") == 0) {
        char line[40];
        void *page = page_past_eof();
        snprintf(line, sizeof(line), "addr %" PRIxPTR "\n", (uintptr_t)page);
        say(1, line);
        corrupt_free_list((uintptr_t)page);
    } else if (strcmp(name, "program-segv") == 0) {
        *(volatile int *)program_wild_address = 1;
    } else if (strcmp(name, "program-sigbus") == 0) {
        *(volatile int *)page_past_eof() = 1;
    } else if (strcmp(name, "kill-segv") == 0) {
        kill(getpid(), SIGSEGV);
    } else if (strcmp(name, "own-handler") == 0) {
        /* main() runs after hakmem's constructor installed its handler:
         * the program's, installed now, must be the one that runs. */
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = own_handler;
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGSEGV, &sa, NULL) != 0)
            return 2;
        corrupt_free_list(WILD);
    } else if (strcmp(name, "chained") == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_sigaction = chaining_handler;
        sa.sa_flags = SA_SIGINFO;
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGSEGV, &sa, &hakmem_action) != 0)
            return 2;
        if (!(hakmem_action.sa_flags & SA_SIGINFO))
            return 3; /* hakmem installed no handler */
        corrupt_free_list(WILD);
    } else if (strcmp(name, "ignored") == 0) {
        /* SIG_IGN came in from the parent through exec. */
        struct sigaction segv, bus;
        if (sigaction(SIGSEGV, NULL, &segv) != 0 ||
            sigaction(SIGBUS, NULL, &bus) != 0)
            return 2;
        return segv.sa_handler == SIG_IGN && bus.sa_handler == SIG_IGN ? 0
                                                                       : 4;
    } else {
        return 2;
    }
    return 0; /* every case above should have ended the process */
}

/* ------------------------------------------------------------------ */
/* The parent: runs one subject and collects how it ended.            */

struct outcome {
    int status;
    char out[512];
    char err[2048];
};

/* Reads the subject's stdout and stderr until it closes both.  A subject
 * that goes quiet for SUBJECT_WAIT_MS, or floods a buffer (a handler
 * that reports the same fault over and over), is killed. */
static void collect(int out_fd, int err_fd, pid_t pid, struct outcome *o)
{
    struct pollfd pfd[2] = {{.fd = out_fd, .events = POLLIN},
                            {.fd = err_fd, .events = POLLIN}};
    size_t len[2] = {0, 0};
    char *buf[2] = {o->out, o->err};
    size_t cap[2] = {sizeof(o->out) - 1, sizeof(o->err) - 1};
    int open_fds = 2;
    const char *killed = NULL;

    while (open_fds > 0 && killed == NULL) {
        int r = poll(pfd, 2, SUBJECT_WAIT_MS);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            killed = "went quiet without ending";
            break;
        }
        for (int i = 0; i < 2; i++) {
            if (pfd[i].fd < 0 || pfd[i].revents == 0)
                continue;
            if (len[i] == cap[i]) {
                killed = "filled an output buffer";
                break;
            }
            ssize_t n = read(pfd[i].fd, buf[i] + len[i], cap[i] - len[i]);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                pfd[i].fd = -1;
                open_fds--;
            } else {
                len[i] += (size_t)n;
            }
        }
    }
    if (killed != NULL)
        kill(pid, SIGKILL);
    o->out[len[0]] = '\0';
    o->err[len[1]] = '\0';
    while (waitpid(pid, &o->status, 0) < 0)
        ck_assert_msg(errno == EINTR, "waitpid: %s", strerror(errno));
    ck_assert_msg(killed == NULL, "the subject %s and was killed; stderr: %.300s",
                  killed, o->err);
}

static void run_subject(const char *name, int ignore_signals,
                        struct outcome *o)
{
    int out[2], err[2];

    memset(o, 0, sizeof(*o));
    ck_assert_int_eq(pipe2(out, O_CLOEXEC), 0);
    ck_assert_int_eq(pipe2(err, O_CLOEXEC), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* The subjects die of SIGSEGV on purpose: no core files. */
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
        if (dup2(out[1], 1) < 0 || dup2(err[1], 2) < 0)
            _exit(126);
        if (ignore_signals) {
            signal(SIGSEGV, SIG_IGN);
            signal(SIGBUS, SIG_IGN);
        }
        unsetenv("HAKMEM_HARDENED");
        unsetenv("HAKMEM_VERBOSE");
        execl("/proc/self/exe", "crash_report", "--subject", name,
              (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    close(err[1]);
    collect(out[0], err[0], pid, o);
    close(out[0]);
    close(err[0]);
}

static const char *describe(int status)
{
    static char text[64];

    if (WIFSIGNALED(status))
        snprintf(text, sizeof(text), "killed by signal %d (%s)",
                 WTERMSIG(status), strsignal(WTERMSIG(status)));
    else
        snprintf(text, sizeof(text), "exited with status %d",
                 WEXITSTATUS(status));
    return text;
}

static void assert_died_of(const struct outcome *o, int sig)
{
    ck_assert_msg(WIFSIGNALED(o->status) && WTERMSIG(o->status) == sig,
                  "expected death by signal %d (%s), but the subject %s; "
                  "stderr: %s",
                  sig, strsignal(sig), describe(o->status), o->err);
}

static const char *hakmem_version(void)
{
    const char *(*version)(void) =
        (const char *(*)(void))dlsym(RTLD_DEFAULT, "hakmem_version_string");

    ck_assert_msg(version != NULL, "hakmem_version_string not found");
    return version();
}

/*
 * Checks that stderr is exactly the report for `sig` at `addr`, with a pc
 * inside the allocator's code as the subject found it.
 */
static void assert_report(const struct outcome *o, const char *sig,
                          uintptr_t addr)
{
    uintptr_t lo = 0, hi = 0, pc = 0;
    char expected[512];

    ck_assert_msg(sscanf(o->out, "text %" SCNxPTR " %" SCNxPTR, &lo, &hi) == 2,
                  "the subject did not say where hakmem's code is: %s",
                  o->out);
    const char *at = strstr(o->err, ", pc 0x");
    ck_assert_msg(at != NULL && sscanf(at, ", pc 0x%" SCNxPTR, &pc) == 1,
                  "no crash report (with a pc) on stderr: \"%s\"", o->err);
    snprintf(expected, sizeof(expected),
             "hakmem: %s at address 0x%" PRIxPTR
             " in the allocator (hakmem %s, pc 0x%" PRIxPTR
             "): heap metadata is probably corrupted by a use after free "
             "or an overflow\n",
             sig, addr, hakmem_version(), pc);
    ck_assert_str_eq(o->err, expected);
    ck_assert_msg(pc >= lo && pc < hi,
                  "pc 0x%" PRIxPTR " is outside hakmem's code [0x%" PRIxPTR
                  ", 0x%" PRIxPTR ")",
                  pc, lo, hi);
}

START_TEST(preloaded)
{
    assert_hakmem_preloaded();
}
END_TEST

START_TEST(segv_in_hakmem_is_reported)
{
    struct outcome o;

    run_subject("hakmem-segv", 0, &o);
    assert_died_of(&o, SIGSEGV);
    assert_report(&o, "SIGSEGV", WILD);
}
END_TEST

START_TEST(sigbus_in_hakmem_is_reported)
{
    struct outcome o;
    uintptr_t page = 0;

    run_subject("hakmem-sigbus", 0, &o);
    assert_died_of(&o, SIGBUS);
    const char *line = strstr(o.out, "addr ");
    ck_assert_msg(line != NULL && sscanf(line, "addr %" SCNxPTR, &page) == 1,
                  "the subject did not say where its page is: %s", o.out);
    assert_report(&o, "SIGBUS", page);
}
END_TEST

/* Faults in the program's own code, and a sent SIGSEGV (not a fault at
 * all), end the process as without hakmem: that signal, no report. */
static const struct {
    const char *subject;
    int sig;
} left_alone[] = {
    {"program-segv", SIGSEGV},
    {"program-sigbus", SIGBUS},
    {"kill-segv", SIGSEGV},
};

START_TEST(not_ours_is_left_alone)
{
    struct outcome o;

    run_subject(left_alone[_i].subject, 0, &o);
    assert_died_of(&o, left_alone[_i].sig);
    ck_assert_str_eq(o.err, "");
}
END_TEST

START_TEST(program_handler_wins)
{
    struct outcome o;

    run_subject("own-handler", 0, &o);
    ck_assert_msg(WIFEXITED(o.status) && WEXITSTATUS(o.status) == 42,
                  "expected the program's handler to exit with 42, but the "
                  "subject %s; stderr: %s",
                  describe(o.status), o.err);
    ck_assert_str_eq(o.err, "the program's own handler\n");
}
END_TEST

/* Called as the previous handler by the program's, hakmem's reports and
 * the process still dies of the fault. */
START_TEST(chained_handler_reports)
{
    struct outcome o;

    run_subject("chained", 0, &o);
    assert_died_of(&o, SIGSEGV);
    assert_report(&o, "SIGSEGV", WILD);
}
END_TEST

START_TEST(inherited_sig_ign_is_kept)
{
    struct outcome o;

    run_subject("ignored", 1, &o);
    ck_assert_msg(WIFEXITED(o.status) && WEXITSTATUS(o.status) == 0,
                  "SIG_IGN was not kept: the subject %s; stderr: %s",
                  describe(o.status), o.err);
    ck_assert_str_eq(o.err, "");
}
END_TEST

static Suite *crash_suite(void)
{
    Suite *s = suite_create("crash_report");
    TCase *tc = tcase_create("crash");

    tcase_add_test(tc, preloaded);
    tcase_add_test(tc, segv_in_hakmem_is_reported);
    tcase_add_test(tc, sigbus_in_hakmem_is_reported);
    tcase_add_loop_test(tc, not_ours_is_left_alone, 0,
                        (int)(sizeof left_alone / sizeof left_alone[0]));
    tcase_add_test(tc, program_handler_wins);
    tcase_add_test(tc, chained_handler_reports);
    tcase_add_test(tc, inherited_sig_ign_is_kept);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--subject") == 0)
        return subject(argv[2]);

    SRunner *sr = srunner_create(crash_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
