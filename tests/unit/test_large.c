/* test_large.c: unit tests of the large tier (src/large/large.c,
 * src/large/large_chunk.c) through hk_api_malloc and friends.
 *
 * Large blocks are page runs in chunks; a freed run merges with its free
 * neighbours and keeps its pages (up to HAKMEM_LARGE_CACHE) for the next
 * request of any size. The tests check that blocks are usable and aligned,
 * that freed space is reused lowest address first, merged, split and grown
 * into, that the kept bytes respect their limit and are given back by
 * malloc_trim, that reused space from calloc reads as zero, and that
 * misuse is reported. The records of free space live in the chunk header,
 * never in freed memory: freed blocks are left untouched, clean space
 * reads as zero from its first byte, every record is checked against the
 * page map before it is unlinked (corruption is reported), a range whose
 * decommit the kernel refused stays dirty, and calloc zeroes only what may
 * be dirty. Whether pages were kept is read from the counters
 * (hakmem_stats), not inferred from addresses alone. Each test runs in its
 * own forked process (Check's default), so each starts with no chunk.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "hakmem.h"
#include "api/api.h"
#include "large/large_chunk.h"
#include "base/options.h"
#include "base/region_map.h"
#include "base/types.h"

int hk_api_hakmem_stats_get(struct hakmem_stats *stats, size_t size);

#define MiB ((size_t)1 << 20)

/* The bytes a request with 16-byte alignment takes: whole pages. */
static size_t map_size_for(size_t size) {
  return (size + 4095) & ~(size_t)4095;
}

static struct hakmem_stats stats(void) {
  struct hakmem_stats st;
  ck_assert_int_eq(hk_api_hakmem_stats_get(&st, sizeof st), 0);
  return st;
}

static void init_with_small_alloc(void) {
  /* The options (among them the cache limit) are read on the first small
   * allocation; see test_cache_before_any_small_alloc for why this matters.
   * Every other test starts from an initialised allocator. */
  hk_api_free(hk_api_malloc(1));
  ck_assert_uint_gt(hk_options.large_cache_bytes, 0);
}

static int cacheable(size_t size) {
  return map_size_for(size) <= hk_options.large_cache_bytes;
}

static void touch(unsigned char *p, size_t n, unsigned char v) {
  memset(p, v, n);
  for (size_t i = 0; i < n; i += 4096)
    if (p[i] != v)
      ck_abort_msg("byte %zu of %p did not keep its value", i, (void *)p);
  if (p[n - 1] != v)
    ck_abort_msg("last byte of %p did not keep its value", (void *)p);
}

static const size_t test_sizes[] = {HK_MEDIUM_MAX + 1, 1 * MiB, 8 * MiB,
                                    33 * MiB};
#define N_SIZES (sizeof test_sizes / sizeof test_sizes[0])

START_TEST(test_usable_and_aligned) {
  size_t size = test_sizes[_i];
  struct hakmem_stats before = stats();
  unsigned char *p = hk_api_malloc(size);
  ck_assert_ptr_nonnull(p);
  ck_assert_msg((uintptr_t)p % 16 == 0, "malloc(%zu) = %p", size, (void *)p);
  size_t usable = hk_api_malloc_usable_size(p);
  ck_assert_msg(usable >= size, "malloc(%zu): usable %zu", size, usable);
  struct hk_mapping *mapping = hk_region_lookup((uintptr_t)p);
  ck_assert_ptr_nonnull(mapping);
  ck_assert_uint_eq(mapping->kind, HK_MAPPING_LARGE);
  /* The usable size is all ours: the last usable byte is in our mapping. */
  ck_assert_ptr_eq(hk_region_lookup((uintptr_t)p + usable - 1), mapping);
  touch(p, usable, 0x5a);
  struct hakmem_stats live = stats();
  ck_assert_uint_eq(live.large_count, before.large_count + 1);
  ck_assert_uint_ge(live.large_bytes - before.large_bytes, usable);
  hk_api_free(p);
  ck_assert_uint_eq(stats().large_count, before.large_count);
  ck_assert_uint_eq(stats().large_bytes, before.large_bytes);
}
END_TEST

START_TEST(test_freed_block_is_cached_and_reused) {
  size_t size = test_sizes[_i];
  if (!cacheable(size))
    return; /* test_over_limit_block_is_unmapped covers it */
  unsigned char *p = hk_api_malloc(size);
  ck_assert_ptr_nonnull(p);
  touch(p, size, 0x11);
  struct hakmem_stats live = stats();
  hk_api_free(p);
  struct hakmem_stats freed = stats();
  ck_assert_uint_eq(freed.mapped_bytes, live.mapped_bytes);
  ck_assert_uint_eq(freed.large_cached_bytes,
                    live.large_cached_bytes + map_size_for(size));

  unsigned char *q = hk_api_malloc(size);
  ck_assert_msg(q == p, "malloc(%zu) after free: %p, cached block was %p", size,
                (void *)q, (void *)p);
  struct hakmem_stats again = stats();
  ck_assert_uint_eq(again.mapped_bytes, live.mapped_bytes);
  ck_assert_uint_eq(again.large_cached_bytes, live.large_cached_bytes);
  ck_assert_uint_ge(hk_api_malloc_usable_size(q), size);
  touch(q, size, 0x22);
  hk_api_free(q);
}
END_TEST

