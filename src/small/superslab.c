/* superslab.c: mapping SuperSlabs and handing out their slabs. */
#include "small/superslab.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <string.h>

#include "base/counters.h"
#include "base/huge_pages.h"
#include "base/options.h"
#include "platform/os.h"
#include "base/region_map.h"

/* Slab sizes as types.h lists them. A slab is at least four pages: slab 0
 * gives a page to the header, which must not cost it more than a quarter,
 * and purging gives back whole pages only, so a slab of one or two would
 * rarely have a page free to give. With 64 KiB pages that makes tiny
 * slabs 256 KiB (eight to a SuperSlab); 4 and 16 KiB pages keep these. */
static const uint8_t geometry_nominal_shift[HK_GEOM_COUNT] = {16, 16, 19, 21, 16};
/* Blocks of each geometry are larger than this (tiny: at least it), which
 * bounds how many links a slab of it needs. */
static const uint32_t geometry_min_block[HK_GEOM_COUNT] = {16, 1024, 1024, 65536,
                                                             16};

unsigned hk_geometry_shift(unsigned g) {
  unsigned least = hk_page_shift() + 2;
  return geometry_nominal_shift[g] > least ? geometry_nominal_shift[g] : least;
}

unsigned hk_geometry_slabs(unsigned g) {
  if (g == HK_GEOM_TINY_SOLO)
    return 1;
  return (unsigned)(HK_REGION_SIZE >> hk_geometry_shift(g)); /* <= 32 */
}

/* Links per slab: one per block, and the sentinel's (freelist.h), which
 * needs one more only where blocks can be of the geometry's minimum. */
static uint32_t link_stride(unsigned g) {
  uint32_t most =
      (uint32_t)(((size_t)1 << hk_geometry_shift(g)) / geometry_min_block[g]);
  return g == HK_GEOM_TINY || g == HK_GEOM_TINY_SOLO ? most + 1 : most;
}

/* Bytes of the out-of-band metadata mapping of a SuperSlab: the remote
 * heads' page, then the links. */
static size_t meta_size(unsigned g) {
  return hk_page_size() +
         hk_page_round((size_t)hk_geometry_slabs(g) * link_stride(g) *
                       sizeof(hk_link));
}

/* Bytes actually mapped for a SuperSlab of the geometry. */
static size_t geometry_map_size(unsigned g) {
  return (size_t)hk_geometry_slabs(g) << hk_geometry_shift(g);
}

struct pool {
  pthread_mutex_t lock;
  struct hk_list partial; /* SuperSlabs with at least one unused slab */
  struct hk_stack empty;  /* fully unused, kept for reuse, newest on top */
  unsigned empty_count;
  struct hk_list dirty;   /* SuperSlabs with slabs to purge */
  struct hk_list all;     /* every SuperSlab mapped, for statistics */
  uint32_t last_purge_ms;
};

/* Where each list's node is in a SuperSlab (list.h). */
#define PARTIAL_NODE offsetof(struct hk_superslab, partial_node)
#define EMPTY_NODE offsetof(struct hk_superslab, empty_node)
#define DIRTY_NODE offsetof(struct hk_superslab, dirty_node)
#define ALL_NODE offsetof(struct hk_superslab, all_node)

static struct pool pools[HK_GEOM_COUNT] = {
    {.lock = PTHREAD_MUTEX_INITIALIZER},
    {.lock = PTHREAD_MUTEX_INITIALIZER},
    {.lock = PTHREAD_MUTEX_INITIALIZER},
    {.lock = PTHREAD_MUTEX_INITIALIZER},
    {.lock = PTHREAD_MUTEX_INITIALIZER},
};

static uint32_t all_slabs_mask(const struct hk_superslab *ss) {
  return ss->slab_count == 32 ? 0xffffffffu : (1u << ss->slab_count) - 1u;
}

/* Off the partial or the dirty list, its links there cleared. */
static void partial_remove(struct pool *pool, struct hk_superslab *ss) {
  hk_list_remove(&pool->partial, ss, PARTIAL_NODE);
  hk_list_node_clear(ss, PARTIAL_NODE);
}

static void dirty_remove(struct pool *pool, struct hk_superslab *ss) {
  hk_list_remove(&pool->dirty, ss, DIRTY_NODE);
  hk_list_node_clear(ss, DIRTY_NODE);
}

// ---------------------------------------------------------------------------
// Transparent huge pages (see huge_pages.h).

