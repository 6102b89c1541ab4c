/* test_freelist.c: unit tests of the free-list module
 * (src/small/freelist.h), on a slab record of its own: the module
 * touches only a slab's head, links and capacity, so no SuperSlab is
 * needed.
 *
 * The encoding is checked value by value (every 16-bit link is exactly
 * one of free or in use, only LIVE is live, and misuse is named by what
 * the link says); carving makes a chain of fresh blocks; handing out and
 * giving back behave as a stack against a model, and tell fresh blocks
 * from reused ones; an empty list is its sentinel, whose LIVE link stops
 * the fast path's one test; a claim succeeds once per LIVE block; a
 * remote chain is spliced without a walk, only its last block's link
 * read, and a last block that does not end the chain is reported with
 * nothing changed; a remote push counts, chains
 * and carries the first block pushed as the last, and a stuck head reads
 * as empty.
 */
#define _GNU_SOURCE
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "small/freelist.h"

#define CAP 64
static _Atomic hk_link links[CAP + 1]; /* and the sentinel's */
static struct hk_slab slab;

static void setup(void) {
  memset(&slab, 0, sizeof slab);
  for (unsigned i = 0; i < CAP; i++)
    atomic_store(&links[i], 0);
  slab.links = links;
  slab.capacity = CAP;
  hk_freelist_init(&slab);
  for (unsigned i = 0; i < CAP; i++)
    atomic_store(&links[i], HK_LINK_LIVE);
}

/* Takes the head as the fast path does; returns its index, or -1 when the
 * list is empty, -2 when the head's link may not be followed. */
static int take(int *fresh) {
  if (hk_freelist_empty(&slab))
    return -1;
  unsigned i = slab.free;
  hk_link next = hk_link_get(&slab, i);
  if (!hk_link_free(next))
    return -2;
  int f = hk_freelist_unlink_head(&slab, i, next);
  if (fresh)
    *fresh = f;
  return (int)i;
}

START_TEST(test_every_link_value_has_one_meaning) {
  unsigned live = 0;
  for (unsigned v = 0; v <= 0xffff; v++) {
    hk_link l = (hk_link)v;
    ck_assert_int_ne(hk_link_free(l), hk_link_in_use(l));
    live += (unsigned)hk_link_live(l);
    if (hk_link_live(l))
      ck_assert(hk_link_in_use(l));
  }
  ck_assert_uint_eq(live, 1);
  ck_assert(hk_link_in_use(HK_LINK_PENDING));
  ck_assert(hk_link_free(HK_LINK_END | HK_LINK_FRESH));
  ck_assert(hk_link_free(HK_LINK_INDEX | HK_LINK_FRESH));
}
END_TEST

START_TEST(test_misuse_is_named_by_the_link) {
  ck_assert_str_eq(hk_link_misuse(5 | HK_LINK_FRESH), "invalid pointer");
  ck_assert_str_eq(hk_link_misuse(HK_LINK_END | HK_LINK_FRESH),
                   "invalid pointer");
  ck_assert_str_eq(hk_link_misuse(5), "double free");
  ck_assert_str_eq(hk_link_misuse(HK_LINK_END), "double free");
  ck_assert_str_eq(hk_link_misuse(HK_LINK_PENDING), "double free");
}
END_TEST

START_TEST(test_carved_blocks_come_out_fresh_in_order) {
  ck_assert(hk_freelist_empty(&slab));
  ck_assert_int_eq(take(NULL), -1);
  hk_freelist_fill_fresh(&slab, 10, 5);
  for (int k = 0; k < 5; k++) {
    int fresh = 0;
    ck_assert_int_eq(take(&fresh), 10 + k);
    ck_assert_int_eq(fresh, 1);
    ck_assert(hk_link_live(hk_link_get(&slab, 10u + (unsigned)k)));
  }
  ck_assert(hk_freelist_empty(&slab));
  /* Nothing outside the carved run was written. */
  ck_assert(hk_link_live(hk_link_get(&slab, 9)));
  ck_assert(hk_link_live(hk_link_get(&slab, 15)));
}
END_TEST

/* Random takes and gives back against a stack model: the list is LIFO,
 * a given-back block is no longer fresh, a taken one is LIVE. */