START_TEST(test_cache_before_any_small_alloc) {
  /* No small allocation has happened in this process: the large tier is
   * the allocator's first user. Its cache must work all the same. */
  unsigned char *p = hk_api_malloc(1 * MiB);
  ck_assert_ptr_nonnull(p);
  size_t mapped = stats().mapped_bytes;
  hk_api_free(p);
  ck_assert_msg(stats().large_cached_bytes == map_size_for(1 * MiB),
                "a freed 1 MiB block was not cached (cached bytes %zu, mapped "
                "%zu -> %zu); hk_options.large_cache_bytes is %zu",
                stats().large_cached_bytes, mapped, stats().mapped_bytes,
                hk_options.large_cache_bytes);
}
END_TEST

START_TEST(test_over_limit_block_is_unmapped) {
  /* A block above the limit cannot be kept: its pages go back at once, and
   * its chunk, which holds nothing else, is unmapped. */
  size_t size = hk_options.large_cache_bytes + 1 * MiB;
  ck_assert(!cacheable(size));
  void *p = hk_api_malloc(size);
  ck_assert_ptr_nonnull(p);
  struct hakmem_stats live = stats();
  hk_api_free(p);
  struct hakmem_stats freed = stats();
  ck_assert_uint_ge(live.mapped_bytes - freed.mapped_bytes, size);
  ck_assert_uint_eq(freed.large_cached_bytes, live.large_cached_bytes);
  ck_assert_ptr_null(hk_region_lookup((uintptr_t)p));
}
END_TEST

START_TEST(test_cache_stays_within_limit) {
  size_t limit = hk_options.large_cache_bytes;
  size_t n = limit / MiB + 4;
  void **p = calloc(n, sizeof *p); /* glibc's: bookkeeping only */
  ck_assert_ptr_nonnull(p);
  for (size_t i = 0; i < n; i++) {
    p[i] = hk_api_malloc(1 * MiB);
    ck_assert_ptr_nonnull(p[i]);
  }
  for (size_t i = 0; i < n; i++) {
    hk_api_free(p[i]);
    struct hakmem_stats st = stats();
    ck_assert_msg(st.large_cached_bytes <= limit,
                  "after %zu frees: %zu cached bytes, limit %zu", i + 1,
                  st.large_cached_bytes, limit);
    ck_assert_uint_eq(st.large_count, n - i - 1);
  }
  ck_assert_uint_gt(stats().large_cached_bytes, 0);
  free(p);
}
END_TEST

START_TEST(test_freed_space_serves_other_sizes) {
  /* Freed pages serve a smaller request, lowest address first, and what
   * is left of them stays kept; no new mapping either way. */
  char *big = hk_api_malloc(8 * MiB);
  ck_assert_ptr_nonnull(big);
  hk_api_free(big);
  size_t mapped = stats().mapped_bytes;
  char *small = hk_api_malloc(1 * MiB);
  ck_assert_ptr_eq(small, big);
  ck_assert_uint_eq(stats().large_cached_bytes, 7 * MiB);
  char *rest = hk_api_malloc(7 * MiB);
  ck_assert_ptr_eq(rest, big + 1 * MiB);
  ck_assert_uint_eq(stats().large_cached_bytes, 0);
  ck_assert_uint_eq(stats().mapped_bytes, mapped);
  hk_api_free(small);
  hk_api_free(rest);
}
END_TEST

START_TEST(test_neighbours_merge) {
  char *a = hk_api_malloc(1 * MiB);
  char *b = hk_api_malloc(1 * MiB);
  char *c = hk_api_malloc(1 * MiB);
  ck_assert(a && b && c);
  ck_assert_ptr_eq(b, a + 1 * MiB); /* one chunk, in address order */
  ck_assert_ptr_eq(c, b + 1 * MiB);
  hk_api_free(b);
  hk_api_free(a); /* merges with b's space on its right */
  char *ab = hk_api_malloc(2 * MiB);
  ck_assert_ptr_eq(ab, a);
  hk_api_free(c);
  hk_api_free(ab); /* merges with c's space */
  char *abc = hk_api_malloc(3 * MiB);
  ck_assert_ptr_eq(abc, a);
  hk_api_free(abc);
}
END_TEST

