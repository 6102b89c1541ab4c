/* test_size_class.c: unit tests of the size-class tables and mappings
 * (src/small/size_class.c, src/small/size_class.h).
 *
 * Every request size the small tiers serve is checked against the scheme
 * the header promises: the class fits the request, no smaller class would,
 * waste stays within the stated bounds, and the aligned variant only gives
 * classes whose blocks are aligned. The geometry of each class must leave
 * room for several blocks in a slab, or the small tiers would degenerate.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#include "small/size_class.h"
#include "small/superslab.h"
#include "base/types.h"

/* ck_assert_msg records a checkpoint on every call, which costs a write to
 * Check's pipe; the loops below test millions of cases, so they only call
 * into Check on failure. */
#define EXPECT(cond, ...)                                                      \
  do {                                                                         \
    if (!(cond))                                                               \
      ck_abort_msg(__VA_ARGS__);                                               \
  } while (0)

/* Slab sizes per geometry as superslab.c cuts them for this page size
 * (test_platform checks them for each page size); slab 0 loses its first
 * page to the header, so the worst slab holds this many bytes of blocks. */
static size_t geometry_worst_slab_bytes(unsigned g) {
  return ((size_t)1 << hk_geometry_shift(g)) - hk_superslab_data_offset();
}

START_TEST(test_table_shape) {
  ck_assert_uint_eq(hk_class_size[0], 16);
  ck_assert_uint_eq(hk_class_size[HK_CLASS_COUNT - 1], HK_MEDIUM_MAX);
  ck_assert_uint_eq(hk_class_size[HK_TINY_CLASSES - 1], HK_TINY_MAX);
  for (unsigned c = 0; c < HK_CLASS_COUNT; c++) {
    EXPECT(hk_class_size[c] % 16 == 0, "class %u size %u not 16-multiple", c,
           hk_class_size[c]);
    if (c > 0)
      EXPECT(hk_class_size[c] > hk_class_size[c - 1],
             "class %u (%u) not above class %u (%u)", c, hk_class_size[c],
             c - 1, hk_class_size[c - 1]);
  }
}
END_TEST

START_TEST(test_every_size_maps_to_smallest_fitting_class) {
  for (size_t size = 0; size <= HK_MEDIUM_MAX; size++) {
    unsigned c = hk_size_to_class(size);
    EXPECT(c < HK_CLASS_COUNT, "size %zu: class %u out of range", size, c);
    EXPECT(hk_class_size[c] >= size, "size %zu: class %u is %u bytes", size, c,
           hk_class_size[c]);
    if (size > 16)
      EXPECT(c > 0 && hk_class_size[c - 1] < size,
             "size %zu: class %u (%u) but class %u (%u) fits too", size, c,
             hk_class_size[c], c - 1, c ? hk_class_size[c - 1] : 0);
    else
      EXPECT(c == 0, "size %zu: class %u, not the 16-byte class", size, c);
  }
}
END_TEST

START_TEST(test_waste_bounded) {
  /* Size 0 is excluded: it gets the minimum block, all of it "waste". */
  for (size_t size = 1; size <= HK_MEDIUM_MAX; size++) {
    size_t waste = hk_class_size[hk_size_to_class(size)] - size;
    if (size <= 128)
      EXPECT(waste <= 15, "size %zu wastes %zu bytes", size, waste);
    else
      EXPECT(waste * 9 <= hk_class_size[hk_size_to_class(size)],
             "size %zu wastes %zu bytes (> 1/9 of its block)", size, waste);
  }
}
END_TEST

/* The request sizes that sqlite3, python3, git, gcc/g++ and node asked for
 * most often or with most bytes in bench/size-waste.sh's workloads (see
 * that script for how to measure them again). With four classes per
 * doubling, 136, 528, 4112 and 4368 (sqlite's page cache: a page and its
 * header) wasted 15% to 20%. None may waste more than 12% of its block,
 * unless the 16-byte step forces it: a block of 16 bytes or more must be
 * 16-byte aligned, so below 128 the class is the request rounded up to 16
 * (and at least 16), which is then the bound. */
static const size_t measured_sizes[] = {
    /* sqlite3 */ 16, 24, 32, 56, 72, 88, 104, 120, 136, 312, 448, 1016, 2432,
    4368,
    /* python3 */ 2, 3, 5, 7, 8, 13, 48, 64, 112, 67168, 75616, 85120, 95808,
    107840, 121376, 136576, 153696, 172960, 194624, 219008, 246432,
    /* git */ 62, 105, 488, 504, 512, 528, 1782, 1783, 1808, 5952, 7160,
    1024, 2920, 32768, 32816, 65536, 131072,
    /* gcc, g++ */ 12, 40, 208, 248, 2048, 3200, 3648, 4064, 8032, 8168, 65536,
    /* node */ 4, 10, 14, 1104, 2888, 3096, 4112, 8176, 8192,
};

