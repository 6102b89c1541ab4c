/*
 * larson.c - the Larson server benchmark (Larson & Krishnan 1998), written
 * from scratch for hakmem.
 *
 * Models a long-running server: every worker slot owns an array of live
 * blocks, repeatedly frees a random one and allocates a replacement, and
 * after each generation of rounds hands the array to a freshly created
 * thread.  The successor therefore frees blocks that another (by then dead)
 * thread allocated, which is exactly the cross-thread free and thread-exit
 * pattern that breaks per-thread caches in allocators.
 *
 *   larson sleep_seconds min_size max_size chunks_per_thread rounds seed threads
 *
 * Prints exactly one line on stdout:
 *   Throughput = N operations per second
 *
 * Operation counting: one operation is one free+malloc pair (the victim is
 * freed and its replacement allocated), as in the classic benchmark, which
 * reports allocations per second.  Multiply by two for "calls per second".
 *
 * Thread hand-off and joining: the main thread creates generation 0 of each
 * slot.  A worker that finishes its rounds while the run is still going
 * stores its own pthread_t in the slot and creates the next generation; the
 * first thing the new thread does is pthread_join() its predecessor.  A
 * worker that sees the stop flag instead becomes the last of its chain: it
 * records its pthread_t in the slot and tells the main thread, which joins
 * it.  So every thread is joined exactly once (by its child, or by main for
 * the last one), and at most two threads per slot exist at any moment.
 */

#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Bounds that keep the index/size arithmetic in 32 bits and the block
 * arrays of a sane size; far beyond any meaningful benchmark setting. */
#define MAX_THREADS 4096u
#define MAX_CHUNKS (1u << 24)
#define MAX_BLOCK_SIZE (1u << 30)
#define MAX_SLEEP_SECONDS 1e6

/* Bytes of tag written at each end of a block.  Enough to touch the first
 * and last cache line and to notice a neighbour overrunning into us, cheap
 * enough not to turn the benchmark into a memset benchmark. */
#define TAG_BYTES 8u

struct slot {
    unsigned id;
    void **blocks;
    uint32_t *sizes;     /* sizes[i] is needed to find and verify the tail tag */
    uint64_t rng;        /* carried across generations so a run is reproducible */
    uint64_t ops;        /* accumulated over all generations of this slot */
    unsigned generations;
    pthread_t prev;      /* predecessor the next generation must join */
    bool has_prev;
    pthread_t last;      /* final thread of the chain, joined by main */
};

static struct {
    uint32_t min_size;
    uint32_t size_span;  /* max_size - min_size + 1 */
    uint32_t chunks;
    uint64_t rounds;
} cfg;

/* Carries no data, only "please stop": relaxed is enough on both sides.  The
 * slot contents reach main through pthread_join and done_mu instead. */
static atomic_bool stop_flag;
/* Set by a worker whose pthread_create failed; read by main after all chains
 * have reported in through done_mu, so relaxed suffices here too. */
static atomic_bool create_failed;

static pthread_mutex_t done_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cv = PTHREAD_COND_INITIALIZER;
static unsigned chains_done;

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* xorshift64*: a few cycles per number, so the PRNG stays out of the
 * measurement; its weak low bits are never used (see below). */
static inline uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* Lemire's multiply-shift on the high 32 bits: avoids a division per call. */
static inline uint32_t rng_below(uint64_t *s, uint32_t n)
{
    return (uint32_t)(((rng_next(s) >> 32) * (uint64_t)n) >> 32);
}

static inline uint32_t random_size(uint64_t *s)
{
    return cfg.min_size + rng_below(s, cfg.size_span);
}

/* Byte i of a block of `size` bytes.  Depends on the absolute offset so the
 * head and tail tags agree where they overlap in blocks shorter than
 * 2*TAG_BYTES, and on the size so a block handed back twice or swapped with
 * another of a different size is noticed. */
static inline uint8_t tag_byte(uint32_t size, uint32_t i)
{
    uint64_t h = ((uint64_t)size * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)i * 0xD6E8FEB86659FD93ull);
    return (uint8_t)(h >> 56) ^ (uint8_t)i;
}

static void write_tags(unsigned char *p, uint32_t size)
{
    uint32_t n = size < TAG_BYTES ? size : TAG_BYTES;
    for (uint32_t i = 0; i < n; i++)
        p[i] = tag_byte(size, i);
    for (uint32_t i = size - n; i < size; i++)
        p[i] = tag_byte(size, i);
}

static void check_tags(const unsigned char *p, uint32_t size, unsigned slot, uint32_t index)
{
    uint32_t n = size < TAG_BYTES ? size : TAG_BYTES;
    for (uint32_t k = 0; k < 2 * n; k++) {
        uint32_t i = k < n ? k : size - 2 * n + k;
        if (p[i] != tag_byte(size, i)) {
            fprintf(stderr,
                    "larson: heap corruption: slot %u block %" PRIu32 " at %p (size %" PRIu32
                    "): byte %" PRIu32 " is 0x%02x, expected 0x%02x\n",
                    slot, index, (const void *)p, size, i, p[i], tag_byte(size, i));
            abort();
        }
    }
}

