/* test_superslab.c: unit tests of the SuperSlab pool and of the slab/block
 * arithmetic (src/small/superslab.c, src/small/superslab.h,
 * src/small/slab.h).
 *
 * The pool is driven directly, below the per-thread heaps: slabs come from
 * hk_superslab_acquire_slab and go back through hk_slab_reset and
 * hk_superslab_release_slab, as heap.c does. The tests check that every
 * slab handed out belongs to a registered SuperSlab of the asked geometry,
 * that the pool grows without limit and gives memory back on trim, and that
 * hk_slab_init cuts each class into blocks that stay inside their slab, are
 * aligned, and are found again by the division free() uses, in both modes
 * (HAKMEM_HARDENED keeps a bitmap after the last block and stores the links
 * encoded). Each test runs in its own forked process, so the pool starts
 * empty.
 */
#define _GNU_SOURCE
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hakmem.h"
#include "small/heap.h"
#include "api/init.h"
#include "base/options.h"
#include "base/region_map.h"
#include "small/remote.h"
#include "small/size_class.h"
#include "api/small.h"
#include "small/slab.h"
#include "small/superslab.h"
#include "base/types.h"

/* stats.c defines hakmem.h's functions under internal names in this build;
 * api.h does not declare the hakmem.h extras. */
int hk_api_hakmem_stats_get(struct hakmem_stats *stats, size_t size);

/* Slab sizes and counts per geometry: those of types.h with this page
 * size (test_platform checks them for 4, 16 and 64 KiB pages). */
#define slab_shift_of(g) hk_geometry_shift(g)
#define slab_count_of(g) hk_geometry_slabs(g)

static uintptr_t fake_owner = 0x1230;

static size_t mapped_bytes(void) {
  struct hakmem_stats st;
  ck_assert_int_eq(hk_api_hakmem_stats_get(&st, sizeof st), 0);
  return st.mapped_bytes;
}

static void setup(void) {
  /* Options decide how many empty SuperSlabs the pool keeps; without
   * hk_init they would all read as zero. */
  hk_init();
}

static void give_back(struct hk_slab *s) {
  hk_slab_reset(s);
  hk_superslab_release_slab(s);
}

static void check_fresh_slab(struct hk_slab *s, unsigned g) {
  ck_assert_ptr_nonnull(s);
  struct hk_superslab *ss = hk_slab_superslab(s);
  ck_assert_msg(hk_region_lookup((uintptr_t)ss) == &ss->mapping,
                "slab %p: its SuperSlab %p is not registered as itself",
                (void *)s, (void *)ss);
  ck_assert_uint_eq(ss->mapping.kind, HK_MAPPING_SUPERSLAB);
  ck_assert_uint_eq(ss->geometry, g);
  ck_assert_uint_eq(ss->slab_shift, slab_shift_of(g));
  ck_assert_uint_eq(ss->slab_count, slab_count_of(g));
  unsigned idx = hk_slab_index(s);
  ck_assert_uint_lt(idx, ss->slab_count);
  ck_assert_ptr_eq(s, &ss->slabs[idx]);
  /* Every byte the slab will hand out is covered by the same entry. */
  uintptr_t base = hk_slab_base(s);
  uintptr_t end = base + ((uintptr_t)1 << ss->slab_shift);
  ck_assert_ptr_eq(hk_region_lookup(base), &ss->mapping);
  ck_assert_ptr_eq(hk_region_lookup(end - 1), &ss->mapping);
  /* An unused slab: free() must not find blocks in it. */
  ck_assert_uint_eq(s->block_size, 0);
  ck_assert_uint_eq(s->carved, 0);
  ck_assert_uint_eq(atomic_load(&s->owner), 0);
}