static void advise_new(struct hk_superslab *ss, size_t size) {
  int advice = hk_huge_pages_advice();
  if (advice < 0 || (advice && size < HK_REGION_SIZE)) /* solo slabs */
    return;
  hk_os_advise_huge(ss, size, advice);
  ss->huge = (uint8_t)advice; /* not yet shared */
}

/* A decommit inside a huge page splits it into small pages; left advised,
 * the SuperSlab would have khugepaged collapse them back into a huge page
 * a few seconds later, making resident again what was just given back. A
 * SuperSlab that has begun to give pages back is fragmented: it stays on
 * small pages from then on. */
int hk_superslab_decommit(struct hk_superslab *ss, void *addr, size_t size) {
  if (atomic_load_explicit(&ss->huge, memory_order_relaxed) &&
      atomic_exchange_explicit(&ss->huge, 0, memory_order_relaxed))
    hk_os_advise_huge(ss, geometry_map_size(ss->geometry), 0);
  return hk_os_decommit(addr, size);
}

// ---------------------------------------------------------------------------
// Purging: the pages of unused slabs go back to the OS HAKMEM_PURGE_DELAY
// after the slab was released, checked whenever the pool is next used (there
// is no background thread to do it on time).

/* Gives an unused slab's pages back, and the whole pages of its links.
 * Returns 0, or the errno of a decommit the kernel refused (mlockall):
 * the slab then stays dirty. Nothing reads an unused slab's old contents
 * (calloc zeroes small blocks itself), so a refusal costs memory only. */
static int slab_decommit(struct hk_slab *slab) {
  struct hk_superslab *ss = hk_slab_superslab(slab);
  uintptr_t base = hk_slab_base(slab);
  uintptr_t start = hk_slab_data_start(slab);
  int rc = hk_superslab_decommit(ss, (void *)start,
                                 ((size_t)1 << ss->slab_shift) - (start - base));
  /* Links of neighbouring slabs may share a page: only the pages this
   * slab's links cover whole go. */
  uintptr_t page_mask = hk_page_size() - 1;
  uintptr_t links = (uintptr_t)hk_slab_links_at(slab);
  uintptr_t lo = (links + page_mask) & ~page_mask;
  uintptr_t hi = (links + ss->link_stride * sizeof(hk_link)) & ~page_mask;
  if (rc == 0 && hi > lo)
    rc = hk_os_decommit((void *)lo, hi - lo);
  return rc;
}

static void dirty_mark(struct pool *pool, struct hk_superslab *ss, unsigned idx) {
  if (ss->dirty_mask == 0)
    hk_list_push(&pool->dirty, ss, DIRTY_NODE);
  ss->dirty_mask |= 1u << idx;
  ss->released_ms[idx] = hk_os_now_ms();
}

static void dirty_clear(struct pool *pool, struct hk_superslab *ss, unsigned idx) {
  if (!(ss->dirty_mask & (1u << idx)))
    return;
  ss->dirty_mask &= ~(1u << idx);
  if (ss->dirty_mask == 0)
    dirty_remove(pool, ss);
}

/* Decommits the dirty slabs released at least `age` ms ago; returns bytes. */
static size_t purge(struct pool *pool, uint32_t now, uint32_t age) {
  size_t purged = 0;
  struct hk_superslab *ss = pool->dirty.first;
  while (ss) {
    struct hk_superslab *next = ss->dirty_node.next;
    uint32_t mask = ss->dirty_mask;
    while (mask) {
      unsigned i = (unsigned)__builtin_ctz(mask);
      mask &= mask - 1;
      if ((uint32_t)(now - ss->released_ms[i]) >= age) {
        if (slab_decommit(&ss->slabs[i]) != 0) {
          ss->released_ms[i] = now; /* refused: try again a delay later */
          continue;
        }
        purged += (size_t)1 << ss->slab_shift;
        dirty_clear(pool, ss, i);
      }
    }
    ss = next;
  }
  return purged;
}

/* Takes an empty SuperSlab off the dirty and all lists, to be unmapped. */
static void forget(struct pool *pool, struct hk_superslab *ss) {
  if (ss->dirty_mask)
    dirty_remove(pool, ss);
  ss->dirty_mask = 0;
  hk_list_remove(&pool->all, ss, ALL_NODE);
}

/* Takes the empty SuperSlabs that have been empty for `age` ms off the
 * pool, beyond the first hk_options.empty_superslabs (the most recently
 * emptied: the stack is newest first); returns them, for the caller to
 * unmap once it has dropped the lock. */