static void *alloc_block(uint32_t size)
{
    void *p = malloc(size);
    if (p == NULL) {
        /* Exiting from a worker while others run is abrupt, but a NULL for a
         * small request means the allocator under test is broken and every
         * number after this point would be meaningless. */
        fprintf(stderr, "larson: malloc(%" PRIu32 ") failed: %s\n", size, strerror(errno));
        _Exit(1);
    }
    write_tags(p, size);
    return p;
}

static void finish_chain(struct slot *s)
{
    pthread_mutex_lock(&done_mu);
    s->last = pthread_self();
    chains_done++;
    pthread_cond_signal(&done_cv);
    pthread_mutex_unlock(&done_mu);
}

static void *worker(void *arg)
{
    struct slot *s = arg;

    if (s->has_prev) {
        int rc = pthread_join(s->prev, NULL);
        if (rc != 0) {
            fprintf(stderr, "larson: pthread_join (slot %u): %s\n", s->id, strerror(rc));
            _Exit(1);
        }
    }
    s->generations++;

    /* Locals rather than slot fields in the hot loop: the compiler cannot
     * keep s->rng in a register across malloc/free calls. */
    uint64_t rng = s->rng;
    uint64_t ops = 0;
    void **blocks = s->blocks;
    uint32_t *sizes = s->sizes;

    /* At least one round per generation, then stop as soon as asked: keeps
     * sleep_seconds = 0 meaningful and bounds the drain after the stop. */
    for (uint64_t r = 0; r < cfg.rounds; r++) {
        for (uint32_t k = 0; k < cfg.chunks; k++) {
            uint32_t victim = rng_below(&rng, cfg.chunks);
            check_tags(blocks[victim], sizes[victim], s->id, victim);
            free(blocks[victim]);
            uint32_t size = random_size(&rng);
            blocks[victim] = alloc_block(size);
            sizes[victim] = size;
        }
        ops += cfg.chunks;
        if (atomic_load_explicit(&stop_flag, memory_order_relaxed))
            break;
    }

    s->rng = rng;
    s->ops += ops;

    if (!atomic_load_explicit(&stop_flag, memory_order_relaxed)) {
        pthread_t next;
        s->prev = pthread_self();
        s->has_prev = true;
        /* After a successful create the slot belongs to the successor; this
         * thread must not touch it again. */
        int rc = pthread_create(&next, NULL, worker, s);
        if (rc == 0)
            return NULL;
        fprintf(stderr, "larson: pthread_create (slot %u, generation %u): %s\n", s->id,
                s->generations + 1, strerror(rc));
        s->has_prev = false;
        atomic_store_explicit(&create_failed, true, memory_order_relaxed);
        atomic_store_explicit(&stop_flag, true, memory_order_relaxed);
    }
    finish_chain(s);
    return NULL;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void sleep_seconds(double sec)
{
    struct timespec req;
    req.tv_sec = (time_t)sec;
    req.tv_nsec = (long)((sec - (double)req.tv_sec) * 1e9);
    if (req.tv_nsec > 999999999L)
        req.tv_nsec = 999999999L;
    while (nanosleep(&req, &req) != 0 && errno == EINTR)
        ;
}

static void usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s sleep_seconds min_size max_size chunks_per_thread rounds seed threads\n"
            "  sleep_seconds      run length, >= 0 (may be fractional)\n"
            "  min_size max_size  block sizes in bytes, 1 <= min_size <= max_size <= %u\n"
            "  chunks_per_thread  live blocks per worker slot, 1..%u\n"
            "  rounds             rounds per thread generation (chunks_per_thread ops each), >= 1\n"
            "  seed               PRNG seed, unsigned integer\n"
            "  threads            worker slots, 1..%u\n",
            argv0, MAX_BLOCK_SIZE, MAX_CHUNKS, MAX_THREADS);
    exit(2);
}

