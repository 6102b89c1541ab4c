/* large_chunk.c: chunks, their page maps and the free extents in them
 * (see internal/large_chunk.h). The caller holds the large tier's lock. */
#include "internal/large_chunk.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "internal/options.h"
#include "internal/os.h"
#include "internal/region_map.h"
#include "internal/stats.h"

/* Chunks are at least this big, so that blocks of different sizes share
 * them and one freed block's pages can serve the next request of another
 * size; untouched pages cost address space only. */
#define HK_CHUNK_MIN_PAGES (((size_t)64 << 20) >> HK_PAGE_SHIFT)
#define HK_REGION_PAGES (HK_REGION_SIZE >> HK_PAGE_SHIFT)

/* A free extent's record, at its start. A clean extent's pages are all
 * zero but for its record (HK_EXTENT_RECORD_BYTES, which calloc clears):
 * a purge gives back all of its pages and writes the record anew, and a
 * clean extent that absorbs another clears the other's record. */
struct hk_extent {
  struct hk_extent *next, *prev;         /* its bin */
  struct hk_extent *lru_next, *lru_prev; /* dirty extents, newest first */
  struct hk_large_chunk *chunk;
  uint32_t pages;
  uint32_t freed_ms; /* when it last became dirty */
  uint8_t dirty;
  uint8_t bin;
};
_Static_assert(sizeof(struct hk_extent) <= HK_EXTENT_RECORD_BYTES,
               "record size");

/* Free extents by size: 8 exact bins for 1..8 pages, then 4 per power of
 * two up to HK_PAGE_LEN_MASK pages. One set for dirty extents, which are
 * preferred, and one for clean ones. */
#define HK_BINS 112
enum { CLEAN = 0, DIRTY = 1 };
static struct hk_extent *bins[2][HK_BINS];
static uint64_t nonempty[2][2];
static struct hk_extent *lru_head, *lru_tail;
static size_t dirty_bytes;
static struct hk_large_chunk *chunks;

static unsigned bin_of(size_t pages) {
  if (pages <= 8)
    return (unsigned)pages - 1;
  unsigned lg = 63u - (unsigned)__builtin_clzll(pages);
  return 8 + (lg - 3) * 4 + (unsigned)((pages >> (lg - 2)) & 3);
}

static uint32_t page_of(const struct hk_extent *e) {
  return hk_chunk_page(e->chunk, (uintptr_t)e);
}

static void set_word(struct hk_large_chunk *c, uint32_t page, uint32_t w) {
  atomic_store_explicit(&c->map[page], w, memory_order_relaxed);
}

/* Writes the boundary words of the extent [page, page + pages). */
static void set_bounds(struct hk_large_chunk *c, uint32_t page, uint32_t pages,
                       uint32_t flags) {
  if (pages > 1)
    set_word(c, page + pages - 1, pages | (flags & HK_PAGE_LIVE));
  set_word(c, page, pages | HK_PAGE_HEAD | flags);
}

static void clear_bounds(struct hk_large_chunk *c, uint32_t page,
                         uint32_t pages) {
  set_word(c, page, 0);
  set_word(c, page + pages - 1, 0);
}

static void bin_insert(struct hk_extent *e) {
  unsigned b = bin_of(e->pages);
  e->bin = (uint8_t)b;
  e->prev = NULL;
  e->next = bins[e->dirty][b];
  if (e->next)
    e->next->prev = e;
  bins[e->dirty][b] = e;
  nonempty[e->dirty][b / 64] |= (uint64_t)1 << (b % 64);
}

static void lru_remove(struct hk_extent *e) {
  if (e->lru_prev)
    e->lru_prev->lru_next = e->lru_next;
  else
    lru_head = e->lru_next;
  if (e->lru_next)
    e->lru_next->lru_prev = e->lru_prev;
  else
    lru_tail = e->lru_prev;
  size_t bytes = (size_t)e->pages << HK_PAGE_SHIFT;
  dirty_bytes -= bytes;
  hk_stats_sub(&hk_counters.large_cached_bytes, bytes);
}

/* Takes a free extent off its bin (and the dirty list). */
static void extent_unlink(struct hk_extent *e) {
  if (e->prev)
    e->prev->next = e->next;
  else
    bins[e->dirty][e->bin] = e->next;
  if (e->next)
    e->next->prev = e->prev;
  if (!bins[e->dirty][e->bin])
    nonempty[e->dirty][e->bin / 64] &= ~((uint64_t)1 << (e->bin % 64));
  if (e->dirty)
    lru_remove(e);
}

