/* heap_purge.c: a heap's purges of free pages (see heap_purge.h). */
#include "small/heap_purge.h"

#include <stdint.h>

#include "small/abandon.h"
#include "small/heap.h"
#include "small/heaps.h"
#include "base/options.h"
#include "platform/os.h"
#include "small/remote.h"
#include "small/slab.h"

/* Whether the timed purge gives back a slab's free pages. A slab more than
 * half of whose carved blocks are out is one the program keeps refilling:
 * in a heap whose blocks come and go at a steady size, its free pages are
 * reused within moments, and each one given back is a decommit and a page
 * fault for nothing (mstress made 48,000 faults where tcmalloc made
 * 6,000). What is worth giving back is a slab the program has mostly left,
 * as after it freed most of its blocks. malloc_trim and
 * HAKMEM_TINY_MEM_DIET give back every free page all the same. A slab
 * spared keeps the purge armed: the program may go on to leave it. */
static int worth_purging(const struct hk_slab *s) {
  return hk_options.mem_diet || 2 * hk_slab_used(s) <= hk_slab_carved(s);
}

/* A slab whose use count is unchanged since its last purge is skipped
 * unless `all`, and what it gives back then is not counted: malloc_trim
 * reports whether it released memory, and those pages were gone already
 * (but for blocks freed and reused in equal numbers). */
static size_t purge_if(struct hk_slab *s, int all, int *spared) {
  if (!all && !worth_purging(s)) {
    *spared = 1;
    return 0;
  }
  if (!hk_slab_purged_already(s))
    return hk_slab_purge_pages(s);
  if (all)
    (void)hk_slab_purge_pages(s);
  return 0;
}

/* Gives back the free pages of the heap's slabs; `all` also those of slabs
 * whose use count has not changed since their last purge (malloc_trim),
 * which the timed purge skips so that an idle heap costs one pass.
 * Returns the bytes given back. */
static size_t purge_pages(struct hk_heap *h, int all) {
  h->purge_armed = 0;
  h->purged_ms = hk_os_now_ms();
  if (!hk_options.purge_slab_pages)
    return 0;
  size_t purged = 0;
  int spared = 0;
  unsigned c;
  HK_HEAP_EACH_TOUCHED(h, c) {
    struct hk_slab *s = h->cur[c], *next;
    if (s != &hk_empty_slab) {
      hk_slab_collect(s);
      purged += purge_if(s, all, &spared);
    }
    for (s = h->avail[c].first; s; s = next) {
      next = s->queue.next;
      hk_slab_collect(s);
      if (hk_slab_used(s) == 0) {
        hk_slab_dequeue(&h->avail[c], s);
        hk_heaps_release_slab(h, s);
      } else {
        purged += purge_if(s, all, &spared);
      }
    }
    for (s = h->full[c].first; s; s = next) {
      next = s->queue.next;
      hk_slab_collect(s);
      if (hk_slab_used(s) == 0) {
        hk_slab_dequeue(&h->full[c], s);
        hk_heaps_release_slab(h, s);
        continue;
      }
      if (!hk_slab_has_blocks(s))
        continue;
      hk_slab_dequeue(&h->full[c], s);
      s->list = HK_LIST_AVAIL;
      hk_slab_enqueue(&h->avail[c], s);
      if (all || worth_purging(s))
        purged += hk_slab_purge_pages(s);
      else
        spared = 1;
    }
  }
  if (spared)
    hk_heap_purge_arm(h);
  return purged;
}

/* A heap that grows purges before its delay is up, but not more than once
 * per delay: a program whose blocks come and go at random would otherwise
 * purge at every new slab pages it refills right after. */
int hk_heap_purge_early(struct hk_heap *h) {
  if (!h->purge_armed || (uint32_t)(hk_os_now_ms() - h->purged_ms) <
                             (uint32_t)hk_options.purge_delay_ms)
    return 0;
  purge_pages(h, 0);
  return 1;
}

void hk_heap_purge_due(struct hk_heap *h) {
  uint32_t now = hk_os_now_ms();
  if (h->purge_armed && (int32_t)(now - h->purge_at_ms) >= 0)
    purge_pages(h, 0);
  hk_heaps_maybe_purge_kept(now);
}

size_t hk_heap_trim(void) {
  /* Our batches first: blocks waiting in them keep their slabs, abandoned
   * ones too, counted as in use. */
  hk_remote_flush();
  size_t released = hk_abandoned_trim();
  struct hk_heap *h = hk_tls_heap;
  if (h != &hk_heap_empty)
    released += purge_pages(h, 1);
  return released + hk_heaps_purge_kept(hk_os_now_ms(), 0);
}
