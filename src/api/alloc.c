/* alloc.c: the standard malloc API, dispatching to the tiers.
 *
 *   size <= 256 KiB (and alignment <= 4 KiB): a size class, served by the
 *   calling thread's heap from slabs of SuperSlabs (small.h)
 *   larger, or more aligned: the large tier (large.h)
 *
 * free() and friends find a pointer's tier through the region map, so a
 * pointer hakmem does not own is always recognised and reported.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "small/heap_purge.h"
#include "api/init.h"
#include "large/large.h"
#include "base/options.h"
#include "platform/os.h"
#include "base/region_map.h"
#include "small/size_class.h"
#include "api/small.h"
#include "small/superslab.h"

#define HK_MIN_ALIGN 16

/* The knobs decide the large cache's size, and a large block may be the
 * process's first. When the OS refuses memory, what the small tiers keep
 * unused goes back too before one retry (the large tier has given back
 * its own already). */
static void *large_alloc(size_t size, size_t align, int zero) {
  hk_init();
  void *p = hk_large_alloc(size, align, zero);
  if (!p && errno == ENOMEM && hk_give_back_unused())
    p = hk_large_alloc(size, align, zero);
  return p;
}

static __attribute__((noinline)) void *alloc_above_tiny(size_t size) {
  if (size <= hk_options.large_threshold)
    return hk_small_alloc(hk_size_to_class(size));
  return large_alloc(size, HK_MIN_ALIGN, 0);
}

/* One compare decides the tiny fast path: the threshold knob may be set
 * below the tiny limit, so the bound is the smaller of the two. */
static inline void *alloc_size(size_t size) {
  if (__builtin_expect(size <= hk_options.tiny_limit, 1))
    return hk_small_alloc(hk_class_small[(size + 15) >> 4]);
  return alloc_above_tiny(size);
}

static void *alloc_aligned(size_t size, size_t align) {
  if (align <= HK_MIN_ALIGN)
    return alloc_size(size);
  unsigned cls = size <= hk_options.large_threshold
                     ? hk_class_for_aligned(size, align)
                     : HK_CLASS_COUNT;
  if (cls < HK_CLASS_COUNT)
    return hk_small_alloc(cls);
  return large_alloc(size, align, 0);
}

/* free() of a pointer whose region entry (from the map's fast levels) is
 * `entry`: a SuperSlab's carries its slab shift, a large chunk's none. */
static inline __attribute__((always_inline)) void
free_entry(uintptr_t entry, void *p, const char *fn) {
  unsigned shift = (unsigned)(entry & HK_REGION_TAG_MASK);
  if (__builtin_expect(shift != 0, 1)) {
    hk_small_free((struct hk_superslab *)(entry - shift), shift, p, fn);
    return;
  }
  hk_large_free((struct hk_large_chunk *)entry, p, fn);
}

/* free() of a pointer the inline lookup did not find: NULL, one outside
 * the flat array (see hk_region_entry_low), or not ours. `fn` comes first so that free()
 * keeps `p` where its fast path wants it (one move fewer per free). */
static __attribute__((noinline)) void free_unlisted(const char *fn, void *p) {
  if (p == NULL)
    return;
  uintptr_t entry = hk_region_entry((uintptr_t)p);
  if (entry == 0)
    hk_report_misuse(fn, "invalid pointer", p);
  else
    free_entry(entry, p, fn);
}

/* One test on the fast path: an entry with a slab shift is a SuperSlab's;
 * only then is a 0 (not ours, or above 2^48) told from a large chunk. */
static inline __attribute__((always_inline)) void free_ptr(void *p,
                                                         const char *fn) {
  uintptr_t entry = hk_region_entry_low((uintptr_t)p);
  if (__builtin_expect((entry & HK_REGION_TAG_MASK) != 0, 1)) {
    /* The shift is taken modulo 64, which an x86 shift does by itself:
     * the entry goes to the shift count whole, without a mask. */
    uintptr_t count = entry; /* a copy, so the test above stays a test */
    __asm__("" : "+r"(count));
    hk_small_free(hk_region_superslab(entry), (unsigned)count & 63, p, fn);
    return;
  }
  if (entry == 0) {
    free_unlisted(fn, p);
    return;
  }
  hk_large_free((struct hk_large_chunk *)entry, p, fn);
}

/* Usable size of a block we own; 0 after reporting misuse for `fn`. */
static size_t usable_size(const void *p, const char *fn) {
  uintptr_t a = (uintptr_t)p;
  struct hk_mapping *mapping = hk_region_lookup(a);
  if (mapping == NULL) {
    hk_report_misuse(fn, "invalid pointer", p);
    return 0;
  }
  if (mapping->kind == HK_MAPPING_SUPERSLAB) {
    unsigned i;
    struct hk_superslab *ss = (struct hk_superslab *)mapping;
    struct hk_slab *s = hk_small_locate(ss, ss->slab_shift, a, fn, &i);
    if (!s)
      return 0;
    /* A freed block (or one never handed out) is not the program's to
     * resize: realloc to a size it still fits would otherwise hand the
     * freed block back silently. */
    if (__builtin_expect(!hk_link_live(hk_link_get(s, i)), 0)) {
      hk_report_misuse(fn, "invalid pointer", p);
      return 0;
    }
    return hk_slab_block_size(s);
  }
  return hk_large_usable((struct hk_large_chunk *)mapping, p, fn);
}

