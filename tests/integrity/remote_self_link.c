/* Attack: a block on another slab's remote list gets a link to itself (a
 * use-after-free write of its own address into its first word), then the
 * owner mallocs until it collects. On the main of 2026-12-01 the owner's
 * malloc walked the list forever; the driver's timeout catches a hang. */
#include "attack.h"

enum { N = 4, SIZE = 32 };
static void *blocks[N];

int main(void) {
  for (int i = 0; i < N; i++)
    blocks[i] = malloc(SIZE);
  free_from_another_thread(blocks, N);
  for (int i = 0; i < N; i++)
    poke(blocks[i], 0, (uintptr_t)blocks[i]);
  for (int round = 0; round < 8; round++)
    expect_not_steered(SIZE, 3000);
  return 0;
}
