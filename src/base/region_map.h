/* region_map.h: which 2 MiB regions of the address space are ours.
 *
 * Ownership is decided by lookup, never by guessing from headers: every
 * region hakmem maps is registered here with the mapping that covers it, so
 * any address -- including one no mapping covers -- gets a definite answer.
 *
 * Where the process's address space is not tightly limited, the regions
 * below 2^min(hk_address_bits, 48) -- every hintless mapping but s390x's
 * (and riscv64's on kernels before 6.6) -- have their entries in one flat
 * array, reserved at the first registration (512 MiB of address space on
 * x86-64, MAP_NORESERVE: untouched parts read as zeroes, "not ours", and
 * cost nothing; a page of entries covers 1 GiB). free() finds an entry
 * there with one load (snmalloc's pagemap). Every other region, and all of
 * them when the array could not be reserved (RLIMIT_AS, strict
 * overcommit), take the tree: below 2^48 a static table of leaf pointers
 * and 64 KiB leaves mapped on first use; above it, up to the address bits
 * of this platform (hk_address_bits, os.h), a table of such tables, mapped
 * when the first mapping up there is registered. The tree is looked up
 * out of line, so that the usual case pays nothing for it. Which regions
 * the flat array holds is decided once, before the first entry is stored.
 * Lookups are lock-free; a registered entry never points at unmapped memory
 * because mappings are unregistered before they are unmapped.
 */
#ifndef HK_REGION_MAP_H
#define HK_REGION_MAP_H

#include <stdatomic.h>
#include <stdint.h>

#include "base/hidden.h"
#include "base/types.h"

#define HK_MAP_LEAF_BITS 13 /* a leaf: 2^13 regions (16 GiB), 64 KiB */
#define HK_MAP_MID_BITS 14  /* a table: 2^14 leaves (256 TiB), 128 KiB */
/* The bits of address the two lower levels cover: 48. */
#define HK_MAP_LOW_BITS (HK_REGION_SHIFT + HK_MAP_LEAF_BITS + HK_MAP_MID_BITS)

/* A region's entry: the address of the mapping that owns it, which is
 * aligned to 64 bytes at least, with the slab shift of a SuperSlab in the
 * low bits (0 for a large chunk). free() finds a block's slab from the
 * entry alone, without first reading the SuperSlab's header: one load
 * fewer on the chain of dependent loads every free waits for. */
#define HK_REGION_TAG_MASK ((uintptr_t)0x3f)

struct hk_region_leaf {
  _Atomic uintptr_t entry[1u << HK_MAP_LEAF_BITS];
};

struct hk_region_mid {
  _Atomic(void *) leaf[1u << HK_MAP_MID_BITS]; /* struct hk_region_leaf * */
};

/* The table for addresses below 2^HK_MAP_LOW_BITS. */
extern HK_HIDDEN struct hk_region_mid hk_region_low;

/* The flat array: entries of regions 0 .. regions - 1; regions is 0 until
 * the array is in place, and for good if it could not be. */
struct hk_region_flat {
  _Atomic uintptr_t regions;
  _Atomic(_Atomic uintptr_t *) entry;
};
extern HK_HIDDEN struct hk_region_flat hk_region_flat;

/* hk_region_entry for an address the flat array does not hold. */
uintptr_t hk_region_entry_tree(uintptr_t addr);

/* The entry of the region that contains `addr` if the flat array holds it,
 * else 0, ours or not: a 0 from it is final only once hk_region_entry
 * agrees. For free(), whose fast path must not keep registers for a call
 * it almost never makes. */
static inline uintptr_t hk_region_entry_low(uintptr_t addr) {
  uintptr_t region = addr >> HK_REGION_SHIFT;
  if (__builtin_expect(region >= atomic_load_explicit(&hk_region_flat.regions,
                                                       memory_order_acquire),
                       0))
    return 0;
  _Atomic uintptr_t *flat =
      atomic_load_explicit(&hk_region_flat.entry, memory_order_relaxed);
  return atomic_load_explicit(&flat[region], memory_order_acquire);
}

/* The entry of the region that contains `addr`, 0 if it is not ours. */
static inline uintptr_t hk_region_entry(uintptr_t addr) {
  if (__builtin_expect(addr >> HK_REGION_SHIFT >=
                           atomic_load_explicit(&hk_region_flat.regions,
                                                memory_order_acquire),
                       0))
    return hk_region_entry_tree(addr);
  return hk_region_entry_low(addr);
}

static inline struct hk_mapping *hk_region_mapping(uintptr_t entry) {
  return (struct hk_mapping *)(entry & ~HK_REGION_TAG_MASK);
}
static inline struct hk_superslab *hk_region_superslab(uintptr_t entry) {
  return (struct hk_superslab *)(entry & ~HK_REGION_TAG_MASK);
}

/* The mapping owning the region that contains `addr`, or NULL. */
static inline struct hk_mapping *hk_region_lookup(uintptr_t addr) {
  return hk_region_mapping(hk_region_entry(addr));
}

/* How many bits of address the map describes: those of the platform, and
 * never fewer than the static table covers. */
unsigned hk_region_bits(void);

/* Registers [base, base+size) as owned by `mapping`: base is region-aligned;
 * a size that ends inside a region takes that whole region.
 * `tag` (at most HK_REGION_TAG_MASK) goes into the low bits of the entry.
 * Returns 0, EINVAL for a mapping not aligned to 64 bytes, or ENOMEM when
 * a table could not be mapped or the range goes beyond 2^hk_region_bits(). */
int hk_region_register_tagged(uintptr_t base, size_t size,
                              struct hk_mapping *mapping, unsigned tag);

static inline int hk_region_register(uintptr_t base, size_t size,
                                     struct hk_mapping *mapping) {
  return hk_region_register_tagged(base, size, mapping, 0);
}

/* Tests only (hidden, not a knob): every region takes the tree, as where
 * the flat array could not be reserved. Returns 0, or EBUSY once the
 * first registration has decided. */
int hk_region_decline_flat(void);

/* Forgets [base, base+size); call before unmapping it. */
void hk_region_unregister(uintptr_t base, size_t size);

#endif
