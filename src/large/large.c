/* large.c: the large tier (see large/large.h): blocks are page runs in
 * chunks (large/large_chunk.h), under one lock.
 *
 * System calls stay out of the lock where that is cheap: a new chunk is
 * mapped, pages are given back (madvise) and empty chunks are unmapped
 * with the lock dropped, so that other threads' large mallocs and frees
 * are not queued behind the kernel. What remains under it is hardened
 * mode's mprotect of guard pages: the kernel serialises those on the
 * process's mapping lock anyway, and doing them under ours keeps the
 * guard mapping count exact.
 *
 * Signal handlers. A handler may malloc or free a large block while it
 * interrupted this thread inside the large tier, holding the lock or
 * about to; waiting for the lock would then wait forever. A per-thread
 * depth counter tells when that may be the case; the handler's call then
 * only tries the lock, and if it cannot have it, gets by without:
 *   - malloc maps a chunk of its own for the block (lock-free, as the
 *     region map is) and publishes it on a lock-free stack that the next
 *     holder of the lock files into the tier;
 *   - free puts the pointer in a fixed table of deferred frees, which the
 *     next holder of the lock frees with every check a free makes (a bad
 *     pointer is reported then); nothing is read from the block or its
 *     chunk in the handler, so a stale pointer cannot make it fault;
 *   - malloc_usable_size reads the block's page word (an atomic) without
 *     the lock, realloc moves the block by malloc, copy and free, and
 *     malloc_trim does nothing.
 * The lock is taken without waiting on those paths only; everywhere else
 * nothing changes. */
#define _GNU_SOURCE
#include "large/large.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "base/counters.h"
#include "large/large_chunk.h"
#include "large/large_extent.h"
#include "large/large_guard.h"
#include "large/large_purge.h"
#include "base/options.h"
#include "base/region_map.h"
#include "base/report.h"

static pthread_mutex_t large_lock = PTHREAD_MUTEX_INITIALIZER;

/* How deep this thread is in lock_take .. lock_drop: above 0, it holds
 * the lock or is waiting for it, and must not wait again. */
static __thread unsigned large_depth __attribute__((tls_model("initial-exec")));

/* Work handed over by calls that could not take the lock. */
static struct hk_atomic_stack pending_chunks;
#define HK_DEFERRED_FREES 256
static _Atomic(void *) deferred[HK_DEFERRED_FREES];
static _Atomic int pending_work;

static void drain(void);

/* Takes the lock, or, where this thread may hold it already, only tries
 * to; 0 if it could not. */
static int lock_take(const char *fn) {
  if (large_depth++ == 0) {
    pthread_mutex_lock(&large_lock);
  } else if (pthread_mutex_trylock(&large_lock) != 0) {
    large_depth--;
    return 0;
  }
  drain();
  hk_extent_fn = fn;
  return 1;
}

static void lock_drop(void) {
  pthread_mutex_unlock(&large_lock);
  large_depth--;
}

static size_t pages_for(size_t size) {
  return ((size ? size : 1) + hk_page_size() - 1) >> hk_page_shift();
}

/* The bytes a live block's page word gives the program. */
static size_t usable_bytes(uint32_t w) {
  size_t pages = w & HK_PAGE_LEN_MASK;
  if (w & HK_PAGE_GUARD)
    pages -= 2;
  return pages << hk_page_shift();
}

/* Ends a locked operation: purges what is due, with the lock dropped
 * around the madvise calls (not when nested: a purge must take the lock
 * again to finish, and a nested call cannot wait for it), then drops the
 * lock and unmaps the chunks left empty. No extent is tried twice in one
 * call (one the kernel refused goes back on the list). With `all`, every
 * dirty extent is tried, and every empty chunk unmapped. Returns the
 * bytes given back. */
static size_t finish(int all) {
  size_t released = 0;
  size_t limit = hk_dirty_extents();
  while (large_depth == 1 && limit > 0) {
    size_t n = hk_purge_take(all, limit);
    if (n == 0)
      break;
    limit -= n;
    const char *fn = hk_extent_fn;
    lock_drop();
    hk_purge_run();
    lock_take(fn); /* depth 0: waits */
    released += hk_purge_finish();
  }
  if (all)
    hk_unmap_empty();
  struct hk_stack dead = hk_take_unmap_list();
  lock_drop();
  return released + hk_unmap_chunks(dead);
}

