/* heaps.h: every heap there is, and the empty slabs heaps keep.
 *
 * Heaps are made from chunks of their own, kept on one list for good
 * (heap memory is never unmapped, so a stale owner pointer is never a
 * dangling one) and reused by the next thread once theirs has exited.
 * Each keeps up to HAKMEM_THREAD_CACHE_SLABS empty slabs per geometry for
 * reuse; since the owner may never call the allocator again, any thread's
 * slow path gives back those kept for the purge delay.
 */
#ifndef HK_HEAPS_H
#define HK_HEAPS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct hk_heap;
struct hk_slab;

/* A cleared heap for the calling thread; NULL when out of memory. */
struct hk_heap *hk_heaps_new(void);
/* h's thread has exited and h holds nothing: the next thread may have it.
 * Its statistics move to the totals. */
void hk_heaps_retire(struct hk_heap *h);

/* s, whose last block came back, leaves the heaps' lists: it is retired
 * (hk_slab_retire), then kept by h (NULL: none) for reuse if h has room,
 * else given back to the pool. */
void hk_heaps_release_slab(struct hk_heap *h, struct hk_slab *s);
/* A slab of the geometry that h keeps, or NULL. */
struct hk_slab *hk_heaps_kept_pop(struct hk_heap *h, unsigned geometry);
/* Gives every slab h keeps back to the pool (its thread is exiting). */
void hk_heaps_release_kept(struct hk_heap *h);
/* Gives back the slabs that heaps have kept for `age` ms or more (0: all);
 * returns their bytes. */
size_t hk_heaps_purge_kept(uint32_t now, uint32_t age);
/* Some heap keeps a slab not yet given back. */
extern _Atomic int hk_heaps_kept;
static inline int hk_heaps_kept_pending(void) {
  return atomic_load_explicit(&hk_heaps_kept, memory_order_relaxed);
}
/* At most a few times per purge delay, hk_heaps_purge_kept of those kept
 * for the delay. */
void hk_heaps_maybe_purge_kept(uint32_t now);

/* Sums every heap's free counters into the arrays (HAKMEM_STATS). */
void hk_heap_sum_frees(uint64_t *frees, uint64_t *remote_frees);

void hk_heaps_fork_prepare(void);
void hk_heaps_fork_parent(void);
void hk_heaps_fork_child(void);

#endif
