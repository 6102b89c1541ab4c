/*
 * Integration test: every malloc-family entry point behaves as glibc
 * documents it -- return values, errno, alignment, zeroing and content
 * preservation -- with most weight on the edges (zero sizes, sizes near
 * SIZE_MAX, overflowing products, bad alignments) where a replacement
 * allocator is most likely to part ways with glibc.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pattern.h"
#include "preloaded.h"

/* The overflow cases below are written for a 64-bit size_t. */
_Static_assert(sizeof(size_t) == 8, "api_edge assumes a 64-bit size_t");

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)

/*
 * Every call goes through a volatile pointer so the compiler cannot treat it
 * as the builtin it knows: GCC may drop malloc/free pairs, assume free()
 * leaves errno alone, fold reads of calloc'ed memory to zero or warn about
 * the deliberately huge sizes -- each of which would let a broken allocator
 * pass unnoticed.
 */
static void *(*volatile const call_malloc)(size_t) = malloc;
static void *(*volatile const call_calloc)(size_t, size_t) = calloc;
static void *(*volatile const call_realloc)(void *, size_t) = realloc;
static void *(*volatile const call_reallocarray)(void *, size_t, size_t) =
    reallocarray;
static void (*volatile const call_free)(void *) = free;
static void *(*volatile const call_aligned_alloc)(size_t, size_t) =
    aligned_alloc;
static int (*volatile const call_posix_memalign)(void **, size_t, size_t) =
    posix_memalign;
static void *(*volatile const call_memalign)(size_t, size_t) = memalign;
static void *(*volatile const call_valloc)(size_t) = valloc;
static void *(*volatile const call_pvalloc)(size_t) = pvalloc;
static size_t (*volatile const call_usable)(void *) = malloc_usable_size;
static int (*volatile const call_malloc_trim)(size_t) = malloc_trim;
static struct mallinfo2 (*volatile const call_mallinfo2)(void) = mallinfo2;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
/* mallinfo() is deprecated but still exported and used by old programs. */
static struct mallinfo (*volatile const call_mallinfo)(void) = mallinfo;
#pragma GCC diagnostic pop
static void (*volatile const call_malloc_stats)(void) = malloc_stats;

/* Requests no allocator can satisfy, several aimed at rounding overflow. */
static const size_t huge_sizes[] = {
    SIZE_MAX,
    SIZE_MAX - 1,
    SIZE_MAX - 15,          /* + 16-byte rounding wraps to 0 */
    SIZE_MAX - 4095,        /* + page rounding wraps to 0 */
    SIZE_MAX - 2 * MiB + 1, /* + huge-page rounding wraps to 0 */
    SIZE_MAX / 2 + 1,
    (size_t)PTRDIFF_MAX + 1,
    (size_t)PTRDIFF_MAX, /* fits the type, but no address space is that big */
};
#define N_HUGE (sizeof(huge_sizes) / sizeof(huge_sizes[0]))

static size_t page_size(void)
{
    long ps = sysconf(_SC_PAGESIZE);

    ck_assert_int_gt(ps, 0);
    return (size_t)ps;
}

static int is_aligned(const void *p, size_t alignment)
{
    return ((uintptr_t)p & (alignment - 1)) == 0;
}

/* errno is passed in because the failed assertion itself may clobber it. */
static void expect_null_errno(const void *p, int err, int want,
                              const char *call, size_t a, size_t b)
{
    ck_assert_msg(p == NULL && err == want,
                  "%s(%#zx, %#zx) gave %p with errno %d, want NULL with "
                  "errno %d",
                  call, a, b, p, err, want);
}

static void expect_pattern(const void *p, size_t from, size_t to,
                           uint64_t key, const char *what, size_t size)
{
    size_t bad = pat_check(p, from, to, key);

    ck_assert_msg(bad == PAT_NONE,
                  "%s: block of %zu bytes corrupted at offset %zu", what,
                  size, bad);
}

START_TEST(preloaded)
{
    assert_hakmem_preloaded();
}
END_TEST

START_TEST(malloc_zero_unique)
{
    enum { N = 64 };
    void *p[N];

    for (int i = 0; i < N; i++) {
        p[i] = call_malloc(0);
        ck_assert_msg(p[i] != NULL, "malloc(0) #%d returned NULL", i);
        for (int j = 0; j < i; j++)
            ck_assert_msg(p[i] != p[j],
                          "malloc(0) returned %p twice while both are live",
                          p[i]);
    }
    for (int i = 0; i < N; i++)
        call_free(p[i]);

    /* A zero product is a zero-size request, not an overflow. */
    void *c1 = call_calloc(0, 0);
    void *c2 = call_calloc(0, SIZE_MAX);
    void *c3 = call_calloc(SIZE_MAX, 0);
    ck_assert_msg(c1 && c2 && c3, "calloc with a zero product gave NULL");
    ck_assert(c1 != c2 && c2 != c3 && c1 != c3);
    call_free(c1);
    call_free(c2);
    call_free(c3);
}
END_TEST

START_TEST(free_null)
{
    errno = 4321;
    call_free(NULL);
    ck_assert_int_eq(errno, 4321);
    /* The allocator must still work after being handed NULL. */
    void *p = call_malloc(32);
    ck_assert_ptr_nonnull(p);
    call_free(p);
}
END_TEST

