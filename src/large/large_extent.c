/* large_extent.c: the free space of the large tier's chunks -- free
 * extents on their bins and the dirty list, checked before every link is
 * followed; allocating, freeing, growing and shrinking extents; filing a
 * new chunk's space and retiring chunks that are all clean free space.
 * The caller holds the large tier's lock. */
#include "large/large_extent.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "base/counters.h"
#include "large/large_chunk.h"
#include "large/large_guard.h"
#include "platform/os.h"
#include "base/region_map.h"
#include "base/report.h"

_Static_assert(sizeof(struct hk_extent) == 64, "one cache line per record");

/* Free extents by size: 8 exact bins for 1..8 pages, then 4 per power of
 * two up to HK_PAGE_LEN_MASK pages. One set for dirty extents (any page
 * may hold data), which are preferred, and one for clean ones (all zero). */
#define HK_BINS 112
enum { CLEAN = 0, DIRTY = 1 };
static struct hk_list bins[2][HK_BINS];
static uint64_t nonempty[2][2];
static struct hk_queue lru; /* newest first */
static size_t lru_count;
static size_t dirty_bytes; /* the dirty ranges' bytes, all dirty extents */
static struct hk_list chunks;
static struct hk_stack unmap_list;

/* Where each list's node is in its record (list.h). */
#define BIN_NODE offsetof(struct hk_extent, bin_node)
#define LRU_NODE offsetof(struct hk_extent, lru_node)
#define CHUNK_NODE offsetof(struct hk_large_chunk, chunk_node)

const char *hk_extent_fn = "malloc";

// ---------------------------------------------------------------------------
// Checks. The records live out of the program's reach, so a mismatch means
// a wild write into a chunk header or a bug of ours; either way nothing is
// followed or written through it.

__attribute__((cold, noreturn)) static void corrupted(const void *where) {
  hk_report_misuse(hk_extent_fn, "corrupted large-block metadata", where);
  abort(); /* even with HAKMEM_INVALID_FREE=warn: there is no going on */
}

/* The chunk whose record array holds `r`, or NULL if `r` is not exactly a
 * record of a chunk we own: a link is checked this way before it is
 * followed, so that a bad one is reported rather than dereferenced. */
static struct hk_large_chunk *rec_chunk(const struct hk_extent *r) {
  struct hk_mapping *mapping = hk_region_lookup((uintptr_t)r);
  if (!mapping || mapping->kind != HK_MAPPING_LARGE)
    return NULL;
  struct hk_large_chunk *c = (struct hk_large_chunk *)mapping;
  uintptr_t off = (uintptr_t)r - (uintptr_t)c->recs;
  if ((uintptr_t)r < (uintptr_t)c->recs || off % sizeof *r ||
      off / sizeof *r >= c->pages)
    return NULL;
  return c;
}

uint32_t hk_extent_page(const struct hk_extent *e) {
  return (uint32_t)(e - e->chunk->recs);
}

static int is_dirty(const struct hk_extent *e) {
  return e->dirty_hi > e->dirty_lo;
}

static unsigned bin_of(size_t pages) {
  if (pages <= 8)
    return (unsigned)pages - 1;
  unsigned lg = 63u - (unsigned)__builtin_clzll(pages);
  return 8 + (lg - 3) * 4 + (unsigned)((pages >> (lg - 2)) & 3);
}

/* `e` is a free extent's record that agrees with the page map: its chunk
 * is the one holding it, its length fits the chunk, both boundary words
 * say "free extent of this length", its bin and dirty range fit. */
void hk_extent_check(const struct hk_extent *e, int state) {
  struct hk_large_chunk *c = rec_chunk(e);
  if (!c || e->chunk != c)
    corrupted(e);
  uint32_t page = (uint32_t)(e - c->recs), n = e->pages;
  const void *where = (const void *)hk_chunk_addr(c, page);
  if (page < c->first_page || n == 0 || n > c->pages - page ||
      hk_chunk_word(c, page) != (n | HK_PAGE_HEAD) ||
      (n > 1 && hk_chunk_word(c, page + n - 1) != n) ||
      e->state != state || e->bin != bin_of(n) ||
      e->dirty_lo > e->dirty_hi ||
      (is_dirty(e) && (e->dirty_lo < page || e->dirty_hi > page + n)))
    corrupted(where);
}

