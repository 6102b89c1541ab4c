/* large_extent.h: the free space of the large tier's chunks (see
 * large_chunk.h): free extents on size bins and, dirty ones, on a list
 * in the order they became dirty. Under the large tier's lock. */
#ifndef HK_LARGE_EXTENT_H
#define HK_LARGE_EXTENT_H

#include <stddef.h>
#include <stdint.h>

#include "large/large_chunk.h"

/* The API function being served, named in corruption reports. */
extern const char *hk_extent_fn;

/* A live extent of `pages` pages from free space, whose start + `offset`
 * (the caller's block start: 0, or a page with guards) is a multiple of
 * `align` (a power of two); its first page in *chunk_out / *page_out.
 * Pages [*dirty_lo, *dirty_hi) of it (counted from its first page) may
 * hold old data, the others read as zero. 0, or ENOMEM when no free
 * extent fits (no chunk is mapped here: see hk_chunk_create). */
int hk_extent_alloc(size_t pages, size_t align, size_t offset,
                    struct hk_large_chunk **chunk_out, uint32_t *page_out,
                    uint32_t *dirty_lo, uint32_t *dirty_hi);

/* Adds a chunk from hk_chunk_create to the tier: its space around the
 * extent it was made for becomes clean free space. */
void hk_chunk_file(struct hk_large_chunk *c);

/* Frees the live extent at `page` (guard pages made accessible first),
 * merging it with its free neighbours; its pages [dirty_lo, dirty_hi)
 * (from its first page) may hold data, the others are known to be zero. */
void hk_extent_free(struct hk_large_chunk *c, uint32_t page, uint32_t dirty_lo,
                    uint32_t dirty_hi);

/* Grows the live extent at `page` to `pages` pages from the free extent
 * after it; 1 on success, 0 if that space is not free. */
int hk_extent_grow(struct hk_large_chunk *c, uint32_t page, uint32_t pages);

/* Shrinks the live extent at `page` to `pages` pages, freeing its tail. */
void hk_extent_shrink(struct hk_large_chunk *c, uint32_t page, uint32_t pages);

/* Dirty extents now: what a purge of everything has to try. */
size_t hk_dirty_extents(void);

/* Puts every chunk that is all clean free space on the unmap list. */
void hk_unmap_empty(void);

/* Takes the unmap list (locked); the chunks on it are no longer known to
 * the tier or the region map. */
struct hk_stack hk_take_unmap_list(void);

/* For the purge (large_purge.c). */

/* Checks that `e` is a free extent's record in `state` (HK_EXT_*) that
 * agrees with the page map; reports and aborts if not. */
void hk_extent_check(const struct hk_extent *e, int state);
/* The chunk page of e's extent. */
uint32_t hk_extent_page(const struct hk_extent *e);
/* Takes a filed free extent off its bin (and the dirty list), checked. */
void hk_extent_unlink(struct hk_extent *e);
/* Files the free space [page, page + pages), pages [lo, hi) of it dirty,
 * merged with its free neighbours of the same kind (any kind with
 * `any_kind`); returns the merged extent's record. */
struct hk_extent *hk_extent_merge_put(struct hk_large_chunk *c,
                                      uint32_t page, uint32_t pages,
                                      uint32_t lo, uint32_t hi, int any_kind);
/* The extent that became dirty longest ago (checked), or NULL. */
struct hk_extent *hk_extent_oldest_dirty(void);
/* The bytes of every dirty extent's dirty range. */
size_t hk_extent_dirty_bytes(void);
/* Retires c if it is one clean free extent: off the tier and the region
 * map, onto the unmap list. */
void hk_chunk_unmap_if_empty(struct hk_large_chunk *c);

#endif