START_TEST(free_preserves_errno)
{
    /* Small, medium and large blocks usually take different free paths. */
    static const size_t sizes[] = {1, 16, 200, 4000, 100 * KiB, 1 * MiB,
                                   8 * MiB, 64 * MiB};

    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        void *p = call_malloc(sizes[i]);
        ck_assert_ptr_nonnull(p);
        memset(p, 0x5c, sizes[i]);
        errno = 1234;
        call_free(p);
        ck_assert_msg(errno == 1234,
                      "free() of a %zu-byte block changed errno to %d",
                      sizes[i], errno);
    }

    /* Over-aligned blocks may be carved differently and freed differently. */
    static const size_t aligns[] = {64, 4096, 2 * MiB};
    for (size_t i = 0; i < sizeof(aligns) / sizeof(aligns[0]); i++) {
        void *p = NULL;
        ck_assert_int_eq(call_posix_memalign(&p, aligns[i], 3 * MiB), 0);
        errno = 1234;
        call_free(p);
        ck_assert_msg(errno == 1234,
                      "free() of a %zu-aligned block changed errno to %d",
                      aligns[i], errno);
    }
}
END_TEST

START_TEST(huge_malloc)
{
    for (size_t i = 0; i < N_HUGE; i++) {
        errno = 0;
        void *p = call_malloc(huge_sizes[i]);
        expect_null_errno(p, errno, ENOMEM, "malloc", huge_sizes[i], 0);
    }
}
END_TEST

START_TEST(huge_calloc)
{
    for (size_t i = 0; i < N_HUGE; i++) {
        errno = 0;
        void *p = call_calloc(huge_sizes[i], 1);
        expect_null_errno(p, errno, ENOMEM, "calloc", huge_sizes[i], 1);
        errno = 0;
        p = call_calloc(1, huge_sizes[i]);
        expect_null_errno(p, errno, ENOMEM, "calloc", 1, huge_sizes[i]);
    }
}
END_TEST

START_TEST(calloc_overflow)
{
    /*
     * Several products wrap to small values (0, 2, 16, 4 GiB): an allocator
     * that multiplies without checking would hand back a tiny block.
     */
    static const size_t pairs[][2] = {
        {SIZE_MAX / 2 + 1, 2},
        {2, SIZE_MAX / 2 + 1},
        {SIZE_MAX, SIZE_MAX},
        {(size_t)1 << 32, (size_t)1 << 32},
        {((size_t)1 << 32) + 1, (size_t)1 << 32},
        {SIZE_MAX / 16 + 2, 16},
        {3, SIZE_MAX / 3 + 1},
        {65537, (size_t)1 << 48},
    };

    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        errno = 0;
        void *p = call_calloc(pairs[i][0], pairs[i][1]);
        expect_null_errno(p, errno, ENOMEM, "calloc", pairs[i][0],
                          pairs[i][1]);
    }
}
END_TEST

START_TEST(huge_realloc_null)
{
    for (size_t i = 0; i < N_HUGE; i++) {
        errno = 0;
        void *p = call_realloc(NULL, huge_sizes[i]);
        expect_null_errno(p, errno, ENOMEM, "realloc(NULL)", huge_sizes[i],
                          0);
    }
}
END_TEST

START_TEST(huge_reallocarray_null)
{
    for (size_t i = 0; i < N_HUGE; i++) {
        errno = 0;
        void *p = call_reallocarray(NULL, huge_sizes[i], 1);
        expect_null_errno(p, errno, ENOMEM, "reallocarray(NULL)",
                          huge_sizes[i], 1);
        errno = 0;
        p = call_reallocarray(NULL, 1, huge_sizes[i]);
        expect_null_errno(p, errno, ENOMEM, "reallocarray(NULL)", 1,
                          huge_sizes[i]);
    }
}
END_TEST

START_TEST(reallocarray_overflow)
{
    static const size_t pairs[][2] = {
        {SIZE_MAX / 2 + 1, 2},
        {(size_t)1 << 32, (size_t)1 << 32},
        {((size_t)1 << 32) + 1, (size_t)1 << 32},
        {SIZE_MAX / 16 + 2, 16},
        {SIZE_MAX, SIZE_MAX},
    };
    const size_t n = 100;
    const uint64_t key = 0xA11CE;
    unsigned char *p = call_malloc(n);

    ck_assert_ptr_nonnull(p);
    pat_fill(p, 0, n, key);
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        errno = 0;
        void *q = call_reallocarray(p, pairs[i][0], pairs[i][1]);
        expect_null_errno(q, errno, ENOMEM, "reallocarray(p)", pairs[i][0],
                          pairs[i][1]);
        expect_pattern(p, 0, n, key, "reallocarray overflow", n);

        errno = 0;
        q = call_reallocarray(NULL, pairs[i][0], pairs[i][1]);
        expect_null_errno(q, errno, ENOMEM, "reallocarray(NULL)",
                          pairs[i][0], pairs[i][1]);
    }

    /* The untouched block must still be a normal, growable block. */
    unsigned char *q = call_reallocarray(p, 25, 8);
    ck_assert_ptr_nonnull(q);
    expect_pattern(q, 0, n, key, "reallocarray after overflow", n);
    call_free(q);
}
END_TEST

