/* hakmem.h: the public extras of libhakmem beyond the standard malloc API.
 *
 * Link with -lhakmem (pkg-config hakmem) or preload libhakmem.so.0; the
 * standard functions (malloc, free, ...) need no header beyond <stdlib.h>.
 */
#ifndef HAKMEM_H
#define HAKMEM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HAKMEM_VERSION_MAJOR 0
#define HAKMEM_VERSION_MINOR 2
#define HAKMEM_VERSION_PATCH 0

/* (major << 16) | (minor << 8) | patch of the library actually loaded. */
unsigned hakmem_version(void);

/* "0.2.0" */
const char *hakmem_version_string(void);

/* A snapshot of the allocator's process-wide counters. */
struct hakmem_stats {
  size_t mapped_bytes;      /* memory mapped from the OS right now */
  size_t peak_mapped_bytes; /* the most ever mapped at once */
  size_t slab_bytes;        /* bytes of slabs cut into small blocks */
  size_t large_bytes;       /* bytes mapped for live large blocks */
  size_t large_count;       /* live large blocks */
  size_t large_cached_bytes;/* freed large blocks' pages kept for reuse */
  size_t superslabs;        /* SuperSlabs mapped right now */
  size_t peak_superslabs;   /* the most ever mapped at once */
};

/* Fills *stats; `size` is sizeof(struct hakmem_stats) as the caller knows
 * it, so that newer libraries can add fields. Returns 0, or -1 if stats is
 * NULL. */
int hakmem_stats_get(struct hakmem_stats *stats, size_t size);

/* Writes the statistics report (the one HAKMEM_STATS=1 prints at exit) to
 * the file descriptor; per-class allocation counts need HAKMEM_STATS=1. */
void hakmem_stats_print(int fd);

#ifdef __cplusplus
}
#endif

#endif
