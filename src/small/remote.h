/* remote.h: frees into slabs the calling thread does not own.
 *
 * Such a block goes back to its owner through the slab's atomic remote
 * list (slab.h), which the owner collects when its own list runs dry. A
 * thread that frees what another allocated (a consumer, a request's
 * buffers) mostly frees into one slab many times in a row, so its frees
 * wait in a small batch per size class and reach the slab with one CAS.
 */
#ifndef HK_REMOTE_H
#define HK_REMOTE_H

#include <stdint.h>

#include "small/size_class.h"
#include "small/slab.h"

struct hk_slab;

/* A thread's remote frees into one slab, chained first -> ... -> last,
 * waiting to be pushed with one CAS. One batch per size class, since the
 * blocks a producer hands over are of many sizes, each class from its own
 * current slab. The blocks stay counted in the slab's `used` meanwhile, so
 * the slab cannot go away under the batch; at most HK_REMOTE_BATCH blocks
 * per class wait, until the thread's next allocation slow path, its exit
 * or malloc_trim. */
struct hk_remote_batch {
  struct hk_slab *slab;
  uint16_t first, last, n;
};
extern __thread struct hk_remote_batch hk_remote_batches[HK_CLASS_COUNT]
    __attribute__((tls_model("initial-exec")));
#define HK_REMOTE_BATCH 64

/* Pushes class cls's batch (which holds blocks) onto its slab's list. */
void hk_remote_flush_class(unsigned cls);

/* Block i of s, which the caller has claimed (LIVE -> PENDING, see
 * hk_slab_claim), joins the calling thread's batch if the batch is s's;
 * returns 0, with nothing done, if it is another slab's or there is none.
 * Inline: a consumer's frees mostly go this way, and a call would cost
 * them the registers the rest needs. */
static inline int hk_free_remote_append(struct hk_slab *s, unsigned i) {
  unsigned cls = hk_slab_class(s);
  struct hk_remote_batch *b = &hk_remote_batches[cls];
  if (__builtin_expect(b->slab != s, 0))
    return 0;
  hk_freelist_chain(s, i, b->first);
  b->first = (uint16_t)i;
  if (__builtin_expect(++b->n >= HK_REMOTE_BATCH, 0))
    hk_remote_flush_class(cls);
  return 1;
}

/* Block i of s, claimed, goes back to s's owner: a new batch when `batch`
 * (the thread has a heap, whose exit flushes it), the one it replaces
 * pushed; else straight onto the remote list. */
void hk_free_remote(struct hk_slab *s, unsigned i, int batch);

/* Bit c % 64 of word c / 64 set: the calling thread's batch of class c
 * holds blocks. */
#define HK_BATCH_WORDS ((HK_CLASS_COUNT + 63) / 64)
extern __thread uint64_t hk_remote_batched[HK_BATCH_WORDS]
    __attribute__((tls_model("initial-exec")));

void hk_remote_flush_all(void);

/* Pushes the calling thread's batches onto their slabs' remote lists;
 * done on every allocation slow path, at thread exit and on malloc_trim.
 * Inline: the slow path of a thread that frees only its own blocks pays
 * a test, not a call. */
static inline void hk_remote_flush(void) {
  uint64_t any = 0;
  for (unsigned w = 0; w < HK_BATCH_WORDS; w++)
    any |= hk_remote_batched[w];
  if (any)
    hk_remote_flush_all();
}

#endif
