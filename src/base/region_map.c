/* region_map.c: registering and forgetting regions, the flat array's
 * reservation and the tree (the usual lookup is inline, see
 * base/region_map.h). */
#include "base/region_map.h"

#include <errno.h>

#include "platform/os.h"

struct hk_region_mid hk_region_low;
struct hk_region_flat hk_region_flat;

/* Whether the flat array exists, decided by the first registration: 0
 * until then, FLAT_NONE, or the array. Once an entry is stored, which
 * regions the array holds must never change, or that entry would be
 * looked for in the wrong place. */
#define FLAT_NONE ((uintptr_t)1)
static _Atomic uintptr_t flat_decided;

static uintptr_t flat_regions(void) {
  unsigned bits = hk_address_bits();
  if (bits > HK_MAP_LOW_BITS)
    bits = HK_MAP_LOW_BITS;
  return (uintptr_t)1 << (bits - HK_REGION_SHIFT);
}

/* The regions the flat array holds (0: none), deciding whether it exists
 * if nobody has yet. It takes no more than an eighth of a limited address
 * space: a program under a tight RLIMIT_AS needs it for its own memory. */
static uintptr_t flat_decide(void) {
  uintptr_t n = flat_regions(), d;
  size_t bytes = n * sizeof(uintptr_t);
  d = atomic_load_explicit(&flat_decided, memory_order_acquire);
  if (d == 0) {
    void *fresh = hk_os_address_space_limit() / 8 >= bytes
                      ? hk_os_map_aligned(bytes, hk_page_size())
                      : NULL;
    uintptr_t mine = fresh ? (uintptr_t)fresh : FLAT_NONE;
    if (atomic_compare_exchange_strong_explicit(&flat_decided, &d, mine,
                                                memory_order_acq_rel,
                                                memory_order_acquire))
      d = mine;
    else if (fresh)
      hk_os_unmap(fresh, bytes);
  }
  if (d == FLAT_NONE)
    return 0;
  /* Published by whoever stores an entry first, the winner or not: a free
   * of a block from a region registered here must find the array. */
  if (atomic_load_explicit(&hk_region_flat.regions, memory_order_acquire) == 0) {
    atomic_store_explicit(&hk_region_flat.entry, (_Atomic uintptr_t *)d,
                          memory_order_relaxed);
    atomic_store_explicit(&hk_region_flat.regions, n, memory_order_release);
  }
  return n;
}

#define LEAF_MASK ((1u << HK_MAP_LEAF_BITS) - 1)
#define MID_MASK ((1u << HK_MAP_MID_BITS) - 1)

/* The level above 2^48: one table (struct hk_region_mid) per 2^48 bytes,
 * mid[0] unused (that range is hk_region_low). Mapped once, its size from
 * the address bits, which no longer change once anything is mapped. */
struct hk_region_high {
  uintptr_t count; /* entries of mid[]: 2^(hk_region_bits() - 48) */
  _Atomic(void *) mid[]; /* struct hk_region_mid * */
};

static _Atomic(struct hk_region_high *) high;

unsigned hk_region_bits(void) {
  unsigned bits = hk_address_bits();
  return bits > HK_MAP_LOW_BITS ? bits : HK_MAP_LOW_BITS;
}

/* The table in *slot, or, with `create`, a fresh one of `bytes` bytes
 * (zeroed, whole pages) installed there; NULL if there is none or it could
 * not be mapped. Two threads may race to install one; the loser unmaps its
 * copy. */
static void *slot_get(_Atomic(void *) *slot, size_t bytes, int create) {
  void *t = atomic_load_explicit(slot, memory_order_acquire);
  if (t || !create)
    return t;
  void *fresh = hk_os_map_aligned(bytes, hk_page_size());
  if (!fresh)
    return NULL;
  if (atomic_compare_exchange_strong_explicit(slot, &t, fresh,
                                              memory_order_acq_rel,
                                              memory_order_acquire))
    return fresh;
  hk_os_unmap(fresh, bytes);
  return t;
}

