/* types.h: the data structures every part of hakmem shares.
 *
 * Memory layout in one picture:
 *
 *   2 MiB-aligned SuperSlab (kind HK_SEG_SUPERSLAB)
 *   +-----------+------------------+------------------+-----+
 *   | header    | slab 0 blocks    | slab 1 blocks    | ... |
 *   | slab meta |                  |                  |     |
 *   +-----------+------------------+------------------+-----+
 *   ^ ptr & ~(2 MiB - 1) finds the header, the region map proves it is ours.
 *
 *   Large chunk (kind HK_SEG_LARGE): a 2 MiB-aligned mapping of 64 MiB
 *   or more, a page map at the start, large blocks as page runs after it.
 *
 * Every 2 MiB region we own has an entry in the region map (region_map.h)
 * that points at the segment header covering it; anything else is not ours.
 */
#ifndef HK_TYPES_H
#define HK_TYPES_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define HK_REGION_SHIFT 21
#define HK_REGION_SIZE ((size_t)1 << HK_REGION_SHIFT)
#define HK_REGION_MASK (HK_REGION_SIZE - 1)

/* Slab 0 gives its first page to the SuperSlab header. Starting its blocks
 * on a page boundary keeps power-of-two classes naturally aligned, which the
 * aligned allocation path relies on for alignments up to a page. */
#define HK_SLAB0_DATA_OFFSET 4096
#define HK_MAX_SLABS 32
#define HK_GRANULE_SHIFT 16 /* the smallest slab: 64 KiB */
#define HK_SMALL_ALIGN_MAX 4096

#define HK_TINY_MAX 1024
#define HK_MEDIUM_MAX (256 * 1024)

enum hk_segment_kind {
  HK_SEG_SUPERSLAB = 0x55ab,
  HK_SEG_LARGE = 0x1a29,
};

/* Geometries: how a SuperSlab is cut into slabs. Tiny classes want many
 * small slabs; medium classes need slabs large enough for several blocks.
 * TINY_SOLO is the backend HAKMEM_TINY_USE_SUPERSLAB=0 selects: each 64 KiB
 * slab is its own mapping (at a 2 MiB-aligned address, so that the region
 * map and the free path treat it as a SuperSlab of one slab), unmapped as
 * soon as it empties, shared with nothing. */
enum hk_geometry {
  HK_GEOM_TINY = 0,      /* 32 slabs of 64 KiB */
  HK_GEOM_MEDIUM = 1,    /* 4 slabs of 512 KiB */
  HK_GEOM_HUGE = 2,      /* 1 slab of 2 MiB   */
  HK_GEOM_TINY_SOLO = 3, /* 1 slab of 64 KiB, mapped alone */
  HK_GEOM_COUNT = 4,
};

struct hk_heap;

/* A free block's first word links it into a list; its second word holds a
 * tag that marks it free so that a second free of it is caught. */
struct hk_block {
  struct hk_block *next;
  uintptr_t free_tag;
};


/* Which list a slab is on. An owned slab is its heap's current slab or on
 * its avail queue (AVAIL) or on its full queue (FULL); the fast path only
 * asks "anything but AVAIL?". An abandoned slab is either ADOPTABLE (has
 * free blocks, waiting for a thread to adopt it) or STUCK (no free block;
 * the first remote free into it makes it adoptable). */
enum hk_slab_list {
  HK_LIST_AVAIL = 0,
  HK_LIST_FULL = 1,
  HK_LIST_ADOPTABLE = 2,
  HK_LIST_STUCK = 3,
};

/* One cache line per slab: free() reads the geometry fields and the owner
 * together, so they must not straddle two lines. */
struct hk_slab {
  struct hk_block *free; /* blocks ready to hand out (owner only) */
  _Atomic(struct hk_heap *) owner; /* NULL when abandoned or unused */
  _Atomic(struct hk_block *) remote; /* blocks other threads freed */
  uint64_t div_magic; /* see hk_div_magic; 0 while the slab is unused */
  struct hk_slab *next, *prev; /* owner's queues, abandoned stack */
  uint32_t start_off;  /* block 0's offset from the SuperSlab */
  /* used, block_size and class_idx are the owner's to write, but are read
   * by remote frees (block_size) and by statistics reports (all three):
   * relaxed atomics, which compile to plain loads and stores. */
  _Atomic uint32_t block_size; /* 0 while the slab is unused */
  _Atomic uint16_t used; /* blocks out with the program or in the remote list */
  _Atomic uint16_t carved; /* blocks ever cut; read by remote frees */
  uint16_t capacity;
  _Atomic uint8_t class_idx;
  uint8_t list; /* enum hk_slab_list: where the slab is queued */
} __attribute__((aligned(64)));

_Static_assert(sizeof(struct hk_slab) == 64, "slab metadata is one line");

struct hk_segment {
  uint32_t kind;
};

struct hk_superslab {
  struct hk_segment seg;
  uint8_t geometry;
  uint8_t slab_shift;
  uint16_t slab_count;
  uint32_t free_mask;  /* bit i set: slab i is unused (pool lock) */
  uint32_t dirty_mask; /* unused slabs whose pages are still committed */
  /* The slab covering each 64 KiB of the region, whatever the geometry:
   * free() finds a block's slab with a shift and a load from the line it
   * has just read the kind from. */
  uint8_t slab_index_of[HK_REGION_SIZE >> HK_GRANULE_SHIFT];
  struct hk_superslab *pool_next, *pool_prev;   /* partial list */
  struct hk_superslab *dirty_next, *dirty_prev; /* purge list */
  struct hk_superslab *all_next, *all_prev;     /* every mapped one */
  struct hk_slab slabs[HK_MAX_SLABS];
  uint32_t released_ms[HK_MAX_SLABS]; /* when each dirty slab was released */
};

_Static_assert(sizeof(struct hk_superslab) <= HK_SLAB0_DATA_OFFSET,
               "SuperSlab header must fit in slab 0's first page");

/* The large tier's chunk header: internal/large_chunk.h. */
struct hk_large_chunk;

#endif
