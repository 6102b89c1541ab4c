/* heaps.c: every heap there is, and the empty slabs heaps keep (see
 * heaps.h). */
#include "small/heaps.h"

#include <pthread.h>
#include <stddef.h>
#include <string.h>

#include "base/counters.h"
#include "small/heap.h"
#include "base/list.h"
#include "base/options.h"
#include "platform/os.h"
#include "small/slab.h"
#include "small/superslab.h"

/* Threads start on hk_heap_empty (heap.h). */
struct hk_slab hk_empty_slab = {.links = &hk_slab_no_blocks};
struct hk_heap hk_heap_empty = {
    .cur = {[0 ... HK_CLASS_COUNT - 1] = &hk_empty_slab},
};
__thread struct hk_heap *hk_tls_heap
    __attribute__((tls_model("initial-exec"))) = &hk_heap_empty;

static pthread_mutex_t heaps_lock = PTHREAD_MUTEX_INITIALIZER;
static struct hk_stack free_heaps; /* of exited threads, for new ones */
static struct hk_stack all_heaps;
static char *heap_chunk;
static size_t heap_chunk_left;
#define HK_HEAP_CHUNK (64 * 1024)
_Static_assert(HK_HEAP_CHUNK % HK_PAGE_SIZE_MAX == 0, "whole pages");

#define HEAP_FREE offsetof(struct hk_heap, free_node)
#define HEAP_ALL offsetof(struct hk_heap, all_node)

struct hk_heap *hk_heaps_new(void) {
  pthread_mutex_lock(&heaps_lock);
  struct hk_heap *h = hk_stack_pop(&free_heaps, HEAP_FREE);
  if (h) {
    pthread_mutex_unlock(&heaps_lock);
    /* A retired heap is as hk_heap_release left it: every slot on
     * hk_empty_slab, no class touched, its queues and kept lists empty,
     * its counters moved to the totals (hk_heaps_retire). A thread per
     * request reuses one at each start: no need to clear 6 KiB. */
    h->purge_armed = 0;
    h->purge_at_ms = h->purged_ms = 0;
    return h;
  }
  if (heap_chunk_left < sizeof *h) {
    heap_chunk = hk_os_map_aligned(HK_HEAP_CHUNK, hk_page_size());
    if (!heap_chunk) {
      heap_chunk_left = 0;
      pthread_mutex_unlock(&heaps_lock);
      return NULL;
    }
    hk_counters_mapped(HK_HEAP_CHUNK);
    heap_chunk_left = HK_HEAP_CHUNK;
  }
  h = (struct hk_heap *)heap_chunk;
  size_t step = (sizeof *h + 63) & ~(size_t)63;
  heap_chunk += step;
  heap_chunk_left = heap_chunk_left >= step ? heap_chunk_left - step : 0;
  /* Fresh pages read zero: empty queues and kept lists, no class touched. */
  for (unsigned c = 0; c < HK_CLASS_COUNT; c++)
    h->cur[c] = h->hard_cur[c] = &hk_empty_slab;
  hk_stack_push(&all_heaps, h, HEAP_ALL);
  pthread_mutex_unlock(&heaps_lock);
  return h;
}

void hk_heaps_retire(struct hk_heap *h) {
  pthread_mutex_lock(&heaps_lock);
  if (hk_options.stats)
    for (unsigned c = 0; c < HK_CLASS_COUNT; c++) {
      atomic_fetch_add_explicit(&hk_counters.frees[c],
                                atomic_load_explicit(&h->frees[c], memory_order_relaxed),
                                memory_order_relaxed);
      atomic_fetch_add_explicit(&hk_counters.remote_frees[c],
                                atomic_load_explicit(&h->remote_frees[c], memory_order_relaxed),
                                memory_order_relaxed);
      atomic_store_explicit(&h->frees[c], 0, memory_order_relaxed);
      atomic_store_explicit(&h->remote_frees[c], 0, memory_order_relaxed);
    }
  hk_stack_push(&free_heaps, h, HEAP_FREE);
  pthread_mutex_unlock(&heaps_lock);
}

void hk_heap_sum_frees(uint64_t *frees, uint64_t *remote_frees) {
  pthread_mutex_lock(&heaps_lock);
  for (unsigned c = 0; c < HK_CLASS_COUNT; c++) {
    frees[c] = atomic_load_explicit(&hk_counters.frees[c], memory_order_relaxed) +
               atomic_load_explicit(&hk_counters.collected[c], memory_order_relaxed);
    remote_frees[c] =
        atomic_load_explicit(&hk_counters.remote_frees[c], memory_order_relaxed);
  }
  for (struct hk_heap *h = all_heaps.top; h; h = h->all_node.next)
    for (unsigned c = 0; c < HK_CLASS_COUNT; c++) {
      frees[c] += atomic_load_explicit(&h->frees[c], memory_order_relaxed);
      remote_frees[c] +=
          atomic_load_explicit(&h->remote_frees[c], memory_order_relaxed);
    }
  pthread_mutex_unlock(&heaps_lock);
}

// ---------------------------------------------------------------------------
// The empty slabs a heap keeps. The owner takes its lock once per slab it
// keeps or reuses; another thread only tries it, and skips a busy heap.
// The owner only tries it too when it keeps or reuses a slab, and makes
// do without its kept slabs when the lock is busy: the lock may be held by
// the very code a signal handler interrupted (a handler that forks, whose
// child then allocates), which would never let go while the handler spun.
// Only thread exit, which no handler interrupts, waits for it.

