/* hardened_probe.c: misuse scenarios that HAKMEM_HARDENED must catch, and
 * workloads it must not disturb. tests/hardened/run.sh runs each with the
 * knob on and checks how it ends; the program itself asserts nothing.
 *
 * Linked with the library; every access to a freed block goes through
 * hide(), so that no optimisation level can drop it. Before a misuse the program
 * prints the block's address ("block 0x..."), flushed, so that the driver
 * can match it against the report. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The block a scenario misuses. Every access after free() reads it from
 * here, so that the compiler cannot see (warn about, or drop) the misuse. */
static void *volatile opaque;

static void *hide(void *p) {
  opaque = p;
  return opaque;
}

static char *freed(void) { return opaque; }

static void say_block(const void *p) {
  printf("block %#lx\n", (unsigned long)(uintptr_t)p);
  fflush(stdout);
}

static size_t arg_size(int argc, char **argv, int i, size_t def) {
  return argc > i ? strtoul(argv[i], NULL, 0) : def;
}

/* free(p); the program overwrites its first 16 bytes; free(p) again. */
static int double_free_overwritten(size_t size) {
  void *keeper = malloc(size); /* keeps the slab from emptying */
  char *p = hide(malloc(size));
  say_block(p);
  free(p);
  memset(freed(), 0x41, 16);
  free(freed());
  printf("survived\n");
  free(keeper);
  return 0;
}

/* free(p); the program writes 8 bytes at `offset` into it; malloc(size)
 * until the block is handed out again. `word` "pointer" writes the
 * address of a live block, as a free-list poisoning attack would. */
static int use_after_free(size_t size, size_t offset, const char *word) {
  void *keeper = malloc(size);
  char *p = hide(malloc(size));
  say_block(p);
  free(p);
  uint64_t v = strcmp(word, "pointer") == 0 ? (uint64_t)(uintptr_t)keeper
                                            : strtoull(word, NULL, 0);
  memcpy(freed() + offset, &v, sizeof v);
  enum { N = 64 };
  void *q[N];
  int again = 0;
  for (int i = 0; i < N; i++) {
    q[i] = malloc(size);
    memset(q[i], 0x33, size);
    again |= q[i] == (void *)freed();
  }
  printf("alive%s\n", again ? " (block handed out again)" : "");
  for (int i = 0; i < N; i++)
    free(q[i]);
  free(keeper);
  return 0;
}

/* Reads a freed block (knowingly: this is what the fill is for). */
static int fill(size_t size) {
  void *keeper = malloc(size);
  unsigned char *p = hide(malloc(size));
  memset(p, 0x11, size);
  free(p);
  const volatile unsigned char *dead = (unsigned char *)freed();
  size_t wrong = 0;
  for (size_t i = 16; i < size; i++)
    wrong += dead[i] != 0xdf;
  printf("fill-mismatch %zu of %zu\n", wrong, size - 16);
  /* And the block comes back zeroed from calloc. */
  unsigned char *z = calloc(1, size);
  size_t nonzero = 0;
  for (size_t i = 0; i < size; i++)
    nonzero += z[i] != 0;
  printf("calloc-nonzero %zu same-block %d\n", nonzero, z == dead);
  free(z);
  free(keeper);
  return 0;
}

// ---------------------------------------------------------------------------
// Threads

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int stage;
static void *volatile shared; /* volatile: see opaque */

static void wait_stage(int s) {
  pthread_mutex_lock(&lock);
  while (stage < s)
    pthread_cond_wait(&cond, &lock);
  pthread_mutex_unlock(&lock);
}

static void set_stage(int s) {
  pthread_mutex_lock(&lock);
  stage = s;
  pthread_cond_broadcast(&cond);
  pthread_mutex_unlock(&lock);
}

/* The owner of the block: allocates it, then stays alive (so that the
 * block stays on its slab's remote list) until stage 3, when it allocates
 * of the size until it has collected the remote list. */
static void *owner(void *arg) {
  size_t size = *(size_t *)arg;
  enum { N = 20000 };
  static void *keep[N];
  keep[0] = malloc(size);
  shared = malloc(size);
  set_stage(1);
  wait_stage(3);
  for (int i = 1; i < N; i++)
    keep[i] = malloc(size);
  printf("alive\n");
  fflush(stdout);
  set_stage(4);
  wait_stage(5);
  for (int i = 0; i < N; i++)
    free(keep[i]);
  return NULL;
}

static void *remote_free(void *arg) {
  (void)arg;
  free(shared);
  return NULL;
}

/* Starts the owner thread, which allocates `shared`, and has a third
 * thread free it onto the owner's remote list. 0, or 2 on failure. */
static int free_remotely(pthread_t *owner_thread, size_t *size) {
  pthread_t b;
  if (pthread_create(owner_thread, NULL, owner, size) != 0)
    return 2;
  wait_stage(1);
  say_block(shared);
  if (pthread_create(&b, NULL, remote_free, NULL) != 0 ||
      pthread_join(b, NULL) != 0)
    return 2;
  return 0;
}

/* Another thread frees the block, then main frees it again after
 * overwriting its first 16 bytes (which hold the remote list's link). */
static int cross_thread_double_free(size_t size) {
  pthread_t a;
  if (free_remotely(&a, &size) != 0)
    return 2;
  memset(shared, 0x41, 16);
  free(shared);
  printf("survived\n");
  set_stage(5);
  pthread_join(a, NULL);
  return 0;
}

/* Another thread frees the block onto the owner's remote list; main
 * overwrites the link there; the owner collects the list. */
