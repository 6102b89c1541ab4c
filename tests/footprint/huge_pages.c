/*
 * Integration test: HAKMEM_HUGE_PAGES gives the kernel the advice it says,
 * and a SuperSlab that gives pages back withdraws it.
 *
 * The advice is read back from the VmFlags line of /proc/self/smaps ("hg":
 * MADV_HUGEPAGE, "nh": MADV_NOHUGEPAGE), which the kernel keeps whatever
 * /sys/kernel/mm/transparent_hugepage/enabled says, so the test does not
 * depend on the host's THP setting; a kernel built without THP has no such
 * file, and the test then skips (reported as SKIP, never as a pass).
 *
 * Below auto's threshold, the huge pages inside a large malloc block are
 * advised and those of a calloc block are not, nor taken back if a calloc
 * reuses them (the "blocks" child).
 *
 * Each case re-runs this program with the knob in its environment, since
 * the knobs are read once at start-up; the child prints what it saw and the
 * parent checks it.
 */
#define _GNU_SOURCE
#include <check.h>
#include <hakmem.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../integration/preloaded.h"
#include "child.h"

/* "hg", "nh" or "--" for the mapping that holds p. */
static const char *advice_of(const void *p) {
  static char out[3];
  FILE *f = fopen("/proc/self/smaps", "r");
  char line[512];
  int inside = 0;
  strcpy(out, "??");
  while (f && fgets(line, sizeof line, f)) {
    unsigned long lo, hi;
    if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') &&
        line[0] != 'V') {
      inside = (unsigned long)p >= lo && (unsigned long)p < hi;
      continue;
    }
    if (inside && strncmp(line, "VmFlags:", 8) == 0) {
      strcpy(out, strstr(line, " hg") ? "hg" : strstr(line, " nh") ? "nh" : "--");
      break;
    }
  }
  if (f)
    fclose(f);
  return out;
}

/* The child: prints "first=XX later=XX large=XX trimmed=XX". */
static int child(void) {
  /* 2000-byte blocks fill SuperSlabs of one geometry with either tiny
   * backend; 80 MiB of them takes the small tiers past the 64 MiB at
   * which auto begins to advise. */
  enum { N = 40 * 1024 };
  static void *blk[N];
  for (int i = 0; i < N; i++) {
    blk[i] = malloc(2000);
    memset(blk[i], 1, 16);
  }
  printf("first=%s", advice_of(blk[0]));
  printf(" later=%s", advice_of(blk[N - 1]));
  /* The first large block maps the large tier's first chunk. */
  void *big = malloc(1 << 20);
  printf(" large=%s", advice_of(big));
  /* Free all but one block of the last SuperSlab's worth: its slabs give
   * their pages back on malloc_trim, and must withdraw the advice. */
  for (int i = N - 2000; i < N - 1; i++)
    free(blk[i]);
  malloc_trim(0);
  printf(" trimmed=%s\n", advice_of(blk[N - 1]));
  fflush(stdout);
  return 0;
}

/* The "blocks" child: prints "big=XX zeroed=XX small=XX reused=XX" for
 * the middle of an 8 MiB malloc block, an 8 MiB calloc block, a 512 KiB
 * malloc block, and a calloc of the first block's place once it is
 * freed ("moved" if the calloc went elsewhere). */
static int blocks_child(void) {
  enum { BIG = 8 << 20, SMALL = 512 << 10 };
  char *big = malloc(BIG);
  char *zeroed = calloc(1, BIG);
  char *small = malloc(SMALL);
  printf("big=%s", advice_of(big + BIG / 2));
  printf(" zeroed=%s", advice_of(zeroed + BIG / 2));
  printf(" small=%s", advice_of(small + SMALL / 2));
  free(big);
  char *again = calloc(1, BIG);
  printf(" reused=%s\n", again == big ? advice_of(again + BIG / 2) : "moved");
  fflush(stdout);
  return 0;
}

/* Runs the child `mode` with the environment variables env1 and env2 (or
 * NULL) added; returns its line. */
static const char *run(const char *mode, const char *env1, const char *env2) {
  static char buf[256];
  const char *env[] = {env1, env2, NULL};
  return run_child(env, mode, buf, sizeof buf);
}

/* Each case: the knobs, and what the child must see. */
static const struct {
  const char *mode, *env1, *env2, *want;
} cases[] = {
    /* always: everything, until a SuperSlab gives pages back */
    {"child", "HAKMEM_HUGE_PAGES=always", "HAKMEM_PURGE_DELAY=-1",
     "first=hg later=hg large=hg trimmed=nh"},
    /* auto: what is mapped once hakmem holds 64 MiB */
    {"child", "HAKMEM_HUGE_PAGES=auto", "HAKMEM_PURGE_DELAY=-1",
     "first=-- later=hg large=hg trimmed=nh"},
    /* auto is the default */
    {"child", "HAKMEM_PURGE_DELAY=-1", NULL,
     "first=-- later=hg large=hg trimmed=nh"},
    /* never: declined everywhere */
    {"child", "HAKMEM_HUGE_PAGES=never", NULL,
     "first=nh later=nh large=nh trimmed=nh"},
    /* diet turns auto into never */
    {"child", "HAKMEM_TINY_MEM_DIET=1", NULL,
     "first=nh later=nh large=nh trimmed=nh"},
    /* auto below its threshold: a malloc block's huge pages, not a
     * calloc's; the purge delay keeps the freed block's pages for the
     * calloc that reuses its place */
    {"blocks", "HAKMEM_PURGE_DELAY=-1", NULL,
     "big=hg zeroed=-- small=-- reused=nh"},
    /* hardened mode does not split its guarded mappings further */
    {"blocks", "HAKMEM_HARDENED=1", "HAKMEM_PURGE_DELAY=-1",
     "big=-- zeroed=-- small=-- reused="},
    /* always and never advise the chunks, not the blocks */
    {"blocks", "HAKMEM_HUGE_PAGES=always", NULL,
     "big=hg zeroed=hg small=hg"},
    {"blocks", "HAKMEM_HUGE_PAGES=never", NULL,
     "big=nh zeroed=nh small=nh"},
};

START_TEST(test_advice) {
  assert_hakmem_preloaded();
  const char *l = run(cases[_i].mode, cases[_i].env1, cases[_i].env2);
  ck_assert_msg(strstr(l, cases[_i].want), "%s %s: got %s, want %s",
                cases[_i].env1, cases[_i].env2 ? cases[_i].env2 : "", l,
                cases[_i].want);
}
END_TEST

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "child") == 0)
    return child();
  if (argc == 2 && strcmp(argv[1], "blocks") == 0)
    return blocks_child();
  if (access("/sys/kernel/mm/transparent_hugepage/enabled", F_OK) != 0) {
    printf("1..0 # SKIP kernel without transparent huge pages\n");
    return 0;
  }
  Suite *s = suite_create("huge_pages");
  TCase *tc = tcase_create("advice");
  tcase_set_timeout(tc, 60);
  tcase_add_loop_test(tc, test_advice, 0,
                      (int)(sizeof cases / sizeof cases[0]));
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? 1 : 0;
}