START_TEST(huge_aligned_alloc)
{
    static const size_t aligns[] = {16, 64, 4096, 2 * MiB};

    for (size_t a = 0; a < sizeof(aligns) / sizeof(aligns[0]); a++) {
        for (size_t i = 0; i < N_HUGE; i++) {
            errno = 0;
            void *p = call_aligned_alloc(aligns[a], huge_sizes[i]);
            expect_null_errno(p, errno, ENOMEM, "aligned_alloc", aligns[a],
                              huge_sizes[i]);
        }
    }
    /* A valid power of two that no address can satisfy. */
    errno = 0;
    void *p = call_aligned_alloc(SIZE_MAX / 2 + 1, 64);
    expect_null_errno(p, errno, ENOMEM, "aligned_alloc", SIZE_MAX / 2 + 1,
                      64);
}
END_TEST

START_TEST(huge_memalign)
{
    static const size_t aligns[] = {16, 64, 4096, 2 * MiB};

    for (size_t a = 0; a < sizeof(aligns) / sizeof(aligns[0]); a++) {
        for (size_t i = 0; i < N_HUGE; i++) {
            errno = 0;
            void *p = call_memalign(aligns[a], huge_sizes[i]);
            expect_null_errno(p, errno, ENOMEM, "memalign", aligns[a],
                              huge_sizes[i]);
        }
    }
}
END_TEST

START_TEST(huge_valloc_pvalloc)
{
    for (size_t i = 0; i < N_HUGE; i++) {
        errno = 0;
        void *p = call_valloc(huge_sizes[i]);
        expect_null_errno(p, errno, ENOMEM, "valloc", huge_sizes[i], 0);
        errno = 0;
        p = call_pvalloc(huge_sizes[i]);
        expect_null_errno(p, errno, ENOMEM, "pvalloc", huge_sizes[i], 0);
    }
}
END_TEST

START_TEST(posix_memalign_einval)
{
    /* Not a power of two, or not a multiple of sizeof(void *). */
    static const size_t bad[] = {0,  1,  2,    4,       3,
                                 12, 24, 40,   48,      96,
                                 sizeof(void *) + 1,    4097,
                                 1000000,      SIZE_MAX, SIZE_MAX / 2 + 2};
    void *const sentinel = (void *)(uintptr_t)0x5A5A5A5A;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        void *p = sentinel;
        int rc = call_posix_memalign(&p, bad[i], 64);
        ck_assert_msg(rc == EINVAL,
                      "posix_memalign(alignment=%zu) returned %d, want "
                      "EINVAL",
                      bad[i], rc);
        ck_assert_msg(p == sentinel,
                      "posix_memalign(alignment=%zu) wrote *memptr on error",
                      bad[i]);
    }
}
END_TEST

START_TEST(posix_memalign_enomem)
{
    void *const sentinel = (void *)(uintptr_t)0x5A5A5A5A;
    static const size_t aligns[] = {sizeof(void *), 64, 4096, 2 * MiB};

    for (size_t a = 0; a < sizeof(aligns) / sizeof(aligns[0]); a++) {
        for (size_t i = 0; i < N_HUGE; i++) {
            void *p = sentinel;
            int rc = call_posix_memalign(&p, aligns[a], huge_sizes[i]);
            ck_assert_msg(rc == ENOMEM,
                          "posix_memalign(%zu, %#zx) returned %d, want "
                          "ENOMEM",
                          aligns[a], huge_sizes[i], rc);
            ck_assert_msg(p == sentinel,
                          "posix_memalign(%zu, %#zx) wrote *memptr on error",
                          aligns[a], huge_sizes[i]);
        }
    }
    void *p = sentinel;
    ck_assert_int_eq(call_posix_memalign(&p, SIZE_MAX / 2 + 1, 64), ENOMEM);
    ck_assert_ptr_eq(p, sentinel);
}
END_TEST

/*
 * Allocates every (alignment, size) pair and keeps them all live while
 * checking, so overlapping blocks show up as pattern damage.
 */
enum { ALIGN_SIZES = 4 };
static const size_t align_test_sizes[ALIGN_SIZES] = {1, 100, 5000, 300000};

struct aligned_block {
    void *p;
    size_t size;
    size_t align;
};

static void check_aligned_set(struct aligned_block *b, size_t n,
                              const char *who)
{
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(b[i].p != NULL, "%s(%zu, %zu) returned NULL", who,
                      b[i].align, b[i].size);
        ck_assert_msg(is_aligned(b[i].p, b[i].align),
                      "%s(%zu, %zu) returned misaligned %p", who, b[i].align,
                      b[i].size, b[i].p);
        ck_assert_msg(call_usable(b[i].p) >= b[i].size,
                      "%s(%zu, %zu): usable size %zu too small", who,
                      b[i].align, b[i].size, call_usable(b[i].p));
        pat_fill(b[i].p, 0, b[i].size, pat_key(b[i].p, b[i].size, 7));
    }
    for (size_t i = 0; i < n; i++) {
        expect_pattern(b[i].p, 0, b[i].size, pat_key(b[i].p, b[i].size, 7),
                       who, b[i].size);
        call_free(b[i].p);
    }
}

/* Size 0 with alignments of 2 MiB and more: the block must still lie
 * inside what the allocator mapped for it (it once started one byte past
 * its mapping, and the next free() of it was refused as not ours). */
