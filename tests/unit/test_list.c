/* test_list.c: unit tests of the intrusive lists (src/base/list.h).
 *
 * Every list in the allocator is one of these, so each operation is
 * checked here on its own: pushes at either end, removal of the first, the
 * last and a middle node and of the only one, emptiness, and iteration in
 * both directions, every link compared after each step (check_queue walks
 * the list forwards and backwards against the expected order). The checked
 * operations are driven with a follow function that logs the links it is
 * given, so the tests see that every link read and then dereferenced went
 * through it, and that a list whose links disagree is told. The records
 * keep their nodes away from offset 0, so that a list that mixed up a
 * record with its node would be caught.
 */
#define _GNU_SOURCE
#include <check.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/list.h"

struct rec {
  int value;
  struct hk_list_node node;
  struct hk_stack_node snode;
};
#define OFF offsetof(struct rec, node)
#define SOFF offsetof(struct rec, snode)

#define NRECS 8
static struct rec recs[NRECS];

/* A follow function that logs what it was given, and what a caller holds
 * it to: it is called for links about to be dereferenced, never NULL. */
#define MAX_FOLLOWED 8
static struct {
  void *link;
  const void *from;
} followed[MAX_FOLLOWED];
static int nfollowed;

static void *logging_follow(void *link, const void *from) {
  ck_assert_ptr_nonnull(link);
  ck_assert_int_lt(nfollowed, MAX_FOLLOWED);
  followed[nfollowed].link = link;
  followed[nfollowed].from = from;
  nfollowed++;
  return link;
}

static void expect_followed(int i, void *link, const void *from) {
  ck_assert_int_gt(nfollowed, i);
  ck_assert_ptr_eq(followed[i].link, link);
  ck_assert_ptr_eq(followed[i].from, from);
}

static void setup(void) {
  memset(recs, 0, sizeof recs);
  nfollowed = 0;
  for (int i = 0; i < NRECS; i++)
    recs[i].value = i;
}

/* Walks from `first` forwards, then from `last` (NULL: the last record
 * found) backwards, and compares both with `want` (values, -1 ended). */
static void check_links(struct rec *first, struct rec *last, const int *want) {
  int n = 0;
  struct rec *prev = NULL;
  for (struct rec *r = first; r; prev = r, r = r->node.next, n++) {
    ck_assert_msg(want[n] >= 0, "more records than the %d expected", n);
    ck_assert_int_eq(r->value, want[n]);
    ck_assert_ptr_eq(r->node.prev, prev);
  }
  ck_assert_msg(want[n] < 0, "%d records, fewer than expected", n);
  if (last)
    ck_assert_ptr_eq(last, prev);
  for (struct rec *r = prev; r; r = r->node.prev)
    ck_assert_int_eq(r->value, want[--n]);
  ck_assert_int_eq(n, 0);
}

static void check_queue(const struct hk_queue *q, const int *want) {
  ck_assert_int_eq(hk_queue_empty(q), want[0] < 0);
  if (want[0] < 0)
    ck_assert_ptr_null(q->last);
  else
    ck_assert_ptr_nonnull(q->last);
  check_links(q->first, q->last, want);
}

static void check_list(const struct hk_list *l, const int *want) {
  ck_assert_int_eq(hk_list_empty(l), want[0] < 0);
  check_links(l->first, NULL, want);
}

#define WANT(...) ((const int[]){__VA_ARGS__, -1})
#define NONE ((const int[]){-1})

START_TEST(test_zeroed_heads_are_empty) {
  static struct hk_list l;
  static struct hk_queue q;
  static struct hk_stack s;
  static struct hk_atomic_stack a;
  ck_assert(hk_list_empty(&l));
  ck_assert(hk_queue_empty(&q));
  ck_assert(hk_stack_empty(&s));
  ck_assert_ptr_null(hk_queue_pop_front(&q, OFF));
  ck_assert_ptr_null(hk_stack_pop(&s, SOFF));
  ck_assert_ptr_null(hk_atomic_stack_take(&a).top);
}
END_TEST

START_TEST(test_queue_push_back_pops_in_order) {
  struct hk_queue q = {0};
  for (int i = 0; i < 4; i++)
    hk_queue_push_back(&q, &recs[i], OFF);
  check_queue(&q, WANT(0, 1, 2, 3));
  for (int i = 0; i < 4; i++) {
    struct rec *r = hk_queue_pop_front(&q, OFF);
    ck_assert_ptr_eq(r, &recs[i]);
  }
  check_queue(&q, NONE);
  ck_assert_ptr_null(hk_queue_pop_front(&q, OFF));
}
END_TEST

