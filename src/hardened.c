/* hardened.c: HAKMEM_HARDENED for small blocks (see internal/hardened.h
 * for what it checks and how the default mode is kept free of it). */
#define _GNU_SOURCE
#include "internal/hardened.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "internal/heap.h"
#include "internal/options.h"
#include "internal/report.h"
#include "internal/size_class.h"
#include "internal/slab.h"
#include "internal/stats.h"
#include "internal/superslab.h"

_Atomic uintptr_t hk_list_secret;

/* Freed memory is read as words; the program wrote it with any type. */
typedef uint64_t __attribute__((may_alias)) hk_word;
#define FILL_WORD ((uint64_t)0x0101010101010101u * HK_FREE_FILL)
/* A block's words the allocator uses while it is free: link and tag. */
#define HEADER_BYTES sizeof(struct hk_block)

static const unsigned char fill_page[HK_PAGE_SIZE] = {
    [0 ... HK_PAGE_SIZE - 1] = HK_FREE_FILL};

// ---------------------------------------------------------------------------
// The secret

static uintptr_t mix(uintptr_t x) {
  x ^= x >> 30;
  x *= (uintptr_t)0xbf58476d1ce4e5b9u;
  x ^= x >> 27;
  x *= (uintptr_t)0x94d049bb133111ebu;
  return x ^ (x >> 31);
}

/* Drawn on first use, apart from the free tag's secret (which a program
 * reading a freed block can work out from the tag), so that knowing one
 * does not give the other. Racing threads agree through the CAS. */
static void secret_init(void) {
  if (atomic_load_explicit(&hk_list_secret, memory_order_relaxed) != 0)
    return;
  uintptr_t v = 0;
  int saved = errno;
  if (getrandom(&v, sizeof v, GRND_NONBLOCK) != (ssize_t)sizeof v) {
    /* No getrandom (old kernel, seccomp): weaker, but still differs from
     * run to run with ASLR and the clock. */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    v = mix(hk_tag_secret ^ (uintptr_t)&ts ^ (uintptr_t)ts.tv_nsec);
  }
  errno = saved;
  uintptr_t none = 0;
  atomic_compare_exchange_strong_explicit(&hk_list_secret, &none, v | 1,
                                          memory_order_relaxed,
                                          memory_order_relaxed);
}

// ---------------------------------------------------------------------------
// Block geometry: indices, the bitmap

static uintptr_t slab_bytes(const struct hk_slab *s) {
  return (uintptr_t)1 << hk_slab_superslab(s)->slab_shift;
}

static uintptr_t bitmap_words(uint32_t capacity) {
  return ((uintptr_t)capacity + 63) / 64;
}

/* The bitmap takes the last whole words of the slab; `a` is any address
 * inside the slab (slabs are aligned to their size). */
static _Atomic uint64_t *bitmap(const struct hk_slab *s, uintptr_t a) {
  uintptr_t size = slab_bytes(s);
  uintptr_t end = (a & ~(size - 1)) + size;
  return (_Atomic uint64_t *)(end - bitmap_words(s->capacity) *
                                        sizeof(uint64_t));
}

/* The index of `a`, known to be a carved block of the slab. */
static uint64_t index_of(const struct hk_slab *s, uintptr_t a) {
  uint32_t off = (uint32_t)((a & HK_REGION_MASK) - s->start_off);
  return hk_div_by_magic(off, s->div_magic).quotient;
}

/* The two below run on every malloc and free: inlined, whatever the
 * compiler thinks of their size. */
#define HOT static inline __attribute__((always_inline))

/* Whether `a` is a carved block of the slab. */
HOT int is_block(const struct hk_slab *s, uintptr_t a) {
  uintptr_t ss = (uintptr_t)hk_slab_superslab(s);
  if ((a & ~(uintptr_t)HK_REGION_MASK) != ss || a - ss < s->start_off)
    return 0;
  uint64_t idx = index_of(s, a);
  return idx * hk_slab_block_size(s) == a - ss - s->start_off &&
         idx < atomic_load_explicit(&s->carved, memory_order_relaxed);
}

/* The bit of block `a` (a carved one) in its bitmap word. */
HOT uint64_t bit_of(const struct hk_slab *s, uintptr_t a,
                    _Atomic uint64_t **word) {
  uint64_t idx = index_of(s, a);
  *word = &bitmap(s, a)[idx / 64];
  return (uint64_t)1 << (idx % 64);
}

