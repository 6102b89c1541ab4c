/* fuzz_alloc.c: the libFuzzer harness of `make fuzz`, linked with the
 * allocator built under internal names (-DHK_INTERNAL_NAMES) and
 * -fsanitize=fuzzer,address,undefined.
 *
 * An input is a program: a sequence of calls to hk_api_malloc, calloc,
 * realloc, reallocarray, posix_memalign, aligned_alloc, memalign, valloc,
 * pvalloc, free, malloc_usable_size and malloc_trim on up to SLOTS live
 * blocks, checked against a shadow model of what each block must hold.
 * What is checked, and why it is not left to ASan: hakmem's blocks are not
 * ASan's heap, so a block that lost its contents, overlaps another, is
 * misaligned or smaller than promised is visible only to a model like this
 * one:
 *   - contents: every block carries the hk_pattern.h pattern of its own
 *     seed over its requested size, verified before it is freed or resized,
 *     so a block handed out twice or clobbered by the allocator shows up;
 *   - realloc/reallocarray keep the first min(old, new) bytes;
 *   - calloc (also of recycled blocks) returns zeroes;
 *   - alignment: the requested one, 16 for every block of 16 bytes or more,
 *     a page for valloc/pvalloc;
 *   - malloc_usable_size >= the requested size, and the slack it claims is
 *     written to;
 *   - failures: overflowing calloc/reallocarray and impossible sizes give
 *     NULL with ENOMEM and leave the old block alone; bad alignments give
 *     EINVAL (posix_memalign returns it, leaves *out and errno alone).
 * Some calls run on a second thread, which can be made to exit with blocks
 * still live: frees then go to another thread's slabs (remote frees) and to
 * slabs abandoned by a dead thread, deterministically, since the main
 * thread waits for each call.
 *
 * Input encoding: one opcode byte, then the bytes its arguments need (a
 * slot byte, size and alignment selectors); a missing byte reads as 0.
 * Sizes are mostly tiny, sometimes medium, rarely up to 4 MiB; live
 * requested bytes are capped so that one input cannot exhaust memory.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hk_pattern.h"
#include "api/api.h"

#ifndef HK_INTERNAL_NAMES
#error "fuzz_alloc needs the internal names: build with -DHK_INTERNAL_NAMES"
#endif

#define SLOTS 64
#define MAX_OPS 2000 /* per input: bounds the time one input may take */
#define KIB ((size_t)1024)
#define MIB (KIB * KIB)
#define LIVE_LIMIT (64 * MIB)
#define PAGE 4096

struct slot {
  unsigned char *p; /* NULL when the slot is empty */
  size_t size;      /* bytes requested; the pattern covers these */
  size_t align;     /* alignment the block must keep (1 if none) */
  uint32_t seed;
  const char *how; /* the call that made it, for reports */
};

static struct slot slots[SLOTS];
static size_t live_bytes;
static uint32_t seed_counter;

struct input {
  const uint8_t *data;
  size_t size, at;
};

static unsigned take8(struct input *in) {
  return in->at < in->size ? in->data[in->at++] : 0;
}

static size_t take16(struct input *in) {
  size_t lo = take8(in);
  return lo | (size_t)take8(in) << 8;
}

static size_t take24(struct input *in) {
  size_t lo = take16(in);
  return lo | (size_t)take8(in) << 16;
}

// ---------------------------------------------------------------------------
// Failure reports: print what the model expected, then abort, which
// libFuzzer turns into a crash report with the input saved.

static _Noreturn void fail(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* Output errors are ignored: abort() follows either way. */
static _Noreturn void fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  (void)fputs("fuzz_alloc: FAIL: ", stderr);
  (void)vfprintf(stderr, fmt, ap);
  (void)fputc('\n', stderr);
  va_end(ap);
  abort();
}

