/*
 * bench.h - helpers shared by hakmem's benchmark programs in bench/:
 * timing, a cheap PRNG, argument parsing, block tagging for corruption
 * checks, /proc/self/status readings and the one result line every program
 * prints.
 *
 * Every program prints exactly one line on stdout of the form
 *
 *   result: <name> time_s=<wall seconds> ops=<count> [<key>=<value> ...]
 *
 * where time_s covers the measured part of the run (set-up such as parsing
 * arguments is outside), ops is what the program counts as one operation
 * (documented in each program's banner) and the optional key=value pairs
 * are extra figures (thread count, RSS, ...).  bench/compare and
 * tests/bench-smoke.sh parse this line and nothing else.
 *
 * Corruption is reported on stderr and the program exits with status 3, so a
 * runner can tell "the allocator handed out bad memory" (3) from "bad
 * arguments" (2) and "out of memory / could not create a thread" (1).
 *
 * Everything is static inline: each program is a single translation unit and
 * the header must not pull anything into a program that does not use it.
 */
#ifndef HAKMEM_BENCH_H
#define HAKMEM_BENCH_H

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BENCH_EXIT_USAGE 2
#define BENCH_EXIT_CORRUPT 3

/* The program name used in messages and in the result line; each program
 * sets it first thing in main(). */
static const char *bench_name = "bench";

/* ------------------------------------------------------------------------ */
/* Time */

/* CLOCK_MONOTONIC: wall time is what a user waits for, and it must not jump
 * when NTP adjusts the clock in the middle of a run. */
static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ------------------------------------------------------------------------ */
/* Failure reporting */

static inline void bench_die(int status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));

static inline void bench_die(int status, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s: ", bench_name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    /* _Exit, not exit: after corruption the heap cannot be trusted to run
     * atexit handlers or flush through malloc'ed stdio buffers, and from a
     * worker thread exit() would race with the others. stderr is
     * unbuffered, so the message is already out. */
    _Exit(status);
}

#define bench_corrupt(...) bench_die(BENCH_EXIT_CORRUPT, "heap corruption: " __VA_ARGS__)

/* malloc that treats NULL as fatal: a benchmark cannot go on without its
 * memory, and a NULL for a modest request means the allocator is broken. */
static inline void *bench_malloc(size_t n)
{
    void *p = malloc(n);
    if (p == NULL)
        bench_die(1, "malloc(%zu) failed: %s", n, strerror(errno));
    return p;
}

static inline void bench_thread_create(pthread_t *t, void *(*fn)(void *), void *arg)
{
    int rc = pthread_create(t, NULL, fn, arg);
    if (rc != 0)
        bench_die(1, "pthread_create: %s", strerror(rc));
}

static inline void bench_thread_join(pthread_t t)
{
    int rc = pthread_join(t, NULL);
    if (rc != 0)
        bench_die(1, "pthread_join: %s", strerror(rc));
}

/* ------------------------------------------------------------------------ */
/* Arguments */

/* Positional argument idx (1-based) as an unsigned number in [min, max], or
 * def when it is absent.  Positional and all-optional, so a smoke run is
 * "prog 2 1000" and a full run is just "prog". */
static inline uint64_t bench_arg(int argc, char **argv, int idx, const char *what,
                                 uint64_t def, uint64_t min, uint64_t max)
{
    if (idx >= argc)
        return def;
    const char *s = argv[idx];
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s == '\0' || *s == '-' || *end != '\0' || errno != 0 || v < min || v > max)
        bench_die(BENCH_EXIT_USAGE, "%s must be a whole number in [%" PRIu64 ", %" PRIu64
                  "], got '%s'", what, min, max, s);
    return (uint64_t)v;
}

/* ------------------------------------------------------------------------ */
/* Random numbers */

/* splitmix64's finaliser: used both to seed and to hash addresses into
 * tags, where neighbouring inputs must give unrelated outputs. */
