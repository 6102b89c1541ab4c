/* size_class.c: the size class tables (see size_class.h for the scheme). */
#include "internal/size_class.h"

const uint32_t hk_class_size[HK_CLASS_COUNT] = {
    16, 32, 48, 64, 80, 96, 112, 128,
    160, 192, 224, 256, 320, 384, 448, 512,
    640, 768, 896, 1024, 1280, 1536, 1792, 2048,
    2560, 3072, 3584, 4096, 5120, 6144, 7168, 8192,
    10240, 12288, 14336, 16384, 20480, 24576, 28672, 32768,
    40960, 49152, 57344, 65536, 81920, 98304, 114688, 131072,
    163840, 196608, 229376, 262144,
};

/* Indexed by (size + 15) / 16 for sizes up to HK_TINY_MAX. */
const uint8_t hk_class_small[HK_TINY_MAX / 16 + 1] = {
    0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 8, 9, 9, 10, 10, 11,
    11, 12, 12, 12, 12, 13, 13, 13, 13, 14, 14, 14, 14, 15, 15, 15,
    15, 16, 16, 16, 16, 16, 16, 16, 16, 17, 17, 17, 17, 17, 17, 17,
    17, 18, 18, 18, 18, 18, 18, 18, 18, 19, 19, 19, 19, 19, 19, 19,
    19,
};

unsigned hk_class_for_aligned(size_t size, size_t align) {
  if (size > HK_MEDIUM_MAX || align > HK_SMALL_ALIGN_MAX)
    return HK_CLASS_COUNT;
  unsigned cls = hk_size_to_class(size < align ? align : size);
  while (cls < HK_CLASS_COUNT && hk_class_size[cls] % align != 0)
    cls++;
  return cls;
}