static void verify(unsigned i, const char *when) {
  const struct slot *s = &slots[i];
  if (((uintptr_t)s->p & (s->align - 1)) != 0)
    fail("%s: slot %u %p (%s, size %zu) not aligned to %zu", when, i,
         (void *)s->p, s->how, s->size, s->align);
  if (s->size >= 16 && ((uintptr_t)s->p & 15) != 0)
    fail("%s: slot %u %p (%s, size %zu) not 16-byte aligned", when, i,
         (void *)s->p, s->how, s->size);
  size_t usable = hk_api_malloc_usable_size(s->p);
  if (usable < s->size)
    fail("%s: slot %u %p (%s): malloc_usable_size %zu < size %zu", when, i,
         (void *)s->p, s->how, usable, s->size);
  size_t bad = hkp_check(s->p, 0, s->size, s->seed);
  if (bad != SIZE_MAX)
    fail("%s: slot %u %p (%s, size %zu): byte %zu is 0x%02x, expected 0x%02x",
         when, i, (void *)s->p, s->how, s->size, bad, s->p[bad],
         hkp_expected(bad, s->seed));
}

/* Takes a fresh block into slot i: checks its shape, writes the slack
 * malloc_usable_size claims (a lie there corrupts a neighbour, which its
 * own check then catches), and fills it from `from` on (bytes before were
 * preserved by realloc and already hold the pattern). */
static void install(unsigned i, void *p, size_t size, size_t align,
                    const char *how, size_t from, uint32_t seed) {
  struct slot *s = &slots[i];
  s->p = p;
  s->size = size;
  s->align = align;
  s->how = how;
  s->seed = seed;
  size_t usable = hk_api_malloc_usable_size(p);
  if (usable < size)
    fail("%s: %p: malloc_usable_size %zu < size %zu", how, p, usable, size);
  /* A block handed out twice would also show up as changed contents, but
   * only when the other holder is checked; this names both at once. */
  uintptr_t lo = (uintptr_t)p, hi = lo + (size ? size : 1);
  for (unsigned j = 0; j < SLOTS; j++) {
    const struct slot *o = &slots[j];
    uintptr_t olo = (uintptr_t)o->p, ohi = olo + (o->size ? o->size : 1);
    if (j != i && o->p && lo < ohi && olo < hi)
      fail("%s: %p (size %zu) overlaps slot %u %p (%s, size %zu)", how, p, size,
           j, (void *)o->p, o->how, o->size);
  }
  size_t slack = usable - size;
  memset(s->p + size, 0xa5, slack < 64 ? slack : 64);
  if (slack > 64)
    s->p[usable - 1] = 0x5a;
  hkp_fill(s->p, from, size, seed);
  live_bytes += size;
  verify(i, how);
}

static void install_new(unsigned i, void *p, size_t size, size_t align,
                        const char *how) {
  if (!p)
    fail("%s(size %zu, align %zu) returned NULL: errno %d", how, size, align,
         errno);
  seed_counter += 7919;
  install(i, p, size, align, how, 0, seed_counter);
}

static void release(unsigned i, const char *when) {
  struct slot *s = &slots[i];
  if (!s->p)
    return;
  verify(i, when);
  hk_api_free(s->p);
  live_bytes -= s->size;
  s->p = NULL;
}

// ---------------------------------------------------------------------------
// Decoding arguments

static size_t take_size(struct input *in) {
  unsigned sel = take8(in);
  size_t size;
  if (sel < 128)
    size = take8(in);
  else if (sel < 192)
    size = take16(in) % (KIB + 1);
  else if (sel < 240)
    size = take24(in) % (256 * KIB + 1);
  else if (sel < 252)
    size = 256 * KIB + take24(in) % (768 * KIB);
  else
    size = MIB + take24(in) * 3 % (3 * MIB);
  /* One input must not hold more than LIVE_LIMIT: fall back to small. */
  if (live_bytes + size > LIVE_LIMIT)
    size %= PAGE;
  return size;
}

/* A power of two from 1 to 2 MiB, or (rarely) any 16-bit value, valid or
 * not, to test how each call treats odd alignments. */
static size_t take_align(struct input *in) {
  unsigned sel = take8(in);
  if (sel < 0xe0)
    return (size_t)1 << (sel % 22);
  return take16(in);
}