START_TEST(test_take_and_push_follow_a_stack) {
  unsigned model[CAP], depth = 0, fresh_left = CAP;
  int out[CAP], nout = 0, was_fresh[CAP] = {0};
  hk_freelist_fill_fresh(&slab, 0, CAP);
  for (unsigned i = CAP; i-- > 0;)
    model[depth++] = i; /* top of the model is block 0 */
  srandom(7);
  for (int step = 0; step < 20000; step++) {
    if (nout > 0 && (depth == 0 || random() % 2)) {
      int k = (int)(random() % (unsigned)nout);
      unsigned b = (unsigned)out[k];
      out[k] = out[--nout];
      ck_assert(hk_link_live(hk_link_get(&slab, b)));
      hk_freelist_push(&slab, b);
      model[depth++] = b;
    } else {
      int fresh;
      int b = take(&fresh);
      ck_assert_int_ge(b, 0);
      ck_assert_uint_eq((unsigned)b, model[--depth]);
      if (fresh) {
        ck_assert_int_eq(was_fresh[b], 0);
        was_fresh[b] = 1;
        fresh_left--;
      } else {
        ck_assert_int_eq(was_fresh[b], 1);
      }
      out[nout++] = b;
    }
    ck_assert_int_eq(hk_freelist_empty(&slab), depth == 0);
  }
  ck_assert_uint_lt(fresh_left, CAP);
}
END_TEST

/* A head whose link says LIVE or PENDING (two frees raced) is not
 * followed. */
START_TEST(test_head_in_use_is_not_followed) {
  hk_freelist_fill_fresh(&slab, 0, 3);
  hk_link_set(&slab, 0, HK_LINK_PENDING);
  ck_assert_int_eq(take(NULL), -2);
  hk_link_set(&slab, 0, HK_LINK_LIVE);
  ck_assert_int_eq(take(NULL), -2);
  ck_assert_uint_eq(slab.free, 0);
}
END_TEST

START_TEST(test_claim_succeeds_once) {
  hk_link found = 0;
  ck_assert_int_eq(hk_freelist_claim(&slab, 3, &found), 1);
  ck_assert_uint_eq(hk_link_get(&slab, 3), HK_LINK_PENDING);
  ck_assert_int_eq(hk_freelist_claim(&slab, 3, &found), 0);
  ck_assert_uint_eq(found, HK_LINK_PENDING);
  /* A free block is not claimed, and its link is left as it was. */
  hk_freelist_fill_fresh(&slab, 8, 2);
  ck_assert_int_eq(hk_freelist_claim(&slab, 8, &found), 0);
  ck_assert_uint_eq(found, 9 | HK_LINK_FRESH);
  ck_assert_uint_eq(hk_link_get(&slab, 8), 9 | HK_LINK_FRESH);
}
END_TEST

/* An empty list is the sentinel: the head's link, the one thing malloc's
 * fast path tests, is LIVE, whether the list was never filled, was taken
 * to its end or was dropped. */
START_TEST(test_empty_list_stops_at_the_sentinel) {
  ck_assert(hk_freelist_empty(&slab));
  ck_assert_uint_eq(slab.free, CAP);
  ck_assert(hk_link_live(hk_link_get(&slab, slab.free)));
  hk_freelist_fill_fresh(&slab, 0, 2);
  ck_assert_uint_eq(hk_link_get(&slab, 1), CAP | HK_LINK_FRESH);
  ck_assert_int_eq(take(NULL), 0);
  ck_assert_int_eq(take(NULL), 1);
  ck_assert(hk_freelist_empty(&slab));
  ck_assert(hk_link_live(hk_link_get(&slab, slab.free)));
  hk_freelist_push(&slab, 0);
  ck_assert(!hk_freelist_empty(&slab));
  hk_freelist_clear(&slab);
  ck_assert(hk_freelist_empty(&slab));
  ck_assert(hk_link_live(hk_link_get(&slab, slab.free)));
}
END_TEST

/* Onto an empty list the chain becomes the list, ending at the sentinel:
 * only the last block's link is read, so a corrupt one before it is not
 * walked (malloc checks each link as it pops). */
START_TEST(test_splice_onto_empty_list_does_not_walk) {
  hk_freelist_chain(&slab, 4, 1000); /* out of range: never read */
  hk_freelist_chain(&slab, 6, HK_LINK_END);
  ck_assert_uint_eq(hk_freelist_splice(&slab, 4, 6), HK_LINK_END);
  ck_assert_uint_eq(slab.free, 4);
  ck_assert_uint_eq(hk_link_get(&slab, 6), CAP);
}
END_TEST

START_TEST(test_splice_links_the_last_block_to_the_old_list) {
  hk_freelist_fill_fresh(&slab, 40, 2); /* the owner's list: 40, 41 */
  /* The remote chain 5 -> 6 -> 7: spliced in front by 7's link alone. */
  hk_freelist_chain(&slab, 5, 6);
  hk_freelist_chain(&slab, 6, 7);
  hk_freelist_chain(&slab, 7, HK_LINK_END);
  ck_assert_uint_eq(hk_freelist_splice(&slab, 5, 7), HK_LINK_END);
  unsigned want[] = {5, 6, 7, 40, 41};
  for (unsigned k = 0; k < 5; k++)
    ck_assert_int_eq(take(NULL), (int)want[k]);
  ck_assert(hk_freelist_empty(&slab));
}
END_TEST

