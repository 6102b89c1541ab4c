/* size_class.c: the size class tables (see size_class.h for the scheme). */
#include "small/size_class.h"

/* Eight classes per power of two above 128: no request above 128 bytes
 * wastes more than 1/9 (11.1%) of its block. bench/size-waste.sh measured
 * why four were not enough: sqlite's page cache asks for 4368 bytes (15%
 * of a 5120 block), node for 4112 (20%), git and node for 528 (18% of 640),
 * sqlite 400,000 times for 136 (15% of 160). */
const uint32_t hk_class_size[HK_CLASS_COUNT] = {
    16, 32, 48, 64, 80, 96, 112, 128,
    144, 160, 176, 192, 208, 224, 240, 256,
    288, 320, 352, 384, 416, 448, 480, 512,
    576, 640, 704, 768, 832, 896, 960, 1024,
    1152, 1280, 1408, 1536, 1664, 1792, 1920, 2048,
    2304, 2560, 2816, 3072, 3328, 3584, 3840, 4096,
    4608, 5120, 5632, 6144, 6656, 7168, 7680, 8192,
    9216, 10240, 11264, 12288, 13312, 14336, 15360, 16384,
    18432, 20480, 22528, 24576, 26624, 28672, 30720, 32768,
    36864, 40960, 45056, 49152, 53248, 57344, 61440, 65536,
    73728, 81920, 90112, 98304, 106496, 114688, 122880, 131072,
    147456, 163840, 180224, 196608, 212992, 229376, 245760, 262144,
};

/* Indexed by (size + 15) / 16 for sizes up to HK_TINY_MAX. */
const uint8_t hk_class_small[HK_TINY_MAX / 16 + 1] = {
    0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
    15, 16, 16, 17, 17, 18, 18, 19, 19, 20, 20, 21, 21, 22, 22, 23,
    23, 24, 24, 24, 24, 25, 25, 25, 25, 26, 26, 26, 26, 27, 27, 27,
    27, 28, 28, 28, 28, 29, 29, 29, 29, 30, 30, 30, 30, 31, 31, 31,
    31,
};

unsigned hk_class_for_aligned(size_t size, size_t align) {
  if (size > HK_MEDIUM_MAX || align > HK_SMALL_ALIGN_MAX)
    return HK_CLASS_COUNT;
  unsigned cls = hk_size_to_class(size < align ? align : size);
  while (cls < HK_CLASS_COUNT && hk_class_size[cls] % align != 0)
    cls++;
  return cls;
}
