/* list.h: the intrusive lists every part of hakmem keeps its records on.
 *
 * A record (a slab, a SuperSlab, a heap, a free extent, a chunk) embeds
 * one node per list it can be on. Links point at records, not at nodes,
 * and every operation is given `off`, the offset of the list's node in
 * the record (offsetof, a constant): inlined, each compiles to the loads
 * and stores a list written out for that record would make, with no
 * conversion between node and record on the way (which, in the slab
 * queues' refills, cost a few instructions per slab). Nothing here
 * allocates. Every list ends in NULL, not in a sentinel: a head of all
 * zero bytes is an empty list, so that static heads and heaps cleared
 * with memset need no setting up.
 *
 *   struct hk_list    doubly linked, head only: push at the front, remove
 *                     anywhere (a pool's partial SuperSlabs, a bin of
 *                     free extents).
 *   struct hk_queue   doubly linked, both ends: push at either, pop the
 *                     front, remove anywhere (a heap's slabs of a class,
 *                     the dirty extents newest first).
 *   struct hk_stack   singly linked: push, pop, take whole, remove at a
 *                     cursor while walking (abandoned slabs, free heaps).
 *   struct hk_atomic_stack  pushed by any thread, taken whole (no pop, so
 *                     no ABA): work handed over without a lock.
 *
 * Iteration reads the node's links directly: for (r = l.first; r; r =
 * r->node.next). A removed record's links are left as they were: they
 * mean nothing until it is pushed again, which writes all of them
 * (hk_list_node_clear is for code that keeps them NULL off the list).
 *
 * Checked lists. Where a wild write could reach the nodes (the large
 * tier's records, in chunk headers), no link read from them may be
 * followed unchecked. The operations taking an hk_list_follow pass every
 * link they read from a record or a head, before they dereference it,
 * through that function, which returns the link unchanged or does not
 * return (it reports `from`). Removal is split so that the caller can
 * check a record on all its lists before it changes any: hk_list_linked
 * checks the links read once into a copy of the node, hk_list_unlink
 * unlinks by that same copy. The plain operations are the checked ones
 * with no function, which inlining removes.
 */
#ifndef HK_LIST_H
#define HK_LIST_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Always inlined: a call would cost more than most of these bodies, and
 * inlining is what folds `off` into the addressing and a NULL follow
 * function away. */
#define HK_LIST_INLINE static inline __attribute__((always_inline))

struct hk_list_node {
  void *next, *prev; /* the records after and before, NULL at the ends */
};

struct hk_list {
  void *first;
};

struct hk_queue {
  void *first, *last;
};

typedef void *(*hk_list_follow)(void *link, const void *from);

/* The node at `off` in the record `r`. */
HK_LIST_INLINE struct hk_list_node *hk_list_node_of(void *r, size_t off) {
  return (struct hk_list_node *)((char *)r + off);
}

HK_LIST_INLINE void hk_list_node_clear(void *r, size_t off) {
  struct hk_list_node *n = hk_list_node_of(r, off);
  n->next = n->prev = NULL;
}

/* Both kinds of doubly-linked list are these, on a head's end slots
 * (`last` NULL: a list without a tail). */

HK_LIST_INLINE void *hk_list_read(void *link, hk_list_follow follow,
                                  const void *from) {
  return follow ? follow(link, from) : link;
}

HK_LIST_INLINE void hk_ends_push_front(void **first, void **last, void *r,
                                       size_t off, hk_list_follow follow,
                                       const void *from) {
  void *old = *first;
  struct hk_list_node *n = hk_list_node_of(r, off);
  n->prev = NULL;
  n->next = old;
  if (old)
    hk_list_node_of(hk_list_read(old, follow, from), off)->prev = r;
  else if (last)
    *last = r;
  *first = r;
}

HK_LIST_INLINE int hk_ends_linked(void *const *first, void *const *last,
                                  const void *r, struct hk_list_node seen,
                                  size_t off, hk_list_follow follow,
                                  const void *from) {
  if (seen.prev) {
    void *prev = hk_list_read(seen.prev, follow, from);
    if (hk_list_node_of(prev, off)->next != r)
      return 0;
  } else if (*first != r) {
    return 0;
  }
  if (seen.next) {
    void *next = hk_list_read(seen.next, follow, from);
    if (hk_list_node_of(next, off)->prev != r)
      return 0;
  } else if (last && *last != r) {
    return 0;
  }
  return 1;
}

HK_LIST_INLINE void hk_ends_unlink(void **first, void **last,
                                   struct hk_list_node seen, size_t off) {
  if (seen.prev)
    hk_list_node_of(seen.prev, off)->next = seen.next;
  else
    *first = seen.next;
  if (seen.next)
    hk_list_node_of(seen.next, off)->prev = seen.prev;
  else if (last)
    *last = seen.prev;
}

// ---------------------------------------------------------------------------
// Head only.

HK_LIST_INLINE int hk_list_empty(const struct hk_list *l) {
  return l->first == NULL;
}

HK_LIST_INLINE void hk_list_push(struct hk_list *l, void *r, size_t off) {
  hk_ends_push_front(&l->first, NULL, r, off, NULL, NULL);
}

HK_LIST_INLINE void hk_list_remove(struct hk_list *l, void *r, size_t off) {
  hk_ends_unlink(&l->first, NULL, *hk_list_node_of(r, off), off);
}