START_TEST(test_realloc_grows_and_shrinks_in_place) {
  char *p = hk_api_malloc(1 * MiB);
  ck_assert_ptr_nonnull(p);
  memset(p, 0x3c, 1 * MiB);
  /* The space after a chunk's last block is free: growing takes it. */
  char *q = hk_api_realloc(p, 4 * MiB);
  ck_assert_ptr_eq(q, p);
  ck_assert_uint_ge(hk_api_malloc_usable_size(q), 4 * MiB);
  for (size_t i = 0; i < 1 * MiB; i += 4096)
    ck_assert_int_eq(q[i], 0x3c);
  touch((unsigned char *)q, 4 * MiB, 0x3d);
  /* Shrinking to under half gives the tail back, and it is reused. */
  char *r = hk_api_realloc(q, 1 * MiB);
  ck_assert_ptr_eq(r, p);
  ck_assert_uint_eq(hk_api_malloc_usable_size(r), 1 * MiB);
  ck_assert_uint_eq(stats().large_cached_bytes, 3 * MiB);
  char *tail = hk_api_malloc(2 * MiB);
  ck_assert_ptr_eq(tail, p + 1 * MiB);
  /* Now the block cannot grow in place; realloc moves it. */
  char *moved = hk_api_realloc(r, 2 * MiB);
  ck_assert_ptr_ne(moved, r);
  for (size_t i = 0; i < 1 * MiB; i += 4096)
    ck_assert_int_eq(moved[i], 0x3d);
  hk_api_free(tail);
  hk_api_free(moved);
}
END_TEST

START_TEST(test_realloc_moves_big_blocks) {
  /* A block of 16 MiB or more that cannot grow in place moves its pages
   * (mremap) rather than copying them: its old space is left holding no
   * pages, and reads as zero. */
  char *p = hk_api_malloc(16 * MiB);
  char *wall = hk_api_malloc(1 * MiB);
  ck_assert(p && wall);
  ck_assert_ptr_eq(wall, p + 16 * MiB);
  memset(p, 0x6b, 16 * MiB);
  char *q = hk_api_realloc(p, 40 * MiB);
  ck_assert_ptr_nonnull(q);
  ck_assert_ptr_ne(q, p);
  for (size_t i = 0; i < 16 * MiB; i += 512)
    ck_assert_int_eq(q[i], 0x6b);
  ck_assert_int_eq(q[16 * MiB - 1], 0x6b);
  touch((unsigned char *)q, 40 * MiB, 0x6c);
  /* White-box: p's space is free, and clean rather than kept. */
  ck_assert_uint_eq(stats().large_cached_bytes, 0);
  for (size_t i = 0; i < 16 * MiB; i += 512)
    ck_assert_msg(p[i] == 0, "byte %zu of the old block is %#x", i, p[i]);
  hk_api_free(q);
  hk_api_free(wall);
}
END_TEST

static void assert_zero(const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != 0)
      ck_abort_msg("byte %zu of %p is %#x, not 0", i, (const void *)p, p[i]);
}

START_TEST(test_calloc_of_cached_block_reads_zero) {
  unsigned char *p = hk_api_malloc(8 * MiB);
  ck_assert_ptr_nonnull(p);
  memset(p, 0xa5, hk_api_malloc_usable_size(p));
  hk_api_free(p);
  unsigned char *q = hk_api_calloc(1, 8 * MiB);
  ck_assert_ptr_eq(q, p); /* the kept pages */
  assert_zero(q, 8 * MiB);
  memset(q, 0xa5, hk_api_malloc_usable_size(q));
  hk_api_free(q);

  /* A smaller calloc from the same pages. */
  unsigned char *r = hk_api_calloc(7, 1 * MiB);
  ck_assert_ptr_eq(r, p);
  assert_zero(r, 7 * MiB);
  memset(r, 0xa5, 7 * MiB);
  hk_api_free(r);

  /* Pages given back read as zero too. */
  hk_api_malloc_trim(0);
  unsigned char *keep = hk_api_malloc(1 * MiB); /* keeps a chunk mapped */
  unsigned char *s = hk_api_calloc(1, 4 * MiB);
  ck_assert_ptr_nonnull(s);
  assert_zero(s, 4 * MiB);
  memset(s, 0xa5, 4 * MiB);
  hk_api_free(s);
  hk_api_malloc_trim(0);
  unsigned char *t = hk_api_calloc(1, 4 * MiB);
  ck_assert_ptr_eq(t, s);
  assert_zero(t, 4 * MiB);
  hk_api_free(t);
  hk_api_free(keep);
}
END_TEST