void hk_hardened_slab_init(struct hk_slab *s) {
  secret_init();
  uintptr_t start = (uintptr_t)hk_slab_superslab(s) + s->start_off;
  uintptr_t end = hk_slab_base(s) + slab_bytes(s);
  uint32_t bs = hk_slab_block_size(s);
  /* As many blocks as fit with their bitmap: first room for the bitmap of
   * every block the slab could hold, then any block that still fits. */
  uintptr_t room = end - start;
  uint32_t cap = (uint32_t)((room - bitmap_words((uint32_t)(room / bs)) *
                                        sizeof(uint64_t)) / bs);
  while ((uintptr_t)(cap + 1) * bs +
             bitmap_words(cap + 1) * sizeof(uint64_t) <= room)
    cap++;
  s->capacity = (uint16_t)cap;
  _Atomic uint64_t *map = bitmap(s, start);
  for (uintptr_t i = 0; i < bitmap_words(s->capacity); i++)
    atomic_store_explicit(&map[i], 0, memory_order_relaxed);
}

void hk_hardened_encode_run(struct hk_block *first, uint32_t n, uint32_t bs) {
  struct hk_block *b = first;
  for (uint32_t i = 0; i < n; i++) {
    b->next = hk_list_encode(b, b->next);
    b = (struct hk_block *)((uintptr_t)b + bs);
  }
}

// ---------------------------------------------------------------------------
// Following links

/* Decodes the link stored in b and checks it: NULL or a carved block of
 * the slab. Returns 0 if it is neither. */
static int next_of(const struct hk_slab *s, const struct hk_block *b,
                   struct hk_block **next) {
  *next = hk_list_decode(b);
  return *next == NULL || is_block(s, (uintptr_t)*next);
}

/* Whether the block `b` of the slab is out with the program. */
static int is_out(const struct hk_slab *s, const struct hk_block *b) {
  _Atomic uint64_t *word;
  uint64_t bit = bit_of(s, (uintptr_t)b, &word);
  return (atomic_load_explicit(word, memory_order_relaxed) & bit) != 0;
}

void hk_hardened_collect(struct hk_slab *s, struct hk_block *list) {
  uint32_t carved = atomic_load_explicit(&s->carved, memory_order_relaxed);
  if (!is_block(s, (uintptr_t)list) || is_out(s, list)) {
    /* The head came from a free() that checked it: the slab's metadata
     * itself has been overwritten. */
    hk_report_misuse("malloc", "corrupted free list", list);
    return;
  }
  /* Every block on the list must be a free one of this slab, and there
   * cannot be more of them than blocks were carved (or the list loops). */
  uint32_t n = 1;
  struct hk_block *tail = list, *next;
  for (;;) {
    if (!next_of(s, tail, &next) ||
        (next && (n >= carved || is_out(s, next)))) {
      /* The blocks after `tail` are lost: they stay counted in `used`,
       * so the slab is never given back, which is safe. */
      hk_report_misuse("malloc", "corrupted free list", tail);
      break;
    }
    if (!next)
      break;
    tail = next;
    n++;
  }
  tail->next = hk_list_encode(tail, s->free);
  s->free = list;
  hk_slab_set_used(s, hk_slab_used(s) - n);
  if (__builtin_expect(hk_options.stats, 0))
    atomic_fetch_add_explicit(&hk_counters.collected[hk_slab_class(s)], n,
                              memory_order_relaxed);
}

// ---------------------------------------------------------------------------
// malloc

/* Small blocks are filled and checked word by word: a call to memset or
 * memcmp would cost more than the loop. */
#define FILL_INLINE_MAX 32
/* The fill is checked in the first KiB of a block only. Writes after free
 * land mostly in an object's first fields, and checking all of a 32 KiB
 * block at every reuse made hardened mode eight times slower than the
 * default on bench/fastpath-loop mix; with the cap, under four. */
#define FILL_CHECK_MAX 1024

static void fill(struct hk_block *b, uint32_t bs) {
  if (bs > FILL_INLINE_MAX) {
    memset((char *)b + HEADER_BYTES, HK_FREE_FILL, bs - HEADER_BYTES);
    return;
  }
  hk_word *w = (hk_word *)b;
  for (uint32_t i = HEADER_BYTES / sizeof *w; i < bs / sizeof *w; i++)
    w[i] = FILL_WORD;
}

