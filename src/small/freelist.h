/* freelist.h: how a slab's free list is stored, checked and decoded.
 *
 * Free lists live out of band. Each slab has an array of links, one per
 * block, in a mapping apart from the blocks (struct hk_slab_meta): the
 * program can write anywhere in its blocks, freed or live, and still
 * cannot steer malloc, because no link the allocator follows is stored
 * where the program writes. A link holds the index of the next free
 * block, or one of the values below, which also tell a block's state:
 *
 *   0 .. 0x3fff      next free block, or the sentinel (HK_LINK_FRESH set:
 *                    this block was carved but never handed out)
 *   HK_LINK_END      no next block, in a chain for a remote list
 *   HK_LINK_PENDING  being freed by another thread (transient)
 *   HK_LINK_LIVE     out with the program
 *
 * The owner's list ends at the slab's sentinel: index `capacity`, one
 * link past the last block's, which holds LIVE for as long as the slab is
 * in use. An empty list is the sentinel itself, so malloc's one test of
 * the head's link (may it be followed?) also tells it that the list is
 * empty, without a test of its own. Chains on their way to a remote list
 * end with HK_LINK_END instead.
 *
 * malloc stores LIVE into the link of the block it hands out and free
 * checks for it, so a double free is caught whatever the program wrote
 * into the block; a list made inconsistent by two threads freeing one
 * block at the same instant leads malloc to a LIVE or PENDING link, which
 * is reported, never followed.
 *
 * This file is the only one that knows the encoding: everything above
 * asks it whether a link may be followed, what it leads to and what it
 * says about its block. There is one encoding for both modes. Hardened
 * mode once kept its links in the blocks under a key; with every link
 * out of band there is nothing left for a key to protect, and what the
 * mode adds (the fill of freed blocks, a claim on every free) is a layer
 * above the slab, hardened.c, chosen once in small.c.
 *
 * The operations below touch only the list: the head (`free`) and the
 * links. The slab's counters are slab.h's.
 */
#ifndef HK_FREELIST_H
#define HK_FREELIST_H

#include <stdatomic.h>
#include <stdint.h>

#include "base/types.h"

#define HK_LINK_INDEX 0x3fffu
#define HK_LINK_FRESH 0x4000u
#define HK_LINK_END 0x8000u
#define HK_LINK_PENDING 0xfffeu
#define HK_LINK_LIVE 0xffffu

_Static_assert(HK_SLAB_MAX_BLOCKS - 1 <= HK_LINK_INDEX, "links index blocks");

/* A slab's remote list head: the first block's index in bits 0-15, the
 * number of blocks in bits 16-31 and the last block's index in bits 32-47,
 * so that the owner takes the whole list in one exchange and puts it in
 * front of its own without walking it, to count it or to find its end.
 * The last block is the one pushed onto the empty list: every later push
 * goes in front and carries it over. */
#define HK_REMOTE_EMPTY ((hk_remote)HK_LINK_END)
/* An abandoned slab with no free block holds this instead of EMPTY: the
 * thread whose remote free replaces it knows that the slab just became
 * worth adopting, without reading the slab afterwards. */
#define HK_REMOTE_STUCK ((hk_remote)0xffffffffu)

static inline unsigned hk_remote_first(hk_remote head) {
  return (unsigned)(head & 0xffffu);
}
static inline unsigned hk_remote_count(hk_remote head) {
  return (unsigned)(head >> 16) & 0xffffu;
}
static inline unsigned hk_remote_last(hk_remote head) {
  return (unsigned)(head >> 32) & 0xffffu;
}

static inline hk_link hk_link_get(const struct hk_slab *s, unsigned i) {
  return atomic_load_explicit(&s->links[i], memory_order_relaxed);
}
static inline void hk_link_set(struct hk_slab *s, unsigned i, unsigned v) {
  atomic_store_explicit(&s->links[i], (hk_link)v, memory_order_relaxed);
}

/* What a link says about its block. */
static inline int hk_link_live(hk_link l) { return l == HK_LINK_LIVE; }
/* Out with the program or being freed: its memory is not ours to drop. */
static inline int hk_link_in_use(hk_link l) { return l >= HK_LINK_PENDING; }
/* A free block's link, which malloc may follow. */
static inline int hk_link_free(hk_link l) { return l < HK_LINK_PENDING; }

