/* init.c: start-up, the thread-exit hook and fork handlers.
 *
 * malloc can be called by the loader, by libc, or by a thread created
 * before our constructor runs, so initialisation is lazy and re-entrant:
 * nothing here calls malloc on the way in, and a nested call made by a libc
 * function we use (pthread_atfork, pthread_setspecific) is let through.
 */
#define _GNU_SOURCE
#include "api/init.h"

#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/single_threaded.h>

#include "base/crash.h"
#include "small/abandon.h"
#include "small/heaps.h"
#include "large/large.h"
#include "base/options.h"
#include "platform/os.h"
#include "api/stats.h"
#include "small/superslab.h"
#include "small/thread.h"

_Atomic int hk_init_state;
static __thread int init_running_here
    __attribute__((tls_model("initial-exec")));

/*
 * Fork.
 *
 * glibc's fork() runs the atfork prepare handlers first, then takes its
 * stdio list lock, then its malloc locks, and forks.  Its lock order is
 * therefore: stdio list lock -> FILE lock -> malloc locks.  fflush(NULL)
 * holds the list lock while it takes each FILE lock; getline, ungetc,
 * open_memstream's writes and buffer allocation call malloc or realloc
 * while holding a FILE lock.  A prepare handler that took our locks and
 * then let fork wait for the list lock reversed that order, and this
 * deadlock was real (glibc's tst-malloc-fork-deadlock hung 9 runs in 20):
 *   fork:          holds our locks, waits for the list lock;
 *   fflush(NULL):  holds the list lock, waits for a FILE lock;
 *   getline:       holds that FILE lock, waits in realloc for our lock.
 *
 * So the prepare handler takes the list lock itself, before our locks, and
 * keeps glibc's order.  Why nothing can then wait in a cycle:
 *  - The list lock is recursive: fork's own _IO_list_lock() after the
 *    handlers nests in ours.
 *  - While fork waits for the list lock it holds none of our locks (at
 *    most glibc's atfork lock, which no malloc path takes; 2.36 drops it
 *    around each handler), so every malloc made under a FILE lock
 *    completes, that FILE lock is released, and so in turn is the list
 *    lock.  Concurrent forks queue on the list lock the same way.
 *  - While fork waits for our locks, their holders are in our critical
 *    sections, which wait for no libc lock: they make system calls (mmap,
 *    munmap, madvise, write), never stdio or dynamic-loader calls.
 *  - Holding our locks, fork takes only glibc's NSS database lock (a leaf:
 *    held for a copy or a stat, never across malloc or stdio) and glibc's
 *    own malloc locks (idle: malloc is ours).  It takes no FILE lock; the
 *    child resets them all.
 * What remains is what runs after our handler and before fork's own
 * malloc locks, which no handler can get behind; it holds for any
 * allocator that locks in a prepare handler:
 *  - the prepare handlers registered before ours must not allocate or
 *    wait for a FILE lock (we register in hk_init_slow, on the process's
 *    first allocation or at our constructor, in practice first);
 *  - glibc 2.36 takes its atfork lock again after each handler, and
 *    pthread_atfork allocates under it once its table outgrows 48 entries;
 *  - glibc releases after 2.36 also take popen's lock (not exported)
 *    before the list lock, and popen reallocs under it once it has eight
 *    or more other popen streams to close in the child.
 *
 * In the parent, fork has dropped its nesting of the list lock before the
 * parent handlers run; ours releases our locks, then the list lock.  In
 * the child, fork has reset the list lock and every FILE lock already (the
 * child's one thread owns nothing), so ours must not unlock it: it resets
 * it again, which is idempotent and covers a fork that did not see itself
 * as multi-threaded (a prepare handler started the first thread) and so
 * left the lock as we took it.
 *
 * A libc without these glibc exports (musl) leaves the weak references
 * null, and the handlers take our locks only.  A single-threaded process
 * takes no lock at all: nobody else can hold one, and a fork from a signal
 * handler that interrupted malloc would otherwise wait forever on its own
 * lock (glibc skips its list and malloc locks then too).  The child
 * reinitialises our locks either way.
 */
extern void _IO_list_lock(void) __attribute__((weak));
extern void _IO_list_unlock(void) __attribute__((weak));
extern void _IO_list_resetlock(void) __attribute__((weak));

static int have_list_lock(void) {
  return _IO_list_lock && _IO_list_unlock && _IO_list_resetlock;
}

/* Whether fork_prepare took the locks. Several threads may fork at once
 * and run the handlers concurrently (glibc 2.36 holds no lock of its own
 * around them), so this is written only by the one fork that holds the
 * locks, or by the only thread there is. */
static int fork_locked;

static void fork_prepare(void) {
  if (__libc_single_threaded) {
    fork_locked = 0;
    return;
  }
  if (have_list_lock())
    _IO_list_lock();
  hk_heaps_fork_prepare();
  hk_abandoned_fork_prepare();
  hk_large_fork_prepare();
  hk_superslab_fork_prepare();
  fork_locked = 1;
}

static void fork_parent(void) {
  if (!fork_locked)
    return;
  fork_locked = 0;
  hk_superslab_fork_parent();
  hk_large_fork_parent();
  hk_abandoned_fork_parent();
  hk_heaps_fork_parent();
  if (have_list_lock())
    _IO_list_unlock();
}

static void fork_child(void) {
  int locked = fork_locked;
  fork_locked = 0;
  hk_superslab_fork_child();
  hk_large_fork_child();
  hk_abandoned_fork_child();
  hk_heaps_fork_child();
  if (locked && have_list_lock())
    _IO_list_resetlock();
}

void hk_init_slow(void) {
  int expected = 0;
  if (atomic_compare_exchange_strong_explicit(&hk_init_state, &expected, 1,
                                              memory_order_acq_rel,
                                              memory_order_acquire)) {
    init_running_here = 1;
    /* The page size and address bits, read at start-up (an unsupported
     * page size stops the program here, not at some later mapping). */
    (void)hk_os_facts_word();
    hk_options_init();
    if (hk_options.stats)
      hk_stats_start();
    if (hk_options.verbose)
      hk_options_print();
    hk_crash_handler_install();
    hk_thread_init();
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

/* Programs that never allocate still get their knob warnings and the
 * HAKMEM_VERBOSE line; everything else initialises on first use. */
__attribute__((constructor)) static void init_at_load(void) { hk_init(); }