START_TEST(test_queue_push_front_and_back) {
  struct hk_queue q = {0};
  hk_queue_push_front(&q, &recs[1], OFF); /* onto an empty queue */
  check_queue(&q, WANT(1));
  hk_queue_push_back(&q, &recs[2], OFF);
  hk_queue_push_front(&q, &recs[0], OFF);
  hk_queue_push_back(&q, &recs[3], OFF);
  check_queue(&q, WANT(0, 1, 2, 3));
}
END_TEST

START_TEST(test_queue_remove_middle_first_last_only) {
  struct hk_queue q = {0};
  for (int i = 0; i < 5; i++)
    hk_queue_push_back(&q, &recs[i], OFF);
  hk_queue_remove(&q, &recs[2], OFF);
  check_queue(&q, WANT(0, 1, 3, 4));
  hk_queue_remove(&q, &recs[0], OFF);
  check_queue(&q, WANT(1, 3, 4));
  hk_queue_remove(&q, &recs[4], OFF);
  check_queue(&q, WANT(1, 3));
  hk_queue_remove(&q, &recs[3], OFF);
  check_queue(&q, WANT(1));
  hk_queue_remove(&q, &recs[1], OFF);
  check_queue(&q, NONE);
  /* Removed records go back on at either end, their old links (3 had a
   * prev, 2 a next) all written again. */
  hk_queue_push_back(&q, &recs[4], OFF);
  hk_queue_push_back(&q, &recs[2], OFF);
  hk_queue_push_front(&q, &recs[3], OFF);
  check_queue(&q, WANT(3, 4, 2));
}
END_TEST

START_TEST(test_queue_iteration_may_remove_as_it_goes) {
  struct hk_queue q = {0}, odd = {0};
  for (int i = 0; i < NRECS; i++)
    hk_queue_push_back(&q, &recs[i], OFF);
  /* The next record is read before the visited one moves to another
   * queue, as heap.c's purge walks its queues. */
  int seen = 0;
  for (struct rec *r = q.first, *next; r; r = next, seen++) {
    next = r->node.next;
    if (r->value % 2) {
      hk_queue_remove(&q, r, OFF);
      hk_queue_push_back(&odd, r, OFF);
    }
  }
  ck_assert_int_eq(seen, NRECS);
  check_queue(&q, WANT(0, 2, 4, 6));
  check_queue(&odd, WANT(1, 3, 5, 7));
}
END_TEST

START_TEST(test_list_push_remove) {
  struct hk_list l = {0};
  check_list(&l, NONE);
  for (int i = 0; i < 4; i++)
    hk_list_push(&l, &recs[i], OFF);
  check_list(&l, WANT(3, 2, 1, 0));
  hk_list_remove(&l, &recs[1], OFF); /* middle */
  check_list(&l, WANT(3, 2, 0));
  hk_list_remove(&l, &recs[3], OFF); /* first */
  check_list(&l, WANT(2, 0));
  hk_list_remove(&l, &recs[0], OFF); /* last */
  check_list(&l, WANT(2));
  hk_list_remove(&l, &recs[2], OFF); /* only */
  check_list(&l, NONE);
  hk_list_push(&l, &recs[1], OFF); /* its old links: 2 and 0 */
  check_list(&l, WANT(1));
  hk_list_push(&l, &recs[0], OFF);
  check_list(&l, WANT(0, 1));
}
END_TEST

static const char where[] = "where";

START_TEST(test_checked_push_follows_the_old_first) {
  struct hk_list l = {0};
  struct hk_queue q = {0};
  hk_list_push_checked(&l, &recs[0], OFF, logging_follow, where);
  hk_queue_push_front_checked(&q, &recs[4], OFF, logging_follow, where);
  ck_assert_int_eq(nfollowed, 0); /* nothing was there to follow */
  hk_list_push_checked(&l, &recs[1], OFF, logging_follow, where);
  ck_assert_int_eq(nfollowed, 1);
  expect_followed(0, &recs[0], where);
  hk_queue_push_front_checked(&q, &recs[5], OFF, logging_follow, &q);
  ck_assert_int_eq(nfollowed, 2);
  expect_followed(1, &recs[4], &q);
  check_list(&l, WANT(1, 0));
  check_queue(&q, WANT(5, 4));
}
END_TEST

