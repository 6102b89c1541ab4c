/* thread.c: a thread's heap from its first allocation to its exit (see
 * thread.h). */
#include "small/thread.h"

#include <pthread.h>

#include "small/heap.h"
#include "small/heaps.h"
#include "small/remote.h"

static pthread_key_t thread_key;
/* Set once the thread's heap was given back at its exit. */
static __thread int exited __attribute__((tls_model("initial-exec")));

static void thread_exit(void *heap) { hk_heap_detach(heap); }

void hk_thread_init(void) { pthread_key_create(&thread_key, thread_exit); }

struct hk_heap *hk_heap_attach(void) {
  /* Init may have allocated through us (pthread_atfork does on some libcs)
   * and attached a heap already. */
  if (hk_tls_heap != &hk_heap_empty)
    return hk_tls_heap;
  struct hk_heap *h = hk_heaps_new();
  if (!h)
    return NULL;
  /* Publish before registering: registration may allocate, and that
   * allocation must find this heap rather than attach another. */
  hk_tls_heap = h;
  pthread_setspecific(thread_key, h);
  return h;
}

struct hk_heap *hk_heap_for_free(void) {
  if (hk_tls_heap != &hk_heap_empty)
    return hk_tls_heap;
  return exited ? NULL : hk_heap_attach();
}

void hk_heap_detach(struct hk_heap *h) {
  hk_remote_flush();
  exited = 1;
  if (h == NULL || h == &hk_heap_empty)
    return;
  if (hk_tls_heap == h)
    hk_tls_heap = &hk_heap_empty;
  hk_heap_release(h);
}
