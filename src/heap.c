/* heap.c: per-thread heaps -- the slow paths behind internal/heap.h, and
 * handing a thread's slabs on when it exits. */
#include "internal/heap.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <string.h>

#include "internal/counters.h"
#include "internal/hardened.h"
#include "internal/init.h"
#include "internal/large.h"
#include "internal/options.h"
#include "internal/os.h"
#include "internal/slab.h"
#include "internal/superslab.h"

/* How many full slabs a refill looks at for remote frees before it takes a
 * new slab; bounded so that a huge heap does not make refills slow. */
#define HK_FULL_SCAN 16
/* How many abandoned slabs one refill may adopt before taking a new one. */
#define HK_ADOPT_TRIES 8

struct hk_slab hk_empty_slab = {.free = HK_LINK_END};
struct hk_heap hk_heap_empty = {
    .cur = {[0 ... HK_CLASS_COUNT - 1] = &hk_empty_slab},
};
__thread struct hk_heap *hk_tls_heap
    __attribute__((tls_model("initial-exec"))) = &hk_heap_empty;

/* Slabs of exited threads that still hold live blocks, per class. Only
 * adoptable ones are offered to threads: if full ones were, every refill
 * would wade through them and end up taking a fresh slab anyway. */
static pthread_mutex_t abandoned_lock = PTHREAD_MUTEX_INITIALIZER;
static struct hk_stack adoptable[HK_CLASS_COUNT];
static struct hk_queue stuck[HK_CLASS_COUNT];

/* Heaps of exited threads, ready for new threads; heap memory is never
 * unmapped, so a stale owner pointer is never a dangling one. */
static pthread_mutex_t heaps_lock = PTHREAD_MUTEX_INITIALIZER;
static struct hk_stack free_heaps;
static struct hk_stack all_heaps;
static char *heap_chunk;
static size_t heap_chunk_left;
#define HK_HEAP_CHUNK (64 * 1024)
_Static_assert(HK_HEAP_CHUNK % HK_PAGE_SIZE_MAX == 0, "whole pages");

// ---------------------------------------------------------------------------
// Slab queues and stacks (list.h)

#define SLAB_QUEUE offsetof(struct hk_slab, queue)
#define SLAB_STACK offsetof(struct hk_slab, stack)
#define HEAP_FREE offsetof(struct hk_heap, free_node)
#define HEAP_ALL offsetof(struct hk_heap, all_node)

static void queue_push(struct hk_queue *q, struct hk_slab *s) {
  hk_queue_push_back(q, s, SLAB_QUEUE);
}

/* A slab off its queues has NULL links. */
static void queue_remove(struct hk_queue *q, struct hk_slab *s) {
  hk_queue_remove(q, s, SLAB_QUEUE);
  hk_list_node_clear(s, SLAB_QUEUE);
}

static struct hk_slab *queue_pop(struct hk_queue *q) {
  struct hk_slab *s = q->first;
  if (s)
    queue_remove(q, s);
  return s;
}

static void stack_push(struct hk_stack *st, struct hk_slab *s) {
  hk_stack_push(st, s, SLAB_STACK);
}

static struct hk_slab *stack_pop(struct hk_stack *st) {
  return hk_stack_pop(st, SLAB_STACK);
}

static int slab_has_blocks(struct hk_slab *s) {
  return !hk_slab_list_empty(s) || hk_slab_carved(s) < s->capacity;
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
static _Atomic int kept_pending;
static _Atomic uint32_t kept_checked_ms;

static uint32_t *slab_released_ms(struct hk_slab *s) {
  return &hk_slab_superslab(s)->released_ms[hk_slab_index(s)];
}

/* Gives back the empty slabs that heaps have kept for `age` ms or more;
 * returns their bytes. Called with no lock held. */
static size_t purge_kept(uint32_t now, uint32_t age) {
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
        hk_stack_unlink(at, SLAB_STACK);
        h->empty_count[g]--;
        stack_push(&out, s);
      }
    empty_unlock(h);
  }
  pthread_mutex_unlock(&heaps_lock);
  if (left)
    atomic_store_explicit(&kept_pending, 1, memory_order_relaxed);
  size_t bytes = 0;
  struct hk_slab *s;
  while ((s = stack_pop(&out)) != NULL) {
    bytes += (size_t)1 << hk_slab_superslab(s)->slab_shift;
    hk_superslab_release_slab_now(s);
  }
  return bytes;
}

