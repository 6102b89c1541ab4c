/* os.c: Linux implementation of the OS contract in internal/os.h. */
#define _GNU_SOURCE
#include "internal/os.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

void *hk_os_map_aligned(size_t size, size_t align) {
  int saved = errno;
  /* Over-map by the alignment and trim both ends: the kernel gives no
   * alignment guarantee beyond a page. */
  size_t span = size + align;
  if (span < size) {
    errno = ENOMEM;
    return NULL;
  }
  void *raw = mmap(NULL, span, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) {
    errno = ENOMEM;
    return NULL;
  }
  uintptr_t start = (uintptr_t)raw;
  uintptr_t aligned = (start + align - 1) & ~(uintptr_t)(align - 1);
  size_t head = aligned - start;
  size_t tail = span - head - size;
  /* Trimming the ends of a fresh mapping splits nothing, unless the kernel
   * merged it with a neighbour; if a trim is refused all the same, the
   * untouched slack stays mapped: address space, never memory. */
  if (head)
    (void)munmap(raw, head);
  if (tail)
    (void)munmap((void *)(aligned + size), tail);
  errno = saved;
  return (void *)aligned;
}

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4 /* Linux 5.7; older headers lack it */
#endif

int hk_os_move(void *old, size_t size, void *to) {
  int saved = errno;
  void *r = mremap(old, size, size,
                   MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, to);
  int rc = r == MAP_FAILED ? errno : 0;
  errno = saved;
  return rc;
}

int hk_os_unmap(void *addr, size_t size) {
  int saved = errno;
  int rc = munmap(addr, size) == 0 ? 0 : errno;
  errno = saved;
  return rc;
}

int hk_os_decommit(void *addr, size_t size) {
  int saved = errno;
  int rc = madvise(addr, size, MADV_DONTNEED) == 0 ? 0 : errno;
  errno = saved;
  return rc;
}

int hk_os_protect(void *addr, size_t size, int writable) {
  int saved = errno;
  int rc = mprotect(addr, size, writable ? PROT_READ | PROT_WRITE : PROT_NONE)
               == 0 ? 0 : errno;
  errno = saved;
  return rc;
}

void hk_os_advise_huge(void *addr, size_t size, int want) {
  int saved = errno;
  (void)madvise(addr, size, want ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
  errno = saved;
}

long hk_os_max_map_count(void) {
  int saved = errno;
  long v = 0;
  int fd = open("/proc/sys/vm/max_map_count", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    char buf[32];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    for (ssize_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; i++)
      v = v * 10 + (buf[i] - '0');
  }
  errno = saved;
  return v;
}

uint32_t hk_os_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (uint32_t)((uint64_t)ts.tv_sec * 1000u +
                    (uint64_t)ts.tv_nsec / 1000000u);
}

void hk_os_write_stderr(const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = write(2, buf, len);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return;
    }
    buf += n;
    len -= (size_t)n;
  }
}
