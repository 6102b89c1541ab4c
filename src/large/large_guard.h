/* large_guard.h: HAKMEM_HARDENED's guard pages around large blocks. */
#ifndef HK_LARGE_GUARD_H
#define HK_LARGE_GUARD_H

#include <stddef.h>
#include <stdint.h>

#include "large/large_chunk.h"

/* Flags the live extent at `page` HK_PAGE_GUARD (its block starts a page
 * in) and makes its guard pages inaccessible, each if the budget allows
 * and the kernel agrees; a block left without both is counted in
 * hk_counters.large_unguarded. Under the lock, or on a chunk not yet
 * filed. Returns 1 if both are in place. */
int hk_extent_guard(struct hk_large_chunk *c, uint32_t page);

/* Makes the guard pages of the live guarded extent at *page (*pages long)
 * accessible again, before it is freed; what remains to free in *page and
 * *pages (a guard page that stays inaccessible is left out, for good). */
void hk_extent_unguard(struct hk_large_chunk *c, uint32_t *page,
                       uint32_t *pages);

#endif
