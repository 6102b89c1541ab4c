/* attack.h: what the attack programs share. Each program performs one
 * attack and checks its outcome itself; it says nothing and exits 0 when
 * the attack was harmless, and says why and exits 1 when it worked. */
#ifndef HK_ATTACK_H
#define HK_ATTACK_H

/* Using freed pointers is what these programs are for. */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#pragma GCC diagnostic ignored "-Wuse-after-free"
#endif

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Freed memory is written through here, so that no optimisation drops
 * the write and no analyser flags it. */
static inline void *launder(void *p) {
  __asm__ volatile("" : "+r"(p));
  return p;
}

static inline void poke(void *p, size_t offset, uintptr_t v) {
  memcpy((char *)launder(p) + offset, &v, sizeof v);
}

/* The target an attacker would have malloc return or write to. */
static char target[256] __attribute__((aligned(64)));

__attribute__((noreturn, format(printf, 1, 2))) static inline void
attack_worked(const char *fmt, ...);

#include <stdarg.h>
static inline void attack_worked(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("attack worked: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

/* Mallocs n blocks of `size` and fails if any is the target, overlaps
 * another, or the target's bytes changed from `fill`. Frees them. */
static inline void expect_not_steered(size_t size, int n) {
  void **got = calloc((size_t)n, sizeof *got);
  if (!got)
    attack_worked("calloc failed");
  for (int i = 0; i < n; i++) {
    got[i] = malloc(size);
    if (!got[i])
      attack_worked("malloc(%zu) failed", size);
    uintptr_t a = (uintptr_t)got[i];
    if (a + size > (uintptr_t)target && a < (uintptr_t)target + sizeof target)
      attack_worked("malloc(%zu) returned %p, the target", size, got[i]);
    memset(got[i], 0x5a, size);
  }
  for (int i = 0; i < n; i++)
    for (int j = i + 1; j < n; j++)
      if ((uintptr_t)got[i] < (uintptr_t)got[j] + size &&
          (uintptr_t)got[j] < (uintptr_t)got[i] + size)
        attack_worked("malloc returned overlapping blocks %p and %p", got[i],
                      got[j]);
  for (size_t k = 0; k < sizeof target; k++)
    if (target[k] != 0)
      attack_worked("the allocator wrote to the target");
  for (int i = 0; i < n; i++)
    free(got[i]);
  free(got);
}

/* Frees the n blocks from a thread of its own: they go onto their slabs'
 * remote lists, where they wait until their owner (the caller) collects. */
#include <pthread.h>
struct remote_batch {
  void **blocks;
  int n;
};
static inline void *free_batch(void *arg) {
  struct remote_batch *b = arg;
  for (int i = 0; i < b->n; i++)
    free(b->blocks[i]);
  return NULL;
}
static inline void free_from_another_thread(void **blocks, int n) {
  struct remote_batch b = {blocks, n};
  pthread_t t;
  if (pthread_create(&t, NULL, free_batch, &b) != 0 ||
      pthread_join(t, NULL) != 0)
    attack_worked("no thread");
}

#endif
