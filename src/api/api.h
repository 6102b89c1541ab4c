/* api.h: how the public functions are named.
 *
 * The library defines malloc, free, ... under their standard names with
 * default visibility; everything else is hidden. Built with
 * -DHK_INTERNAL_NAMES (the unit-test and sanitizer builds), the same code
 * defines hk_api_malloc, hk_api_free, ... instead, so the allocator can be
 * tested inside a process that keeps its own libc malloc.
 */
#ifndef HK_API_H
#define HK_API_H

#include <stddef.h>

#ifdef HK_INTERNAL_NAMES
#define HK_API(name) hk_api_##name
#define HK_API_FN(ret, name, args) ret HK_API(name) args
#else
#define HK_API(name) name
#define HK_API_FN(ret, name, args)                                            \
  __attribute__((visibility("default"))) ret name args
#endif

#ifdef HK_INTERNAL_NAMES
struct mallinfo2;
void *hk_api_malloc(size_t size);
void hk_api_free(void *p);
void *hk_api_calloc(size_t n, size_t size);
void *hk_api_realloc(void *p, size_t size);
void *hk_api_reallocarray(void *p, size_t n, size_t size);
int hk_api_posix_memalign(void **out, size_t align, size_t size);
void *hk_api_aligned_alloc(size_t align, size_t size);
void *hk_api_memalign(size_t align, size_t size);
void *hk_api_valloc(size_t size);
void *hk_api_pvalloc(size_t size);
size_t hk_api_malloc_usable_size(void *p);
int hk_api_malloc_trim(size_t pad);
#endif

#endif
