/* init.c: start-up, the thread-exit hook and fork handlers.
 *
 * malloc can be called by the loader, by libc, or by a thread created
 * before our constructor runs, so initialisation is lazy and re-entrant:
 * nothing here calls malloc on the way in, and a nested call made by a libc
 * function we use (pthread_atfork, pthread_setspecific) is let through.
 */
#define _GNU_SOURCE
#include "internal/init.h"

#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/single_threaded.h>

#include "internal/crash.h"
#include "internal/heap.h"
#include "internal/large.h"
#include "internal/options.h"
#include "internal/superslab.h"

_Atomic int hk_init_state;
static __thread int init_running_here
    __attribute__((tls_model("initial-exec")));
static pthread_key_t thread_key;

static void thread_exit(void *heap) {
  hk_heap_detach(heap);
}

/* Whether fork_prepare took the locks. A single-threaded process does not
 * take them: nobody else can hold them, and a fork from a signal handler
 * that interrupted malloc would otherwise wait forever on its own lock (as
 * glibc, which skips its malloc locks in that case too). The child
 * reinitialises the locks either way. */
static int fork_locked;

static void fork_prepare(void) {
  fork_locked = !__libc_single_threaded;
  if (!fork_locked)
    return;
  hk_heap_fork_prepare();
  hk_large_fork_prepare();
  hk_superslab_fork_prepare();
}

static void fork_parent(void) {
  if (!fork_locked)
    return;
  hk_superslab_fork_parent();
  hk_large_fork_parent();
  hk_heap_fork_parent();
}

static void fork_child(void) {
  hk_superslab_fork_child();
  hk_large_fork_child();
  hk_heap_fork_child();
}

void hk_init_slow(void) {
  int expected = 0;
  if (atomic_compare_exchange_strong_explicit(&hk_init_state, &expected, 1,
                                              memory_order_acq_rel,
                                              memory_order_acquire)) {
    init_running_here = 1;
    hk_options_init();
    if (hk_options.verbose)
      hk_options_print();
    hk_crash_handler_install();
    pthread_key_create(&thread_key, thread_exit);
    pthread_atfork(fork_prepare, fork_parent, fork_child);
    init_running_here = 0;
    atomic_store_explicit(&hk_init_state, 2, memory_order_release);
    return;
  }
  if (init_running_here)
    return;
  while (atomic_load_explicit(&hk_init_state, memory_order_acquire) != 2)
    sched_yield();
}

void hk_thread_register(struct hk_heap *h) {
  pthread_setspecific(thread_key, h);
}

/* Programs that never allocate still get their knob warnings and the
 * HAKMEM_VERBOSE line; everything else initialises on first use. */
__attribute__((constructor)) static void init_at_load(void) { hk_init(); }
