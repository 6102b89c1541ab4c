/* huge_pages.h: when a new mapping asks for transparent huge pages
 * (HAKMEM_HUGE_PAGES).
 *
 * A huge page makes the first touch of 2 MiB one fault instead of 512 and
 * saves TLB misses on every access after: for a heap that fills its
 * memory, most of the cost of new memory. Its price is that touching one
 * byte of a 2 MiB range makes all of it resident. Under auto a mapping
 * asks for them only once the program's blocks take HK_HUGE_AUTO_BYTES
 * (slabs in use and live large blocks; mapped address space would count
 * a whole 64 MiB chunk for its first block): then the part
 * of a huge page that a half-used SuperSlab or the tail of a large block
 * leaves unused costs a few per cent at most, while a small program keeps
 * its small footprint. Below that, a large block still has the huge
 * pages that lie wholly inside it advised (hk_chunk_advise_block): they
 * cost no byte the block does not own.
 */
#ifndef HK_HUGE_PAGES_H
#define HK_HUGE_PAGES_H

#include <stdatomic.h>

#include "base/counters.h"
#include "base/options.h"

#define HK_HUGE_AUTO_BYTES ((size_t)64 << 20)

/* 1: advise the new mapping into huge pages; 0: advise it out of them;
 * -1: leave it to the system's default. */
static inline int hk_huge_pages_advice(void) {
  switch (hk_options.huge_pages) {
  case HK_HUGE_PAGES_always:
    return 1;
  case HK_HUGE_PAGES_never:
    return 0;
  default:
    return atomic_load_explicit(&hk_counters.slab_bytes,
                                memory_order_relaxed) +
                       atomic_load_explicit(&hk_counters.large_bytes,
                                            memory_order_relaxed) >=
                   HK_HUGE_AUTO_BYTES
               ? 1
               : -1;
  }
}

#endif
