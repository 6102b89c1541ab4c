/* counters.h: process-wide byte and block counters, the allocator's
 * bookkeeping that statistics (stats.h) and malloc_trim read. Touched only
 * on slow paths (mapping, slab hand-out), so that the malloc/free fast path
 * pays nothing for them; every layer may count, none reads them to decide
 * anything but a report. */
#ifndef HK_COUNTERS_H
#define HK_COUNTERS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "small/size_class.h"

struct hk_counters {
  _Atomic size_t mapped;      /* bytes of SuperSlabs, large blocks, metadata */
  _Atomic size_t peak_mapped;
  _Atomic size_t slab_bytes;  /* bytes of slabs cut into blocks */
  _Atomic size_t large_bytes; /* bytes of live large blocks (usable size) */
  _Atomic size_t large_count;
  _Atomic size_t large_cached_bytes;
  /* Hardened large blocks handed out without both guard pages (mapping
   * budget reached, or mprotect refused), ever. */
  _Atomic size_t large_unguarded;
  _Atomic size_t superslabs;
  _Atomic size_t peak_superslabs;
  _Atomic size_t large_allocs; /* with HAKMEM_STATS only */
  _Atomic size_t large_frees;
  /* Counted with HAKMEM_STATS: frees by a block's owner (heaps add theirs
   * here when their thread exits), remote frees (by the freeing thread)
   * and remote frees collected by an owner; a block is freed for the
   * report once it is back on its slab's own list. */
  _Atomic uint64_t frees[HK_CLASS_COUNT];
  _Atomic uint64_t remote_frees[HK_CLASS_COUNT];
  _Atomic uint64_t collected[HK_CLASS_COUNT];
};

extern struct hk_counters hk_counters;

void hk_counters_mapped(size_t bytes);
void hk_counters_superslabs(int delta);
void hk_counters_unmapped(size_t bytes);

static inline void hk_counters_add(_Atomic size_t *c, size_t v) {
  atomic_fetch_add_explicit(c, v, memory_order_relaxed);
}
static inline void hk_counters_sub(_Atomic size_t *c, size_t v) {
  atomic_fetch_sub_explicit(c, v, memory_order_relaxed);
}

#endif
