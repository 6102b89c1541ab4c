/* sanitize_stress.c: the multi-threaded stress driver of
 * `make check-sanitizers`, linked with the allocator built under internal
 * names (-DHK_INTERNAL_NAMES: hk_api_malloc, ...) and a sanitizer.
 *
 * Why a driver of its own: the sanitizers see hakmem only while it runs,
 * so the driver has to push it through every path where threads meet --
 * frees of blocks another thread allocated (remote lists), slabs whose
 * owner exited with blocks still out (abandoned, stuck, adopted),
 * malloc_trim racing with all of that -- and check after every step that
 * no block lost its contents, which the sanitizers cannot see since hakmem
 * is not their malloc.
 *
 * Shape: `threads` lanes; each lane runs `generations` worker threads one
 * after another, each doing `ops` random operations: allocations of random
 * sizes across the tiny (<= 1 KiB), medium (<= 256 KiB) and large tiers,
 * plain, zeroed (calloc) or aligned (posix_memalign, aligned_alloc,
 * memalign, valloc); frees; reallocs; hand-offs of blocks to other lanes
 * through mutex-protected queues, where whichever thread takes them
 * verifies, sometimes reallocs, and frees them. A worker hands every block
 * it still holds to other lanes and exits, so its slabs are abandoned with
 * live blocks that other threads free later; the lane then starts its next
 * generation while the other lanes go on. At the end the main thread frees
 * whatever is left in the queues and checks that every allocation was
 * freed exactly once.
 *
 * Every block carries the pattern of hk_pattern.h over its requested size;
 * it is checked, along with alignment and malloc_usable_size, whenever a
 * block changes hands, is reallocated or freed. Any mismatch prints the
 * block's history and aborts. Usage:
 *   sanitize_stress [-t threads] [-g generations] [-n ops] [-s seed] [-S n]
 * -S n: each worker also calls hakmem_stats_get, mallinfo2 and
 * hakmem_stats_print about every n operations, as a program reporting its
 * memory use from any thread would (off by default: run-sanitizers.sh
 * gives it a run of its own, so its reports stay apart from the rest).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hakmem.h"
#include "hk_pattern.h"
#include "api/api.h"

#ifndef HK_INTERNAL_NAMES
#error "sanitize_stress needs internal names: build with -DHK_INTERNAL_NAMES"
#endif

/* The statistics calls under internal names (api/api.h lists only the
 * malloc API). */
void hk_api_hakmem_stats_print(int fd);
int hk_api_hakmem_stats_get(struct hakmem_stats *stats, size_t size);
struct mallinfo2 hk_api_mallinfo2(void);

#define OWN_CAP 128    /* blocks a worker holds on to */
#define QUEUE_CAP 1024 /* blocks waiting in one lane's inbox */
#define MAX_LANES 64
#define KIB ((size_t)1024)
#define MIB (KIB * KIB)
/* Requested bytes live at once, beyond which workers make no large blocks:
 * the queues could otherwise pile up gigabytes of them. */
#define LIVE_BUDGET (192 * MIB)

struct blk {
  unsigned char *p;
  size_t size;     /* bytes requested; the pattern covers these */
  size_t align;    /* alignment asked for; 1 when none was */
  uint32_t seed;   /* pattern seed */
  uint32_t origin; /* lane << 16 | generation of the allocating thread */
  const char *how; /* the call that made it, for reports */
};

struct queue {
  pthread_mutex_t lock;
  struct blk items[QUEUE_CAP];
  size_t head, count;
};

struct worker {
  unsigned lane, gen;
  uint32_t origin;
  uint64_t rng;
  pthread_t tid;
  size_t n_own;
  struct blk own[OWN_CAP];
};

static struct {
  unsigned threads, generations;
  unsigned long ops;
  uint64_t seed;
  unsigned long stats_every; /* -S: statistics calls every ~n ops, 0 never */
} cfg = {4, 6, 20000, 1, 0};

static struct queue *queues; /* one inbox per lane */
static int stats_fd;         /* /dev/null, for hakmem_stats_print */

/* Workers tell the main thread they are done through this list; a lane
 * has one worker at a time, so it never holds more than MAX_LANES. */
static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cond = PTHREAD_COND_INITIALIZER;
static struct worker *done_list[MAX_LANES];
static unsigned done_count;