/* Makes [page, page + pages) a free extent and files it. */
static struct hk_extent *extent_put(struct hk_large_chunk *c, uint32_t page,
                                    uint32_t pages, int dirty) {
  set_bounds(c, page, pages, 0);
  struct hk_extent *e = (struct hk_extent *)hk_chunk_addr(c, page);
  e->chunk = c;
  e->pages = pages;
  e->dirty = (uint8_t)dirty;
  bin_insert(e);
  if (dirty) {
    e->freed_ms = hk_os_now_ms();
    e->lru_prev = NULL;
    e->lru_next = lru_head;
    if (lru_head)
      lru_head->lru_prev = e;
    else
      lru_tail = e;
    lru_head = e;
    size_t bytes = (size_t)pages << HK_PAGE_SHIFT;
    dirty_bytes += bytes;
    hk_stats_add(&hk_counters.large_cached_bytes, bytes);
  }
  return e;
}

/* A free extent of at least `pages` pages from one set, or NULL: the
 * first that fits in the request's own bin, else the head of the next
 * non-empty bin, all of whose extents fit. */
static struct hk_extent *find(int set, size_t pages) {
  unsigned b = bin_of(pages);
  int looked = 0;
  for (struct hk_extent *e = bins[set][b]; e && looked < 16;
       e = e->next, looked++)
    if (e->pages >= pages)
      return e;
  for (unsigned from = b + 1; from < HK_BINS; from = (from / 64 + 1) * 64) {
    uint64_t m = nonempty[set][from / 64] & (~(uint64_t)0 << (from % 64));
    if (m)
      return bins[set][(from / 64) * 64 + (unsigned)__builtin_ctzll(m)];
  }
  return NULL;
}

/* The lowest-addressed dirty extent that fits, among the most recently
 * dirtied ones. Address order packs live blocks at the low end of the
 * chunks and leaves the dirty space in long runs, which serve the next
 * large request of any size without faulting: on bench/large it halves
 * the page faults against size-binned first fit. */
#define HK_DIRTY_SCAN 64
static struct hk_extent *find_dirty_lowest(size_t pages) {
  struct hk_extent *best = NULL;
  int looked = 0;
  for (struct hk_extent *e = lru_head; e && looked < HK_DIRTY_SCAN;
       e = e->lru_next, looked++)
    if (e->pages >= pages && (!best || (uintptr_t)e < (uintptr_t)best))
      best = e;
  return best;
}

static struct hk_extent *find_free(size_t pages) {
  struct hk_extent *e = find_dirty_lowest(pages);
  if (!e)
    e = find(DIRTY, pages);
  if (!e)
    e = find(CLEAN, pages);
  return e;
}

static struct hk_extent *extent_merge_put(struct hk_large_chunk *c,
                                          uint32_t page, uint32_t pages,
                                          int dirty, int any_kind);

/* Merges every dirty extent with the clean space around it (the result
 * counts as dirty, an overestimate the next purge corrects). Returns how
 * many merges happened. */
static int join_dirty_with_clean(void) {
  int joined = 0;
  size_t n = 0;
  for (struct hk_extent *e = lru_head; e; e = e->lru_next)
    n++;
  /* Each one is refiled at the head, so n steps from the tail visit each
   * once. */
  while (n-- > 0) {
    struct hk_extent *e = lru_tail;
    struct hk_large_chunk *c = e->chunk;
    uint32_t page = page_of(e), pages = e->pages;
    extent_unlink(e);
    clear_bounds(c, page, pages);
    if (extent_merge_put(c, page, pages, DIRTY, 1)->pages != pages)
      joined++;
  }
  return joined;
}

static size_t header_pages(size_t pages) {
  size_t bytes = sizeof(struct hk_large_chunk) + pages * sizeof(uint32_t);
  return (bytes + HK_PAGE_SIZE - 1) >> HK_PAGE_SHIFT;
}

/* Maps a chunk of `pages` pages; its space is one clean free extent. */
static struct hk_extent *chunk_map(size_t pages) {
  size_t bytes = pages << HK_PAGE_SHIFT;
  struct hk_large_chunk *c = hk_os_map_aligned(bytes, HK_REGION_SIZE);
  if (!c)
    return NULL;
  c->seg.kind = HK_SEG_LARGE;
  c->pages = (uint32_t)pages;
  c->first_page = (uint32_t)header_pages(pages);
  if (hk_region_register((uintptr_t)c, bytes, &c->seg) != 0) {
    hk_os_unmap(c, bytes);
    return NULL;
  }
  hk_stats_mapped(bytes);
  c->prev = NULL;
  c->next = chunks;
  if (chunks)
    chunks->prev = c;
  chunks = c;
  return extent_put(c, c->first_page, c->pages - c->first_page, CLEAN);
}

/* A new chunk with room for `want` pages: the usual size, or, when the OS
 * refuses that much address space, just what the request needs. */