static void maybe_purge_kept(uint32_t now) {
  long delay = hk_options.purge_delay_ms;
  if (!atomic_load_explicit(&kept_pending, memory_order_relaxed) || delay < 0)
    return;
  uint32_t last = atomic_load_explicit(&kept_checked_ms, memory_order_relaxed);
  if ((uint32_t)(now - last) < (uint32_t)delay / 4 + 1 ||
      !atomic_compare_exchange_strong_explicit(&kept_checked_ms, &last, now,
                                               memory_order_relaxed,
                                               memory_order_relaxed))
    return;
  atomic_store_explicit(&kept_pending, 0, memory_order_relaxed);
  purge_kept(now, (uint32_t)delay);
}

// ---------------------------------------------------------------------------
// Free pages of slabs in use. Links live out of band, so a page none of
// whose blocks is out with the program (LIVE) or being freed (PENDING)
// holds nothing anyone will read again: it can go back to the OS, and a
// block on it reads zeroes when next handed out. Blocks freed by other
// threads are collected first; one freed remotely after that is chained
// with index links too, but the program has given it up, so its page may
// go all the same. Only a slab's owner hands out its blocks, so none turns
// LIVE during the scan. Never in HAKMEM_HARDENED mode: a freed block must
// keep its fill, which reuse checks.

static size_t purge_range(struct hk_superslab *ss, uintptr_t lo, uintptr_t hi) {
  uintptr_t page_mask = hk_page_size() - 1;
  lo = (lo + page_mask) & ~page_mask;
  hi &= ~page_mask;
  if (hi <= lo)
    return 0;
  /* A refused decommit (mlock) leaves the pages as they were: dirty. */
  return hk_superslab_decommit(ss, (void *)lo, hi - lo) == 0 ? hi - lo : 0;
}

/* The caller owns s (or has taken it off the abandoned lists) and has
 * collected its remote frees. Returns the bytes given back. */
static size_t slab_purge_pages(struct hk_slab *s) {
  struct hk_superslab *ss = hk_slab_superslab(s);
  uint32_t bs = hk_slab_block_size(s);
  unsigned carved = hk_slab_carved(s);
  uintptr_t run = s->start; /* where the run of free blocks began */
  int in_run = 1;
  size_t purged = 0;
  for (unsigned i = 0; i < carved; i++) {
    if (hk_link_get(s, i) >= HK_LINK_PENDING) {
      if (in_run)
        purged += purge_range(ss, run, s->start + (uintptr_t)i * bs);
      in_run = 0;
    } else if (!in_run) {
      run = s->start + (uintptr_t)i * bs;
      in_run = 1;
    }
  }
  /* Past the carved blocks nothing is the program's (a slab reused before
   * its purge may still have those pages). */
  if (!in_run)
    run = s->start + (uintptr_t)carved * bs;
  purged += purge_range(ss, run, hk_slab_base(s) + ((uintptr_t)1 << ss->slab_shift));
  ss->purged_used[hk_slab_index(s)] = hk_slab_used(s) + 1;
  return purged;
}

static int slab_purged_already(struct hk_slab *s) {
  return hk_slab_superslab(s)->purged_used[hk_slab_index(s)] ==
         hk_slab_used(s) + 1;
}

/* Whether the timed purge gives back a slab's free pages. A slab more than
 * half of whose carved blocks are out is one the program keeps refilling:
 * in a heap whose blocks come and go at a steady size, its free pages are
 * reused within moments, and each one given back is a decommit and a page
 * fault for nothing (mstress made 48,000 faults where tcmalloc made
 * 6,000). What is worth giving back is a slab the program has mostly left,
 * as after it freed most of its blocks. malloc_trim and
 * HAKMEM_TINY_MEM_DIET give back every free page all the same. A slab
 * spared keeps the purge armed: the program may go on to leave it. */