START_TEST(test_acquire_each_geometry) {
  unsigned g = (unsigned)_i;
  /* One more slab than a SuperSlab holds, so a second one is mapped. */
  unsigned n = slab_count_of(g) + 1;
  struct hk_slab *slabs[HK_MAX_SLABS + 1] = {0};
  for (unsigned i = 0; i < n; i++) {
    slabs[i] = hk_superslab_acquire_slab(g);
    check_fresh_slab(slabs[i], g);
    for (unsigned j = 0; j < i; j++)
      ck_assert_msg(slabs[i] != slabs[j], "slab %p handed out twice",
                    (void *)slabs[i]);
  }
  /* The first SuperSlab is used up before another is mapped, each of its
   * slab indexes exactly once. */
  struct hk_superslab *first = hk_slab_superslab(slabs[0]);
  uint32_t seen = 0;
  for (unsigned i = 0; i < n - 1; i++) {
    ck_assert_ptr_eq(hk_slab_superslab(slabs[i]), first);
    unsigned idx = hk_slab_index(slabs[i]);
    ck_assert_msg(!(seen & (1u << idx)), "index %u twice", idx);
    seen |= 1u << idx;
  }
  ck_assert_ptr_ne(hk_slab_superslab(slabs[n - 1]), first);
  for (unsigned i = 0; i < n; i++)
    give_back(slabs[i]);
}
END_TEST

#define MANY_SLABS 200

START_TEST(test_pool_grows_and_trims) {
  static struct hk_slab *slabs[MANY_SLABS];
  size_t before = mapped_bytes();
  for (unsigned i = 0; i < MANY_SLABS; i++) {
    slabs[i] = hk_superslab_acquire_slab(HK_GEOM_TINY);
    check_fresh_slab(slabs[i], HK_GEOM_TINY);
  }
  /* Distinct slabs, in at least ceil(200 / 32) SuperSlabs. */
  static struct hk_superslab *ss[MANY_SLABS];
  unsigned nss = 0;
  for (unsigned i = 0; i < MANY_SLABS; i++) {
    for (unsigned j = 0; j < i; j++)
      ck_assert_msg(slabs[i] != slabs[j], "slab %p handed out twice",
                    (void *)slabs[i]);
    struct hk_superslab *s = hk_slab_superslab(slabs[i]);
    unsigned k = 0;
    while (k < nss && ss[k] != s)
      k++;
    if (k == nss)
      ss[nss++] = s;
  }
  unsigned want = (MANY_SLABS + 31) / 32;
  ck_assert_uint_ge(nss, want);
  size_t peak = mapped_bytes();
  ck_assert_uint_ge(peak - before, (size_t)nss * HK_REGION_SIZE);

  for (unsigned i = 0; i < MANY_SLABS; i++)
    give_back(slabs[i]);
  size_t released = mapped_bytes();
  size_t trimmed = hk_superslab_trim();
  size_t after = mapped_bytes();
  ck_assert_uint_eq(released - after, trimmed);
  ck_assert_msg(after == before,
                "mapped bytes %zu after release and trim, %zu before", after,
                before);
  /* Unmapped SuperSlabs must be forgotten, or free() of a stale pointer
   * would read unmapped memory. */
  for (unsigned k = 0; k < nss; k++)
    ck_assert_msg(hk_region_lookup((uintptr_t)ss[k]) == NULL,
                  "trimmed SuperSlab %p still registered", (void *)ss[k]);
}
END_TEST

START_TEST(test_trim_releases_kept_superslab) {
  /* An emptied SuperSlab is kept for reuse (the default keeps some), so
   * only trim gives it back. */
  ck_assert_uint_gt(hk_options.empty_superslabs, 0);
  size_t before = mapped_bytes();
  struct hk_slab *s = hk_superslab_acquire_slab(HK_GEOM_MEDIUM);
  ck_assert_ptr_nonnull(s);
  struct hk_superslab *ss = hk_slab_superslab(s);
  ck_assert_uint_eq(mapped_bytes(), before + HK_REGION_SIZE);
  give_back(s);
  ck_assert_uint_eq(mapped_bytes(), before + HK_REGION_SIZE);
  ck_assert_ptr_eq(hk_region_lookup((uintptr_t)ss), &ss->mapping);

  /* Reuse comes from the kept SuperSlab, not a new mapping. */
  s = hk_superslab_acquire_slab(HK_GEOM_MEDIUM);
  ck_assert_ptr_eq(hk_slab_superslab(s), ss);
  ck_assert_uint_eq(mapped_bytes(), before + HK_REGION_SIZE);
  give_back(s);

  ck_assert_uint_eq(hk_superslab_trim(), HK_REGION_SIZE);
  ck_assert_uint_eq(mapped_bytes(), before);
  ck_assert_ptr_null(hk_region_lookup((uintptr_t)ss));
  ck_assert_uint_eq(hk_superslab_trim(), 0);
}
END_TEST

