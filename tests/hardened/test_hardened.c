/* test_hardened.c: unit tests of HAKMEM_HARDENED's internals
 * (src/small/hardened.c), on the internal-names build.
 *
 * Covered: the mode keeps the fast path's current slabs empty and tags
 * slab owners; freed blocks hold the fill and their links live out of
 * band; free() rejects a slab whose owner or class was overwritten; with
 * HAKMEM_INVALID_FREE=warn a remote-freed block written over is reported
 * and malloc goes on without being steered; and double frees are caught
 * across a remote free and its collection. Each test runs in its own
 * forked process (Check's default) with the knob turned on before the
 * heap is first used. (The behaviour seen by programs is tested by
 * tests/hardened/run.sh.)
 */
#define _GNU_SOURCE
#include <check.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "api/api.h"
#include "small/hardened.h"
#include "small/heap.h"
#include "api/init.h"
#include "base/options.h"
#include "base/region_map.h"
#include "base/types.h"

#include "../unit/expect_report.h"

static struct hk_slab *slab_of(const void *p) {
  uintptr_t a = (uintptr_t)p;
  struct hk_mapping *mapping = hk_region_lookup(a);
  ck_assert_ptr_nonnull(mapping);
  ck_assert_uint_eq(mapping->kind, HK_MAPPING_SUPERSLAB);
  struct hk_superslab *ss = (struct hk_superslab *)mapping;
  return &ss->slabs[(a & HK_REGION_MASK) >> ss->slab_shift];
}

static void *volatile launder_slot;
static void *launder(void *p) {
  launder_slot = p;
  return launder_slot;
}

static void hardened_on(void) {
  hk_init(); /* reads the environment: the knob is set after it */
  hk_options.hardened = 1;
  hk_options.invalid_free_warn = 0;
}

START_TEST(test_fast_path_left_empty) {
  void *p = hk_api_malloc(48);
  ck_assert_ptr_nonnull(p);
  unsigned cls = hk_size_to_class(48);
  struct hk_heap *h = hk_tls_heap;
  ck_assert_ptr_eq(h->cur[cls], &hk_empty_slab);
  ck_assert_ptr_eq(h->hard_cur[cls], slab_of(p));
  ck_assert_uint_eq(hk_link_get(&hk_empty_slab, hk_empty_slab.free),
                   HK_LINK_LIVE);
  ck_assert_uint_eq(atomic_load(&slab_of(p)->owner), hk_thread_token() | 1);
  hk_api_free(p);
}
END_TEST

static unsigned index_of(void *p) {
  struct hk_slab *s = slab_of(p);
  return hk_slab_index_of(s, (uintptr_t)p);
}

START_TEST(test_links_out_of_band) {
  unsigned char *p = hk_api_malloc(48), *q = hk_api_malloc(48);
  void *keep = hk_api_malloc(48);
  ck_assert(p && q && keep);
  hk_api_free(p);
  hk_api_free(q); /* q's link leads to p */
  struct hk_slab *s = slab_of(q);
  ck_assert_uint_eq(s->free, index_of(q));
  ck_assert_uint_eq(hk_link_get(s, index_of(q)), index_of(p));
  /* The freed blocks hold the fill and nothing else: no link to steer. */
  unsigned char *lq = launder(q);
  for (int i = 0; i < 48; i++)
    ck_assert_uint_eq(lq[i], HK_FREE_FILL);
  ck_assert_ptr_eq(hk_api_malloc(48), q);
  ck_assert_ptr_eq(hk_api_malloc(48), p);
  ck_assert_uint_eq(hk_link_get(s, index_of(p)), HK_LINK_LIVE);
}
END_TEST

START_TEST(test_owner_overwritten) {
  void *p = hk_api_malloc(64);
  ck_assert_ptr_nonnull(p);
  /* An owner without the mode's tag bit. (Not this thread's token itself:
   * that would match the fast path's owner test, which the hardened mode
   * leaves as it is.) */
  atomic_store(&slab_of(p)->owner, hk_thread_token() + 64);
  expect_report("free", "corrupted heap metadata", p);
  hk_api_free(p);
  ck_abort_msg("free with a corrupted owner was not reported");
}
END_TEST