/* Totals for the summary and the final accounting. */
static _Atomic uint64_t n_allocs, n_frees, n_cross_frees, n_reallocs,
    n_remote_reallocs, n_aligned, n_callocs, n_large, n_trims, n_handoffs,
    n_bursts, n_stats, bytes_checked;
static _Atomic size_t live_bytes;
static _Atomic uint32_t next_seed;

// ---------------------------------------------------------------------------
// Randomness: splitmix64, one state per worker, so a run is reproducible
// from its seed as far as thread interleaving allows.

static uint64_t next_rand(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15u);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

static uint64_t below(uint64_t *s, uint64_t n) { return next_rand(s) % n; }

/* Log-uniform in [lo, hi]: each power of two as likely as the next, so the
 * small end of a tier is exercised as much as the large one. */
static size_t log_uniform(uint64_t *s, size_t lo, size_t hi) {
  unsigned lo_bit = 63u - (unsigned)__builtin_clzll(lo);
  unsigned hi_bit = 63u - (unsigned)__builtin_clzll(hi);
  unsigned e = lo_bit + (unsigned)below(s, hi_bit - lo_bit + 1);
  size_t v = ((size_t)1 << e) + (size_t)below(s, (size_t)1 << e);
  return v < lo ? lo : v > hi ? hi : v;
}

// ---------------------------------------------------------------------------
// Reports. Failures print one line and abort: the sanitizer runtimes then
// add the stack. Output errors are ignored: there is nothing better to do
// with them in a test driver about to stop.