static struct hk_extent *chunk_new(size_t want) {
  size_t pages = want + header_pages(want + HK_REGION_PAGES);
  pages = (pages + HK_REGION_PAGES - 1) & ~(size_t)(HK_REGION_PAGES - 1);
  while (pages - header_pages(pages) < want)
    pages += HK_REGION_PAGES;
  if (pages > HK_PAGE_LEN_MASK)
    return NULL;
  if (pages < HK_CHUNK_MIN_PAGES) {
    struct hk_extent *e = chunk_map(HK_CHUNK_MIN_PAGES);
    if (e)
      return e;
  }
  return chunk_map(pages);
}

static size_t chunk_unmap(struct hk_large_chunk *c) {
  if (c->prev)
    c->prev->next = c->next;
  else
    chunks = c->next;
  if (c->next)
    c->next->prev = c->prev;
  size_t bytes = (size_t)c->pages << HK_PAGE_SHIFT;
  hk_region_unregister((uintptr_t)c, bytes);
  hk_os_unmap(c, bytes);
  hk_stats_unmapped(bytes);
  return bytes;
}

int hk_extent_alloc(size_t pages, size_t align, size_t offset,
                    struct hk_large_chunk **chunk_out, uint32_t *page_out,
                    int *dirty_out) {
  size_t slack = align > HK_PAGE_SIZE ? (align >> HK_PAGE_SHIFT) - 1 : 0;
  if (pages > HK_PAGE_LEN_MASK || slack > HK_PAGE_LEN_MASK - pages)
    return ENOMEM;
  size_t want = pages + slack;
  struct hk_extent *e = find_free(want);
  if (!e) {
    /* Dirty and clean space are kept apart; when neither alone fits, join
     * them before asking the OS for more, so that free space cut into
     * alternating pieces (aligned requests do that) is not wasted. */
    if (join_dirty_with_clean())
      e = find_free(want);
  }
  if (!e)
    e = chunk_new(want);
  if (!e && lru_head) {
    /* Out of address space: what is kept goes back, and chunks left
     * empty are unmapped, before giving up. */
    hk_extent_purge(1);
    e = find_free(want);
    if (!e)
      e = chunk_new(want);
  }
  if (!e)
    return ENOMEM;
  struct hk_large_chunk *c = e->chunk;
  uint32_t start = page_of(e), total = e->pages;
  int dirty = e->dirty;
  extent_unlink(e);
  uintptr_t a = hk_chunk_addr(c, start) + offset;
  uintptr_t aligned = (a + align - 1) & ~(uintptr_t)(align - 1);
  uint32_t lead = (uint32_t)((aligned - a) >> HK_PAGE_SHIFT);
  uint32_t rest = total - lead - (uint32_t)pages;
  if (lead)
    extent_put(c, start, lead, dirty);
  if (rest)
    extent_put(c, start + lead + (uint32_t)pages, rest, dirty);
  set_bounds(c, start + lead, (uint32_t)pages, HK_PAGE_LIVE);
  *chunk_out = c;
  *page_out = start + lead;
  *dirty_out = dirty;
  return 0;
}

void hk_extent_set_flags(struct hk_large_chunk *c, uint32_t page,
                         uint32_t flags) {
  uint32_t w = hk_chunk_word(c, page);
  set_word(c, page, w | flags);
}

/* Merges the free space [page, page + pages) with its free neighbours of
 * the same kind and files it. Dirty and clean space are kept apart, so
 * that a dirty extent's pages are all resident and the dirty byte count
 * is what the cache really holds. */
