/* Attack: a use-after-free write to a freed large block's first bytes,
 * where the large tier used to keep the free extent's list links. With
 * prev pointing at a target and next at a writable fake record, the next
 * malloc that unlinks the extent writes a chosen value to the target
 * (prev->next = next) and back (next->prev = prev): write-what-where.
 * Harmless when the records are out of band: the target stays zero and
 * the blocks stay apart. */
#include "large_attack.h"

int main(void) {
  char *a = malloc(1 * MiB);
  char *b = malloc(1 * MiB); /* keeps a's space from merging on the right */
  if (!a || !b)
    setup_failed("malloc");
  fill(b, 1 * MiB, 0x22);
  free(a);
  poke(a, OLD_NEXT, (uintptr_t)(target + 64)); /* a fake record */
  poke(a, OLD_PREV, (uintptr_t)target);
  char *c = malloc(1 * MiB); /* takes a's extent off its list */
  if (!c)
    setup_failed("malloc after the write");
  expect_target_intact();
  if (overlaps(c, 1 * MiB, b, 1 * MiB))
    attack_worked("malloc returned %p over the live block %p", c, b);
  fill(c, 1 * MiB, 0x33);
  expect_filled(b, 1 * MiB, 0x22, "the live block");
  expect_not_steered(1 * MiB, 4);
  free(c);
  free(b);
  return 0;
}
