/* remote.c: frees into other threads' slabs (see remote.h). */
#include "small/remote.h"

#include <stdint.h>

#include "small/abandon.h"
#include "small/size_class.h"
#include "small/slab.h"

__thread struct hk_remote_batch hk_remote_batches[HK_CLASS_COUNT]
    __attribute__((tls_model("initial-exec")));
__thread uint64_t hk_remote_batched[HK_BATCH_WORDS]
    __attribute__((tls_model("initial-exec")));
#define batches hk_remote_batches
#define batched hk_remote_batched

static void push(struct hk_slab *s, unsigned first, unsigned last,
                 unsigned n) {
  /* Past the CAS the owner may collect our blocks, empty the slab and
   * unmap its SuperSlab: only a stuck slab may be touched here, and it
   * cannot go away because nobody can adopt it until it is unstuck. */
  if (hk_slab_remote_push(s, first, last, n) == HK_REMOTE_STUCK)
    hk_abandoned_unstick(s);
}

void hk_remote_flush_class(unsigned cls) {
  struct hk_remote_batch *b = &batches[cls];
  struct hk_slab *s = b->slab;
  b->slab = NULL;
  batched[cls / 64] &= ~((uint64_t)1 << (cls % 64));
  push(s, b->first, b->last, b->n);
}

void hk_remote_flush_all(void) {
  for (unsigned w = 0; w < HK_BATCH_WORDS; w++)
    while (batched[w])
      hk_remote_flush_class(w * 64 + (unsigned)__builtin_ctzll(batched[w]));
}

void hk_free_remote(struct hk_slab *s, unsigned i, int batch) {
  unsigned cls = hk_slab_class(s);
  struct hk_remote_batch *b = &batches[cls];
  if (b->slab)
    hk_remote_flush_class(cls);
  if (!batch) {
    push(s, i, i, 1);
    return;
  }
  b->slab = s;
  b->first = b->last = (uint16_t)i;
  b->n = 1;
  batched[cls / 64] |= (uint64_t)1 << (cls % 64);
}
