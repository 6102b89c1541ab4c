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

struct hk_slab;

/* Block i of s, which the caller has claimed (LIVE -> PENDING, see
 * hk_slab_claim), goes back to s's owner: into the calling thread's batch
 * when `batch` (the thread has a heap, whose exit flushes it, and s has an
 * owner), else straight onto the remote list. */
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
