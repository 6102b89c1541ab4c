/*
 * Integration test: address space that is held but unused comes back.
 *
 * Under RLIMIT_AS (containers, vm.overcommit_memory=2 hosts) a mapping can
 * fail while the allocator holds address space it does not use: empty
 * SuperSlabs kept for the purge delay, slabs kept by heaps, cached large
 * blocks.  Here a fill with blocks of one geometry up to the limit, all
 * freed (the SuperSlabs are then kept empty), then a fill with blocks of
 * another must get as many blocks as the same fill with nothing held, at
 * several limits, in both orders (8 KiB then 64 B, 64 B then 8 KiB).
 *
 * Every test runs in its own process (Check forks), so the limit dies with
 * it; it is lifted again before anything is asserted, so that Check can
 * allocate to report.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../integration/preloaded.h"
#include "child.h"

#define MiB ((size_t)1 << 20)

static const size_t headroom_mib[] = {32, 64, 128};

static void **slots;
static size_t nslots;

static size_t fill(size_t size) {
  size_t n = 0;
  while (n < nslots) {
    void *p = malloc(size);
    if (p == NULL)
      break;
    memset(p, 1, size < 64 ? size : 64);
    slots[n++] = p;
  }
  return n;
}

static void free_all(size_t n) {
  for (size_t i = 0; i < n; i++)
    free(slots[i]);
}

/* The two orders: X fills, is freed, then Y fills. */
static const size_t order[][2] = {{8192, 64}, {64, 8192}};

/* Fills with `size` blocks under the limit in a child process, which
 * starts from the same state: the count a fill gets with nothing held. */
static size_t fresh_fill(rlim_t limit, size_t size) {
  int fd[2];
  ck_assert_int_eq(pipe(fd), 0);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    struct rlimit lim = {limit, limit};
    size_t n = setrlimit(RLIMIT_AS, &lim) == 0 ? fill(size) : 0;
    _exit(write(fd[1], &n, sizeof n) == sizeof n ? 0 : 1);
  }
  close(fd[1]);
  size_t n = 0;
  ck_assert_int_eq(read(fd[0], &n, sizeof n), (ssize_t)sizeof n);
  close(fd[0]);
  int status;
  ck_assert_int_eq(waitpid(pid, &status, 0), pid);
  return n;
}

START_TEST(test_refill_after_other_geometry) {
  assert_hakmem_preloaded();
  size_t headroom = headroom_mib[_i / 2] * MiB;
  size_t x = order[_i % 2][0], y = order[_i % 2][1];
  nslots = headroom / 64 + 1024;
  slots = mmap(NULL, nslots * sizeof *slots, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  ck_assert_ptr_ne(slots, MAP_FAILED);
  /* Warm up stdio and both classes before the limit is measured. */
  free(malloc(64));
  free(malloc(8192));
  struct rlimit old;
  ck_assert_int_eq(getrlimit(RLIMIT_AS, &old), 0);
  rlim_t limit = vm_size() + headroom;
  size_t baseline = fresh_fill(limit, y);

  struct rlimit lim = {limit, old.rlim_max};
  ck_assert_int_eq(setrlimit(RLIMIT_AS, &lim), 0);
  size_t first = fill(x);
  free_all(first);
  size_t got = fill(y);
  int got_errno = errno;
  free_all(got);
  ck_assert_int_eq(setrlimit(RLIMIT_AS, &old), 0);

  fprintf(stderr, "# headroom %zu MiB: %zu blocks of %zu B, then %zu of %zu B"
                  " (%zu with nothing held)\n",
          headroom_mib[_i / 2], first, x, got, y, baseline);
  ck_assert_msg(first > 0 && baseline > 0, "nothing fits in %zu MiB",
                headroom_mib[_i / 2]);
  /* One SuperSlab's worth of slack: where a mapping lands may differ by
   * that much between two processes; what is held unused is far more. */
  size_t slack = (2 * MiB) / y;
  ck_assert_msg(got + slack >= baseline,
                "after %zu B blocks were freed, %zu blocks of %zu B fit, "
                "%zu with nothing held (errno %d)",
                x, got, y, baseline, got_errno);
}
END_TEST

int main(void) {
  Suite *s = suite_create("as_refill");
  TCase *tc = tcase_create("rlimit_as");
  tcase_set_timeout(tc, 120);
  tcase_add_loop_test(tc, test_refill_after_other_geometry, 0,
                      (int)(2 * sizeof headroom_mib / sizeof headroom_mib[0]));
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