START_TEST(aligned_size_zero)
{
    static const size_t aligns[] = {4096, 1u << 20, 2u << 20, 4u << 20,
                                    8u << 20};
    for (size_t i = 0; i < sizeof(aligns) / sizeof(aligns[0]); i++) {
        void *p = NULL;
        ck_assert_int_eq(call_posix_memalign(&p, aligns[i], 0), 0);
        ck_assert_ptr_nonnull(p);
        ck_assert_uint_eq((uintptr_t)p % aligns[i], 0);
        (void)call_usable(p);
        call_free(p);
        void *q = call_memalign(aligns[i], 0);
        ck_assert_ptr_nonnull(q);
        ck_assert_uint_eq((uintptr_t)q % aligns[i], 0);
        void *r = call_realloc(q, 100);
        ck_assert_ptr_nonnull(r);
        call_free(r);
    }
}
END_TEST

START_TEST(posix_memalign_alignments)
{
    struct aligned_block b[32 * ALIGN_SIZES];
    size_t n = 0;

    for (size_t a = sizeof(void *); a <= 4 * MiB; a <<= 1) {
        for (int s = 0; s < ALIGN_SIZES; s++) {
            void *p = NULL;
            int rc = call_posix_memalign(&p, a, align_test_sizes[s]);
            ck_assert_msg(rc == 0, "posix_memalign(%zu, %zu) returned %d", a,
                          align_test_sizes[s], rc);
            b[n++] = (struct aligned_block){p, align_test_sizes[s], a};
        }
    }
    check_aligned_set(b, n, "posix_memalign");
}
END_TEST

START_TEST(aligned_alloc_alignments)
{
    struct aligned_block b[32 * ALIGN_SIZES];
    size_t n = 0;

    /* C17 (DR 460) drops the rule that size be a multiple of alignment. */
    for (size_t a = 1; a <= 4 * MiB; a <<= 1)
        for (int s = 0; s < ALIGN_SIZES; s++)
            b[n++] = (struct aligned_block){
                call_aligned_alloc(a, align_test_sizes[s]),
                align_test_sizes[s], a};
    check_aligned_set(b, n, "aligned_alloc");
}
END_TEST

/*
 * glibc documents (manual and aligned_alloc(3)) that a non-power-of-two
 * alignment, zero included, fails with EINVAL.  glibc itself only does so
 * from 2.38 on (the C17 conformance change); 2.36 silently rounds the
 * alignment up and succeeds, so this case fails when run against glibc 2.36.
 */
START_TEST(aligned_alloc_bad_alignment)
{
    static const size_t bad[] = {3, 0, 24, 65, 4097, SIZE_MAX};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        errno = 0;
        void *p = call_aligned_alloc(bad[i], 48);
        expect_null_errno(p, errno, EINVAL, "aligned_alloc", bad[i], 48);
    }
}
END_TEST

START_TEST(memalign_alignments)
{
    struct aligned_block b[32 * ALIGN_SIZES];
    size_t n = 0;

    for (size_t a = 1; a <= 4 * MiB; a <<= 1)
        for (int s = 0; s < ALIGN_SIZES; s++)
            b[n++] = (struct aligned_block){
                call_memalign(a, align_test_sizes[s]), align_test_sizes[s],
                a};
    check_aligned_set(b, n, "memalign");
}
END_TEST

START_TEST(valloc_pvalloc)
{
    static const size_t sizes[] = {1, 100, 4095, 4096, 4097, 5000, 300000,
                                   3 * MiB + 1};
    const size_t ps = page_size();
    enum { N = sizeof(sizes) / sizeof(sizes[0]) };
    struct aligned_block v[N], pv[N];

    for (size_t i = 0; i < N; i++) {
        v[i] = (struct aligned_block){call_valloc(sizes[i]), sizes[i], ps};
        pv[i] = (struct aligned_block){call_pvalloc(sizes[i]), sizes[i], ps};
        ck_assert_msg(pv[i].p != NULL, "pvalloc(%zu) returned NULL",
                      sizes[i]);
        /* pvalloc rounds the request up to whole pages; all of it is ours. */
        size_t rounded = (sizes[i] + ps - 1) / ps * ps;
        ck_assert_msg(call_usable(pv[i].p) >= rounded,
                      "pvalloc(%zu): usable %zu < page-rounded %zu",
                      sizes[i], call_usable(pv[i].p), rounded);
        pv[i].size = rounded;
    }
    check_aligned_set(v, N, "valloc");
    check_aligned_set(pv, N, "pvalloc");
}
END_TEST

START_TEST(realloc_null_is_malloc)
{
    static const size_t sizes[] = {0, 1, 16, 100, 5000, 200000, 5 * MiB};

    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t n = sizes[i];
        void *p = call_realloc(NULL, n);
        ck_assert_msg(p != NULL, "realloc(NULL, %zu) returned NULL", n);
        ck_assert_msg(call_usable(p) >= n,
                      "realloc(NULL, %zu): usable size %zu", n,
                      call_usable(p));
        if (n >= 16)
            ck_assert_msg(is_aligned(p, 16),
                          "realloc(NULL, %zu) is not 16-byte aligned", n);
        pat_fill(p, 0, n, 99);
        expect_pattern(p, 0, n, 99, "realloc(NULL, n)", n);
        call_free(p);
    }
}
END_TEST