static int worth_purging(const struct hk_slab *s) {
  return hk_options.mem_diet || 2 * hk_slab_used(s) <= hk_slab_carved(s);
}

/* A slab whose use count is unchanged since its last purge is skipped
 * unless `all`, and what it gives back then is not counted: malloc_trim
 * reports whether it released memory, and those pages were gone already
 * (but for blocks freed and reused in equal numbers). */
static size_t purge_if(struct hk_slab *s, int all, int *spared) {
  if (!all && !worth_purging(s)) {
    *spared = 1;
    return 0;
  }
  if (!slab_purged_already(s))
    return slab_purge_pages(s);
  if (all)
    (void)slab_purge_pages(s);
  return 0;
}

static void heap_release_slab(struct hk_heap *h, struct hk_slab *s);
static void purge_arm(struct hk_heap *h);

/* Gives back the free pages of the heap's slabs; `all` also those of slabs
 * whose use count has not changed since their last purge (malloc_trim),
 * which the timed purge skips so that an idle heap costs one pass. The
 * owner only. Returns the bytes given back. */
static size_t heap_purge_pages(struct hk_heap *h, int all) {
  h->purge_armed = 0;
  h->purged_ms = hk_os_now_ms();
  if (hk_options.hardened)
    return 0;
  size_t purged = 0;
  int spared = 0;
  for (unsigned c = 0; c < HK_CLASS_COUNT; c++) {
    struct hk_slab *s = h->cur[c], *next;
    if (s != &hk_empty_slab) {
      hk_slab_collect(s);
      purged += purge_if(s, all, &spared);
    }
    for (s = h->avail[c].first; s; s = next) {
      next = s->queue.next;
      hk_slab_collect(s);
      if (hk_slab_used(s) == 0) {
        queue_remove(&h->avail[c], s);
        heap_release_slab(h, s);
      } else {
        purged += purge_if(s, all, &spared);
      }
    }
    for (s = h->full[c].first; s; s = next) {
      next = s->queue.next;
      hk_slab_collect(s);
      if (hk_slab_used(s) == 0) {
        queue_remove(&h->full[c], s);
        heap_release_slab(h, s);
        continue;
      }
      if (!slab_has_blocks(s))
        continue;
      queue_remove(&h->full[c], s);
      s->list = HK_LIST_AVAIL;
      queue_push(&h->avail[c], s);
      if (all || worth_purging(s))
        purged += slab_purge_pages(s);
      else
        spared = 1;
    }
  }
  if (spared)
    purge_arm(h);
  return purged;
}

/* A slab of the heap gained free blocks: its free pages are given back a
 * purge delay from now (at once under HAKMEM_TINY_MEM_DIET), checked on
 * the owner's slow path. */
static void purge_arm(struct hk_heap *h) {
  long delay = hk_options.purge_delay_ms;
  if (h->purge_armed || delay < 0)
    return;
  h->purge_armed = 1;
  h->purge_at_ms = hk_os_now_ms() + (uint32_t)delay;
}

/* A heap that grows purges before its delay is up, but not more than once
 * per delay: a program whose blocks come and go at random would otherwise
 * purge at every new slab pages it refills right after. */
static int purge_may_run_early(struct hk_heap *h) {
  return (uint32_t)(hk_os_now_ms() - h->purged_ms) >=
         (uint32_t)hk_options.purge_delay_ms;
}

/* The owner's slow path: the purges that are due. One clock read, and
 * none while nothing waits. */
static void maybe_purge(struct hk_heap *h) {
  if (!h->purge_armed &&
      !atomic_load_explicit(&kept_pending, memory_order_relaxed))
    return;
  uint32_t now = hk_os_now_ms();
  if (h->purge_armed && (int32_t)(now - h->purge_at_ms) >= 0)
    heap_purge_pages(h, 0);
  maybe_purge_kept(now);
}

