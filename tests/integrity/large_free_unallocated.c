/* free() of a page-aligned pointer into freed large space where no block
 * ever started: that is an invalid pointer, and must be called so, not a
 * "double free" (which would send whoever reads the report looking for a
 * second free that never happened). */
#include "large_attack.h"

int main(void) {
  char *a = malloc(1 * MiB);
  char *b = malloc(1 * MiB);
  if (!a || !b)
    setup_failed("malloc");
  free(a);
  free(launder(a + 64 * KiB)); /* never a block */
  return 0;
}
