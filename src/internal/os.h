/* os.h: the contract between hakmem and the operating system.
 *
 * Every mmap/munmap/madvise goes through here, so the rest of the allocator
 * never sees a raw system call. Functions return NULL or an errno value;
 * none of them allocates or takes a lock.
 */
#ifndef HK_OS_H
#define HK_OS_H

#include <stddef.h>
#include <stdint.h>

#define HK_PAGE_SIZE 4096

/* Maps `size` bytes of zeroed memory aligned to `align` (a power of two,
 * at least a page; size a multiple of a page). NULL with errno ENOMEM when
 * the OS refuses. */
void *hk_os_map_aligned(size_t size, size_t align);

/* Moves the pages of [old, old+size) to [to, to+size), both mapped by us,
 * without copying them; the old range stays mapped and reads as zeroes.
 * Returns 0, or an errno value (EINVAL before Linux 5.7) and then nothing
 * moved. */
int hk_os_move(void *old, size_t size, void *to);

/* Unmaps what hk_os_map_aligned returned (or a page-aligned part of it).
 * Returns 0, or an errno value (ENOMEM: the unmap would split a mapping
 * and the process is at vm.max_map_count) and then it is still mapped. */
int hk_os_unmap(void *addr, size_t size);

/* Gives the pages back to the OS but keeps the range mapped; the next touch
 * reads zeroes. Returns 0 or an errno value (EINVAL for locked pages, under
 * mlock or mlockall), and then the range, or part of it, still holds its
 * data: only 0 makes it clean. */
int hk_os_decommit(void *addr, size_t size);

/* Makes the pages readable and writable (`writable`) or inaccessible.
 * Returns 0 or an errno value (ENOMEM: the change would split a mapping
 * past vm.max_map_count) and then nothing changed. */
int hk_os_protect(void *addr, size_t size, int writable);

/* Asks the kernel to back the range with transparent huge pages (`want`)
 * or never to. Advice only: a kernel without THP refuses, and nothing
 * depends on the answer. */
void hk_os_advise_huge(void *addr, size_t size, int want);

/* vm.max_map_count, read from /proc without allocating; 0 if unknown. */
long hk_os_max_map_count(void);

/* A millisecond clock for purge delays; wraps every 49 days, so compare
 * differences, not values. */
uint32_t hk_os_now_ms(void);

/* Writes all of `len` bytes to fd 2 without allocating (async-signal-safe). */
void hk_os_write_stderr(const char *buf, size_t len);

#endif
