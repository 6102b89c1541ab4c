/* heap.h: the per-thread heap of the tiny and medium tiers.
 *
 * Each thread owns slabs; for each size class it allocates from one
 * current slab's free list (the fast paths are in small.h). A free by the
 * owner pushes back onto the slab's list; a free by any other thread goes
 * through remote.h, onto the slab's atomic remote list, which the owner
 * collects when its list runs dry. Slabs that empty are kept or given back
 * (heaps.h), free pages purged (heap_purge.h); a thread that exits
 * (thread.h) gives its slabs back: empty ones to the pool, the rest to the
 * abandoned lists that other threads adopt (abandon.h).
 */
#ifndef HK_HEAP_H
#define HK_HEAP_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "base/hidden.h"
#include "base/list.h"
#include "base/options.h"
#include "small/size_class.h"
#include "small/slab.h"
#include "base/types.h"

struct hk_heap {
  struct hk_slab *cur[HK_CLASS_COUNT]; /* read by the malloc fast path */
  struct hk_queue avail[HK_CLASS_COUNT]; /* slabs with free blocks */
  struct hk_queue full[HK_CLASS_COUNT];  /* slabs with none (maybe remote) */
  /* Unused slabs kept for reuse, under empty_lock: another thread gives
   * them back once they have been kept for the purge delay, or on
   * malloc_trim, since the owner may never call the allocator again. */
  struct hk_stack empty[HK_GEOM_COUNT];
  unsigned empty_count[HK_GEOM_COUNT];
  _Atomic unsigned empty_lock;
  /* Some slab gained free blocks since the last purge of free pages
   * (heap_purge.c), due at purge_at_ms. Owner only. */
  uint8_t purge_armed;
  uint32_t purge_at_ms;
  uint32_t purged_ms; /* when that purge last ran */
  /* HAKMEM_HARDENED: the current slabs, kept out of `cur` (which then
   * stays at hk_empty_slab) so that every malloc leaves the fast path. */
  struct hk_slab *hard_cur[HK_CLASS_COUNT];
  /* Bit c set: class c's current slots or queues may hold a slab (set by
   * refill, owner only), so that thread exit and the purge visit the
   * classes the thread used, not all of them. */
  uint64_t touched[(HK_CLASS_COUNT + 63) / 64];
  struct hk_stack_node free_node; /* on free_heaps, once its thread exited */
  /* On all_heaps: every heap ever made; heaps are never unmapped. */
  struct hk_stack_node all_node;
  /* HAKMEM_STATS counters, written by this heap's thread only. */
  _Atomic uint64_t frees[HK_CLASS_COUNT];
  _Atomic uint64_t remote_frees[HK_CLASS_COUNT];
};

/* Threads start on this heap, whose current slabs are all one empty slab,
 * so that the fast path needs no "initialised?" test. */
extern HK_HIDDEN struct hk_heap hk_heap_empty;
extern HK_HIDDEN struct hk_slab hk_empty_slab;
extern __thread struct hk_heap *hk_tls_heap
    __attribute__((tls_model("initial-exec")));

/* malloc of class `cls` for heap h (the calling thread's) once its current
 * slab has run dry: flushes the thread's remote frees, runs the purges
 * that are due, refills and pops. NULL with errno ENOMEM when no memory is
 * left. */
void *hk_heap_alloc(struct hk_heap *h, unsigned cls);
/* Makes *cur (h->cur[cls] or h->hard_cur[cls]) a slab of the class with a
 * free block: collects or carves the current one, or retires it and finds
 * another. NULL with errno ENOMEM when no memory is left. */
struct hk_slab *hk_heap_refill(struct hk_heap *h, struct hk_slab **cur,
                               unsigned cls);
void hk_free_local_slow(struct hk_heap *h, struct hk_slab *s);
/* HAKMEM_STATS and HAKMEM_HARDENED, where every free leaves the fast path
 * (see hk_owner_token): a free by the owner of s goes back onto its list
 * (1); another thread's is left to the caller (0). Both are counted under
 * HAKMEM_STATS. */
int hk_heap_free_if_owner(struct hk_slab *s, unsigned i);
/* Gives back everything h owns and retires it (its thread is exiting). */
void hk_heap_release(struct hk_heap *h);

/* The first class from c on whose bit is set in h->touched, or
 * HK_CLASS_COUNT. */
static inline unsigned hk_heap_next_touched(const struct hk_heap *h,
                                            unsigned c) {
  while (c < HK_CLASS_COUNT) {
    uint64_t bits = h->touched[c / 64] >> (c % 64);
    if (bits)
      return c + (unsigned)__builtin_ctzll(bits);
    c = (c / 64 + 1) * 64;
  }
  return HK_CLASS_COUNT;
}
#define HK_HEAP_EACH_TOUCHED(h, c)                                             \
  for ((c) = hk_heap_next_touched((h), 0); (c) < HK_CLASS_COUNT;               \
       (c) = hk_heap_next_touched((h), (c) + 1))

/* The owner's side of free: back onto the slab's own list. */
static inline void hk_free_local(struct hk_slab *s, unsigned i) {
  hk_freelist_push(s, i);
  /* An empty slab that is still the current one stays put: alternating
   * malloc/free of one block must not leave the fast path (but for huge
   * blocks, see refill in heap.c). Any other that empties goes back, and a
   * full one becomes available again. */
  if (__builtin_expect(s->list > hk_slab_used_dec(s), 0))
    hk_free_local_slow(hk_tls_heap, s);
}

#endif