/*
 * glibc frees the block and returns NULL for realloc(p, 0); C23 makes the
 * result unspecified, so only "no crash, and freeable if not NULL" is
 * asserted.  The follow-up allocations catch a heap left inconsistent.
 */
START_TEST(realloc_zero)
{
    static const size_t sizes[] = {1, 64, 3000, 100 * KiB, 8 * MiB};

    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        void *p = call_malloc(sizes[i]);
        ck_assert_ptr_nonnull(p);
        memset(p, 0x11, sizes[i]);
        void *q = call_realloc(p, 0);
        if (q != NULL)
            call_free(q);
        void *r = call_malloc(sizes[i]);
        ck_assert_ptr_nonnull(r);
        pat_fill(r, 0, sizes[i], 5);
        expect_pattern(r, 0, sizes[i], 5, "malloc after realloc(p, 0)",
                       sizes[i]);
        call_free(r);
    }
}
END_TEST

START_TEST(realloc_small_steps)
{
    const uint64_t key = 0xBEEF;
    unsigned char *p = call_malloc(1);

    ck_assert_ptr_nonnull(p);
    pat_fill(p, 0, 1, key);
    for (size_t n = 2; n <= 2000; n++) {
        unsigned char *q = call_realloc(p, n);
        ck_assert_msg(q != NULL, "realloc to %zu returned NULL", n);
        expect_pattern(q, 0, n - 1, key, "realloc grow", n);
        pat_fill(q, n - 1, n, key);
        p = q;
    }
    for (size_t n = 1999; n >= 1; n--) {
        unsigned char *q = call_realloc(p, n);
        ck_assert_msg(q != NULL, "realloc to %zu returned NULL", n);
        expect_pattern(q, 0, n, key, "realloc shrink", n);
        p = q;
    }
    call_free(p);
}
END_TEST

static void run_realloc_chain(const size_t *sizes, size_t count,
                              uint64_t key)
{
    size_t cur = sizes[0];
    unsigned char *p = call_malloc(cur);

    ck_assert_ptr_nonnull(p);
    pat_fill(p, 0, cur, key);
    for (size_t i = 1; i < count; i++) {
        size_t next = sizes[i];
        unsigned char *q = call_realloc(p, next);
        ck_assert_msg(q != NULL, "realloc %zu -> %zu returned NULL", cur,
                      next);
        ck_assert_msg(next < 16 || is_aligned(q, 16),
                      "realloc %zu -> %zu gave misaligned %p", cur, next, q);
        ck_assert_msg(call_usable(q) >= next,
                      "realloc %zu -> %zu: usable size %zu", cur, next,
                      call_usable(q));
        size_t kept = cur < next ? cur : next;
        size_t bad = pat_check(q, 0, kept, key);
        ck_assert_msg(bad == PAT_NONE,
                      "realloc %zu -> %zu lost contents at offset %zu", cur,
                      next, bad);
        if (next > cur)
            pat_fill(q, cur, next, key);
        p = q;
        cur = next;
    }
    call_free(p);
}

START_TEST(realloc_across_tiers)
{
    static const size_t chain_a[] = {100 * KiB, 3 * MiB, 10};
    static const size_t chain_b[] = {
        1,      24,         200,    1500,          9000, 70000,
        260000, 1 * MiB,    5 * MiB + 3,           64,   32 * MiB,
        100 * KiB,          33,     4 * MiB,       1};
    static const size_t chain_c[] = {8 * MiB, 4 * MiB, 2 * MiB, 1 * MiB,
                                     300 * KiB, 20 * KiB, 500, 8,
                                     16 * MiB};

    run_realloc_chain(chain_a, sizeof(chain_a) / sizeof(chain_a[0]), 1);
    run_realloc_chain(chain_b, sizeof(chain_b) / sizeof(chain_b[0]), 2);
    run_realloc_chain(chain_c, sizeof(chain_c) / sizeof(chain_c[0]), 3);
}
END_TEST

START_TEST(realloc_aligned_blocks)
{
    /* Over-aligned blocks may carry offsets realloc has to undo. */
    static const size_t aligns[] = {64, 4096, 1 * MiB};
    static const size_t sizes[] = {1000, 100, 70000, 3 * MiB, 40};

    for (size_t a = 0; a < sizeof(aligns) / sizeof(aligns[0]); a++) {
        unsigned char *p = NULL;
        size_t cur = 500;
        ck_assert_int_eq(call_posix_memalign((void **)&p, aligns[a], cur),
                         0);
        pat_fill(p, 0, cur, aligns[a]);
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
            unsigned char *q = call_realloc(p, sizes[i]);
            ck_assert_ptr_nonnull(q);
            size_t kept = cur < sizes[i] ? cur : sizes[i];
            expect_pattern(q, 0, kept, aligns[a], "realloc of aligned block",
                           sizes[i]);
            if (sizes[i] > cur)
                pat_fill(q, cur, sizes[i], aligns[a]);
            p = q;
            cur = sizes[i];
        }
        call_free(p);
    }
}
END_TEST

