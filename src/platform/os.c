/* os.c: Linux implementation of the OS contract in platform/os.h: the
 * platform facts (page size, address bits), then the calls. */
#define _GNU_SOURCE
#include "platform/os.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

// ---------------------------------------------------------------------------
// Platform facts

/* The most address bits a mapping made without a hint can reach on each
 * architecture, whatever the kernel's configuration. Larger address spaces
 * (x86-64's 5-level paging, arm64's 52-bit VAs, ppc64's 4 PiB) are opened
 * to a process only by an mmap hint above the default window, which hakmem
 * never gives: its mappings stay below the window even when the program's
 * do not. Overstating costs nothing until a mapping really lands above
 * 2^48 (the region map's third level is mapped then); understating would
 * make that mapping unusable. */
#if defined(__x86_64__)
#define HK_ARCH_ADDRESS_BITS 47
#elif defined(__aarch64__)
#define HK_ARCH_ADDRESS_BITS 48
#elif defined(__powerpc64__)
#define HK_ARCH_ADDRESS_BITS 47 /* the 128 TiB default window */
#elif defined(__riscv) && __riscv_xlen == 64
/* Linux 6.6 and later keep hintless mappings in sv48's range on sv57
 * hardware; earlier kernels hand out all of sv57's. */
#define HK_ARCH_ADDRESS_BITS 56
#elif defined(__loongarch64)
/* No hint gate: the limit is the CPU's (48 bits on every LoongArch CPU so
 * far); a larger one shows in the stack check below. */
#define HK_ARCH_ADDRESS_BITS 48
#elif defined(__s390x__)
/* s390x adds page table levels when a mapping outgrows them: a hintless
 * mmap goes past 4 TiB, up to the whole 64-bit space, once the space below
 * is taken. */
#define HK_ARCH_ADDRESS_BITS 64
#else
#define HK_ARCH_ADDRESS_BITS 64 /* unknown: all of it */
#endif

_Static_assert(sizeof(uintptr_t) == 8, "hakmem supports 64-bit targets only");

_Atomic uint32_t hk_os_facts;
_Atomic unsigned long hk_os_misaligned;
/* Set by the first mapping: from then on the facts must not change. */
static _Atomic int mapped_any;

static uint32_t facts_word(unsigned page_shift, unsigned address_bits) {
  return (uint32_t)page_shift | (uint32_t)address_bits << 8;
}

static unsigned bits_of(uintptr_t a) {
  return a ? 64u - (unsigned)__builtin_clzll((unsigned long long)a) : 0u;
}

static int page_size_ok(size_t page) {
  return page >= HK_PAGE_SIZE_MIN && page <= HK_PAGE_SIZE_MAX &&
         (page & (page - 1)) == 0;
}

__attribute__((cold, noreturn)) static void unsupported_page(void) {
  static const char msg[] =
      "hakmem: unsupported page size (hakmem needs 4 KiB to 64 KiB pages)\n";
  hk_os_write_stderr(msg, sizeof msg - 1);
  abort();
}

uint32_t hk_os_facts_init(void) {
  /* getauxval reads the vector the kernel passed at exec: it neither
   * allocates nor depends on anything being initialised. */
  size_t page = (size_t)getauxval(AT_PAGESZ);
  if (page == 0)
    page = (size_t)sysconf(_SC_PAGESIZE);
  if (!page_size_ok(page))
    unsupported_page();
  /* AT_RANDOM points into the initial stack, which the kernel placed at
   * the top of the range hintless mappings use (s390x aside, which is
   * counted at 64 anyway): a kernel that hands out more bits than the
   * architecture's usual shows it there. */
  unsigned bits = bits_of((uintptr_t)getauxval(AT_RANDOM));
  if (bits < HK_ARCH_ADDRESS_BITS)
    bits = HK_ARCH_ADDRESS_BITS;
  uint32_t w = facts_word(bits_of(page) - 1, bits);
  /* A racing first call computes the same word; an injected one wins. */
  uint32_t expected = 0;
  if (!atomic_compare_exchange_strong_explicit(&hk_os_facts, &expected, w,
                                               memory_order_relaxed,
                                               memory_order_relaxed))
    return expected;
  return w;
}

