/* hk_pattern.h: the fill pattern the sanitizer stress driver and the fuzz
 * harness write into blocks and check later.
 *
 * Byte i of a block with seed s is table[(s + i) mod HKP_PERIOD], the table
 * being pseudo-random bytes. Why this shape:
 *   - The value depends only on (seed, offset), never on the address, so a
 *     block moved by realloc is checked against the seed it was filled with.
 *   - Filling and checking are memcpy/memcmp over runs of up to a period,
 *     which the sanitizers check once per call instead of once per byte; a
 *     byte loop over multi-MiB blocks would dominate a TSan run.
 *   - The period is a prime, so no shift by whole pages (what a wrong
 *     mremap or a wrong copy offset would produce) maps the pattern onto
 *     itself within the sizes we use, and two blocks that wrongly overlap
 *     almost surely disagree.
 * The table is written once by hkp_init() before any thread starts and only
 * read afterwards, so it needs no synchronisation.
 */
#ifndef HK_TOOLS_PATTERN_H
#define HK_TOOLS_PATTERN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define HKP_PERIOD 65521u /* largest prime below 64 KiB */

/* Twice the period, so that any run of up to a period starting below it is
 * contiguous in the table. */
static unsigned char hkp_table[2 * HKP_PERIOD];
static const unsigned char hkp_zero[4096];

static inline void hkp_init(void) {
  uint64_t x = 0x9e3779b97f4a7c15u;
  for (size_t i = 0; i < HKP_PERIOD; i++) {
    /* xorshift64*: any fixed sequence without short cycles would do. */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    hkp_table[i] = (unsigned char)((x * 0x2545f4914f6cdd1du) >> 56);
  }
  memcpy(hkp_table + HKP_PERIOD, hkp_table, HKP_PERIOD);
}

/* Writes the pattern of `seed` into bytes [from, to) of the block. */
static inline void hkp_fill(void *block, size_t from, size_t to,
                            uint32_t seed) {
  unsigned char *p = block;
  size_t j = (size_t)((seed + from) % HKP_PERIOD);
  while (from < to) {
    size_t n = to - from < HKP_PERIOD ? to - from : HKP_PERIOD;
    memcpy(p + from, hkp_table + j, n);
    from += n;
    j = (j + n) % HKP_PERIOD;
  }
}

/* The first offset in [from, to) that does not hold the pattern of `seed`,
 * or SIZE_MAX if all do. */
static inline size_t hkp_check(const void *block, size_t from, size_t to,
                               uint32_t seed) {
  const unsigned char *p = block;
  size_t j = (size_t)((seed + from) % HKP_PERIOD);
  while (from < to) {
    size_t n = to - from < HKP_PERIOD ? to - from : HKP_PERIOD;
    if (memcmp(p + from, hkp_table + j, n) != 0) {
      /* Only on failure: find the exact byte for the report. */
      for (size_t i = 0; i < n; i++)
        if (p[from + i] != hkp_table[j + i])
          return from + i;
    }
    from += n;
    j = (j + n) % HKP_PERIOD;
  }
  return SIZE_MAX;
}

/* The byte the pattern of `seed` has at `offset`, for reports. */
static inline unsigned hkp_expected(size_t offset, uint32_t seed) {
  return hkp_table[(seed + offset) % HKP_PERIOD];
}

/* The first nonzero offset in [0, n), or SIZE_MAX (calloc checks). */
static inline size_t hkp_check_zero(const void *block, size_t n) {
  const unsigned char *p = block;
  for (size_t at = 0; at < n; at += sizeof hkp_zero) {
    size_t k = n - at < sizeof hkp_zero ? n - at : sizeof hkp_zero;
    if (memcmp(p + at, hkp_zero, k) != 0)
      for (size_t i = 0; i < k; i++)
        if (p[at + i] != 0)
          return at + i;
  }
  return SIZE_MAX;
}

#endif
