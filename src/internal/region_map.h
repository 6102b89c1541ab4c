/* region_map.h: which 2 MiB regions of the address space are ours.
 *
 * Ownership is decided by lookup, never by guessing from headers: every
 * region hakmem maps is registered here with the segment that covers it, so
 * any address -- including one no mapping covers -- gets a definite answer.
 * Two levels: a static top table and 64 KiB leaves mapped on first use.
 * Lookups are lock-free; a registered entry never points at unmapped memory
 * because segments are unregistered before they are unmapped.
 */
#ifndef HK_REGION_MAP_H
#define HK_REGION_MAP_H

#include <stdatomic.h>
#include <stdint.h>

#include "types.h"

#define HK_ADDRESS_BITS 47
#define HK_MAP_LEAF_BITS 13
#define HK_MAP_TOP_BITS (HK_ADDRESS_BITS - HK_REGION_SHIFT - HK_MAP_LEAF_BITS)

struct hk_region_leaf {
  _Atomic(struct hk_segment *) entry[1u << HK_MAP_LEAF_BITS];
};

extern _Atomic(struct hk_region_leaf *) hk_region_top[1u << HK_MAP_TOP_BITS];

/* The segment owning the region that contains `addr`, or NULL. */
static inline struct hk_segment *hk_region_lookup(uintptr_t addr) {
  uintptr_t region = addr >> HK_REGION_SHIFT;
  if (__builtin_expect(region >> (HK_MAP_TOP_BITS + HK_MAP_LEAF_BITS), 0))
    return 0;
  struct hk_region_leaf *leaf = atomic_load_explicit(
      &hk_region_top[region >> HK_MAP_LEAF_BITS], memory_order_acquire);
  if (__builtin_expect(leaf == 0, 0))
    return 0;
  return atomic_load_explicit(
      &leaf->entry[region & ((1u << HK_MAP_LEAF_BITS) - 1)],
      memory_order_acquire);
}

/* Registers [base, base+size) (both region-aligned) as owned by `seg`.
 * Returns 0, or ENOMEM when a leaf could not be mapped. */
int hk_region_register(uintptr_t base, size_t size, struct hk_segment *seg);

/* Forgets [base, base+size); call before unmapping it. */
void hk_region_unregister(uintptr_t base, size_t size);

#endif