static int power_of_two(size_t a) { return a != 0 && (a & (a - 1)) == 0; }

static size_t round_pow2(size_t a) {
  size_t r = 1;
  while (r < a)
    r <<= 1;
  return r;
}

// ---------------------------------------------------------------------------
// The operations. Each takes its arguments from a struct so that it can run
// on the helper thread as well as on the main one.

struct op {
  struct input *in;
  unsigned code;
};

static void op_malloc(struct input *in) {
  unsigned i = take8(in) % SLOTS;
  size_t size = take_size(in);
  release(i, "malloc (slot reuse)");
  install_new(i, hk_api_malloc(size), size, 1, "malloc");
}

static void op_calloc(struct input *in) {
  unsigned i = take8(in) % SLOTS;
  size_t size = take_size(in);
  /* n * m == size for some split, so the multiplication is exercised. */
  size_t n = 1 + take8(in) % 16;
  if (size % n != 0)
    n = 1;
  release(i, "calloc (slot reuse)");
  errno = 0;
  unsigned char *p = hk_api_calloc(n, size / n);
  if (!p)
    fail("calloc(%zu, %zu) returned NULL: errno %d", n, size / n, errno);
  size_t bad = hkp_check_zero(p, size);
  if (bad != SIZE_MAX)
    fail("calloc(%zu, %zu) = %p: byte %zu is 0x%02x, not zero", n, size / n,
         (void *)p, bad, p[bad]);
  install_new(i, p, size, 1, "calloc");
}

/* realloc and reallocarray: the old contents up to min(old, new) stay. */
static void resize(unsigned i, size_t size, void *q, const char *how) {
  struct slot old = slots[i];
  if (!q)
    fail("%s(%p, %zu) returned NULL: errno %d", how, (void *)old.p, size,
         errno);
  size_t keep = old.size < size ? old.size : size;
  size_t bad = hkp_check(q, 0, keep, old.seed);
  if (bad != SIZE_MAX)
    fail("%s(%p (size %zu), %zu) = %p: byte %zu is 0x%02x, expected 0x%02x",
         how, (void *)old.p, old.size, size, q, bad, ((unsigned char *)q)[bad],
         hkp_expected(bad, old.seed));
  live_bytes -= old.size;
  install(i, q, size, 1, how, keep, old.seed);
}

static void op_realloc(struct input *in) {
  unsigned i = take8(in) % SLOTS;
  size_t size = take_size(in);
  if (!slots[i].p) {
    install_new(i, hk_api_realloc(NULL, size), size, 1, "realloc(NULL)");
    return;
  }
  verify(i, "before realloc");
  if (size == 0) {
    /* Frees the block, as in glibc; a non-NULL result would be a new
     * zero-size block. */
    unsigned char *q = hk_api_realloc(slots[i].p, 0);
    live_bytes -= slots[i].size;
    slots[i].p = NULL;
    if (q)
      install_new(i, q, 0, 1, "realloc(p, 0)");
    return;
  }
  resize(i, size, hk_api_realloc(slots[i].p, size), "realloc");
}

static void op_reallocarray(struct input *in) {
  unsigned i = take8(in) % SLOTS;
  size_t size = take_size(in);
  size_t n = 1 + take8(in) % 8;
  if (size == 0 || size % n != 0)
    n = 1;
  if (size == 0)
    size = 1; /* reallocarray(p, n, 0) is realloc(p, 0); op_realloc has it */
  if (!slots[i].p) {
    install_new(i, hk_api_reallocarray(NULL, n, size / n), size, 1,
                "reallocarray(NULL)");
    return;
  }
  verify(i, "before reallocarray");
  resize(i, size, hk_api_reallocarray(slots[i].p, n, size / n), "reallocarray");
}

