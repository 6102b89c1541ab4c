/* small.h: the fast paths of the tiny and medium tiers, inlined into
 * malloc and free (alloc.c), and their ways out (small.c).
 *
 * malloc is a TLS load and a pop off the current slab's out-of-band list;
 * free finds the slab through the region map entry the caller looked up,
 * checks the block's link and, for the slab's owner, pushes it back. All
 * else -- a thread's first allocation, refills, other threads' frees, the
 * HAKMEM_HARDENED and HAKMEM_STATS modes -- goes to small.c, which decides
 * once, there, which layer serves it.
 */
#ifndef HK_SMALL_H
#define HK_SMALL_H

#include <stdatomic.h>
#include <stdint.h>

#include "small/heap.h"
#include "base/region_map.h"
#include "base/report.h"
#include "small/slab.h"
#include "base/types.h"

/* malloc of class `cls` when the current slab has no block ready. */
void *hk_small_alloc_slow(unsigned cls);
/* free of block i of s (its link was LIVE) by a thread whose token is not
 * s's owner field: another thread, or any thread under HAKMEM_STATS or
 * HAKMEM_HARDENED. */
void hk_small_free_slow(struct hk_slab *s, unsigned i);
/* Gives back what every tier holds but does not use (kept slabs, empty
 * SuperSlabs, cached large blocks), after the OS refused a mapping, so
 * that one retry may succeed. Returns whether anything went back. */
int hk_give_back_unused(void);

/* The fast path: the current slab's first free block. Its link is checked
 * before it becomes the head: the sentinel's LIVE (the list is empty), or
 * a LIVE or PENDING link left by two threads freeing one block at once,
 * goes to the slow path, which tells the two apart and reports the
 * second. */
static inline void *hk_small_alloc(unsigned cls) {
  struct hk_slab *s = hk_tls_heap->cur[cls];
  unsigned i = s->free;
  hk_link next = hk_link_get(s, i);
  if (__builtin_expect(hk_link_free(next), 1)) {
    hk_freelist_unlink_head(s, i, next);
    hk_slab_used_inc(s);
    return hk_slab_block(s, i);
  }
  return hk_small_alloc_slow(cls);
}

/* The slab holding `a` if `a` is the start of one of its carved blocks,
 * with the block's index in *index; reports `fn` misuse and returns NULL
 * otherwise. (Whether the block is out with the program is told by its
 * link, see hk_small_free.) */
static inline struct hk_slab *hk_small_locate(struct hk_superslab *ss,
                                              unsigned slab_shift, uintptr_t a,
                                              const char *fn,
                                              unsigned *index) {
  /* slab_shift is the region map's copy of ss->slab_shift, so the header
   * line is not waited for. An address in the unmapped rest of a solo
   * slab's region lands on one of the header's unused slabs, whose zero
   * div_magic fails the test below. */
  struct hk_slab *s = ss->slabs + ((a & HK_REGION_MASK) >> slab_shift);
  /* One base for every field of s below (else the compiler keeps two). */
  __asm__("" : "+r"(s));
  /* An address below the first block wraps around to near 2^32, whose
   * quotient exceeds any slab's block count. */
  struct hk_div d = hk_div_by_magic((uint32_t)(a - s->start), s->div_magic);
  if (__builtin_expect(!d.exact || d.quotient >= hk_slab_carved(s), 0)) {
    hk_report_misuse(fn, "invalid pointer", (void *)a);
    return NULL;
  }
  *index = (unsigned)d.quotient;
  return s;
}

/* Always inlined: a call would cost free() more than the body saves. */
static inline __attribute__((always_inline)) void
hk_small_free(struct hk_superslab *ss, unsigned slab_shift, void *p,
              const char *fn) {
  unsigned i;
  struct hk_slab *s = hk_small_locate(ss, slab_shift, (uintptr_t)p, fn, &i);
  if (__builtin_expect(s == NULL, 0))
    return;
  /* Only a block out with the program has a LIVE link: this one test
   * catches a double free whatever the program wrote into the block. */
  hk_link link = hk_link_get(s, i);
  if (__builtin_expect(!hk_link_live(link), 0)) {
    hk_report_misuse(fn, hk_link_misuse(link), p);
    return;
  }
  /* With HAKMEM_STATS the owner field is tagged, so every free takes the
   * out-of-line path, which counts it; without, this compare is all. */
  if (__builtin_expect(atomic_load_explicit(&s->owner, memory_order_relaxed) ==
                           hk_thread_token(),
                       1)) {
    hk_free_local(s, i);
    return;
  }
  hk_small_free_slow(s, i);
}

#endif