/* A last block whose link does not end the chain is not the chain's end:
 * linking it to the owner's list would cut the chain or close a loop. */
START_TEST(test_splice_reports_a_corrupt_link_and_changes_nothing) {
  hk_freelist_fill_fresh(&slab, 40, 2);
  hk_freelist_chain(&slab, 5, 6);
  hk_freelist_chain(&slab, 6, 40); /* names a block of the owner's list */
  ck_assert_uint_eq(hk_freelist_splice(&slab, 5, 6), 6);
  ck_assert_uint_eq(slab.free, 40);
  ck_assert_uint_eq(hk_link_get(&slab, 6), 40);
  ck_assert_uint_eq(hk_link_get(&slab, 41), CAP | HK_LINK_FRESH);
  /* Onto an empty list too: the last link would become the list's end. */
  hk_freelist_clear(&slab);
  ck_assert_uint_eq(hk_freelist_splice(&slab, 5, 6), 6);
  ck_assert(hk_freelist_empty(&slab));
  ck_assert_uint_eq(hk_link_get(&slab, 6), 40);
}
END_TEST

START_TEST(test_remote_push_counts_and_chains) {
  _Atomic hk_remote remote = HK_REMOTE_EMPTY;
  ck_assert_uint_eq(hk_freelist_remote_push(&slab, &remote, 3, 3, 1),
                    HK_REMOTE_EMPTY);
  ck_assert_uint_eq(hk_remote_first(remote), 3);
  ck_assert_uint_eq(hk_remote_count(remote), 1);
  ck_assert_uint_eq(hk_remote_last(remote), 3);
  ck_assert_uint_eq(hk_link_get(&slab, 3), HK_LINK_END);
  /* A chain of two, 8 -> 9, in front of 3, which stays the last. */
  hk_freelist_chain(&slab, 8, 9);
  hk_freelist_remote_push(&slab, &remote, 8, 9, 2);
  ck_assert_uint_eq(hk_remote_first(remote), 8);
  ck_assert_uint_eq(hk_remote_count(remote), 3);
  ck_assert_uint_eq(hk_remote_last(remote), 3);
  ck_assert_uint_eq(hk_link_get(&slab, 9), 3);
  /* What the owner takes splices into its own list in that order. */
  hk_freelist_fill_fresh(&slab, 40, 1);
  hk_remote h = atomic_exchange(&remote, HK_REMOTE_EMPTY);
  ck_assert_uint_eq(
      hk_freelist_splice(&slab, hk_remote_first(h), hk_remote_last(h)),
      HK_LINK_END);
  ck_assert_int_eq(take(NULL), 8);
  ck_assert_int_eq(take(NULL), 9);
  ck_assert_int_eq(take(NULL), 3);
  ck_assert_int_eq(take(NULL), 40);
  ck_assert(hk_freelist_empty(&slab));
}
END_TEST

START_TEST(test_stuck_head_reads_as_empty) {
  _Atomic hk_remote remote = HK_REMOTE_STUCK;
  ck_assert_uint_eq(hk_freelist_remote_push(&slab, &remote, 12, 12, 1),
                    HK_REMOTE_STUCK);
  ck_assert_uint_eq(hk_remote_first(remote), 12);
  ck_assert_uint_eq(hk_remote_count(remote), 1);
  ck_assert_uint_eq(hk_remote_last(remote), 12);
  ck_assert_uint_eq(hk_link_get(&slab, 12), HK_LINK_END);
}
END_TEST

static Suite *freelist_suite(void) {
  Suite *s = suite_create("freelist");
  TCase *tc = tcase_create("core");
  tcase_add_checked_fixture(tc, setup, NULL);
  tcase_add_test(tc, test_every_link_value_has_one_meaning);
  tcase_add_test(tc, test_misuse_is_named_by_the_link);
  tcase_add_test(tc, test_carved_blocks_come_out_fresh_in_order);
  tcase_add_test(tc, test_take_and_push_follow_a_stack);
  tcase_add_test(tc, test_head_in_use_is_not_followed);
  tcase_add_test(tc, test_claim_succeeds_once);
  tcase_add_test(tc, test_empty_list_stops_at_the_sentinel);
  tcase_add_test(tc, test_splice_onto_empty_list_does_not_walk);
  tcase_add_test(tc, test_splice_links_the_last_block_to_the_old_list);
  tcase_add_test(tc, test_splice_reports_a_corrupt_link_and_changes_nothing);
  tcase_add_test(tc, test_remote_push_counts_and_chains);
  tcase_add_test(tc, test_stuck_head_reads_as_empty);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(freelist_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