START_TEST(realloc_failure_keeps_block)
{
    static const size_t sizes[] = {24, 100 * KiB, 8 * MiB};
    static const size_t fails[] = {SIZE_MAX, SIZE_MAX - 1, SIZE_MAX - 4095,
                                   (size_t)PTRDIFF_MAX + 1};

    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t n = sizes[i];
        unsigned char *p = call_malloc(n);
        ck_assert_ptr_nonnull(p);
        pat_fill(p, 0, n, n);
        for (size_t f = 0; f < sizeof(fails) / sizeof(fails[0]); f++) {
            errno = 0;
            void *q = call_realloc(p, fails[f]);
            expect_null_errno(q, errno, ENOMEM, "realloc(p)", n, fails[f]);
            expect_pattern(p, 0, n, n, "block after failed realloc", n);
            ck_assert(call_usable(p) >= n);
        }
        /* Still a live, well-formed block: it must grow and free normally. */
        unsigned char *q = call_realloc(p, 2 * n);
        ck_assert_ptr_nonnull(q);
        expect_pattern(q, 0, n, n, "grow after failed realloc", n);
        call_free(q);
    }
}
END_TEST

static const size_t calloc_sizes[] = {
    16,     24,     32,     48,     64,     100,    128,     200,
    256,    500,    512,    1000,   1024,   2000,   4096,    5000,
    8192,   10000,  16384,  32768,  40000,  65536,  100000,  131072,
    262144, 300000, 524288, 1 << 20, 1500000, 2 << 20, 3 << 20, 4 << 20};
#define N_CALLOC_SIZES (sizeof(calloc_sizes) / sizeof(calloc_sizes[0]))
/* Several blocks per small size so more than one slot gets reused. */
#define CALLOC_COPIES(size) ((size) <= 4096 ? 8 : 2)

static void check_zero(const unsigned char *p, size_t n, int round)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0)
            ck_abort_msg("round %d: calloc of %zu bytes has byte %#x at "
                         "offset %zu",
                         round, n, p[i], i);
}

START_TEST(calloc_zero_on_reuse)
{
    size_t total = 0;
    for (size_t s = 0; s < N_CALLOC_SIZES; s++)
        total += CALLOC_COPIES(calloc_sizes[s]);
    void **blocks = call_malloc(total * sizeof(void *));
    ck_assert_ptr_nonnull(blocks);

    for (int round = 0; round < 4; round++) {
        size_t k = 0;
        for (size_t s = 0; s < N_CALLOC_SIZES; s++) {
            for (int c = 0; c < CALLOC_COPIES(calloc_sizes[s]); c++) {
                void *p = call_malloc(calloc_sizes[s]);
                ck_assert_ptr_nonnull(p);
                /* Dirty the whole usable area, not just what was asked. */
                memset(p, 0xAA, call_usable(p));
                blocks[k++] = p;
            }
        }
        /* Alternate the free order so both LIFO and FIFO reuse happen. */
        for (size_t i = 0; i < total; i++)
            call_free(blocks[round % 2 ? total - 1 - i : i]);

        k = 0;
        for (size_t s = 0; s < N_CALLOC_SIZES; s++) {
            size_t n = calloc_sizes[s];
            for (int c = 0; c < CALLOC_COPIES(n); c++) {
                /* Both argument orders, and a split product of exactly n. */
                size_t elem = (n % 8 == 0) ? 8 : (n % 4 == 0) ? 4 : 1;
                void *p = (c % 3 == 0)   ? call_calloc(1, n)
                          : (c % 3 == 1) ? call_calloc(n, 1)
                                         : call_calloc(n / elem, elem);
                ck_assert_ptr_nonnull(p);
                check_zero(p, n, round);
                blocks[k++] = p;
            }
        }
        for (size_t i = 0; i < total; i++)
            call_free(blocks[i]);
    }
    call_free(blocks);
}
END_TEST

START_TEST(usable_size)
{
    ck_assert_uint_eq(call_usable(NULL), 0);

    enum { SMALL = 1024, LARGE = 24 };
    static const size_t large[LARGE] = {
        1500,    2048,        3000,    4096,    5000,    8191,
        12000,   16384,       30000,   65535,   65536,   65537,
        100000,  131072,      262143,  262144,  262145,  500000,
        1 << 20, (1 << 20) + 1, 2 << 20, 3000000, 8 << 20, 16 << 20};
    struct {
        void *p;
        size_t usable;
    } b[SMALL + LARGE];

    for (size_t i = 0; i < SMALL + LARGE; i++) {
        size_t n = i < SMALL ? i + 1 : large[i - SMALL];
        b[i].p = call_malloc(n);
        ck_assert_ptr_nonnull(b[i].p);
        b[i].usable = call_usable(b[i].p);
        ck_assert_msg(b[i].usable >= n, "malloc(%zu): usable size %zu", n,
                      b[i].usable);
        /* The whole usable area belongs to the caller. */
        pat_fill(b[i].p, 0, b[i].usable, pat_key(b[i].p, n, 11));
    }
    for (size_t i = 0; i < SMALL + LARGE; i++) {
        size_t n = i < SMALL ? i + 1 : large[i - SMALL];
        expect_pattern(b[i].p, 0, b[i].usable, pat_key(b[i].p, n, 11),
                       "usable area", b[i].usable);
        ck_assert_uint_eq(call_usable(b[i].p), b[i].usable);
        call_free(b[i].p);
    }
}
END_TEST

/*
 * glibc guarantees 16 on x86-64 for every size; the requirement kept here
 * is the C one (fundamental alignment for anything that fits), which is 16
 * for blocks of 16 bytes or more and 8 for blocks of 8..15 bytes.
 */
