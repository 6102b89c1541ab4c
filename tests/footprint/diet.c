/*
 * Integration test: what HAKMEM_TINY_MEM_DIET=1 changes, tier by tier.
 *
 * Each probe runs in a fresh process of this program (re-executed with the
 * knobs in its environment, the library preloaded as for every footprint
 * test), once with the diet and once without, and both times with
 * HAKMEM_PURGE_DELAY=-1: without the diet nothing then goes back on a
 * timer, so the comparison is deterministic, and the diet must win over
 * the delay as the manual says. What is measured is the state after a
 * pattern of frees, never a duration: pages resident (mincore), SuperSlabs
 * mapped and large bytes cached (hakmem_stats_get).
 *
 *   tiny     8 slabs of 2 KiB blocks, all freed: without the diet their
 *            thread keeps 4 empty slabs and the pool the others, all
 *            resident; with it every page goes back. (The tiny geometry's
 *            64 KiB slabs serve 2 KiB blocks with either tiny backend;
 *            HAKMEM_TINY_USE_SUPERSLAB=0 unmaps an emptied slab of the
 *            classes up to 1 KiB at once, diet or not.)
 *   medium   the same with 4 slabs of 8 KiB blocks.
 *   partial  a slab of 1 KiB blocks with all but its first and last block
 *            freed: with the diet its free pages go back on the thread's
 *            next slow path, without it they stay.
 *   superslab a thread that used 8 KiB blocks exits: with the diet its
 *            emptied SuperSlab is unmapped, without it the pool keeps it.
 *   large    a 4 MiB block freed: with the diet its pages go back at
 *            once, nothing is cached and its chunk is unmapped; without
 *            it they stay cached in the chunk.
 */
#define _GNU_SOURCE
#include <check.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hakmem.h"
#include "../integration/preloaded.h"
#include "child.h"

#define PAGE 4096u
#define MiB ((size_t)1 << 20)
/* A class no one in this process has used before the probe asks for it:
 * its first block is a slow path, where a heap runs its due purges. */
#define SLOW_PATH_SIZE 40000

/* Where blocks the probes allocate only for the allocator's sake go, so
 * that the compiler cannot drop the malloc/free pair. */
static void *volatile sink;

static int (*stats_get)(struct hakmem_stats *, size_t);

static struct hakmem_stats stats(void) {
  struct hakmem_stats st;
  memset(&st, 0, sizeof st);
  if (!stats_get || stats_get(&st, sizeof st) != 0)
    abort();
  return st;
}

/* Writes every page of the block: a memset right before free() is a dead
 * store the compiler may drop. */
static void touch(void *p, size_t size) {
  volatile char *c = p;
  for (size_t i = 0; i < size; i += 512)
    c[i] = 0x5a;
  c[size - 1] = 0x5a;
}

/* Resident pages among the pages of [p, p + size). */
static size_t resident_pages(const void *p, size_t size) {
  uintptr_t lo = (uintptr_t)p & ~(uintptr_t)(PAGE - 1);
  uintptr_t hi = ((uintptr_t)p + size + PAGE - 1) & ~(uintptr_t)(PAGE - 1);
  size_t n = 0;
  for (uintptr_t a = lo; a < hi; a += PAGE) {
    unsigned char v = 0;
    if (mincore((void *)a, PAGE, &v) == 0 && (v & 1))
      n++; /* unmapped (ENOMEM) counts as not resident */
  }
  return n;
}

/* Fills `count` blocks of `size`, frees them all, then takes the slow path
 * of a class not used yet; prints "resident pages" of the blocks. */
