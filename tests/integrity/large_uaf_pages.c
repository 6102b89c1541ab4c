/* Attack: a use-after-free write that raises the page count of the free
 * extent record the large tier used to keep in a freed block's first
 * bytes. The next malloc that fits in the inflated extent is handed pages
 * that belong to a live block after it: overlapping blocks. Harmless when
 * the records are out of band. */
#include "large_attack.h"

int main(void) {
  char *a = malloc(1 * MiB);
  char *b = malloc(1 * MiB); /* the live block the attack aims at */
  if (!a || !b)
    setup_failed("malloc");
  if (b != a + 1 * MiB)
    setup_failed("blocks not adjacent (%p, %p)", a, b);
  fill(b, 1 * MiB, 0x22);
  free(a);
  poke32(a, OLD_PAGES, 3 * 256); /* a's 256 pages, b's, and more */
  char *c = malloc(2 * MiB);
  if (!c)
    setup_failed("malloc after the write");
  if (overlaps(c, 2 * MiB, b, 1 * MiB))
    attack_worked("malloc(2 MiB) returned %p over the live block %p", c, b);
  fill(c, 2 * MiB, 0x33);
  expect_filled(b, 1 * MiB, 0x22, "the live block");
  expect_not_steered(1 * MiB, 4);
  free(c);
  free(b);
  return 0;
}
