/* test_region_map.c: unit tests of the region map (src/base/region_map.c,
 * src/base/region_map.h).
 *
 * free() trusts the region map to tell hakmem's memory from everything
 * else, so these tests check both directions: addresses hakmem never
 * registered (NULL, the stack, glibc's heap, beyond the space the map
 * describes, which test_platform checks for other address widths) must
 * look up as NULL, and a registered range must answer at every byte up to
 * its edges and nowhere past them. Registration only records addresses, so
 * ranges that nothing maps (leaf boundaries, the top of the space) can be
 * exercised too. Each test runs in its own forked process (Check's default),
 * so the map starts empty in every test. The lookup tests run twice: with
 * the flat array, and without it, as where it could not be reserved,
 * every region in the tree.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "platform/os.h"
#include "base/region_map.h"
#include "base/types.h"

#define REGION ((uintptr_t)HK_REGION_SIZE)
#define ADDRESS_LIMIT address_limit()
/* Bytes of address space one leaf of the map describes (16 GiB). */
#define LEAF_SPAN (REGION << HK_MAP_LEAF_BITS)

/* The first address beyond the map. A map of all 64 bits (s390x) has none:
 * the tests that need one then run as if the platform had 56. */
static uintptr_t address_limit(void) {
  if (hk_region_bits() == 64)
    ck_assert_int_eq(hk_os_inject(0, 56), 0);
  return (uintptr_t)1 << hk_region_bits();
}

/* Aligned like a real mapping: the map keeps a tag in the low bits. */
static struct hk_mapping fake_seg __attribute__((aligned(64))) = {
    .kind = HK_MAPPING_SUPERSLAB};
static struct hk_mapping other_seg __attribute__((aligned(64))) = {
    .kind = HK_MAPPING_LARGE};
static int global_object;

START_TEST(test_unowned_addresses_are_null) {
  int on_stack = 0;
  void *glibc_small = malloc(64);
  void *glibc_big = malloc(4 << 20); /* mmap'd by glibc */
  ck_assert_ptr_nonnull(glibc_small);
  ck_assert_ptr_nonnull(glibc_big);
  const uintptr_t addrs[] = {
      0,
      1,
      4096,
      0x10000,
      REGION - 1,
      REGION,
      ADDRESS_LIMIT - 1,
      ADDRESS_LIMIT,
      ADDRESS_LIMIT + REGION,
      (uintptr_t)1 << 56,
      (uintptr_t)1 << 63,
      UINTPTR_MAX,
      (uintptr_t)&on_stack,
      (uintptr_t)&global_object,
      (uintptr_t)&fake_seg,
      (uintptr_t)glibc_small,
      (uintptr_t)glibc_big,
      (uintptr_t)&test_unowned_addresses_are_null,
  };
  for (size_t i = 0; i < sizeof addrs / sizeof addrs[0]; i++)
    ck_assert_msg(hk_region_lookup(addrs[i]) == NULL,
                  "address %#lx looks up as owned", (unsigned long)addrs[i]);
  free(glibc_small);
  free(glibc_big);
}
END_TEST

START_TEST(test_single_region_edges) {
  char *base = hk_os_map_aligned(HK_REGION_SIZE, HK_REGION_SIZE);
  ck_assert_ptr_nonnull(base);
  ck_assert_uint_eq((uintptr_t)base & HK_REGION_MASK, 0);
  uintptr_t b = (uintptr_t)base;

  ck_assert_int_eq(hk_region_register(b, HK_REGION_SIZE, &fake_seg), 0);
  ck_assert_ptr_eq(hk_region_lookup(b), &fake_seg);
  ck_assert_ptr_eq(hk_region_lookup(b + REGION / 2), &fake_seg);
  ck_assert_ptr_eq(hk_region_lookup(b + REGION - 1), &fake_seg);
  /* Nothing else in this process registers regions. */
  ck_assert_ptr_null(hk_region_lookup(b - 1));
  ck_assert_ptr_null(hk_region_lookup(b + REGION));

  hk_region_unregister(b, HK_REGION_SIZE);
  ck_assert_ptr_null(hk_region_lookup(b));
  ck_assert_ptr_null(hk_region_lookup(b + REGION - 1));
  hk_os_unmap(base, HK_REGION_SIZE);
}
END_TEST

