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
 * Ownership: the chunk header holds one word per page, non-zero only at
 * the first and the last page of each extent (boundary tags). A pointer is
 * a live large block exactly when it is page-aligned and its page's word
 * says "head of a live extent"; anything else in a chunk is reported.
 *
 * Everything here runs under the large tier's lock (large.c).
 */
#ifndef HK_LARGE_CHUNK_H
#define HK_LARGE_CHUNK_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "os.h"
#include "types.h"

#define HK_PAGE_SHIFT 12
/* What a free extent keeps at its start (see large_chunk.c). */
#define HK_EXTENT_RECORD_BYTES 64

/* A page word: the extent's length in pages, and flags. */
#define HK_PAGE_LEN_MASK 0x1fffffffu
#define HK_PAGE_HEAD 0x20000000u /* first page of an extent */
#define HK_PAGE_LIVE 0x40000000u /* extent handed to the program */
#define HK_PAGE_GUARD 0x80000000u /* live, with a guard page at each end */

struct hk_large_chunk {
  struct hk_segment seg; /* kind HK_SEG_LARGE */
  uint32_t pages;        /* the whole chunk, header included */
  uint32_t first_page;   /* first page after the header */
  struct hk_large_chunk *next, *prev; /* every chunk */
  _Atomic uint32_t map[]; /* one word per page */
};

/* The page index of `a` in its chunk. */
static inline uint32_t hk_chunk_page(const struct hk_large_chunk *c,
                                     uintptr_t a) {
  return (uint32_t)((a - (uintptr_t)c) >> HK_PAGE_SHIFT);
}

static inline uintptr_t hk_chunk_addr(const struct hk_large_chunk *c,
                                      uint32_t page) {
  return (uintptr_t)c + ((uintptr_t)page << HK_PAGE_SHIFT);
}

static inline uint32_t hk_chunk_word(const struct hk_large_chunk *c,
                                     uint32_t page) {
  return atomic_load_explicit(&c->map[page], memory_order_relaxed);
}

/* The page word of `p` if it is the start of a live block (guard page
 * skipped), else 0. */
uint32_t hk_chunk_live_word(const struct hk_large_chunk *c, uintptr_t p);

/* Why `p` is not a live block: "double free" if it lies at the start of
 * a page of free space, "invalid pointer" otherwise. */
const char *hk_chunk_misuse(const struct hk_large_chunk *c, uintptr_t p);

/* A live extent of `pages` pages whose start + `offset` is a multiple of
 * `align` (a power of two); its first page in *chunk_out / *page_out, and
 * *dirty_out says whether it may hold old data (else it reads as zero but
 * for its first HK_EXTENT_RECORD_BYTES). 0, or ENOMEM. */
int hk_extent_alloc(size_t pages, size_t align, size_t offset,
                    struct hk_large_chunk **chunk_out, uint32_t *page_out,
                    int *dirty_out);

/* Marks the live extent at `page` with the given flags (HK_PAGE_GUARD). */
void hk_extent_set_flags(struct hk_large_chunk *c, uint32_t page,
                         uint32_t flags);

/* Frees the live extent at `page`, merging it with its free neighbours;
 * `clean` says its pages are known to be zero and not resident. */
void hk_extent_free(struct hk_large_chunk *c, uint32_t page, int clean);

/* Grows the live extent at `page` to `pages` pages from the free extent
 * after it; 1 on success, 0 if that space is not free. */
int hk_extent_grow(struct hk_large_chunk *c, uint32_t page, uint32_t pages);

/* Shrinks the live extent at `page` to `pages` pages, freeing its tail. */
void hk_extent_shrink(struct hk_large_chunk *c, uint32_t page, uint32_t pages);

/* Gives back the pages of free extents that have been dirty for
 * HAKMEM_PURGE_DELAY, or all of them with `all`, and of the oldest ones
 * while the dirty bytes exceed the cache limit; unmaps chunks left all
 * clean and free. Returns the bytes unmapped. */
size_t hk_extent_purge(int all);

#endif
