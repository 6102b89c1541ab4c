/* large_chunk.h: the page-granular allocator beneath the large tier.
 *
 * Large blocks are runs of whole pages ("extents") carved out of chunks:
 * 2 MiB-aligned mappings of 64 MiB or more, registered in the region map.
 * A freed extent merges with its free neighbours and keeps its pages
 * (it is "dirty") so that the next large request of any size is served
 * from resident memory instead of faulting in fresh pages; after
 * HAKMEM_PURGE_DELAY, or when the dirty bytes exceed HAKMEM_LARGE_CACHE,
 * its pages go back to the OS (it becomes "clean"), and a chunk that is
 * all clean free space is unmapped.
 *
 * Metadata is out of band. The chunk header, at the chunk's start and
 * followed by an inaccessible guard page, holds
 *   - one word per page, non-zero only at the first and the last page of
 *     each extent (boundary tags): a pointer is a live large block exactly
 *     when it is page-aligned and its page's word says "head of a live
 *     extent"; anything else in a chunk is reported;
 *   - one record (struct hk_extent) per page, of which only the records of
 *     free extents' first pages are in use: the links of the free lists,
 *     the page count, how much of the extent may hold old data;
 *   - one bit per page: a block started here and was freed (so that a
 *     second free is called a double free, and nothing else is).
 * Nothing the allocator follows is stored in memory the program was ever
 * given, and every record is checked against the page map before it is
 * unlinked (a mismatch is reported as corrupted metadata and aborts).
 * Clean free space therefore reads as zero, all of it. The header costs
 * address space in proportion to the chunk (1/60 of it with 4 KiB pages,
 * less with larger ones) but RSS only for the header pages actually
 * touched: chunks are mapped MAP_NORESERVE and a page of records is
 * committed when the first record in it is written.
 *
 * This header has the chunk and its page map; large_extent.h the free
 * space, large_purge.h its purging, large_guard.h hardened mode's guard
 * pages. Everything runs under the large tier's lock (large.c) unless its
 * comment says otherwise.
 */
#ifndef HK_LARGE_CHUNK_H
#define HK_LARGE_CHUNK_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "base/list.h"
#include "platform/os.h"
#include "base/types.h"

/* The page of the page map is the OS page (hk_page_size), not a fixed
 * 4 KiB: every decommit of free space and every guard page is then whole
 * pages by construction, and "clean space reads as zero" holds for all of
 * it. A finer unit would leave parts of OS pages that no decommit can give
 * back without taking a neighbour's data along. */

/* A page word: the extent's length in pages, and flags. */
#define HK_PAGE_LEN_MASK 0x1fffffffu
#define HK_PAGE_HEAD 0x20000000u /* first page of an extent */
#define HK_PAGE_LIVE 0x40000000u /* extent handed to the program */
#define HK_PAGE_GUARD 0x80000000u /* live, laid out with a guard page at each end */
/* A page word HEAD | LIVE | GUARD of length 1 is a guard page that could
 * not be made accessible again when its block was freed: it stays out of
 * use for good (see hk_extent_free). */

/* A record's state. */
#define HK_EXT_FILED 1 /* a free extent on its bin (and, dirty, the LRU) */
#define HK_EXT_BUSY 2  /* a free extent being purged, on no list */

/* A live guarded extent's record: which guard pages are in place. */
#define HK_GUARD_HEAD 1
#define HK_GUARD_TAIL 2

struct hk_large_chunk;

/* A free extent's record, in the chunk header at its first page's index.
 * Pages of the extent outside [dirty_lo, dirty_hi) (page indexes in the
 * chunk; empty when equal) read as zero and hold no memory. */
struct hk_extent {
  struct hk_list_node bin_node; /* its bin */
  struct hk_list_node lru_node; /* dirty extents, newest first */
  struct hk_large_chunk *chunk;
  uint32_t pages;
  uint32_t freed_ms; /* when it last became dirty */
  uint32_t dirty_lo, dirty_hi;
  uint8_t bin;
  uint8_t state;  /* HK_EXT_*, 0 when not a free extent */
  uint8_t guards; /* HK_GUARD_*, for a live guarded extent */
  uint8_t refused; /* the kernel refused to decommit it when last tried */
};

struct hk_large_chunk {
  struct hk_mapping mapping; /* kind HK_MAPPING_LARGE */
  uint32_t pages;        /* the whole chunk, header included */
  uint32_t first_page;   /* first page after the header and its guard */
  uint32_t carved;       /* the block a new chunk was made for */
  uint8_t header_guard;  /* the page before first_page is inaccessible */
  int8_t huge_advice;    /* what the whole chunk was advised, as
                            hk_huge_pages_advice() gives it */
  /* Under -1, the huge pages (hk_os_huge_page_size(), counted from the
   * chunk's start) that a block was advised into, one bit each; bit 63
   * stands for every page from the 63rd on. */
  _Atomic uint64_t huge_blocks;
  uint64_t serial;       /* chunks mapped before this one */
  struct hk_list_node chunk_node; /* every chunk */
  /* On the pending stack (large.c) or the unmap list. */
  struct hk_stack_node stack_node;
  struct hk_extent *recs; /* one per page */
  uint64_t *freed;        /* one bit per page */
  _Atomic uint32_t map[]; /* one word per page */
};

