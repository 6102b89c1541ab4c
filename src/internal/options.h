/* options.h: the run-time knobs, read once from the environment. */
#ifndef HK_OPTIONS_H
#define HK_OPTIONS_H

#include <stddef.h>

struct hk_options {
  int mem_diet;                /* HAKMEM_TINY_MEM_DIET */
  size_t large_cache_bytes;    /* bytes of freed large blocks kept mapped */
  unsigned heap_empty_slabs;   /* empty slabs a thread keeps per geometry */
  unsigned empty_superslabs;   /* empty SuperSlabs the pool keeps per geometry */
};

extern struct hk_options hk_options;

/* Reads the environment into hk_options; no allocation. */
void hk_options_init(void);

#endif