START_TEST(test_partly_used_superslab_survives_trim) {
  struct hk_slab *a = hk_superslab_acquire_slab(HK_GEOM_TINY);
  struct hk_slab *b = hk_superslab_acquire_slab(HK_GEOM_TINY);
  ck_assert_ptr_eq(hk_slab_superslab(a), hk_slab_superslab(b));
  struct hk_superslab *ss = hk_slab_superslab(a);
  give_back(a);
  /* Trim keeps the SuperSlab but gives the unused slab's pages back. */
  ck_assert_uint_eq(hk_superslab_trim(), (size_t)1 << ss->slab_shift);
  ck_assert_uint_eq(hk_superslab_trim(), 0);
  ck_assert_ptr_eq(hk_region_lookup((uintptr_t)ss), &ss->mapping);
  /* b's slab is still writable. */
  memset((void *)hk_slab_base(b), 0x5a, (size_t)1 << ss->slab_shift);
  /* The partly used SuperSlab serves the next request before any new
   * mapping is made. */
  size_t mapped = mapped_bytes();
  struct hk_slab *c = hk_superslab_acquire_slab(HK_GEOM_TINY);
  ck_assert_ptr_eq(hk_slab_superslab(c), ss);
  ck_assert_ptr_ne(c, b);
  ck_assert_uint_eq(mapped_bytes(), mapped);
  give_back(b);
  give_back(c);
}
END_TEST

// ---------------------------------------------------------------------------
// Slab and block arithmetic

/* The classes a geometry serves: the solo geometry takes the tiny classes
 * when HAKMEM_TINY_USE_SUPERSLAB=0, which these tests do not set. */
static int class_in_geometry(unsigned cls, unsigned g) {
  if (g == HK_GEOM_TINY_SOLO || g == HK_GEOM_TINY)
    return cls < HK_TINY_CLASSES;
  return hk_class_geometry(cls) == g;
}

/* Every slab of one SuperSlab of the geometry (index 0 included). */
static unsigned acquire_superslab(unsigned g, struct hk_slab **out) {
  unsigned n = slab_count_of(g);
  for (unsigned i = 0; i < n; i++) {
    out[i] = hk_superslab_acquire_slab(g);
    ck_assert_ptr_nonnull(out[i]);
    ck_assert_ptr_eq(hk_slab_superslab(out[i]), hk_slab_superslab(out[0]));
  }
  return n;
}

/* The slab tests run in both modes (_i: HAKMEM_HARDENED), whatever the
 * environment says: each test is a process of its own. */
