/* slab.h: operations on one slab -- cutting it into blocks, handing them
 * out and taking them back through its free list (freelist.h), collecting
 * the blocks other threads freed into it, its place on a heap's queues.
 * Only the slab's owner calls these, except hk_slab_remote_push. */
#ifndef HK_SLAB_H
#define HK_SLAB_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "base/counters.h"
#include "base/hidden.h"
#include "small/freelist.h"
#include "base/list.h"
#include "base/options.h"
#include "platform/os.h"
#include "base/report.h"
#include "small/size_class.h"
#include "small/superslab.h"
#include "base/types.h"

#define HK_RELAXED memory_order_relaxed

/* A LIVE link on its own: the list of a slab without blocks (the heaps'
 * placeholder, a slab reset for the pool) is this one sentinel, so that
 * malloc's fast path leaves at once. */
extern HK_HIDDEN _Atomic hk_link hk_slab_no_blocks;

/* The calling thread's token: its thread pointer, one instruction away
 * (mimalloc's _mi_prim_thread_id). Unique among live threads; a thread's
 * slabs are all abandoned or released when it exits, before another
 * thread can be given the same pointer. */
static inline uintptr_t hk_thread_token(void) {
  return hk_os_thread_pointer();
}

/* What the slabs of the calling thread hold in their owner field: its
 * token, or with HAKMEM_STATS or HAKMEM_HARDENED the token with its low
 * bit set, so that no free matches the fast path's owner test and every
 * free is counted, or checked, out of line. */
static inline uintptr_t hk_owner_token(void) {
  return hk_thread_token() | (unsigned)(hk_options.stats | hk_options.hardened);
}

static inline unsigned hk_slab_used(const struct hk_slab *s) {
  return atomic_load_explicit(&s->used, HK_RELAXED);
}
static inline void hk_slab_set_used(struct hk_slab *s, unsigned v) {
  atomic_store_explicit(&s->used, v, HK_RELAXED);
}
/* The owner's +1 and -1 of `used`, which malloc and free make on every
 * call. As relaxed atomics they are a load, an add and a store; on x86-64
 * one instruction does it (and its flags tell free whether the slab
 * emptied). Other threads only read `used`, and an aligned 32-bit store
 * is seen whole either way. */