#define HK_CHUNK_STACK offsetof(struct hk_large_chunk, stack_node)

/* The page index of `a` in its chunk. */
static inline uint32_t hk_chunk_page(const struct hk_large_chunk *c,
                                     uintptr_t a) {
  return (uint32_t)((a - (uintptr_t)c) >> hk_page_shift());
}

static inline uintptr_t hk_chunk_addr(const struct hk_large_chunk *c,
                                      uint32_t page) {
  return (uintptr_t)c + ((uintptr_t)page << hk_page_shift());
}

static inline uint32_t hk_chunk_word(const struct hk_large_chunk *c,
                                     uint32_t page) {
  return atomic_load_explicit(&c->map[page], memory_order_relaxed);
}

static inline struct hk_extent *hk_chunk_record(const struct hk_large_chunk *c,
                                                uint32_t page) {
  return &c->recs[page];
}

/* The page map's words (boundary tags) of extents. */
static inline void hk_chunk_set_word(struct hk_large_chunk *c, uint32_t page,
                                     uint32_t w) {
  atomic_store_explicit(&c->map[page], w, memory_order_relaxed);
}

/* Writes the boundary words of the extent [page, page + pages). */
static inline void hk_chunk_set_bounds(struct hk_large_chunk *c,
                                       uint32_t page, uint32_t pages,
                                       uint32_t flags) {
  if (pages > 1)
    hk_chunk_set_word(c, page + pages - 1, pages | (flags & HK_PAGE_LIVE));
  hk_chunk_set_word(c, page, pages | HK_PAGE_HEAD | flags);
}

static inline void hk_chunk_clear_bounds(struct hk_large_chunk *c,
                                         uint32_t page, uint32_t pages) {
  hk_chunk_set_word(c, page, 0);
  hk_chunk_set_word(c, page + pages - 1, 0);
}

/* Makes one page of the chunk inaccessible (writable 0) or accessible. */
static inline int hk_chunk_protect_page(struct hk_large_chunk *c, uint32_t page,
                                        int writable) {
  return hk_os_protect((void *)hk_chunk_addr(c, page), hk_page_size(),
                       writable);
}

/* The mapping budget: inaccessible runs of pages in chunks cost kernel
 * mappings, of which we may use half of vm.max_map_count (lock-free
 * estimates when racing). Whether the budget has room for one more
 * guarded block; whether it has room for `cost` more mappings; counting
 * `cost` (negative: given back). */
int hk_guard_room(void);
int hk_guard_affordable(long cost);
void hk_guard_charged(long cost);

/* The page word of `p` if it is the start of a live block (guard page
 * skipped), else 0. Lock-free: the words are atomics. */
uint32_t hk_chunk_live_word(const struct hk_large_chunk *c, uintptr_t p);

/* Why `p` is not a live block: "double free" if a block started at `p`
 * and was freed, "invalid pointer" otherwise. */
const char *hk_chunk_misuse(const struct hk_large_chunk *c, uintptr_t p);

/* Notes that the block starting at `page` was freed. */
void hk_chunk_note_freed(struct hk_large_chunk *c, uint32_t page);

/* Without the lock: maps a new chunk with room for an extent placed as
 * hk_extent_alloc would, and makes that extent live; its first page in
 * *page_out, all of it reads as zero. The chunk is known to nobody but
 * the region map until hk_chunk_file. NULL when the OS refuses. */
/* Advises the huge pages wholly inside the live block [p, p + size) of
 * `c` into or, for a calloc (`zero`), back out of transparent huge pages
 * (see large_chunk.c); a system call at most, without the lock. */
void hk_chunk_advise_block(struct hk_large_chunk *c, void *p, size_t size,
                           int zero);

struct hk_large_chunk *hk_chunk_create(size_t pages, size_t align,
                                       size_t offset, uint32_t *page_out);

/* Where an extent placed as hk_extent_alloc places it (start + `offset`
 * a multiple of `align`) begins, in free space starting at `start`. */
uint32_t hk_chunk_placed(const struct hk_large_chunk *c, uint32_t start,
                         size_t align, size_t offset);
/* Takes `page`'s freed bit: its block is live again. */
void hk_chunk_unnote_freed(struct hk_large_chunk *c, uint32_t page);

/* Unmaps a list from hk_take_unmap_list, without the lock; returns the
 * bytes unmapped. */
size_t hk_unmap_chunks(struct hk_stack list);

#endif