START_TEST(test_calloc_of_merged_clean_space_reads_zero) {
  /* Space given back at different times merges into one clean run; what
   * each part held must not show through a calloc over all of it. */
  unsigned char *a = hk_api_malloc(1 * MiB);
  unsigned char *b = hk_api_malloc(1 * MiB);
  unsigned char *c = hk_api_malloc(1 * MiB);
  unsigned char *keep = hk_api_malloc(1 * MiB); /* keeps the chunk mapped */
  ck_assert(a && b && c && keep);
  ck_assert_ptr_eq(b, a + 1 * MiB);
  ck_assert_ptr_eq(c, b + 1 * MiB);
  memset(a, 0xa5, 3 * MiB);
  hk_api_free(b);
  hk_api_malloc_trim(0); /* b's space clean */
  hk_api_free(c);
  hk_api_malloc_trim(0); /* c's, merged with b's */
  hk_api_free(a);
  hk_api_malloc_trim(0); /* a's, merged with both */
  unsigned char *z = hk_api_calloc(1, 3 * MiB);
  ck_assert_ptr_eq(z, a);
  assert_zero(z, 3 * MiB);
  hk_api_free(z);
  hk_api_free(keep);
}
END_TEST

static struct hk_large_chunk *chunk_of(const void *p) {
  struct hk_mapping *mapping = hk_region_lookup((uintptr_t)p);
  ck_assert_ptr_nonnull(mapping);
  ck_assert_uint_eq(mapping->kind, HK_MAPPING_LARGE);
  return (struct hk_large_chunk *)mapping;
}

static struct hk_extent *record_of(const void *p) {
  struct hk_large_chunk *c = chunk_of(p);
  return hk_chunk_record(c, hk_chunk_page(c, (uintptr_t)p));
}

START_TEST(test_oldest_chunk_is_reused_first) {
  /* Freed pages in the older of two chunks serve a request before those
   * of the newer one, wherever the kernel put the chunks. Linux places
   * mappings top-down, so the newer chunk is as a rule the lower one: the
   * case where address order, the rule before, took the newer chunk's
   * space and left the older chunk's to age into a purge. */
  hk_options.purge_delay_ms = -1; /* nothing is purged while the test looks */
  enum { N = 7 };
  char *a[N];
  for (int i = 0; i < N; i++) {
    a[i] = hk_api_malloc(8 * MiB);
    ck_assert_ptr_nonnull(a[i]);
    ck_assert_ptr_eq(chunk_of(a[i]), chunk_of(a[0]));
  }
  char *b = hk_api_malloc(8 * MiB); /* no room left in the first chunk */
  ck_assert_ptr_nonnull(b);
  struct hk_large_chunk *older = chunk_of(a[0]), *newer = chunk_of(b);
  ck_assert_ptr_ne(older, newer);
  ck_assert_uint_lt(older->serial, newer->serial);
  hk_api_free(b);
  hk_api_free(a[3]);
  char *p = hk_api_malloc(8 * MiB);
  ck_assert_msg(p == a[3],
                "got %p, in the %s chunk (older at %p, newer at %p)", (void *)p,
                chunk_of(p) == newer ? "newer" : "older", (void *)older,
                (void *)newer);
  hk_api_free(p);
  for (int i = 0; i < N; i++)
    if (i != 3)
      hk_api_free(a[i]);
}
END_TEST

START_TEST(test_freed_block_is_left_untouched) {
  /* The free extent's record is in the chunk header, beside the page map:
   * nothing is written into the freed block, so nothing the program
   * writes there afterwards is ever read. */
  unsigned char *p = hk_api_malloc(1 * MiB);
  unsigned char *wall = hk_api_malloc(1 * MiB);
  ck_assert(p && wall);
  memset(p, 0xa5, 1 * MiB);
  hk_api_free(p);
  for (size_t i = 0; i < 1 * MiB; i++)
    if (p[i] != 0xa5)
      ck_abort_msg("byte %zu of the freed block is %#x", i, p[i]);
  struct hk_large_chunk *c = chunk_of(p);
  uint32_t page = hk_chunk_page(c, (uintptr_t)p);
  struct hk_extent *e = record_of(p);
  ck_assert_ptr_eq(e->chunk, c);
  ck_assert_uint_eq(e->pages, 256);
  ck_assert_uint_eq(e->state, HK_EXT_FILED);
  ck_assert_uint_eq(e->dirty_lo, page);
  ck_assert_uint_eq(e->dirty_hi, page + 256);
  ck_assert_uint_eq(hk_chunk_word(c, page), 256 | HK_PAGE_HEAD);
  ck_assert_uint_eq(hk_chunk_word(c, page + 255), 256);
  /* The records are out of the blocks' reach: in the header, before the
   * first block and its guard page. */
  ck_assert((uintptr_t)e < hk_chunk_addr(c, c->first_page - 1));
  /* Writing over the freed block changes nothing the allocator sees. */
  memset(p, 0xff, 64);
  unsigned char *q = hk_api_malloc(1 * MiB);
  ck_assert_ptr_eq(q, p);
  hk_api_free(q);
  hk_api_free(wall);
}
END_TEST

