/* types.h: the data structures every part of hakmem shares.
 *
 * Memory layout in one picture:
 *
 *   2 MiB-aligned SuperSlab (kind HK_MAPPING_SUPERSLAB)
 *   +-----------+------------------+------------------+-----+
 *   | header    | slab 0 blocks    | slab 1 blocks    | ... |
 *   | slab meta |                  |                  |     |
 *   +-----------+------------------+------------------+-----+
 *   ^ ptr & ~(2 MiB - 1) finds the header, the region map proves it is ours.
 *
 *   Large chunk (kind HK_MAPPING_LARGE): a 2 MiB-aligned mapping of 64 MiB
 *   or more, a page map at the start, large blocks as page runs after it.
 *
 * Every 2 MiB region we own has an entry in the region map (region_map.h)
 * that points at the header of the mapping covering it; anything else is
 * not ours.
 *
 * Glossary: the nouns as the code uses them, largest first.
 *   region     a 2 MiB-aligned span of address space, the region map's
 *              unit; every region hakmem owns belongs to one mapping.
 *   mapping    what hakmem gets from mmap and registers in the region
 *              map: a SuperSlab or a large chunk. Both headers start with
 *              struct hk_mapping, a kind tag, so that free() can tell
 *              them apart.
 *   SuperSlab  a 2 MiB mapping cut into slabs of one geometry, with its
 *              header in slab 0's first page and its links out of band.
 *   geometry   how a SuperSlab is cut: TINY, SMALL, MEDIUM, WHOLE (the
 *              whole SuperSlab one slab, for the medium classes above
 *              64 KiB) and TINY_SOLO.
 *   slab       a run of a SuperSlab holding blocks of one size class,
 *              owned by one thread (or abandoned, or unused).
 *   block      what malloc returns from a slab: a size class's bytes.
 *   link       a block's entry in its slab's out-of-band free list: the
 *              next free block's index, or a state (LIVE, PENDING, END).
 *   chunk      a large-tier mapping of 64 MiB or more (large_chunk.h),
 *              its page map and records in its header.
 *   extent     a run of pages in a chunk: a live large block, or free
 *              space filed in the bins and, if dirty, the dirty list.
 *   heap       a thread's set of slabs (heap.h); the pool (superslab.c)
 *              is what all threads share.
 * "Empty" says a slab has no block out (used == 0); hk_empty_slab is the
 * placeholder a heap's current slots start on, which never has a block;
 * a heap keeps a few empty slabs (h->empty), the pool empty SuperSlabs.
 */
#ifndef HK_TYPES_H
#define HK_TYPES_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "base/list.h"
#include "platform/os.h"

#define HK_REGION_SHIFT 21
#define HK_REGION_SIZE ((size_t)1 << HK_REGION_SHIFT)
#define HK_REGION_MASK (HK_REGION_SIZE - 1)

/* Slab 0 gives its first page to the SuperSlab header (see
 * hk_superslab_data_offset in superslab.h), and every slab is a multiple
 * of 64 KiB: all blocks start at a multiple of a page, so power-of-two
 * classes are naturally aligned to a page. The aligned allocation path
 * promises the smallest page size's alignment, whatever the kernel's, so
 * that which requests the slabs serve does not change from one machine to
 * the next; larger alignments go to the large tier. */
#define HK_MAX_SLABS 32
#define HK_GRANULE_SHIFT 16 /* the smallest slab: 64 KiB */
#define HK_SMALL_ALIGN_MAX HK_PAGE_SIZE_MIN

#define HK_TINY_MAX 1024
#define HK_MEDIUM_MAX (256 * 1024)

enum hk_mapping_kind {
  HK_MAPPING_SUPERSLAB = 0x55ab,
  HK_MAPPING_LARGE = 0x1a29,
};

/* Geometries: how a SuperSlab is cut into slabs. Tiny classes want many
 * small slabs; medium classes need slabs large enough for several blocks.
 * The sizes below are those of 4 and 16 KiB pages; a slab is never less
 * than four pages (64 KiB pages: tiny slabs of 256 KiB, eight to a
 * SuperSlab), see hk_geometry_shift in superslab.c.
 * TINY_SOLO is the backend HAKMEM_TINY_USE_SUPERSLAB=0 selects: each tiny
 * slab is its own mapping (at a 2 MiB-aligned address, so that the region
 * map and the free path treat it as a SuperSlab of one slab), unmapped as
 * soon as it empties, shared with nothing.
 * SMALL has TINY's slabs for the classes above HK_TINY_MAX up to
 * HK_SMALL_SLAB_MAX, whose blocks are few to a slab: a SuperSlab of its
 * own lets its link arrays be sized for them (64 links a slab, all 32 in
 * one page) where TINY's are sized for 16-byte blocks (8 KiB a slab, so
 * that every slab of 4 KiB blocks kept a page of links for its 16). */
enum hk_geometry {
  HK_GEOM_TINY = 0,      /* 32 slabs of 64 KiB */
  HK_GEOM_SMALL = 1,     /* 32 slabs of 64 KiB, blocks above 1 KiB */
  HK_GEOM_MEDIUM = 2,    /* 4 slabs of 512 KiB */
  HK_GEOM_WHOLE = 3,     /* 1 slab of 2 MiB   */
  HK_GEOM_TINY_SOLO = 4, /* 1 slab of 64 KiB, mapped alone */
  HK_GEOM_COUNT = 5,
};

