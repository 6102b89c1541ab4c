/* Attack: read a freed small block (a use after free read) and look for
 * glibc's pointer guard in it, the key that protects setjmp buffers and
 * atexit handlers (AT_RANDOM's bytes 8 to 15). On the main of 2026-12-01
 * a freed block's second word was its address XOR that key (| 1). */
#include <sys/auxv.h>

#include "attack.h"

int main(void) {
  const unsigned char *rnd = (const void *)getauxval(AT_RANDOM);
  if (!rnd)
    return 0; /* no AT_RANDOM: nothing of it to leak */
  uintptr_t keys[2];
  memcpy(&keys[0], rnd, sizeof keys[0]);     /* glibc's stack guard */
  memcpy(&keys[1], rnd + 8, sizeof keys[1]); /* glibc's pointer guard */
  static const size_t sizes[] = {16, 64, 1024, 4000};
  for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
    enum { N = 8 };
    void *p[N];
    for (int i = 0; i < N; i++)
      p[i] = malloc(sizes[k]);
    for (int i = 0; i < N; i++)
      free(p[i]);
    for (int i = 0; i < N; i++) {
      uintptr_t w[2];
      memcpy(w, launder(p[i]), sizeof w);
      for (int j = 0; j < 2; j++)
        for (int key = 0; key < 2; key++)
          if (((w[j] ^ keys[key]) | 1) == 1 ||
              ((w[j] ^ (uintptr_t)p[i] ^ keys[key]) | 1) == 1)
            attack_worked("freed block %p holds AT_RANDOM word %d", p[i],
                          key);
    }
  }
  return 0;
}