static void op_posix_memalign(struct input *in) {
  unsigned i = take8(in) % SLOTS;
  size_t align = take_align(in);
  size_t size = take_size(in);
  release(i, "posix_memalign (slot reuse)");
  void *sentinel = (void *)&slots[i], *p = sentinel;
  errno = 12345;
  int rc = hk_api_posix_memalign(&p, align, size);
  int valid = power_of_two(align) && align % sizeof(void *) == 0;
  /* It reports failure by its result; errno is the caller's. */
  if (rc != 0 && errno != 12345)
    fail("posix_memalign(%zu, %zu) = %d changed errno to %d", align, size, rc,
         errno);
  if (!valid) {
    if (rc != EINVAL || p != sentinel)
      fail("posix_memalign(align %zu, %zu) = %d, out %s: want EINVAL, out "
           "unchanged",
           align, size, rc, p == sentinel ? "unchanged" : "set");
    return;
  }
  if (rc != 0)
    fail("posix_memalign(%zu, %zu) = %d", align, size, rc);
  install_new(i, p, size, align, "posix_memalign");
}

static void op_aligned_alloc(struct input *in) {
  unsigned i = take8(in) % SLOTS;
  size_t align = take_align(in);
  size_t size = take_size(in);
  release(i, "aligned_alloc (slot reuse)");
  errno = 0;
  void *p = hk_api_aligned_alloc(align, size);
  if (!power_of_two(align)) {
    if (p || errno != EINVAL)
      fail("aligned_alloc(%zu, %zu) = %p, errno %d: want NULL, EINVAL", align,
           size, p, errno);
    return;
  }
  install_new(i, p, size, align, "aligned_alloc");
}

static void op_memalign(struct input *in) {
  unsigned i = take8(in) % SLOTS;
  size_t align = take_align(in);
  size_t size = take_size(in);
  release(i, "memalign (slot reuse)");
  /* glibc's memalign rounds an alignment that is not a power of two up. */
  install_new(i, hk_api_memalign(align, size), size, round_pow2(align),
              "memalign");
}

static void op_valloc(struct input *in) {
  unsigned i = take8(in) % SLOTS;
  unsigned which = take8(in) & 1;
  size_t size = take_size(in);
  release(i, "valloc (slot reuse)");
  if (which == 0) {
    install_new(i, hk_api_valloc(size), size, PAGE, "valloc");
    return;
  }
  /* pvalloc rounds the size up to whole pages (0 to one page): all of them
   * must be usable. */
  void *p = hk_api_pvalloc(size);
  size_t rounded = size == 0 ? PAGE : (size + PAGE - 1) & ~(size_t)(PAGE - 1);
  if (p && hk_api_malloc_usable_size(p) < rounded)
    fail("pvalloc(%zu) = %p: usable size %zu < %zu", size, p,
         hk_api_malloc_usable_size(p), rounded);
  install_new(i, p, size, PAGE, "pvalloc");
}

static void op_free(struct input *in) {
  unsigned i = take8(in) % SLOTS;
  if (!slots[i].p) {
    hk_api_free(NULL);
    return;
  }
  release(i, "before free");
}

static void op_check(struct input *in) {
  unsigned i = take8(in) % SLOTS;
  if (!slots[i].p) {
    if (hk_api_malloc_usable_size(NULL) != 0)
      fail("malloc_usable_size(NULL) != 0");
    return;
  }
  verify(i, "check");
}

static void expect_enomem(const void *p, const char *what) {
  if (p || errno != ENOMEM)
    fail("%s = %p, errno %d: want NULL, ENOMEM", what, p, errno);
}

