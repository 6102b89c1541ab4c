/* large.c: the large tier (see internal/large.h). */
#include "internal/large.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "internal/init.h"
#include "internal/options.h"
#include "internal/os.h"
#include "internal/region_map.h"
#include "internal/report.h"
#include "internal/stats.h"

/* A cached mapping is reused for a request needing at least a third of it:
 * cached blocks hold no pages, so a looser fit only costs address space,
 * and saves a munmap and an mmap; a small request still does not pin a
 * huge mapping. */
#define HK_LARGE_REUSE_SLACK(need) ((need) * 3 + HK_REGION_SIZE)

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct hk_large *cache_head; /* most recently freed first */
static struct hk_large *cache_tail;
static size_t cache_bytes;

static void cache_unlink(struct hk_large *l) {
  if (l->prev)
    l->prev->next = l->next;
  else
    cache_head = l->next;
  if (l->next)
    l->next->prev = l->prev;
  else
    cache_tail = l->prev;
  l->next = l->prev = NULL;
  cache_bytes -= l->map_size;
}

static void large_unmap(struct hk_large *l) {
  size_t size = l->map_size;
  hk_region_unregister((uintptr_t)l, size);
  hk_os_unmap(l, size);
  hk_stats_unmapped(size);
}

static void decommit(struct hk_large *l) {
  hk_os_decommit((void *)((uintptr_t)l + HK_PAGE_SIZE),
                 l->map_size - HK_PAGE_SIZE);
  l->decommitted = 1;
}

/* Gives back the pages of blocks cached for HAKMEM_PURGE_DELAY or longer
 * (cache lock held). The cache is short, about 30 entries at most. */
static void cache_purge(void) {
  long delay = hk_options.purge_delay_ms;
  if (delay < 0)
    return;
  uint32_t now = hk_os_now_ms();
  for (struct hk_large *l = cache_tail; l; l = l->prev)
    if (!l->decommitted && (uint32_t)(now - l->freed_ms) >= (uint32_t)delay)
      decommit(l);
}

/* The best-fitting cached block for `need` bytes of mapping, or NULL;
 * with `resident_only`, only one whose pages are still committed. */
static struct hk_large *cache_take(size_t need, int resident_only) {
  struct hk_large *best = NULL;
  pthread_mutex_lock(&cache_lock);
  cache_purge();
  for (struct hk_large *l = cache_head; l; l = l->next)
    if (l->map_size >= need && l->map_size <= HK_LARGE_REUSE_SLACK(need) &&
        !(resident_only && l->decommitted) &&
        (!best || l->map_size < best->map_size))
      best = l;
  if (best)
    cache_unlink(best);
  pthread_mutex_unlock(&cache_lock);
  return best;
}

void *hk_large_alloc(size_t size, size_t align, int zero) {
  hk_init(); /* the cache size is a knob; a large block may come first */
  size_t offset = align > HK_LARGE_HEADER ? align : HK_LARGE_HEADER;
  /* Each bound alone keeps offset + size + a region far from overflow. */
  if (size > SIZE_MAX / 4 || offset > SIZE_MAX / 4) {
    errno = ENOMEM;
    return NULL;
  }
  /* At least one byte past the offset: with size 0 and an alignment of
   * 2 MiB the block would otherwise start just past its own mapping. */
  size_t need = (offset + (size ? size : 1) + HK_REGION_MASK) &
                ~(size_t)HK_REGION_MASK;
  struct hk_large *l = cache_take(need, 0);
  int zeroed = 0;
  if (l) {
    hk_stats_sub(&hk_counters.large_cached_bytes, l->map_size);
    zeroed = l->decommitted;
    l->decommitted = 0;
  } else {
    l = hk_os_map_aligned(need, HK_REGION_SIZE);
    if (!l)
      return NULL;
    l->seg.kind = HK_SEG_LARGE;
    l->map_size = need;
    l->decommitted = 0;
    if (hk_region_register((uintptr_t)l, need, &l->seg) != 0) {
      hk_os_unmap(l, need);
      errno = ENOMEM;
      return NULL;
    }
    hk_stats_mapped(need);
    zeroed = 1;
  }
  /* The mapping is only 2 MiB-aligned; a larger alignment is found inside
   * it, which `need` left room for. */
  uintptr_t user = ((uintptr_t)l + HK_LARGE_HEADER + align - 1) &
                   ~(uintptr_t)(align - 1);
  l->user = user;
  l->state = HK_LARGE_LIVE;
  hk_stats_add(&hk_counters.large_bytes, l->map_size);
  hk_stats_add(&hk_counters.large_count, 1);
  if (zero) {
    /* Fresh and decommitted pages read as zero, except the header's page
     * (the only one a decommitted block keeps). */
    size_t dirty = size;
    if (zeroed) {
      uintptr_t first_page_end = ((uintptr_t)l + HK_PAGE_SIZE);
      dirty = user < first_page_end ? first_page_end - user : 0;
      if (dirty > size)
        dirty = size;
    }
    memset((void *)user, 0, dirty);
  }
  return (void *)user;
}

static int check_live(struct hk_large *l, const void *p, const char *fn) {
  if ((uintptr_t)p != l->user) {
    hk_report_misuse(fn, "invalid pointer", p);
    return 0;
  }
  if (l->state != HK_LARGE_LIVE) {
    hk_report_misuse(fn, "double free", p);
    return 0;
  }
  return 1;
}

