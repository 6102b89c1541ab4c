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
 * free() out of line (see hk_owner_value), and every heap's fast-path
 * current slabs stay at hk_empty_slab, so that every malloc() goes to
 * hk_small_alloc_slow, which hands over to hk_hardened_alloc. The real
 * current slabs are then kept in hk_heap.hard_cur.
 */
#ifndef HK_HARDENED_H
#define HK_HARDENED_H

#include "types.h"

struct hk_heap;

/* What a freed block holds: not zero (a program that reads a freed block
 * must not find plausible data) and an odd, non-canonical pattern as a
 * pointer (0xdfdf...df). */
#define HK_FREE_FILL 0xdf

/* malloc of class `cls` for heap h (the calling thread's). */
void *hk_hardened_alloc(struct hk_heap *h, unsigned cls);

/* The checks of a free of block i (any thread): slab metadata; then fills
 * the block. Returns 0 when the free was reported and must be dropped
 * (HAKMEM_INVALID_FREE=warn), 1 to go on. */
int hk_hardened_free_check(struct hk_slab *s, unsigned i);

#endif