/* With the lock held, and held again on return: a live extent, from free
 * space or from a new chunk. */
static int get_extent(size_t pages, size_t align, size_t offset,
                      struct hk_large_chunk **c, uint32_t *page, uint32_t *lo,
                      uint32_t *hi) {
  for (int round = 0;; round++) {
    if (hk_extent_alloc(pages, align, offset, c, page, lo, hi) == 0)
      return 0;
    /* No free space fits: a new chunk, mapped without the lock unless
     * nested (the lock could not be waited for again). */
    const char *fn = hk_extent_fn;
    int drop = large_depth == 1;
    if (drop)
      lock_drop();
    struct hk_large_chunk *n = hk_chunk_create(pages, align, offset, page);
    if (drop)
      lock_take(fn);
    if (n) {
      hk_chunk_file(n);
      *c = n;
      *lo = *hi = 0;
      return 0;
    }
    /* Out of address space: what is kept goes back, and chunks left
     * empty are unmapped, before trying once more. */
    if (round > 0 || !drop)
      return ENOMEM;
    finish(1);
    lock_take(fn);
  }
}

void *hk_large_alloc(size_t size, size_t align, int zero) {
  if (size > SIZE_MAX / 4 || align > SIZE_MAX / 4) {
    errno = ENOMEM;
    return NULL;
  }
  /* Hardened mode puts an inaccessible page before and after each block,
   * so that a linear overflow or underflow faults at once, as long as the
   * mapping budget lasts; a block beyond it is laid out plainly. */
  int guard = hk_options.hardened;
  if (guard && !hk_guard_room()) {
    guard = 0;
    hk_counters_add(&hk_counters.large_unguarded, 1);
  }
  size_t pages = pages_for(size) + (guard ? 2 : 0);
  size_t offset = guard ? hk_page_size() : 0;
  if (align < hk_page_size())
    align = hk_page_size();
  struct hk_large_chunk *c;
  uint32_t page, lo = 0, hi = 0;
  if (lock_take("malloc")) {
    int rc = get_extent(pages, align, offset, &c, &page, &lo, &hi);
    if (rc == 0 && guard)
      hk_extent_guard(c, page);
    finish(0);
    if (rc != 0) {
      errno = ENOMEM;
      return NULL;
    }
    hk_chunk_advise_block(c, (char *)hk_chunk_addr(c, page) + offset,
                          (pages - (guard ? 2 : 0)) << hk_page_shift(), zero);
  } else {
    /* Nested in this thread's own large-tier call (a signal handler):
     * a chunk of its own, filed later by whoever takes the lock next. */
    c = hk_chunk_create(pages, align, offset, &page);
    if (!c) {
      errno = ENOMEM;
      return NULL;
    }
    if (guard)
      hk_extent_guard(c, page);
    hk_atomic_stack_push(&pending_chunks, c, HK_CHUNK_STACK);
    atomic_store_explicit(&pending_work, 1, memory_order_release);
  }
  char *user = (char *)hk_chunk_addr(c, page) + offset;
  size_t usable = (pages - (guard ? 2 : 0)) << hk_page_shift();
  hk_counters_add(&hk_counters.large_bytes, usable);
  hk_counters_add(&hk_counters.large_count, 1);
  /* Only pages that may hold old data need zeroing: the rest of free
   * space reads as zero (its records are out of band), so a calloc
   * served from clean space, or from dirty space joined with clean,
   * commits no page it does not write. */
  if (zero && hi > lo) {
    char *from = (char *)hk_chunk_addr(c, page + lo);
    char *to = (char *)hk_chunk_addr(c, page + hi);
    if (from < user)
      from = user;
    if (to > user + size)
      to = user + size;
    if (to > from)
      memset(from, 0, (size_t)(to - from));
  }
  return user;
}

/* Frees the live block `p` (page word `w`) of `c`, with the lock held. */
static void free_block(struct hk_large_chunk *c, void *p, uint32_t w) {
  uint32_t page = hk_chunk_page(c, (uintptr_t)p);
  hk_chunk_note_freed(c, page);
  if (w & HK_PAGE_GUARD)
    page--;
  hk_extent_free(c, page, 0, w & HK_PAGE_LEN_MASK);
  hk_counters_sub(&hk_counters.large_bytes, usable_bytes(w));
  hk_counters_sub(&hk_counters.large_count, 1);
}