START_TEST(test_clean_space_reads_zero_from_its_first_byte) {
  /* No record bytes in clean space: plain malloc of space given back reads
   * zero everywhere, its first bytes included. */
  unsigned char *p = hk_api_malloc(1 * MiB);
  unsigned char *keep = hk_api_malloc(1 * MiB); /* keeps the chunk mapped */
  ck_assert(p && keep);
  memset(p, 0xa5, 1 * MiB);
  hk_api_free(p);
  hk_api_malloc_trim(0);
  ck_assert_uint_eq(stats().large_cached_bytes, 0);
  ck_assert_uint_eq(record_of(p)->dirty_hi, record_of(p)->dirty_lo);
  unsigned char *q = hk_api_malloc(1 * MiB);
  ck_assert_ptr_eq(q, p);
  assert_zero(q, 1 * MiB);
  hk_api_free(q);
  hk_api_free(keep);
}
END_TEST

static size_t rss(void) {
  long size = 0, resident = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  ck_assert_ptr_nonnull(f);
  ck_assert_int_eq(fscanf(f, "%ld %ld", &size, &resident), 2);
  fclose(f);
  return (size_t)resident * 4096;
}

START_TEST(test_calloc_zeroes_only_the_dirty_part) {
  /* A freed 1 MiB block joined with the clean rest of its chunk serves a
   * calloc that neither fits alone: only the 1 MiB is zeroed, the rest is
   * left alone (no RSS for it). */
  unsigned char *a = hk_api_malloc(1 * MiB);
  ck_assert_ptr_nonnull(a);
  struct hk_large_chunk *c = chunk_of(a);
  ck_assert_uint_eq(hk_chunk_page(c, (uintptr_t)a), c->first_page);
  memset(a, 0xa5, 1 * MiB);
  hk_api_free(a);
  size_t size = ((size_t)(c->pages - c->first_page) << 12) - 2 * 4096;
  size_t before = rss();
  unsigned char *z = hk_api_calloc(1, size);
  size_t after = rss();
  ck_assert_ptr_eq(z, a);
  ck_assert_msg(after < before + 4 * MiB,
                "calloc(%zu) over 1 MiB dirty: RSS %zu -> %zu KiB", size,
                before >> 10, after >> 10);
  for (size_t i = 0; i < size; i += 64)
    if (z[i] != 0)
      ck_abort_msg("byte %zu of the calloc is %#x", i, z[i]);
  hk_api_free(z);
}
END_TEST

START_TEST(test_refused_decommit_stays_dirty) {
  /* A decommit the kernel refuses (madvise on locked pages: EINVAL) must
   * leave the range dirty: calloc then zeroes it. And the purge, which
   * cannot succeed, must not spin. */
  unsigned char *a = hk_api_malloc(1 * MiB);
  unsigned char *keep = hk_api_malloc(1 * MiB);
  ck_assert(a && keep);
  memset(a, 0xa5, 1 * MiB);
  if (mlock(a, 1 * MiB) != 0)
    return; /* not allowed to lock here: nothing to test */
  hk_api_free(a);
  hk_api_malloc_trim(0);
  ck_assert_uint_eq(stats().large_cached_bytes, 1 * MiB);
  ck_assert_uint_gt(record_of(a)->dirty_hi, record_of(a)->dirty_lo);
  hk_api_malloc_trim(0); /* tried again, refused again, returns */
  unsigned char *z = hk_api_calloc(1, 1 * MiB);
  ck_assert_ptr_eq(z, a);
  assert_zero(z, 1 * MiB);
  munlock(a, 1 * MiB);
  hk_api_free(z);
  hk_api_free(keep);
}
END_TEST

START_TEST(test_posix_memalign_large_alignments) {
  size_t align = (size_t)8192 << _i; /* 8 KiB .. 4 MiB */
  static const size_t sizes[] = {1, 100000, 3 * MiB};
  for (int round = 0; round < 2; round++) {
    /* The second round may be served from the cache, where the block must
     * be placed at the new alignment inside an old mapping. */
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
      void *p = NULL;
      ck_assert_int_eq(hk_api_posix_memalign(&p, align, sizes[i]), 0);
      ck_assert_msg((uintptr_t)p % align == 0, "align %zu size %zu: %p", align,
                    sizes[i], p);
      size_t usable = hk_api_malloc_usable_size(p);
      ck_assert_uint_ge(usable, sizes[i]);
      struct hk_mapping *mapping = hk_region_lookup((uintptr_t)p);
      ck_assert_ptr_nonnull(mapping);
      ck_assert_ptr_eq(hk_region_lookup((uintptr_t)p + usable - 1), mapping);
      touch(p, usable, (unsigned char)(i + 1));
      hk_api_free(p);
    }
  }
}
END_TEST