static int fill_intact(const struct hk_block *b, uint32_t bs) {
  if (bs <= FILL_INLINE_MAX) {
    const hk_word *w = (const hk_word *)b;
    uint64_t diff = 0;
    for (uint32_t i = HEADER_BYTES / sizeof *w; i < bs / sizeof *w; i++)
      diff |= w[i] ^ FILL_WORD;
    return diff == 0;
  }
  const unsigned char *p = (const unsigned char *)b + HEADER_BYTES;
  size_t left = (bs < FILL_CHECK_MAX ? bs : FILL_CHECK_MAX) - HEADER_BYTES;
  while (left > 0) {
    size_t n = left < sizeof fill_page ? left : sizeof fill_page;
    if (memcmp(p, fill_page, n) != 0)
      return 0;
    p += n;
    left -= n;
  }
  return 1;
}

/* Pops the slab's first free block, or returns NULL after reporting a
 * corrupted list, which is then dropped (HAKMEM_INVALID_FREE=warn). */
static void *pop(struct hk_slab *s) {
  /* The head itself was checked when it became the head: freed (the
   * block was located), carved, or decoded by the pop before. */
  struct hk_block *b = s->free, *next;
  if (!next_of(s, b, &next)) {
    s->free = NULL;
    hk_report_misuse("malloc", "corrupted free list", b);
    return NULL;
  }
  /* Relaxed is enough: the bit only has to change atomically. A block
   * freed by another thread reached this list through the remote list's
   * release/acquire pair, which orders its fill and bit before us. */
  _Atomic uint64_t *word;
  uint64_t bit = bit_of(s, (uintptr_t)b, &word);
  uint64_t old = atomic_fetch_or_explicit(word, bit, memory_order_relaxed);
  if (old & bit) { /* a block the program holds is on the free list */
    s->free = NULL;
    hk_report_misuse("malloc", "corrupted free list", b);
    return NULL;
  }
  s->free = next;
  hk_slab_set_used(s, hk_slab_used(s) + 1);
  /* A freed block carries the tag and the fill; a block carved but never
   * handed out carries the tag with its low bit flipped and no fill. */
  uintptr_t tag = hk_free_tag(b);
  if (__builtin_expect(b->free_tag != (tag ^ 1) &&
                           (b->free_tag != tag ||
                            !fill_intact(b, hk_slab_block_size(s))),
                       0))
    /* The list is sound: with HAKMEM_INVALID_FREE=warn the block is
     * handed out all the same. */
    hk_report_misuse("malloc", "write after free", b);
  b->free_tag = 0;
  return b;
}

void *hk_hardened_alloc(struct hk_heap *h, unsigned cls) {
  for (;;) {
    struct hk_slab *s = h->hard_cur[cls];
    if (s->free == NULL) {
      s = hk_heap_refill(h, &h->hard_cur[cls], cls);
      if (!s)
        return NULL;
    }
    void *p = pop(s);
    if (p)
      return p;
    /* The slab's list was corrupt and is gone: carve, collect or take
     * another slab. */
  }
}

// ---------------------------------------------------------------------------
// free

int hk_hardened_free_check(struct hk_slab *s, struct hk_block *b) {
  /* Heaps are cache-line aligned and, in this mode, always recorded with
   * the low tag bit; the class and block size are written together. */
  uintptr_t owner =
      (uintptr_t)atomic_load_explicit(&s->owner, memory_order_relaxed);
  unsigned cls = hk_slab_class(s);
  if ((owner != 0 && (owner & 63) != 1) || cls >= HK_CLASS_COUNT ||
      hk_class_size[cls] != hk_slab_block_size(s)) {
    hk_report_misuse("free", "corrupted heap metadata", b);
    return 0;
  }
  /* hk_small_locate found b to be a carved block of the slab. One atomic
   * read-modify-write decides between two racing frees of the same block;
   * relaxed, since nothing else is published through it. */
  _Atomic uint64_t *word;
  uint64_t bit = bit_of(s, (uintptr_t)b, &word);
  uint64_t old = atomic_fetch_and_explicit(word, ~bit, memory_order_relaxed);
  if (!(old & bit)) {
    hk_report_misuse("free", "double free", b);
    return 0;
  }
  fill(b, hk_slab_block_size(s));
  return 1;
}

void hk_hardened_free_local(struct hk_heap *h, struct hk_slab *s,
                            struct hk_block *b) {
  b->next = hk_list_encode(b, s->free);
  s->free = b;
  unsigned used = hk_slab_used(s) - 1;
  hk_slab_set_used(s, used);
  if (s->list != HK_LIST_AVAIL ||
      (used == 0 && s != h->hard_cur[hk_slab_class(s)]))
    hk_free_local_slow(h, s);
}