/* A link about to be followed: a filed record of one of our chunks (the
 * hk_list_follow of the bins and the dirty list). */
static void *follow(void *link, const void *from) {
  struct hk_extent *r = link;
  if (r && (!rec_chunk(r) || r->state != HK_EXT_FILED))
    corrupted(from);
  return r;
}

// ---------------------------------------------------------------------------
// Page map and lists.

/* `where` (the extent's first page) is reported if the bin's first record,
 * whose back link the push writes, is not a filed record. */
static void bin_insert(struct hk_extent *e, const void *where) {
  int d = is_dirty(e);
  unsigned b = bin_of(e->pages);
  e->bin = (uint8_t)b;
  e->state = HK_EXT_FILED;
  hk_list_push_checked(&bins[d][b], e, BIN_NODE, follow, where);
  nonempty[d][b / 64] |= (uint64_t)1 << (b % 64);
}

static size_t dirty_range_bytes(const struct hk_extent *e) {
  return (size_t)(e->dirty_hi - e->dirty_lo) << hk_page_shift();
}

/* Takes a free extent off its bin (and the dirty list), after checking
 * that it and its neighbours on both lists agree: its links are read once,
 * each neighbour followed through follow(), before either list changes. */
void hk_extent_unlink(struct hk_extent *e) {
  hk_extent_check(e, HK_EXT_FILED);
  int d = is_dirty(e);
  struct hk_list *bin = &bins[d][e->bin];
  struct hk_list_node seen = e->bin_node, lru_seen = {NULL, NULL};
  const void *where = (const void *)hk_chunk_addr(e->chunk, hk_extent_page(e));
  if (!hk_list_linked(bin, e, seen, BIN_NODE, follow, where))
    corrupted(where);
  if (d) {
    lru_seen = e->lru_node;
    if (!hk_queue_linked(&lru, e, lru_seen, LRU_NODE, follow, where))
      corrupted(where);
  }
  hk_list_unlink(bin, seen, BIN_NODE);
  if (hk_list_empty(bin))
    nonempty[d][e->bin / 64] &= ~((uint64_t)1 << (e->bin % 64));
  if (d) {
    hk_queue_unlink(&lru, lru_seen, LRU_NODE);
    lru_count--;
    size_t bytes = dirty_range_bytes(e);
    dirty_bytes -= bytes;
    hk_counters_sub(&hk_counters.large_cached_bytes, bytes);
  }
  e->state = 0;
}

/* Makes [page, page + pages) a free extent and files it; of its pages,
 * those in [lo, hi) (chunk page indexes, clipped to it) may hold data. */
static struct hk_extent *extent_put(struct hk_large_chunk *c, uint32_t page,
                                    uint32_t pages, uint32_t lo, uint32_t hi) {
  if (lo < page)
    lo = page;
  if (hi > page + pages)
    hi = page + pages;
  if (hi <= lo)
    lo = hi = 0;
  hk_chunk_set_bounds(c, page, pages, 0);
  struct hk_extent *e = hk_chunk_record(c, page);
  e->chunk = c;
  e->pages = pages;
  e->dirty_lo = lo;
  e->dirty_hi = hi;
  e->guards = 0;
  e->refused = 0;
  const void *where = (const void *)hk_chunk_addr(c, page);
  bin_insert(e, where);
  if (hi > lo) {
    e->freed_ms = hk_os_now_ms();
    hk_queue_push_front_checked(&lru, e, LRU_NODE, follow, where);
    lru_count++;
    size_t bytes = dirty_range_bytes(e);
    dirty_bytes += bytes;
    hk_counters_add(&hk_counters.large_cached_bytes, bytes);
  }
  return e;
}

/* A free extent of at least `pages` pages from one set, or NULL: the
 * first that fits in the request's own bin, else the head of the next
 * non-empty bin, all of whose extents fit. */
