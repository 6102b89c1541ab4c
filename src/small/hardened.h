/* hardened.h: HAKMEM_HARDENED for small (slab) blocks.
 *
 * The default mode already keeps every free-list link out of band and
 * catches every double free through the block's link (types.h). What the
 * mode adds:
 *   - A freed block is filled with HK_FREE_FILL; malloc checks the fill
 *     before handing the block out again, so a write after free is
 *     reported.
 *   - Every free, the owner's too, claims the block's link with one atomic
 *     operation, so that even two frees of one block racing on the owner's
 *     own thread and another are always told apart.
 *   - free() rejects a slab whose metadata (owner, class) is inconsistent.
 *
 * Nothing of this costs the default mode anything on its inline paths:
 * with the knob on, slab owners carry the low tag bit that sends every
 * free() out of line (see hk_owner_token in slab.h), and every heap's
 * fast-path current slabs stay at hk_empty_slab, so that every malloc()
 * goes to hk_small_alloc_slow (small.c), which hands over to
 * hk_hardened_alloc. The real current slabs are then kept in
 * hk_heap.hard_cur. Above the heap: hardened.c uses the heap's refill
 * and the remote frees, and nothing below calls it.
 */
#ifndef HK_HARDENED_H
#define HK_HARDENED_H

#include "base/types.h"

struct hk_heap;

/* What a freed block holds: not zero (a program that reads a freed block
 * must not find plausible data) and an odd, non-canonical pattern as a
 * pointer (0xdfdf...df). */
#define HK_FREE_FILL 0xdf

/* malloc of class `cls` for heap h (the calling thread's). */
void *hk_hardened_alloc(struct hk_heap *h, unsigned cls);

/* free of block i of s (its link was LIVE), by any thread: claims the
 * block, checks the slab's metadata, fills the block, and gives it back
 * to its owner's list (the owner's free) or its remote list. */
void hk_hardened_free(struct hk_slab *s, unsigned i);

#endif
