/* region_map.c: registering and forgetting regions (lookup is inline). */
#include "internal/region_map.h"

#include <errno.h>

#include "internal/os.h"

_Atomic(struct hk_region_leaf *) hk_region_top[1u << HK_MAP_TOP_BITS];

static struct hk_region_leaf *leaf_for(uintptr_t region) {
  _Atomic(struct hk_region_leaf *) *slot =
      &hk_region_top[region >> HK_MAP_LEAF_BITS];
  struct hk_region_leaf *leaf =
      atomic_load_explicit(slot, memory_order_acquire);
  if (leaf)
    return leaf;
  struct hk_region_leaf *fresh =
      hk_os_map_aligned(sizeof(struct hk_region_leaf), HK_PAGE_SIZE);
  if (!fresh)
    return NULL;
  /* Two threads may race to install a leaf; the loser unmaps its copy. */
  if (atomic_compare_exchange_strong_explicit(slot, &leaf, fresh,
                                              memory_order_acq_rel,
                                              memory_order_acquire))
    return fresh;
  hk_os_unmap(fresh, sizeof(struct hk_region_leaf));
  return leaf;
}

int hk_region_register(uintptr_t base, size_t size, struct hk_segment *seg) {
  for (uintptr_t a = base; a < base + size; a += HK_REGION_SIZE) {
    uintptr_t region = a >> HK_REGION_SHIFT;
    /* Outside the address range we can describe, or out of memory: undo
     * what was registered so far, so a failure leaves nothing behind. */
    struct hk_region_leaf *leaf =
        region >> (HK_MAP_TOP_BITS + HK_MAP_LEAF_BITS) ? NULL : leaf_for(region);
    if (!leaf) {
      hk_region_unregister(base, a - base);
      return ENOMEM;
    }
    atomic_store_explicit(
        &leaf->entry[region & ((1u << HK_MAP_LEAF_BITS) - 1)], seg,
        memory_order_release);
  }
  return 0;
}

void hk_region_unregister(uintptr_t base, size_t size) {
  for (uintptr_t a = base; a < base + size; a += HK_REGION_SIZE) {
    uintptr_t region = a >> HK_REGION_SHIFT;
    struct hk_region_leaf *leaf = atomic_load_explicit(
        &hk_region_top[region >> HK_MAP_LEAF_BITS], memory_order_acquire);
    if (leaf)
      atomic_store_explicit(
          &leaf->entry[region & ((1u << HK_MAP_LEAF_BITS) - 1)], NULL,
          memory_order_release);
  }
}
