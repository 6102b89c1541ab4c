/* Attack: an 8-byte overflow off a live block into its free neighbour's
 * first word, then mallocs of the size. On the main of 2026-12-01 this
 * made malloc return the target. */
#include "attack.h"

int main(void) {
  static const size_t sizes[] = {16, 64, 512};
  for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
    size_t size = sizes[k];
    enum { N = 32 };
    char *b[N];
    for (int i = 0; i < N; i++)
      b[i] = malloc(size);
    /* Find a pair of neighbours a, a + size; free the upper one. */
    char *a = NULL, *next = NULL;
    for (int i = 0; i < N && !a; i++)
      for (int j = 0; j < N; j++)
        if (b[j] == b[i] + size) {
          a = b[i];
          next = b[j];
          b[j] = NULL;
          break;
        }
    if (!a)
      attack_worked("no two neighbouring blocks of %zu bytes", size);
    free(next);
    uintptr_t v = (uintptr_t)target;
    memcpy((char *)launder(a) + size, &v, sizeof v); /* the overflow */
    expect_not_steered(size, 64);
    for (int i = 0; i < N; i++)
      free(b[i]);
  }
  return 0;
}