START_TEST(test_class_overwritten) {
  void *p = hk_api_malloc(64);
  ck_assert_ptr_nonnull(p);
  atomic_store(&slab_of(p)->class_idx, (uint8_t)(hk_size_to_class(64) + 1));
  expect_report("free", "corrupted heap metadata", p);
  hk_api_free(p);
  ck_abort_msg("free with a corrupted class was not reported");
}
END_TEST

static void *free_two(void *arg) {
  void **v = arg;
  hk_api_free(v[0]);
  hk_api_free(v[1]);
  return NULL;
}

START_TEST(test_poisoned_remote_block_warn) {
  hk_options.invalid_free_warn = 1;
  /* Keep hakmem's report out of the test log. */
  int devnull = open("/dev/null", O_WRONLY);
  ck_assert_int_ge(devnull, 0);
  ck_assert_int_ge(dup2(devnull, 2), 0);
  enum { N = 8 };
  void *b[N];
  for (int i = 0; i < N; i++)
    b[i] = hk_api_malloc(80);
  struct hk_slab *s = slab_of(b[0]);
  /* Another thread frees b[1] then b[2]: the remote list is b[2] -> b[1]. */
  void *two[2] = {b[1], b[2]};
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, free_two, two), 0);
  ck_assert_int_eq(pthread_join(t, NULL), 0);
  hk_remote head = atomic_load(hk_slab_remote(s));
  ck_assert_uint_eq(head & 0xffff, index_of(b[2]));
  ck_assert_uint_eq(hk_remote_count(head), 2);
  /* A write after free puts a live block's address where a link would
   * be: it lands in the block, not in the list. */
  *(void **)launder(b[2]) = b[5];
  unsigned used = hk_slab_used(s);
  hk_slab_collect(s);
  ck_assert_uint_eq(s->free, index_of(b[2]));
  ck_assert_uint_eq(hk_slab_used(s), used - 2);
  ck_assert_uint_eq(atomic_load(hk_slab_remote(s)), HK_REMOTE_EMPTY);
  /* malloc goes on (reporting the write); b[5] is never handed out. */
  int got1 = 0, got2 = 0;
  for (int i = 0; i < 2000; i++) {
    void *p = hk_api_malloc(80);
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_ne(p, b[5]);
    got1 |= p == b[1];
    got2 |= p == b[2];
  }
  ck_assert(got1 && got2);
}
END_TEST

START_TEST(test_double_free_after_collect) {
  void *keep = hk_api_malloc(96);
  void *p = hk_api_malloc(96);
  void *two[2] = {p, keep};
  pthread_t t;
  /* Both freed remotely, collected by the next mallocs, then p is freed
   * again with its header overwritten. */
  ck_assert_int_eq(pthread_create(&t, NULL, free_two, two), 0);
  ck_assert_int_eq(pthread_join(t, NULL), 0);
  hk_slab_collect(slab_of(p));
  memset(launder(p), 0, 16);
  expect_report("free", "double free", p);
  hk_api_free(launder(p));
  ck_abort_msg("double free after collection was not reported");
}
END_TEST

static Suite *hardened_suite(void) {
  Suite *s = suite_create("hardened");
  TCase *tc = tcase_create("hardened");
  tcase_add_checked_fixture(tc, hardened_on, NULL);
  tcase_add_test(tc, test_fast_path_left_empty);
  tcase_add_test(tc, test_links_out_of_band);
  tcase_add_test_raise_signal(tc, test_owner_overwritten, SIGABRT);
  tcase_add_test_raise_signal(tc, test_class_overwritten, SIGABRT);
  tcase_add_test(tc, test_poisoned_remote_block_warn);
  tcase_add_test_raise_signal(tc, test_double_free_after_collect, SIGABRT);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  /* The misuse tests abort on purpose; no core files. */
  struct rlimit no_core = {0, 0};
  setrlimit(RLIMIT_CORE, &no_core);
  SRunner *sr = srunner_create(hardened_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