START_TEST(test_three_regions_register_unregister) {
  const size_t size = 3 * HK_REGION_SIZE;
  char *base = hk_os_map_aligned(size, HK_REGION_SIZE);
  ck_assert_ptr_nonnull(base);
  uintptr_t b = (uintptr_t)base;

  ck_assert_int_eq(hk_region_register(b, size, &fake_seg), 0);
  for (uintptr_t r = 0; r < 3; r++) {
    uintptr_t start = b + r * REGION;
    ck_assert_ptr_eq(hk_region_lookup(start), &fake_seg);
    ck_assert_ptr_eq(hk_region_lookup(start + 12345), &fake_seg);
    ck_assert_ptr_eq(hk_region_lookup(start + REGION - 1), &fake_seg);
  }
  ck_assert_ptr_null(hk_region_lookup(b - 1));
  ck_assert_ptr_null(hk_region_lookup(b + size));

  hk_region_unregister(b, size);
  for (uintptr_t a = b - REGION; a <= b + size; a += REGION / 4)
    ck_assert_msg(hk_region_lookup(a) == NULL, "offset %ld still registered",
                  (long)(a - b));
  hk_os_unmap(base, size);
}
END_TEST

/* A mapping that ends inside a region (the large tier's chunk for one
 * block under RLIMIT_AS: the block plus its header) owns that region too:
 * counting only whole regions lost a 1 MiB chunk's only one, and every
 * free() into it was "invalid pointer". */
START_TEST(test_partial_last_region_is_registered) {
  const size_t size = HK_REGION_SIZE + (1u << 20) + 8192;
  char *base = hk_os_map_aligned(2 * HK_REGION_SIZE, HK_REGION_SIZE);
  ck_assert_ptr_nonnull(base);
  uintptr_t b = (uintptr_t)base;
  ck_assert_int_eq(hk_region_register(b, size, &fake_seg), 0);
  ck_assert_ptr_eq(hk_region_lookup(b), &fake_seg);
  ck_assert_ptr_eq(hk_region_lookup(b + size - 1), &fake_seg);
  ck_assert_ptr_null(hk_region_lookup(b + 2 * REGION));
  hk_region_unregister(b, size);
  ck_assert_ptr_null(hk_region_lookup(b + size - 1));
  ck_assert_ptr_null(hk_region_lookup(b));
  /* Less than one region: one region. */
  ck_assert_int_eq(hk_region_register(b, (1u << 20) + 8192, &fake_seg), 0);
  ck_assert_ptr_eq(hk_region_lookup(b + (1u << 20)), &fake_seg);
  ck_assert_ptr_null(hk_region_lookup(b + REGION));
  hk_region_unregister(b, (1u << 20) + 8192);
  ck_assert_ptr_null(hk_region_lookup(b));
  hk_os_unmap(base, 2 * HK_REGION_SIZE);
}
END_TEST

START_TEST(test_neighbours_keep_their_owner) {
  /* Two mappings side by side: the edge between them must not blur, and
   * forgetting one must not forget the other. */
  char *base = hk_os_map_aligned(3 * HK_REGION_SIZE, HK_REGION_SIZE);
  ck_assert_ptr_nonnull(base);
  uintptr_t b = (uintptr_t)base;
  ck_assert_int_eq(hk_region_register(b, REGION, &fake_seg), 0);
  ck_assert_int_eq(hk_region_register(b + REGION, 2 * REGION, &other_seg), 0);
  ck_assert_ptr_eq(hk_region_lookup(b + REGION - 1), &fake_seg);
  ck_assert_ptr_eq(hk_region_lookup(b + REGION), &other_seg);
  ck_assert_ptr_eq(hk_region_lookup(b + 3 * REGION - 1), &other_seg);

  hk_region_unregister(b + REGION, 2 * REGION);
  ck_assert_ptr_eq(hk_region_lookup(b + REGION - 1), &fake_seg);
  ck_assert_ptr_null(hk_region_lookup(b + REGION));
  hk_region_unregister(b, REGION);
  ck_assert_ptr_null(hk_region_lookup(b));
  hk_os_unmap(base, 3 * HK_REGION_SIZE);
}
END_TEST

