/* Attack: large_uaf_links with HAKMEM_HARDENED=1, where the old large
 * tier kept a free extent's record in its first page, the freed block's
 * guard page. One split puts it back within reach: a smaller block served
 * from the freed space leaves the rest of it as a free extent that starts
 * inside the old block's pages, after the new block's tail guard. A write
 * through the dangling pointer to the old block sets that record's links;
 * the next malloc that unlinks it writes to the target. Harmless when the
 * records are out of band. */
#include "large_attack.h"

int main(int argc, char **argv) {
  (void)argc;
  reexec_with(argv, "HAKMEM_HARDENED", "1");
  char *a = malloc(1 * MiB);
  char *b = malloc(1 * MiB);
  if (!a || !b)
    setup_failed("malloc");
  fill(b, 1 * MiB, 0x22);
  free(a);
  char *c = malloc(300 * KiB); /* split: served from a's space */
  if (!c)
    setup_failed("malloc 300 KiB");
  /* The rest of a's old extent: after c and c's tail guard page. */
  char *rest = c + malloc_usable_size(c) + PAGE;
  if (rest < a || rest + 64 > a + 1 * MiB)
    setup_failed("the split did not come from the freed block (%p in %p)", c,
                 a);
  poke(rest, OLD_NEXT, (uintptr_t)(target + 64));
  poke(rest, OLD_PREV, (uintptr_t)target);
  char *d = malloc(300 * KiB); /* takes the rest off its list */
  if (!d)
    setup_failed("malloc after the write");
  expect_target_intact();
  if (overlaps(d, 300 * KiB, b, 1 * MiB) || overlaps(d, 300 * KiB, c, 300 * KiB))
    attack_worked("malloc returned %p over a live block (%p, %p)", d, b, c);
  fill(c, 300 * KiB, 0x44);
  fill(d, 300 * KiB, 0x33);
  expect_filled(b, 1 * MiB, 0x22, "the live block");
  expect_filled(c, 300 * KiB, 0x44, "the split block");
  expect_not_steered(1 * MiB, 4);
  free(d);
  free(c);
  free(b);
  return 0;
}