static struct hk_stack expire_empty(struct pool *pool, uint32_t now,
                                    uint32_t age) {
  struct hk_stack expired = {NULL};
  unsigned kept = 0;
  for (void **at = &pool->empty.top; *at;) {
    struct hk_superslab *ss = *at;
    if (kept < hk_options.empty_superslabs ||
        (uint32_t)(now - ss->emptied_ms) < age) {
      kept++;
      at = &ss->empty_node.next;
      continue;
    }
    hk_stack_unlink(at, EMPTY_NODE);
    pool->empty_count--;
    forget(pool, ss);
    hk_stack_push(&expired, ss, EMPTY_NODE);
  }
  return expired;
}

/* Empty SuperSlabs are kept for the purge delay, not unmapped at once: a
 * program whose threads come and go (a thread per request) would
 * otherwise map, fault in and unmap a SuperSlab per thread. */
static struct hk_stack purge_if_due(struct pool *pool) {
  struct hk_stack none = {NULL};
  long delay = hk_options.purge_delay_ms;
  if (delay <= 0 || (hk_list_empty(&pool->dirty) &&
                     pool->empty_count <= hk_options.empty_superslabs))
    return none;
  uint32_t now = hk_os_now_ms();
  /* Look a few times per delay, not on every pool operation. */
  if ((uint32_t)(now - pool->last_purge_ms) < (uint32_t)delay / 4 + 1)
    return none;
  pool->last_purge_ms = now;
  struct hk_stack expired = expire_empty(pool, now, (uint32_t)delay);
  purge(pool, now, (uint32_t)delay);
  return expired;
}

static void superslab_unmap(struct hk_superslab *ss);

static void unmap_chain(struct hk_stack list) {
  struct hk_superslab *ss;
  while ((ss = hk_stack_pop(&list, EMPTY_NODE)) != NULL)
    superslab_unmap(ss);
}

static struct hk_superslab *superslab_map(unsigned geometry) {
  size_t size = geometry_map_size(geometry);
  struct hk_slab_meta *meta =
      hk_os_map_aligned(meta_size(geometry), hk_page_size());
  if (!meta)
    return NULL;
  struct hk_superslab *ss = hk_os_map_aligned(size, HK_REGION_SIZE);
  if (!ss) {
    hk_os_unmap(meta, meta_size(geometry));
    return NULL;
  }
  /* Before the header is written: a page touched first would take the
   * page table's place, and the region could never get a huge page. */
  advise_new(ss, size);
  ss->mapping.kind = HK_MAPPING_SUPERSLAB;
  ss->meta = meta;
  ss->link_stride = link_stride(geometry);
  ss->geometry = (uint8_t)geometry;
  ss->slab_shift = (uint8_t)hk_geometry_shift(geometry);
  ss->slab_count = (uint16_t)hk_geometry_slabs(geometry);
  ss->free_mask = all_slabs_mask(ss);
  /* A solo slab registers its whole 2 MiB region although it maps only
   * its slab: an address in the unmapped rest resolves to this header, finds
   * an unused slab there, and is reported as not ours. */
  if (hk_region_register_tagged((uintptr_t)ss, HK_REGION_SIZE, &ss->mapping,
                                ss->slab_shift) != 0) {
    hk_os_unmap(ss, size);
    hk_os_unmap(meta, meta_size(geometry));
    errno = ENOMEM;
    return NULL;
  }
  hk_counters_mapped(size);
  hk_counters_superslabs(1);
  return ss;
}

/* The caller has taken `ss` off every pool list. */
static void superslab_unmap(struct hk_superslab *ss) {
  size_t size = geometry_map_size(ss->geometry);
  hk_counters_superslabs(-1);
  hk_region_unregister((uintptr_t)ss, HK_REGION_SIZE);
  hk_os_unmap(ss->meta, meta_size(ss->geometry));
  hk_os_unmap(ss, size);
  hk_counters_unmapped(size);
}

