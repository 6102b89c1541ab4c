/* region_map.h: which 2 MiB regions of the address space are ours.
 *
 * Ownership is decided by lookup, never by guessing from headers: every
 * region hakmem maps is registered here with the mapping that covers it, so
 * any address -- including one no mapping covers -- gets a definite answer.
 *
 * The low 2^48 bytes, where every architecture but s390x (and riscv64 on
 * kernels before 6.6) keeps all of a process's hintless mappings, take two
 * levels: a static table of leaf pointers and 64 KiB leaves mapped on first
 * use; free() looks there with two loads. Above 2^48, up to the address
 * bits of this platform (hk_address_bits, os.h), a third level: a table of
 * such tables, mapped when the first mapping up there is registered and
 * looked up out of line, so that the usual case pays nothing for it.
 * Lookups are lock-free; a registered entry never points at unmapped memory
 * because mappings are unregistered before they are unmapped.
 */
#ifndef HK_REGION_MAP_H
#define HK_REGION_MAP_H

#include <stdatomic.h>
#include <stdint.h>

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
extern struct hk_region_mid hk_region_low;

/* hk_region_entry for an address at or above 2^HK_MAP_LOW_BITS. */
uintptr_t hk_region_entry_high(uintptr_t addr);

/* The entry of the region that contains `addr` if `addr` is below
 * 2^HK_MAP_LOW_BITS, else 0, ours or not: a 0 from it is final only once
 * hk_region_entry agrees. For free(), whose fast path must not keep
 * registers for a call it almost never makes. */
static inline uintptr_t hk_region_entry_low(uintptr_t addr) {
  uintptr_t region = addr >> HK_REGION_SHIFT;
  /* A compare, where a shift would need a copy of addr first. */
  if (__builtin_expect(
          region >= (uintptr_t)1 << (HK_MAP_MID_BITS + HK_MAP_LEAF_BITS), 0))
    return 0;
  struct hk_region_leaf *leaf = atomic_load_explicit(
      &hk_region_low.leaf[region >> HK_MAP_LEAF_BITS], memory_order_acquire);
  if (__builtin_expect(leaf == 0, 0))
    return 0;
  return atomic_load_explicit(
      &leaf->entry[region & ((1u << HK_MAP_LEAF_BITS) - 1)],
      memory_order_acquire);
}

/* The entry of the region that contains `addr`, 0 if it is not ours. */
static inline uintptr_t hk_region_entry(uintptr_t addr) {
  if (__builtin_expect(addr >> HK_MAP_LOW_BITS, 0))
    return hk_region_entry_high(addr);
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

/* Forgets [base, base+size); call before unmapping it. */
void hk_region_unregister(uintptr_t base, size_t size);

#endif
