/* size_class.h: mapping request sizes to size classes and back.
 *
 * Classes step by 16 bytes up to 128 (every block of 16 bytes or more must
 * be 16-byte aligned, so an 8-byte step would break alignment), then four
 * classes per power of two up to HK_MEDIUM_MAX. Internal waste is therefore
 * at most 15 bytes below 128 and under 25% above.
 */
#ifndef HK_SIZE_CLASS_H
#define HK_SIZE_CLASS_H

#include <stddef.h>
#include <stdint.h>

#include "options.h"
#include "types.h"

#define HK_CLASS_COUNT 52   /* 8 linear + 4 per doubling from 128 to 256K */
#define HK_TINY_CLASSES 20  /* classes up to HK_TINY_MAX */

extern const uint32_t hk_class_size[HK_CLASS_COUNT];
extern const uint8_t hk_class_small[HK_TINY_MAX / 16 + 1];

/* Class for a size in [0, HK_MEDIUM_MAX]. */
static inline unsigned hk_size_to_class(size_t size) {
  if (__builtin_expect(size <= HK_TINY_MAX, 1))
    return hk_class_small[(size + 15) >> 4];
  size_t s = size - 1;
  unsigned p = 63u - (unsigned)__builtin_clzl(s); /* 2^p < size <= 2^(p+1) */
  return 8u + (p - 7u) * 4u + (unsigned)(s >> (p - 2u)) - 4u;
}

static inline unsigned hk_class_geometry(unsigned cls) {
  if (cls < HK_TINY_CLASSES)
    return hk_options.use_superslab ? HK_GEOM_TINY : HK_GEOM_TINY_SOLO;
  return hk_class_size[cls] <= 64 * 1024 ? HK_GEOM_MEDIUM : HK_GEOM_HUGE;
}

/* Smallest class >= size whose blocks are all aligned to `align`
 * (a power of two <= HK_SMALL_ALIGN_MAX); HK_CLASS_COUNT if none. */
unsigned hk_class_for_aligned(size_t size, size_t align);

#endif
