/* stats.c: process-wide counters and the functions that report them:
 * mallinfo/mallinfo2, malloc_stats and hakmem.h's extras. */
#define _GNU_SOURCE
#include "internal/stats.h"

#include <malloc.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "hakmem.h"
#include "internal/api.h"
#include "internal/os.h"

struct hk_counters hk_counters;

void hk_stats_mapped(size_t bytes) {
  size_t now = atomic_fetch_add_explicit(&hk_counters.mapped, bytes,
                                         memory_order_relaxed) + bytes;
  size_t peak = atomic_load_explicit(&hk_counters.peak_mapped,
                                     memory_order_relaxed);
  while (now > peak &&
         !atomic_compare_exchange_weak_explicit(&hk_counters.peak_mapped,
                                                &peak, now,
                                                memory_order_relaxed,
                                                memory_order_relaxed)) {
  }
}

void hk_stats_unmapped(size_t bytes) {
  hk_stats_sub(&hk_counters.mapped, bytes);
}

static size_t load(_Atomic size_t *c) {
  return atomic_load_explicit(c, memory_order_relaxed);
}

HK_API_FN(int, hakmem_stats_get, (struct hakmem_stats *stats, size_t size)) {
  if (!stats)
    return -1;
  struct hakmem_stats s = {
      .mapped_bytes = load(&hk_counters.mapped),
      .peak_mapped_bytes = load(&hk_counters.peak_mapped),
      .slab_bytes = load(&hk_counters.slab_bytes),
      .large_bytes = load(&hk_counters.large_bytes),
      .large_count = load(&hk_counters.large_count),
      .large_cached_bytes = load(&hk_counters.large_cached_bytes),
  };
  memcpy(stats, &s, size < sizeof s ? size : sizeof s);
  return 0;
}

static void put_line(int fd, const char *label, size_t v) {
  char buf[96];
  size_t n = strlen(label);
  memcpy(buf, label, n);
  char digits[24];
  size_t d = 0;
  do {
    digits[d++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  while (d)
    buf[n++] = digits[--d];
  buf[n++] = '\n';
  while (n > 0) {
    ssize_t w = write(fd, buf, n);
    if (w <= 0)
      return;
    n -= (size_t)w;
  }
}

HK_API_FN(void, hakmem_stats_print, (int fd)) {
  struct hakmem_stats s;
  HK_API(hakmem_stats_get)(&s, sizeof s);
  put_line(fd, "hakmem: mapped bytes:        ", s.mapped_bytes);
  put_line(fd, "hakmem: peak mapped bytes:   ", s.peak_mapped_bytes);
  put_line(fd, "hakmem: slab bytes:          ", s.slab_bytes);
  put_line(fd, "hakmem: large block bytes:   ", s.large_bytes);
  put_line(fd, "hakmem: large blocks:        ", s.large_count);
  put_line(fd, "hakmem: large cached bytes:  ", s.large_cached_bytes);
}

HK_API_FN(unsigned, hakmem_version, (void)) {
  return (HAKMEM_VERSION_MAJOR << 16) | (HAKMEM_VERSION_MINOR << 8) |
         HAKMEM_VERSION_PATCH;
}

HK_API_FN(const char *, hakmem_version_string, (void)) { return PACKAGE_VERSION; }

/* mallinfo's "in use" is slab-granular: counting every block would cost the
 * fast path a counter update, which release builds do not pay. */
HK_API_FN(struct mallinfo2, mallinfo2, (void)) {
  struct mallinfo2 mi;
  memset(&mi, 0, sizeof mi);
  size_t mapped = load(&hk_counters.mapped);
  size_t in_use = load(&hk_counters.slab_bytes) + load(&hk_counters.large_bytes);
  mi.arena = mapped;
  mi.hblks = load(&hk_counters.large_count);
  mi.hblkhd = load(&hk_counters.large_bytes);
  mi.uordblks = in_use;
  mi.fordblks = mapped > in_use ? mapped - in_use : 0;
  mi.keepcost = load(&hk_counters.large_cached_bytes);
  return mi;
}

static int clamp(size_t v) { return v > INT32_MAX ? INT32_MAX : (int)v; }

HK_API_FN(struct mallinfo, mallinfo, (void)) {
  struct mallinfo2 m2 = HK_API(mallinfo2)();
  struct mallinfo mi;
  memset(&mi, 0, sizeof mi);
  mi.arena = clamp(m2.arena);
  mi.hblks = clamp(m2.hblks);
  mi.hblkhd = clamp(m2.hblkhd);
  mi.uordblks = clamp(m2.uordblks);
  mi.fordblks = clamp(m2.fordblks);
  mi.keepcost = clamp(m2.keepcost);
  return mi;
}

HK_API_FN(void, malloc_stats, (void)) { HK_API(hakmem_stats_print)(2); }