struct hk_slab *hk_superslab_acquire_slab(unsigned geometry) {
  struct pool *pool = &pools[geometry];
  pthread_mutex_lock(&pool->lock);
  struct hk_superslab *ss = pool->partial.first;
  if (!ss && !hk_stack_empty(&pool->empty)) {
    ss = hk_stack_pop(&pool->empty, EMPTY_NODE);
    pool->empty_count--;
    hk_list_push(&pool->partial, ss, PARTIAL_NODE);
  }
  if (!ss) {
    /* Mapping under the lock keeps the pool simple; it happens once per
     * 2 MiB and the lock is per geometry. */
    ss = superslab_map(geometry);
    if (!ss) {
      pthread_mutex_unlock(&pool->lock);
      return NULL;
    }
    hk_list_push(&pool->partial, ss, PARTIAL_NODE);
    hk_list_push(&pool->all, ss, ALL_NODE);
  }
  unsigned idx = (unsigned)__builtin_ctz(ss->free_mask);
  ss->free_mask &= ~(1u << idx);
  if (ss->free_mask == 0)
    partial_remove(pool, ss);
  dirty_clear(pool, ss, idx);
  struct hk_stack expired = purge_if_due(pool);
  pthread_mutex_unlock(&pool->lock);
  unmap_chain(expired);
  return &ss->slabs[idx];
}

static void release(struct hk_slab *slab, int purge_now) {
  struct hk_superslab *ss = hk_slab_superslab(slab);
  struct pool *pool = &pools[ss->geometry];
  unsigned idx = hk_slab_index(slab);
  int solo = ss->geometry == HK_GEOM_TINY_SOLO;
  /* A delay of 0 (and diet) purges now, outside the lock. */
  int refused = !solo && purge_now && slab_decommit(slab) != 0;
  struct hk_superslab *to_unmap = NULL;
  pthread_mutex_lock(&pool->lock);
  if (ss->free_mask == 0)
    hk_list_push(&pool->partial, ss, PARTIAL_NODE);
  ss->free_mask |= 1u << idx;
  if (!solo && (refused || (!purge_now && hk_options.purge_delay_ms > 0)))
    dirty_mark(pool, ss, idx);
  if (ss->free_mask == all_slabs_mask(ss)) {
    partial_remove(pool, ss);
    if (!solo && (pool->empty_count < hk_options.empty_superslabs ||
                  hk_options.purge_delay_ms > 0)) {
      ss->emptied_ms = hk_os_now_ms();
      hk_stack_push(&pool->empty, ss, EMPTY_NODE);
      pool->empty_count++;
    } else {
      to_unmap = ss;
      forget(pool, ss);
    }
  }
  struct hk_stack expired = purge_if_due(pool);
  pthread_mutex_unlock(&pool->lock);
  if (to_unmap)
    superslab_unmap(to_unmap);
  unmap_chain(expired);
}

void hk_superslab_release_slab(struct hk_slab *slab) {
  release(slab, hk_options.purge_delay_ms == 0);
}

void hk_superslab_release_slab_now(struct hk_slab *slab) { release(slab, 1); }

size_t hk_superslab_trim(void) {
  size_t released = 0;
  for (unsigned g = 0; g < HK_GEOM_COUNT; g++) {
    struct pool *pool = &pools[g];
    pthread_mutex_lock(&pool->lock);
    struct hk_stack list = hk_stack_take(&pool->empty);
    pool->empty_count = 0;
    for (struct hk_superslab *ss = list.top; ss; ss = ss->empty_node.next)
      forget(pool, ss);
    released += purge(pool, hk_os_now_ms(), 0);
    pthread_mutex_unlock(&pool->lock);
    struct hk_superslab *ss;
    while ((ss = hk_stack_pop(&list, EMPTY_NODE)) != NULL) {
      released += geometry_map_size(ss->geometry);
      superslab_unmap(ss);
    }
  }
  return released;
}

void hk_superslab_for_each_slab(void (*fn)(struct hk_slab *, void *), void *arg) {
  for (unsigned g = 0; g < HK_GEOM_COUNT; g++) {
    struct pool *pool = &pools[g];
    pthread_mutex_lock(&pool->lock);
    for (struct hk_superslab *ss = pool->all.first; ss;
         ss = ss->all_node.next)
      for (unsigned i = 0; i < ss->slab_count; i++)
        if (atomic_load_explicit(&ss->slabs[i].block_size,
                                 memory_order_relaxed) != 0)
          fn(&ss->slabs[i], arg);
    pthread_mutex_unlock(&pool->lock);
  }
}

void hk_superslab_fork_prepare(void) {
  for (unsigned g = 0; g < HK_GEOM_COUNT; g++)
    pthread_mutex_lock(&pools[g].lock);
}

void hk_superslab_fork_parent(void) {
  for (unsigned g = 0; g < HK_GEOM_COUNT; g++)
    pthread_mutex_unlock(&pools[g].lock);
}

void hk_superslab_fork_child(void) {
  for (unsigned g = 0; g < HK_GEOM_COUNT; g++)
    pthread_mutex_init(&pools[g].lock, NULL);
}
