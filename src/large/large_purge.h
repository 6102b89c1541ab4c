/* large_purge.h: giving free extents' dirty pages back to the OS. */
#ifndef HK_LARGE_PURGE_H
#define HK_LARGE_PURGE_H

#include <stddef.h>
#include <stdint.h>

#include "large/large_chunk.h"

/* Purging, in three steps so that the madvise calls run without the lock:
 * hk_purge_take (locked) takes off their lists, as busy, up to a batch of
 * free extents whose pages should go back: dirty for HAKMEM_PURGE_DELAY,
 * or the oldest while the dirty bytes exceed the cache limit, or with
 * `all` any (at most `limit` of them); it returns how many, 0 when there
 * is nothing to do or another thread's purge is in flight. When the
 * kernel refuses a decommit (locked pages, under mlock or mlockall), the
 * extent waits a second at least before it is tried again, and purging
 * for the cache limit pauses as long, so that memory that cannot be given
 * back costs one madvise a second, not one per call. hk_purge_run
 * (no lock) gives their dirty pages back. hk_purge_finish (locked) files
 * them again: clean where the kernel confirmed it, dirty where it did
 * not; chunks left all clean and free go on the unmap list. It returns
 * the bytes given back. */
size_t hk_purge_take(int all, size_t limit);
void hk_purge_run(void);
size_t hk_purge_finish(void);

/* In a forked child: a purge another thread had in flight is abandoned;
 * its extents are filed again as dirty (nothing confirmed them clean). */
void hk_extent_fork_child(void);

#endif