static struct hk_extent *find(int set, size_t pages) {
  unsigned b = bin_of(pages);
  int looked = 0;
  for (struct hk_extent *e = follow(bins[set][b].first, &bins[set][b]);
       e && looked < 16; e = follow(e->bin_node.next, e), looked++)
    if (e->pages >= pages)
      return e;
  for (unsigned from = b + 1; from < HK_BINS; from = (from / 64 + 1) * 64) {
    uint64_t m = nonempty[set][from / 64] & (~(uint64_t)0 << (from % 64));
    if (m) {
      unsigned i = (from / 64) * 64 + (unsigned)__builtin_ctzll(m);
      return follow(bins[set][i].first, &bins[set][i]);
    }
  }
  return NULL;
}

/* Whether `a` comes before `b`: in an older chunk, or lower in the same
 * one. Chunks are ranked by age, not address, since where the kernel puts
 * a new chunk is its own choice: when it packs them top-down the newest
 * is the lowest, and ranking by address then moved the live blocks into
 * each new chunk while the dirty space in the older ones aged into purges
 * (bench/large 1000 4: 2.4 times the page faults). */
static int comes_before(const struct hk_extent *a, const struct hk_extent *b) {
  if (a->chunk != b->chunk)
    return a->chunk->serial < b->chunk->serial;
  return (uintptr_t)a < (uintptr_t)b;
}

/* The first dirty extent that fits, in chunk age and address order, among
 * the most recently dirtied ones. That order packs live blocks at the low
 * end of the oldest chunks and leaves the dirty space in long runs, which
 * serve the next large request of any size without faulting: on
 * bench/large it halves the page faults against size-binned first fit. */
#define HK_DIRTY_SCAN 64
static struct hk_extent *find_dirty_first(size_t pages) {
  struct hk_extent *best = NULL;
  int looked = 0;
  for (struct hk_extent *e = follow(lru.first, &lru.first);
       e && looked < HK_DIRTY_SCAN; e = follow(e->lru_node.next, e), looked++)
    if (e->pages >= pages && (!best || comes_before(e, best)))
      best = e;
  return best;
}

static struct hk_extent *find_free(size_t pages) {
  struct hk_extent *e = find_dirty_first(pages);
  if (!e)
    e = find(DIRTY, pages);
  if (!e)
    e = find(CLEAN, pages);
  return e;
}

/* Merges the free space [page, page + pages), pages [lo, hi) of it dirty,
 * with its free neighbours and files it. Dirty and clean space are kept
 * apart unless `any_kind`, so that the dirty bytes are what the cache
 * really holds; when they are joined, the result's dirty range spans the
 * dirty parts only (a bound: clean space between two dirty parts counts
 * as dirty), so that calloc zeroes no more than that. Neighbours being
 * purged (busy) are left alone: they are filed again, and merged, when
 * the purge finishes. */
struct hk_extent *hk_extent_merge_put(struct hk_large_chunk *c,
                                          uint32_t page, uint32_t pages,
                                          uint32_t lo, uint32_t hi,
                                          int any_kind) {
  if (hi <= lo)
    lo = hi = 0;
  int dirty = hi > lo;
  uint32_t start = page;
  if (start > c->first_page) {
    uint32_t left = hk_chunk_word(c, start - 1);
    if (left && !(left & HK_PAGE_LIVE)) {
      uint32_t n = left & HK_PAGE_LEN_MASK;
      if (n == 0 || n > start - c->first_page)
        corrupted((const void *)hk_chunk_addr(c, start - 1));
      struct hk_extent *l = hk_chunk_record(c, start - n);
      if (l->state != HK_EXT_BUSY && (any_kind || is_dirty(l) == dirty)) {
        uint32_t llo = l->dirty_lo, lhi = l->dirty_hi;
        hk_extent_unlink(l);
        hk_chunk_clear_bounds(c, start - n, n);
        if (lhi > llo) {
          lo = hi > lo ? (llo < lo ? llo : lo) : llo;
          hi = hi > lhi ? hi : lhi;
        }
        start -= n;
        pages += n;
      }
    }
  }
  uint32_t end = start + pages;
  if (end < c->pages) {
    uint32_t right = hk_chunk_word(c, end);
    if (right && !(right & HK_PAGE_LIVE)) {
      uint32_t n = right & HK_PAGE_LEN_MASK;
      struct hk_extent *r = hk_chunk_record(c, end);
      if (r->state != HK_EXT_BUSY && (any_kind || is_dirty(r) == dirty)) {
        uint32_t rlo = r->dirty_lo, rhi = r->dirty_hi;
        hk_extent_unlink(r); /* checks n against the record and the map */
        hk_chunk_clear_bounds(c, end, n);
        if (rhi > rlo) {
          lo = hi > lo ? (rlo < lo ? rlo : lo) : rlo;
          hi = hi > rhi ? hi : rhi;
        }
        pages += n;
      }
    }
  }
  return extent_put(c, start, pages, lo, hi);
}