int hk_os_inject(size_t page_size, unsigned address_bits) {
  uint32_t w = hk_os_facts_word();
  if (page_size == 0)
    page_size = (size_t)1 << (w & 0xffu);
  if (address_bits == 0)
    address_bits = (w >> 8) & 0xffu;
  if (!page_size_ok(page_size) || address_bits < 39 || address_bits > 64)
    return EINVAL;
  if (atomic_load_explicit(&mapped_any, memory_order_relaxed))
    return EBUSY;
  atomic_store_explicit(&hk_os_facts,
                        facts_word(bits_of(page_size) - 1, address_bits),
                        memory_order_relaxed);
  return 0;
}

/* Whether [addr, addr + size) is whole pages; counts it if not. */
static int whole_pages(uintptr_t addr, size_t size) {
  if (((addr | size) & (hk_page_size() - 1)) == 0)
    return 1;
  atomic_fetch_add_explicit(&hk_os_misaligned, 1, memory_order_relaxed);
  return 0;
}

// ---------------------------------------------------------------------------
// Calls

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
  if (!whole_pages(align, size) || align == 0 || (align & (align - 1))) {
    errno = ENOMEM;
    return NULL;
  }
  atomic_store_explicit(&mapped_any, 1, memory_order_relaxed);
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
  size_t span = size + align - hk_page_size();
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
  if (!whole_pages((uintptr_t)old | (uintptr_t)to, size))
    return EINVAL;
  int saved = errno;
  void *r = mremap(old, size, size,
                   MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, to);
  int rc = r == MAP_FAILED ? errno : 0;
  errno = saved;
  return rc;
}

int hk_os_unmap(void *addr, size_t size) {
  if (!whole_pages((uintptr_t)addr, size))
    return EINVAL;
  int saved = errno;
  int rc = munmap(addr, size) == 0 ? 0 : errno;
  errno = saved;
  return rc;
}

int hk_os_decommit(void *addr, size_t size) {
  if (!whole_pages((uintptr_t)addr, size))
    return EINVAL;
  int saved = errno;
  int rc = madvise(addr, size, MADV_DONTNEED) == 0 ? 0 : errno;
  errno = saved;
  return rc;
}

int hk_os_protect(void *addr, size_t size, int writable) {
  if (!whole_pages((uintptr_t)addr, size))
    return EINVAL;
  int saved = errno;
  int rc = mprotect(addr, size, writable ? PROT_READ | PROT_WRITE : PROT_NONE)
               == 0 ? 0 : errno;
  errno = saved;
  return rc;
}

void hk_os_advise_huge(void *addr, size_t size, int want) {
  if (!whole_pages((uintptr_t)addr, size))
    return;
  int saved = errno;
  (void)madvise(addr, size, want ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
  errno = saved;
}

/* The decimal number a /proc or /sys file starts with, read without
 * allocating; 0 if there is none. */
static long read_number(const char *path) {
  int saved = errno;
  long v = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
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

size_t hk_os_address_space_limit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_AS, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY ||
      rl.rlim_cur > SIZE_MAX)
    return SIZE_MAX;
  return (size_t)rl.rlim_cur;
}

long hk_os_max_map_count(void) {
  return read_number("/proc/sys/vm/max_map_count");
}

size_t hk_os_huge_page_size(void) {
  /* 1: not read yet. Racing first readers read the same file. */
  static _Atomic size_t size = 1;
  size_t s = atomic_load_explicit(&size, memory_order_relaxed);
  if (s == 1) {
    long v = read_number("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size");
    s = v > 0 && ((size_t)v & ((size_t)v - 1)) == 0 ? (size_t)v : 0;
    atomic_store_explicit(&size, s, memory_order_relaxed);
  }
  return s;
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
