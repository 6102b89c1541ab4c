/* large.c: the large tier (see internal/large.h): blocks are page runs in
 * chunks (internal/large_chunk.h), under one lock. */
#define _GNU_SOURCE
#include "internal/large.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "internal/init.h"
#include "internal/large_chunk.h"
#include "internal/options.h"
#include "internal/region_map.h"
#include "internal/report.h"
#include "internal/stats.h"

static pthread_mutex_t large_lock = PTHREAD_MUTEX_INITIALIZER;

static size_t pages_for(size_t size) {
  return ((size ? size : 1) + HK_PAGE_SIZE - 1) >> HK_PAGE_SHIFT;
}

/* The bytes a live block's page word gives the program. */
static size_t usable_bytes(uint32_t w) {
  size_t pages = w & HK_PAGE_LEN_MASK;
  if (w & HK_PAGE_GUARD)
    pages -= 2;
  return pages << HK_PAGE_SHIFT;
}

/* Hardened mode puts an inaccessible page before and after each block, so
 * that a linear overflow or underflow faults at once. */
static void set_guards(struct hk_large_chunk *c, uint32_t page, uint32_t pages,
                       int prot) {
  mprotect((void *)hk_chunk_addr(c, page), HK_PAGE_SIZE, prot);
  mprotect((void *)hk_chunk_addr(c, page + pages - 1), HK_PAGE_SIZE, prot);
}

void *hk_large_alloc(size_t size, size_t align, int zero) {
  hk_init(); /* the knobs decide the cache size; a large block may be first */
  if (size > SIZE_MAX / 4 || align > SIZE_MAX / 4) {
    errno = ENOMEM;
    return NULL;
  }
  int guard = hk_options.hardened;
  size_t pages = pages_for(size) + (guard ? 2 : 0);
  size_t offset = guard ? HK_PAGE_SIZE : 0;
  struct hk_large_chunk *c;
  uint32_t page;
  int dirty;
  pthread_mutex_lock(&large_lock);
  hk_extent_purge(0);
  int rc = hk_extent_alloc(pages, align < HK_PAGE_SIZE ? HK_PAGE_SIZE : align,
                           offset, &c, &page, &dirty);
  if (rc == 0 && guard)
    hk_extent_set_flags(c, page, HK_PAGE_GUARD);
  pthread_mutex_unlock(&large_lock);
  if (rc != 0) {
    errno = ENOMEM;
    return NULL;
  }
  if (guard)
    set_guards(c, page, (uint32_t)pages, PROT_NONE);
  void *user = (void *)(hk_chunk_addr(c, page) + offset);
  size_t usable = (pages - (guard ? 2 : 0)) << HK_PAGE_SHIFT;
  hk_stats_add(&hk_counters.large_bytes, usable);
  hk_stats_add(&hk_counters.large_count, 1);
  /* Clean space reads as zero but for the free extent's record at its
   * start (with guards, that is in the guard page). */
  if (zero)
    memset(user, 0,
           dirty   ? size
           : guard ? 0
                   : (size < HK_EXTENT_RECORD_BYTES ? size
                                                    : HK_EXTENT_RECORD_BYTES));
  return user;
}

/* With the lock held: the page word of the live block `p`, or 0 after
 * unlocking and reporting misuse. The region map is asked again under the
 * lock: the program's pointer was looked up before it, and a chunk is
 * unmapped (under the lock) only when nothing in it is live, so a stale
 * pointer may have lost its chunk in between. */
static uint32_t live_or_report(struct hk_large_chunk *c, const void *p,
                               const char *fn) {
  const char *why = "invalid pointer";
  if (hk_region_lookup((uintptr_t)p) == &c->seg) {
    uint32_t w = hk_chunk_live_word(c, (uintptr_t)p);
    if (w)
      return w;
    why = hk_chunk_misuse(c, (uintptr_t)p);
  }
  pthread_mutex_unlock(&large_lock);
  hk_report_misuse(fn, why, p);
  return 0;
}

size_t hk_large_usable(struct hk_large_chunk *c, const void *p,
                       const char *fn) {
  pthread_mutex_lock(&large_lock);
  uint32_t w = live_or_report(c, p, fn);
  if (!w)
    return 0;
  pthread_mutex_unlock(&large_lock);
  return usable_bytes(w);
}

void hk_large_free(struct hk_large_chunk *c, void *p, const char *fn) {
  /* Checked under the lock: two threads freeing the same block must not
   * both get past it. */
  pthread_mutex_lock(&large_lock);
  uint32_t w = live_or_report(c, p, fn);
  if (!w)
    return;
  uint32_t page = hk_chunk_page(c, (uintptr_t)p);
  if (w & HK_PAGE_GUARD) {
    page--;
    set_guards(c, page, w & HK_PAGE_LEN_MASK, PROT_READ | PROT_WRITE);
  }
  hk_extent_free(c, page, 0);
  hk_extent_purge(0);
  pthread_mutex_unlock(&large_lock);
  hk_stats_sub(&hk_counters.large_bytes, usable_bytes(w));
  hk_stats_sub(&hk_counters.large_count, 1);
}

