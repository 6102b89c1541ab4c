/* calloc under mlockall(MCL_CURRENT | MCL_FUTURE): madvise(MADV_DONTNEED)
 * fails with EINVAL on locked pages, so a purge of a freed large block
 * leaves its data in place. An allocator that takes the failed purge for
 * success files the block as clean and hands its old bytes to the next
 * calloc. The program frees a block full of 0xa5, lets it be purged
 * (HAKMEM_PURGE_DELAY=0 at once, then malloc_trim), and checks that
 * calloc of the same space reads zero.
 *
 * mlockall must work for the test to mean anything: as root (CI) a
 * failure is an error; an unprivileged user may simply not be allowed to
 * lock this much, and then the program passes without testing. */
#include <sys/mman.h>
#include <sys/resource.h>

#include "large_attack.h"

static void expect_zero(const unsigned char *p, size_t n, const char *when) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != 0)
      attack_worked("calloc after %s: byte %zu of %p is %#x, not 0", when, i,
                    (const void *)p, p[i]);
}

int main(int argc, char **argv) {
  (void)argc;
  reexec_with(argv, "HAKMEM_PURGE_DELAY", "0");
  struct rlimit unlimited = {RLIM_INFINITY, RLIM_INFINITY};
  (void)setrlimit(RLIMIT_MEMLOCK, &unlimited); /* root may; others try on */
  if (mlockall(MCL_CURRENT | MCL_FUTURE) != 0) {
    if (geteuid() != 0)
      return 0;
    setup_failed("mlockall as root: %s", strerror(errno));
  }
  unsigned char *a = malloc(1 * MiB);
  unsigned char *keep = malloc(1 * MiB); /* keeps the chunk mapped */
  if (!a || !keep)
    setup_failed("malloc under mlockall");
  static const char *const how[] = {"a purge at free (delay 0)",
                                    "malloc_trim(0)"};
  for (int round = 0; round < 2; round++) {
    fill(a, 1 * MiB, 0xa5);
    free(a);
    if (round == 1)
      malloc_trim(0);
    unsigned char *z = calloc(1, 1 * MiB);
    if (!z)
      setup_failed("calloc under mlockall");
    if (z != a)
      setup_failed("calloc did not reuse the freed block (%p, not %p)",
                   (void *)z, (void *)a);
    expect_zero(z, 1 * MiB, how[round]);
    a = z;
  }
  free(a);
  free(keep);
  munlockall();
  return 0;
}