/* Requests that must fail, and must leave the blocks alone when they do. */
static void op_invalid(struct input *in) {
  unsigned kind = take8(in);
  unsigned i = take8(in) % SLOTS;
  size_t x = take16(in);
  void *p = NULL;
  errno = 0;
  switch (kind % 8) {
  case 0: { /* n * m overflows */
    size_t m = 2 + x;
    p = hk_api_calloc(SIZE_MAX / m + 1, m);
    expect_enomem(p, "calloc(overflowing)");
    break;
  }
  case 1:
    p = hk_api_malloc(SIZE_MAX - x);
    expect_enomem(p, "malloc(SIZE_MAX - x)");
    break;
  case 2:
    p = hk_api_calloc(1, SIZE_MAX / 2 + x);
    expect_enomem(p, "calloc(1, huge)");
    break;
  case 3:
    p = hk_api_pvalloc(SIZE_MAX - x);
    expect_enomem(p, "pvalloc(SIZE_MAX - x)");
    break;
  case 4:
    p = hk_api_memalign((size_t)1 << 8, SIZE_MAX - x);
    expect_enomem(p, "memalign(256, huge)");
    break;
  case 5: {
    int saved = errno;
    void *out = &slots[i]; /* any value it must not overwrite */
    int rc = hk_api_posix_memalign(&out, 64, SIZE_MAX - x);
    if (rc != ENOMEM || out != &slots[i] || errno != saved)
      fail("posix_memalign(64, huge) = %d: want ENOMEM, out and errno "
           "unchanged",
           rc);
    break;
  }
  case 6: /* the old block survives a failed realloc */
    if (slots[i].p) {
      verify(i, "before failing realloc");
      p = hk_api_realloc(slots[i].p, SIZE_MAX - x);
      expect_enomem(p, "realloc(p, huge)");
      verify(i, "after failing realloc");
    }
    break;
  default: /* ... and a failed reallocarray */
    if (slots[i].p) {
      verify(i, "before failing reallocarray");
      size_t m = 2 + x;
      p = hk_api_reallocarray(slots[i].p, SIZE_MAX / m + 1, m);
      expect_enomem(p, "reallocarray(p, overflowing)");
      verify(i, "after failing reallocarray");
    }
    break;
  }
}

/* A burst of blocks of one size, beyond what the slots hold: enough to fill
 * slabs, so that full slabs, slabs emptied again and slabs given back to the
 * pool are reached. Freed forwards, backwards, or the even-numbered ones
 * first (so slabs stay half-used for a while), on this thread or (from the
 * main thread) on the helper: remote frees of a whole slab. */
#define BURST_MAX 256
static unsigned char *burst_ptrs[BURST_MAX];
static unsigned burst_count;
static size_t burst_size;
static uint32_t burst_seed;
static unsigned burst_order;
static int running_on_helper;

static void burst_free(void *unused) {
  (void)unused;
  for (unsigned k = 0; k < burst_count; k++) {
    unsigned j = burst_order == 0   ? k
                 : burst_order == 1 ? burst_count - 1 - k
                 : k < (burst_count + 1) / 2
                     ? 2 * k
                     : 2 * (k - (burst_count + 1) / 2) + 1;
    unsigned char *p = burst_ptrs[j];
    size_t bad = hkp_check(p, 0, burst_size, burst_seed + j);
    if (bad != SIZE_MAX)
      fail("burst block %u of %u (%p, size %zu): byte %zu is 0x%02x, expected "
           "0x%02x",
           j, burst_count, (void *)p, burst_size, bad, p[bad],
           hkp_expected(bad, burst_seed + j));
    hk_api_free(p);
  }
  burst_count = 0;
}

static void on_helper(void (*fn)(void *), void *arg);

static void op_burst(struct input *in) {
  unsigned count = 1 + take8(in);
  unsigned how = take8(in);
  size_t size = take_size(in);
  if (size > 64 * KIB)
    size %= 64 * KIB;
  burst_size = size;
  burst_seed = seed_counter += 7919;
  burst_order = how % 3;
  for (unsigned k = 0; k < count; k++) {
    unsigned char *p = hk_api_malloc(size);
    if (!p)
      fail("malloc(%zu) returned NULL in a burst: errno %d", size, errno);
    if (size >= 16 && ((uintptr_t)p & 15) != 0)
      fail("malloc(%zu) = %p: not 16-byte aligned", size, (void *)p);
    if (hk_api_malloc_usable_size(p) < size)
      fail("malloc(%zu) = %p: usable size %zu", size, (void *)p,
           hk_api_malloc_usable_size(p));
    hkp_fill(p, 0, size, burst_seed + k);
    burst_ptrs[k] = p;
    burst_count = k + 1;
  }
  if ((how & 4) && !running_on_helper)
    on_helper(burst_free, NULL);
  else
    burst_free(NULL);
}