static void empty_lock(struct hk_heap *h) {
  while (atomic_exchange_explicit(&h->empty_lock, 1, memory_order_acquire))
    while (atomic_load_explicit(&h->empty_lock, memory_order_relaxed))
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#else
      ;
#endif
}

static int empty_trylock(struct hk_heap *h) {
  return atomic_load_explicit(&h->empty_lock, memory_order_relaxed) == 0 &&
         atomic_exchange_explicit(&h->empty_lock, 1, memory_order_acquire) == 0;
}

static void empty_unlock(struct hk_heap *h) {
  atomic_store_explicit(&h->empty_lock, 0, memory_order_release);
}

/* Some heap keeps an empty slab not given back yet. A thread that keeps
 * one may never call the allocator again, so any thread's slow path looks
 * at every heap's kept slabs, at most a few times per purge delay. */
_Atomic int hk_heaps_kept;
static _Atomic uint32_t kept_checked_ms;

static uint32_t *slab_released_ms(struct hk_slab *s) {
  return &hk_slab_superslab(s)->released_ms[hk_slab_index(s)];
}

size_t hk_heaps_purge_kept(uint32_t now, uint32_t age) {
  struct hk_stack out = {NULL};
  int left = 0;
  pthread_mutex_lock(&heaps_lock);
  for (struct hk_heap *h = all_heaps.top; h; h = h->all_node.next) {
    if (!empty_trylock(h)) {
      left = 1;
      continue;
    }
    for (unsigned g = 0; g < HK_GEOM_COUNT; g++)
      for (void **at = &h->empty[g].top; *at;) {
        struct hk_slab *s = *at;
        if ((uint32_t)(now - *slab_released_ms(s)) < age) {
          left = 1;
          at = &s->stack.next;
          continue;
        }
        hk_stack_unlink(at, HK_SLAB_STACK);
        h->empty_count[g]--;
        hk_stack_push(&out, s, HK_SLAB_STACK);
      }
    empty_unlock(h);
  }
  pthread_mutex_unlock(&heaps_lock);
  if (left)
    atomic_store_explicit(&hk_heaps_kept, 1, memory_order_relaxed);
  size_t bytes = 0;
  struct hk_slab *s;
  while ((s = hk_stack_pop(&out, HK_SLAB_STACK)) != NULL) {
    bytes += (size_t)1 << hk_slab_superslab(s)->slab_shift;
    hk_superslab_release_slab_now(s);
  }
  return bytes;
}

void hk_heaps_maybe_purge_kept(uint32_t now) {
  long delay = hk_options.purge_delay_ms;
  if (!atomic_load_explicit(&hk_heaps_kept, memory_order_relaxed) || delay < 0)
    return;
  uint32_t last = atomic_load_explicit(&kept_checked_ms, memory_order_relaxed);
  if ((uint32_t)(now - last) < (uint32_t)delay / 4 + 1 ||
      !atomic_compare_exchange_strong_explicit(&kept_checked_ms, &last, now,
                                               memory_order_relaxed,
                                               memory_order_relaxed))
    return;
  atomic_store_explicit(&hk_heaps_kept, 0, memory_order_relaxed);
  hk_heaps_purge_kept(now, (uint32_t)delay);
}

void hk_heaps_release_slab(struct hk_heap *h, struct hk_slab *s) {
  unsigned g = hk_slab_superslab(s)->geometry;
  hk_slab_retire(s);
  if (h && g != HK_GEOM_TINY_SOLO && hk_options.heap_empty_slabs > 0) {
    /* Neither the pool nor hk_heaps_purge_kept reads this until the slab
     * is released or kept, which the lock below publishes. */
    *slab_released_ms(s) = hk_os_now_ms();
    int keep = 0;
    if (empty_trylock(h)) {
      keep = h->empty_count[g] < hk_options.heap_empty_slabs;
      if (keep) {
        hk_stack_push(&h->empty[g], s, HK_SLAB_STACK);
        h->empty_count[g]++;
      }
      empty_unlock(h);
    }
    if (keep) {
      if (!atomic_load_explicit(&hk_heaps_kept, memory_order_relaxed))
        atomic_store_explicit(&hk_heaps_kept, 1, memory_order_relaxed);
      return;
    }
  }
  hk_superslab_release_slab(s);
}

struct hk_slab *hk_heaps_kept_pop(struct hk_heap *h, unsigned g) {
  if (!empty_trylock(h))
    return NULL;
  struct hk_slab *s = hk_stack_pop(&h->empty[g], HK_SLAB_STACK);
  if (s)
    h->empty_count[g]--;
  empty_unlock(h);
  return s;
}

void hk_heaps_release_kept(struct hk_heap *h) {
  for (unsigned g = 0; g < HK_GEOM_COUNT; g++) {
    empty_lock(h);
    struct hk_stack list = hk_stack_take(&h->empty[g]);
    h->empty_count[g] = 0;
    empty_unlock(h);
    struct hk_slab *s;
    while ((s = hk_stack_pop(&list, HK_SLAB_STACK)) != NULL)
      hk_superslab_release_slab(s);
  }
}

void hk_heaps_fork_prepare(void) { pthread_mutex_lock(&heaps_lock); }
void hk_heaps_fork_parent(void) { pthread_mutex_unlock(&heaps_lock); }
void hk_heaps_fork_child(void) { pthread_mutex_init(&heaps_lock, NULL); }
