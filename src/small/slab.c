/* slab.c: the out-of-line operations on one slab (see slab.h): purging
 * its free pages. */
#include "small/slab.h"

#include <stddef.h>
#include <stdint.h>

_Atomic hk_link hk_slab_no_blocks = HK_LINK_LIVE;

// ---------------------------------------------------------------------------
// Free pages of a slab in use. Links live out of band, so a page none of
// whose blocks is out with the program (LIVE) or being freed (PENDING)
// holds nothing anyone will read again: it can go back to the OS, and a
// block on it reads zeroes when next handed out. Blocks freed by other
// threads are collected first; one freed remotely after that is chained
// with index links too, but the program has given it up, so its page may
// go all the same. Only a slab's owner hands out its blocks, so none turns
// LIVE during the scan.

static size_t purge_range(struct hk_superslab *ss, uintptr_t lo, uintptr_t hi) {
  uintptr_t page_mask = hk_page_size() - 1;
  lo = (lo + page_mask) & ~page_mask;
  hi &= ~page_mask;
  if (hi <= lo)
    return 0;
  /* A refused decommit (mlock) leaves the pages as they were: dirty. */
  return hk_superslab_decommit(ss, (void *)lo, hi - lo) == 0 ? hi - lo : 0;
}

size_t hk_slab_purge_pages(struct hk_slab *s) {
  struct hk_superslab *ss = hk_slab_superslab(s);
  uint32_t bs = hk_slab_block_size(s);
  unsigned carved = hk_slab_carved(s);
  uintptr_t run = s->start; /* where the run of free blocks began */
  int in_run = 1;
  size_t purged = 0;
  for (unsigned i = 0; i < carved; i++) {
    if (hk_link_in_use(hk_link_get(s, i))) {
      if (in_run)
        purged += purge_range(ss, run, s->start + (uintptr_t)i * bs);
      in_run = 0;
    } else if (!in_run) {
      run = s->start + (uintptr_t)i * bs;
      in_run = 1;
    }
  }
  /* Past the carved blocks nothing is the program's (a slab reused before
   * its purge may still have those pages). */
  if (!in_run)
    run = s->start + (uintptr_t)carved * bs;
  purged += purge_range(ss, run, hk_slab_base(s) + ((uintptr_t)1 << ss->slab_shift));
  ss->purged_used[hk_slab_index(s)] = hk_slab_used(s) + 1;
  return purged;
}

int hk_slab_purged_already(struct hk_slab *s) {
  return hk_slab_superslab(s)->purged_used[hk_slab_index(s)] ==
         hk_slab_used(s) + 1;
}