static struct hk_extent *extent_merge_put(struct hk_large_chunk *c,
                                          uint32_t page, uint32_t pages,
                                          int dirty, int any_kind) {
  uint32_t start = page;
  if (start > c->first_page) {
    uint32_t left = hk_chunk_word(c, start - 1);
    if (left && !(left & HK_PAGE_LIVE)) {
      uint32_t n = left & HK_PAGE_LEN_MASK;
      struct hk_extent *l = (struct hk_extent *)hk_chunk_addr(c, start - n);
      if (any_kind || l->dirty == dirty) {
        extent_unlink(l);
        clear_bounds(c, start - n, n);
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
      struct hk_extent *r = (struct hk_extent *)hk_chunk_addr(c, end);
      if (any_kind || r->dirty == dirty) {
        extent_unlink(r);
        clear_bounds(c, end, n);
        if (!dirty)
          memset(r, 0, sizeof *r); /* now inside clean space */
        pages += n;
      }
    }
  }
  return extent_put(c, start, pages, dirty);
}

void hk_extent_free(struct hk_large_chunk *c, uint32_t page, int clean) {
  uint32_t pages = hk_chunk_word(c, page) & HK_PAGE_LEN_MASK;
  clear_bounds(c, page, pages);
  extent_merge_put(c, page, pages, clean ? CLEAN : DIRTY, 0);
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
  uint32_t n = right & HK_PAGE_LEN_MASK;
  struct hk_extent *r = (struct hk_extent *)hk_chunk_addr(c, end);
  int dirty = r->dirty;
  extent_unlink(r);
  clear_bounds(c, end, n);
  clear_bounds(c, page, have);
  set_bounds(c, page, pages, w & ~HK_PAGE_LEN_MASK & ~HK_PAGE_HEAD);
  if (have + n > pages)
    extent_put(c, page + pages, have + n - pages, dirty);
  return 1;
}

void hk_extent_shrink(struct hk_large_chunk *c, uint32_t page,
                      uint32_t pages) {
  uint32_t w = hk_chunk_word(c, page);
  uint32_t have = w & HK_PAGE_LEN_MASK;
  if (pages >= have)
    return;
  clear_bounds(c, page, have);
  set_bounds(c, page, pages, w & ~HK_PAGE_LEN_MASK & ~HK_PAGE_HEAD);
  set_bounds(c, page + pages, have - pages, HK_PAGE_LIVE);
  hk_extent_free(c, page + pages, 0);
}

/* Gives an extent's pages back (all but the record's); unmaps its chunk
 * if the extent is all of it. Returns the bytes given back. */
static size_t extent_clean(struct hk_extent *e) {
  struct hk_large_chunk *c = e->chunk;
  uint32_t page = page_of(e), pages = e->pages;
  extent_unlink(e);
  clear_bounds(c, page, pages);
  hk_os_decommit((void *)hk_chunk_addr(c, page), (size_t)pages << HK_PAGE_SHIFT);
  extent_merge_put(c, page, pages, CLEAN, 0);
  return (size_t)pages << HK_PAGE_SHIFT;
}

/* Unmaps the chunk of a clean extent that is all of it. */
static size_t unmap_if_empty(struct hk_large_chunk *c) {
  uint32_t w = hk_chunk_word(c, c->first_page);
  if (w & HK_PAGE_LIVE || (w & HK_PAGE_LEN_MASK) != c->pages - c->first_page)
    return 0;
  struct hk_extent *e = (struct hk_extent *)hk_chunk_addr(c, c->first_page);
  if (e->dirty)
    return 0;
  extent_unlink(e);
  return chunk_unmap(c);
}

size_t hk_extent_purge(int all) {
  long delay = hk_options.purge_delay_ms;
  uint32_t now = hk_os_now_ms();
  size_t released = 0;
  /* The dirty list is in the order extents became dirty: the oldest are
   * at the tail, and the walk stops at the first one still young. */
  while (lru_tail) {
    struct hk_extent *e = lru_tail;
    int old = delay >= 0 && (uint32_t)(now - e->freed_ms) >= (uint32_t)delay;
    if (!all && !old && dirty_bytes <= hk_options.large_cache_bytes)
      break;
    struct hk_large_chunk *c = e->chunk;
    released += extent_clean(e);
    released += unmap_if_empty(c);
  }
  if (all)
    for (struct hk_large_chunk *c = chunks, *next; c; c = next) {
      next = c->next;
      released += unmap_if_empty(c);
    }
  return released;
}


uint32_t hk_chunk_live_word(const struct hk_large_chunk *c, uintptr_t p) {
  if (p & (HK_PAGE_SIZE - 1))
    return 0;
  uint32_t page = hk_chunk_page(c, p);
  if (page < c->first_page || page >= c->pages)
    return 0;
  uint32_t w = hk_chunk_word(c, page);
  if ((w & (HK_PAGE_HEAD | HK_PAGE_LIVE | HK_PAGE_GUARD)) ==
      (HK_PAGE_HEAD | HK_PAGE_LIVE))
    return w;
  /* With guard pages the block starts one page into its extent. */
  if (w == 0 && page > c->first_page) {
    w = hk_chunk_word(c, page - 1);
    if ((w & (HK_PAGE_HEAD | HK_PAGE_LIVE | HK_PAGE_GUARD)) ==
        (HK_PAGE_HEAD | HK_PAGE_LIVE | HK_PAGE_GUARD))
      return w;
  }
  return 0;
}

const char *hk_chunk_misuse(const struct hk_large_chunk *c, uintptr_t p) {
  static const char invalid[] = "invalid pointer", twice[] = "double free";
  if (p & (HK_PAGE_SIZE - 1))
    return invalid;
  uint32_t page = hk_chunk_page(c, p);
  if (page < c->first_page || page >= c->pages)
    return invalid;
  /* The extent holding the page: the first boundary word at or before it
   * is its head (the words inside an extent are zero). A page-aligned
   * pointer into free space is most likely a block freed before. */
  for (uint32_t i = page + 1; i-- > c->first_page;) {
    uint32_t w = hk_chunk_word(c, i);
    if (w)
      return (w & HK_PAGE_HEAD) && !(w & HK_PAGE_LIVE) ? twice : invalid;
  }
  return invalid;
}
