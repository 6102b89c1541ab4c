/* Attack: a use-after-free write of the target's address into a freed
 * small block's first word (where an in-band free list keeps its link),
 * then mallocs of the size. On the main of 2026-12-01 the second malloc
 * returned the target. */
#include "attack.h"

int main(void) {
  static const size_t sizes[] = {16, 48, 256, 1024, 5000, 100000};
  for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
    size_t size = sizes[k];
    void *keep = malloc(size);
    void *p = malloc(size);
    free(p);
    poke(p, 0, (uintptr_t)target);
    poke(p, 8, (uintptr_t)target);
    expect_not_steered(size, 64);
    free(keep);
  }
  return 0;
}