/* Why free() of a block whose link is `l` (not LIVE) is wrong: a block
 * carved but never handed out was not the program's to free; any other
 * was freed before (or is being freed by another thread right now). */
static inline const char *hk_link_misuse(hk_link l) {
  return hk_link_free(l) && (l & HK_LINK_FRESH) ? "invalid pointer"
                                                : "double free";
}

static inline int hk_freelist_empty(const struct hk_slab *s) {
  return s->free == s->capacity;
}
static inline void hk_freelist_clear(struct hk_slab *s) { s->free = s->capacity; }

/* A slab's list as it starts, empty: its sentinel made LIVE (capacity and
 * links set). */
static inline void hk_freelist_init(struct hk_slab *s) {
  hk_link_set(s, s->capacity, HK_LINK_LIVE);
  hk_freelist_clear(s);
}

/* Hands out the head block i, whose link `next` was checked free: the list
 * goes on at `next`, and i is LIVE. Returns whether i was never handed out
 * before (its memory is as carved). */
static inline int hk_freelist_unlink_head(struct hk_slab *s, unsigned i,
                                          hk_link next) {
  s->free = (uint16_t)(next & ~HK_LINK_FRESH);
  hk_link_set(s, i, HK_LINK_LIVE);
  return (next & HK_LINK_FRESH) != 0;
}

/* The owner's free of block i (LIVE or claimed): the new head. */
static inline void hk_freelist_push(struct hk_slab *s, unsigned i) {
  hk_link_set(s, i, s->free);
  s->free = (uint16_t)i;
}

/* Links i to next in a chain being built for a remote list; `next` is a
 * block index or HK_LINK_END. */
static inline void hk_freelist_chain(struct hk_slab *s, unsigned i,
                                     unsigned next) {
  hk_link_set(s, i, next);
}

/* Makes blocks first .. first + n - 1, never handed out, the whole list. */
static inline void hk_freelist_fill_fresh(struct hk_slab *s, unsigned first,
                                          unsigned n) {
  for (unsigned i = first; i + 1 < first + n; i++)
    hk_link_set(s, i, (i + 1) | HK_LINK_FRESH);
  hk_link_set(s, first + n - 1, s->capacity | HK_LINK_FRESH);
  s->free = (uint16_t)first;
}

/* Takes block i from LIVE to PENDING with one atomic operation, so that
 * of two threads freeing the same block at the same instant only one goes
 * on. Returns 1, or 0 with the link found in *found. */
static inline int hk_freelist_claim(struct hk_slab *s, unsigned i,
                                    hk_link *found) {
  hk_link live = HK_LINK_LIVE;
  if (atomic_compare_exchange_strong_explicit(&s->links[i], &live,
                                              HK_LINK_PENDING,
                                              memory_order_relaxed,
                                              memory_order_relaxed))
    return 1;
  *found = live;
  return 0;
}

/* Puts the chain first -> ... -> last (a remote list taken whole, both
 * indices checked against the slab's capacity) in front of the owner's
 * list, without walking it: only last's link is read, and it must end
 * the chain. Returns HK_LINK_END, or the block whose link was found
 * corrupt (nothing is then changed). */
static inline unsigned hk_freelist_splice(struct hk_slab *s, unsigned first,
                                          unsigned last) {
  if (__builtin_expect(hk_link_get(s, last) != HK_LINK_END, 0))
    return last;
  hk_link_set(s, last, s->free);
  s->free = (uint16_t)first;
  return HK_LINK_END;
}

/* Pushes the chain first -> ... -> last of n claimed blocks onto the
 * remote list at *remote. Returns the head it replaced. */
static inline hk_remote hk_freelist_remote_push(struct hk_slab *s,
                                                _Atomic hk_remote *remote,
                                                unsigned first, unsigned last,
                                                unsigned n) {
  hk_remote head = atomic_load_explicit(remote, memory_order_relaxed), next;
  do {
    hk_remote h = head == HK_REMOTE_STUCK ? HK_REMOTE_EMPTY : head;
    hk_link_set(s, last, hk_remote_first(h));
    unsigned end = hk_remote_count(h) ? hk_remote_last(h) : last;
    next = ((hk_remote)end << 32) |
           ((hk_remote)(hk_remote_count(h) + n) << 16) | first;
  } while (!atomic_compare_exchange_weak_explicit(
      remote, &head, next, memory_order_release, memory_order_relaxed));
  return head;
}

#endif