START_TEST(test_range_across_leaf_boundary) {
  /* The map records addresses only, so a range nothing maps can stand in
   * for a mapping that happens to straddle two leaves. */
  uintptr_t boundary = 3 * LEAF_SPAN;
  uintptr_t b = boundary - REGION;
  ck_assert_int_eq(hk_region_register(b, 3 * REGION, &fake_seg), 0);
  ck_assert_ptr_null(hk_region_lookup(b - 1));
  ck_assert_ptr_eq(hk_region_lookup(b), &fake_seg);
  ck_assert_ptr_eq(hk_region_lookup(boundary - 1), &fake_seg);
  ck_assert_ptr_eq(hk_region_lookup(boundary), &fake_seg);
  ck_assert_ptr_eq(hk_region_lookup(boundary + 2 * REGION - 1), &fake_seg);
  ck_assert_ptr_null(hk_region_lookup(boundary + 2 * REGION));
  hk_region_unregister(b, 3 * REGION);
  ck_assert_ptr_null(hk_region_lookup(boundary - 1));
  ck_assert_ptr_null(hk_region_lookup(boundary));
}
END_TEST

START_TEST(test_top_of_address_space) {
  uintptr_t last = ADDRESS_LIMIT - REGION;
  ck_assert_int_eq(hk_region_register(last, REGION, &fake_seg), 0);
  ck_assert_ptr_eq(hk_region_lookup(last), &fake_seg);
  ck_assert_ptr_eq(hk_region_lookup(ADDRESS_LIMIT - 1), &fake_seg);
  ck_assert_ptr_null(hk_region_lookup(ADDRESS_LIMIT));
  hk_region_unregister(last, REGION);
  ck_assert_ptr_null(hk_region_lookup(last));
}
END_TEST

START_TEST(test_register_beyond_address_space_fails) {
  ck_assert_int_eq(hk_region_register(ADDRESS_LIMIT, REGION, &fake_seg),
                   ENOMEM);
  ck_assert_ptr_null(hk_region_lookup(ADDRESS_LIMIT));
}
END_TEST

START_TEST(test_failed_register_leaves_nothing_behind) {
  /* A range that starts inside the space and ends beyond it cannot be
   * described; like the out-of-memory failure, the failed call must not
   * leave the part it could describe registered, or that part would point
   * at a mapping the caller is about to unmap. */
  uintptr_t b = ADDRESS_LIMIT - REGION;
  ck_assert_int_eq(hk_region_register(b, 2 * REGION, &fake_seg), ENOMEM);
  ck_assert_msg(hk_region_lookup(b) == NULL,
                "failed hk_region_register left [%#lx, +2 MiB) registered",
                (unsigned long)b);
}
END_TEST

// ---------------------------------------------------------------------------
// Concurrency

#define CHURN_ROUNDS 20000

struct churn {
  uintptr_t base;
  pthread_barrier_t start;
  atomic_int writer_done;
  atomic_long bad_inside;  /* lookups inside that gave a foreign answer */
  atomic_long bad_outside; /* lookups outside that gave a non-NULL answer */
};

static void *churn_writer(void *arg) {
  struct churn *c = arg;
  pthread_barrier_wait(&c->start);
  for (int i = 0; i < CHURN_ROUNDS; i++) {
    if (hk_region_register(c->base, 2 * REGION, &fake_seg) != 0)
      break;
    hk_region_unregister(c->base, 2 * REGION);
  }
  atomic_store(&c->writer_done, 1);
  return NULL;
}

static void *churn_reader(void *arg) {
  struct churn *c = arg;
  pthread_barrier_wait(&c->start);
  /* At least CHURN_ROUNDS passes, and on until the writer stops, so the
   * reads overlap the writes however the threads are scheduled. */
  for (long i = 0; i < CHURN_ROUNDS || !atomic_load(&c->writer_done); i++) {
    uintptr_t in = c->base + ((uintptr_t)i * 4096) % (2 * REGION);
    struct hk_mapping *s = hk_region_lookup(in);
    if (s != NULL && s != &fake_seg)
      atomic_fetch_add(&c->bad_inside, 1);
    if (hk_region_lookup(c->base - 1) != NULL ||
        hk_region_lookup(c->base + 2 * REGION) != NULL)
      atomic_fetch_add(&c->bad_outside, 1);
  }
  return NULL;
}

