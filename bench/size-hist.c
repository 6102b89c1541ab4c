/* size-hist.c: an LD_PRELOAD shim that counts the sizes a program asks
 * malloc for, for bench/size-waste.sh. Not part of the library.
 *
 * Every malloc, calloc, realloc and aligned request adds one to the count
 * of its exact size (sizes above HIST_MAX share one bucket), then goes on
 * to the allocator below (RTLD_NEXT: hakmem, or glibc). At exit each
 * process writes "size count" lines to $SIZE_HIST_DIR/hist.<pid>. A forked
 * child starts from zero, so that the parent's requests are not counted
 * twice when both exit.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HIST_MAX (1u << 20)

static uint64_t counts[HIST_MAX + 2];

static void *(*next_malloc)(size_t);
static void *(*next_calloc)(size_t, size_t);
static void *(*next_realloc)(void *, size_t);
static void (*next_free)(void *);
static int (*next_memalign)(void **, size_t, size_t);

/* dlsym may allocate before the pointers above are set: those few early
 * requests come from here and are never freed. */
static char boot[1 << 16] __attribute__((aligned(64)));
static size_t boot_used;
static int resolving;

static void *boot_alloc(size_t n) {
  n = (n + 63) & ~(size_t)63;
  if (boot_used + n > sizeof boot)
    return NULL;
  void *p = boot + boot_used;
  boot_used += n;
  return p;
}

static int is_boot(const void *p) {
  return (const char *)p >= boot && (const char *)p < boot + sizeof boot;
}

static void resolve(void) {
  if (next_malloc || resolving)
    return;
  resolving = 1;
  next_calloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "calloc");
  next_realloc = (void *(*)(void *, size_t))dlsym(RTLD_NEXT, "realloc");
  next_free = (void (*)(void *))dlsym(RTLD_NEXT, "free");
  next_memalign = (int (*)(void **, size_t, size_t))dlsym(RTLD_NEXT,
                                                          "posix_memalign");
  next_malloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
  resolving = 0;
}

static void count(size_t n) {
  __atomic_fetch_add(&counts[n <= HIST_MAX ? n : HIST_MAX + 1], 1,
                     __ATOMIC_RELAXED);
}

void *malloc(size_t n) {
  resolve();
  if (!next_malloc)
    return boot_alloc(n);
  count(n);
  return next_malloc(n);
}

void *calloc(size_t a, size_t b) {
  resolve();
  if (!next_calloc)
    return boot_alloc(a * b); /* boot is zero and never reused */
  size_t n;
  if (!__builtin_mul_overflow(a, b, &n))
    count(n);
  return next_calloc(a, b);
}

void *realloc(void *p, size_t n) {
  resolve();
  if (is_boot(p)) {
    void *q = malloc(n);
    if (q)
      memcpy(q, p, n < 64 ? n : 64); /* boot blocks are tiny; copy is bounded */
    return q;
  }
  if (n)
    count(n);
  return next_realloc(p, n);
}

void free(void *p) {
  if (!p || is_boot(p))
    return;
  resolve();
  next_free(p);
}

int posix_memalign(void **out, size_t align, size_t n) {
  resolve();
  count(n);
  return next_memalign(out, align, n);
}

void *aligned_alloc(size_t align, size_t n) {
  void *p = NULL;
  int rc = posix_memalign(&p, align < sizeof(void *) ? sizeof(void *) : align, n);
  if (rc) {
    errno = rc;
    return NULL;
  }
  return p;
}

void *memalign(size_t align, size_t n) { return aligned_alloc(align, n); }

static void child_reset(void) { memset(counts, 0, sizeof counts); }

__attribute__((constructor)) static void init(void) {
  resolve();
  pthread_atfork(NULL, NULL, child_reset);
}

static void put(int fd, uint64_t size, uint64_t n) {
  char buf[48];
  char *e = buf + sizeof buf, *q = e;
  *--q = '\n';
  do *--q = (char)('0' + n % 10); while (n /= 10);
  *--q = ' ';
  do *--q = (char)('0' + size % 10); while (size /= 10);
  (void)!write(fd, q, (size_t)(e - q));
}

__attribute__((destructor)) static void dump(void) {
  const char *dir = getenv("SIZE_HIST_DIR");
  if (!dir)
    return;
  char path[4096];
  size_t len = strlen(dir);
  if (len > sizeof path - 32)
    return;
  memcpy(path, dir, len);
  memcpy(path + len, "/hist.", 6);
  char *q = path + len + 6;
  char digits[24];
  int nd = 0;
  for (unsigned long pid = (unsigned long)getpid(); pid; pid /= 10)
    digits[nd++] = (char)('0' + pid % 10);
  while (nd)
    *q++ = digits[--nd];
  *q = 0;
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return;
  for (uint64_t s = 0; s <= HIST_MAX + 1; s++)
    if (counts[s])
      put(fd, s, counts[s]);
  close(fd);
}
