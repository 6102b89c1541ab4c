/* remote.c: frees into other threads' slabs (see remote.h). */
#include "small/remote.h"

#include <stdint.h>

#include "small/abandon.h"
#include "small/size_class.h"
#include "small/slab.h"

/* A thread's remote frees into one slab, chained first -> ... -> last,
 * waiting to be pushed with one CAS. One batch per size class, since the
 * blocks a producer hands over are of many sizes, each class from its own
 * current slab. The blocks stay counted in the slab's `used` meanwhile, so
 * the slab cannot go away under the batch; at most HK_REMOTE_BATCH blocks
 * per class wait, until the thread's next allocation slow path, its exit
 * or malloc_trim. */
struct remote_batch {
  struct hk_slab *slab;
  uint16_t first, last, n;
};
static __thread struct remote_batch batches[HK_CLASS_COUNT]
    __attribute__((tls_model("initial-exec")));
__thread uint64_t hk_remote_batched[HK_BATCH_WORDS]
    __attribute__((tls_model("initial-exec")));
#define batched hk_remote_batched
#define HK_REMOTE_BATCH 64

static void push(struct hk_slab *s, unsigned first, unsigned last,
                 unsigned n) {
  /* Past the CAS the owner may collect our blocks, empty the slab and
   * unmap its SuperSlab: only a stuck slab may be touched here, and it
   * cannot go away because nobody can adopt it until it is unstuck. */
  if (hk_slab_remote_push(s, first, last, n) == HK_REMOTE_STUCK)
    hk_abandoned_unstick(s);
}

static void flush_class(unsigned cls) {
  struct remote_batch *b = &batches[cls];
  struct hk_slab *s = b->slab;
  b->slab = NULL;
  batched[cls / 64] &= ~((uint64_t)1 << (cls % 64));
  push(s, b->first, b->last, b->n);
}

void hk_remote_flush_all(void) {
  for (unsigned w = 0; w < HK_BATCH_WORDS; w++)
    while (batched[w])
      flush_class(w * 64 + (unsigned)__builtin_ctzll(batched[w]));
}

void hk_free_remote(struct hk_slab *s, unsigned i, int batch) {
  unsigned cls = hk_slab_class(s);
  struct remote_batch *b = &batches[cls];
  if (b->slab == s) {
    hk_freelist_chain(s, i, b->first);
    b->first = (uint16_t)i;
    if (++b->n >= HK_REMOTE_BATCH)
      flush_class(cls);
    return;
  }
  if (b->slab)
    flush_class(cls);
  if (!batch) {
    push(s, i, i, 1);
    return;
  }
  b->slab = s;
  b->first = b->last = (uint16_t)i;
  b->n = 1;
  batched[cls / 64] |= (uint64_t)1 << (cls % 64);
}