START_TEST(test_malloc_trim_releases_cache) {
  void *a = hk_api_malloc(1 * MiB);
  void *b = hk_api_malloc(8 * MiB);
  ck_assert(a && b);
  hk_api_free(a);
  hk_api_free(b);
  struct hakmem_stats cached = stats();
  ck_assert_uint_eq(cached.large_cached_bytes, 9 * MiB);
  ck_assert_int_eq(hk_api_malloc_trim(0), 1);
  struct hakmem_stats trimmed = stats();
  ck_assert_uint_eq(trimmed.large_cached_bytes, 0);
  ck_assert_uint_ge(cached.mapped_bytes - trimmed.mapped_bytes,
                    cached.large_cached_bytes);
  /* The chunk held nothing else: it is gone. */
  ck_assert_ptr_null(hk_region_lookup((uintptr_t)a));
  ck_assert_ptr_null(hk_region_lookup((uintptr_t)b));
  /* Nothing left to give back. */
  ck_assert_int_eq(hk_api_malloc_trim(0), 0);
}
END_TEST

START_TEST(test_impossible_alignment_fails) {
  /* The largest power-of-two alignment with sizes near the top of the
   * address space: no such block can exist, so the answer must be ENOMEM,
   * whatever the arithmetic on header + alignment + size does. A cached
   * block is present so that a wrapped-around size finds something. */
  hk_api_free(hk_api_malloc(1 * MiB));
  ck_assert_uint_gt(stats().large_cached_bytes, 0);
  const size_t align = (size_t)1 << (sizeof(size_t) * 8 - 1);
  const size_t sizes[] = {1,     align / 2,       align - HK_REGION_SIZE,
                          align, SIZE_MAX - 4096, SIZE_MAX};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    void *p = NULL;
    int rc = hk_api_posix_memalign(&p, align, sizes[i]);
    ck_assert_msg(rc == ENOMEM && p == NULL,
                  "posix_memalign(align %#zx, size %#zx) = %d, block %p", align,
                  sizes[i], rc, p);
  }
}
END_TEST

// ---------------------------------------------------------------------------
// Misuse: raise-signal tests that also check hakmem's one-line report (a
// SIGABRT handler compares it and exits instead on a mismatch).

#include "expect_report.h"

static void missed(const char *what, const void *p) {
  char line[160];
  int n = snprintf(line, sizeof line, "test_large: %s %p was not reported\n",
                   what, p);
  put(line, (size_t)n);
  ck_abort_msg("%s %p was not reported", what, p);
}

static void *volatile launder_slot;
static void *launder(void *p) {
  launder_slot = p;
  return launder_slot;
}

START_TEST(test_double_free_cached) {
  void *p = hk_api_malloc(1 * MiB);
  ck_assert_ptr_nonnull(p);
  hk_api_free(p);
  /* Still mapped and at the head of free space: a second free. */
  ck_assert_uint_gt(stats().large_cached_bytes, 0);
  expect_report("free", "double free", p);
  hk_api_free(launder(p));
  missed("second free of cached large block", p);
}
END_TEST

START_TEST(test_free_after_trim) {
  void *p = hk_api_malloc(1 * MiB);
  ck_assert_ptr_nonnull(p);
  hk_api_free(p);
  hk_api_malloc_trim(0);
  /* Unmapped now: no longer ours at all. */
  expect_report("free", "invalid pointer", p);
  hk_api_free(launder(p));
  missed("free of trimmed large block", p);
}
END_TEST

START_TEST(test_free_interior_of_large) {
  char *p = hk_api_malloc(1 * MiB);
  ck_assert_ptr_nonnull(p);
  expect_report("free", "invalid pointer", p + 4096);
  hk_api_free(launder(p + 4096));
  missed("free of interior of large block", p + 4096);
}
END_TEST

START_TEST(test_double_free_after_merge) {
  /* The freed block merged into the free space before it: its pointer is
   * now inside free space, and still recognised as freed. */
  char *a = hk_api_malloc(1 * MiB);
  char *b = hk_api_malloc(1 * MiB);
  ck_assert_ptr_eq(b, a + 1 * MiB);
  hk_api_free(a);
  hk_api_free(b);
  expect_report("free", "double free", b);
  hk_api_free(launder(b));
  missed("second free of merged large block", b);
}
END_TEST

