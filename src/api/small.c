/* small.c: where the small tiers' fast paths (small.h) lead -- a thread's
 * first allocation, the mode that serves a slow malloc or free, and one
 * retry after the OS refused memory. The mode is decided here, once per
 * call: the layers below it know nothing of HAKMEM_HARDENED but what
 * they must keep (a freed block's fill), and nothing of HAKMEM_STATS but
 * the counting. */
#include "api/small.h"

#include <errno.h>

#include "small/hardened.h"
#include "small/heaps.h"
#include "api/init.h"
#include "large/large.h"
#include "base/options.h"
#include "platform/os.h"
#include "small/remote.h"
#include "small/superslab.h"
#include "small/thread.h"

int hk_give_back_unused(void) {
  int saved = errno;
  size_t n = hk_heaps_purge_kept(hk_os_now_ms(), 0);
  n += hk_superslab_trim() + hk_large_trim();
  errno = saved;
  return n > 0;
}

static void *alloc(struct hk_heap *h, unsigned cls) {
  /* HAKMEM_HARDENED: every malloc comes here (see hk_heap.hard_cur). */
  if (__builtin_expect(hk_options.hardened, 0))
    return hk_hardened_alloc(h, cls);
  return hk_heap_alloc(h, cls);
}

/* A thread's first allocation, hardened mode, and out of memory. */
static __attribute__((noinline)) void *alloc_rare(unsigned cls) {
  struct hk_heap *h = hk_tls_heap;
  if (h == &hk_heap_empty) {
    hk_init();
    h = hk_heap_attach();
    if (!h) {
      errno = ENOMEM;
      return NULL;
    }
  }
  void *p = alloc(h, cls);
  /* Mapping a SuperSlab failed (RLIMIT_AS, overcommit limits). */
  if (!p && hk_give_back_unused())
    p = alloc(h, cls);
  return p;
}

/* The default mode's refill is all that the common case runs; everything
 * else leaves it before it saves a register. */
void *hk_small_alloc_slow(unsigned cls) {
  struct hk_heap *h = hk_tls_heap;
  if (__builtin_expect(h != &hk_heap_empty && !hk_options.hardened, 1)) {
    void *p = hk_heap_alloc(h, cls);
    if (__builtin_expect(p != NULL, 1))
      return p;
  }
  return alloc_rare(cls);
}

/* A remote free that does not join the thread's batch for its slab. */
static __attribute__((noinline)) void free_remote(struct hk_slab *s,
                                                  unsigned i) {
  /* A batch needs the thread-exit hook that a heap brings, to be pushed
   * when the thread ends; a thread that only frees gets one now. Blocks of
   * an abandoned slab are batched too (in Larson's shape, where each
   * thread frees what the one before it left, four remote frees in five
   * were into abandoned slabs, each a CAS of its own): a stuck slab is
   * offered for adoption when the batch is pushed instead, at the
   * thread's next refill. */
  hk_free_remote(s, i, hk_heap_for_free() != NULL);
}

/* Another thread's free of block i of s: claimed, then batched. */
static inline void free_claimed_remote(struct hk_slab *s, unsigned i) {
  if (hk_slab_claim(s, i, "free") && !hk_free_remote_append(s, i))
    free_remote(s, i);
}

/* Every free under HAKMEM_STATS, which counts it, or HAKMEM_HARDENED,
 * which checks it. */
static __attribute__((noinline)) void free_in_mode(struct hk_slab *s,
                                                   unsigned i) {
  if (hk_options.hardened)
    hk_hardened_free(s, i);
  else if (!hk_heap_free_if_owner(s, i))
    free_claimed_remote(s, i);
}

void hk_small_free_slow(struct hk_slab *s, unsigned i) {
  if (__builtin_expect(hk_options.hardened | hk_options.stats, 0))
    free_in_mode(s, i);
  else
    free_claimed_remote(s, i);
}