#if defined(__x86_64__) && defined(__GCC_ASM_FLAG_OUTPUTS__)
static inline void hk_slab_used_inc(struct hk_slab *s) {
  __asm__("addl $1, %0" : "+m"(s->used));
}
/* Returns whether blocks are still out after the -1. */
static inline _Bool hk_slab_used_dec(struct hk_slab *s) {
  _Bool left;
  __asm__("subl $1, %0" : "+m"(s->used), "=@ccnz"(left));
  return left;
}
#else
static inline void hk_slab_used_inc(struct hk_slab *s) {
  hk_slab_set_used(s, hk_slab_used(s) + 1);
}
static inline _Bool hk_slab_used_dec(struct hk_slab *s) {
  unsigned used = hk_slab_used(s) - 1;
  hk_slab_set_used(s, used);
  return used != 0;
}
#endif
static inline uint32_t hk_slab_block_size(const struct hk_slab *s) {
  return atomic_load_explicit(&s->block_size, HK_RELAXED);
}
static inline unsigned hk_slab_class(const struct hk_slab *s) {
  return atomic_load_explicit(&s->class_idx, HK_RELAXED);
}
static inline unsigned hk_slab_carved(const struct hk_slab *s) {
  return atomic_load_explicit(&s->carved, HK_RELAXED);
}
static inline int hk_slab_list_empty(const struct hk_slab *s) {
  return hk_freelist_empty(s);
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

static inline _Atomic hk_remote *hk_slab_remote(const struct hk_slab *s) {
  return &hk_slab_superslab(s)->meta->remote[hk_slab_index(s)].head;
}

static inline void *hk_slab_block(const struct hk_slab *s, unsigned i) {
  return (void *)(s->start + (uintptr_t)i * hk_slab_block_size(s));
}

/* The index of `a`, known to be a carved block of the slab. */
static inline unsigned hk_slab_index_of(const struct hk_slab *s, uintptr_t a) {
  return (unsigned)hk_div_by_magic((uint32_t)(a - s->start), s->div_magic)
      .quotient;
}

/* How many blocks of bs bytes a slab with `bytes` after its first block's
 * start holds: all that fit, but never more than HK_LINK_INDEX, so that
 * the sentinel's index (the capacity, freelist.h) fits a link. Its link
 * fits the slab's stride, which has one to spare (link_stride in
 * superslab.c). */
static inline uint16_t hk_slab_capacity(uintptr_t bytes, uint32_t bs) {
  uintptr_t n = bytes / bs;
  return (uint16_t)(n > HK_LINK_INDEX ? HK_LINK_INDEX : n);
}

static inline void hk_slab_init(struct hk_slab *s, unsigned cls,
                                uintptr_t owner) {
  struct hk_superslab *ss = hk_slab_superslab(s);
  uintptr_t base = hk_slab_base(s);
  uintptr_t start = hk_slab_data_start(s);
  uint32_t bs = hk_class_size[cls];
  hk_slab_set_used(s, 0);
  atomic_store_explicit(&s->carved, 0, HK_RELAXED);
  s->start = start;
  s->links = hk_slab_links_at(s);
  atomic_store_explicit(&s->block_size, bs, HK_RELAXED);
  s->capacity = hk_slab_capacity(base + ((uintptr_t)1 << ss->slab_shift) - start,
                                 bs);
  hk_freelist_init(s);
  s->div_magic = hk_div_magic(bs);
  atomic_store_explicit(&s->class_idx, (uint8_t)cls, HK_RELAXED);
  s->list = HK_LIST_AVAIL;
  s->queue.next = s->queue.prev = NULL;
  atomic_store_explicit(hk_slab_remote(s), HK_REMOTE_EMPTY, HK_RELAXED);
  atomic_store_explicit(&s->owner, owner, memory_order_release);
}

/* Makes every block of the slab unreachable for free(): stale pointers into
 * an unused slab are then reported instead of corrupting it. */
static inline void hk_slab_reset(struct hk_slab *s) {
  atomic_store_explicit(&s->owner, 0, HK_RELAXED);
  atomic_store_explicit(&s->block_size, 0, HK_RELAXED);
  atomic_store_explicit(&s->carved, 0, HK_RELAXED);
  s->capacity = 0;
  s->div_magic = 0;
  s->links = &hk_slab_no_blocks;
  hk_freelist_clear(s);
  hk_slab_set_used(s, 0);
}

/* Moves the blocks other threads freed into the owner's free list. The
 * list is taken whole, with its count and its last block (see
 * hk_freelist_splice). */
static inline void hk_slab_collect(struct hk_slab *s) {
  _Atomic hk_remote *remote = hk_slab_remote(s);
  hk_remote h = atomic_load_explicit(remote, HK_RELAXED);
  if (h == HK_REMOTE_EMPTY || h == HK_REMOTE_STUCK)
    return;
  h = atomic_exchange_explicit(remote, HK_REMOTE_EMPTY, memory_order_acquire);
  unsigned first = hk_remote_first(h), n = hk_remote_count(h);
  unsigned last = hk_remote_last(h);
  /* A head out of range is reported at the block its index bits name. */
  unsigned bad = first & HK_LINK_INDEX;
  if (__builtin_expect(first < s->capacity && last < s->capacity && n != 0 &&
                           n <= hk_slab_used(s),
                       1))
    bad = hk_freelist_splice(s, first, last);
  if (__builtin_expect(bad != HK_LINK_END, 0)) {
    hk_report_misuse("malloc", "corrupted free list", hk_slab_block(s, bad));
    return;
  }
  hk_slab_set_used(s, hk_slab_used(s) - n);
  if (__builtin_expect(hk_options.stats, 0))
    atomic_fetch_add_explicit(&hk_counters.collected[hk_slab_class(s)], n,
                              HK_RELAXED);
}

/* Pushes the n blocks first -> ... -> last, whose links the caller has
 * claimed (each was LIVE) and chained, onto the slab's remote list.
 * Returns the head it replaced. */
static inline hk_remote hk_slab_remote_push(struct hk_slab *s, unsigned first,
                                           unsigned last, unsigned n) {
  return hk_freelist_remote_push(s, hk_slab_remote(s), first, last, n);
}

/* Cuts a few more never-used blocks into the (empty) free list. Carving a
 * little at a time, not the whole slab, keeps untouched link pages out of
 * RSS and bounds what one malloc writes. Their links say they are fresh,
 * so that a free() of one that malloc never returned is told from a
 * double free. */
#define HK_CARVE_FIRST_BYTES 1024 /* blocks' worth in a slab's first carve */
#define HK_CARVE_FIRST_BLOCKS 8   /* but at least this many */
#define HK_CARVE_BYTES 8192       /* the most in any later one */
/* How many blocks of size bs the carve after `carved` cuts: as many as
 * were cut before (the total doubles), from HK_CARVE_FIRST_BYTES' worth
 * (at least HK_CARVE_FIRST_BLOCKS) up to HK_CARVE_BYTES' worth, and at
 * least one. A fixed amount, not
 * pages': two 64 KiB pages of 16-byte blocks would be 8192 links written
 * by one malloc. Small first carves keep a thread that touches many
 * classes a few times each (a thread per request) from writing 512 links
 * per class it touches. */
static inline unsigned hk_slab_carve_batch(uint32_t bs, unsigned carved) {
  unsigned first = HK_CARVE_FIRST_BYTES / bs, most = HK_CARVE_BYTES / bs;
  if (first < HK_CARVE_FIRST_BLOCKS)
    first = HK_CARVE_FIRST_BLOCKS;
  unsigned batch = carved > first ? carved : first;
  if (batch > most)
    batch = most;
  return batch > 0 ? batch : 1;
}
static inline int hk_slab_carve(struct hk_slab *s) {
  unsigned carved = hk_slab_carved(s);
  unsigned left = (unsigned)s->capacity - carved;
  if (left == 0)
    return 0;
  unsigned batch = hk_slab_carve_batch(hk_slab_block_size(s), carved);
  if (batch > left)
    batch = left;
  hk_freelist_fill_fresh(s, carved, batch);
  atomic_store_explicit(&s->carved, (uint16_t)(carved + batch), HK_RELAXED);
  return 1;
}

/* A slab's queues (a heap's avail and full, the stuck slabs) and stacks
 * (kept, adoptable). A slab off its queues has NULL links. */
#define HK_SLAB_QUEUE offsetof(struct hk_slab, queue)
#define HK_SLAB_STACK offsetof(struct hk_slab, stack)
static inline void hk_slab_enqueue(struct hk_queue *q, struct hk_slab *s) {
  hk_queue_push_back(q, s, HK_SLAB_QUEUE);
}
static inline void hk_slab_dequeue(struct hk_queue *q, struct hk_slab *s) {
  hk_queue_remove(q, s, HK_SLAB_QUEUE);
  hk_list_node_clear(s, HK_SLAB_QUEUE);
}
static inline struct hk_slab *hk_slab_queue_pop(struct hk_queue *q) {
  struct hk_slab *s = q->first;
  if (s)
    hk_slab_dequeue(q, s);
  return s;
}

/* Whether the owner can hand out a block of s without another slab. */
static inline int hk_slab_has_blocks(const struct hk_slab *s) {
  return !hk_slab_list_empty(s) || hk_slab_carved(s) < s->capacity;
}

/* A slab that leaves the heaps for the pool (or a heap's kept empties):
 * no longer counted as in use, and every stale pointer into it reported. */
static inline void hk_slab_retire(struct hk_slab *s) {
  hk_counters_sub(&hk_counters.slab_bytes,
                  (size_t)1 << hk_slab_superslab(s)->slab_shift);
  hk_slab_reset(s);
}

/* Pops the first block of s's (non-empty) free list into *index: 2 if it
 * was never handed out before, 1 if it was; 0 after reporting a corrupted
 * list, which is then dropped. */
static inline int hk_slab_pop(struct hk_slab *s, unsigned *index) {
  unsigned i = s->free;
  hk_link next = hk_link_get(s, i);
  if (__builtin_expect(!hk_link_free(next), 0)) {
    /* Two frees of one block raced (or a bug of ours): the block is out
     * with the program or being freed. The list is dropped; its blocks
     * stay counted in `used`, so the slab is never given back, which is
     * safe (HAKMEM_INVALID_FREE=warn goes on with the next slab). */
    hk_freelist_clear(s);
    hk_report_misuse("malloc", "corrupted free list", hk_slab_block(s, i));
    return 0;
  }
  int fresh = hk_freelist_unlink_head(s, i, next);
  hk_slab_used_inc(s);
  *index = i;
  return fresh ? 2 : 1;
}

/* Gives back to the OS the pages of s that hold no LIVE or PENDING block.
 * The caller owns s (or has taken it off the abandoned lists) and has
 * collected its remote frees. Returns the bytes given back. */
size_t hk_slab_purge_pages(struct hk_slab *s);
/* Whether s's use count is what it was at its last purge. */
int hk_slab_purged_already(struct hk_slab *s);

/* Claims block i for its free by `fn` (see hk_freelist_claim); reports
 * the misuse and returns 0 if it was not LIVE. */
static inline int hk_slab_claim(struct hk_slab *s, unsigned i, const char *fn) {
  hk_link found;
  if (hk_freelist_claim(s, i, &found))
    return 1;
  hk_report_misuse(fn, hk_link_misuse(found), hk_slab_block(s, i));
  return 0;
}

#endif