HK_API_FN(void *, malloc, (size_t size)) { return alloc_size(size); }

/* free(NULL) needs no test of its own: region 0 is never ours (nothing is
 * mapped at address 0, and every mapping hakmem registers starts on a
 * region), so NULL finds no entry and leaves by free_unlisted. */
HK_API_FN(void, free, (void *p)) { free_ptr(p, "free"); }

HK_API_FN(void *, calloc, (size_t n, size_t size)) {
  size_t total;
  if (__builtin_mul_overflow(n, size, &total)) {
    errno = ENOMEM;
    return NULL;
  }
  if (total > hk_options.large_threshold)
    return large_alloc(total, HK_MIN_ALIGN, 1);
  void *p = hk_small_alloc(hk_size_to_class(total));
  if (p)
    memset(p, 0, total);
  return p;
}

HK_API_FN(void *, realloc, (void *p, size_t size)) {
  if (p == NULL)
    return alloc_size(size);
  if (size == 0) {
    /* glibc frees and returns NULL here; programs rely on it. */
    free_ptr(p, "realloc");
    return NULL;
  }
  size_t old = usable_size(p, "realloc");
  if (old == 0) { /* not ours, and HAKMEM_INVALID_FREE=warn let us go on */
    errno = EINVAL;
    return NULL;
  }
  if (size > hk_options.large_threshold) {
    struct hk_mapping *mapping = hk_region_lookup((uintptr_t)p);
    if (mapping->kind == HK_MAPPING_LARGE) {
      /* A large block shrinks by giving its tail back and grows into the
       * free pages after it, without a copy when it can. */
      void *q = hk_large_resize((struct hk_large_chunk *)mapping, p, size);
      if (q)
        return q;
    }
  }
  /* Keep a small block when the new size still fits and does not waste
   * more than half of it. */
  if (size <= old && size >= old / 2)
    return p;
  /* A block that must move to grow gets a quarter more than it had, when
   * that stays below the large tier (which grows in place): a buffer grown
   * a few bytes at a time then moves once per two or three size classes,
   * not at each of the eight per doubling. A doubling vector asks for more
   * than that anyway. */
  size_t want = size;
  if (size > old && size <= hk_options.large_threshold) {
    size_t grown = old + old / 4;
    if (grown > size && grown <= hk_options.large_threshold)
      want = grown;
  }
  void *q = alloc_size(want);
  if (!q)
    return NULL;
  memcpy(q, p, old < size ? old : size);
  free_ptr(p, "realloc");
  return q;
}

HK_API_FN(void *, reallocarray, (void *p, size_t n, size_t size)) {
  size_t total;
  if (__builtin_mul_overflow(n, size, &total)) {
    errno = ENOMEM;
    return NULL;
  }
  return HK_API(realloc)(p, total);
}

static int valid_alignment(size_t align) {
  return align != 0 && (align & (align - 1)) == 0;
}

HK_API_FN(int, posix_memalign, (void **out, size_t align, size_t size)) {
  if (!valid_alignment(align) || align % sizeof(void *) != 0)
    return EINVAL;
  int saved = errno;
  void *p = alloc_aligned(size, align);
  if (!p) {
    errno = saved;
    return ENOMEM;
  }
  *out = p;
  return 0;
}

HK_API_FN(void *, aligned_alloc, (size_t align, size_t size)) {
  if (!valid_alignment(align)) {
    errno = EINVAL;
    return NULL;
  }
  return alloc_aligned(size, align);
}

HK_API_FN(void *, memalign, (size_t align, size_t size)) {
  /* glibc rounds a non-power-of-two alignment up rather than failing. */
  if (align > SIZE_MAX / 2 + 1) {
    errno = EINVAL;
    return NULL;
  }
  if (!valid_alignment(align)) {
    size_t a = HK_MIN_ALIGN;
    while (a < align)
      a <<= 1;
    align = a;
  }
  return alloc_aligned(size, align);
}

HK_API_FN(void *, valloc, (size_t size)) {
  return alloc_aligned(size, hk_page_size());
}

HK_API_FN(void *, pvalloc, (size_t size)) {
  size_t page = hk_page_size();
  if (size > SIZE_MAX - page) {
    errno = ENOMEM;
    return NULL;
  }
  size_t rounded = (size + page - 1) & ~(page - 1);
  return alloc_aligned(rounded ? rounded : page, page);
}

HK_API_FN(size_t, malloc_usable_size, (void *p)) {
  if (p == NULL)
    return 0;
  return usable_size(p, "malloc_usable_size");
}

HK_API_FN(int, malloc_trim, (size_t pad)) {
  (void)pad;
  size_t released = hk_heap_trim();
  released += hk_large_trim() + hk_superslab_trim();
  return released > 0;
}
