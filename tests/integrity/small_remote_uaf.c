/* Attack: a block freed by another thread waits on its slab's remote
 * list; a use-after-free write puts the target's address in its first
 * word; then its owner mallocs (and collects the list). On the main of
 * 2026-12-01 the owner's malloc returned the target. */
#include "attack.h"

enum { N = 16, SIZE = 48 };
static void *blocks[N];

int main(void) {
  for (int i = 0; i < N; i++)
    blocks[i] = malloc(SIZE);
  free_from_another_thread(blocks, N);
  for (int i = 0; i < N; i++)
    poke(blocks[i], 0, (uintptr_t)target);
  /* Enough to use up the current slab's own list and collect. */
  for (int round = 0; round < 8; round++)
    expect_not_steered(SIZE, 1500);
  return 0;
}
