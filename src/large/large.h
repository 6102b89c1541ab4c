/* large.h: blocks above HK_MEDIUM_MAX, and alignments the slabs cannot
 * give. Each is a run of whole pages in a shared chunk
 * (large/large_chunk.h); freed runs keep their pages for a while, so
 * that a program that allocates and frees big buffers in a loop pays
 * neither a system call nor a page fault for each. */
#ifndef HK_LARGE_H
#define HK_LARGE_H

#include <stddef.h>

#include "base/types.h"

/* `align` is a power of two >= 16. NULL with errno ENOMEM on failure.
 * With `zero`, the block reads as zeroes. */
void *hk_large_alloc(size_t size, size_t align, int zero);

/* `fn` names the API function for misuse reports. */
void hk_large_free(struct hk_large_chunk *c, void *p, const char *fn);

/* Usable size of a live large block; 0 after reporting misuse for `fn`. */
size_t hk_large_usable(struct hk_large_chunk *c, const void *p, const char *fn);

/* Resizes the live block `p` of `c` to at least `size` bytes in place:
 * shrinking gives its tail back, growing takes the free pages after it.
 * `p`, or NULL (block untouched) if that could not be done. */
void *hk_large_resize(struct hk_large_chunk *c, void *p, size_t size);

/* Gives back the pages of every free run and unmaps empty chunks.
 * Returns the bytes released. */
size_t hk_large_trim(void);

void hk_large_fork_prepare(void);
void hk_large_fork_parent(void);
void hk_large_fork_child(void);

#endif