START_TEST(test_concurrent_lookup_during_churn) {
  static struct churn c;
  char *base = hk_os_map_aligned(2 * HK_REGION_SIZE, HK_REGION_SIZE);
  ck_assert_ptr_nonnull(base);
  c.base = (uintptr_t)base;
  pthread_barrier_init(&c.start, NULL, 2);
  pthread_t w, r;
  ck_assert_int_eq(pthread_create(&w, NULL, churn_writer, &c), 0);
  ck_assert_int_eq(pthread_create(&r, NULL, churn_reader, &c), 0);
  pthread_join(w, NULL);
  pthread_join(r, NULL);
  pthread_barrier_destroy(&c.start);
  ck_assert_int_eq(atomic_load(&c.bad_inside), 0);
  ck_assert_int_eq(atomic_load(&c.bad_outside), 0);
  /* The writer finished on an unregister. */
  ck_assert_ptr_null(hk_region_lookup(c.base));
  hk_os_unmap(base, 2 * HK_REGION_SIZE);
}
END_TEST

#define RACE_LEAVES 64
#define RACE_FIRST_LEAF 4096 /* 64 TiB: far from anything this test maps */

static pthread_barrier_t leaf_step;

struct leaf_racer_arg {
  uintptr_t slot;
  int failures;
};

static void *leaf_racer(void *arg) {
  struct leaf_racer_arg *me = arg;
  for (uintptr_t k = 0; k < RACE_LEAVES; k++) {
    /* Both threads reach a fresh leaf at once, so they race to install it
     * and one of them must find the other's leaf instead of its own. */
    pthread_barrier_wait(&leaf_step);
    uintptr_t a = (RACE_FIRST_LEAF + k) * LEAF_SPAN + me->slot * REGION;
    if (hk_region_register(a, REGION, &fake_seg) != 0)
      me->failures++;
  }
  return NULL;
}

START_TEST(test_concurrent_leaf_install) {
  struct leaf_racer_arg arg[2] = {{.slot = 0}, {.slot = 1}};
  pthread_barrier_init(&leaf_step, NULL, 2);
  pthread_t t[2];
  for (unsigned i = 0; i < 2; i++)
    ck_assert_int_eq(pthread_create(&t[i], NULL, leaf_racer, &arg[i]), 0);
  for (unsigned i = 0; i < 2; i++)
    pthread_join(t[i], NULL);
  pthread_barrier_destroy(&leaf_step);
  ck_assert_int_eq(arg[0].failures + arg[1].failures, 0);
  for (uintptr_t k = 0; k < RACE_LEAVES; k++)
    for (uintptr_t i = 0; i < 2; i++) {
      uintptr_t a = (RACE_FIRST_LEAF + k) * LEAF_SPAN + i * REGION;
      ck_assert_msg(hk_region_lookup(a) == &fake_seg,
                    "leaf %lu: thread %lu's registration lost",
                    (unsigned long)k, (unsigned long)i);
    }
}
END_TEST

/* Before the first registration: no flat array, as where it could not be
 * reserved. */
static void tree_only(void) { ck_assert_int_eq(hk_region_decline_flat(), 0); }

/* Regions the flat array holds on this platform: those below
 * 2^min(address bits, 48). */
static uintptr_t flat_wanted(void) {
  unsigned bits = hk_address_bits() < 48 ? hk_address_bits() : 48;
  return (uintptr_t)1 << (bits - HK_REGION_SHIFT);
}