/* Merges every dirty extent with the clean space around it. Returns how
 * many merges happened. */
static int join_dirty_with_clean(void) {
  int joined = 0;
  /* Each one is refiled at the head, so n steps from the tail visit each
   * once (fewer when merges absorb some). */
  for (size_t n = lru_count; n > 0 && lru.last; n--) {
    struct hk_extent *e = follow(lru.last, &lru.last);
    hk_extent_unlink(e); /* checks it first */
    struct hk_large_chunk *c = e->chunk;
    uint32_t page = hk_extent_page(e), pages = e->pages;
    uint32_t lo = e->dirty_lo, hi = e->dirty_hi;
    hk_chunk_clear_bounds(c, page, pages);
    if (hk_extent_merge_put(c, page, pages, lo, hi, 1)->pages != pages)
      joined++;
  }
  return joined;
}

// ---------------------------------------------------------------------------
// Chunks' free space.

void hk_chunk_file(struct hk_large_chunk *c) {
  hk_list_push(&chunks, c, CHUNK_NODE);
  uint32_t page = c->carved;
  uint32_t end = page + (hk_chunk_word(c, page) & HK_PAGE_LEN_MASK);
  if (page > c->first_page)
    extent_put(c, c->first_page, page - c->first_page, 0, 0);
  if (end < c->pages)
    extent_put(c, end, c->pages - end, 0, 0);
}

/* Takes a chunk that is all clean free space off the tier and the region
 * map, onto the unmap list. */
static void retire(struct hk_large_chunk *c) {
  hk_list_remove(&chunks, c, CHUNK_NODE);
  hk_region_unregister((uintptr_t)c, (size_t)c->pages << hk_page_shift());
  hk_stack_push(&unmap_list, c, HK_CHUNK_STACK);
}

/* Retires the chunk of a clean extent that is all of it. */
void hk_chunk_unmap_if_empty(struct hk_large_chunk *c) {
  uint32_t w = hk_chunk_word(c, c->first_page);
  if (w & HK_PAGE_LIVE || (w & HK_PAGE_LEN_MASK) != c->pages - c->first_page)
    return;
  struct hk_extent *e = hk_chunk_record(c, c->first_page);
  if (e->state != HK_EXT_FILED || is_dirty(e))
    return;
  hk_extent_unlink(e);
  hk_chunk_clear_bounds(c, c->first_page, c->pages - c->first_page);
  retire(c);
}

void hk_unmap_empty(void) {
  for (struct hk_large_chunk *c = chunks.first, *next; c; c = next) {
    next = c->chunk_node.next;
    hk_chunk_unmap_if_empty(c);
  }
}

struct hk_stack hk_take_unmap_list(void) { return hk_stack_take(&unmap_list); }


// ---------------------------------------------------------------------------
// Allocation and freeing.