static struct hk_region_high *high_get(int create) {
  struct hk_region_high *h = atomic_load_explicit(&high, memory_order_acquire);
  if (h || !create || hk_region_bits() == HK_MAP_LOW_BITS)
    return h;
  uintptr_t count = (uintptr_t)1 << (hk_region_bits() - HK_MAP_LOW_BITS);
  size_t bytes = hk_page_round(sizeof *h + count * sizeof h->mid[0]);
  struct hk_region_high *fresh = hk_os_map_aligned(bytes, hk_page_size());
  if (!fresh)
    return NULL;
  fresh->count = count;
  if (atomic_compare_exchange_strong_explicit(&high, &h, fresh,
                                              memory_order_acq_rel,
                                              memory_order_acquire))
    return fresh;
  hk_os_unmap(fresh, bytes);
  return h;
}

/* The leaf describing `region` (an address >> HK_REGION_SHIFT), mapping the
 * tables on the way with `create`; NULL when there is none, when a table
 * could not be mapped, or when the region is beyond the map. */
static struct hk_region_leaf *leaf_for(uintptr_t region, int create) {
  struct hk_region_mid *mid = &hk_region_low;
  uintptr_t top = region >> (HK_MAP_MID_BITS + HK_MAP_LEAF_BITS);
  if (top) {
    struct hk_region_high *h = high_get(create);
    if (!h || top >= h->count)
      return NULL;
    mid = slot_get(&h->mid[top], sizeof *mid, create);
    if (!mid)
      return NULL;
  }
  return slot_get(&mid->leaf[(region >> HK_MAP_LEAF_BITS) & MID_MASK],
                  sizeof(struct hk_region_leaf), create);
}

int hk_region_decline_flat(void) {
  uintptr_t undecided = 0;
  return atomic_compare_exchange_strong_explicit(&flat_decided, &undecided,
                                                 FLAT_NONE, memory_order_acq_rel,
                                                 memory_order_acquire)
             ? 0
             : EBUSY;
}

uintptr_t hk_region_entry_tree(uintptr_t addr) {
  struct hk_region_leaf *leaf = leaf_for(addr >> HK_REGION_SHIFT, 0);
  if (!leaf)
    return 0;
  return atomic_load_explicit(
      &leaf->entry[(addr >> HK_REGION_SHIFT) & LEAF_MASK],
      memory_order_acquire);
}

/* The regions [base, base + size) touches; counted, not compared with
 * base + size, which wraps to 0 at the top of a 64-bit space. A mapping
 * that ends inside a region (a large chunk made for one block under
 * RLIMIT_AS) has that region too. */
static size_t regions_of(size_t size) {
  return (size >> HK_REGION_SHIFT) + ((size & HK_REGION_MASK) != 0);
}

/* Where region's entry is stored: in the flat array if it holds region
 * (flat regions, see flat_decide), else in the tree, whose tables are
 * mapped on the way with `create`; NULL if there is none. */
static _Atomic uintptr_t *entry_slot(uintptr_t region, uintptr_t flat,
                                     int create) {
  if (region < flat)
    return &atomic_load_explicit(&hk_region_flat.entry,
                                 memory_order_relaxed)[region];
  struct hk_region_leaf *leaf = leaf_for(region, create);
  return leaf ? &leaf->entry[region & LEAF_MASK] : NULL;
}

int hk_region_register_tagged(uintptr_t base, size_t size,
                              struct hk_mapping *mapping, unsigned tag) {
  if (((uintptr_t)mapping & HK_REGION_TAG_MASK) || tag > HK_REGION_TAG_MASK)
    return EINVAL;
  uintptr_t entry = (uintptr_t)mapping | tag, flat = flat_decide();
  size_t n = regions_of(size);
  for (size_t i = 0; i < n; i++) {
    uintptr_t region = (base >> HK_REGION_SHIFT) + i;
    /* Outside the address range we can describe, or out of memory: undo
     * what was registered so far, so a failure leaves nothing behind. */
    _Atomic uintptr_t *slot = entry_slot(region, flat, 1);
    if (!slot) {
      hk_region_unregister(base, i << HK_REGION_SHIFT);
      return ENOMEM;
    }
    atomic_store_explicit(slot, entry, memory_order_release);
  }
  return 0;
}

void hk_region_unregister(uintptr_t base, size_t size) {
  uintptr_t flat = flat_decide();
  size_t n = regions_of(size);
  for (size_t i = 0; i < n; i++) {
    _Atomic uintptr_t *slot =
        entry_slot((base >> HK_REGION_SHIFT) + i, flat, 0);
    if (slot)
      atomic_store_explicit(slot, 0, memory_order_release);
  }
}
