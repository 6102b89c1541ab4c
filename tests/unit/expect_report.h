/* expect_report.h: misuse tests for the unit suites. They run as Check
 * raise-signal tests: hakmem must abort. expect_report() points stderr at
 * a pipe and installs a SIGABRT handler that compares what hakmem wrote
 * with the expected one-line report; on a mismatch it exits instead, so
 * the test fails for a wrong message as well as for a missing abort. */
#ifndef HK_TEST_EXPECT_REPORT_H
#define HK_TEST_EXPECT_REPORT_H

#include <check.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static char expected_report[160];
static int report_pipe = -1;
static int real_stderr = -1;

static void put(const char *s, size_t n) {
  while (n > 0) {
    ssize_t w = write(real_stderr, s, n);
    if (w <= 0)
      return;
    s += w;
    n -= (size_t)w;
  }
}

static void on_abort(int sig) {
  (void)sig;
  char got[512];
  ssize_t n = read(report_pipe, got, sizeof got);
  size_t len = strlen(expected_report);
  if (n == (ssize_t)len && memcmp(got, expected_report, len) == 0)
    return; /* abort() goes on to kill the process with SIGABRT */
  static const char a[] = "wrong misuse report; expected: ";
  static const char b[] = "got: ";
  put(a, sizeof a - 1);
  put(expected_report, len);
  put(b, sizeof b - 1);
  if (n > 0)
    put(got, (size_t)n);
  _exit(3);
}

static void expect_report(const char *fn, const char *what, const void *p) {
  snprintf(expected_report, sizeof expected_report, "hakmem: %s(): %s 0x%lx\n",
           fn, what, (unsigned long)(uintptr_t)p);
  int fds[2];
  ck_assert_int_eq(pipe(fds), 0);
  ck_assert_int_eq(fcntl(fds[0], F_SETFL, O_NONBLOCK), 0);
  real_stderr = dup(2);
  ck_assert_int_ge(real_stderr, 0);
  ck_assert_int_ge(dup2(fds[1], 2), 0);
  close(fds[1]);
  report_pipe = fds[0];
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_abort;
  sigemptyset(&sa.sa_mask);
  ck_assert_int_eq(sigaction(SIGABRT, &sa, NULL), 0);
}

#endif