static void check_min_alignment(const void *p, size_t n, const char *who)
{
    if (n >= 16)
        ck_assert_msg(is_aligned(p, 16), "%s(%zu) = %p not 16-byte aligned",
                      who, n, p);
    else if (n >= 8)
        ck_assert_msg(is_aligned(p, 8), "%s(%zu) = %p not 8-byte aligned",
                      who, n, p);
}

START_TEST(malloc_alignment)
{
    enum { N = 4096 };
    void **b = call_malloc(N * sizeof(void *));
    ck_assert_ptr_nonnull(b);

    /* Kept live together so each size gets a fresh slot, not a reused one. */
    for (size_t n = 1; n <= N; n++) {
        b[n - 1] = call_malloc(n);
        ck_assert_ptr_nonnull(b[n - 1]);
        check_min_alignment(b[n - 1], n, "malloc");
    }
    for (size_t n = 1; n <= N; n++)
        call_free(b[n - 1]);

    static const size_t large[] = {5000, 65537, 100000, 262145, 1 << 20,
                                   (3 << 20) + 5, 8 << 20, 33 << 20};
    for (size_t i = 0; i < sizeof(large) / sizeof(large[0]); i++) {
        void *p = call_malloc(large[i]);
        ck_assert_ptr_nonnull(p);
        check_min_alignment(p, large[i], "malloc");
        void *c = call_calloc(1, large[i]);
        ck_assert_ptr_nonnull(c);
        check_min_alignment(c, large[i], "calloc");
        void *r = call_realloc(p, large[i] / 2 + 17);
        ck_assert_ptr_nonnull(r);
        check_min_alignment(r, large[i] / 2 + 17, "realloc");
        call_free(r);
        call_free(c);
    }
    for (size_t n = 1; n <= 1024; n += 7) {
        void *c = call_calloc(n, 1);
        ck_assert_ptr_nonnull(c);
        check_min_alignment(c, n, "calloc");
        call_free(c);
    }
    call_free(b);
}
END_TEST

START_TEST(malloc_trim_keeps_live_blocks)
{
    enum { SMALL = 2000, BIG = 20, LIVE = 64 };
    void *small[SMALL], *big[BIG];
    struct {
        void *p;
        size_t n;
    } live[LIVE];

    /* Live blocks interleaved with freed ones: trim must spare them. */
    for (int i = 0; i < LIVE; i++) {
        live[i].n = (size_t)(i % 4 == 0 ? 200000 : 16 + 97 * i);
        live[i].p = call_malloc(live[i].n);
        ck_assert_ptr_nonnull(live[i].p);
        pat_fill(live[i].p, 0, live[i].n, pat_key(live[i].p, live[i].n, 3));
        for (int j = 0; j < SMALL / LIVE; j++) {
            int k = i * (SMALL / LIVE) + j;
            small[k] = call_malloc(4096);
            ck_assert_ptr_nonnull(small[k]);
            memset(small[k], 0x33, 4096);
        }
    }
    for (int i = 0; i < BIG; i++) {
        big[i] = call_malloc(MiB);
        ck_assert_ptr_nonnull(big[i]);
        memset(big[i], 0x44, MiB);
    }
    for (int k = 0; k < (SMALL / LIVE) * LIVE; k++)
        call_free(small[k]);
    for (int i = 0; i < BIG; i++)
        call_free(big[i]);

    int rc = call_malloc_trim(0);
    ck_assert_msg(rc == 0 || rc == 1, "malloc_trim(0) returned %d", rc);
    rc = call_malloc_trim(MiB);
    ck_assert_msg(rc == 0 || rc == 1, "malloc_trim(1 MiB) returned %d", rc);

    for (int i = 0; i < LIVE; i++)
        expect_pattern(live[i].p, 0, live[i].n,
                       pat_key(live[i].p, live[i].n, 3), "live across trim",
                       live[i].n);

    /* The trimmed heap must serve the same demand again. */
    for (int i = 0; i < BIG; i++) {
        big[i] = call_malloc(MiB);
        ck_assert_ptr_nonnull(big[i]);
        pat_fill(big[i], 0, MiB, pat_key(big[i], MiB, 4));
    }
    for (int k = 0; k < SMALL; k++) {
        small[k] = call_malloc(4096);
        ck_assert_ptr_nonnull(small[k]);
        pat_fill(small[k], 0, 4096, pat_key(small[k], 4096, 4));
    }
    for (int i = 0; i < BIG; i++) {
        expect_pattern(big[i], 0, MiB, pat_key(big[i], MiB, 4),
                       "after trim", MiB);
        call_free(big[i]);
    }
    for (int k = 0; k < SMALL; k++) {
        expect_pattern(small[k], 0, 4096, pat_key(small[k], 4096, 4),
                       "after trim", 4096);
        call_free(small[k]);
    }
    for (int i = 0; i < LIVE; i++)
        call_free(live[i].p);
}
END_TEST

/* 10 MiB in small blocks: enough to stand out from any bookkeeping noise. */
#define INFO_BLOCK 128
#define INFO_COUNT ((10 * MiB) / INFO_BLOCK)

static void **alloc_info_blocks(void)
{
    void **v = call_malloc(INFO_COUNT * sizeof(void *));
    ck_assert_ptr_nonnull(v);
    return v;
}