static void say(FILE *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void say(FILE *f, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  (void)vfprintf(f, fmt, ap);
  va_end(ap);
  (void)fflush(f);
}

static _Noreturn void fatal(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static _Noreturn void fatal(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  (void)fputs("sanitize_stress: FAIL: ", stderr);
  (void)vfprintf(stderr, fmt, ap);
  (void)fputc('\n', stderr);
  va_end(ap);
  abort();
}

// ---------------------------------------------------------------------------
// Checking blocks

static _Noreturn void die(const struct blk *b, const char *what,
                          size_t offset) {
  char detail[96] = "";
  if (offset != SIZE_MAX)
    (void)snprintf(detail, sizeof detail,
                   ", byte %zu is 0x%02x, expected 0x%02x", offset,
                   b->p[offset], hkp_expected(offset, b->seed));
  fatal("%s: block %p from %s, size %zu, align %zu, allocated by lane %u "
        "generation %u%s",
        what, (void *)b->p, b->how, b->size, b->align,
        (unsigned)(b->origin >> 16), (unsigned)(b->origin & 0xffff), detail);
}

/* Alignment (the requested one, and 16 for every block of 16 bytes or
 * more, as malloc promises) and usable size; returns the usable size. */
static size_t check_shape(const struct blk *b) {
  if (((uintptr_t)b->p & (b->align - 1)) != 0)
    die(b, "misaligned", SIZE_MAX);
  if (b->size >= 16 && ((uintptr_t)b->p & 15) != 0)
    die(b, "not 16-byte aligned", SIZE_MAX);
  size_t usable = hk_api_malloc_usable_size(b->p);
  if (usable < b->size)
    die(b, "malloc_usable_size below the requested size", SIZE_MAX);
  return usable;
}

static void check(const struct blk *b) {
  check_shape(b);
  size_t bad = hkp_check(b->p, 0, b->size, b->seed);
  if (bad != SIZE_MAX)
    die(b, "contents changed", bad);
  atomic_fetch_add_explicit(&bytes_checked, b->size, memory_order_relaxed);
}

/* A fresh block: checked for alignment, scribbled over in the slack the
 * allocator says is usable (so a lie there shows up as another block's
 * corruption), then filled with its pattern. */
static void adopt_new(struct blk *b, struct worker *w) {
  b->origin = w->origin;
  b->seed = 0;
  size_t usable = check_shape(b);
  size_t slack = usable - b->size;
  memset(b->p + b->size, 0xa5, slack < 64 ? slack : 64);
  if (slack > 64)
    b->p[usable - 1] = 0x5a;
  b->seed = atomic_fetch_add_explicit(&next_seed, 7919, memory_order_relaxed);
  hkp_fill(b->p, 0, b->size, b->seed);
  atomic_fetch_add_explicit(&n_allocs, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&live_bytes, b->size, memory_order_relaxed);
  if (b->size > 256 * KIB || b->align > 4 * KIB)
    atomic_fetch_add_explicit(&n_large, 1, memory_order_relaxed);
}

static void release(struct blk *b, uint32_t by) {
  check(b);
  hk_api_free(b->p);
  atomic_fetch_add_explicit(&n_frees, 1, memory_order_relaxed);
  atomic_fetch_sub_explicit(&live_bytes, b->size, memory_order_relaxed);
  if (b->origin != by)
    atomic_fetch_add_explicit(&n_cross_frees, 1, memory_order_relaxed);
  b->p = NULL;
}

// ---------------------------------------------------------------------------
// Making blocks

static size_t pick_size(uint64_t *rng) {
  uint64_t r = below(rng, 1000);
  if (r < 5)
    return 0;
  if (r < 350)
    return 1 + (size_t)below(rng, 128);
  if (r < 850)
    return 1 + (size_t)below(rng, 1024);
  /* Medium and large blocks are rarer, as in programs, and because filling
   * and checking them is what a sanitizer run spends its time on. */
  if (r < 995 ||
      atomic_load_explicit(&live_bytes, memory_order_relaxed) > LIVE_BUDGET)
    return log_uniform(rng, 1025, 256 * KIB);
  return log_uniform(rng, 256 * KIB + 1, 4 * MIB);
}

/* errno as a number: strerror is not thread-safe. */
static _Noreturn void out_of_memory(const char *how, size_t size,
                                    size_t align) {
  fatal("%s(size %zu, align %zu) failed: errno %d", how, size, align, errno);
}

static void make_plain(struct worker *w, struct blk *b) {
  b->size = pick_size(&w->rng);
  b->align = 1;
  b->how = "malloc";
  b->p = hk_api_malloc(b->size);
  if (!b->p)
    out_of_memory(b->how, b->size, 1);
  adopt_new(b, w);
}

static void make_zeroed(struct worker *w, struct blk *b) {
  size_t size = pick_size(&w->rng);
  /* Split into n * m when possible, so calloc's multiplication is real. */
  size_t n = size >= 16 && size % 16 == 0 ? 16 : 1;
  b->size = size;
  b->align = 1;
  b->how = "calloc";
  b->p = hk_api_calloc(n, size / n);
  if (!b->p)
    out_of_memory(b->how, size, 1);
  size_t bad = hkp_check_zero(b->p, size);
  if (bad != SIZE_MAX)
    fatal("calloc(%zu, %zu) = %p: byte %zu is 0x%02x, not zero", n, size / n,
          (void *)b->p, bad, b->p[bad]);
  atomic_fetch_add_explicit(&n_callocs, 1, memory_order_relaxed);
  adopt_new(b, w);
}

static void make_aligned(struct worker *w, struct blk *b) {
  size_t align = below(&w->rng, 10) != 0
                     ? (size_t)1 << (3 + below(&w->rng, 10))  /* 8 .. 4K */
                     : (size_t)1 << (13 + below(&w->rng, 8)); /* 8K .. 1M */
  b->size = pick_size(&w->rng);
  b->align = align;
  switch (below(&w->rng, 4)) {
  case 0: {
    b->how = "posix_memalign";
    void *p = NULL;
    int rc = hk_api_posix_memalign(&p, align, b->size);
    if (rc != 0) {
      errno = rc;
      out_of_memory(b->how, b->size, align);
    }
    b->p = p;
    break;
  }
  case 1:
    b->how = "aligned_alloc";
    b->p = hk_api_aligned_alloc(align, b->size);
    break;
  case 2:
    b->how = "memalign";
    b->p = hk_api_memalign(align, b->size);
    break;
  default:
    b->how = "valloc";
    b->align = 4096;
    b->p = hk_api_valloc(b->size);
    break;
  }
  if (!b->p)
    out_of_memory(b->how, b->size, b->align);
  atomic_fetch_add_explicit(&n_aligned, 1, memory_order_relaxed);
  adopt_new(b, w);
}

/* Resizes the block in place in the record: the first min(old, new) bytes
 * must survive wherever the block went, the rest gets the pattern. */
static void resize(struct worker *w, struct blk *b, uint32_t by) {
  check(b);
  size_t old = b->size;
  size_t size = pick_size(&w->rng);
  if (size == 0)
    size = 1; /* realloc(p, 0) frees; that is not what we test here */
  unsigned char *q = hk_api_realloc(b->p, size);
  if (!q)
    out_of_memory("realloc", size, 16);
  if (size >= 16 && ((uintptr_t)q & 15) != 0)
    die(b, "realloc result not 16-byte aligned", SIZE_MAX);
  struct blk moved = *b;
  moved.p = q;
  moved.size = old < size ? old : size;
  size_t bad = hkp_check(q, 0, moved.size, b->seed);
  if (bad != SIZE_MAX)
    die(&moved, "realloc lost contents", bad);
  if (hk_api_malloc_usable_size(q) < size)
    die(&moved, "malloc_usable_size below the realloc size", SIZE_MAX);
  hkp_fill(q, moved.size, size, b->seed);
  atomic_fetch_add_explicit(&live_bytes, size, memory_order_relaxed);
  atomic_fetch_sub_explicit(&live_bytes, old, memory_order_relaxed);
  b->p = q;
  b->size = size;
  /* realloc may return an aligned block at another address: it only
   * promises malloc's alignment from now on. */
  b->align = 1;
  b->how = "realloc";
  /* The block now lives in the resizing thread's slabs unless it stayed. */
  b->origin = by;
  atomic_fetch_add_explicit(&n_reallocs, 1, memory_order_relaxed);
}

// ---------------------------------------------------------------------------
// Queues between lanes

static int queue_push(struct queue *q, const struct blk *b) {
  pthread_mutex_lock(&q->lock);
  int ok = q->count < QUEUE_CAP;
  if (ok) {
    q->items[(q->head + q->count) % QUEUE_CAP] = *b;
    q->count++;
  }
  pthread_mutex_unlock(&q->lock);
  return ok;
}

static int queue_pop(struct queue *q, struct blk *b) {
  pthread_mutex_lock(&q->lock);
  int ok = q->count > 0;
  if (ok) {
    *b = q->items[q->head];
    q->head = (q->head + 1) % QUEUE_CAP;
    q->count--;
  }
  pthread_mutex_unlock(&q->lock);
  return ok;
}

/* Gives the block to another lane (or, when alone, to this lane's next
 * generation); frees it here if that lane's inbox is full. */
static void hand_off(struct worker *w, struct blk *b) {
  unsigned to = w->lane;
  if (cfg.threads > 1)
    to =
        (w->lane + 1 + (unsigned)below(&w->rng, cfg.threads - 1)) % cfg.threads;
  check(b);
  if (queue_push(&queues[to], b))
    atomic_fetch_add_explicit(&n_handoffs, 1, memory_order_relaxed);
  else
    release(b, w->origin);
  b->p = NULL;
}

static void keep(struct worker *w, struct blk *b) {
  if (w->n_own == OWN_CAP) {
    /* Full hands: pass a random one on to make room. */
    size_t i = (size_t)below(&w->rng, OWN_CAP);
    hand_off(w, &w->own[i]);
    w->own[i] = *b;
    return;
  }
  w->own[w->n_own++] = *b;
}

static void drop_own(struct worker *w, size_t i) {
  w->own[i] = w->own[--w->n_own];
}

// ---------------------------------------------------------------------------
// Workers

/* Many blocks of one tiny class handed to one lane at once: fills whole
 * slabs, so that slabs go full, get abandoned full ("stuck") and come back
 * through a remote free. */
static void burst(struct worker *w) {
  static const size_t sizes[] = {256, 512, 768, 1024};
  size_t size = sizes[below(&w->rng, 4)];
  unsigned count = 64 + (unsigned)below(&w->rng, 256);
  for (unsigned i = 0; i < count; i++) {
    struct blk b = {.size = size, .align = 1, .how = "malloc (burst)"};
    b.p = hk_api_malloc(size);
    if (!b.p)
      out_of_memory(b.how, size, 1);
    adopt_new(&b, w);
    hand_off(w, &b);
  }
  atomic_fetch_add_explicit(&n_bursts, 1, memory_order_relaxed);
}

/* A program may ask for statistics at any time, from any thread: the
 * report walks every slab while their owners run on (-S). */
static void statistics(void) {
  struct hakmem_stats st;
  if (hk_api_hakmem_stats_get(&st, sizeof st) != 0)
    fatal("hakmem_stats_get failed");
  /* The counters move while we read them: only the call is tested. */
  (void)hk_api_mallinfo2();
  hk_api_hakmem_stats_print(stats_fd);
  atomic_fetch_add_explicit(&n_stats, 1, memory_order_relaxed);
}

static void *worker_main(void *arg) {
  struct worker *w = arg;
  struct blk b = {0};
  for (unsigned long op = 0; op < cfg.ops; op++) {
    uint64_t r = below(&w->rng, 1000);
    if (r < 300) {
      make_plain(w, &b);
      keep(w, &b);
    } else if (r < 340) {
      make_zeroed(w, &b);
      keep(w, &b);
    } else if (r < 420) {
      make_aligned(w, &b);
      keep(w, &b);
    } else if (r < 560) {
      if (w->n_own > 0) {
        size_t i = (size_t)below(&w->rng, w->n_own);
        release(&w->own[i], w->origin);
        drop_own(w, i);
      }
    } else if (r < 620) {
      if (w->n_own > 0)
        resize(w, &w->own[below(&w->rng, w->n_own)], w->origin);
    } else if (r < 720) {
      if (w->n_own > 0) {
        size_t i = (size_t)below(&w->rng, w->n_own);
        hand_off(w, &w->own[i]);
        drop_own(w, i);
      }
    } else if (r < 997) {
      /* Take a few blocks others handed us: free most, resize some (a
       * realloc of a block in another thread's slab) and keep those. */
      for (int k = 0; k < 4 && queue_pop(&queues[w->lane], &b); k++) {
        if (below(&w->rng, 8) == 0) {
          resize(w, &b, w->origin);
          atomic_fetch_add_explicit(&n_remote_reallocs, 1,
                                    memory_order_relaxed);
          keep(w, &b);
        } else {
          release(&b, w->origin);
        }
      }
    } else if (r < 999) {
      burst(w);
    } else {
      /* malloc_trim walks the abandoned slabs while their blocks are
       * being freed by other threads. */
      hk_api_malloc_trim(0);
      atomic_fetch_add_explicit(&n_trims, 1, memory_order_relaxed);
    }
    if (cfg.stats_every && below(&w->rng, cfg.stats_every) == 0)
      statistics();
  }
  /* Exit with every block still out: others free them after we are gone. */
  while (w->n_own > 0) {
    hand_off(w, &w->own[w->n_own - 1]);
    w->n_own--;
  }
  pthread_mutex_lock(&done_lock);
  done_list[done_count++] = w;
  pthread_cond_signal(&done_cond);
  pthread_mutex_unlock(&done_lock);
  return NULL;
}

/* Called by the main thread only; a failure to start one is fatal (the
 * lanes depend on each other's frees). */
static void start_worker(unsigned lane, unsigned gen) {
  struct worker *w = calloc(1, sizeof *w);
  if (!w)
    fatal("calloc of a worker failed");
  w->lane = lane;
  w->gen = gen;
  w->origin = (uint32_t)lane << 16 | gen;
  w->rng = cfg.seed ^ ((uint64_t)lane << 32) ^ ((uint64_t)gen << 48);
  int rc = pthread_create(&w->tid, NULL, worker_main, w);
  if (rc != 0)
    fatal("pthread_create: error %d", rc);
}

/* A number for option -opt into *out; 0 after saying what is wrong. */
static int parse_num(const char *s, char opt, unsigned long *out) {
  char *end;
  errno = 0;
  unsigned long v = strtoul(s, &end, 0);
  if (errno != 0 || *s == '\0' || *end != '\0') {
    say(stderr, "sanitize_stress: -%c: not a number: %s\n", opt, s);
    return 0;
  }
  *out = v;
  return 1;
}

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t total(_Atomic uint64_t *c) {
  return atomic_load_explicit(c, memory_order_relaxed);
}

int main(int argc, char **argv) {
  unsigned long threads = cfg.threads, generations = cfg.generations,
                seed = cfg.seed;
  /* "-t 4" pairs by hand: getopt's state is global, and the options are
   * few. */
  for (int i = 1; i < argc; i += 2) {
    const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
    int ok = 0;
    if (val && strcmp(opt, "-t") == 0)
      ok = parse_num(val, 't', &threads);
    else if (val && strcmp(opt, "-g") == 0)
      ok = parse_num(val, 'g', &generations);
    else if (val && strcmp(opt, "-n") == 0)
      ok = parse_num(val, 'n', &cfg.ops);
    else if (val && strcmp(opt, "-s") == 0)
      ok = parse_num(val, 's', &seed);
    else if (val && strcmp(opt, "-S") == 0)
      ok = parse_num(val, 'S', &cfg.stats_every);
    if (!ok) {
      say(stderr,
          "usage: %s [-t threads] [-g generations] [-n ops] "
          "[-s seed] [-S n]\n",
          argv[0]);
      return 2;
    }
  }
  if (threads < 1 || threads > MAX_LANES || generations < 1 ||
      generations > 0xffff) {
    say(stderr,
        "sanitize_stress: need 1..%d threads, 1..65535 "
        "generations\n",
        MAX_LANES);
    return 2;
  }
  cfg.threads = (unsigned)threads;
  cfg.generations = (unsigned)generations;
  cfg.seed = seed;
  say(stdout,
      "sanitize_stress: %u threads x %u generations x %lu ops, seed %" PRIu64
      "\n",
      cfg.threads, cfg.generations, cfg.ops, cfg.seed);
  double t0 = now_seconds();
  hkp_init();
  queues = calloc(cfg.threads, sizeof *queues);
  if (!queues)
    fatal("calloc of the queues failed");
  stats_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
  if (stats_fd < 0)
    fatal("cannot open /dev/null: errno %d", errno);
  for (unsigned i = 0; i < cfg.threads; i++)
    pthread_mutex_init(&queues[i].lock, NULL);

  for (unsigned lane = 0; lane < cfg.threads; lane++)
    start_worker(lane, 0);
  /* As each worker finishes, join it and start its lane's next generation;
   * the other lanes keep running meanwhile, freeing its blocks. */
  unsigned running = cfg.threads;
  while (running > 0) {
    pthread_mutex_lock(&done_lock);
    while (done_count == 0)
      pthread_cond_wait(&done_cond, &done_lock);
    struct worker *w = done_list[--done_count];
    pthread_mutex_unlock(&done_lock);
    pthread_join(w->tid, NULL);
    if (w->gen + 1 < cfg.generations)
      start_worker(w->lane, w->gen + 1);
    else
      running--;
    free(w);
  }

  /* Every worker is gone: free what they left, from a thread that owns
   * none of the slabs. */
  struct blk b = {0};
  for (unsigned i = 0; i < cfg.threads; i++) {
    while (queue_pop(&queues[i], &b))
      release(&b, 0xffffffffu);
    pthread_mutex_destroy(&queues[i].lock);
  }
  free(queues);
  (void)close(stats_fd);
  hk_api_malloc_trim(0);

  uint64_t allocs = total(&n_allocs), frees = total(&n_frees);
  size_t live = atomic_load_explicit(&live_bytes, memory_order_relaxed);
  double secs = now_seconds() - t0;
  say(stdout,
      "sanitize_stress: %" PRIu64 " allocations (%" PRIu64 " calloc, %" PRIu64
      " aligned, %" PRIu64 " large), %" PRIu64 " frees (%" PRIu64
      " by another thread), %" PRIu64 " reallocs (%" PRIu64
      " of another thread's block), %" PRIu64 " hand-offs, %" PRIu64
      " bursts, %" PRIu64 " trims, %" PRIu64 " statistics reports, %" PRIu64
      " MiB verified, %.1f s\n",
      allocs, total(&n_callocs), total(&n_aligned), total(&n_large), frees,
      total(&n_cross_frees), total(&n_reallocs), total(&n_remote_reallocs),
      total(&n_handoffs), total(&n_bursts), total(&n_trims), total(&n_stats),
      total(&bytes_checked) >> 20, secs);
  if (allocs != frees || live != 0) {
    say(stdout,
        "sanitize_stress: FAIL: %" PRIu64 " allocations but %" PRIu64
        " frees, %zu bytes unaccounted for\n",
        allocs, frees, live);
    return 1;
  }
  say(stdout, "sanitize_stress: OK\n");
  return 0;
}