/* With the lock held: files the chunks and frees the blocks that calls
 * unable to take the lock handed over. A deferred pointer gets the checks
 * free() makes, and is reported (for free()) if it fails them. */
static void drain(void) {
  if (!atomic_load_explicit(&pending_work, memory_order_relaxed) ||
      !atomic_exchange_explicit(&pending_work, 0, memory_order_acquire))
    return;
  struct hk_stack filed = hk_atomic_stack_take(&pending_chunks);
  struct hk_large_chunk *c;
  while ((c = hk_stack_pop(&filed, HK_CHUNK_STACK)) != NULL)
    hk_chunk_file(c);
  for (unsigned i = 0; i < HK_DEFERRED_FREES; i++) {
    if (!atomic_load_explicit(&deferred[i], memory_order_relaxed))
      continue;
    void *p = atomic_exchange_explicit(&deferred[i], NULL, memory_order_acquire);
    if (!p)
      continue;
    hk_extent_fn = "free";
    struct hk_mapping *mapping = hk_region_lookup((uintptr_t)p);
    const char *why = "invalid pointer";
    if (mapping && mapping->kind == HK_MAPPING_LARGE) {
      struct hk_large_chunk *pc = (struct hk_large_chunk *)mapping;
      uint32_t w = hk_chunk_live_word(pc, (uintptr_t)p);
      if (w) {
        free_block(pc, p, w);
        continue;
      }
      why = hk_chunk_misuse(pc, (uintptr_t)p);
    }
    hk_report_misuse("free", why, p); /* returns with HAKMEM_INVALID_FREE=warn */
  }
}

/* With the lock held: the page word of the live block `p`, or 0 after
 * unlocking and reporting misuse. The region map is asked again under the
 * lock: the program's pointer was looked up before it, and a chunk is
 * retired (under the lock) only when nothing in it is live, so a stale
 * pointer may have lost its chunk in between. */
static uint32_t live_or_report(struct hk_large_chunk *c, const void *p,
                               const char *fn) {
  const char *why = "invalid pointer";
  if (hk_region_lookup((uintptr_t)p) == &c->mapping) {
    uint32_t w = hk_chunk_live_word(c, (uintptr_t)p);
    if (w)
      return w;
    why = hk_chunk_misuse(c, (uintptr_t)p);
  }
  lock_drop();
  hk_report_misuse(fn, why, p);
  return 0;
}

size_t hk_large_usable(struct hk_large_chunk *c, const void *p,
                       const char *fn) {
  if (!lock_take(fn)) {
    /* Nested: the page words are atomics, and a live block's chunk stays
     * mapped while it is live. */
    const char *why = "invalid pointer";
    if (hk_region_lookup((uintptr_t)p) == &c->mapping) {
      uint32_t w = hk_chunk_live_word(c, (uintptr_t)p);
      if (w)
        return usable_bytes(w);
      why = hk_chunk_misuse(c, (uintptr_t)p);
    }
    hk_report_misuse(fn, why, p);
    return 0;
  }
  uint32_t w = live_or_report(c, p, fn);
  if (!w)
    return 0;
  lock_drop();
  return usable_bytes(w);
}

void hk_large_free(struct hk_large_chunk *c, void *p, const char *fn) {
  /* Checked under the lock: two threads freeing the same block must not
   * both get past it. */
  if (!lock_take(fn)) {
    /* Nested: the next holder of the lock frees it. With the table full
     * (256 frees from handlers before any call took the lock) the block
     * is left allocated: a leak, where waiting would be a deadlock. */
    for (unsigned i = 0; i < HK_DEFERRED_FREES; i++) {
      void *expected = NULL;
      if (atomic_compare_exchange_strong_explicit(&deferred[i], &expected, p,
                                                  memory_order_release,
                                                  memory_order_relaxed)) {
        atomic_store_explicit(&pending_work, 1, memory_order_release);
        return;
      }
    }
    return;
  }
  uint32_t w = live_or_report(c, p, fn);
  if (!w)
    return;
  free_block(c, p, w);
  finish(0);
}

