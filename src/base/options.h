/* options.h: the run-time knobs (declared in src/knobs.def), read once
 * from the environment before the first allocation is served. */
#ifndef HK_OPTIONS_H
#define HK_OPTIONS_H

#include <stddef.h>

#include "base/hidden.h"

/* HK_EACH(m, k, a, b, ...): m(k, a) m(k, b) ..., for up to eight words. */
#define HK_EACH(m, k, ...)                                                     \
  HK_EACH_N(HK_COUNT_ARGS(__VA_ARGS__, 8, 7, 6, 5, 4, 3, 2, 1, 0), m, k,       \
            __VA_ARGS__)
#define HK_COUNT_ARGS(a1, a2, a3, a4, a5, a6, a7, a8, n, ...) n
#define HK_EACH_N(n, m, k, ...) HK_EACH_N_(n, m, k, __VA_ARGS__)
#define HK_EACH_N_(n, m, k, ...) HK_EACH_##n(m, k, __VA_ARGS__)
#define HK_EACH_1(m, k, a) m(k, a)
#define HK_EACH_2(m, k, a, ...) m(k, a) HK_EACH_1(m, k, __VA_ARGS__)
#define HK_EACH_3(m, k, a, ...) m(k, a) HK_EACH_2(m, k, __VA_ARGS__)
#define HK_EACH_4(m, k, a, ...) m(k, a) HK_EACH_3(m, k, __VA_ARGS__)
#define HK_EACH_5(m, k, a, ...) m(k, a) HK_EACH_4(m, k, __VA_ARGS__)
#define HK_EACH_6(m, k, a, ...) m(k, a) HK_EACH_5(m, k, __VA_ARGS__)
#define HK_EACH_7(m, k, a, ...) m(k, a) HK_EACH_6(m, k, __VA_ARGS__)
#define HK_EACH_8(m, k, a, ...) m(k, a) HK_EACH_7(m, k, __VA_ARGS__)
/* A words column, (a, b, ...), without its parentheses. */
#define HK_UNPAREN(...) __VA_ARGS__

/* The words of each ENUM knob as the values of its field:
 * HK_HUGE_PAGES_auto, HK_HUGE_PAGES_always, ... in their order in
 * knobs.def. */
#define HK_KNOB_WORD(id, w) HK_##id##_##w,
#define HK_KNOB_WORDS_BOOL(id, words)
#define HK_KNOB_WORDS_SIZE(id, words)
#define HK_KNOB_WORDS_COUNT(id, words)
#define HK_KNOB_WORDS_MSEC(id, words)
#define HK_KNOB_WORDS_PATH(id, words)
#define HK_KNOB_WORDS_ENUM(id, words)                                          \
  enum hk_words_##id { HK_EACH(HK_KNOB_WORD, id, HK_UNPAREN words) };
#define HK_KNOB(id, type, def, opt, field, words, diet, doc)                   \
  HK_KNOB_WORDS_##type(id, words)
#include "../knobs.def"
#undef HK_KNOB

struct hk_options {
  int use_superslab;           /* HAKMEM_TINY_USE_SUPERSLAB */
  int mem_diet;                /* HAKMEM_TINY_MEM_DIET */
  int stats;                   /* HAKMEM_STATS */
  const char *stats_file;      /* HAKMEM_STATS_FILE (a copy), NULL for stderr */
  int verbose;                 /* HAKMEM_VERBOSE */
  int hardened;                /* HAKMEM_HARDENED */
  int invalid_free_warn;       /* HAKMEM_INVALID_FREE, 1 for warn */
  long purge_delay_ms;         /* HAKMEM_PURGE_DELAY, -1 never */
  size_t large_cache_bytes;    /* HAKMEM_LARGE_CACHE */
  size_t large_threshold;      /* HAKMEM_LARGE_THRESHOLD */
  size_t tiny_limit; /* min(HK_TINY_MAX, large_threshold): malloc's one test */
  int huge_pages;              /* HAKMEM_HUGE_PAGES: HK_HUGE_PAGES_* */
  unsigned heap_empty_slabs;   /* HAKMEM_THREAD_CACHE_SLABS */
  unsigned empty_superslabs;   /* HK_POOL_EMPTY_SUPERSLABS, 0 under diet */
  /* Whether the free pages of slabs in use may go back to the OS: not
   * under HAKMEM_HARDENED, whose freed blocks keep the fill that reuse
   * checks (a purged page would read zeroes). */
  int purge_slab_pages;
};

/* Empty SuperSlabs the shared pool keeps mapped per geometry, past the
 * purge delay, for the next thread that needs one: a program whose threads
 * come and go (a thread per request) would otherwise map, fault in and
 * unmap a SuperSlab per thread. Not a knob: once the purge delay has
 * given their slabs' pages back, the kept ones cost address space and a
 * few pages of header and metadata each, so a count would trade next to
 * nothing; HAKMEM_PURGE_DELAY says when the pages go, and
 * HAKMEM_TINY_MEM_DIET keeps none at all. */
#define HK_POOL_EMPTY_SUPERSLABS 2u

/* Defaults until hk_options_init runs: the allocator may serve the loader
 * before that. */
extern HK_HIDDEN struct hk_options hk_options;

/* Reads the environment into hk_options; allocates nothing. */
void hk_options_init(void);

/* Writes the HAKMEM_VERBOSE start-up line. */
void hk_options_print(void);

#endif
