/* heap.h: the per-thread heap and the tiny/medium fast paths.
 *
 * Each thread owns slabs; for each size class it allocates from one
 * current slab's free list, so malloc is a TLS load and a list pop. A free
 * by the owner pushes back onto the slab's list; a free by any other thread
 * pushes onto the slab's atomic remote list, which the owner collects when
 * its list runs dry. A thread that exits gives its slabs back: empty ones to
 * the pool, the rest to per-class abandoned stacks that other threads adopt.
 */
#ifndef HK_HEAP_H
#define HK_HEAP_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "list.h"
#include "options.h"
#include "region_map.h"
#include "report.h"
#include "size_class.h"
#include "slab.h"
#include "types.h"

struct hk_heap {
  struct hk_slab *cur[HK_CLASS_COUNT]; /* read by the malloc fast path */
  struct hk_queue avail[HK_CLASS_COUNT]; /* slabs with free blocks */
  struct hk_queue full[HK_CLASS_COUNT];  /* slabs with none (maybe remote) */
  /* Unused slabs kept for reuse, under empty_lock: another thread gives
   * them back once they have been kept for the purge delay, or on
   * malloc_trim, since the owner may never call the allocator again. */
  struct hk_stack empty[HK_GEOM_COUNT];
  unsigned empty_count[HK_GEOM_COUNT];
  _Atomic unsigned empty_lock;
  /* Some slab gained free blocks since the last purge of free pages
   * (heap_purge_pages in heap.c), due at purge_at_ms. Owner only. */
  uint8_t purge_armed;
  uint32_t purge_at_ms;
  uint32_t purged_ms; /* when that purge last ran */
  /* HAKMEM_HARDENED: the current slabs, kept out of `cur` (which then
   * stays at hk_empty_slab) so that every malloc leaves the fast path. */
  struct hk_slab *hard_cur[HK_CLASS_COUNT];
  struct hk_stack_node free_node; /* on free_heaps, once its thread exited */
  /* On all_heaps: every heap ever made; heaps are never unmapped. */
  struct hk_stack_node all_node;
  /* HAKMEM_STATS counters, written by this heap's thread only. */
  _Atomic uint64_t frees[HK_CLASS_COUNT];
  _Atomic uint64_t remote_frees[HK_CLASS_COUNT];
};

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

/* Sums every heap's free counters into the arrays (HAKMEM_STATS). */
void hk_heap_sum_frees(uint64_t *frees, uint64_t *remote_frees);

/* Threads start on this heap, whose current slabs are all one empty slab,
 * so that the fast path needs no "initialised?" test. */
extern struct hk_heap hk_heap_empty;
extern struct hk_slab hk_empty_slab;
extern __thread struct hk_heap *hk_tls_heap
    __attribute__((tls_model("initial-exec")));

void *hk_small_alloc_slow(unsigned cls);
/* Makes *cur (h->cur[cls] or h->hard_cur[cls]) a slab of the class with a
 * free block: collects or carves the current one, or retires it and finds
 * another. NULL with errno ENOMEM when no memory is left. */
struct hk_slab *hk_heap_refill(struct hk_heap *h, struct hk_slab **cur,
                               unsigned cls);
/* Pops the first block of s's (non-empty) free list into *index: 2 if it
 * was never handed out before, 1 if it was; 0 after reporting a corrupted
 * list, which is then dropped. */
int hk_slab_pop(struct hk_slab *s, unsigned *index);
void hk_free_local_slow(struct hk_heap *h, struct hk_slab *s);
/* free() of block i of s by a thread that is not its owner (and, with
 * HAKMEM_STATS or HAKMEM_HARDENED, by every thread). */
void hk_free_remote(struct hk_slab *s, unsigned i);

/* Pushes the calling thread's batch of remote frees (see heap.c) onto its
 * slab's remote list; done at thread exit and on every refill. */
void hk_remote_flush(void);

/* malloc_trim's share of the small tiers: the empty slabs of exited
 * threads and those every heap keeps go back to the pool, and the free
 * pages of the calling thread's slabs and of abandoned ones to the OS.
 * Returns the bytes given back. */
size_t hk_heap_trim(void);

