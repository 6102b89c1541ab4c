/* heap_purge.h: what a heap gives back to the OS while its thread runs --
 * the free pages of its slabs, a purge delay after a slab gained free
 * blocks (at once under HAKMEM_TINY_MEM_DIET), checked on the owner's
 * slow path; and malloc_trim's share of the small tiers. Never in
 * HAKMEM_HARDENED mode: a freed block must keep its fill, which reuse
 * checks. The owner only, but for hk_heap_trim's abandoned slabs.
 */
#ifndef HK_HEAP_PURGE_H
#define HK_HEAP_PURGE_H

#include <stddef.h>
#include <stdint.h>

#include "small/heap.h"
#include "small/heaps.h"
#include "base/options.h"
#include "platform/os.h"

/* A slab of h gained free blocks: arms the purge, unless armed. */
static inline void hk_heap_purge_arm(struct hk_heap *h) {
  long delay = hk_options.purge_delay_ms;
  if (h->purge_armed || delay < 0)
    return;
  h->purge_armed = 1;
  h->purge_at_ms = hk_os_now_ms() + (uint32_t)delay;
}
void hk_heap_purge_due(struct hk_heap *h);
/* The owner's slow path: the purges that are due. One clock read, and
 * none (nor a call) while nothing waits. */
static inline void hk_heap_maybe_purge(struct hk_heap *h) {
  if (h->purge_armed || hk_heaps_kept_pending())
    hk_heap_purge_due(h);
}
/* Before h takes a new slab: the purge that is armed, if the last one ran
 * a purge delay ago or more. Returns whether it ran. */
int hk_heap_purge_early(struct hk_heap *h);

/* malloc_trim's share of the small tiers: the empty slabs of exited
 * threads and those every heap keeps go back to the pool, and the free
 * pages of the calling thread's slabs and of abandoned ones to the OS.
 * Returns the bytes given back. */
size_t hk_heap_trim(void);

#endif