size_t hk_large_usable(struct hk_large *l, const void *p, const char *fn) {
  if (!check_live(l, p, fn))
    return 0;
  return (uintptr_t)l + l->map_size - l->user;
}

void hk_large_free(struct hk_large *l, void *p, const char *fn) {
  if (!check_live(l, p, fn))
    return;
  hk_stats_sub(&hk_counters.large_bytes, l->map_size);
  hk_stats_sub(&hk_counters.large_count, 1);
  size_t limit = hk_options.large_cache_bytes;
  if (l->map_size > limit / 2) {
    l->state = 0;
    large_unmap(l);
    return;
  }
  /* Cached blocks keep their region map entries, so a second free of one
   * is still recognised as ours and reported as a double free. Their pages
   * stay for HAKMEM_PURGE_DELAY, so that a loop that frees and allocates
   * big buffers does not fault them in again each time, and then go back
   * to the OS (the cache keeps saving munmap and mmap). */
  struct hk_large *evict = NULL;
  pthread_mutex_lock(&cache_lock);
  l->state = HK_LARGE_CACHED;
  l->prev = NULL;
  l->next = cache_head;
  if (cache_head)
    cache_head->prev = l;
  else
    cache_tail = l;
  cache_head = l;
  cache_bytes += l->map_size;
  l->decommitted = 0;
  l->freed_ms = hk_os_now_ms();
  while (cache_bytes > limit) {
    struct hk_large *old = cache_tail;
    cache_unlink(old);
    old->next = evict;
    evict = old;
  }
  /* Under the lock: another thread may take the block as soon as it is
   * released. */
  cache_purge();
  /* Read before unlocking: from then on another thread may take the block,
   * or evict and unmap it. */
  size_t cached = l->map_size;
  pthread_mutex_unlock(&cache_lock);
  hk_stats_add(&hk_counters.large_cached_bytes, cached);
  while (evict) {
    struct hk_large *next = evict->next;
    hk_stats_sub(&hk_counters.large_cached_bytes, evict->map_size);
    evict->state = 0;
    large_unmap(evict);
    evict = next;
  }
}

void *hk_large_resize(struct hk_large *l, void *p, size_t size) {
  size_t offset = l->user - (uintptr_t)l;
  if ((uintptr_t)p != l->user || l->state != HK_LARGE_LIVE ||
      size > SIZE_MAX / 4)
    return NULL;
  size_t need = (offset + (size ? size : 1) + HK_REGION_MASK) &
                ~(size_t)HK_REGION_MASK;
  size_t old_size = l->map_size;
  if (need <= old_size) {
    /* Only a block that lost more than half its mapping gives the tail
     * back: a buffer that shrinks a little will likely grow again. */
    if (need < old_size / 2) {
      uintptr_t tail = (uintptr_t)l + need;
      hk_region_unregister(tail, old_size - need);
      hk_os_unmap((void *)tail, old_size - need);
      l->map_size = need;
      hk_stats_unmapped(old_size - need);
      hk_stats_sub(&hk_counters.large_bytes, old_size - need);
    }
    return p;
  }
  /* A freed block whose pages are still resident takes a copy for less
   * than faulting in fresh pages would cost. */
  struct hk_large *c = cache_take(need, 1);
  if (c) {
    hk_stats_sub(&hk_counters.large_cached_bytes, c->map_size);
    c->decommitted = 0;
    c->user = (uintptr_t)c + offset;
    c->state = HK_LARGE_LIVE;
    hk_stats_add(&hk_counters.large_bytes, c->map_size);
    hk_stats_add(&hk_counters.large_count, 1);
    memcpy((void *)c->user, p, old_size - offset);
    hk_large_free(l, p, "realloc");
    return (void *)c->user;
  }
  /* Otherwise the pages move. The destination is reserved 2 MiB-aligned
   * first, since the region map needs that and mremap alone would not
   * give it. */
  void *to = hk_os_map_aligned(need, HK_REGION_SIZE);
  if (!to)
    return NULL;
  if (hk_region_register((uintptr_t)to, need, (struct hk_segment *)to) != 0) {
    hk_os_unmap(to, need);
    return NULL;
  }
  if (hk_os_move(l, old_size, to, need) != 0) {
    hk_region_unregister((uintptr_t)to, need);
    hk_os_unmap(to, need);
    return NULL;
  }
  hk_region_unregister((uintptr_t)l, old_size);
  struct hk_large *moved = to;
  moved->map_size = need;
  moved->user = (uintptr_t)to + offset;
  hk_stats_mapped(need - old_size);
  hk_stats_add(&hk_counters.large_bytes, need - old_size);
  return (void *)moved->user;
}

size_t hk_large_trim(void) {
  pthread_mutex_lock(&cache_lock);
  struct hk_large *list = cache_head;
  cache_head = cache_tail = NULL;
  cache_bytes = 0;
  pthread_mutex_unlock(&cache_lock);
  size_t released = 0;
  while (list) {
    struct hk_large *next = list->next;
    released += list->map_size;
    hk_stats_sub(&hk_counters.large_cached_bytes, list->map_size);
    list->state = 0;
    large_unmap(list);
    list = next;
  }
  return released;
}

void hk_large_fork_prepare(void) { pthread_mutex_lock(&cache_lock); }
void hk_large_fork_parent(void) { pthread_mutex_unlock(&cache_lock); }
void hk_large_fork_child(void) { pthread_mutex_init(&cache_lock, NULL); }