/* Attaches a heap to the calling thread; NULL when out of memory. */
struct hk_heap *hk_heap_attach(void);
/* Gives back everything the heap owns; called at thread exit. */
void hk_heap_detach(struct hk_heap *h);

void hk_heap_fork_prepare(void);
void hk_heap_fork_parent(void);
void hk_heap_fork_child(void);

/* The fast path: the current slab's first free block. Its link is checked
 * before it becomes the head: a LIVE or PENDING link (left by two threads
 * freeing one block at once) goes to the slow path, which reports it. */
static inline void *hk_small_alloc(unsigned cls) {
  struct hk_slab *s = hk_tls_heap->cur[cls];
  unsigned i = s->free;
  if (__builtin_expect(!(i & HK_LINK_END), 1)) {
    hk_link next = hk_link_get(s, i);
    if (__builtin_expect(next < HK_LINK_PENDING, 1)) {
      s->free = (uint16_t)(next & ~HK_LINK_FRESH);
      hk_link_set(s, i, HK_LINK_LIVE);
      hk_slab_set_used(s, hk_slab_used(s) + 1);
      return hk_slab_block(s, i);
    }
  }
  return hk_small_alloc_slow(cls);
}

/* The slab holding `a` if `a` is the start of one of its carved blocks,
 * with the block's index in *index; reports `fn` misuse and returns NULL
 * otherwise. (Whether the block is out with the program is told by its
 * link, see hk_small_free.) */
static inline struct hk_slab *hk_small_locate(struct hk_superslab *ss,
                                              unsigned slab_shift, uintptr_t a,
                                              const char *fn,
                                              unsigned *index) {
  /* slab_shift is the region map's copy of ss->slab_shift, so the header
   * line is not waited for. An address in the unmapped rest of a solo
   * slab's region lands on one of the header's unused slabs, whose zero
   * div_magic fails the test below. */
  struct hk_slab *s = ss->slabs + ((a & HK_REGION_MASK) >> slab_shift);
  /* One base for every field of s below (else the compiler keeps two). */
  __asm__("" : "+r"(s));
  /* An address below the first block wraps around to near 2^32, whose
   * quotient exceeds any slab's block count. */
  struct hk_div d = hk_div_by_magic((uint32_t)(a - s->start), s->div_magic);
  if (__builtin_expect(!d.exact || d.quotient >= hk_slab_carved(s), 0)) {
    hk_report_misuse(fn, "invalid pointer", (void *)a);
    return NULL;
  }
  *index = (unsigned)d.quotient;
  return s;
}

/* The owner's side of free: back onto the slab's own list. */
static inline void hk_free_local(struct hk_slab *s, unsigned i) {
  hk_link_set(s, i, s->free);
  s->free = (uint16_t)i;
  /* An empty slab that is still the current one stays put: alternating
   * malloc/free of one block must not leave the fast path (but for huge
   * blocks, see refill in heap.c). Any other that empties goes back, and a
   * full one becomes available again. */
  unsigned used = hk_slab_used(s) - 1;
  hk_slab_set_used(s, used);
  if (__builtin_expect(s->list > (used != 0), 0))
    hk_free_local_slow(hk_tls_heap, s);
}

/* Always inlined: a call would cost free() more than the body saves. */
static inline __attribute__((always_inline)) void
hk_small_free(struct hk_superslab *ss, unsigned slab_shift, void *p,
              const char *fn) {
  unsigned i;
  struct hk_slab *s = hk_small_locate(ss, slab_shift, (uintptr_t)p, fn, &i);
  if (__builtin_expect(s == NULL, 0))
    return;
  /* Only a block out with the program has a LIVE link: this one test
   * catches a double free whatever the program wrote into the block. */
  hk_link link = hk_link_get(s, i);
  if (__builtin_expect(link != HK_LINK_LIVE, 0)) {
    hk_report_misuse(fn, hk_slab_misuse(link), p);
    return;
  }
  /* With HAKMEM_STATS the owner field is tagged, so every free takes the
   * out-of-line path, which counts it; without, this compare is all. */
  if (__builtin_expect(atomic_load_explicit(&s->owner, memory_order_relaxed) ==
                           hk_thread_token(),
                       1)) {
    hk_free_local(s, i);
    return;
  }
  hk_free_remote(s, i);
}

#endif
