/* large_guard.c: HAKMEM_HARDENED's guard pages around large blocks, and
 * what they cost of the mapping budget (large_chunk.c). The caller holds the large
 * tier's lock, or has a chunk nobody else knows yet. */
#include "large/large_guard.h"

#include <stdint.h>

#include "base/counters.h"
#include "large/large_chunk.h"
#include "platform/os.h"

/* Whether page `q` of `c` is inaccessible: the header guard, a live
 * guarded extent's first or last page with its guard in place, or a
 * guard page left out of use. */
static int page_is_none(const struct hk_large_chunk *c, uint32_t q) {
  if (q < c->first_page)
    return q == c->first_page - 1 && c->header_guard;
  if (q >= c->pages)
    return 0;
  const uint32_t flags = HK_PAGE_HEAD | HK_PAGE_LIVE | HK_PAGE_GUARD;
  uint32_t w = hk_chunk_word(c, q);
  if ((w & flags) == flags)
    return (c->recs[q].guards & HK_GUARD_HEAD) != 0;
  if ((w & (HK_PAGE_HEAD | HK_PAGE_LIVE)) == HK_PAGE_LIVE) {
    uint32_t n = w & HK_PAGE_LEN_MASK;
    if (n < 3 || n > q + 1)
      return 0;
    uint32_t h = q - n + 1, hw = hk_chunk_word(c, h);
    return (hw & flags) == flags && (hw & HK_PAGE_LEN_MASK) == n &&
           (c->recs[h].guards & HK_GUARD_TAIL);
  }
  return 0;
}

int hk_extent_guard(struct hk_large_chunk *c, uint32_t page) {
  uint32_t w = hk_chunk_word(c, page) | HK_PAGE_GUARD;
  uint32_t n = w & HK_PAGE_LEN_MASK, tail = page + n - 1;
  hk_chunk_set_word(c, page, w); /* the layout: the block starts a page in */
  struct hk_extent *r = hk_chunk_record(c, page);
  r->guards = 0;
  long cost = page_is_none(c, page - 1) ? 0 : 2;
  if (hk_guard_affordable(cost) && hk_chunk_protect_page(c, page, 0) == 0) {
    r->guards |= HK_GUARD_HEAD;
    hk_guard_charged(cost);
  }
  cost = page_is_none(c, tail + 1) ? 0 : 2;
  if (hk_guard_affordable(cost) && hk_chunk_protect_page(c, tail, 0) == 0) {
    r->guards |= HK_GUARD_TAIL;
    hk_guard_charged(cost);
  }
  if (r->guards == (HK_GUARD_HEAD | HK_GUARD_TAIL))
    return 1;
  hk_counters_add(&hk_counters.large_unguarded, 1);
  return 0;
}

/* Makes the guard pages of the live guarded extent at `page` accessible
 * again, each one's run shrinking or vanishing (which needs no new kernel
 * mapping, so it should not fail). One that stays inaccessible all the
 * same is taken out of use for good, as a one-page live extent no pointer
 * can free (its word HEAD | LIVE | GUARD of length 1): handing it out
 * again would fault in the program. The extent's remaining pages, to be
 * freed, in *page / *pages. */
void hk_extent_unguard(struct hk_large_chunk *c, uint32_t *page,
                    uint32_t *pages) {
  uint32_t p = *page, n = *pages, tail = p + n - 1;
  struct hk_extent *r = hk_chunk_record(c, p);
  uint8_t g = r->guards;
  r->guards = 0;
  const uint32_t stuck = 1 | HK_PAGE_HEAD | HK_PAGE_LIVE | HK_PAGE_GUARD;
  if (g & HK_GUARD_TAIL) {
    long cost = page_is_none(c, tail + 1) ? 0 : 2;
    if (hk_chunk_protect_page(c, tail, 1) == 0) {
      hk_guard_charged(-cost);
    } else {
      hk_chunk_set_word(c, tail, stuck);
      c->recs[tail].guards = HK_GUARD_HEAD;
      n--;
    }
  }
  if (g & HK_GUARD_HEAD) {
    long cost = page_is_none(c, p - 1) ? 0 : 2;
    if (hk_chunk_protect_page(c, p, 1) == 0) {
      hk_guard_charged(-cost);
    } else {
      hk_chunk_set_word(c, p, stuck);
      r->guards = HK_GUARD_HEAD;
      p++;
      n--;
    }
  }
  *page = p;
  *pages = n;
}

