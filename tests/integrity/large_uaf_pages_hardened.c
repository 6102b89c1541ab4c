/* Attack: large_uaf_pages with HAKMEM_HARDENED=1, after one split (see
 * large_uaf_links_hardened): the rest of a freed block's space is a free
 * extent whose record, in the old large tier, sat inside the old block's
 * pages. Raising its page count through the dangling pointer makes the
 * next malloc return pages of the live block after it. Harmless when the
 * records are out of band. */
#include "large_attack.h"

int main(int argc, char **argv) {
  (void)argc;
  reexec_with(argv, "HAKMEM_HARDENED", "1");
  char *a = malloc(1 * MiB);
  char *b = malloc(1 * MiB); /* the live block the attack aims at */
  if (!a || !b)
    setup_failed("malloc");
  fill(b, 1 * MiB, 0x22);
  free(a);
  char *c = malloc(300 * KiB);
  if (!c)
    setup_failed("malloc 300 KiB");
  char *rest = c + malloc_usable_size(c) + PAGE;
  if (rest < a || rest + 64 > a + 1 * MiB)
    setup_failed("the split did not come from the freed block (%p in %p)", c,
                 a);
  /* The rest really holds (a's 258 pages - c's 77), claim 600 pages. */
  poke32(rest, OLD_PAGES, 600);
  char *d = malloc(1 * MiB);
  if (!d)
    setup_failed("malloc after the write");
  if (overlaps(d, 1 * MiB, b, 1 * MiB) ||
      overlaps(d, 1 * MiB, c, 300 * KiB))
    attack_worked("malloc(1 MiB) returned %p over a live block (%p, %p)", d, b,
                  c);
  fill(c, 300 * KiB, 0x44);
  fill(d, 1 * MiB, 0x33);
  expect_filled(b, 1 * MiB, 0x22, "the live block");
  expect_filled(c, 300 * KiB, 0x44, "the split block");
  free(d);
  free(c);
  free(b);
  return 0;
}
