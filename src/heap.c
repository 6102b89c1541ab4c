/* heap.c: per-thread heaps -- the slow paths behind internal/heap.h, and
 * handing a thread's slabs on when it exits. */
#include "internal/heap.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <string.h>

#include "internal/hardened.h"
#include "internal/init.h"
#include "internal/options.h"
#include "internal/os.h"
#include "internal/slab.h"
#include "internal/stats.h"
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
static struct hk_slab *adoptable[HK_CLASS_COUNT]; /* stack via next */
static struct hk_slab_queue stuck[HK_CLASS_COUNT];

/* Heaps of exited threads, ready for new threads; heap memory is never
 * unmapped, so a stale owner pointer is never a dangling one. */
static pthread_mutex_t heaps_lock = PTHREAD_MUTEX_INITIALIZER;
static struct hk_heap *free_heaps;
static struct hk_heap *all_heaps;
static char *heap_chunk;
static size_t heap_chunk_left;
#define HK_HEAP_CHUNK (64 * 1024)

// ---------------------------------------------------------------------------
// Slab queues

static void queue_push(struct hk_slab_queue *q, struct hk_slab *s) {
  s->next = NULL;
  s->prev = q->tail;
  if (q->tail)
    q->tail->next = s;
  else
    q->head = s;
  q->tail = s;
}

static void queue_remove(struct hk_slab_queue *q, struct hk_slab *s) {
  if (s->prev)
    s->prev->next = s->next;
  else
    q->head = s->next;
  if (s->next)
    s->next->prev = s->prev;
  else
    q->tail = s->prev;
  s->next = s->prev = NULL;
}

static struct hk_slab *queue_pop(struct hk_slab_queue *q) {
  struct hk_slab *s = q->head;
  if (s)
    queue_remove(q, s);
  return s;
}

static int slab_has_blocks(struct hk_slab *s) {
  return !hk_slab_list_empty(s) || hk_slab_carved(s) < s->capacity;
}

// ---------------------------------------------------------------------------
// Getting slabs

static void heap_release_slab(struct hk_heap *h, struct hk_slab *s) {
  unsigned g = hk_slab_superslab(s)->geometry;
  hk_stats_sub(&hk_counters.slab_bytes, (size_t)1 << hk_slab_superslab(s)->slab_shift);
  hk_slab_reset(s);
  if (h && g != HK_GEOM_TINY_SOLO &&
      h->empty_count[g] < hk_options.heap_empty_slabs) {
    s->next = h->empty[g];
    h->empty[g] = s;
    h->empty_count[g]++;
    return;
  }
  hk_superslab_release_slab(s);
}

static struct hk_slab *heap_fresh_slab(struct hk_heap *h, unsigned cls) {
  unsigned g = hk_class_geometry(cls);
  struct hk_slab *s = h->empty[g];
  if (s) {
    h->empty[g] = s->next;
    h->empty_count[g]--;
  } else {
    s = hk_superslab_acquire_slab(g);
    if (!s)
      return NULL;
  }
  hk_stats_add(&hk_counters.slab_bytes, (size_t)1 << hk_slab_superslab(s)->slab_shift);
  hk_slab_init(s, cls, hk_owner_token());
  return s;
}

