/* large_purge.c: giving the dirty pages of free extents back to the OS
 * (see hk_purge_take in large_chunk.h), in batches whose madvise calls run
 * without the large tier's lock. */
#include "large/large_purge.h"

#include <stdint.h>

#include "large/large_chunk.h"
#include "large/large_extent.h"
#include "base/options.h"
#include "platform/os.h"

#define HK_PURGE_BATCH 32
/* After the kernel refused a decommit, the extent is not tried again for
 * this long, nor is anything purged for the cache limit. */
#define HK_PURGE_BACKOFF_MS 1000u

static struct {
  struct hk_extent *e;
  int rc;
} batch[HK_PURGE_BATCH];
static int batch_n;
static int purging;       /* a batch is out, being purged without the lock */
static int backing_off;   /* no purging for the limit since backoff_ms */
static uint32_t backoff_ms;
static __thread int purging_here __attribute__((tls_model("initial-exec")));

size_t hk_purge_take(int all, size_t limit) {
  if (purging)
    return 0;
  uint32_t now = hk_os_now_ms();
  if (backing_off && (uint32_t)(now - backoff_ms) >= HK_PURGE_BACKOFF_MS)
    backing_off = 0;
  long delay = hk_options.purge_delay_ms;
  int n = 0;
  /* The dirty list is in the order extents became dirty: the oldest are
   * at the tail, and the walk stops at the first one still young (one
   * refused before is young for a second at least). */
  while (hk_dirty_extents() > 0 && n < HK_PURGE_BATCH && (size_t)n < limit) {
    struct hk_extent *e = hk_extent_oldest_dirty();
    uint32_t age = now - e->freed_ms;
    int old = delay >= 0 && age >= (uint32_t)delay &&
              (!e->refused || age >= HK_PURGE_BACKOFF_MS);
    int over =
        hk_extent_dirty_bytes() > hk_options.large_cache_bytes && !backing_off;
    if (!all && !old && !over)
      break;
    hk_extent_unlink(e);
    e->state = HK_EXT_BUSY;
    batch[n].e = e;
    batch[n].rc = -1;
    n++;
  }
  batch_n = n;
  purging = n > 0;
  purging_here = purging;
  return (size_t)n;
}

void hk_purge_run(void) {
  for (int i = 0; i < batch_n; i++) {
    struct hk_extent *e = batch[i].e;
    batch[i].rc = hk_os_decommit(
        (void *)hk_chunk_addr(e->chunk, e->dirty_lo),
        (size_t)(e->dirty_hi - e->dirty_lo) << hk_page_shift());
  }
}

size_t hk_purge_finish(void) {
  size_t released = 0;
  for (int i = 0; i < batch_n; i++) {
    struct hk_extent *e = batch[i].e;
    hk_extent_check(e, HK_EXT_BUSY);
    struct hk_large_chunk *c = e->chunk;
    uint32_t page = hk_extent_page(e), pages = e->pages;
    uint32_t lo = e->dirty_lo, hi = e->dirty_hi;
    e->state = 0;
    hk_chunk_clear_bounds(c, page, pages);
    int refused = batch[i].rc != 0;
    if (!refused) {
      released += (size_t)(hi - lo) << hk_page_shift();
      lo = hi = 0;
    } else if (!backing_off) {
      backing_off = 1;
      backoff_ms = hk_os_now_ms();
    }
    /* Refused (locked pages): the range keeps its data and is dirty
     * still, filed again as just freed. */
    struct hk_extent *r = hk_extent_merge_put(c, page, pages, lo, hi, 0);
    if (refused)
      r->refused = 1;
    else
      hk_chunk_unmap_if_empty(c);
  }
  batch_n = 0;
  purging = 0;
  purging_here = 0;
  return released;
}

void hk_extent_fork_child(void) {
  if (!purging || purging_here)
    return; /* none, or ours: the interrupted purge finishes it */
  for (int i = 0; i < batch_n; i++)
    batch[i].rc = -1;
  hk_purge_finish();
}

