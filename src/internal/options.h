/* options.h: the run-time knobs (declared in src/knobs.def), read once
 * from the environment before the first allocation is served. */
#ifndef HK_OPTIONS_H
#define HK_OPTIONS_H

#include <stddef.h>

/* HAKMEM_HUGE_PAGES, in the order of its words in knobs.def. */
enum hk_huge_pages { HK_HUGE_AUTO = 0, HK_HUGE_ALWAYS = 1, HK_HUGE_NEVER = 2 };

struct hk_options {
  int use_superslab;           /* HAKMEM_TINY_USE_SUPERSLAB */
  int mem_diet;                /* HAKMEM_TINY_MEM_DIET */
  int stats;                   /* HAKMEM_STATS */
  const char *stats_file;      /* HAKMEM_STATS_FILE (a copy), NULL for stderr */
  int verbose;                 /* HAKMEM_VERBOSE */
  int hardened;                /* HAKMEM_HARDENED */
  int invalid_free_warn;       /* HAKMEM_INVALID_FREE=warn */
  long purge_delay_ms;         /* HAKMEM_PURGE_DELAY, -1 never */
  size_t large_cache_bytes;    /* HAKMEM_LARGE_CACHE */
  size_t large_threshold;      /* HAKMEM_LARGE_THRESHOLD */
  size_t tiny_limit; /* min(HK_TINY_MAX, large_threshold): malloc's one test */
  int huge_pages;              /* HAKMEM_HUGE_PAGES, enum hk_huge_pages */
  unsigned heap_empty_slabs;   /* HAKMEM_THREAD_CACHE_SLABS */
  unsigned empty_superslabs;   /* empty SuperSlabs the pool keeps per geometry */
};

/* Defaults until hk_options_init runs: the allocator may serve the loader
 * before that. */
extern struct hk_options hk_options;

/* Reads the environment into hk_options; allocates nothing. */
void hk_options_init(void);

/* Writes the HAKMEM_VERBOSE start-up line. */
void hk_options_print(void);

#endif