START_TEST(test_linked_follows_both_neighbours) {
  struct hk_queue q = {0};
  for (int i = 0; i < 3; i++)
    hk_queue_push_back(&q, &recs[i], OFF);
  ck_assert(hk_queue_linked(&q, &recs[1], recs[1].node, OFF, logging_follow,
                            where));
  ck_assert_int_eq(nfollowed, 2);
  expect_followed(0, &recs[0], where);
  expect_followed(1, &recs[2], where);
  /* The ends: the head, or the tail, stands for the missing neighbour. */
  nfollowed = 0;
  ck_assert(hk_queue_linked(&q, &recs[0], recs[0].node, OFF, logging_follow,
                            where));
  ck_assert(hk_queue_linked(&q, &recs[2], recs[2].node, OFF, logging_follow,
                            where));
  ck_assert_int_eq(nfollowed, 2);
  expect_followed(0, &recs[1], where);
  expect_followed(1, &recs[1], where);
}
END_TEST

START_TEST(test_linked_tells_disagreeing_links) {
  struct hk_queue q = {0};
  for (int i = 0; i < 3; i++)
    hk_queue_push_back(&q, &recs[i], OFF);
  struct rec *r = &recs[1];
  struct hk_list_node bad = r->node;
  bad.next = &recs[5]; /* on no list: its prev is not r */
  ck_assert(!hk_queue_linked(&q, r, bad, OFF, logging_follow, where));
  bad = r->node;
  bad.prev = &recs[2]; /* whose next is NULL, not r */
  ck_assert(!hk_queue_linked(&q, r, bad, OFF, logging_follow, where));
  /* First or last by its own links, but the head or tail says not. */
  bad = r->node;
  bad.prev = NULL;
  ck_assert(!hk_queue_linked(&q, r, bad, OFF, logging_follow, where));
  bad = r->node;
  bad.next = NULL;
  ck_assert(!hk_queue_linked(&q, r, bad, OFF, logging_follow, where));
  /* A head-only list has no tail to compare: a last record is taken at
   * its word, as its links say nothing more. */
  struct hk_list l = {0};
  hk_list_push(&l, &recs[6], OFF);
  hk_list_push(&l, &recs[7], OFF);
  ck_assert(hk_list_linked(&l, &recs[6], recs[6].node, OFF, NULL, NULL));
  ck_assert(hk_list_linked(&l, &recs[7], recs[7].node, OFF, NULL, NULL));
  ck_assert(!hk_list_linked(&l, &recs[6], recs[7].node, OFF, NULL, NULL));
  bad = recs[6].node;
  bad.prev = NULL;
  ck_assert(!hk_list_linked(&l, &recs[6], bad, OFF, NULL, NULL));
}
END_TEST

START_TEST(test_unlink_uses_the_links_seen) {
  struct hk_queue q = {0};
  for (int i = 0; i < 3; i++)
    hk_queue_push_back(&q, &recs[i], OFF);
  struct rec *r = &recs[1];
  struct hk_list_node seen = r->node;
  ck_assert(hk_queue_linked(&q, r, seen, OFF, NULL, NULL));
  /* Written after the check: the unlink must not read them again. */
  r->node.next = &recs[6];
  r->node.prev = &recs[7];
  hk_queue_unlink(&q, seen, OFF);
  check_queue(&q, WANT(0, 2));
  ck_assert_ptr_null(recs[6].node.prev);
  ck_assert_ptr_null(recs[7].node.next);

  struct hk_list l = {0};
  hk_list_push(&l, &recs[3], OFF);
  hk_list_push(&l, &recs[4], OFF);
  seen = recs[4].node;
  ck_assert(hk_list_linked(&l, &recs[4], seen, OFF, logging_follow, where));
  hk_list_unlink(&l, seen, OFF);
  check_list(&l, WANT(3));
}
END_TEST

START_TEST(test_stack_push_pop_take) {
  struct hk_stack s = {0};
  for (int i = 0; i < 4; i++)
    hk_stack_push(&s, &recs[i], SOFF);
  ck_assert(!hk_stack_empty(&s));
  ck_assert_ptr_eq(hk_stack_pop(&s, SOFF), &recs[3]);
  struct hk_stack all = hk_stack_take(&s);
  ck_assert(hk_stack_empty(&s));
  int want = 2;
  for (struct rec *r = all.top; r; r = r->snode.next)
    ck_assert_int_eq(r->value, want--);
  ck_assert_int_eq(want, -1);
  for (int i = 2; i >= 0; i--)
    ck_assert_ptr_eq(hk_stack_pop(&all, SOFF), &recs[i]);
  ck_assert_ptr_null(hk_stack_pop(&all, SOFF));
  ck_assert(hk_stack_empty(&all));
}
END_TEST

