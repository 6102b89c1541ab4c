/* abandon.c: the slabs of exited threads (see abandon.h). */
#include "small/abandon.h"

#include <pthread.h>
#include <stddef.h>

#include "small/heap.h"
#include "small/heaps.h"
#include "base/list.h"
#include "base/options.h"
#include "small/size_class.h"
#include "small/slab.h"
#include "small/superslab.h"

/* How many abandoned slabs one refill may adopt before taking a new one. */
#define HK_ADOPT_TRIES 8

/* Only adoptable slabs are offered to threads: if full ones were, every
 * refill would wade through them and end up taking a fresh slab anyway. */
static pthread_mutex_t abandoned_lock = PTHREAD_MUTEX_INITIALIZER;
static struct hk_stack adoptable[HK_CLASS_COUNT];
static struct hk_queue stuck[HK_CLASS_COUNT];

size_t hk_abandon_slab(struct hk_slab *s, int purge) {
  hk_slab_collect(s);
  if (hk_slab_used(s) == 0) {
    hk_heaps_release_slab(NULL, s);
    return 0;
  }
  size_t purged =
      purge && hk_options.purge_slab_pages ? hk_slab_purge_pages(s) : 0;
  atomic_store_explicit(&s->owner, 0, memory_order_release);
  unsigned cls = hk_slab_class(s);
  pthread_mutex_lock(&abandoned_lock);
  hk_remote none = HK_REMOTE_EMPTY;
  if (hk_slab_has_blocks(s) ||
      !atomic_compare_exchange_strong_explicit(hk_slab_remote(s), &none,
                                               HK_REMOTE_STUCK,
                                               memory_order_acq_rel,
                                               memory_order_relaxed)) {
    s->list = HK_LIST_ADOPTABLE;
    s->queue.prev = NULL;
    hk_stack_push(&adoptable[cls], s, HK_SLAB_STACK);
  } else {
    s->list = HK_LIST_STUCK;
    hk_slab_enqueue(&stuck[cls], s);
  }
  pthread_mutex_unlock(&abandoned_lock);
  return purged;
}

struct hk_slab *hk_abandoned_adopt(struct hk_heap *h, unsigned cls) {
  for (int tries = 0; tries < HK_ADOPT_TRIES; tries++) {
    pthread_mutex_lock(&abandoned_lock);
    struct hk_slab *s = hk_stack_pop(&adoptable[cls], HK_SLAB_STACK);
    if (s)
      s->list = HK_LIST_AVAIL;
    pthread_mutex_unlock(&abandoned_lock);
    if (!s)
      return NULL;
    hk_list_node_clear(s, HK_SLAB_QUEUE);
    atomic_store_explicit(&s->owner, hk_owner_token(), memory_order_release);
    hk_slab_collect(s);
    if (hk_slab_has_blocks(s))
      return s;
    s->list = HK_LIST_FULL;
    hk_slab_enqueue(&h->full[cls], s);
  }
  return NULL;
}

void hk_abandoned_unstick(struct hk_slab *s) {
  pthread_mutex_lock(&abandoned_lock);
  unsigned cls = hk_slab_class(s);
  hk_slab_dequeue(&stuck[cls], s);
  s->list = HK_LIST_ADOPTABLE;
  hk_stack_push(&adoptable[cls], s, HK_SLAB_STACK);
  pthread_mutex_unlock(&abandoned_lock);
}

size_t hk_abandoned_trim(void) {
  size_t released = 0;
  for (unsigned c = 0; c < HK_CLASS_COUNT; c++) {
    pthread_mutex_lock(&abandoned_lock);
    struct hk_stack list = hk_stack_take(&adoptable[c]);
    pthread_mutex_unlock(&abandoned_lock);
    /* Taken off the list, these slabs belong to no one but us here. */
    struct hk_slab *s;
    while ((s = hk_stack_pop(&list, HK_SLAB_STACK)) != NULL) {
      s->list = HK_LIST_AVAIL;
      released += hk_abandon_slab(s, 1);
    }
  }
  return released;
}

void hk_abandoned_fork_prepare(void) { pthread_mutex_lock(&abandoned_lock); }
void hk_abandoned_fork_parent(void) { pthread_mutex_unlock(&abandoned_lock); }
void hk_abandoned_fork_child(void) {
  pthread_mutex_init(&abandoned_lock, NULL);
}
