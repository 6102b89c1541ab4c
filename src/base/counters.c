/* counters.c: the process-wide counters of counters.h. */
#include "base/counters.h"

struct hk_counters hk_counters;

/* Adds v to *c and raises *peak to the sum if it is a new high. */
static void add_with_peak(_Atomic size_t *c, _Atomic size_t *peak, size_t v) {
  size_t now = atomic_fetch_add_explicit(c, v, memory_order_relaxed) + v;
  size_t high = atomic_load_explicit(peak, memory_order_relaxed);
  while (now > high &&
         !atomic_compare_exchange_weak_explicit(peak, &high, now,
                                                memory_order_relaxed,
                                                memory_order_relaxed)) {
  }
}

void hk_counters_mapped(size_t bytes) {
  add_with_peak(&hk_counters.mapped, &hk_counters.peak_mapped, bytes);
}

void hk_counters_unmapped(size_t bytes) {
  hk_counters_sub(&hk_counters.mapped, bytes);
}

void hk_counters_superslabs(int delta) {
  if (delta < 0)
    hk_counters_sub(&hk_counters.superslabs, 1);
  else
    add_with_peak(&hk_counters.superslabs, &hk_counters.peak_superslabs, 1);
}