int hk_extent_alloc(size_t pages, size_t align, size_t offset,
                    struct hk_large_chunk **chunk_out, uint32_t *page_out,
                    uint32_t *dirty_lo, uint32_t *dirty_hi) {
  size_t slack = align > hk_page_size() ? (align >> hk_page_shift()) - 1 : 0;
  if (pages > HK_PAGE_LEN_MASK || slack > HK_PAGE_LEN_MASK - pages)
    return ENOMEM;
  size_t want = pages + slack;
  struct hk_extent *e = find_free(want);
  /* Dirty and clean space are kept apart; when neither alone fits, join
   * them before asking the OS for more, so that free space cut into
   * alternating pieces (aligned requests do that) is not wasted. */
  if (!e && join_dirty_with_clean())
    e = find_free(want);
  if (!e)
    return ENOMEM;
  hk_extent_unlink(e); /* checks it first */
  struct hk_large_chunk *c = e->chunk;
  uint32_t start = hk_extent_page(e), total = e->pages;
  uint32_t lo = e->dirty_lo, hi = e->dirty_hi;
  uint32_t page = hk_chunk_placed(c, start, align, offset);
  uint32_t end = page + (uint32_t)pages;
  if (page > start)
    extent_put(c, start, page - start, lo, hi);
  if (start + total > end)
    extent_put(c, end, start + total - end, lo, hi);
  hk_chunk_set_bounds(c, page, (uint32_t)pages, HK_PAGE_LIVE);
  c->recs[page].guards = 0;
  hk_chunk_unnote_freed(c, page + (uint32_t)(offset >> hk_page_shift()));
  /* The block's share of the dirty range. */
  if (lo < page)
    lo = page;
  if (hi > end)
    hi = end;
  *chunk_out = c;
  *page_out = page;
  *dirty_lo = hi > lo ? lo - page : 0;
  *dirty_hi = hi > lo ? hi - page : 0;
  return 0;
}

void hk_extent_free(struct hk_large_chunk *c, uint32_t page, uint32_t dirty_lo,
                    uint32_t dirty_hi) {
  uint32_t w = hk_chunk_word(c, page);
  uint32_t pages = w & HK_PAGE_LEN_MASK, first = page;
  hk_chunk_clear_bounds(c, page, pages);
  if (w & HK_PAGE_GUARD)
    hk_extent_unguard(c, &page, &pages);
  if (pages)
    hk_extent_merge_put(c, page, pages, first + dirty_lo, first + dirty_hi, 0);
}

int hk_extent_grow(struct hk_large_chunk *c, uint32_t page, uint32_t pages) {
  uint32_t w = hk_chunk_word(c, page);
  uint32_t have = w & HK_PAGE_LEN_MASK;
  uint32_t end = page + have;
  if (end >= c->pages)
    return 0;
  uint32_t right = hk_chunk_word(c, end);
  if (!right || (right & HK_PAGE_LIVE) ||
      have + (right & HK_PAGE_LEN_MASK) < pages)
    return 0;
  struct hk_extent *r = hk_chunk_record(c, end);
  if (r->state == HK_EXT_BUSY)
    return 0;
  uint32_t n = right & HK_PAGE_LEN_MASK;
  uint32_t lo = r->dirty_lo, hi = r->dirty_hi;
  hk_extent_unlink(r); /* checks n against the record */
  hk_chunk_clear_bounds(c, end, n);
  hk_chunk_clear_bounds(c, page, have);
  hk_chunk_set_bounds(c, page, pages, w & ~HK_PAGE_LEN_MASK & ~HK_PAGE_HEAD);
  if (have + n > pages)
    extent_put(c, page + pages, have + n - pages, lo, hi);
  return 1;
}

void hk_extent_shrink(struct hk_large_chunk *c, uint32_t page,
                      uint32_t pages) {
  uint32_t w = hk_chunk_word(c, page);
  uint32_t have = w & HK_PAGE_LEN_MASK;
  if (pages >= have)
    return;
  hk_chunk_clear_bounds(c, page, have);
  hk_chunk_set_bounds(c, page, pages, w & ~HK_PAGE_LEN_MASK & ~HK_PAGE_HEAD);
  hk_chunk_set_bounds(c, page + pages, have - pages, HK_PAGE_LIVE);
  hk_extent_free(c, page + pages, 0, have - pages);
}

size_t hk_dirty_extents(void) { return lru_count; }

size_t hk_extent_dirty_bytes(void) { return dirty_bytes; }

struct hk_extent *hk_extent_oldest_dirty(void) {
  return follow(lru.last, &lru.last);
}
