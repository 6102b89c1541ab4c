/* large_chunk.c: the large tier's chunks -- their mapping, the layout of
 * their header, the extent a new chunk is made for, unmapping, and what a
 * pointer into one is (see large/large_chunk.h). Lock-free but where a
 * comment says otherwise: a chunk's page words are atomics, and a chunk
 * is made before anyone else knows it. */
#include "large/large_chunk.h"

#include <stdint.h>

#include "base/counters.h"
#include "base/huge_pages.h"
#include "platform/os.h"
#include "base/region_map.h"

/* Chunks are at least this big, so that blocks of different sizes share
 * them and one freed block's pages can serve the next request of another
 * size; untouched pages cost address space only. */
#define HK_CHUNK_MIN_PAGES (((size_t)64 << 20) >> hk_page_shift())

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

/* The mapping budget of inaccessible pages (hardened mode's guard pages,
 * each chunk's header guard). Each inaccessible run of pages inside a chunk's mapping costs the process two kernel
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

int hk_guard_affordable(long cost) {
  if (cost == 0)
    return 1;
  long now = atomic_load_explicit(&guard_maps, memory_order_relaxed);
  return now + cost <= budget();
}

void hk_guard_charged(long cost) {
  atomic_fetch_add_explicit(&guard_maps, cost, memory_order_relaxed);
}

int hk_guard_room(void) {
  return atomic_load_explicit(&guard_maps, memory_order_relaxed) + 4 <=
         budget();
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
  c->huge_advice = (int8_t)advice;
  c->mapping.kind = HK_MAPPING_LARGE;
  c->serial = atomic_fetch_add_explicit(&chunks_mapped, 1, memory_order_relaxed);
  c->pages = (uint32_t)pages;
  c->first_page = (uint32_t)header_pages(pages);
  c->freed = (uint64_t *)((char *)c + freed_offset(pages));
  c->recs = (struct hk_extent *)((char *)c + recs_offset(pages));
  /* The guard page between the header and the first block: a block's
   * underflow cannot reach the records. Not within the hardened budget:
   * one per 64 MiB costs next to nothing. */
  if (hk_chunk_protect_page(c, c->first_page - 1, 0) == 0) {
    c->header_guard = 1;
    hk_guard_charged(2);
  }
  if (hk_region_register((uintptr_t)c, bytes, &c->mapping) != 0) {
    if (c->header_guard)
      hk_guard_charged(-2);
    hk_os_unmap(c, bytes);
    return NULL;
  }
  hk_counters_mapped(bytes);
  return c;
}

/* Below auto's threshold a chunk is not advised as a whole, but the huge
 * pages inside a block that malloc gives out are: a block of megabytes is
 * a buffer its program fills, and each of them then takes one fault
 * instead of 512. Only whole huge pages inside the block, so that no byte
 * outside it is ever made resident. A calloc is the exception: a sparse
 * table of zeroes, touched here and there, would make each touch 2 MiB;
 * a calloc that lands on pages advised for an earlier block takes the
 * advice back (MADV_NOHUGEPAGE: there is no "as the system says").
 * Hardened mode's guard pages are counted against vm.max_map_count, and
 * the splits that advice makes are not, so it does not advise blocks. */
void hk_chunk_advise_block(struct hk_large_chunk *c, void *p, size_t size,
                           int zero) {
  if (c->huge_advice != -1 || hk_options.hardened)
    return;
  size_t huge = hk_os_huge_page_size();
  if (huge == 0 || size < huge)
    return;
  uintptr_t base = (uintptr_t)c;
  uintptr_t lo = ((uintptr_t)p - base + huge - 1) & ~(huge - 1);
  uintptr_t hi = ((uintptr_t)p + size - base) & ~(huge - 1);
  if (hi <= lo)
    return;
  uintptr_t first = lo / huge, last = hi / huge - 1;
  uint64_t bits = 0;
  for (uintptr_t u = first; u <= last && u < 64; u++)
    bits |= (uint64_t)1 << u;
  if (last >= 63)
    bits |= (uint64_t)1 << 63;
  if (zero) {
    /* Bit 63 may stand for pages this block does not cover: kept. */
    uint64_t had = atomic_fetch_and_explicit(
        &c->huge_blocks, ~(bits & ~((uint64_t)1 << 63)), memory_order_relaxed);
    if (had & bits)
      hk_os_advise_huge((void *)(base + lo), hi - lo, 0);
  } else {
    atomic_fetch_or_explicit(&c->huge_blocks, bits, memory_order_relaxed);
    hk_os_advise_huge((void *)(base + lo), hi - lo, 1);
  }
}

/* The first page of an extent of `pages` pages hk_chunk_placed as hk_extent_alloc
 * places it in free space starting at `start`. */
uint32_t hk_chunk_placed(const struct hk_large_chunk *c, uint32_t start,
                       size_t align, size_t offset) {
  uintptr_t a = hk_chunk_addr(c, start) + offset;
  uintptr_t aligned = (a + align - 1) & ~(uintptr_t)(align - 1);
  return start + (uint32_t)((aligned - a) >> hk_page_shift());
}

/* Takes `page`'s freed bit: its block is live again. */
void hk_chunk_unnote_freed(struct hk_large_chunk *c, uint32_t page) {
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
  uint32_t page = hk_chunk_placed(c, c->first_page, align, offset);
  hk_chunk_set_bounds(c, page, (uint32_t)pages, HK_PAGE_LIVE);
  c->recs[page].guards = 0;
  c->carved = page;
  *page_out = page;
  return c;
}

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
      hk_guard_charged(-guard);
    hk_counters_unmapped(bytes);
    released += bytes;
  }
  return released;
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