// ---------------------------------------------------------------------------
// Getting slabs

static void heap_release_slab(struct hk_heap *h, struct hk_slab *s) {
  unsigned g = hk_slab_superslab(s)->geometry;
  hk_counters_sub(&hk_counters.slab_bytes, (size_t)1 << hk_slab_superslab(s)->slab_shift);
  hk_slab_reset(s);
  if (h && g != HK_GEOM_TINY_SOLO && hk_options.heap_empty_slabs > 0) {
    /* Neither the pool nor purge_kept reads this until the slab is
     * released or kept, which the lock below publishes. */
    *slab_released_ms(s) = hk_os_now_ms();
    int keep = 0;
    if (empty_trylock(h)) {
      keep = h->empty_count[g] < hk_options.heap_empty_slabs;
      if (keep) {
        stack_push(&h->empty[g], s);
        h->empty_count[g]++;
      }
      empty_unlock(h);
    }
    if (keep) {
      if (!atomic_load_explicit(&kept_pending, memory_order_relaxed))
        atomic_store_explicit(&kept_pending, 1, memory_order_relaxed);
      return;
    }
  }
  hk_superslab_release_slab(s);
}

/* Mapping a SuperSlab failed (RLIMIT_AS, overcommit limits): what is held
 * but unused -- slabs heaps keep, empty SuperSlabs, cached large blocks --
 * goes back so that one retry may succeed. Returns whether anything did. */
static int give_back_address_space(void) {
  int saved = errno;
  size_t n = purge_kept(hk_os_now_ms(), 0);
  n += hk_superslab_trim() + hk_large_trim();
  errno = saved;
  return n > 0;
}

static struct hk_slab *kept_pop(struct hk_heap *h, unsigned g) {
  if (!empty_trylock(h))
    return NULL;
  struct hk_slab *s = stack_pop(&h->empty[g]);
  if (s)
    h->empty_count[g]--;
  empty_unlock(h);
  return s;
}

static struct hk_slab *heap_fresh_slab(struct hk_heap *h, unsigned cls) {
  unsigned g = hk_class_geometry(cls);
  struct hk_slab *s = kept_pop(h, g);
  /* Before the heap grows, the free pages it has are given back even if
   * their delay has not passed: otherwise a program that frees most of one
   * size and then allocates another keeps the sum of both resident. (The
   * purge may empty a slab, which is then kept.) */
  if (!s && h->purge_armed && purge_may_run_early(h)) {
    heap_purge_pages(h, 0);
    s = kept_pop(h, g);
  }
  if (!s) {
    s = hk_superslab_acquire_slab(g);
    if (!s && give_back_address_space())
      s = hk_superslab_acquire_slab(g);
    if (!s)
      return NULL;
  }
  hk_counters_add(&hk_counters.slab_bytes, (size_t)1 << hk_slab_superslab(s)->slab_shift);
  hk_slab_init(s, cls, hk_owner_token());
  return s;
}

static struct hk_slab *heap_adopt(struct hk_heap *h, unsigned cls) {
  for (int tries = 0; tries < HK_ADOPT_TRIES; tries++) {
    pthread_mutex_lock(&abandoned_lock);
    struct hk_slab *s = stack_pop(&adoptable[cls]);
    if (s)
      s->list = HK_LIST_AVAIL;
    pthread_mutex_unlock(&abandoned_lock);
    if (!s)
      return NULL;
    hk_list_node_clear(s, SLAB_QUEUE);
    atomic_store_explicit(&s->owner, hk_owner_token(), memory_order_release);
    hk_slab_collect(s);
    if (slab_has_blocks(s))
      return s;
    s->list = HK_LIST_FULL;
    queue_push(&h->full[cls], s);
  }
  return NULL;
}

