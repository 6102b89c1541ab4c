/* stats.c: process-wide counters and the functions that report them:
 * mallinfo/mallinfo2, malloc_stats and hakmem.h's extras. */
#define _GNU_SOURCE
#include "internal/stats.h"

#include <fcntl.h>
#include <malloc.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "hakmem.h"
#include "internal/api.h"
#include "internal/heap.h"
#include "internal/options.h"
#include "internal/os.h"
#include "internal/superslab.h"

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

void hk_stats_superslabs(int delta) {
  if (delta < 0) {
    hk_stats_sub(&hk_counters.superslabs, 1);
    return;
  }
  size_t now = atomic_fetch_add_explicit(&hk_counters.superslabs, 1,
                                         memory_order_relaxed) + 1;
  size_t peak = atomic_load_explicit(&hk_counters.peak_superslabs,
                                     memory_order_relaxed);
  while (now > peak &&
         !atomic_compare_exchange_weak_explicit(&hk_counters.peak_superslabs,
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
      .superslabs = load(&hk_counters.superslabs),
      .peak_superslabs = load(&hk_counters.peak_superslabs),
  };
  memcpy(stats, &s, size < sizeof s ? size : sizeof s);
  return 0;
}

// ---------------------------------------------------------------------------
// The report: built line by line in a stack buffer, written with write(2),
// since it runs at exit and from hakmem_stats_print without allocating.

struct out {
  int fd;
  char buf[256];
  size_t at;
};

static void put(struct out *o, const char *s) {
  size_t n = strlen(s);
  if (n > sizeof o->buf - o->at)
    n = sizeof o->buf - o->at;
  memcpy(o->buf + o->at, s, n);
  o->at += n;
}

static void put_num(struct out *o, uint64_t v) {
  char digits[24];
  size_t d = 0;
  do {
    digits[d++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  while (d && o->at < sizeof o->buf)
    o->buf[o->at++] = digits[--d];
}

static void end_line(struct out *o) {
  if (o->at < sizeof o->buf)
    o->buf[o->at++] = '\n';
  const char *p = o->buf;
  size_t n = o->at;
  while (n > 0) {
    ssize_t w = write(o->fd, p, n);
    if (w <= 0)
      break;
    p += w;
    n -= (size_t)w;
  }
  o->at = 0;
}

struct live_count {
  uint64_t live[HK_CLASS_COUNT];
};

/* Blocks out with the program, or freed by another thread and not yet
 * collected by the slab's owner: a slab's `used`. The owners run on while
 * this reads, so while other threads allocate the figure is approximate;
 * at exit it is exact. */
static void count_live(struct hk_slab *s, void *arg) {
  struct live_count *lc = arg;
  lc->live[hk_slab_class(s)] += hk_slab_used(s);
}

static void report(int fd) {
  struct out o = {.fd = fd, .at = 0};
  struct live_count lc;
  memset(&lc, 0, sizeof lc);
  hk_superslab_for_each_slab(count_live, &lc);
  uint64_t frees[HK_CLASS_COUNT], remote[HK_CLASS_COUNT];
  hk_heap_sum_frees(frees, remote);
  put(&o, "hakmem " PACKAGE_VERSION " statistics, pid ");
  put_num(&o, (uint64_t)getpid());
  end_line(&o);
  for (unsigned c = 0; c < HK_CLASS_COUNT; c++) {
    if (lc.live[c] == 0 && frees[c] == 0)
      continue;
    put(&o, "class ");
    put_num(&o, c);
    put(&o, " size ");
    put_num(&o, hk_class_size[c]);
    put(&o, ":");
    if (hk_options.stats) {
      /* Every malloc is back on its slab's list by now (freed), or still
       * counted in its slab's `used` (live). */
      put(&o, " allocs ");
      put_num(&o, frees[c] + lc.live[c]);
      put(&o, " frees ");
      put_num(&o, frees[c]);
      put(&o, " remote-frees ");
      put_num(&o, remote[c]);
    }
    put(&o, " live ");
    put_num(&o, lc.live[c]);
    end_line(&o);
  }
  if (!hk_options.stats) {
    put(&o, "(allocs, frees and remote frees are counted with HAKMEM_STATS=1)");
    end_line(&o);
  }
  put(&o, "superslabs: ");
  put_num(&o, load(&hk_counters.superslabs));
  put(&o, " (peak ");
  put_num(&o, load(&hk_counters.peak_superslabs));
  put(&o, ")");
  end_line(&o);
  put(&o, "mapped: ");
  put_num(&o, load(&hk_counters.mapped));
  put(&o, " (peak ");
  put_num(&o, load(&hk_counters.peak_mapped));
  put(&o, ")");
  end_line(&o);
  put(&o, "large blocks: ");
  put_num(&o, load(&hk_counters.large_count));
  put(&o, " live, ");
  put_num(&o, load(&hk_counters.large_bytes));
  put(&o, " bytes, ");
  put_num(&o, load(&hk_counters.large_cached_bytes));
  put(&o, " cached, ");
  put_num(&o, load(&hk_counters.large_unguarded));
  put(&o, " unguarded");
  end_line(&o);
}

HK_API_FN(void, hakmem_stats_print, (int fd)) { report(fd); }

/* HAKMEM_STATS: the report at exit. A preloaded library's destructor runs
 * after the program's own, so the report sees the program's last frees. */
__attribute__((destructor)) static void report_at_exit(void) {
  if (!hk_options.stats)
    return;
  int fd = 2;
  if (hk_options.stats_file) {
    fd = open(hk_options.stats_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
              0644);
    if (fd < 0) {
      static const char msg[] = "hakmem: cannot open HAKMEM_STATS_FILE, "
                                "writing statistics to stderr\n";
      hk_os_write_stderr(msg, sizeof msg - 1);
      fd = 2;
    }
  }
  report(fd);
  if (fd != 2)
    close(fd);
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