static inline uint64_t bench_mix(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* xorshift64*: a handful of instructions, so the generator stays out of
 * the measurement.  State must be non-zero; bench_rng_seed sees to that. */
static inline uint64_t bench_rng_seed(uint64_t seed)
{
    uint64_t s = bench_mix(seed);
    return s ? s : 1;
}

static inline uint64_t bench_rand(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* Uniform in [0, n) for n < 2^32 by multiply-shift of the high bits (the
 * low bits of xorshift* are the weak ones), with no division. */
static inline uint32_t bench_below(uint64_t *s, uint32_t n)
{
    return (uint32_t)(((bench_rand(s) >> 32) * (uint64_t)n) >> 32);
}

/* Uniform in [lo, hi]. */
static inline size_t bench_range(uint64_t *s, size_t lo, size_t hi)
{
    return lo + bench_below(s, (uint32_t)(hi - lo + 1));
}

/* Log-uniform in [lo, hi] (lo >= 1): every power of two gets the same share
 * of requests, which is roughly how real programs spread their sizes, and
 * keeps a 64 KiB upper bound from drowning the small classes. */
static inline size_t bench_logsize(uint64_t *s, size_t lo, size_t hi)
{
    unsigned lo_bit = 63 - (unsigned)__builtin_clzll(lo);
    unsigned hi_bit = 63 - (unsigned)__builtin_clzll(hi);
    unsigned bit = lo_bit + bench_below(s, hi_bit - lo_bit + 1);
    size_t base = (size_t)1 << bit;
    size_t n = base + (bench_rand(s) >> 11) % base; /* uniform in [2^bit, 2^(bit+1)) */
    if (n < lo)
        n = lo;
    if (n > hi)
        n = hi;
    return n;
}

/* ------------------------------------------------------------------------ */
/* Block tags */

/*
 * A tagged block describes itself, so whoever frees it (another thread, a
 * later phase) can check it without side tables:
 *   bytes 0..7       head: size in the low 32 bits, a 32-bit hash of
 *                    (address, size) in the high 32 bits
 *   last 8 bytes     tail: a 64-bit hash of (address, size) (blocks >= 16)
 * Hashing the address in means two live blocks that wrongly overlap, or a
 * block handed out twice, carry conflicting tags.  Only the first and last
 * words are touched: cheap, and they are where a neighbour's overrun or a
 * free-list pointer written into a live block would land.
 * Blocks must be at least 8 bytes.
 */
static inline uint64_t bench_tag_hash(const void *p, size_t n)
{
    return bench_mix((uint64_t)(uintptr_t)p * 31 + n);
}

static inline void bench_tag(void *p, size_t n)
{
    uint64_t h = bench_tag_hash(p, n);
    uint64_t head = (uint64_t)(uint32_t)n | (h & 0xFFFFFFFF00000000ull);
    memcpy(p, &head, 8);
    if (n >= 16) {
        uint64_t tail = ~h;
        memcpy((char *)p + n - 8, &tail, 8);
    }
}

/* Returns the block's size, or dies if the tags are wrong. */
static inline size_t bench_tag_check(const void *p, const char *where)
{
    uint64_t head, tail;
    memcpy(&head, p, 8);
    size_t n = (uint32_t)head;
    if (n < 8)
        bench_corrupt("%s: block %p: head word 0x%016" PRIx64 " holds no valid size", where, p,
                      head);
    uint64_t h = bench_tag_hash(p, n);
    if ((head & 0xFFFFFFFF00000000ull) != (h & 0xFFFFFFFF00000000ull))
        bench_corrupt("%s: block %p: head word 0x%016" PRIx64 " was overwritten", where, p, head);
    if (n >= 16) {
        memcpy(&tail, (const char *)p + n - 8, 8);
        if (tail != ~h)
            bench_corrupt("%s: block %p (%zu bytes): tail word 0x%016" PRIx64
                          " was overwritten", where, p, n, tail);
    }
    return n;
}

/* Same check, also insisting on the size the caller remembers. */
static inline void bench_tag_check_size(const void *p, size_t n, const char *where)
{
    size_t got = bench_tag_check(p, where);
    if (got != n)
        bench_corrupt("%s: block %p: tagged as %zu bytes, allocated as %zu", where, p, got, n);
}

/* ------------------------------------------------------------------------ */
/* Memory figures */

/* A "Key:   123 kB" field of /proc/self/status in KiB, or 0 if absent
 * (no /proc): the benchmark still runs, the figure is just missing. */
static inline uint64_t bench_status_kb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    size_t klen = strlen(key);
    uint64_t v = 0;

    if (f == NULL)
        return 0;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
            v = strtoull(line + klen + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

/* Keeps the compiler from proving a block unused and deleting the
 * malloc/free pair around it (GCC does this for non-escaping blocks). */
static inline void bench_escape(void *p)
{
    __asm__ volatile("" : : "r"(p) : "memory");
}

/* ------------------------------------------------------------------------ */
/* The result line */

static inline void bench_result(double time_s, uint64_t ops, const char *extra_fmt, ...)
    __attribute__((format(printf, 3, 4)));

static inline void bench_result(double time_s, uint64_t ops, const char *extra_fmt, ...)
{
    printf("result: %s time_s=%.6f ops=%" PRIu64, bench_name, time_s, ops);
    if (extra_fmt != NULL && extra_fmt[0] != '\0') {
        va_list ap;
        putchar(' ');
        va_start(ap, extra_fmt);
        vprintf(extra_fmt, ap);
        va_end(ap);
    }
    putchar('\n');
    if (fflush(stdout) != 0)
        bench_die(1, "writing the result: %s", strerror(errno));
}

#endif /* HAKMEM_BENCH_H */
