/* superslab.c: mapping SuperSlabs and handing out their slabs. */
#include "internal/superslab.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "internal/options.h"
#include "internal/os.h"
#include "internal/region_map.h"
#include "internal/slab.h"
#include "internal/stats.h"

static const uint8_t geometry_shift[HK_GEOM_COUNT] = {16, 19, 21};

struct pool {
  pthread_mutex_t lock;
  struct hk_superslab *partial; /* SuperSlabs with at least one unused slab */
  struct hk_superslab *empty;   /* fully unused, kept for reuse */
  unsigned empty_count;
};

static struct pool pools[HK_GEOM_COUNT] = {
    {PTHREAD_MUTEX_INITIALIZER, NULL, NULL, 0},
    {PTHREAD_MUTEX_INITIALIZER, NULL, NULL, 0},
    {PTHREAD_MUTEX_INITIALIZER, NULL, NULL, 0},
};

static uint32_t all_slabs_mask(const struct hk_superslab *ss) {
  return ss->slab_count == 32 ? 0xffffffffu : (1u << ss->slab_count) - 1u;
}

static void list_insert(struct hk_superslab **head, struct hk_superslab *ss) {
  ss->pool_prev = NULL;
  ss->pool_next = *head;
  if (*head)
    (*head)->pool_prev = ss;
  *head = ss;
}

static void list_remove(struct hk_superslab **head, struct hk_superslab *ss) {
  if (ss->pool_prev)
    ss->pool_prev->pool_next = ss->pool_next;
  else
    *head = ss->pool_next;
  if (ss->pool_next)
    ss->pool_next->pool_prev = ss->pool_prev;
  ss->pool_next = ss->pool_prev = NULL;
}

static struct hk_superslab *superslab_map(unsigned geometry) {
  struct hk_superslab *ss = hk_os_map_aligned(HK_REGION_SIZE, HK_REGION_SIZE);
  if (!ss)
    return NULL;
  ss->seg.kind = HK_SEG_SUPERSLAB;
  ss->geometry = (uint8_t)geometry;
  ss->slab_shift = geometry_shift[geometry];
  ss->slab_count = (uint16_t)(HK_REGION_SIZE >> ss->slab_shift);
  ss->free_mask = all_slabs_mask(ss);
  if (hk_region_register((uintptr_t)ss, HK_REGION_SIZE, &ss->seg) != 0) {
    hk_os_unmap(ss, HK_REGION_SIZE);
    errno = ENOMEM;
    return NULL;
  }
  hk_stats_mapped(HK_REGION_SIZE);
  return ss;
}

static void superslab_unmap(struct hk_superslab *ss) {
  hk_region_unregister((uintptr_t)ss, HK_REGION_SIZE);
  hk_os_unmap(ss, HK_REGION_SIZE);
  hk_stats_unmapped(HK_REGION_SIZE);
}

struct hk_slab *hk_superslab_acquire_slab(unsigned geometry) {
  struct pool *pool = &pools[geometry];
  pthread_mutex_lock(&pool->lock);
  struct hk_superslab *ss = pool->partial;
  if (!ss && pool->empty) {
    ss = pool->empty;
    pool->empty = ss->pool_next;
    pool->empty_count--;
    list_insert(&pool->partial, ss);
  }
  if (!ss) {
    /* Mapping under the lock keeps the pool simple; it happens once per
     * 2 MiB and the lock is per geometry. */
    ss = superslab_map(geometry);
    if (!ss) {
      pthread_mutex_unlock(&pool->lock);
      return NULL;
    }
    list_insert(&pool->partial, ss);
  }
  unsigned idx = (unsigned)__builtin_ctz(ss->free_mask);
  ss->free_mask &= ~(1u << idx);
  if (ss->free_mask == 0)
    list_remove(&pool->partial, ss);
  pthread_mutex_unlock(&pool->lock);
  return &ss->slabs[idx];
}

void hk_superslab_release_slab(struct hk_slab *slab) {
  struct hk_superslab *ss = hk_slab_superslab(slab);
  struct pool *pool = &pools[ss->geometry];
  if (hk_options.mem_diet) {
    /* Diet: the slab's pages go back to the OS now, not when the whole
     * SuperSlab happens to empty. */
    uintptr_t base = hk_slab_base(slab);
    uintptr_t start = hk_slab_index(slab) == 0 ? base + HK_SLAB0_DATA_OFFSET : base;
    hk_os_decommit((void *)start,
                   ((size_t)1 << ss->slab_shift) - (start - base));
  }
  struct hk_superslab *to_unmap = NULL;
  pthread_mutex_lock(&pool->lock);
  if (ss->free_mask == 0)
    list_insert(&pool->partial, ss);
  ss->free_mask |= 1u << hk_slab_index(slab);
  if (ss->free_mask == all_slabs_mask(ss)) {
    list_remove(&pool->partial, ss);
    if (pool->empty_count < hk_options.empty_superslabs) {
      ss->pool_next = pool->empty;
      pool->empty = ss;
      pool->empty_count++;
    } else {
      to_unmap = ss;
    }
  }
  pthread_mutex_unlock(&pool->lock);
  if (to_unmap)
    superslab_unmap(to_unmap);
}

size_t hk_superslab_trim(void) {
  size_t released = 0;
  for (unsigned g = 0; g < HK_GEOM_COUNT; g++) {
    struct pool *pool = &pools[g];
    pthread_mutex_lock(&pool->lock);
    struct hk_superslab *list = pool->empty;
    pool->empty = NULL;
    pool->empty_count = 0;
    pthread_mutex_unlock(&pool->lock);
    while (list) {
      struct hk_superslab *next = list->pool_next;
      superslab_unmap(list);
      released += HK_REGION_SIZE;
      list = next;
    }
  }
  return released;
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