/* The old first record is checked before its back link is written. */
HK_LIST_INLINE void hk_list_push_checked(struct hk_list *l, void *r,
                                         size_t off, hk_list_follow follow,
                                         const void *from) {
  hk_ends_push_front(&l->first, NULL, r, off, follow, from);
}

/* Whether `r`, on `l`, with links `seen` (a copy of its node), is where
 * its neighbours say it is: each followed through `follow`, their links
 * back to it compared, and the head when it is first. */
HK_LIST_INLINE int hk_list_linked(const struct hk_list *l, const void *r,
                                  struct hk_list_node seen, size_t off,
                                  hk_list_follow follow, const void *from) {
  return hk_ends_linked(&l->first, NULL, r, seen, off, follow, from);
}

/* Removes the record whose links were `seen`, as hk_list_linked checked. */
HK_LIST_INLINE void hk_list_unlink(struct hk_list *l, struct hk_list_node seen,
                                   size_t off) {
  hk_ends_unlink(&l->first, NULL, seen, off);
}

// ---------------------------------------------------------------------------
// Both ends.

HK_LIST_INLINE int hk_queue_empty(const struct hk_queue *q) {
  return q->first == NULL;
}

HK_LIST_INLINE void hk_queue_push_front(struct hk_queue *q, void *r,
                                        size_t off) {
  hk_ends_push_front(&q->first, &q->last, r, off, NULL, NULL);
}

HK_LIST_INLINE void hk_queue_push_back(struct hk_queue *q, void *r,
                                       size_t off) {
  struct hk_list_node *n = hk_list_node_of(r, off);
  n->next = NULL;
  n->prev = q->last;
  if (q->last)
    hk_list_node_of(q->last, off)->next = r;
  else
    q->first = r;
  q->last = r;
}

HK_LIST_INLINE void hk_queue_remove(struct hk_queue *q, void *r, size_t off) {
  hk_ends_unlink(&q->first, &q->last, *hk_list_node_of(r, off), off);
}

HK_LIST_INLINE void *hk_queue_pop_front(struct hk_queue *q, size_t off) {
  void *r = q->first;
  if (r)
    hk_queue_remove(q, r, off);
  return r;
}

HK_LIST_INLINE void hk_queue_push_front_checked(struct hk_queue *q, void *r,
                                                size_t off,
                                                hk_list_follow follow,
                                                const void *from) {
  hk_ends_push_front(&q->first, &q->last, r, off, follow, from);
}

/* As hk_list_linked; the tail is compared too when `r` is last. */
HK_LIST_INLINE int hk_queue_linked(const struct hk_queue *q, const void *r,
                                   struct hk_list_node seen, size_t off,
                                   hk_list_follow follow, const void *from) {
  return hk_ends_linked(&q->first, &q->last, r, seen, off, follow, from);
}

HK_LIST_INLINE void hk_queue_unlink(struct hk_queue *q,
                                    struct hk_list_node seen, size_t off) {
  hk_ends_unlink(&q->first, &q->last, seen, off);
}

// ---------------------------------------------------------------------------
// Stacks.

struct hk_stack_node {
  void *next; /* the record below, NULL at the bottom */
};

struct hk_stack {
  void *top;
};

HK_LIST_INLINE struct hk_stack_node *hk_stack_node_of(void *r, size_t off) {
  return (struct hk_stack_node *)((char *)r + off);
}

HK_LIST_INLINE int hk_stack_empty(const struct hk_stack *s) {
  return s->top == NULL;
}

HK_LIST_INLINE void hk_stack_push(struct hk_stack *s, void *r, size_t off) {
  hk_stack_node_of(r, off)->next = s->top;
  s->top = r;
}

HK_LIST_INLINE void *hk_stack_pop(struct hk_stack *s, size_t off) {
  void *r = s->top;
  if (r)
    s->top = hk_stack_node_of(r, off)->next;
  return r;
}

/* The whole stack, leaving `s` empty. */
HK_LIST_INLINE struct hk_stack hk_stack_take(struct hk_stack *s) {
  struct hk_stack all = *s;
  s->top = NULL;
  return all;
}

/* Walking a stack with removal: `at` is the link naming the record
 * visited (first &s->top, then &node.next of each record kept); this
 * takes that record off and returns it, and `at` then names the next. */
HK_LIST_INLINE void *hk_stack_unlink(void **at, size_t off) {
  void *r = *at;
  *at = hk_stack_node_of(r, off)->next;
  return r;
}

struct hk_atomic_stack {
  _Atomic(void *) top;
};

/* Any thread, lock-free (a signal handler too); release, so that what
 * was written to the record before is seen by the thread that takes it. */
HK_LIST_INLINE void hk_atomic_stack_push(struct hk_atomic_stack *s, void *r,
                                         size_t off) {
  struct hk_stack_node *n = hk_stack_node_of(r, off);
  void *top = atomic_load_explicit(&s->top, memory_order_relaxed);
  do
    n->next = top;
  while (!atomic_compare_exchange_weak_explicit(
      &s->top, &top, r, memory_order_release, memory_order_relaxed));
}

HK_LIST_INLINE struct hk_stack hk_atomic_stack_take(struct hk_atomic_stack *s) {
  struct hk_stack all = {
      atomic_exchange_explicit(&s->top, NULL, memory_order_acquire)};
  return all;
}

#endif