/* Blocks from this size up that cannot grow in place move their pages
 * (mremap) instead of copying them: a copy costs time in proportion to the
 * size and holds both copies in memory at once, a move does neither. Below
 * it, copying wins: the old block's pages stay resident for the next
 * request, where a move leaves clean space that faults again when reused
 * (bench/realloc-grow, vectors up to 4 MiB: 0.16 s with moves from 2 MiB,
 * 0.08 s without). Each move also splits a kernel mapping, which at this
 * size stays rare. */
#define HK_MOVE_MIN_PAGES ((16u << 20) >> hk_page_shift())

/* Moves the live block at `page` (`have` pages) into a new block of `want`
 * pages; the new pointer, or NULL (nothing changed). Not when nested: it
 * takes the lock twice. */
static void *move_block(struct hk_large_chunk *c, uint32_t page,
                        uint32_t have, uint32_t want) {
  struct hk_large_chunk *to;
  uint32_t to_page, lo, hi;
  static _Atomic int unsupported; /* the kernel predates MREMAP_DONTUNMAP */
  if (atomic_load_explicit(&unsupported, memory_order_relaxed) ||
      large_depth != 0)
    return NULL;
  lock_take("realloc");
  int rc = get_extent(want, hk_page_size(), 0, &to, &to_page, &lo, &hi);
  finish(0);
  if (rc != 0)
    return NULL;
  void *from = (void *)hk_chunk_addr(c, page);
  void *dest = (void *)hk_chunk_addr(to, to_page);
  rc = hk_os_move(from, (size_t)have << hk_page_shift(), dest);
  if (rc == EINVAL)
    atomic_store_explicit(&unsupported, 1, memory_order_relaxed);
  int moved = rc == 0;
  lock_take("realloc");
  /* The old pages are gone: the old block's space is clean. */
  if (moved) {
    hk_chunk_note_freed(c, page);
    hk_extent_free(c, page, 0, 0);
  } else {
    hk_extent_free(to, to_page, lo, hi);
  }
  finish(0);
  return moved ? dest : NULL;
}

void *hk_large_resize(struct hk_large_chunk *c, void *p, size_t size) {
  if (size > SIZE_MAX / 4)
    return NULL;
  uint32_t want = (uint32_t)(pages_for(size) < HK_PAGE_LEN_MASK
                                 ? pages_for(size)
                                 : HK_PAGE_LEN_MASK);
  if (!lock_take("realloc"))
    return NULL; /* nested: realloc copies instead */
  uint32_t w = hk_region_lookup((uintptr_t)p) == &c->mapping
                   ? hk_chunk_live_word(c, (uintptr_t)p)
                   : 0;
  if (!w || (w & HK_PAGE_GUARD)) {
    lock_drop();
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
    lock_drop();
    result = have >= HK_MOVE_MIN_PAGES ? move_block(c, page, have, want) : NULL;
    if (!result)
      return NULL;
    hk_counters_add(&hk_counters.large_bytes,
                 (size_t)(want - have) << hk_page_shift());
    return result;
  }
  finish(0);
  if (want != have) {
    size_t before = (size_t)have << hk_page_shift();
    size_t after = (size_t)want << hk_page_shift();
    hk_counters_add(&hk_counters.large_bytes, after);
    hk_counters_sub(&hk_counters.large_bytes, before);
  }
  return result;
}

size_t hk_large_trim(void) {
  if (!lock_take("malloc_trim"))
    return 0;
  return finish(1);
}

/* A fork from a signal handler that interrupted this thread in the large
 * tier must not wait for the lock this thread may hold: it only tries. */
static int fork_took;

void hk_large_fork_prepare(void) {
  if (large_depth == 0) {
    pthread_mutex_lock(&large_lock);
    fork_took = 1;
  } else {
    fork_took = pthread_mutex_trylock(&large_lock) == 0;
  }
}

void hk_large_fork_parent(void) {
  if (fork_took)
    pthread_mutex_unlock(&large_lock);
}

void hk_large_fork_child(void) {
  pthread_mutex_init(&large_lock, NULL);
  /* Not from inside an interrupted large-tier call: its update is half
   * done, and it resumes after the handler. */
  if (large_depth == 0)
    hk_extent_fork_child();
}