START_TEST(test_flat_array_holds_the_low_regions) {
  ck_assert_uint_eq(atomic_load(&hk_region_flat.regions), 0);
  uintptr_t b = 64 * LEAF_SPAN;
  ck_assert_int_eq(hk_region_register_tagged(b, REGION, &fake_seg, 16), 0);
  ck_assert_uint_eq(atomic_load(&hk_region_flat.regions), flat_wanted());
  /* free()'s inline lookup finds it, with its tag. */
  ck_assert_uint_eq(hk_region_entry_low(b + 5), (uintptr_t)&fake_seg | 16);
  ck_assert_uint_eq(hk_region_entry_low(b + REGION), 0);
  hk_region_unregister(b, REGION);
  ck_assert_uint_eq(hk_region_entry_low(b), 0);
  ck_assert_ptr_null(hk_region_lookup(b));
}
END_TEST

START_TEST(test_declined_array_takes_the_tree) {
  uintptr_t b = 64 * LEAF_SPAN;
  ck_assert_int_eq(hk_region_register_tagged(b, REGION, &fake_seg, 16), 0);
  ck_assert_uint_eq(atomic_load(&hk_region_flat.regions), 0);
  ck_assert_int_eq(hk_region_decline_flat(), EBUSY);
  /* The inline lookup has no array: its 0 sends free() to the tree. */
  ck_assert_uint_eq(hk_region_entry_low(b), 0);
  ck_assert_uint_eq(hk_region_entry(b + 5), (uintptr_t)&fake_seg | 16);
  hk_region_unregister(b, REGION);
  ck_assert_ptr_null(hk_region_lookup(b));
}
END_TEST

/* The array takes no more than an eighth of a limited address space: a
 * program under a tight RLIMIT_AS needs it for its own memory. The rule
 * is checked against the limit the process reads back (qemu-user keeps
 * RLIMIT_AS to itself and reports none). */
START_TEST(test_address_space_limit_decides_the_array) {
  struct rlimit rl;
  ck_assert_int_eq(getrlimit(RLIMIT_AS, &rl), 0);
  rl.rlim_cur = (rlim_t)1 << 31;
  ck_assert_int_eq(setrlimit(RLIMIT_AS, &rl), 0);
  ck_assert_int_eq(getrlimit(RLIMIT_AS, &rl), 0);
  int tight = rl.rlim_cur != RLIM_INFINITY &&
              rl.rlim_cur / 8 < flat_wanted() * sizeof(uintptr_t);
  uintptr_t b = 64 * LEAF_SPAN;
  ck_assert_int_eq(hk_region_register(b, REGION, &fake_seg), 0);
  ck_assert_uint_eq(atomic_load(&hk_region_flat.regions),
                    tight ? 0 : flat_wanted());
  ck_assert_ptr_eq(hk_region_lookup(b), &fake_seg);
  hk_region_unregister(b, REGION);
  ck_assert_ptr_null(hk_region_lookup(b));
}
END_TEST

static void add_lookup_tests(TCase *tc) {
  tcase_add_test(tc, test_unowned_addresses_are_null);
  tcase_add_test(tc, test_single_region_edges);
  tcase_add_test(tc, test_three_regions_register_unregister);
  tcase_add_test(tc, test_partial_last_region_is_registered);
  tcase_add_test(tc, test_neighbours_keep_their_owner);
  tcase_add_test(tc, test_range_across_leaf_boundary);
  tcase_add_test(tc, test_top_of_address_space);
  tcase_add_test(tc, test_register_beyond_address_space_fails);
  tcase_add_test(tc, test_failed_register_leaves_nothing_behind);
  tcase_add_test(tc, test_concurrent_lookup_during_churn);
  tcase_add_test(tc, test_concurrent_leaf_install);
}

static Suite *region_map_suite(void) {
  Suite *s = suite_create("region_map");
  TCase *tc = tcase_create("flat");
  add_lookup_tests(tc);
  tcase_add_test(tc, test_flat_array_holds_the_low_regions);
  tcase_add_test(tc, test_address_space_limit_decides_the_array);
  suite_add_tcase(s, tc);
  TCase *tree = tcase_create("tree");
  tcase_add_checked_fixture(tree, tree_only, NULL);
  add_lookup_tests(tree);
  tcase_add_test(tree, test_declined_array_takes_the_tree);
  suite_add_tcase(s, tree);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(region_map_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