/* Blocks from this size up that cannot grow in place move their pages
 * (mremap) instead of copying them: a copy costs time in proportion to the
 * size and holds both copies in memory at once, a move does neither. Below
 * it, copying wins: the old block's pages stay resident for the next
 * request, where a move leaves clean space that faults again when reused
 * (bench/realloc-grow, vectors up to 4 MiB: 0.16 s with moves from 2 MiB,
 * 0.08 s without). Each move also splits a kernel mapping, which at this
 * size stays rare. */
#define HK_MOVE_MIN_PAGES ((16u << 20) >> HK_PAGE_SHIFT)

/* Moves the live block at `page` (`have` pages) into a new block of `want`
 * pages; the new pointer, or NULL (nothing changed). */
static void *move_block(struct hk_large_chunk *c, uint32_t page,
                        uint32_t have, uint32_t want) {
  struct hk_large_chunk *to;
  uint32_t to_page;
  int dirty;
  static _Atomic int unsupported; /* the kernel predates MREMAP_DONTUNMAP */
  if (atomic_load_explicit(&unsupported, memory_order_relaxed))
    return NULL;
  pthread_mutex_lock(&large_lock);
  int rc = hk_extent_alloc(want, HK_PAGE_SIZE, 0, &to, &to_page, &dirty);
  pthread_mutex_unlock(&large_lock);
  if (rc != 0)
    return NULL;
  void *from = (void *)hk_chunk_addr(c, page);
  void *dest = (void *)hk_chunk_addr(to, to_page);
  rc = hk_os_move(from, (size_t)have << HK_PAGE_SHIFT, dest);
  if (rc == EINVAL)
    atomic_store_explicit(&unsupported, 1, memory_order_relaxed);
  int moved = rc == 0;
  pthread_mutex_lock(&large_lock);
  /* The old pages are gone: the old block's space is clean. */
  if (moved)
    hk_extent_free(c, page, 1);
  else
    hk_extent_free(to, to_page, !dirty);
  pthread_mutex_unlock(&large_lock);
  return moved ? dest : NULL;
}

void *hk_large_resize(struct hk_large_chunk *c, void *p, size_t size) {
  if (size > SIZE_MAX / 4)
    return NULL;
  uint32_t want = (uint32_t)(pages_for(size) < HK_PAGE_LEN_MASK
                                 ? pages_for(size)
                                 : HK_PAGE_LEN_MASK);
  pthread_mutex_lock(&large_lock);
  uint32_t w = hk_region_lookup((uintptr_t)p) == &c->seg
                   ? hk_chunk_live_word(c, (uintptr_t)p)
                   : 0;
  if (!w || (w & HK_PAGE_GUARD)) {
    pthread_mutex_unlock(&large_lock);
    return NULL;
  }
  uint32_t page = hk_chunk_page(c, (uintptr_t)p);
  uint32_t have = w & HK_PAGE_LEN_MASK;
  void *result = p;
  if (want <= have) {
    /* Only a block that lost more than half its pages gives the tail
     * back: a buffer that shrinks a little will likely grow again. */
    if (want < have / 2)
      hk_extent_shrink(c, page, want);
    else
      want = have;
  } else if (!hk_extent_grow(c, page, want)) {
    pthread_mutex_unlock(&large_lock);
    result = have >= HK_MOVE_MIN_PAGES ? move_block(c, page, have, want) : NULL;
    if (!result)
      return NULL;
    hk_stats_add(&hk_counters.large_bytes, (size_t)(want - have) << HK_PAGE_SHIFT);
    return result;
  }
  pthread_mutex_unlock(&large_lock);
  if (want != have) {
    size_t before = (size_t)have << HK_PAGE_SHIFT;
    size_t after = (size_t)want << HK_PAGE_SHIFT;
    hk_stats_add(&hk_counters.large_bytes, after);
    hk_stats_sub(&hk_counters.large_bytes, before);
  }
  return result;
}

size_t hk_large_trim(void) {
  pthread_mutex_lock(&large_lock);
  size_t released = hk_extent_purge(1);
  pthread_mutex_unlock(&large_lock);
  return released;
}

void hk_large_fork_prepare(void) { pthread_mutex_lock(&large_lock); }
void hk_large_fork_parent(void) { pthread_mutex_unlock(&large_lock); }
void hk_large_fork_child(void) { pthread_mutex_init(&large_lock, NULL); }