START_TEST(test_stack_unlink_while_walking) {
  struct hk_stack s = {0}, out = {0};
  for (int i = 0; i < NRECS; i++)
    hk_stack_push(&s, &recs[i], SOFF); /* 7 on top, 0 at the bottom */
  /* Take off the top, the bottom and the multiples of three between. */
  for (void **at = &s.top; *at;) {
    struct rec *r = *at;
    if (r->value == 7 || r->value % 3 == 0)
      hk_stack_push(&out, hk_stack_unlink(at, SOFF), SOFF);
    else
      at = &r->snode.next;
  }
  const int kept[] = {5, 4, 2, 1}, gone[] = {0, 3, 6, 7};
  for (int i = 0; i < 4; i++) {
    ck_assert_ptr_eq(hk_stack_pop(&s, SOFF), &recs[kept[i]]);
    ck_assert_ptr_eq(hk_stack_pop(&out, SOFF), &recs[gone[i]]);
  }
  ck_assert(hk_stack_empty(&s));
  ck_assert(hk_stack_empty(&out));
}
END_TEST

#define PUSHERS 2
#define PUSHES 100000
static struct hk_atomic_stack shared;
static struct rec pushed[PUSHERS][PUSHES];
static pthread_barrier_t start;

static void *pusher(void *arg) {
  struct rec *mine = arg;
  pthread_barrier_wait(&start);
  for (int i = 0; i < PUSHES; i++)
    hk_atomic_stack_push(&shared, &mine[i], SOFF);
  return NULL;
}

START_TEST(test_atomic_stack_loses_no_push) {
  pthread_t t[PUSHERS];
  ck_assert_int_eq(pthread_barrier_init(&start, NULL, PUSHERS), 0);
  for (int i = 0; i < PUSHERS; i++)
    ck_assert_int_eq(pthread_create(&t[i], NULL, pusher, pushed[i]), 0);
  for (int i = 0; i < PUSHERS; i++)
    pthread_join(t[i], NULL);
  pthread_barrier_destroy(&start);
  struct hk_stack all = hk_atomic_stack_take(&shared);
  ck_assert_ptr_null(hk_atomic_stack_take(&shared).top);
  /* Every record once, and each thread's in the reverse of its pushes. */
  static unsigned char seen[PUSHERS][PUSHES];
  int last[PUSHERS] = {PUSHES, PUSHES}, count = 0;
  for (struct rec *r = all.top; r; r = r->snode.next, count++) {
    ck_assert_int_lt(count, PUSHERS * PUSHES);
    int who = r >= pushed[1] ? 1 : 0;
    int i = (int)(r - pushed[who]);
    ck_assert(!seen[who][i]);
    seen[who][i] = 1;
    ck_assert_int_lt(i, last[who]);
    last[who] = i;
  }
  ck_assert_int_eq(count, PUSHERS * PUSHES);
}
END_TEST

static Suite *list_suite(void) {
  Suite *s = suite_create("list");
  TCase *dl = tcase_create("doubly_linked");
  tcase_add_checked_fixture(dl, setup, NULL);
  tcase_add_test(dl, test_zeroed_heads_are_empty);
  tcase_add_test(dl, test_queue_push_back_pops_in_order);
  tcase_add_test(dl, test_queue_push_front_and_back);
  tcase_add_test(dl, test_queue_remove_middle_first_last_only);
  tcase_add_test(dl, test_queue_iteration_may_remove_as_it_goes);
  tcase_add_test(dl, test_list_push_remove);
  suite_add_tcase(s, dl);
  TCase *ck = tcase_create("checked");
  tcase_add_checked_fixture(ck, setup, NULL);
  tcase_add_test(ck, test_checked_push_follows_the_old_first);
  tcase_add_test(ck, test_linked_follows_both_neighbours);
  tcase_add_test(ck, test_linked_tells_disagreeing_links);
  tcase_add_test(ck, test_unlink_uses_the_links_seen);
  suite_add_tcase(s, ck);
  TCase *st = tcase_create("stack");
  tcase_add_checked_fixture(st, setup, NULL);
  tcase_add_test(st, test_stack_push_pop_take);
  tcase_add_test(st, test_stack_unlink_while_walking);
  tcase_add_test(st, test_atomic_stack_loses_no_push);
  suite_add_tcase(s, st);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(list_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
