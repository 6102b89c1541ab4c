/* large.h: blocks above HK_MEDIUM_MAX, and alignments the slabs cannot
 * give. Each is its own 2 MiB-aligned mapping with a header in front;
 * freed ones are kept in a bounded cache so that a program that allocates
 * and frees big buffers in a loop does not pay mmap/munmap every time. */
#ifndef HK_LARGE_H
#define HK_LARGE_H

#include <stddef.h>

#include "types.h"

/* `align` is a power of two >= 16. NULL with errno ENOMEM on failure.
 * With `zero`, the block reads as zeroes. */
void *hk_large_alloc(size_t size, size_t align, int zero);

/* `fn` names the API function for misuse reports. */
void hk_large_free(struct hk_large *l, void *p, const char *fn);

/* Usable size of a live large block; 0 after reporting misuse for `fn`. */
size_t hk_large_usable(struct hk_large *l, const void *p, const char *fn);

/* Resizes the live block `p` of `l` to at least `size` bytes without
 * copying: in place within its mapping (unmapping whole regions it no
 * longer needs), or by moving its pages to a larger mapping (mremap). The
 * new pointer, or NULL (block untouched) if that could not be done. */
void *hk_large_resize(struct hk_large *l, void *p, size_t size);

/* Unmaps every cached block. Returns the bytes released. */
size_t hk_large_trim(void);

void hk_large_fork_prepare(void);
void hk_large_fork_parent(void);
void hk_large_fork_child(void);

#endif
