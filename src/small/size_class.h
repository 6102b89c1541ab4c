/* size_class.h: mapping request sizes to size classes and back.
 *
 * Classes step by 16 bytes up to 128 (every block of 16 bytes or more must
 * be 16-byte aligned, so an 8-byte step would break alignment), then eight
 * classes per power of two up to HK_MEDIUM_MAX. Internal waste is therefore
 * at most 15 bytes below 128 and at most 1/9 (11.1%) above: the request
 * sizes real programs use most were measured (bench/size-waste.sh) and four
 * classes per doubling wasted 15 to 20% on several of them.
 */
#ifndef HK_SIZE_CLASS_H
#define HK_SIZE_CLASS_H

#include <stddef.h>
#include <stdint.h>

#include "base/hidden.h"
#include "base/options.h"
#include "base/types.h"

#define HK_CLASS_COUNT 96   /* 8 linear + 8 per doubling from 128 to 256K */
#define HK_TINY_CLASSES 32  /* classes up to HK_TINY_MAX */
/* The largest class served from the tiny geometry's small slabs (see
 * hk_class_geometry). */
#define HK_SMALL_SLAB_MAX 4096

extern HK_HIDDEN const uint32_t hk_class_size[HK_CLASS_COUNT];
extern HK_HIDDEN const uint8_t hk_class_small[HK_TINY_MAX / 16 + 1];

/* Class for a size in [0, HK_MEDIUM_MAX]. */
static inline unsigned hk_size_to_class(size_t size) {
  if (__builtin_expect(size <= HK_TINY_MAX, 1))
    return hk_class_small[(size + 15) >> 4];
  size_t s = size - 1;
  unsigned p = 63u - (unsigned)__builtin_clzl(s); /* 2^p < size <= 2^(p+1) */
  /* HK_TINY_CLASSES + (p - 10) * 8 + (s >> (p - 3)) - 8, folded. */
  return (unsigned)(s >> (p - 3u)) + 8u * p - 56u;
}

static inline unsigned hk_class_geometry(unsigned cls) {
  if (cls < HK_TINY_CLASSES)
    return hk_options.use_superslab ? HK_GEOM_TINY : HK_GEOM_TINY_SOLO;
  /* Up to 4 KiB, 64 KiB slabs hold 16 blocks or more. Eight classes per
   * doubling make twice the slabs a heap has partly used; on 512 KiB
   * slabs a thread-per-request server kept 14.4 MiB resident where 4
   * classes per doubling kept 8.6, on 64 KiB slabs 10.9. Those slabs
   * are in SuperSlabs of their own (HK_GEOM_SMALL, see types.h), whose
   * link arrays fit their few blocks. */
  if (hk_class_size[cls] <= HK_SMALL_SLAB_MAX)
    return HK_GEOM_SMALL;
  return hk_class_size[cls] <= 64 * 1024 ? HK_GEOM_MEDIUM : HK_GEOM_WHOLE;
}

/* Smallest class >= size whose blocks are all aligned to `align`
 * (a power of two <= HK_SMALL_ALIGN_MAX); HK_CLASS_COUNT if none. */
unsigned hk_class_for_aligned(size_t size, size_t align);

#endif
