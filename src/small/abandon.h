/* abandon.h: the slabs of exited threads.
 *
 * A thread that exits gives each slab that still holds live blocks up: the
 * slab loses its owner and goes on a per-class list, to be adopted by the
 * next thread that needs a slab of the class. A slab that has free blocks
 * (or remote frees waiting) is adoptable at once. One that has neither is
 * stuck: nobody could allocate from it, so it waits off the adoptable
 * list until the first remote free into it, whose push sees the STUCK
 * mark (types.h) and offers it (hk_abandoned_unstick). Below the heap:
 * nothing here calls into heap.c.
 */
#ifndef HK_ABANDON_H
#define HK_ABANDON_H

#include <stddef.h>

struct hk_heap;
struct hk_slab;

/* Gives up s, which the calling thread owns and has taken off its lists:
 * back to the pool if it is empty, else abandoned. `purge`: its free pages
 * go back to the OS first (malloc_trim). Returns the bytes given back. */
size_t hk_abandon_slab(struct hk_slab *s, int purge);

/* An abandoned slab of the class with a block to hand out, now owned by
 * the calling thread and on none of h's lists; NULL if none. Adopted slabs
 * with no block free go onto h's full list on the way. */
struct hk_slab *hk_abandoned_adopt(struct hk_heap *h, unsigned cls);

/* s was stuck and has received a remote free: it becomes adoptable. */
void hk_abandoned_unstick(struct hk_slab *s);

/* malloc_trim: every adoptable slab's free pages go back to the OS, and
 * the empty ones to the pool. Returns the bytes given back. */
size_t hk_abandoned_trim(void);

void hk_abandoned_fork_prepare(void);
void hk_abandoned_fork_parent(void);
void hk_abandoned_fork_child(void);

#endif
