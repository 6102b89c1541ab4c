/* os.c: Linux implementation of the OS contract in internal/os.h. */
#define _GNU_SOURCE
#include "internal/os.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000 /* Linux 4.17; older headers lack it */
#endif

static void *map_anon(void *hint, size_t size, int flags) {
  void *p = mmap(hint, size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | flags, -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

/* Address space is what a tight RLIMIT_AS runs out of, so an aligned
 * mapping asks for no more than it keeps whenever it can: first `size`
 * exactly, kept if the kernel happened to align it; else the aligned
 * places just below and just above where the kernel put it, asked for by
 * address (top-down placement leaves the one below free as a rule), never
 * taking over a mapping (MAP_FIXED_NOREPLACE; a kernel older than 4.17
 * takes the address as a hint, and a mapping it puts elsewhere is given
 * back). Only then the classic over-map by align - page, trimmed at both
 * ends: the largest span needed at any one time is size + align - page,
 * and what stays mapped is `size`. */
void *hk_os_map_aligned(size_t size, size_t align) {
  int saved = errno;
  uintptr_t mask = (uintptr_t)align - 1;
  void *raw = map_anon(NULL, size, 0);
  if (raw && ((uintptr_t)raw & mask) == 0) {
    errno = saved;
    return raw;
  }
  if (!raw) {
    errno = ENOMEM; /* a larger span would be refused too */
    return NULL;
  }
  {
    uintptr_t below = (uintptr_t)raw & ~mask;
    uintptr_t tries[2] = {below, below + align};
    (void)munmap(raw, size);
    for (int i = 0; i < 2; i++) {
      if (tries[i] == 0 || tries[i] + size < tries[i])
        continue;
      void *p = map_anon((void *)tries[i], size, MAP_FIXED_NOREPLACE);
      if (p == (void *)tries[i]) {
        errno = saved;
        return p;
      }
      if (p)
        (void)munmap(p, size);
    }
  }
  size_t span = size + align - HK_PAGE_SIZE;
  if (span < size) {
    errno = ENOMEM;
    return NULL;
  }
  raw = map_anon(NULL, span, 0);
  if (!raw) {
    errno = ENOMEM;
    return NULL;
  }
  uintptr_t start = (uintptr_t)raw;
  uintptr_t aligned = (start + mask) & ~mask;
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