START_TEST(test_slab_init_geometry) {
  hk_options.hardened = _i;
  for (unsigned g = 0; g < HK_GEOM_COUNT; g++) {
    struct hk_slab *slabs[HK_MAX_SLABS] = {0};
    unsigned n = acquire_superslab(g, slabs);
    int saw_slab0 = 0;
    for (unsigned cls = 0; cls < HK_CLASS_COUNT; cls++) {
      if (!class_in_geometry(cls, g))
        continue;
      for (unsigned i = 0; i < n; i++) {
        struct hk_slab *s = slabs[i];
        struct hk_superslab *ss = hk_slab_superslab(s);
        unsigned idx = hk_slab_index(s);
        uintptr_t base = (uintptr_t)idx << ss->slab_shift;
        uintptr_t end = base + ((uintptr_t)1 << ss->slab_shift);
        hk_slab_init(s, cls, fake_owner);
        uint32_t bs = hk_class_size[cls];
        ck_assert_uint_eq(s->block_size, bs);
        ck_assert_uint_eq(s->class_idx, cls);
        ck_assert_uint_eq(atomic_load(&s->owner), fake_owner);
        ck_assert_uint_eq(s->used, 0);
        ck_assert_uint_eq(s->carved, 0);
        /* An empty list: the sentinel, whose link is LIVE. */
        ck_assert_uint_eq(s->free, s->capacity);
        ck_assert_uint_eq(hk_link_get(s, s->free), HK_LINK_LIVE);
        ck_assert_uint_eq(atomic_load(hk_slab_remote(s)), HK_REMOTE_EMPTY);
        /* The links are out of band: not inside the SuperSlab's mapping
         * (a solo slab maps 64 KiB of its region, and the kernel may put
         * the links' mapping in the rest). */
        ck_assert((uintptr_t)s->links - (uintptr_t)ss >=
                  ((uintptr_t)ss->slab_count << ss->slab_shift));
        uintptr_t start_off = s->start - (uintptr_t)ss;
        if (idx == 0) {
          saw_slab0 = 1;
          ck_assert_uint_eq(start_off, hk_superslab_data_offset());
        } else {
          ck_assert_uint_eq(start_off, base);
        }
        /* Blocks start on a page, so a class whose size is a multiple of
         * an alignment up to a page gives aligned blocks. */
        ck_assert_uint_eq(s->start % hk_page_size(), 0);
        uintptr_t room = end - start_off;
        ck_assert_msg((uintptr_t)s->capacity * bs <= room,
                      "class %u slab %u: %u blocks of %u overrun the slab", cls,
                      idx, s->capacity, bs);
        ck_assert_uint_le(s->capacity, ss->link_stride);
        ck_assert_msg((uintptr_t)(s->capacity + 1) * bs > room,
                      "class %u slab %u: room for more than %u blocks", cls,
                      idx, s->capacity);
        ck_assert_uint_ge(s->capacity, 4);
      }
    }
    ck_assert(saw_slab0);
    for (unsigned i = 0; i < n; i++)
      give_back(slabs[i]);
  }
}
END_TEST

START_TEST(test_links_of_few_block_slabs_share_a_page) {
  /* Slabs of 4 KiB blocks hold 16 each: their link arrays, 32 bytes a
   * slab, must not each take a page of their own (a SuperSlab of them
   * kept 32 pages of links for 1 KiB of them, 6% of what it served). */
  unsigned cls = hk_size_to_class(HK_SMALL_SLAB_MAX);
  unsigned g = hk_class_geometry(cls);
  struct hk_slab *slabs[HK_MAX_SLABS] = {0};
  unsigned n = acquire_superslab(g, slabs);
  ck_assert_uint_ge(n, 2);
  uintptr_t lo = UINTPTR_MAX, hi = 0;
  for (unsigned i = 0; i < n; i++) {
    hk_slab_init(slabs[i], cls, fake_owner);
    uintptr_t first = (uintptr_t)&slabs[i]->links[0];
    uintptr_t end = (uintptr_t)&slabs[i]->links[slabs[i]->capacity];
    lo = first < lo ? first : lo;
    hi = end > hi ? end : hi;
  }
  ck_assert_msg(hi - lo <= hk_page_size(),
                "the links of %u slabs of %u-byte blocks span %zu bytes", n,
                hk_class_size[cls], (size_t)(hi - lo));
  for (unsigned i = 0; i < n; i++)
    give_back(slabs[i]);
}
END_TEST