static int remote_list_poisoned(size_t size) {
  pthread_t a;
  if (free_remotely(&a, &size) != 0)
    return 2;
  uint64_t v = 0x4141414141414141u;
  memcpy(shared, &v, sizeof v);
  set_stage(3);
  wait_stage(4);
  set_stage(5);
  pthread_join(a, NULL);
  return 0;
}

/* Stress: each thread allocates blocks, stamps them and hands them to the
 * next thread, which checks the stamp and frees them (remote frees), and
 * frees some of its own (local frees), in rounds. */
enum { MAX_THREADS = 8, BATCH = 256 };

struct mailbox {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  void *blocks[BATCH];
  size_t sizes[BATCH];
  int full;
};

static struct mailbox boxes[MAX_THREADS];
static int n_threads, n_rounds;
static _Atomic long bad_stamps;

static size_t pick_size(unsigned *seed) {
  *seed = *seed * 1103515245u + 12345u;
  unsigned r = (*seed >> 8) % 100;
  if (r < 70)
    return 1 + (*seed >> 12) % 256;
  if (r < 95)
    return 257 + (*seed >> 12) % 1800;
  return 2048 + (*seed >> 12) % 30000;
}

static void stamp(unsigned char *p, size_t size, unsigned char v) {
  memset(p, v, size);
}

static int stamped(const unsigned char *p, size_t size, unsigned char v) {
  for (size_t i = 0; i < size; i++)
    if (p[i] != v)
      return 0;
  return 1;
}

static void *stress_thread(void *arg) {
  int me = (int)(intptr_t)arg;
  struct mailbox *out = &boxes[(me + 1) % n_threads], *in = &boxes[me];
  unsigned seed = 12345u + (unsigned)me * 7919u;
  for (int r = 0; r < n_rounds; r++) {
    /* Fill the next thread's mailbox once it is empty. */
    void *mine[BATCH];
    size_t my_sizes[BATCH];
    for (int i = 0; i < BATCH; i++) {
      my_sizes[i] = pick_size(&seed);
      mine[i] = malloc(my_sizes[i]);
      stamp(mine[i], my_sizes[i], (unsigned char)(me + 1));
    }
    pthread_mutex_lock(&out->lock);
    while (out->full)
      pthread_cond_wait(&out->cond, &out->lock);
    for (int i = 0; i < BATCH / 2; i++) {
      out->blocks[i] = mine[i];
      out->sizes[i] = my_sizes[i];
    }
    out->full = 1;
    pthread_cond_broadcast(&out->cond);
    pthread_mutex_unlock(&out->lock);
    /* Keep the other half a little, free it locally. */
    for (int i = BATCH / 2; i < BATCH; i++) {
      if (!stamped(mine[i], my_sizes[i], (unsigned char)(me + 1)))
        atomic_fetch_add(&bad_stamps, 1);
      free(mine[i]);
    }
    /* Take what the previous thread sent and free it (remote frees). */
    pthread_mutex_lock(&in->lock);
    while (!in->full)
      pthread_cond_wait(&in->cond, &in->lock);
    int from = (me + n_threads - 1) % n_threads;
    for (int i = 0; i < BATCH / 2; i++) {
      if (!stamped(in->blocks[i], in->sizes[i], (unsigned char)(from + 1)))
        atomic_fetch_add(&bad_stamps, 1);
      free(in->blocks[i]);
    }
    in->full = 0;
    pthread_cond_broadcast(&in->cond);
    pthread_mutex_unlock(&in->lock);
  }
  return NULL;
}

static int stress(int threads, int rounds) {
  if (threads < 2 || threads > MAX_THREADS)
    return 2;
  n_threads = threads;
  n_rounds = rounds;
  pthread_t t[MAX_THREADS];
  for (int i = 0; i < threads; i++) {
    pthread_mutex_init(&boxes[i].lock, NULL);
    pthread_cond_init(&boxes[i].cond, NULL);
  }
  for (int i = 0; i < threads; i++)
    if (pthread_create(&t[i], NULL, stress_thread, (void *)(intptr_t)i) != 0)
      return 2;
  for (int i = 0; i < threads; i++)
    pthread_join(t[i], NULL);
  printf("stress done, bad stamps %ld\n", atomic_load(&bad_stamps));
  return 0;
}

int main(int argc, char **argv) {
  const char *what = argc > 1 ? argv[1] : "";
  if (strcmp(what, "double-free-overwritten") == 0)
    return double_free_overwritten(arg_size(argc, argv, 2, 32));
  if (strcmp(what, "use-after-free") == 0 && argc > 4)
    return use_after_free(arg_size(argc, argv, 2, 32),
                          arg_size(argc, argv, 3, 0), argv[4]);
  if (strcmp(what, "fill") == 0)
    return fill(arg_size(argc, argv, 2, 64));
  if (strcmp(what, "cross-thread-double-free") == 0)
    return cross_thread_double_free(arg_size(argc, argv, 2, 48));
  if (strcmp(what, "remote-list-poisoned") == 0)
    return remote_list_poisoned(arg_size(argc, argv, 2, 48));
  if (strcmp(what, "stress") == 0)
    return stress((int)arg_size(argc, argv, 2, 4),
                  (int)arg_size(argc, argv, 3, 2000));
  fprintf(stderr,
          "usage: hardened_probe double-free-overwritten [size]\n"
          "       hardened_probe use-after-free size offset word|pointer\n"
          "       hardened_probe fill [size]\n"
          "       hardened_probe cross-thread-double-free [size]\n"
          "       hardened_probe remote-list-poisoned [size]\n"
          "       hardened_probe stress [threads] [rounds]\n");
  return 2;
}