static struct hk_slab *heap_find_slab(struct hk_heap *h, unsigned cls) {
  struct hk_slab *s;
  while ((s = queue_pop(&h->avail[cls])) != NULL) {
    hk_slab_collect(s);
    if (slab_has_blocks(s))
      return s;
    s->list = HK_LIST_FULL;
    queue_push(&h->full[cls], s);
  }
  /* Full slabs regain blocks only through remote frees, which the owner
   * does not hear about; look at a few, rotating so all get their turn. */
  for (int i = 0; i < HK_FULL_SCAN && (s = queue_pop(&h->full[cls])); i++) {
    hk_slab_collect(s);
    if (slab_has_blocks(s)) {
      s->list = HK_LIST_AVAIL;
      return s;
    }
    queue_push(&h->full[cls], s);
  }
  s = heap_adopt(h, cls);
  if (s)
    return s;
  return heap_fresh_slab(h, cls);
}

/* Inlined into alloc_slow, which the default mode takes once per carve
 * batch; hk_heap_refill is the same out of line, for hardened.c. */
static inline __attribute__((always_inline)) struct hk_slab *
refill(struct hk_heap *h, struct hk_slab **cur, unsigned cls) {
  struct hk_slab *s = *cur;
  if (s != &hk_empty_slab) {
    hk_slab_collect(s);
    if (hk_slab_list_empty(s))
      hk_slab_carve(s);
    if (!hk_slab_list_empty(s))
      return s;
    s->list = HK_LIST_FULL;
    queue_push(&h->full[cls], s);
    *cur = &hk_empty_slab;
  }
  s = heap_find_slab(h, cls);
  if (!s) {
    errno = ENOMEM;
    return NULL;
  }
  if (hk_slab_list_empty(s))
    hk_slab_carve(s);
  /* A slab of huge blocks leaves the fast path when it empties even as
   * the current one (see hk_free_local_slow): it is 2 MiB for a handful of
   * blocks, which an idle thread would otherwise pin for good. Not in
   * HAKMEM_HARDENED mode, where the slab stays so that a second free of
   * its last block is still told as a double free. */
  s->list = hk_class_geometry(cls) == HK_GEOM_HUGE && !hk_options.hardened
                ? HK_LIST_AVAIL
                : HK_LIST_CURRENT;
  *cur = s;
  return s;
}

struct hk_slab *hk_heap_refill(struct hk_heap *h, struct hk_slab **cur,
                               unsigned cls) {
  return refill(h, cur, cls);
}

int hk_slab_pop(struct hk_slab *s, unsigned *index) {
  unsigned i = s->free;
  hk_link next = hk_link_get(s, i);
  if (__builtin_expect(next >= HK_LINK_PENDING, 0)) {
    /* Two frees of one block raced (or a bug of ours): the block is out
     * with the program or being freed. The list is dropped; its blocks
     * stay counted in `used`, so the slab is never given back, which is
     * safe (HAKMEM_INVALID_FREE=warn goes on with the next slab). */
    s->free = HK_LINK_END;
    hk_report_misuse("malloc", "corrupted free list", hk_slab_block(s, i));
    return 0;
  }
  s->free = (uint16_t)(next & ~HK_LINK_FRESH);
  hk_link_set(s, i, HK_LINK_LIVE);
  hk_slab_set_used(s, hk_slab_used(s) + 1);
  *index = i;
  return next & HK_LINK_FRESH ? 2 : 1;
}

/* Out of line so that hk_small_alloc_slow saves no registers before it
 * knows which mode it serves. */
static __attribute__((noinline)) void *alloc_slow(struct hk_heap *h,
                                                  unsigned cls) {
  hk_remote_flush();
  maybe_purge(h);
  for (;;) {
    struct hk_slab *s = refill(h, &h->cur[cls], cls);
    if (!s)
      return NULL;
    unsigned i;
    if (hk_slab_pop(s, &i))
      return hk_slab_block(s, i);
  }
}

void *hk_small_alloc_slow(unsigned cls) {
  struct hk_heap *h = hk_tls_heap;
  if (h == &hk_heap_empty) {
    h = hk_heap_attach();
    if (!h) {
      errno = ENOMEM;
      return NULL;
    }
  }
  /* HAKMEM_HARDENED: every malloc comes here (see hk_heap.hard_cur). */
  if (__builtin_expect(hk_options.hardened, 0))
    return hk_hardened_alloc(h, cls);
  return alloc_slow(h, cls);
}