static void probe_slabs(size_t size, size_t count) {
  void **p = malloc(count * sizeof *p); /* a block of its own class */
  for (size_t i = 0; i < count; i++) {
    p[i] = malloc(size);
    touch(p[i], size);
  }
  for (size_t i = 0; i < count; i++)
    free(p[i]);
  void *q = sink = malloc(SLOW_PATH_SIZE);
  size_t res = 0, total = 0;
  uintptr_t counted = 0; /* the last page counted: blocks of a slab are
                          * in address order, and slabs do not overlap */
  for (size_t i = 0; i < count; i++) {
    uintptr_t a = (uintptr_t)p[i] & ~(uintptr_t)(PAGE - 1);
    for (; a < (uintptr_t)p[i] + size; a += PAGE) {
      if (a == counted)
        continue;
      counted = a;
      total++;
      res += resident_pages((void *)a, PAGE);
    }
  }
  printf("%zu %zu\n", res, total);
  free(q);
  free(p);
}

static void probe_partial(void) {
  enum { N = 80 }; /* a 64 KiB slab holds 63 or 64 blocks of 1 KiB */
  static void *p[N];
  for (size_t i = 0; i < N; i++) {
    p[i] = malloc(1024);
    touch(p[i], 1024);
  }
  /* Keep the first and last block of the first slab: it stays in use. */
  size_t last = 62;
  for (size_t i = 1; i < last; i++)
    free(p[i]);
  void *q = sink = malloc(SLOW_PATH_SIZE); /* the heap's due purges run */
  size_t res = 0;
  for (size_t i = 8; i < last - 8; i += 4)
    res += resident_pages(p[i], 1024);
  printf("%zu %zu\n", res, (size_t)((last - 16 + 3) / 4));
  free(q);
  free(p[0]);
  for (size_t i = last; i < N; i++)
    free(p[i]);
}

static void *medium_thread(void *arg) {
  (void)arg;
  enum { N = 64 };
  void *p[N];
  for (size_t i = 0; i < N; i++) {
    p[i] = malloc(8192);
    touch(p[i], 8192);
  }
  for (size_t i = 0; i < N; i++)
    free(p[i]);
  return NULL;
}

static void *idle_thread(void *arg) { return arg; }

static void probe_superslab(void) {
  /* A first thread, which uses no medium block: what a thread costs
   * (glibc's own blocks for it) is then in `before`. */
  pthread_t t;
  if (pthread_create(&t, NULL, idle_thread, NULL) != 0 ||
      pthread_join(t, NULL) != 0)
    abort();
  size_t before = stats().superslabs;
  if (pthread_create(&t, NULL, medium_thread, NULL) != 0 ||
      pthread_join(t, NULL) != 0)
    abort();
  printf("%zu %zu\n", stats().superslabs, before);
}

static void probe_large(void) {
  size_t size = 4 * MiB;
  size_t before = stats().mapped_bytes;
  char *p = malloc(size);
  touch(p, size);
  volatile uintptr_t at = (uintptr_t)p; /* only looked at once freed */
  free(p);
  size_t res = resident_pages((void *)at, size);
  struct hakmem_stats st = stats();
  printf("%zu %zu %zu %zu %zu\n", res, size / PAGE, st.large_cached_bytes,
         st.mapped_bytes, before);
}

static int probe(const char *name) {
  stats_get = (int (*)(struct hakmem_stats *, size_t))dlsym(RTLD_DEFAULT,
                                                             "hakmem_stats_get");
  if (!stats_get)
    return 2;
  if (strcmp(name, "tiny") == 0)
    probe_slabs(2048, 8 * 32);
  else if (strcmp(name, "medium") == 0)
    probe_slabs(8192, 4 * 64);
  else if (strcmp(name, "partial") == 0)
    probe_partial();
  else if (strcmp(name, "superslab") == 0)
    probe_superslab();
  else if (strcmp(name, "large") == 0)
    probe_large();
  else
    return 2;
  return fflush(stdout) == 0 ? 0 : 1;
}

/* Runs probe `name` in a fresh process with the diet on or off; its
 * numbers in v[0..4]. */
