/*
 * Integration test: guard pages around large blocks with HAKMEM_HARDENED=1.
 *
 * In hardened mode every large block has an inaccessible page just before
 * it and just after its usable size, so that a linear overflow or
 * underflow faults at the first byte out of bounds instead of corrupting a
 * neighbour.  Each probe runs in a child process; the test checks that the
 * child dies of SIGSEGV exactly when it touches a guard page, and that
 * freed blocks' guard pages become ordinary memory again.
 *
 * The knob is read when the library starts, so the program re-executes
 * itself with HAKMEM_HARDENED=1 if it was not started with it.
 */
#define _GNU_SOURCE
#include <check.h>
#include <malloc.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "preloaded.h"

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)

enum probe { TOUCH_INSIDE, WRITE_BEFORE, WRITE_AFTER, READ_AFTER };

static void *volatile sink;

/* Runs the probe in a child; returns its wait status. */
static int run_probe(size_t size, size_t align, enum probe what)
{
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
        char *p = NULL;
        if (align) {
            if (posix_memalign((void **)&p, align, size) != 0)
                _exit(10);
            if ((uintptr_t)p % align != 0)
                _exit(11);
        } else {
            p = malloc(size);
        }
        if (!p)
            _exit(12);
        size_t usable = malloc_usable_size(p);
        if (usable < size)
            _exit(13);
        volatile char *v = p;
        switch (what) {
        case TOUCH_INSIDE:
            memset(p, 0x5a, usable);
            free(p);
            _exit(0);
        case WRITE_BEFORE:
            v[-1] = 1;
            break;
        case WRITE_AFTER:
            v[usable] = 1;
            break;
        case READ_AFTER:
            sink = (void *)(uintptr_t)v[usable];
            break;
        }
        _exit(20); /* the access did not fault */
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    return status;
}

static void assert_segv(int status, const char *what)
{
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV,
                  "%s: child ended with status %#x, not SIGSEGV", what, status);
}

static const size_t sizes[] = {300 * KiB, 1 * MiB + 1, 8 * MiB};

START_TEST(test_inside_is_usable)
{
    assert_hakmem_preloaded();
    int status = run_probe(sizes[_i], 0, TOUCH_INSIDE);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "size %zu: status %#x", sizes[_i], status);
}
END_TEST

START_TEST(test_underflow_faults)
{
    assert_segv(run_probe(sizes[_i], 0, WRITE_BEFORE), "write before block");
}
END_TEST

START_TEST(test_overflow_faults)
{
    assert_segv(run_probe(sizes[_i], 0, WRITE_AFTER), "write after block");
    assert_segv(run_probe(sizes[_i], 0, READ_AFTER), "read after block");
}
END_TEST

START_TEST(test_aligned_blocks_are_guarded)
{
    size_t align = (size_t)8192 << _i; /* 8 KiB .. 2 MiB */
    int status = run_probe(100 * KiB, align, TOUCH_INSIDE);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "align %zu: status %#x", align, status);
    assert_segv(run_probe(100 * KiB, align, WRITE_BEFORE), "aligned, before");
    assert_segv(run_probe(100 * KiB, align, WRITE_AFTER), "aligned, after");
}
END_TEST

START_TEST(test_freed_guards_are_memory_again)
{
    /* Blocks freed next to each other merge; a bigger block then covers
     * their old guard pages and must be writable all through. */
    for (int round = 0; round < 20; round++) {
        char *a = malloc(1 * MiB);
        char *b = malloc(2 * MiB);
        char *c = malloc(1 * MiB);
        ck_assert(a && b && c);
        memset(a, 1, 1 * MiB);
        memset(b, 2, 2 * MiB);
        memset(c, 3, 1 * MiB);
        free(a);
        free(b);
        free(c);
        char *big = malloc(4 * MiB + 3 * 4096 * (size_t)(round % 3));
        ck_assert_ptr_nonnull(big);
        memset(big, 4, malloc_usable_size(big));
        free(big);
    }
}
END_TEST

int main(int argc, char **argv)
{
    (void)argc;
    const char *h = getenv("HAKMEM_HARDENED");
    if (!h || strcmp(h, "1") != 0) {
        setenv("HAKMEM_HARDENED", "1", 1);
        execv("/proc/self/exe", argv);
        perror("large_guard: re-executing with HAKMEM_HARDENED=1");
        return EXIT_FAILURE;
    }
    Suite *s = suite_create("large_guard");
    TCase *tc = tcase_create("guard");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_inside_is_usable, 0, 3);
    tcase_add_loop_test(tc, test_underflow_faults, 0, 3);
    tcase_add_loop_test(tc, test_overflow_faults, 0, 3);
    tcase_add_loop_test(tc, test_aligned_blocks_are_guarded, 0, 9);
    tcase_add_test(tc, test_freed_guards_are_memory_again);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