// ---------------------------------------------------------------------------
// Frees that leave the fast path

void hk_free_local_slow(struct hk_heap *h, struct hk_slab *s) {
  unsigned cls = hk_slab_class(s);
  if (s->list == HK_LIST_CURRENT)
    return;
  if (s == h->cur[cls] || s == h->hard_cur[cls]) {
    /* A current slab of huge blocks that emptied (see refill). */
    if (hk_slab_used(s) == 0) {
      if (h->cur[cls] == s)
        h->cur[cls] = &hk_empty_slab;
      else
        h->hard_cur[cls] = &hk_empty_slab;
      heap_release_slab(h, s);
    }
    return;
  }
  purge_arm(h);
  if (hk_slab_used(s) == 0) {
    queue_remove(s->list == HK_LIST_FULL ? &h->full[cls] : &h->avail[cls], s);
    heap_release_slab(h, s);
    return;
  }
  if (s->list == HK_LIST_FULL) {
    queue_remove(&h->full[cls], s);
    s->list = HK_LIST_AVAIL;
    queue_push(&h->avail[cls], s);
  }
}

static void unstick(struct hk_slab *s) {
  pthread_mutex_lock(&abandoned_lock);
  unsigned cls = hk_slab_class(s);
  queue_remove(&stuck[cls], s);
  s->list = HK_LIST_ADOPTABLE;
  stack_push(&adoptable[cls], s);
  pthread_mutex_unlock(&abandoned_lock);
}

static void count(_Atomic uint64_t *c) {
  atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                        memory_order_relaxed);
}

/* HAKMEM_STATS and HAKMEM_HARDENED: every free comes here (see
 * hk_owner_value), the owner's too. Returns 1 if it was the owner's and is
 * done. */
static int owner_free(struct hk_slab *s, unsigned i) {
  struct hk_heap *h = hk_tls_heap;
  unsigned cls = hk_slab_class(s);
  if (atomic_load_explicit(&s->owner, memory_order_relaxed) ==
      hk_owner_token()) {
    if (hk_options.stats)
      count(&h->frees[cls]);
    hk_free_local(s, i);
    return 1;
  }
  if (!hk_options.stats)
    return 0;
  if (h == &hk_heap_empty)
    atomic_fetch_add_explicit(&hk_counters.remote_frees[cls], 1,
                              memory_order_relaxed);
  else
    count(&h->remote_frees[cls]);
  return 0;
}

/* Takes block i from LIVE to PENDING with one atomic operation, so that
 * of two threads freeing the same block at the same instant only one
 * goes on; the other reports a double free. */
static int claim(struct hk_slab *s, unsigned i, const char *fn) {
  hk_link live = HK_LINK_LIVE;
  if (atomic_compare_exchange_strong_explicit(&s->links[i], &live,
                                              HK_LINK_PENDING,
                                              memory_order_relaxed,
                                              memory_order_relaxed))
    return 1;
  hk_report_misuse(fn, hk_slab_misuse(live), hk_slab_block(s, i));
  return 0;
}

/* A thread's remote frees into one slab, chained first -> ... -> last,
 * waiting to be pushed with one CAS: a thread freeing what another
 * allocated (a consumer, a request's buffers) mostly frees into the same
 * slab many times in a row. One batch per size class, since the blocks a
 * producer hands over are of many sizes, each class from its own current
 * slab. The blocks stay counted in the slab's `used` meanwhile, so the
 * slab cannot go away under the batch; at most HK_REMOTE_BATCH blocks
 * per class wait, until the thread's next allocation slow path, its exit
 * or malloc_trim. */
struct remote_batch {
  struct hk_slab *slab;
  uint16_t first, last, n;
};
static __thread struct remote_batch batches[HK_CLASS_COUNT]
    __attribute__((tls_model("initial-exec")));
