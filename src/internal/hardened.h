/* hardened.h: HAKMEM_HARDENED for small (slab) blocks.
 *
 * What the mode adds, and where it lives:
 *   - Free-list links (a free block's first word, on the owner's list and
 *     on the remote list) are stored encoded with a per-process secret and
 *     the address they are stored at. Every link is decoded and checked
 *     (NULL, or a carved block of the same slab) before it is followed, so
 *     a program that writes into a freed block cannot steer malloc to an
 *     address of its choosing, and is reported instead.
 *   - Each slab keeps a bitmap, one bit per block, set while the block is
 *     out with the program. free() clears the bit with one atomic
 *     operation and a bit already clear is a double free: the check does
 *     not depend on anything stored in the block, which the program may
 *     have overwritten, and holds across threads.
 *   - A freed block is filled with HK_FREE_FILL beyond its two header
 *     words; malloc checks the fill (and the free tag) before handing the
 *     block out again, so a write after free is reported.
 *   - free() rejects a slab whose metadata (owner, class) is inconsistent.
 *
 * Nothing of this costs the default mode anything on its inline paths:
 * with the knob on, slab owners carry the low tag bit that sends every
 * free() out of line (see hk_owner_value), and every heap's fast-path
 * current slabs stay at hk_empty_slab, so that every malloc() goes to
 * hk_small_alloc_slow, which hands over to hk_hardened_alloc. The real
 * current slabs are then kept in hk_heap.hard_cur.
 *
 * The bitmap sits at the end of the slab, after its last block: capacity
 * is reduced to make room, and the blocks keep their addresses, so the
 * alignment of every class (which aligned allocation relies on) is the
 * same as in the default mode.
 */
#ifndef HK_HARDENED_H
#define HK_HARDENED_H

#include <stdatomic.h>
#include <stdint.h>

#include "types.h"

struct hk_heap;

/* What a freed block holds beyond its two header words: not zero (a
 * program that reads a freed block must not find plausible data) and an
 * odd, non-canonical pattern as a pointer (0xdfdf...df). */
#define HK_FREE_FILL 0xdf

/* The per-process secret of the link encoding; 0 until the first slab is
 * prepared (hk_hardened_slab_init), which is before any link exists. */
extern _Atomic uintptr_t hk_list_secret;

/* The mask a link stored at `slot` is XORed with: the secret mixed with
 * the slot's address, so that an encoded link copied to another block
 * does not decode to anything useful. */
static inline uintptr_t hk_list_key(const void *slot) {
  uintptr_t k = ((uintptr_t)slot ^
                 atomic_load_explicit(&hk_list_secret, memory_order_relaxed)) *
                (uintptr_t)0x9e3779b97f4a7c15u;
  return (k << 32) | (k >> 32);
}

/* The value to store in slot->next for a link to `next`. */
static inline struct hk_block *hk_list_encode(const struct hk_block *slot,
                                              const struct hk_block *next) {
  return (struct hk_block *)((uintptr_t)next ^ hk_list_key(slot));
}

/* The link stored in slot->next, decoded (and not checked). */
static inline struct hk_block *hk_list_decode(const struct hk_block *slot) {
  return (struct hk_block *)((uintptr_t)slot->next ^ hk_list_key(slot));
}

/* The slab's reduced capacity and its cleared bitmap; called by
 * hk_slab_init, before the slab is published. */
void hk_hardened_slab_init(struct hk_slab *s);

/* Encodes the links of the n blocks of size bs from `first` on, which
 * hk_slab_carve has just linked in the clear. */
void hk_hardened_encode_run(struct hk_block *first, uint32_t n, uint32_t bs);

/* hk_slab_collect with the remote list `list` already taken: decodes and
 * checks it, then puts it in front of the owner's list. */
void hk_hardened_collect(struct hk_slab *s, struct hk_block *list);

/* malloc of class `cls` for heap h (the calling thread's). */
void *hk_hardened_alloc(struct hk_heap *h, unsigned cls);

/* The checks of a free (any thread): slab metadata, double free; then
 * fills the block. Returns 0 when the free was reported and must be
 * dropped (HAKMEM_INVALID_FREE=warn), 1 to go on. */
int hk_hardened_free_check(struct hk_slab *s, struct hk_block *b);

/* The owner's side of a checked free: the block onto the slab's list. */
void hk_hardened_free_local(struct hk_heap *h, struct hk_slab *s,
                            struct hk_block *b);

#endif