static void run(const char *name, int diet, size_t v[5]) {
  static char probe_env[64];
  snprintf(probe_env, sizeof probe_env, "DIET_PROBE=%s", name);
  const char *env[] = {diet ? "HAKMEM_TINY_MEM_DIET=1" : "HAKMEM_TINY_MEM_DIET=0",
                       "HAKMEM_PURGE_DELAY=-1", probe_env, NULL};
  char buf[128];
  run_child(env, NULL, buf, sizeof buf);
  v[0] = v[1] = v[2] = v[3] = v[4] = 0;
  ck_assert_int_ge(sscanf(buf, "%zu %zu %zu %zu %zu", &v[0], &v[1], &v[2],
                          &v[3], &v[4]), 2);
  fprintf(stderr, "# %s, diet %d: %s", name, diet, buf);
}

START_TEST(test_tiny_and_medium_empty_slabs) {
  assert_hakmem_preloaded();
  const char *name = _i ? "medium" : "tiny";
  size_t off[5], on[5];
  run(name, 0, off);
  run(name, 1, on);
  /* Resident pages of the freed blocks, of all their pages. */
  ck_assert_msg(off[0] * 8 >= off[1] * 7, "%s without the diet: %zu of %zu "
                "pages resident", name, off[0], off[1]);
  ck_assert_msg(on[0] * 16 <= on[1], "%s with the diet: %zu of %zu pages "
                "still resident", name, on[0], on[1]);
}
END_TEST

START_TEST(test_free_pages_of_slab_in_use) {
  assert_hakmem_preloaded();
  size_t off[5], on[5];
  run("partial", 0, off);
  run("partial", 1, on);
  ck_assert_msg(off[0] == off[1], "without the diet: %zu of %zu free pages "
                "resident", off[0], off[1]);
  ck_assert_msg(on[0] == 0, "with the diet: %zu of %zu free pages still "
                "resident", on[0], on[1]);
}
END_TEST

START_TEST(test_empty_superslab_unmapped) {
  assert_hakmem_preloaded();
  size_t off[5], on[5];
  run("superslab", 0, off);
  run("superslab", 1, on);
  /* SuperSlabs mapped after the thread's exit, and before it started. */
  ck_assert_msg(off[0] > off[1], "without the diet the emptied SuperSlab "
                "is not kept (%zu mapped, %zu before)", off[0], off[1]);
  ck_assert_msg(on[0] == on[1], "with the diet the emptied SuperSlab "
                "stays (%zu mapped, %zu before)", on[0], on[1]);
}
END_TEST

START_TEST(test_large_pages_back_at_once) {
  assert_hakmem_preloaded();
  size_t off[5], on[5];
  run("large", 0, off);
  run("large", 1, on);
  ck_assert_msg(off[0] == off[1] && off[2] >= 4 * MiB,
                "without the diet: %zu of %zu pages resident, %zu bytes "
                "cached", off[0], off[1], off[2]);
  ck_assert_msg(on[0] == 0 && on[2] == 0, "with the diet: %zu of %zu pages "
                "resident, %zu bytes cached", on[0], on[1], on[2]);
  /* Bytes mapped after the free, and before the malloc: without the diet
   * the block's chunk stays for the next large block; with it, the chunk
   * left with no block is unmapped. */
  ck_assert_msg(off[3] >= off[4] + 4 * MiB, "without the diet: %zu bytes "
                "mapped after the free, %zu before", off[3], off[4]);
  ck_assert_msg(on[3] <= on[4], "with the diet: %zu bytes mapped after the "
                "free, %zu before", on[3], on[4]);
}
END_TEST

int main(void) {
  const char *name = getenv("DIET_PROBE");
  if (name)
    return probe(name);
  Suite *s = suite_create("diet");
  TCase *tc = tcase_create("diet");
  tcase_set_timeout(tc, 60);
  tcase_add_loop_test(tc, test_tiny_and_medium_empty_slabs, 0, 2);
  tcase_add_test(tc, test_free_pages_of_slab_in_use);
  tcase_add_test(tc, test_empty_superslab_unmapped);
  tcase_add_test(tc, test_large_pages_back_at_once);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