/* Bit c % 64 of word c / 64 set: batches[c] holds blocks. */
#define HK_BATCH_WORDS ((HK_CLASS_COUNT + 63) / 64)
static __thread uint64_t batched[HK_BATCH_WORDS]
    __attribute__((tls_model("initial-exec")));
/* Set once the thread's heap was given back at its exit: a free made by
 * a later thread-exit destructor must not attach another heap, which no
 * destructor would be left to give back. */
static __thread int exited __attribute__((tls_model("initial-exec")));
#define HK_REMOTE_BATCH 64

static void push(struct hk_slab *s, unsigned first, unsigned last,
                 unsigned n) {
  /* Past the CAS the owner may collect our blocks, empty the slab and
   * unmap its SuperSlab: only a stuck slab may be touched here, and it
   * cannot go away because nobody can adopt it until unstick() offers
   * it. */
  if (hk_slab_remote_push(s, first, last, n) == HK_REMOTE_STUCK)
    unstick(s);
}

static void flush_class(unsigned cls) {
  struct remote_batch *b = &batches[cls];
  struct hk_slab *s = b->slab;
  b->slab = NULL;
  batched[cls / 64] &= ~((uint64_t)1 << (cls % 64));
  push(s, b->first, b->last, b->n);
}

void hk_remote_flush(void) {
  for (unsigned w = 0; w < HK_BATCH_WORDS; w++)
    while (batched[w])
      flush_class(w * 64 + (unsigned)__builtin_ctzll(batched[w]));
}

void hk_free_remote(struct hk_slab *s, unsigned i) {
  int hardened = hk_options.hardened;
  /* Hardened mode claims every free, the owner's too. */
  if (__builtin_expect(hardened, 0) &&
      (!claim(s, i, "free") || !hk_hardened_free_check(s, i)))
    return;
  if (__builtin_expect(hk_options.stats | hardened, 0) && owner_free(s, i))
    return;
  if (!hardened && !claim(s, i, "free"))
    return;
  unsigned cls = hk_slab_class(s);
  struct remote_batch *b = &batches[cls];
  if (b->slab == s) {
    hk_link_set(s, i, b->first);
    b->first = (uint16_t)i;
    if (++b->n >= HK_REMOTE_BATCH)
      flush_class(cls);
    return;
  }
  if (b->slab)
    flush_class(cls);
  /* An abandoned slab is pushed to at once: its first remote free is what
   * offers it for adoption. A batch needs the thread-exit hook that a heap
   * brings, to be pushed when the thread ends; a thread that only frees
   * gets one now. */
  if (hardened || atomic_load_explicit(&s->owner, memory_order_relaxed) == 0 ||
      (hk_tls_heap == &hk_heap_empty && (exited || !hk_heap_attach()))) {
    push(s, i, i, 1);
    return;
  }
  b->slab = s;
  b->first = b->last = (uint16_t)i;
  b->n = 1;
  batched[cls / 64] |= (uint64_t)1 << (cls % 64);
}

// ---------------------------------------------------------------------------
// Thread start and exit

static struct hk_heap *heap_new(void) {
  pthread_mutex_lock(&heaps_lock);
  struct hk_heap *h = hk_stack_pop(&free_heaps, HEAP_FREE);
  if (!h) {
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
    memset(h, 0, sizeof *h);
    hk_stack_push(&all_heaps, h, HEAP_ALL);
  }
  /* A reused heap's counters were moved to the totals when it was left.
   * Under the lock: purge_kept may be looking at its (empty) lists. */
  memset(h, 0, offsetof(struct hk_heap, all_node));
  pthread_mutex_unlock(&heaps_lock);
  for (unsigned c = 0; c < HK_CLASS_COUNT; c++)
    h->cur[c] = h->hard_cur[c] = &hk_empty_slab;
  return h;
}

struct hk_heap *hk_heap_attach(void) {
  hk_init();
  /* Init may have allocated through us (pthread_atfork does on some libcs)
   * and attached a heap already. */
  if (hk_tls_heap != &hk_heap_empty)
    return hk_tls_heap;
  struct hk_heap *h = heap_new();
  if (!h)
    return NULL;
  /* Publish before registering: registration may allocate, and that
   * allocation must find this heap rather than attach another. */
  hk_tls_heap = h;
  hk_thread_register(h);
  return h;
}