static struct hk_slab *heap_adopt(struct hk_heap *h, unsigned cls) {
  for (int tries = 0; tries < HK_ADOPT_TRIES; tries++) {
    pthread_mutex_lock(&abandoned_lock);
    struct hk_slab *s = adoptable[cls];
    if (s) {
      adoptable[cls] = s->next;
      s->list = HK_LIST_AVAIL;
    }
    pthread_mutex_unlock(&abandoned_lock);
    if (!s)
      return NULL;
    s->next = s->prev = NULL;
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
  s->list = HK_LIST_CURRENT;
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
  s->next = adoptable[cls];
  adoptable[cls] = s;
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
 * slab many times in a row. The blocks stay counted in the slab's `used`
 * meanwhile, so the slab cannot go away under the batch. */
struct remote_batch {
  struct hk_slab *slab;
  unsigned first, last, n;
};
static __thread struct remote_batch batch
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

void hk_remote_flush(void) {
  struct hk_slab *s = batch.slab;
  if (s) {
    batch.slab = NULL;
    push(s, batch.first, batch.last, batch.n);
  }
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
  if (batch.slab == s) {
    hk_link_set(s, i, batch.first);
    batch.first = i;
    if (++batch.n >= HK_REMOTE_BATCH)
      hk_remote_flush();
    return;
  }
  hk_remote_flush();
  /* An abandoned slab is pushed to at once: its first remote free is what
   * offers it for adoption. A batch needs the thread-exit hook that a heap
   * brings, to be pushed when the thread ends; a thread that only frees
   * gets one now. */
  if (hardened || atomic_load_explicit(&s->owner, memory_order_relaxed) == 0 ||
      (hk_tls_heap == &hk_heap_empty && (exited || !hk_heap_attach()))) {
    push(s, i, i, 1);
    return;
  }
  batch.slab = s;
  batch.first = batch.last = i;
  batch.n = 1;
}

// ---------------------------------------------------------------------------
// Thread start and exit

static struct hk_heap *heap_new(void) {
  pthread_mutex_lock(&heaps_lock);
  struct hk_heap *h = free_heaps;
  if (h) {
    free_heaps = h->next_free;
  } else {
    if (heap_chunk_left < sizeof *h) {
      heap_chunk = hk_os_map_aligned(HK_HEAP_CHUNK, HK_PAGE_SIZE);
      if (!heap_chunk) {
        heap_chunk_left = 0;
        pthread_mutex_unlock(&heaps_lock);
        return NULL;
      }
      hk_stats_mapped(HK_HEAP_CHUNK);
      heap_chunk_left = HK_HEAP_CHUNK;
    }
    h = (struct hk_heap *)heap_chunk;
    size_t step = (sizeof *h + 63) & ~(size_t)63;
    heap_chunk += step;
    heap_chunk_left = heap_chunk_left >= step ? heap_chunk_left - step : 0;
    memset(h, 0, sizeof *h);
    h->all_next = all_heaps;
    all_heaps = h;
  }
  pthread_mutex_unlock(&heaps_lock);
  /* A reused heap's counters were moved to the totals when it was left. */
  memset(h, 0, offsetof(struct hk_heap, all_next));
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

static void abandon_or_release(struct hk_slab *s) {
  hk_slab_collect(s);
  if (hk_slab_used(s) == 0) {
    heap_release_slab(NULL, s);
    return;
  }
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
    s->prev = NULL;
    s->next = adoptable[cls];
    adoptable[cls] = s;
  } else {
    s->list = HK_LIST_STUCK;
    queue_push(&stuck[cls], s);
  }
  pthread_mutex_unlock(&abandoned_lock);
}

void hk_heap_trim_abandoned(void) {
  for (unsigned c = 0; c < HK_CLASS_COUNT; c++) {
    pthread_mutex_lock(&abandoned_lock);
    struct hk_slab *list = adoptable[c];
    adoptable[c] = NULL;
    pthread_mutex_unlock(&abandoned_lock);
    /* Taken off the list, these slabs belong to no one but us here. */
    while (list) {
      struct hk_slab *s = list;
      list = s->next;
      s->list = HK_LIST_AVAIL;
      abandon_or_release(s);
    }
  }
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
      abandon_or_release(h->cur[c]);
    h->cur[c] = &hk_empty_slab;
    if (h->hard_cur[c] != &hk_empty_slab)
      abandon_or_release(h->hard_cur[c]);
    h->hard_cur[c] = &hk_empty_slab;
    while ((s = queue_pop(&h->avail[c])) != NULL)
      abandon_or_release(s);
    while ((s = queue_pop(&h->full[c])) != NULL)
      abandon_or_release(s);
  }
  for (unsigned g = 0; g < HK_GEOM_COUNT; g++) {
    while (h->empty[g]) {
      struct hk_slab *s = h->empty[g];
      h->empty[g] = s->next;
      hk_superslab_release_slab(s);
    }
    h->empty_count[g] = 0;
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
  h->next_free = free_heaps;
  free_heaps = h;
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
  for (struct hk_heap *h = all_heaps; h; h = h->all_next)
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