START_TEST(test_free_large_header) {
  char *p = hk_api_malloc(1 * MiB);
  ck_assert_ptr_nonnull(p);
  char *header = (char *)((uintptr_t)p & ~(uintptr_t)HK_REGION_MASK);
  expect_report("free", "invalid pointer", header);
  hk_api_free(launder(header));
  missed("free of large block header", header);
}
END_TEST

START_TEST(test_free_in_free_space_is_invalid) {
  /* A page-aligned pointer into freed space where no block ever started
   * was never a block: "invalid pointer", not "double free". */
  char *p = hk_api_malloc(1 * MiB);
  char *wall = hk_api_malloc(1 * MiB);
  ck_assert(p && wall);
  hk_api_free(p);
  expect_report("free", "invalid pointer", p + 8192);
  hk_api_free(launder(p + 8192));
  missed("free of never-allocated free space", p + 8192);
}
END_TEST

/* A freed block, its free extent's record, and a block after it that
 * keeps the extent apart from the rest of the chunk. */
static char *freed_with_record(struct hk_extent **e) {
  char *p = hk_api_malloc(1 * MiB);
  char *wall = hk_api_malloc(1 * MiB);
  ck_assert(p && wall);
  hk_api_free(p);
  *e = record_of(p);
  ck_assert_uint_eq((*e)->state, HK_EXT_FILED);
  return p;
}

static int some_static[64];

START_TEST(test_corrupt_next_link_is_reported) {
  struct hk_extent *e;
  char *p = freed_with_record(&e);
  e->bin_node.next = (void *)some_static; /* not a record */
  expect_report("malloc", "corrupted large-block metadata", p);
  hk_api_malloc(1 * MiB);
  missed("a record linked to a global", p);
}
END_TEST

START_TEST(test_corrupt_prev_link_is_reported) {
  struct hk_extent *e;
  char *p = freed_with_record(&e);
  /* A record of the same chunk, but not one on any list. */
  e->bin_node.prev = e + 3;
  expect_report("malloc", "corrupted large-block metadata", p);
  hk_api_malloc(1 * MiB);
  missed("a record linked to an unused record", p);
}
END_TEST

/* The dirty list's links are checked as the bins' are: followed while it
 * is walked for a fit (reported at the record they were read from), and
 * compared with the neighbours' when the extent is taken off it. */
START_TEST(test_corrupt_dirty_next_link_is_reported) {
  struct hk_extent *e;
  char *p = freed_with_record(&e);
  ck_assert_uint_gt(e->dirty_hi, e->dirty_lo); /* on the dirty list */
  e->lru_node.next = (void *)some_static;
  expect_report("malloc", "corrupted large-block metadata", e);
  hk_api_malloc(1 * MiB);
  missed("a dirty-list record linked to a global", p);
}
END_TEST

START_TEST(test_corrupt_dirty_prev_link_is_reported) {
  struct hk_extent *e;
  char *p = freed_with_record(&e);
  ck_assert_uint_gt(e->dirty_hi, e->dirty_lo);
  e->lru_node.prev = e + 3;
  expect_report("malloc", "corrupted large-block metadata", p);
  hk_api_malloc(1 * MiB);
  missed("a dirty-list record linked to an unused record", p);
}
END_TEST

/* Filing a free extent writes a back link into the first record of its
 * bin and of the dirty list: that record is checked first, and the
 * extent being filed is reported. p's record is corrupted; q, freed after
 * it, goes into p's bin when it has p's size, and after p's record on the
 * dirty list unless r (of a third size) was freed between them. Every
 * block lies between walls, so that no free merges. */
static void corrupt_head_then_free(size_t q_size, size_t r_size) {
  char *p = hk_api_malloc(1 * MiB);
  char *wall = hk_api_malloc(1 * MiB);
  char *q = hk_api_malloc(q_size);
  char *wall2 = hk_api_malloc(1 * MiB);
  char *r = r_size ? hk_api_malloc(r_size) : NULL;
  char *wall3 = hk_api_malloc(1 * MiB);
  ck_assert(p && wall && q && wall2 && (r || !r_size) && wall3);
  hk_api_free(p);
  hk_api_free(r);
  struct hk_extent *e = record_of(p);
  ck_assert_uint_eq(e->state, HK_EXT_FILED);
  ck_assert_uint_gt(e->dirty_hi, e->dirty_lo);
  e->state = HK_EXT_BUSY; /* not a filed record any more */
  expect_report("free", "corrupted large-block metadata", q);
  hk_api_free(q);
  missed("a list head that is not a filed record", q);
}

START_TEST(test_corrupt_bin_head_is_reported_on_insert) {
  corrupt_head_then_free(1 * MiB, 4 * MiB); /* r heads the dirty list */
}
END_TEST

START_TEST(test_corrupt_dirty_head_is_reported_on_insert) {
  corrupt_head_then_free(4 * MiB, 0); /* q's bin is empty */
}
END_TEST