START_TEST(test_div_magic_exact) {
  /* free() finds a block index and whether an offset is a block start by
   * one multiply; both must be exact for every offset in a slab, or it
   * would accept interior pointers or reject real blocks. Offsets below a
   * slab's first block wrap around to near 2^32 and must give an index
   * beyond any slab's blocks. */
  for (unsigned g = 0; g < HK_GEOM_COUNT; g++) {
    struct hk_slab *s = hk_superslab_acquire_slab(g);
    ck_assert_ptr_nonnull(s);
    uint64_t slab_bytes = (uint64_t)1 << hk_slab_superslab(s)->slab_shift;
    for (unsigned cls = 0; cls < HK_CLASS_COUNT; cls++) {
      if (!class_in_geometry(cls, g))
        continue;
      hk_slab_init(s, cls, fake_owner);
      uint64_t bs = s->block_size;
      for (uint64_t off = 0; off < slab_bytes; off++) {
        struct hk_div d = hk_div_by_magic((uint32_t)off, s->div_magic);
        if (d.quotient != off / bs || d.exact != (off % bs == 0))
          ck_abort_msg("class %u: offset %lu gives %lu (exact %d), not %lu",
                       cls, (unsigned long)off, (unsigned long)d.quotient,
                       d.exact, (unsigned long)(off / bs));
      }
      for (uint64_t below = 1;
           below <= s->start - (uintptr_t)hk_slab_superslab(s) + 64; below++) {
        uint32_t wrapped = (uint32_t)(0 - below);
        struct hk_div d = hk_div_by_magic(wrapped, s->div_magic);
        if (d.quotient < s->capacity)
          ck_abort_msg("class %u: %lu bytes below the first block give "
                       "index %lu", cls, (unsigned long)below,
                       (unsigned long)d.quotient);
      }
    }
    give_back(s);
  }
}
END_TEST

START_TEST(test_carve_whole_slab) {
  hk_options.hardened = _i;
  for (unsigned g = 0; g < HK_GEOM_COUNT; g++) {
    struct hk_slab *slabs[HK_MAX_SLABS] = {0};
    unsigned n = acquire_superslab(g, slabs);
    /* Slab 0 and the last slab: the one behind the header and the one
     * ending at the SuperSlab's end. */
    struct hk_slab *pick[2] = {slabs[0], slabs[n - 1]};
    for (unsigned cls = 0; cls < HK_CLASS_COUNT; cls++) {
      if (!class_in_geometry(cls, g))
        continue;
      for (unsigned k = 0; k < (n > 1 ? 2u : 1u); k++) {
        struct hk_slab *s = pick[k];
        struct hk_superslab *ss = hk_slab_superslab(s);
        hk_slab_init(s, cls, fake_owner);
        uintptr_t first = s->start;
        uintptr_t end = hk_slab_base(s) + ((uintptr_t)1 << ss->slab_shift);
        /* Carving takes an empty list: pop each batch off as malloc
         * would, recording the order, then walk them all. */
        static uint16_t order[4096];
        unsigned rounds = 0, popped = 0, fresh = 0;
        while (hk_slab_carve(s)) {
          if (++rounds > s->capacity)
            ck_abort_msg("class %u: carving never ends", cls);
          unsigned idx;
          while (!hk_slab_list_empty(s)) {
            int got = hk_slab_pop(s, &idx);
            ck_assert_int_ne(got, 0);
            fresh += got == 2;
            order[popped++] = (uint16_t)idx;
          }
        }
        ck_assert_uint_eq(s->carved, s->capacity);
        ck_assert_uint_eq(fresh, s->capacity);
        /* The free list holds every block exactly once, each 16-aligned,
         * inside the slab, and found again by free()'s lookup. */
        static uint8_t seen[4096];
        ck_assert_uint_le(s->capacity, sizeof seen);
        memset(seen, 0, sizeof seen);
        unsigned count = 0;
        for (unsigned k = 0; k < popped; k++) {
          uintptr_t a = (uintptr_t)hk_slab_block(s, order[k]);
          uintptr_t i = (a - first) / s->block_size;
          unsigned got;
          if (a < first || a % 16 || (a - first) % s->block_size ||
              a + s->block_size > end || i >= s->capacity || seen[i]++)
            ck_abort_msg("class %u: block at %#lx misplaced or repeated", cls,
                         (unsigned long)a);
          if (hk_small_locate(ss, ss->slab_shift, a, "test", &got) != s || got != i)
            ck_abort_msg("class %u: block %lu not located", cls,
                         (unsigned long)i);
          ck_assert_uint_eq(hk_link_get(s, order[k]), HK_LINK_LIVE);
          count++;
        }
        ck_assert_uint_eq(count, s->capacity);
        ck_assert_uint_eq(s->used, s->capacity);
        ck_assert_int_eq(hk_slab_carve(s), 0);
      }
    }
    for (unsigned i = 0; i < n; i++)
      give_back(slabs[i]);
  }
}
END_TEST