START_TEST(test_measured_sizes_waste) {
  for (size_t i = 0; i < sizeof measured_sizes / sizeof *measured_sizes; i++) {
    size_t size = measured_sizes[i];
    size_t block = hk_class_size[hk_size_to_class(size)];
    size_t forced = size < 16 ? 16 : (size + 15) & ~(size_t)15;
    EXPECT(block == forced || (block - size) * 100 <= block * 12,
           "size %zu: block %zu wastes %zu%%", size, block,
           (block - size) * 100 / block);
  }
}
END_TEST

START_TEST(test_geometry_consistent) {
  /* The SuperSlab geometries, whatever the environment says: the library's
   * constructor may have read HAKMEM_TINY_USE_SUPERSLAB=0, whose solo
   * geometry is numbered apart. */
  hk_options.use_superslab = 1;
  for (unsigned c = 0; c < HK_CLASS_COUNT; c++) {
    unsigned g = hk_class_geometry(c);
    ck_assert_uint_lt(g, HK_GEOM_COUNT);
    /* The tiny classes have the tiny geometry, the others up to
     * HK_SMALL_SLAB_MAX its slabs in SuperSlabs of their own, whose link
     * arrays are sized for blocks above HK_TINY_MAX. */
    EXPECT((g == HK_GEOM_TINY) == (hk_class_size[c] <= HK_TINY_MAX),
           "class %u (%u bytes) in geometry %u", c, hk_class_size[c], g);
    EXPECT((g == HK_GEOM_SMALL) == (hk_class_size[c] > HK_TINY_MAX &&
                                    hk_class_size[c] <= HK_SMALL_SLAB_MAX),
           "class %u (%u bytes) in geometry %u", c, hk_class_size[c], g);
    /* Tiny classes are exactly those up to HK_TINY_MAX: the tiny fast
     * path's table and the geometry split must agree. */
    EXPECT((c < HK_TINY_CLASSES) == (hk_class_size[c] <= HK_TINY_MAX),
           "class %u (%u bytes) vs HK_TINY_CLASSES %u", c, hk_class_size[c],
           HK_TINY_CLASSES);
    if (c > 0)
      EXPECT(g >= hk_class_geometry(c - 1),
             "geometry goes down from class %u to %u", c - 1, c);
  }
}
END_TEST

START_TEST(test_blocks_fit_slab_four_times) {
  for (unsigned c = 0; c < HK_CLASS_COUNT; c++) {
    size_t room = geometry_worst_slab_bytes(hk_class_geometry(c));
    EXPECT(room / hk_class_size[c] >= 4,
           "class %u (%u bytes): only %zu blocks in a slab", c,
           hk_class_size[c], room / hk_class_size[c]);
  }
}
END_TEST

/* The smallest class >= size whose size is a multiple of align, by brute
 * force over the table; HK_CLASS_COUNT when there is none. */
static unsigned expected_aligned_class(size_t size, size_t align) {
  for (unsigned c = 0; c < HK_CLASS_COUNT; c++)
    if (hk_class_size[c] >= size && hk_class_size[c] % align == 0)
      return c;
  return HK_CLASS_COUNT;
}

START_TEST(test_aligned_class) {
  size_t align = (size_t)32 << _i; /* 32 .. 4096 */
  for (size_t size = 0; size <= HK_MEDIUM_MAX; size++) {
    unsigned c = hk_class_for_aligned(size, align);
    unsigned want = expected_aligned_class(size, align);
    EXPECT(c == want, "size %zu align %zu: class %u, expected %u", size, align,
           c, want);
    if (c < HK_CLASS_COUNT) {
      EXPECT(hk_class_size[c] % align == 0, "size %zu align %zu", size, align);
      EXPECT(hk_class_size[c] >= size, "size %zu align %zu", size, align);
    }
  }
}
END_TEST

START_TEST(test_aligned_class_out_of_range) {
  /* Requests the slabs cannot serve must go to the large tier. */
  ck_assert_uint_eq(hk_class_for_aligned(HK_MEDIUM_MAX + 1, 32),
                    HK_CLASS_COUNT);
  ck_assert_uint_eq(hk_class_for_aligned(SIZE_MAX, 64), HK_CLASS_COUNT);
  ck_assert_uint_eq(hk_class_for_aligned(16, HK_SMALL_ALIGN_MAX * 2),
                    HK_CLASS_COUNT);
}
END_TEST

static Suite *size_class_suite(void) {
  Suite *s = suite_create("size_class");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_table_shape);
  tcase_add_test(tc, test_every_size_maps_to_smallest_fitting_class);
  tcase_add_test(tc, test_waste_bounded);
  tcase_add_test(tc, test_measured_sizes_waste);
  tcase_add_test(tc, test_geometry_consistent);
  tcase_add_test(tc, test_blocks_fit_slab_four_times);
  /* 32 << 0 .. 32 << 7 = 32 .. 4096 */
  tcase_add_loop_test(tc, test_aligned_class, 0, 8);
  tcase_add_test(tc, test_aligned_class_out_of_range);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(size_class_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