START_TEST(test_corrupt_page_count_is_reported) {
  struct hk_extent *e;
  char *p = freed_with_record(&e);
  e->pages = 3 * 256; /* over the live block after it */
  expect_report("malloc", "corrupted large-block metadata", p);
  hk_api_malloc(2 * MiB);
  missed("a record whose page count disagrees with the page map", p);
}
END_TEST

START_TEST(test_corrupt_page_map_is_reported) {
  struct hk_extent *e;
  char *p = freed_with_record(&e);
  struct hk_large_chunk *c = chunk_of(p);
  uint32_t page = hk_chunk_page(c, (uintptr_t)p);
  atomic_store(&c->map[page + 255], 0); /* the tail tag, gone */
  expect_report("malloc", "corrupted large-block metadata", p);
  hk_api_malloc(1 * MiB);
  missed("a page map that disagrees with the record", p);
}
END_TEST

static Suite *large_suite(void) {
  Suite *s = suite_create("large");
  TCase *first = tcase_create("first_use");
  tcase_add_test(first, test_cache_before_any_small_alloc);
  suite_add_tcase(s, first);

  TCase *core = tcase_create("core");
  tcase_add_checked_fixture(core, init_with_small_alloc, NULL);
  tcase_add_loop_test(core, test_usable_and_aligned, 0, N_SIZES);
  tcase_add_loop_test(core, test_freed_block_is_cached_and_reused, 0, N_SIZES);
  tcase_add_test(core, test_over_limit_block_is_unmapped);
  tcase_add_test(core, test_cache_stays_within_limit);
  tcase_add_test(core, test_freed_space_serves_other_sizes);
  tcase_add_test(core, test_neighbours_merge);
  tcase_add_test(core, test_realloc_grows_and_shrinks_in_place);
  tcase_add_test(core, test_realloc_moves_big_blocks);
  tcase_add_test(core, test_calloc_of_cached_block_reads_zero);
  tcase_add_test(core, test_calloc_of_merged_clean_space_reads_zero);
  tcase_add_test(core, test_oldest_chunk_is_reused_first);
  tcase_add_test(core, test_freed_block_is_left_untouched);
  tcase_add_test(core, test_clean_space_reads_zero_from_its_first_byte);
  tcase_add_test(core, test_calloc_zeroes_only_the_dirty_part);
  tcase_add_test(core, test_refused_decommit_stays_dirty);
  /* 8 KiB << 0 .. 8 KiB << 9 = 8 KiB .. 4 MiB */
  tcase_add_loop_test(core, test_posix_memalign_large_alignments, 0, 10);
  tcase_add_test(core, test_malloc_trim_releases_cache);
  tcase_add_test(core, test_impossible_alignment_fails);
  suite_add_tcase(s, core);

  TCase *misuse = tcase_create("misuse");
  tcase_add_checked_fixture(misuse, init_with_small_alloc, NULL);
  tcase_add_test_raise_signal(misuse, test_double_free_cached, SIGABRT);
  tcase_add_test_raise_signal(misuse, test_free_after_trim, SIGABRT);
  tcase_add_test_raise_signal(misuse, test_double_free_after_merge, SIGABRT);
  tcase_add_test_raise_signal(misuse, test_free_interior_of_large, SIGABRT);
  tcase_add_test_raise_signal(misuse, test_free_large_header, SIGABRT);
  tcase_add_test_raise_signal(misuse, test_free_in_free_space_is_invalid,
                              SIGABRT);
  tcase_add_test_raise_signal(misuse, test_corrupt_next_link_is_reported,
                              SIGABRT);
  tcase_add_test_raise_signal(misuse, test_corrupt_prev_link_is_reported,
                              SIGABRT);
  tcase_add_test_raise_signal(misuse, test_corrupt_dirty_next_link_is_reported,
                              SIGABRT);
  tcase_add_test_raise_signal(misuse, test_corrupt_dirty_prev_link_is_reported,
                              SIGABRT);
  tcase_add_test_raise_signal(misuse, test_corrupt_bin_head_is_reported_on_insert,
                              SIGABRT);
  tcase_add_test_raise_signal(misuse,
                              test_corrupt_dirty_head_is_reported_on_insert,
                              SIGABRT);
  tcase_add_test_raise_signal(misuse, test_corrupt_page_count_is_reported,
                              SIGABRT);
  tcase_add_test_raise_signal(misuse, test_corrupt_page_map_is_reported,
                              SIGABRT);
  suite_add_tcase(s, misuse);
  return s;
}

int main(void) {
  /* The misuse tests abort on purpose; no core files. */
  struct rlimit no_core = {0, 0};
  setrlimit(RLIMIT_CORE, &no_core);
  SRunner *sr = srunner_create(large_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