static bool parse_u64(const char *str, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end;
    if (*str == '\0' || *str == '-' || *str == '+')
        return false;
    errno = 0;
    unsigned long long v = strtoull(str, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static bool parse_seconds(const char *str, double *out)
{
    char *end;
    if (*str == '\0' || *str == '-')
        return false;
    errno = 0;
    double v = strtod(str, &end);
    if (errno != 0 || *end != '\0' || !isfinite(v) || v < 0.0 || v > MAX_SLEEP_SECONDS)
        return false;
    *out = v;
    return true;
}

int main(int argc, char **argv)
{
    double run_seconds;
    uint64_t min_size, max_size, chunks, rounds, seed, nthreads;

    if (argc != 8)
        usage(argv[0]);
    if (!parse_seconds(argv[1], &run_seconds)) {
        fprintf(stderr, "larson: bad sleep_seconds '%s'\n", argv[1]);
        usage(argv[0]);
    }
    if (!parse_u64(argv[2], 1, MAX_BLOCK_SIZE, &min_size)) {
        fprintf(stderr, "larson: bad min_size '%s'\n", argv[2]);
        usage(argv[0]);
    }
    if (!parse_u64(argv[3], 1, MAX_BLOCK_SIZE, &max_size) || max_size < min_size) {
        fprintf(stderr, "larson: bad max_size '%s' (must be >= min_size)\n", argv[3]);
        usage(argv[0]);
    }
    if (!parse_u64(argv[4], 1, MAX_CHUNKS, &chunks)) {
        fprintf(stderr, "larson: bad chunks_per_thread '%s'\n", argv[4]);
        usage(argv[0]);
    }
    if (!parse_u64(argv[5], 1, UINT64_MAX, &rounds)) {
        fprintf(stderr, "larson: bad rounds '%s'\n", argv[5]);
        usage(argv[0]);
    }
    if (!parse_u64(argv[6], 0, UINT64_MAX, &seed)) {
        fprintf(stderr, "larson: bad seed '%s'\n", argv[6]);
        usage(argv[0]);
    }
    if (!parse_u64(argv[7], 1, MAX_THREADS, &nthreads)) {
        fprintf(stderr, "larson: bad threads '%s'\n", argv[7]);
        usage(argv[0]);
    }

    cfg.min_size = (uint32_t)min_size;
    cfg.size_span = (uint32_t)(max_size - min_size + 1);
    cfg.chunks = (uint32_t)chunks;
    cfg.rounds = rounds;
    unsigned n = (unsigned)nthreads;

    struct slot *slots = calloc(n, sizeof *slots);
    if (slots == NULL) {
        fprintf(stderr, "larson: out of memory for %u slots\n", n);
        return 1;
    }

    /* The warm-up allocation happens on the main thread, so even generation
     * 0 of every worker frees memory it did not allocate. */
    for (unsigned i = 0; i < n; i++) {
        struct slot *s = &slots[i];
        uint64_t sm = seed ^ ((uint64_t)i * 0xA0761D6478BD642Full);
        s->id = i;
        s->rng = splitmix64(&sm);
        if (s->rng == 0) /* the one state xorshift never leaves */
            s->rng = 0x9E3779B97F4A7C15ull;
        s->blocks = malloc(chunks * sizeof *s->blocks);
        s->sizes = malloc(chunks * sizeof *s->sizes);
        if (s->blocks == NULL || s->sizes == NULL) {
            fprintf(stderr, "larson: out of memory for block arrays\n");
            return 1;
        }
        for (uint32_t k = 0; k < cfg.chunks; k++) {
            uint32_t size = random_size(&s->rng);
            s->blocks[k] = alloc_block(size);
            s->sizes[k] = size;
        }
    }

    double start = now_seconds();
    unsigned started = 0;
    for (; started < n; started++) {
        pthread_t t;
        int rc = pthread_create(&t, NULL, worker, &slots[started]);
        if (rc != 0) {
            fprintf(stderr, "larson: pthread_create (slot %u): %s\n", started, strerror(rc));
            atomic_store_explicit(&create_failed, true, memory_order_relaxed);
            break;
        }
    }

    if (started == n)
        sleep_seconds(run_seconds);
    atomic_store_explicit(&stop_flag, true, memory_order_relaxed);

    pthread_mutex_lock(&done_mu);
    while (chains_done < started)
        pthread_cond_wait(&done_cv, &done_mu);
    pthread_mutex_unlock(&done_mu);
    /* Operations finished during the drain after the stop are counted, so
     * the interval must run until the last worker is done, not just until
     * the flag was raised. */
    double elapsed = now_seconds() - start;

    uint64_t total_ops = 0;
    for (unsigned i = 0; i < started; i++) {
        int rc = pthread_join(slots[i].last, NULL);
        if (rc != 0) {
            fprintf(stderr, "larson: pthread_join (slot %u): %s\n", i, strerror(rc));
            return 1;
        }
        total_ops += slots[i].ops;
    }

    for (unsigned i = 0; i < n; i++) {
        for (uint32_t k = 0; k < cfg.chunks; k++) {
            check_tags(slots[i].blocks[k], slots[i].sizes[k], i, k);
            free(slots[i].blocks[k]);
        }
        free(slots[i].blocks);
        free(slots[i].sizes);
    }
    free(slots);

    if (atomic_load_explicit(&create_failed, memory_order_relaxed)) {
        fprintf(stderr, "larson: aborted: could not create a worker thread\n");
        return 1;
    }

    if (elapsed < 1e-9)
        elapsed = 1e-9;
    printf("Throughput = %.0f operations per second\n", (double)total_ops / elapsed);
    return 0;
}