static void op_trim(struct input *in) {
  (void)in;
  hk_api_malloc_trim(0);
}

static void run_op(void *arg) {
  struct op *op = arg;
  switch (op->code) {
  case 0:
  case 1:
    op_malloc(op->in);
    break;
  case 2:
    op_burst(op->in);
    break;
  case 3:
    op_calloc(op->in);
    break;
  case 4:
    op_realloc(op->in);
    break;
  case 5:
    op_reallocarray(op->in);
    break;
  case 6:
    op_posix_memalign(op->in);
    break;
  case 7:
    op_aligned_alloc(op->in);
    break;
  case 8:
    op_memalign(op->in);
    break;
  case 9:
    op_valloc(op->in);
    break;
  case 10:
  case 11:
  case 12:
    op_free(op->in);
    break;
  case 13:
    op_check(op->in);
    break;
  case 14:
    op_invalid(op->in);
    break;
  default:
    op_trim(op->in);
    break;
  }
}

// ---------------------------------------------------------------------------
// The helper thread: runs one operation at a time while the main thread
// waits, so inputs replay deterministically.

static struct {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  pthread_t tid;
  int alive, pending, quit;
  void (*fn)(void *);
  void *arg;
} helper = {.lock = PTHREAD_MUTEX_INITIALIZER,
            .cond = PTHREAD_COND_INITIALIZER};

static void *helper_main(void *unused) {
  (void)unused;
  pthread_mutex_lock(&helper.lock);
  for (;;) {
    while (!helper.pending)
      pthread_cond_wait(&helper.cond, &helper.lock);
    if (helper.quit)
      break;
    running_on_helper = 1;
    helper.fn(helper.arg);
    running_on_helper = 0;
    helper.pending = 0;
    pthread_cond_broadcast(&helper.cond);
  }
  pthread_mutex_unlock(&helper.lock);
  return NULL;
}

static void on_helper(void (*fn)(void *), void *arg) {
  if (!helper.alive) {
    helper.quit = 0;
    helper.pending = 0;
    if (pthread_create(&helper.tid, NULL, helper_main, NULL) != 0)
      fail("pthread_create failed");
    helper.alive = 1;
  }
  pthread_mutex_lock(&helper.lock);
  helper.fn = fn;
  helper.arg = arg;
  helper.pending = 1;
  pthread_cond_broadcast(&helper.cond);
  while (helper.pending)
    pthread_cond_wait(&helper.cond, &helper.lock);
  pthread_mutex_unlock(&helper.lock);
}

/* The helper exits; its slabs are abandoned with whatever it allocated
 * still live in the slots. */
static void retire_helper(void) {
  if (!helper.alive)
    return;
  pthread_mutex_lock(&helper.lock);
  helper.quit = 1;
  helper.pending = 1;
  pthread_cond_broadcast(&helper.cond);
  pthread_mutex_unlock(&helper.lock);
  pthread_join(helper.tid, NULL);
  helper.alive = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int initialised;
  if (!initialised) {
    hkp_init();
    initialised = 1;
  }
  struct input in = {data, size, 0};
  int on_other_thread = 0;
  for (unsigned n = 0; n < MAX_OPS && in.at < in.size; n++) {
    unsigned code = take8(&in);
    /* The top bits steer threads; the low four pick the operation. */
    if (code >= 0xf8) {
      if (code >= 0xfc)
        retire_helper();
      else
        on_other_thread = !on_other_thread;
      continue;
    }
    struct op op = {&in, code & 15};
    if (on_other_thread)
      on_helper(run_op, &op);
    else
      run_op(&op);
  }
  /* Every input starts from empty slots; the allocator's own state (heaps,
   * caches, abandoned slabs) carries over, as in a long-running program. */
  for (unsigned i = 0; i < SLOTS; i++)
    release(i, "end of input");
  if (live_bytes != 0)
    fail("model out of step: %zu live bytes after freeing everything",
         live_bytes);
  return 0;
}
