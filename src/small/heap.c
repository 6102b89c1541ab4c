/* heap.c: a thread's heap -- finding it a slab when its current one runs
 * dry, and taking slabs off its lists when frees empty or unfill them. */
#include "small/heap.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "small/abandon.h"
#include "base/counters.h"
#include "small/heap_purge.h"
#include "small/heaps.h"
#include "base/options.h"
#include "small/remote.h"
#include "small/slab.h"
#include "small/superslab.h"

/* How many full slabs a refill looks at for remote frees before it takes a
 * new slab; bounded so that a huge heap does not make refills slow. */
#define HK_FULL_SCAN 16

// ---------------------------------------------------------------------------
// Getting slabs

static struct hk_slab *fresh_slab(struct hk_heap *h, unsigned cls) {
  unsigned g = hk_class_geometry(cls);
  struct hk_slab *s = hk_heaps_kept_pop(h, g);
  /* Before the heap grows, the free pages it has are given back even if
   * their delay has not passed: otherwise a program that frees most of one
   * size and then allocates another keeps the sum of both resident. (The
   * purge may empty a slab, which is then kept.) */
  if (!s && hk_heap_purge_early(h))
    s = hk_heaps_kept_pop(h, g);
  if (!s) {
    s = hk_superslab_acquire_slab(g);
    if (!s)
      return NULL;
  }
  hk_counters_add(&hk_counters.slab_bytes,
                  (size_t)1 << hk_slab_superslab(s)->slab_shift);
  hk_slab_init(s, cls, hk_owner_token());
  return s;
}

static struct hk_slab *find_slab(struct hk_heap *h, unsigned cls) {
  struct hk_slab *s;
  while ((s = hk_slab_queue_pop(&h->avail[cls])) != NULL) {
    hk_slab_collect(s);
    if (hk_slab_has_blocks(s))
      return s;
    s->list = HK_LIST_FULL;
    hk_slab_enqueue(&h->full[cls], s);
  }
  /* Full slabs regain blocks only through remote frees, which the owner
   * does not hear about; look at a few, rotating so all get their turn. */
  for (int i = 0; i < HK_FULL_SCAN && (s = hk_slab_queue_pop(&h->full[cls]));
       i++) {
    hk_slab_collect(s);
    if (hk_slab_has_blocks(s)) {
      s->list = HK_LIST_AVAIL;
      return s;
    }
    hk_slab_enqueue(&h->full[cls], s);
  }
  s = hk_abandoned_adopt(h, cls);
  if (s)
    return s;
  return fresh_slab(h, cls);
}

/* Inlined into hk_heap_alloc, which the default mode takes once per carve
 * batch; hk_heap_refill is the same out of line, for hardened.c. */
static inline __attribute__((always_inline)) struct hk_slab *
refill(struct hk_heap *h, struct hk_slab **cur, unsigned cls) {
  struct hk_slab *s = *cur;
  if (s != &hk_empty_slab) {
    hk_slab_collect(s);
    if (hk_slab_list_empty(s))
      hk_slab_carve(s);
    if (!hk_slab_list_empty(s))
      return s;
    s->list = HK_LIST_FULL;
    hk_slab_enqueue(&h->full[cls], s);
    *cur = &hk_empty_slab;
  }
  s = find_slab(h, cls);
  if (!s) {
    errno = ENOMEM;
    return NULL;
  }
  if (hk_slab_list_empty(s))
    hk_slab_carve(s);
  /* A WHOLE SuperSlab's slab leaves the fast path when it empties even as
   * the current one (see hk_free_local_slow): it is 2 MiB for a handful of
   * blocks, which an idle thread would otherwise pin for good. Not in
   * HAKMEM_HARDENED mode, where the slab stays so that a second free of
   * its last block is still told as a double free. */
  s->list = hk_class_geometry(cls) == HK_GEOM_WHOLE && !hk_options.hardened
                ? HK_LIST_AVAIL
                : HK_LIST_CURRENT;
  *cur = s;
  h->touched[cls / 64] |= (uint64_t)1 << (cls % 64);
  return s;
}

struct hk_slab *hk_heap_refill(struct hk_heap *h, struct hk_slab **cur,
                               unsigned cls) {
  return refill(h, cur, cls);
}

void *hk_heap_alloc(struct hk_heap *h, unsigned cls) {
  hk_remote_flush();
  hk_heap_maybe_purge(h);
  for (;;) {
    struct hk_slab *s = refill(h, &h->cur[cls], cls);
    if (!s)
      return NULL;
    unsigned i;
    if (hk_slab_pop(s, &i))
      return hk_slab_block(s, i);
  }
}

// ---------------------------------------------------------------------------
// Frees that leave the fast path

void hk_free_local_slow(struct hk_heap *h, struct hk_slab *s) {
  unsigned cls = hk_slab_class(s);
  if (s->list == HK_LIST_CURRENT)
    return;
  if (s == h->cur[cls] || s == h->hard_cur[cls]) {
    /* A current slab of a WHOLE SuperSlab that emptied (see refill). */
    if (hk_slab_used(s) == 0) {
      if (h->cur[cls] == s)
        h->cur[cls] = &hk_empty_slab;
      else
        h->hard_cur[cls] = &hk_empty_slab;
      hk_heaps_release_slab(h, s);
    }
    return;
  }
  hk_heap_purge_arm(h);
  if (hk_slab_used(s) == 0) {
    hk_slab_dequeue(s->list == HK_LIST_FULL ? &h->full[cls] : &h->avail[cls],
                    s);
    hk_heaps_release_slab(h, s);
    return;
  }
  if (s->list == HK_LIST_FULL) {
    hk_slab_dequeue(&h->full[cls], s);
    s->list = HK_LIST_AVAIL;
    hk_slab_enqueue(&h->avail[cls], s);
  }
}

static void count(_Atomic uint64_t *c) {
  atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                        memory_order_relaxed);
}

int hk_heap_free_if_owner(struct hk_slab *s, unsigned i) {
  struct hk_heap *h = hk_tls_heap;
  unsigned cls = hk_slab_class(s);
  if (atomic_load_explicit(&s->owner, memory_order_relaxed) ==
      hk_owner_token()) {
    if (hk_options.stats)
      count(&h->frees[cls]);
    hk_free_local(s, i);
    return 1;
  }
  if (!hk_options.stats)
    return 0;
  if (h == &hk_heap_empty)
    atomic_fetch_add_explicit(&hk_counters.remote_frees[cls], 1,
                              memory_order_relaxed);
  else
    count(&h->remote_frees[cls]);
  return 0;
}

void hk_heap_release(struct hk_heap *h) {
  unsigned c;
  HK_HEAP_EACH_TOUCHED(h, c) {
    struct hk_slab *s;
    if (h->cur[c] != &hk_empty_slab)
      hk_abandon_slab(h->cur[c], 0);
    h->cur[c] = &hk_empty_slab;
    if (h->hard_cur[c] != &hk_empty_slab)
      hk_abandon_slab(h->hard_cur[c], 0);
    h->hard_cur[c] = &hk_empty_slab;
    while ((s = hk_slab_queue_pop(&h->avail[c])) != NULL)
      hk_abandon_slab(s, 0);
    while ((s = hk_slab_queue_pop(&h->full[c])) != NULL)
      hk_abandon_slab(s, 0);
  }
  memset(h->touched, 0, sizeof h->touched);
  hk_heaps_release_kept(h);
  hk_heaps_retire(h);
}