static void fill_info_blocks(void **v)
{
    for (size_t i = 0; i < INFO_COUNT; i++) {
        v[i] = call_malloc(INFO_BLOCK);
        ck_assert_ptr_nonnull(v[i]);
        memset(v[i], 0x77, INFO_BLOCK);
    }
}

static void free_info_blocks(void **v)
{
    for (size_t i = 0; i < INFO_COUNT; i++)
        call_free(v[i]);
    call_free(v);
}

START_TEST(mallinfo2_tracks_usage)
{
    void **v = alloc_info_blocks();
    struct mallinfo2 before = call_mallinfo2();
    fill_info_blocks(v);
    struct mallinfo2 after = call_mallinfo2();

    ck_assert_msg(after.uordblks > before.uordblks + 5 * MiB,
                  "mallinfo2().uordblks went %zu -> %zu after allocating "
                  "10 MiB",
                  before.uordblks, after.uordblks);
    free_info_blocks(v);
}
END_TEST

START_TEST(mallinfo_tracks_usage)
{
    void **v = alloc_info_blocks();
    struct mallinfo before = call_mallinfo();
    fill_info_blocks(v);
    struct mallinfo after = call_mallinfo();

    /* int fields: 10 MiB of growth is far from wrapping. */
    ck_assert_msg((long long)after.uordblks >
                      (long long)before.uordblks + (long long)(5 * MiB),
                  "mallinfo().uordblks went %d -> %d after allocating 10 MiB",
                  before.uordblks, after.uordblks);
    free_info_blocks(v);
}
END_TEST

START_TEST(malloc_stats_prints)
{
    void *p = call_malloc(1000);
    ck_assert_ptr_nonnull(p);

    /* Capture fd 2 so the report neither pollutes the log nor goes unseen. */
    FILE *tmp = tmpfile();
    ck_assert_ptr_nonnull(tmp);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    ck_assert_int_ge(saved, 0);
    ck_assert_int_ge(dup2(fileno(tmp), STDERR_FILENO), 0);
    call_malloc_stats();
    fflush(stderr);
    ck_assert_int_ge(dup2(saved, STDERR_FILENO), 0);
    close(saved);

    off_t len = lseek(fileno(tmp), 0, SEEK_END);
    fclose(tmp);
    ck_assert_msg(len > 0, "malloc_stats() printed nothing on stderr");

    void *q = call_malloc(5000);
    ck_assert_ptr_nonnull(q);
    memset(q, 1, 5000);
    call_free(q);
    call_free(p);
}
END_TEST

static TCase *new_tcase(const char *name)
{
    TCase *tc = tcase_create(name);
    /* Generous: a slow allocator is not what these cases are judging. */
    tcase_set_timeout(tc, 120);
    return tc;
}

static Suite *api_edge_suite(void)
{
    Suite *s = suite_create("api_edge");

    TCase *tc = new_tcase("basics");
    tcase_add_test(tc, preloaded);
    tcase_add_test(tc, malloc_zero_unique);
    tcase_add_test(tc, free_null);
    tcase_add_test(tc, free_preserves_errno);
    suite_add_tcase(s, tc);

    tc = new_tcase("limits");
    tcase_add_test(tc, huge_malloc);
    tcase_add_test(tc, huge_calloc);
    tcase_add_test(tc, calloc_overflow);
    tcase_add_test(tc, huge_realloc_null);
    tcase_add_test(tc, huge_reallocarray_null);
    tcase_add_test(tc, reallocarray_overflow);
    tcase_add_test(tc, huge_aligned_alloc);
    tcase_add_test(tc, huge_memalign);
    tcase_add_test(tc, huge_valloc_pvalloc);
    suite_add_tcase(s, tc);

    tc = new_tcase("alignment");
    tcase_add_test(tc, posix_memalign_einval);
    tcase_add_test(tc, posix_memalign_enomem);
    tcase_add_test(tc, posix_memalign_alignments);
    tcase_add_test(tc, aligned_size_zero);
    tcase_add_test(tc, aligned_alloc_alignments);
    tcase_add_test(tc, aligned_alloc_bad_alignment);
    tcase_add_test(tc, memalign_alignments);
    tcase_add_test(tc, valloc_pvalloc);
    tcase_add_test(tc, malloc_alignment);
    suite_add_tcase(s, tc);

    tc = new_tcase("realloc");
    tcase_add_test(tc, realloc_null_is_malloc);
    tcase_add_test(tc, realloc_zero);
    tcase_add_test(tc, realloc_small_steps);
    tcase_add_test(tc, realloc_across_tiers);
    tcase_add_test(tc, realloc_aligned_blocks);
    tcase_add_test(tc, realloc_failure_keeps_block);
    suite_add_tcase(s, tc);

    tc = new_tcase("contents");
    tcase_add_test(tc, calloc_zero_on_reuse);
    tcase_add_test(tc, usable_size);
    suite_add_tcase(s, tc);

    tc = new_tcase("introspection");
    tcase_add_test(tc, malloc_trim_keeps_live_blocks);
    tcase_add_test(tc, mallinfo2_tracks_usage);
    tcase_add_test(tc, mallinfo_tracks_usage);
    tcase_add_test(tc, malloc_stats_prints);
    suite_add_tcase(s, tc);

    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(api_edge_suite());

    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