/* `purge`: give back the slab's free pages before it is offered again
 * (malloc_trim). Returns the bytes given back. */
static size_t abandon_or_release(struct hk_slab *s, int purge) {
  hk_slab_collect(s);
  if (hk_slab_used(s) == 0) {
    heap_release_slab(NULL, s);
    return 0;
  }
  size_t purged = purge && !hk_options.hardened ? slab_purge_pages(s) : 0;
  atomic_store_explicit(&s->owner, 0, memory_order_release);
  unsigned cls = hk_slab_class(s);
  pthread_mutex_lock(&abandoned_lock);
  uint32_t none = HK_REMOTE_EMPTY;
  if (slab_has_blocks(s) ||
      !atomic_compare_exchange_strong_explicit(hk_slab_remote(s), &none,
                                               HK_REMOTE_STUCK,
                                               memory_order_acq_rel,
                                               memory_order_relaxed)) {
    s->list = HK_LIST_ADOPTABLE;
    s->queue.prev = NULL;
    stack_push(&adoptable[cls], s);
  } else {
    s->list = HK_LIST_STUCK;
    queue_push(&stuck[cls], s);
  }
  pthread_mutex_unlock(&abandoned_lock);
  return purged;
}

size_t hk_heap_trim(void) {
  size_t released = 0;
  for (unsigned c = 0; c < HK_CLASS_COUNT; c++) {
    pthread_mutex_lock(&abandoned_lock);
    struct hk_stack list = hk_stack_take(&adoptable[c]);
    pthread_mutex_unlock(&abandoned_lock);
    /* Taken off the list, these slabs belong to no one but us here. */
    struct hk_slab *s;
    while ((s = stack_pop(&list)) != NULL) {
      s->list = HK_LIST_AVAIL;
      released += abandon_or_release(s, 1);
    }
  }
  struct hk_heap *h = hk_tls_heap;
  if (h != &hk_heap_empty) {
    hk_remote_flush();
    released += heap_purge_pages(h, 1);
  }
  return released + purge_kept(hk_os_now_ms(), 0);
}

void hk_heap_detach(struct hk_heap *h) {
  hk_remote_flush();
  exited = 1;
  if (h == NULL || h == &hk_heap_empty)
    return;
  if (hk_tls_heap == h)
    hk_tls_heap = &hk_heap_empty;
  for (unsigned c = 0; c < HK_CLASS_COUNT; c++) {
    struct hk_slab *s;
    if (h->cur[c] != &hk_empty_slab)
      abandon_or_release(h->cur[c], 0);
    h->cur[c] = &hk_empty_slab;
    if (h->hard_cur[c] != &hk_empty_slab)
      abandon_or_release(h->hard_cur[c], 0);
    h->hard_cur[c] = &hk_empty_slab;
    while ((s = queue_pop(&h->avail[c])) != NULL)
      abandon_or_release(s, 0);
    while ((s = queue_pop(&h->full[c])) != NULL)
      abandon_or_release(s, 0);
  }
  for (unsigned g = 0; g < HK_GEOM_COUNT; g++) {
    empty_lock(h);
    struct hk_stack list = hk_stack_take(&h->empty[g]);
    h->empty_count[g] = 0;
    empty_unlock(h);
    struct hk_slab *s;
    while ((s = stack_pop(&list)) != NULL)
      hk_superslab_release_slab(s);
  }
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

void hk_heap_fork_prepare(void) {
  pthread_mutex_lock(&heaps_lock);
  pthread_mutex_lock(&abandoned_lock);
}

void hk_heap_fork_parent(void) {
  pthread_mutex_unlock(&abandoned_lock);
  pthread_mutex_unlock(&heaps_lock);
}

void hk_heap_fork_child(void) {
  pthread_mutex_init(&abandoned_lock, NULL);
  pthread_mutex_init(&heaps_lock, NULL);
}
