/* superslab.h: the shared pool of SuperSlabs and the slabs cut from them.
 *
 * This is the locked slow stage of the tiny and medium tiers: a thread
 * comes here only when its own caches have no slab for a class, once per
 * slab (64 KiB to 2 MiB of blocks), never per block. The pool grows by
 * mapping SuperSlabs on demand and shrinks by unmapping empty ones; it has
 * no fixed capacity.
 */
#ifndef HK_SUPERSLAB_H
#define HK_SUPERSLAB_H

#include <stddef.h>
#include <stdint.h>

#include "platform/os.h"
#include "base/types.h"

static inline struct hk_superslab *hk_slab_superslab(const struct hk_slab *s) {
  return (struct hk_superslab *)((uintptr_t)s & ~(uintptr_t)HK_REGION_MASK);
}

/* Which slab of its SuperSlab s is, and where its memory begins. */
static inline unsigned hk_slab_index(const struct hk_slab *s) {
  return (unsigned)(s - hk_slab_superslab(s)->slabs);
}

static inline uintptr_t hk_slab_base(const struct hk_slab *s) {
  const struct hk_superslab *ss = hk_slab_superslab(s);
  return (uintptr_t)ss + ((uintptr_t)hk_slab_index(s) << ss->slab_shift);
}

/* Where slab 0's blocks start: the header has the SuperSlab's first page,
 * whole, so that the rest of slab 0 is whole pages to give back. */
static inline size_t hk_superslab_data_offset(void) { return hk_page_size(); }

/* The first slab's links in the SuperSlab's metadata mapping: the page
 * after the remote heads (types.h). */
static inline _Atomic hk_link *
hk_superslab_links(const struct hk_superslab *ss) {
  return (_Atomic hk_link *)((char *)ss->meta + hk_page_size());
}

/* Where s's blocks start (past the header in slab 0) and where its links
 * are. */
static inline uintptr_t hk_slab_data_start(const struct hk_slab *s) {
  uintptr_t base = hk_slab_base(s);
  return hk_slab_index(s) == 0 ? base + hk_superslab_data_offset() : base;
}

static inline _Atomic hk_link *hk_slab_links_at(const struct hk_slab *s) {
  const struct hk_superslab *ss = hk_slab_superslab(s);
  return hk_superslab_links(ss) + (uintptr_t)hk_slab_index(s) * ss->link_stride;
}

/* log2 of the slab size of a geometry, and how many slabs a SuperSlab of
 * it has, for this page size. */
unsigned hk_geometry_shift(unsigned geometry);
unsigned hk_geometry_slabs(unsigned geometry);

/* An unused slab of the geometry, or NULL with errno ENOMEM. */
struct hk_slab *hk_superslab_acquire_slab(unsigned geometry);

/* Returns a slab that hk_slab_reset emptied to its SuperSlab. */
void hk_superslab_release_slab(struct hk_slab *slab);
/* The same for a slab that has already sat unused for the purge delay (a
 * heap kept it): its pages go back to the OS now. */
void hk_superslab_release_slab_now(struct hk_slab *slab);

/* Gives [addr, addr+size) of `ss` (page-aligned) back to the OS: 0 or the
 * errno of the refused decommit. */
int hk_superslab_decommit(struct hk_superslab *ss, void *addr, size_t size);

/* Unmaps the empty SuperSlabs kept for reuse. Returns bytes released. */
size_t hk_superslab_trim(void);

/* Calls fn on every slab cut into blocks, with the pool locks held (for
 * statistics: the slabs' owners keep running meanwhile). */
void hk_superslab_for_each_slab(void (*fn)(struct hk_slab *, void *), void *arg);

void hk_superslab_fork_prepare(void);
void hk_superslab_fork_parent(void);
void hk_superslab_fork_child(void);

#endif
