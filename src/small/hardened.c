/* hardened.c: HAKMEM_HARDENED for small blocks (see small/hardened.h
 * for what it checks and how the default mode is kept free of it). */
#include "small/hardened.h"

#include <stdint.h>
#include <string.h>

#include "small/heap.h"
#include "base/options.h"
#include "small/remote.h"
#include "base/report.h"
#include "small/size_class.h"
#include "small/slab.h"

/* Freed memory is read as words; the program wrote it with any type. */
typedef uint64_t __attribute__((may_alias)) hk_word;
#define FILL_WORD ((uint64_t)0x0101010101010101u * HK_FREE_FILL)

/* Small blocks are filled and checked word by word: a call to memset or
 * memcmp would cost more than the loop. */
#define FILL_INLINE_MAX 32
/* The fill is checked in the first KiB of a block only. Writes after free
 * land mostly in an object's first fields, and checking all of a 32 KiB
 * block at every reuse made hardened mode eight times slower than the
 * default on bench/fastpath-loop mix; with the cap, under four. */
#define FILL_CHECK_MAX 1024

/* What the checked part of a freed block must equal. */
static const unsigned char fill_ref[FILL_CHECK_MAX] = {
    [0 ... FILL_CHECK_MAX - 1] = HK_FREE_FILL};

static void fill(void *b, uint32_t bs) {
  if (bs > FILL_INLINE_MAX) {
    memset(b, HK_FREE_FILL, bs);
    return;
  }
  hk_word *w = b;
  for (uint32_t i = 0; i < bs / sizeof *w; i++)
    w[i] = FILL_WORD;
}

static int fill_intact(const void *b, uint32_t bs) {
  if (bs <= FILL_INLINE_MAX) {
    const hk_word *w = b;
    uint64_t diff = 0;
    for (uint32_t i = 0; i < bs / sizeof *w; i++)
      diff |= w[i] ^ FILL_WORD;
    return diff == 0;
  }
  const unsigned char *p = b;
  size_t left = bs < FILL_CHECK_MAX ? bs : FILL_CHECK_MAX;
  while (left > 0) {
    size_t n = left < sizeof fill_ref ? left : sizeof fill_ref;
    if (memcmp(p, fill_ref, n) != 0)
      return 0;
    p += n;
    left -= n;
  }
  return 1;
}

void *hk_hardened_alloc(struct hk_heap *h, unsigned cls) {
  for (;;) {
    struct hk_slab *s = h->hard_cur[cls];
    if (hk_slab_list_empty(s)) {
      s = hk_heap_refill(h, &h->hard_cur[cls], cls);
      if (!s)
        return NULL;
    }
    unsigned i;
    int got = hk_slab_pop(s, &i);
    if (!got)
      continue; /* the list was corrupt and is gone: carve, collect or
                   take another slab */
    void *b = hk_slab_block(s, i);
    /* A freed block carries the fill; one carved but never handed out
     * holds whatever its pages held. With HAKMEM_INVALID_FREE=warn the
     * block is handed out all the same: the list itself is sound. */
    if (got == 1 && !fill_intact(b, hk_slab_block_size(s)))
      hk_report_misuse("malloc", "write after free", b);
    return b;
  }
}

/* Slab metadata checked, then the block filled. Returns 0 when the free
 * was reported and must be dropped (HAKMEM_INVALID_FREE=warn). */
static int free_check(struct hk_slab *s, unsigned i) {
  /* Thread pointers are aligned; in this mode owners are always recorded
   * with the low tag bit. The class and block size are written together. */
  uintptr_t owner = atomic_load_explicit(&s->owner, memory_order_relaxed);
  unsigned cls = hk_slab_class(s);
  void *b = hk_slab_block(s, i);
  if ((owner != 0 && (owner & 15) != 1) || cls >= HK_CLASS_COUNT ||
      hk_class_size[cls] != hk_slab_block_size(s)) {
    hk_report_misuse("free", "corrupted heap metadata", b);
    return 0;
  }
  fill(b, hk_slab_block_size(s));
  return 1;
}

void hk_hardened_free(struct hk_slab *s, unsigned i) {
  /* Every free is claimed, the owner's too. */
  if (!hk_slab_claim(s, i, "free") || !free_check(s, i))
    return;
  if (!hk_heap_free_if_owner(s, i))
    hk_free_remote(s, i, 0);
}
