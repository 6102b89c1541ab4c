/* init.h: process-wide start-up and fork handling. */
#ifndef HK_INIT_H
#define HK_INIT_H

#include <stdatomic.h>

extern _Atomic int hk_init_state; /* 0 new, 1 running, 2 done */

void hk_init_slow(void);

/* Makes sure options, the tag secret and the thread-exit hook are set up.
 * Safe to call before constructors run and from within its own init. */
static inline void hk_init(void) {
  if (__builtin_expect(
          atomic_load_explicit(&hk_init_state, memory_order_acquire) != 2, 0))
    hk_init_slow();
}

#endif
