/* large_chunk.c: chunks, their page maps, the free extents in them and
 * their guard pages (see internal/large_chunk.h). The caller holds the
 * large tier's lock unless a function's comment says otherwise. */
#include "internal/large_chunk.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal/counters.h"
#include "internal/huge_pages.h"
#include "internal/options.h"
#include "internal/os.h"
#include "internal/region_map.h"
#include "internal/report.h"

/* Chunks are at least this big, so that blocks of different sizes share
 * them and one freed block's pages can serve the next request of another
 * size; untouched pages cost address space only. */
#define HK_CHUNK_MIN_PAGES (((size_t)64 << 20) >> hk_page_shift())

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
  struct hk_segment *seg = hk_region_lookup((uintptr_t)r);
  if (!seg || seg->kind != HK_SEG_LARGE)
    return NULL;
  struct hk_large_chunk *c = (struct hk_large_chunk *)seg;
  uintptr_t off = (uintptr_t)r - (uintptr_t)c->recs;
  if ((uintptr_t)r < (uintptr_t)c->recs || off % sizeof *r ||
      off / sizeof *r >= c->pages)
    return NULL;
  return c;
}

static uint32_t page_of(const struct hk_extent *e) {
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
static void check_record(const struct hk_extent *e, int state) {
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
static void extent_unlink(struct hk_extent *e) {
  check_record(e, HK_EXT_FILED);
  int d = is_dirty(e);
  struct hk_list *bin = &bins[d][e->bin];
  struct hk_list_node seen = e->bin_node, lru_seen = {NULL, NULL};
  const void *where = (const void *)hk_chunk_addr(e->chunk, page_of(e));
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
  set_bounds(c, page, pages, 0);
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
static struct hk_extent *extent_merge_put(struct hk_large_chunk *c,
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
        extent_unlink(l);
        clear_bounds(c, start - n, n);
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
        extent_unlink(r); /* checks n against the record and the map */
        clear_bounds(c, end, n);
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
    extent_unlink(e); /* checks it first */
    struct hk_large_chunk *c = e->chunk;
    uint32_t page = page_of(e), pages = e->pages;
    uint32_t lo = e->dirty_lo, hi = e->dirty_hi;
    clear_bounds(c, page, pages);
    if (extent_merge_put(c, page, pages, lo, hi, 1)->pages != pages)
      joined++;
  }
  return joined;
}

// ---------------------------------------------------------------------------
// Chunks.

/* The header: this struct, the page map, the freed bits, then the
 * records, each part aligned for what it holds (records to a line). */
static size_t map_end(size_t pages) {
  return sizeof(struct hk_large_chunk) + pages * sizeof(uint32_t);
}
static size_t freed_offset(size_t pages) { return (map_end(pages) + 7) & ~(size_t)7; }
static size_t recs_offset(size_t pages) {
  return (freed_offset(pages) + (pages + 63) / 64 * 8 + 63) & ~(size_t)63;
}

/* Pages before the first block: the header and its guard page. */
static size_t header_pages(size_t pages) {
  size_t bytes = recs_offset(pages) + pages * sizeof(struct hk_extent);
  return ((bytes + hk_page_size() - 1) >> hk_page_shift()) + 1;
}

/* Hardened-mode guard pages and the mapping budget. Each inaccessible
 * run of pages inside a chunk's mapping costs the process two kernel
 * mappings (the run, and the split-off rest of the chunk), and the kernel
 * allows vm.max_map_count mappings (65530 by default) for everything the
 * process maps, its thread stacks included; past it mprotect and mmap
 * fail. So the guard pages may cost half of that and no more: the rest is
 * the program's. A guard page next to another inaccessible page (the
 * neighbour's guard, the header guard) extends its run and costs nothing,
 * which is the common case for blocks packed in address order: about two
 * mappings per block, so that some 16,000 guarded blocks fit the default
 * budget. Blocks beyond it, and blocks whose mprotect the kernel refused,
 * go without guards and are counted (hk_counters.large_unguarded). The
 * count below is kept exact for our own runs; other splits of a chunk's
 * mapping (realloc's page moves) are not counted, which the half left to
 * the program absorbs. */
static _Atomic long guard_maps;   /* kernel mappings our runs add */
static _Atomic long guard_budget; /* 0 until read */

static long budget(void) {
  long b = atomic_load_explicit(&guard_budget, memory_order_relaxed);
  if (b == 0) {
    long max = hk_os_max_map_count();
    b = (max > 0 ? max : 65530) / 2;
    atomic_store_explicit(&guard_budget, b, memory_order_relaxed);
  }
  return b;
}

static int charge(long cost) {
  if (cost == 0)
    return 1;
  long now = atomic_load_explicit(&guard_maps, memory_order_relaxed);
  return now + cost <= budget();
}

static void charged(long cost) {
  atomic_fetch_add_explicit(&guard_maps, cost, memory_order_relaxed);
}

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

int hk_guard_room(void) {
  return atomic_load_explicit(&guard_maps, memory_order_relaxed) + 4 <=
         budget();
}

static int protect_page(struct hk_large_chunk *c, uint32_t page, int writable) {
  return hk_os_protect((void *)hk_chunk_addr(c, page), hk_page_size(),
                       writable);
}

int hk_extent_guard(struct hk_large_chunk *c, uint32_t page) {
  uint32_t w = hk_chunk_word(c, page) | HK_PAGE_GUARD;
  uint32_t n = w & HK_PAGE_LEN_MASK, tail = page + n - 1;
  set_word(c, page, w); /* the layout: the block starts a page in */
  struct hk_extent *r = hk_chunk_record(c, page);
  r->guards = 0;
  long cost = page_is_none(c, page - 1) ? 0 : 2;
  if (charge(cost) && protect_page(c, page, 0) == 0) {
    r->guards |= HK_GUARD_HEAD;
    charged(cost);
  }
  cost = page_is_none(c, tail + 1) ? 0 : 2;
  if (charge(cost) && protect_page(c, tail, 0) == 0) {
    r->guards |= HK_GUARD_TAIL;
    charged(cost);
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
static void unguard(struct hk_large_chunk *c, uint32_t *page,
                    uint32_t *pages) {
  uint32_t p = *page, n = *pages, tail = p + n - 1;
  struct hk_extent *r = hk_chunk_record(c, p);
  uint8_t g = r->guards;
  r->guards = 0;
  const uint32_t stuck = 1 | HK_PAGE_HEAD | HK_PAGE_LIVE | HK_PAGE_GUARD;
  if (g & HK_GUARD_TAIL) {
    long cost = page_is_none(c, tail + 1) ? 0 : 2;
    if (protect_page(c, tail, 1) == 0) {
      charged(-cost);
    } else {
      set_word(c, tail, stuck);
      c->recs[tail].guards = HK_GUARD_HEAD;
      n--;
    }
  }
  if (g & HK_GUARD_HEAD) {
    long cost = page_is_none(c, p - 1) ? 0 : 2;
    if (protect_page(c, p, 1) == 0) {
      charged(-cost);
    } else {
      set_word(c, p, stuck);
      r->guards = HK_GUARD_HEAD;
      p++;
      n--;
    }
  }
  *page = p;
  *pages = n;
}

static _Atomic uint64_t chunks_mapped;

/* Maps a chunk of `pages` pages and sets up its header; lock-free. */
static struct hk_large_chunk *chunk_map(size_t pages) {
  size_t bytes = pages << hk_page_shift();
  struct hk_large_chunk *c = hk_os_map_aligned(bytes, HK_REGION_SIZE);
  if (!c)
    return NULL;
  /* Large blocks are hundreds of KiB and more, written through as a rule:
   * huge pages save most of their first-touch faults (huge_pages.h says
   * when a chunk asks for them). The advice stays
   * through decommits: a 2 MiB range wholly inside a purged free run has
   * no small page left for khugepaged to collapse around; what it may make
   * resident again is the part of a huge page at either end of a purged
   * run that shares it with a live block, at most 4 MiB per run. */
  int advice = hk_huge_pages_advice();
  if (advice >= 0)
    hk_os_advise_huge(c, bytes, advice);
  c->seg.kind = HK_SEG_LARGE;
  c->serial = atomic_fetch_add_explicit(&chunks_mapped, 1, memory_order_relaxed);
  c->pages = (uint32_t)pages;
  c->first_page = (uint32_t)header_pages(pages);
  c->freed = (uint64_t *)((char *)c + freed_offset(pages));
  c->recs = (struct hk_extent *)((char *)c + recs_offset(pages));
  /* The guard page between the header and the first block: a block's
   * underflow cannot reach the records. Not within the hardened budget:
   * one per 64 MiB costs next to nothing. */
  if (protect_page(c, c->first_page - 1, 0) == 0) {
    c->header_guard = 1;
    charged(2);
  }
  if (hk_region_register((uintptr_t)c, bytes, &c->seg) != 0) {
    if (c->header_guard)
      charged(-2);
    hk_os_unmap(c, bytes);
    return NULL;
  }
  hk_counters_mapped(bytes);
  return c;
}

/* The first page of an extent of `pages` pages placed as hk_extent_alloc
 * places it in free space starting at `start`. */
static uint32_t placed(const struct hk_large_chunk *c, uint32_t start,
                       size_t align, size_t offset) {
  uintptr_t a = hk_chunk_addr(c, start) + offset;
  uintptr_t aligned = (a + align - 1) & ~(uintptr_t)(align - 1);
  return start + (uint32_t)((aligned - a) >> hk_page_shift());
}

/* Takes `page`'s freed bit: its block is live again. */
static void unnote_freed(struct hk_large_chunk *c, uint32_t page) {
  c->freed[page / 64] &= ~((uint64_t)1 << (page % 64));
}

void hk_chunk_note_freed(struct hk_large_chunk *c, uint32_t page) {
  c->freed[page / 64] |= (uint64_t)1 << (page % 64);
}

struct hk_large_chunk *hk_chunk_create(size_t pages, size_t align,
                                       size_t offset, uint32_t *page_out) {
  size_t slack = align > hk_page_size() ? (align >> hk_page_shift()) - 1 : 0;
  if (pages > HK_PAGE_LEN_MASK || slack > HK_PAGE_LEN_MASK - pages)
    return NULL;
  size_t want = pages + slack;
  /* The usual size, or, when the OS refuses that much address space (or
   * the block needs more), just what the request needs: its pages and
   * the header, not rounded up to a region, since under RLIMIT_AS every
   * page of address space kept beyond the block is one less for the
   * program. */
  size_t n = want + header_pages(want);
  while (n - header_pages(n) < want)
    n++;
  if (n > HK_PAGE_LEN_MASK)
    return NULL;
  struct hk_large_chunk *c = NULL;
  if (n < HK_CHUNK_MIN_PAGES)
    c = chunk_map(HK_CHUNK_MIN_PAGES);
  if (!c)
    c = chunk_map(n);
  if (!c)
    return NULL;
  uint32_t page = placed(c, c->first_page, align, offset);
  set_bounds(c, page, (uint32_t)pages, HK_PAGE_LIVE);
  c->recs[page].guards = 0;
  c->carved = page;
  *page_out = page;
  return c;
}

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
static void unmap_if_empty(struct hk_large_chunk *c) {
  uint32_t w = hk_chunk_word(c, c->first_page);
  if (w & HK_PAGE_LIVE || (w & HK_PAGE_LEN_MASK) != c->pages - c->first_page)
    return;
  struct hk_extent *e = hk_chunk_record(c, c->first_page);
  if (e->state != HK_EXT_FILED || is_dirty(e))
    return;
  extent_unlink(e);
  clear_bounds(c, c->first_page, c->pages - c->first_page);
  retire(c);
}

void hk_unmap_empty(void) {
  for (struct hk_large_chunk *c = chunks.first, *next; c; c = next) {
    next = c->chunk_node.next;
    unmap_if_empty(c);
  }
}

struct hk_stack hk_take_unmap_list(void) { return hk_stack_take(&unmap_list); }

size_t hk_unmap_chunks(struct hk_stack list) {
  size_t released = 0;
  struct hk_large_chunk *c;
  while ((c = hk_stack_pop(&list, HK_CHUNK_STACK)) != NULL) {
    size_t bytes = (size_t)c->pages << hk_page_shift();
    long guard = c->header_guard ? 2 : 0;
    /* Unmapping a whole chunk splits a mapping only where the kernel
     * merged the chunk with a neighbour; if it is refused at the mapping
     * limit, the pages at least go back (the address space stays lost). */
    if (hk_os_unmap(c, bytes) != 0)
      hk_os_decommit(c, bytes);
    else
      charged(-guard);
    hk_counters_unmapped(bytes);
    released += bytes;
  }
  return released;
}

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
  extent_unlink(e); /* checks it first */
  struct hk_large_chunk *c = e->chunk;
  uint32_t start = page_of(e), total = e->pages;
  uint32_t lo = e->dirty_lo, hi = e->dirty_hi;
  uint32_t page = placed(c, start, align, offset);
  uint32_t end = page + (uint32_t)pages;
  if (page > start)
    extent_put(c, start, page - start, lo, hi);
  if (start + total > end)
    extent_put(c, end, start + total - end, lo, hi);
  set_bounds(c, page, (uint32_t)pages, HK_PAGE_LIVE);
  c->recs[page].guards = 0;
  unnote_freed(c, page + (uint32_t)(offset >> hk_page_shift()));
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
  clear_bounds(c, page, pages);
  if (w & HK_PAGE_GUARD)
    unguard(c, &page, &pages);
  if (pages)
    extent_merge_put(c, page, pages, first + dirty_lo, first + dirty_hi, 0);
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
  extent_unlink(r); /* checks n against the record */
  clear_bounds(c, end, n);
  clear_bounds(c, page, have);
  set_bounds(c, page, pages, w & ~HK_PAGE_LEN_MASK & ~HK_PAGE_HEAD);
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
  clear_bounds(c, page, have);
  set_bounds(c, page, pages, w & ~HK_PAGE_LEN_MASK & ~HK_PAGE_HEAD);
  set_bounds(c, page + pages, have - pages, HK_PAGE_LIVE);
  hk_extent_free(c, page + pages, 0, have - pages);
}

// ---------------------------------------------------------------------------
// Purging.

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

size_t hk_dirty_extents(void) { return lru_count; }

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
  while (lru.last && n < HK_PURGE_BATCH && (size_t)n < limit) {
    struct hk_extent *e = follow(lru.last, &lru.last);
    uint32_t age = now - e->freed_ms;
    int old = delay >= 0 && age >= (uint32_t)delay &&
              (!e->refused || age >= HK_PURGE_BACKOFF_MS);
    int over = dirty_bytes > hk_options.large_cache_bytes && !backing_off;
    if (!all && !old && !over)
      break;
    extent_unlink(e);
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
    check_record(e, HK_EXT_BUSY);
    struct hk_large_chunk *c = e->chunk;
    uint32_t page = page_of(e), pages = e->pages;
    uint32_t lo = e->dirty_lo, hi = e->dirty_hi;
    e->state = 0;
    clear_bounds(c, page, pages);
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
    struct hk_extent *r = extent_merge_put(c, page, pages, lo, hi, 0);
    if (refused)
      r->refused = 1;
    else
      unmap_if_empty(c);
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

// ---------------------------------------------------------------------------
// Ownership.

uint32_t hk_chunk_live_word(const struct hk_large_chunk *c, uintptr_t p) {
  if (p & (hk_page_size() - 1))
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
            (HK_PAGE_HEAD | HK_PAGE_LIVE | HK_PAGE_GUARD) &&
        (w & HK_PAGE_LEN_MASK) >= 3)
      return w;
  }
  return 0;
}

const char *hk_chunk_misuse(const struct hk_large_chunk *c, uintptr_t p) {
  static const char invalid[] = "invalid pointer", twice[] = "double free";
  if (p & (hk_page_size() - 1))
    return invalid;
  uint32_t page = hk_chunk_page(c, p);
  if (page < c->first_page || page >= c->pages)
    return invalid;
  /* The extent holding the page: the first boundary word at or before it
   * (the words inside an extent are zero). Inside a live block the
   * pointer is not a block; in free space it is a double free exactly
   * when a block started there and was freed. */
  for (uint32_t i = page + 1; i-- > c->first_page;) {
    uint32_t w = hk_chunk_word(c, i);
    if (w) {
      if (w & HK_PAGE_LIVE)
        return invalid;
      return c->freed[page / 64] & ((uint64_t)1 << (page % 64)) ? twice
                                                                : invalid;
    }
  }
  return invalid;
}