START_TEST(test_collect_remote) {
  hk_options.hardened = 0;
  struct hk_slab *s = hk_superslab_acquire_slab(HK_GEOM_TINY);
  ck_assert_ptr_nonnull(s);
  hk_slab_init(s, 3, fake_owner); /* 64-byte blocks */
  ck_assert(hk_slab_carve(s));
  /* Hand out five blocks as the owner would, then free three remotely. */
  unsigned out[5];
  for (int i = 0; i < 5; i++)
    ck_assert_int_eq(hk_slab_pop(s, &out[i]), 2);
  unsigned rest = s->free;
  hk_small_free_slow(s, out[1]);
  hk_small_free_slow(s, out[3]);
  hk_small_free_slow(s, out[4]);
  hk_remote_flush();
  /* The head carries the count: the owner never walks to count. */
  ck_assert_uint_eq(hk_remote_count(atomic_load(hk_slab_remote(s))), 3);
  ck_assert_uint_eq(s->used, 5);
  hk_slab_collect(s);
  ck_assert_uint_eq(atomic_load(hk_slab_remote(s)), HK_REMOTE_EMPTY);
  ck_assert_uint_eq(s->used, 2);
  /* The three come first, then the list as it was. */
  unsigned b = s->free;
  int found[5] = {0};
  for (int i = 0; i < 3; i++, b = hk_link_get(s, b) & ~HK_LINK_FRESH)
    for (int j = 0; j < 5; j++)
      if (b == out[j])
        found[j]++;
  ck_assert_uint_eq(b, rest);
  ck_assert_int_eq(found[0] + found[2], 0);
  ck_assert_int_eq(found[1] + found[3] + found[4], 3);
  ck_assert_int_eq(found[1] * found[3] * found[4], 1);
  give_back(s);
}
END_TEST

START_TEST(test_remote_free_twice_is_caught) {
  /* Two frees of one block by other threads: the second finds the link
   * no longer LIVE, whatever the program wrote into the block. */
  hk_options.hardened = 0;
  hk_options.invalid_free_warn = 1;
  struct hk_slab *s = hk_superslab_acquire_slab(HK_GEOM_TINY);
  ck_assert_ptr_nonnull(s);
  hk_slab_init(s, 3, fake_owner);
  ck_assert(hk_slab_carve(s));
  unsigned i;
  ck_assert_int_eq(hk_slab_pop(s, &i), 2);
  memset(hk_slab_block(s, i), 0xff, 64);
  hk_small_free_slow(s, i);
  hk_small_free_slow(s, i);
  hk_remote_flush();
  ck_assert_uint_eq(hk_remote_count(atomic_load(hk_slab_remote(s))), 1);
  hk_options.invalid_free_warn = 0;
  give_back(s);
}
END_TEST

static Suite *superslab_suite(void) {
  Suite *s = suite_create("superslab");
  TCase *pool = tcase_create("pool");
  tcase_add_checked_fixture(pool, setup, NULL);
  tcase_add_loop_test(pool, test_acquire_each_geometry, 0, HK_GEOM_COUNT);
  tcase_add_test(pool, test_pool_grows_and_trims);
  tcase_add_test(pool, test_trim_releases_kept_superslab);
  tcase_add_test(pool, test_partly_used_superslab_survives_trim);
  suite_add_tcase(s, pool);
  TCase *slab = tcase_create("slab");
  tcase_add_checked_fixture(slab, setup, NULL);
  tcase_add_loop_test(slab, test_slab_init_geometry, 0, 2);
  tcase_add_test(slab, test_remote_free_twice_is_caught);
  tcase_add_test(slab, test_links_of_few_block_slabs_share_a_page);
  tcase_add_test(slab, test_div_magic_exact);
  tcase_add_loop_test(slab, test_carve_whole_slab, 0, 2);
  tcase_add_test(slab, test_collect_remote);
  suite_add_tcase(s, slab);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(superslab_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
