/*
 * Integration test: under RLIMIT_AS, large blocks cost their own size in
 * address space, not twice it.
 *
 * Once a 64 MiB large chunk can no longer be mapped, each large block gets
 * a chunk of its own. That chunk used to be rounded up to 2 MiB, and its
 * 2 MiB-aligned mapping over-mapped by 2 MiB: a 1 MiB block held 2 MiB and
 * needed 4 MiB free to be made, and with 16 MiB of headroom 7 blocks of
 * 1 MiB fitted where glibc fits 15 (64 MiB: 31 against 63). Now a block's
 * chunk is its pages and the chunk header, and the aligned mapping needs
 * no more than that when the kernel leaves an aligned place free.
 *
 * The bound is computed, not glibc's count at run time: every block may
 * cost 1/16 beyond itself (its header, a guard page), 2 MiB of the
 * headroom may go elsewhere (a SuperSlab for the test's own small blocks),
 * and the last block may need 2 MiB - 4 KiB more for a moment: when the
 * kernel has packed the mappings so that no aligned place is free, an
 * aligned mapping over-maps by its alignment less a page and trims (with
 * HAKMEM_TINY_USE_SUPERSLAB=0 it does, and 13 blocks fit in 16 MiB).
 * glibc, whose 1 MiB block is one mapping of 1 MiB + 4 KiB, fits 15 and 63.
 *
 * Every test runs in its own process (Check forks), so the limit dies with
 * it; it is lifted again before anything is asserted.
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
#include <unistd.h>

#include "../integration/preloaded.h"
#include "child.h"

#define MiB ((size_t)1 << 20)
#define KiB ((size_t)1 << 10)

static const size_t headroom_mib[] = {16, 64};

START_TEST(test_large_blocks_fit_headroom) {
  assert_hakmem_preloaded();
  size_t headroom = headroom_mib[_i] * MiB;
  enum { MAX = 256 };
  static void *slots[MAX];
  /* Warm up stdio and the small tiers before the limit is measured; no
   * large block yet, or its 64 MiB chunk would serve the whole fill. */
  free(malloc(64));
  free(malloc(4096)); /* the tiny geometry, with either tiny backend */
  free(malloc(8192));
  struct rlimit old;
  ck_assert_int_eq(getrlimit(RLIMIT_AS, &old), 0);
  struct rlimit lim = {vm_size() + headroom, old.rlim_max};
  ck_assert_int_eq(setrlimit(RLIMIT_AS, &lim), 0);
  size_t n = 0;
  while (n < MAX) {
    void *p = malloc(MiB);
    if (p == NULL)
      break;
    memset(p, 1, 64);
    slots[n++] = p;
  }
  int got_errno = errno;
  for (size_t i = 0; i < n; i++)
    free(slots[i]);
  /* Freed, they must fit again: nothing of the first fill is held. */
  size_t again = 0;
  while (again < MAX) {
    void *p = malloc(MiB);
    if (p == NULL)
      break;
    slots[again++] = p;
  }
  for (size_t i = 0; i < again; i++)
    free(slots[i]);
  ck_assert_int_eq(setrlimit(RLIMIT_AS, &old), 0);

  size_t bound = (headroom - 4 * MiB + MiB + 64 * KiB - 1) / (MiB + 64 * KiB);
  fprintf(stderr, "# headroom %zu MiB: %zu blocks of 1 MiB, %zu again "
                  "(bound %zu; glibc fits %zu)\n",
          headroom_mib[_i], n, again, bound, headroom / (MiB + 4 * KiB));
  ck_assert_msg(n >= bound,
                "%zu MiB of headroom: %zu blocks of 1 MiB fit, want %zu "
                "(errno %d)", headroom_mib[_i], n, bound, got_errno);
  ck_assert_msg(again >= bound, "%zu MiB of headroom: %zu blocks fit again "
                "after the first %zu were freed, want %zu",
                headroom_mib[_i], again, n, bound);
}
END_TEST

int main(void) {
  Suite *s = suite_create("as_large");
  TCase *tc = tcase_create("rlimit_as");
  tcase_set_timeout(tc, 120);
  tcase_add_loop_test(tc, test_large_blocks_fit_headroom, 0,
                      (int)(sizeof headroom_mib / sizeof headroom_mib[0]));
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
