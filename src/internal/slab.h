/* slab.h: operations on one slab -- cutting it into blocks, collecting the
 * blocks other threads freed into it. Only the slab's owner calls these. */
#ifndef HK_SLAB_H
#define HK_SLAB_H

#include <stdatomic.h>
#include <stdint.h>

#include "hardened.h"
#include "options.h"
#include "os.h"
#include "size_class.h"
#include "stats.h"
#include "superslab.h"
#include "types.h"

#define HK_RELAXED memory_order_relaxed
static inline unsigned hk_slab_used(const struct hk_slab *s) {
  return atomic_load_explicit(&s->used, HK_RELAXED);
}
static inline void hk_slab_set_used(struct hk_slab *s, unsigned v) {
  atomic_store_explicit(&s->used, (uint16_t)v, HK_RELAXED);
}
static inline uint32_t hk_slab_block_size(const struct hk_slab *s) {
  return atomic_load_explicit(&s->block_size, HK_RELAXED);
}
static inline unsigned hk_slab_class(const struct hk_slab *s) {
  return atomic_load_explicit(&s->class_idx, HK_RELAXED);
}

extern uintptr_t hk_tag_secret;

/* What a free block holds in its second word; secret, so that program data
 * does not pass for it by accident. */
static inline uintptr_t hk_free_tag(const struct hk_block *b) {
  return (uintptr_t)b ^ hk_tag_secret;
}

/* Division by the block size without a divide (Lemire, Kaser and Kurz,
 * "Faster remainder by direct computation", 2019): with M = 2^64 / d
 * rounded up, for every 32-bit n the high half of the 128-bit product
 * M * n is n / d, and d divides n exactly when the low half is below M.
 * One multiply thus gives free() both the block index and whether the
 * pointer is a block start. */
static inline uint64_t hk_div_magic(uint32_t d) { return UINT64_MAX / d + 1; }

struct hk_div {
  uint64_t quotient;
  int exact; /* the divisor divides n */
};

static inline struct hk_div hk_div_by_magic(uint32_t n, uint64_t magic) {
  unsigned __int128 prod = (unsigned __int128)magic * n;
  struct hk_div r = {(uint64_t)(prod >> 64), (uint64_t)prod < magic};
  return r;
}

static inline unsigned hk_slab_index(const struct hk_slab *s) {
  return (unsigned)(s - hk_slab_superslab(s)->slabs);
}

static inline uintptr_t hk_slab_base(const struct hk_slab *s) {
  const struct hk_superslab *ss = hk_slab_superslab(s);
  return (uintptr_t)ss + ((uintptr_t)hk_slab_index(s) << ss->slab_shift);
}

static inline void hk_slab_init(struct hk_slab *s, unsigned cls,
                                struct hk_heap *owner) {
  const struct hk_superslab *ss = hk_slab_superslab(s);
  uintptr_t base = hk_slab_base(s);
  uintptr_t start = hk_slab_index(s) == 0 ? base + HK_SLAB0_DATA_OFFSET : base;
  uint32_t bs = hk_class_size[cls];
  s->free = NULL;
  hk_slab_set_used(s, 0);
  atomic_store_explicit(&s->carved, 0, memory_order_relaxed);
  s->start_off = (uint32_t)(start - (uintptr_t)ss);
  atomic_store_explicit(&s->block_size, bs, HK_RELAXED);
  s->capacity = (uint16_t)((base + ((uintptr_t)1 << ss->slab_shift) - start) / bs);
  s->div_magic = hk_div_magic(bs);
  atomic_store_explicit(&s->class_idx, (uint8_t)cls, HK_RELAXED);
  if (__builtin_expect(hk_options.hardened, 0))
    hk_hardened_slab_init(s);
  s->list = HK_LIST_AVAIL;
  s->next = s->prev = NULL;
  atomic_store_explicit(&s->remote, NULL, memory_order_relaxed);
  atomic_store_explicit(&s->owner, owner, memory_order_release);
}

/* Makes every block of the slab unreachable for free(): stale pointers into
 * an unused slab are then reported instead of corrupting it. */
static inline void hk_slab_reset(struct hk_slab *s) {
  atomic_store_explicit(&s->owner, NULL, memory_order_relaxed);
  atomic_store_explicit(&s->block_size, 0, HK_RELAXED);
  atomic_store_explicit(&s->carved, 0, memory_order_relaxed);
  s->capacity = 0;
  s->div_magic = 0;
  s->free = NULL;
  hk_slab_set_used(s, 0);
}

/* A stuck slab (abandoned, no free block) holds this in its remote list
 * instead of NULL: the thread whose remote free replaces it knows that the
 * slab just became worth adopting, without reading the slab afterwards. */
#define HK_REMOTE_STUCK ((struct hk_block *)1)

/* Moves the blocks other threads freed into the owner's free list. */
static inline void hk_slab_collect(struct hk_slab *s) {
  if (atomic_load_explicit(&s->remote, memory_order_relaxed) == NULL)
    return;
  struct hk_block *list =
      atomic_exchange_explicit(&s->remote, NULL, memory_order_acquire);
  if (!list)
    return;
  if (__builtin_expect(hk_options.hardened, 0)) {
    hk_hardened_collect(s, list);
    return;
  }
  uint32_t n = 1;
  struct hk_block *tail = list;
  while (tail->next) {
    tail = tail->next;
    n++;
  }
  tail->next = s->free;
  s->free = list;
  hk_slab_set_used(s, hk_slab_used(s) - n);
  if (__builtin_expect(hk_options.stats, 0))
    atomic_fetch_add_explicit(&hk_counters.collected[hk_slab_class(s)], n,
                              memory_order_relaxed);
}

/* What a free block's first word holds for a link to `next`. */
static inline struct hk_block *hk_slab_link(const struct hk_block *b,
                                            const struct hk_block *next) {
  if (__builtin_expect(hk_options.hardened, 0))
    return hk_list_encode(b, next);
  return (struct hk_block *)next;
}

/* Cuts a few more never-used blocks into the free list. Carving a page or
 * so at a time, not the whole slab, keeps untouched pages out of RSS. */
static inline int hk_slab_carve(struct hk_slab *s) {
  /* Only the owner writes `carved`; remote frees only read it. */
  uint32_t carved = atomic_load_explicit(&s->carved, memory_order_relaxed);
  uint32_t left = (uint32_t)s->capacity - carved;
  if (left == 0)
    return 0;
  uint32_t bs = hk_slab_block_size(s);
  uint32_t batch = (2 * HK_PAGE_SIZE) / bs;
  if (batch == 0)
    batch = 1;
  if (batch > left)
    batch = left;
  uintptr_t first = (uintptr_t)hk_slab_superslab(s) + s->start_off +
                    (uintptr_t)carved * bs;
  /* Carved blocks carry the free tag with its low bit flipped, so that a
   * free() of one that malloc never returned is caught (hk_small_free). */
  struct hk_block *b = (struct hk_block *)first;
  for (uint32_t i = 1; i < batch; i++) {
    struct hk_block *n = (struct hk_block *)((uintptr_t)b + bs);
    b->next = n;
    b->free_tag = hk_free_tag(b) ^ 1;
    b = n;
  }
  b->next = s->free;
  b->free_tag = hk_free_tag(b) ^ 1;
  if (__builtin_expect(hk_options.hardened, 0))
    hk_hardened_encode_run((struct hk_block *)first, batch, bs);
  s->free = (struct hk_block *)first;
  atomic_store_explicit(&s->carved, (uint16_t)(carved + batch),
                        memory_order_relaxed);
  return 1;
}

#endif