struct hk_heap;

/* A block's entry in its slab's free list, out of band: the next free
 * block, or the block's state (freelist.h owns the encoding). */
typedef uint16_t hk_link;
/* A remote list head (freelist.h). */
typedef uint64_t hk_remote;

/* Which list a slab is on. An owned slab is its heap's current slab for
 * its class (CURRENT), or on its avail queue (AVAIL) or its full queue
 * (FULL); a current slab of a WHOLE SuperSlab is marked AVAIL, so that its
 * owner's free leaves the fast path when it empties. An abandoned slab is
 * either ADOPTABLE (has free blocks, waiting for a thread to adopt it) or
 * STUCK (no free block; the first remote free into it makes it
 * adoptable). The order lets the owner's free ask in one
 * compare whether it must leave the fast path: a slab that is not current
 * and becomes empty must, and so must a full one (see hk_free_local). */
enum hk_slab_list {
  HK_LIST_CURRENT = 0,
  HK_LIST_AVAIL = 1,
  HK_LIST_FULL = 2,
  HK_LIST_ADOPTABLE = 3,
  HK_LIST_STUCK = 4,
};

/* One cache line per slab, what malloc and free of the owner read. The
 * remote list head, which other threads write, is on a line of its own in
 * struct hk_slab_meta. */
struct hk_slab {
  uint16_t free; /* the free list's head (freelist.h; owner only) */
  /* used, carved, block_size and class_idx are the owner's to write, but
   * are read by remote frees and statistics reports: relaxed atomics,
   * which compile to plain loads and stores. */
  _Atomic uint16_t carved; /* blocks ever cut */
  uint16_t capacity;
  _Atomic uint8_t class_idx;
  uint8_t list; /* enum hk_slab_list: where the slab is queued */
  _Atomic uint32_t used; /* blocks out with the program or in the remote list */
  _Atomic uint32_t block_size; /* 0 while the slab is unused */
  _Atomic hk_link *links; /* one per block, out of band */
  uintptr_t start;      /* block 0's address */
  /* The owning thread's token (hk_owner_token in heap.h), 0 when the slab
   * is abandoned or unused. */
  _Atomic uintptr_t owner;
  uint64_t div_magic; /* see hk_div_magic; 0 while the slab is unused */
  /* On one list at a time (list.h): its owner's avail or full queue or
   * the stuck queue, or a stack (adoptable slabs, or those a heap keeps). */
  union {
    struct hk_list_node queue;
    struct hk_stack_node stack;
  };
} __attribute__((aligned(64)));

_Static_assert(sizeof(struct hk_slab) == 64, "slab metadata is one line");

/* The most blocks a slab can hold: a tiny slab of the largest pages
 * (4 x 64 KiB, see hk_geometry_shift) of 16-byte blocks. */
#define HK_SLAB_MAX_BLOCKS (4 * HK_PAGE_SIZE_MAX / 16)

struct hk_remote_head {
  _Atomic hk_remote head; /* see freelist.h */
} __attribute__((aligned(64)));

/* A SuperSlab's out-of-band metadata, mapped apart from it: the remote
 * heads on its first page, then each slab's links from the second page on
 * (hk_superslab_links in superslab.h; slab i's at links + i *
 * link_stride). Links start on a page, so that the whole pages of an
 * unused slab's links can be given back to the OS with its blocks. */
struct hk_slab_meta {
  struct hk_remote_head remote[HK_MAX_SLABS];
};
_Static_assert(sizeof(struct hk_slab_meta) <= HK_PAGE_SIZE_MIN,
               "remote heads fit a page");

struct hk_mapping {
  uint32_t kind;
};

struct hk_superslab {
  struct hk_mapping mapping;
  uint8_t geometry;
  uint8_t slab_shift;
  uint16_t slab_count;
  uint32_t free_mask;  /* bit i set: slab i is unused (pool lock) */
  uint32_t dirty_mask; /* unused slabs whose pages are still committed */
  /* 1 while the SuperSlab is advised into transparent huge pages; cleared,
   * with the advice withdrawn, before its first decommit (see
   * hk_superslab_decommit). */
  _Atomic uint8_t huge;
  struct hk_list_node partial_node; /* the pool's partial list */
  /* The pool's empty ones, or a chain of them to unmap. */
  struct hk_stack_node empty_node;
  struct hk_list_node dirty_node; /* purge list */
  struct hk_list_node all_node;   /* every mapped one */
  struct hk_slab_meta *meta;
  uint32_t link_stride; /* links per slab in meta */
  uint32_t emptied_ms;  /* when its last slab was released (pool's empties) */
  struct hk_slab slabs[HK_MAX_SLABS];
  /* When each dirty slab was released to the pool, or when a heap began
   * to keep it empty: a slab is in one place or the other, never both. */
  uint32_t released_ms[HK_MAX_SLABS];
  /* The owner's: 1 + the slab's `used` when its free pages were last
   * given back, so that a purge skips the slabs nobody touched since. */
  uint32_t purged_used[HK_MAX_SLABS];
};

_Static_assert(sizeof(struct hk_superslab) <= HK_PAGE_SIZE_MIN,
               "SuperSlab header must fit in slab 0's first page");

/* The large tier's chunk header: large/large_chunk.h. */
struct hk_large_chunk;

#endif
